//! Workflows: YAML files of plugin steps, checked before anything runs, then executed as a
//! DAG with caching and lineage. `spec` reads the file, `plan` resolves and checks it,
//! `exec` runs it; `lock` keeps the resolved digests and `cond` reads `register.when`.

pub mod cond;
pub mod diag;
pub mod exec;
mod feed;
pub mod lock;
pub mod plan;
mod register;
pub mod spec;

pub use diag::{Diagnostic, Diagnostics};
pub use exec::{Event, ExecOptions, execute, new_run_id};
pub use plan::{Origin, Plan, Plugins, PrepareError, Prepared, Resolver, prepare, prepare_text};
