//! `kiln:plugin/log`: levelled log lines, tagged with the plugin that wrote them.

use std::io::Write;

use super::{MAX_RECORDS, clip};
use crate::{bindings::log::Level, plugin::PluginState};

/// One line a plugin logged.
#[derive(Debug, Clone, PartialEq)]
pub struct LogLine {
    pub level: Level,
    pub message: String,
}

/// Where an invocation's log lines go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogSink {
    /// Kept with the invocation's result only.
    Collect,
    /// Kept, and also written to the host's stderr as they arrive, at or above a level.
    Stderr(Level),
}

pub(crate) fn level_name(level: Level) -> &'static str {
    match level {
        Level::Trace => "trace",
        Level::Debug => "debug",
        Level::Info => "info",
        Level::Warn => "warn",
        Level::Error => "error",
    }
}

fn rank(level: Level) -> u8 {
    level as u8
}

impl crate::bindings::log::Host for PluginState {
    fn log(&mut self, level: Level, message: String) {
        if let LogSink::Stderr(min) = self.log_sink
            && rank(level) >= rank(min)
        {
            let _ = writeln!(
                std::io::stderr().lock(),
                "[{} {}] {}",
                self.plugin,
                level_name(level),
                message
            );
        }
        if self.logs.len() < MAX_RECORDS {
            self.logs.push(LogLine {
                level,
                message: clip(message),
            });
        }
    }
}
