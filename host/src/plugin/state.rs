//! The data of one plugin invocation's [`Store`](wasmtime::Store): WASI with no ambient
//! authority, the resource table, the memory limiter, and what the plugin logged and tracked.

use std::{path::PathBuf, sync::Arc};

use anyhow::{Context, Result};
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{
    FsPerms, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView, p2::pipe::MemoryOutputPipe,
};

use crate::{
    engine::{Limits, MemoryLimiter},
    host_impl::{LogLine, LogSink, TrackingEvent},
};

/// How much of what a plugin writes to stdout and stderr is kept (for error reports).
const CAPTURE_BYTES: usize = 64 * 1024;

/// A directory a plugin may use, at the same path it was named by.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DirGrant {
    /// The directory on the host.
    pub host: PathBuf,
    /// The path the plugin opens it by.
    pub guest: String,
    /// Whether the plugin may create, change and delete files in it.
    pub writable: bool,
}

impl DirGrant {
    /// Parses `PATH[:ro|:rw]` (read-only when no mode is given). The plugin sees the
    /// directory at `PATH` exactly as written, minus trailing slashes.
    pub fn parse(spec: &str) -> Result<DirGrant> {
        let (path, writable) = match spec.rsplit_once(':') {
            Some((p, "ro")) => (p, false),
            Some((p, "rw")) => (p, true),
            _ => (spec, false),
        };
        let trimmed = path.trim_end_matches('/');
        let guest = if trimmed.is_empty() { "/" } else { trimmed };
        anyhow::ensure!(!path.is_empty(), "empty directory in grant `{spec}`");
        Ok(DirGrant {
            host: PathBuf::from(path),
            guest: guest.to_string(),
            writable,
        })
    }
}

/// Everything a plugin is allowed beyond pure computation. The default allows nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Grants {
    pub dirs: Vec<DirGrant>,
    pub env: Vec<(String, String)>,
}

/// The store data of one invocation.
pub struct PluginState {
    pub(crate) plugin: Arc<str>,
    wasi: WasiCtx,
    table: ResourceTable,
    pub(crate) limiter: MemoryLimiter,
    pub(crate) log_sink: LogSink,
    pub(crate) logs: Vec<LogLine>,
    pub(crate) tracking: Vec<TrackingEvent>,
    /// Tracking events left out once `tracking` was full.
    pub(crate) tracking_dropped: u64,
    output: MemoryOutputPipe,
    /// Clocks and random sources are fixed; tracked timestamps are 0.
    pub(crate) deterministic: bool,
}

/// The clocks of deterministic mode: the wall clock reads 2020-01-01T00:00:00Z, always;
/// the monotonic clock starts at one second and moves on one microsecond per reading, so
/// the same calls read the same times, and runtimes that need time to pass (Go's refuses
/// a clock reading zero) still see it pass.
#[derive(Default)]
struct FixedClock {
    readings: std::sync::atomic::AtomicU64,
}

impl wasmtime_wasi::HostWallClock for FixedClock {
    fn resolution(&self) -> std::time::Duration {
        std::time::Duration::from_secs(1)
    }
    fn now(&self) -> std::time::Duration {
        std::time::Duration::from_secs(1_577_836_800)
    }
}

impl wasmtime_wasi::HostMonotonicClock for FixedClock {
    fn resolution(&self) -> u64 {
        1_000
    }
    fn now(&self) -> u64 {
        let n = self
            .readings
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        1_000_000_000 + n * 1_000
    }
}

impl PluginState {
    /// State for one invocation of `plugin` with `grants` and `limits`.
    pub fn new(
        plugin: Arc<str>,
        grants: &Grants,
        limits: &Limits,
        log_sink: LogSink,
        deterministic: Option<u64>,
    ) -> Result<Self> {
        let output = MemoryOutputPipe::new(CAPTURE_BYTES);
        let mut wasi = WasiCtxBuilder::new();
        wasi.stdout(output.clone())
            .stderr(output.clone())
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false);
        for grant in &grants.dirs {
            let perms = if grant.writable {
                FsPerms::ReadWrite
            } else {
                FsPerms::ReadOnly
            };
            wasi.preopened_dir(&grant.host, &grant.guest, perms)
                .map_err(anyhow::Error::from)
                .with_context(|| format!("granting directory {}", grant.host.display()))?;
        }
        for (k, v) in &grants.env {
            wasi.env(k, v);
        }
        if let Some(seed) = deterministic {
            use rand::SeedableRng as _;
            wasi.secure_random(rand::rngs::StdRng::seed_from_u64(seed))
                .insecure_random(rand::rngs::StdRng::seed_from_u64(
                    seed ^ 0x9e37_79b9_7f4a_7c15,
                ))
                .insecure_random_seed(u128::from(seed))
                .wall_clock(FixedClock::default())
                .monotonic_clock(FixedClock::default());
        }
        Ok(PluginState {
            plugin,
            wasi: wasi.build(),
            table: ResourceTable::new(),
            limiter: MemoryLimiter::new(limits),
            log_sink,
            logs: Vec::new(),
            tracking: Vec::new(),
            tracking_dropped: 0,
            output,
            deterministic: deterministic.is_some(),
        })
    }

    /// What the plugin wrote to stdout and stderr, lossily decoded, trimmed.
    pub fn captured_output(&self) -> String {
        String::from_utf8_lossy(&self.output.contents())
            .trim()
            .to_string()
    }

    /// Takes the log lines and tracking events recorded so far. When events were left
    /// out, the last one is the tag `kiln.tracking.dropped` saying how many.
    pub fn take_records(&mut self) -> (Vec<LogLine>, Vec<TrackingEvent>) {
        if self.tracking_dropped > 0 {
            self.tracking.push(TrackingEvent::Tag {
                key: "kiln.tracking.dropped".into(),
                value: std::mem::take(&mut self.tracking_dropped).to_string(),
            });
        }
        (
            std::mem::take(&mut self.logs),
            std::mem::take(&mut self.tracking),
        )
    }
}

impl WasiView for PluginState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}
