//! Workflows: YAML files of plugin steps, checked before anything runs, then executed as a
//! DAG with caching and lineage. `spec` reads the file, `plan` resolves and checks it,
//! `exec` runs it; `lock` keeps the resolved digests and `cond` reads `register.when`.

pub mod cond;
pub mod diag;
pub mod exec;
mod feed;
pub mod lock;
pub mod plan;
pub mod spec;

pub use diag::{Diagnostic, Diagnostics};
pub use exec::{Event, ExecOptions, execute};
pub use plan::{Plan, Plugins, PrepareError, Prepared, Resolver, prepare};
