//! The host side of the imports every plugin may call, one file per WIT interface.
//!
//! Each interface's data lives in [`PluginState`](crate::plugin::PluginState); these
//! files only implement the generated `Host` traits on it. They must never block on
//! I/O or let a plugin grow host memory without bound: what a plugin logs or tracks
//! is capped per invocation.

mod log;
mod tracking;

pub(crate) use log::level_name;
pub use log::{LogLine, LogSink};
pub use tracking::TrackingEvent;

use wasmtime::component::{HasSelf, Linker};

use crate::{bindings, plugin::PluginState};

/// Lines or events one invocation may record before further ones are dropped.
pub const MAX_RECORDS: usize = 100_000;
/// The longest message or key kept, in bytes; longer ones are cut.
pub const MAX_TEXT: usize = 16 * 1024;

/// Adds every Kiln host import (and WASI) to `linker`. WASI is linked asynchronously, so
/// a plugin waiting in it can be stopped at its deadline (see `plugin::drive`); Kiln's own
/// imports never wait and stay synchronous.
pub fn add_to_linker(linker: &mut Linker<PluginState>) -> anyhow::Result<()> {
    wasmtime_wasi::p2::add_to_linker_async(linker)?;
    bindings::log::add_to_linker::<_, HasSelf<_>>(linker, |s| s)?;
    bindings::tracking::add_to_linker::<_, HasSelf<_>>(linker, |s| s)?;
    Ok(())
}

impl bindings::kiln::plugin::types::Host for PluginState {}

/// Cuts `s` to at most [`MAX_TEXT`] bytes, on a character boundary.
pub(crate) fn clip(mut s: String) -> String {
    if s.len() > MAX_TEXT {
        let mut end = MAX_TEXT;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
        s.push('…');
    }
    s
}
