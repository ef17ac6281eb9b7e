//! Kiln: a WebAssembly plugin runtime for MLOps.
//!
//! Data flows one way: [`cli`] → [`plugin`] → [`engine`]. The [`engine`] knows nothing of
//! MLOps; [`plugin`] knows the contract's roles; [`bindings`] is the one place the WIT is
//! bound; [`host_impl`] implements what plugins may import.

pub mod api;
pub mod bindings;
pub mod bundle;
pub mod cli;
pub mod db;
pub mod digest;
pub mod engine;
pub mod host_impl;
pub mod plugin;
#[cfg(feature = "compiler")]
pub mod polyglot;
pub mod registry;
pub mod serving;
pub mod tracking;
pub mod value;
pub mod workflow;

/// Milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
