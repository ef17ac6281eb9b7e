//! What can go wrong loading or calling a plugin, each case naming the plugin.

use std::time::Duration;

/// A plugin failed to load or to run. Every variant names the plugin; none of them is a
/// host crash: the host stays usable after any of them.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PluginError {
    #[error("cannot read plugin file {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("plugin `{plugin}` is not a valid WebAssembly component: {reason}")]
    Malformed { plugin: String, reason: String },
    #[error(
        "plugin `{plugin}` has no precompiled code here, and this kiln is a runtime-only build \
         (without the `compiler` feature) that cannot compile wasm: run it from a bundle \
         (`kiln bundle`)"
    )]
    NoCompiler { plugin: String },
    #[error("plugin `{plugin}` does not implement the Kiln world it should: {reason}")]
    WrongWorld { plugin: String, reason: String },
    #[error("plugin `{plugin}` was stopped at its deadline of {}", humantime::format_duration(*.timeout))]
    Deadline { plugin: String, timeout: Duration },
    #[error("plugin `{plugin}` was cancelled")]
    Cancelled { plugin: String },
    #[error("plugin `{plugin}` exceeded its memory limit of {}{}", bytesize::ByteSize(*.cap).display().iec(), .wanted.map(|w| format!(" (it asked for {})", bytesize::ByteSize(w).display().iec())).unwrap_or_default())]
    Memory {
        plugin: String,
        cap: u64,
        wanted: Option<u64>,
    },
    #[error("plugin `{plugin}` ran out of fuel (budget {fuel})")]
    Fuel { plugin: String, fuel: u64 },
    #[error("plugin `{plugin}` trapped: {trap}{}", output_note(.output))]
    Trap {
        plugin: String,
        trap: String,
        output: String,
    },
    #[error("plugin `{plugin}` exited with status {status} instead of returning{}", output_note(.output))]
    Exited {
        plugin: String,
        status: i32,
        output: String,
    },
    #[error("plugin `{plugin}` returned an error ({kind}): {message}")]
    Failed {
        plugin: String,
        kind: &'static str,
        message: String,
    },
    #[error("plugin `{plugin}` gave a bad result: {reason}")]
    BadOutput { plugin: String, reason: String },
    #[error("setting up plugin `{plugin}`: {source:#}")]
    Setup {
        plugin: String,
        #[source]
        source: anyhow::Error,
    },
}

fn output_note(output: &str) -> String {
    if output.is_empty() {
        return String::new();
    }
    const KEEP: usize = 20;
    let lines: Vec<&str> = output.lines().collect();
    let tail = &lines[lines.len().saturating_sub(KEEP)..];
    format!("\nplugin output:\n  {}", tail.join("\n  "))
}

impl PluginError {
    /// The plugin this error is about.
    pub fn plugin(&self) -> &str {
        match self {
            PluginError::Read { path, .. } => path,
            PluginError::Malformed { plugin, .. }
            | PluginError::NoCompiler { plugin }
            | PluginError::WrongWorld { plugin, .. }
            | PluginError::Deadline { plugin, .. }
            | PluginError::Cancelled { plugin }
            | PluginError::Memory { plugin, .. }
            | PluginError::Fuel { plugin, .. }
            | PluginError::Trap { plugin, .. }
            | PluginError::Exited { plugin, .. }
            | PluginError::Failed { plugin, .. }
            | PluginError::BadOutput { plugin, .. }
            | PluginError::Setup { plugin, .. } => plugin,
        }
    }

    /// A short stable code for scripts and HTTP answers.
    pub fn code(&self) -> &'static str {
        match self {
            PluginError::Read { .. } => "plugin_unreadable",
            PluginError::Malformed { .. } => "plugin_malformed",
            PluginError::NoCompiler { .. } => "plugin_not_precompiled",
            PluginError::WrongWorld { .. } => "plugin_wrong_world",
            PluginError::Deadline { .. } => "plugin_deadline",
            PluginError::Cancelled { .. } => "plugin_cancelled",
            PluginError::Memory { .. } => "plugin_memory_limit",
            PluginError::Fuel { .. } => "plugin_out_of_fuel",
            PluginError::Trap { .. } => "plugin_trap",
            PluginError::Exited { .. } => "plugin_exited",
            PluginError::Failed { .. } => "plugin_failed",
            PluginError::BadOutput { .. } => "plugin_bad_output",
            PluginError::Setup { .. } => "plugin_setup",
        }
    }
}
