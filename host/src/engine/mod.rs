//! The wasmtime engine: built once per process, shared by every plugin.
//!
//! This module owns the [`wasmtime::Engine`] configuration (pooling allocator with an
//! on-demand fallback, epoch interruption, optional fuel), the epoch ticker that turns
//! wall-clock deadlines into interrupts, per-invocation [`Limits`], and the on-disk
//! [`ArtifactCache`] of compiled components. It knows nothing of MLOps, plugins or roles.

mod cache;
mod limits;

use std::{
    sync::Arc,
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context, Result};
use wasmtime::{Config, Enabled, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

pub use cache::{
    ArtifactCache, CacheOutcome, CompiledStore, NoCompiler, compatibility_key, engine_key,
};
pub use limits::{Limits, MemoryLimiter};

/// How often the epoch ticker advances the engine's epoch: the granularity of deadlines.
pub const EPOCH_TICK: Duration = Duration::from_millis(5);

/// The largest linear memory any invocation may have; per-invocation caps sit below it.
pub const MAX_MEMORY: u64 = 4 << 30;

/// Which instance allocator the engine ended up with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Allocator {
    /// Pre-reserved slots reused across instantiations: fast instantiation.
    Pooling,
    /// Memory mapped per instance: used when the pool's reservation is refused.
    OnDemand,
}

/// Options fixed when the engine is built.
#[derive(Debug, Clone)]
pub struct EngineOptions {
    /// Try the pooling allocator first (falls back to on-demand when it cannot reserve memory).
    pub pooling: bool,
    /// Instrument code to count fuel, so invocations can be given a fuel budget.
    pub fuel: bool,
    /// Concurrent instances the pool has room for.
    pub pool_instances: u32,
    /// The target to compile for, when not this machine: another triple (to precompile
    /// code for a device; such an engine cannot run it) or `pulley64`/`pulley32`, wasmtime's
    /// portable interpreter, which runs anywhere.
    pub target: Option<String>,
    /// How linear memories are laid out in the address space.
    pub memory: MemoryProfile,
}

/// How much address space linear memories reserve. Compiled code depends on it (bounds
/// checks are elided or not), so code precompiled for one profile only runs on an engine
/// with the same one: bundles are always made for [`MemoryProfile::Device`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemoryProfile {
    /// wasmtime's 64-bit defaults: 4 GiB reserved per memory plus guard pages, so most
    /// bounds checks are elided. Address space is cheap on a server.
    Server,
    /// For small devices (a 39-bit address space, 32-bit boards, Pulley without virtual
    /// memory): [`DEVICE_RESERVATION`] reserved per memory, a [`DEVICE_GUARD`] guard, growth
    /// by moving, explicit bounds checks, and no pool reserved ahead.
    Device,
}

/// Address space reserved per linear memory on a device; a memory grows past it by moving.
pub const DEVICE_RESERVATION: u64 = 64 << 20;
/// The guard region after each linear memory on a device.
pub const DEVICE_GUARD: u64 = 64 << 10;

impl Default for EngineOptions {
    /// A full build's engine: the server profile, pooled. A runtime-only build (no
    /// `compiler` feature) runs precompiled code made for devices: [`EngineOptions::device`].
    fn default() -> Self {
        if cfg!(feature = "compiler") {
            EngineOptions {
                pooling: true,
                fuel: false,
                pool_instances: 128,
                target: None,
                memory: MemoryProfile::Server,
            }
        } else {
            EngineOptions::device(None)
        }
    }
}

impl EngineOptions {
    /// The engine of a device's runtime, and of the bundles made for one: the device memory
    /// profile and on-demand allocation (memory is mapped when an instance needs it, and
    /// nothing is held for instances that may never come), compiling for `target`.
    pub fn device(target: Option<String>) -> Self {
        EngineOptions {
            pooling: false,
            fuel: false,
            pool_instances: 0,
            target,
            memory: MemoryProfile::Device,
        }
    }
}

/// The engine plus what was decided while building it.
#[derive(Clone)]
pub struct KilnEngine {
    engine: Engine,
    allocator: Allocator,
    fuel: bool,
    _ticker: Arc<EpochTicker>,
}

impl KilnEngine {
    /// Builds the engine: pooling if asked and possible, else on-demand.
    pub fn new(options: &EngineOptions) -> Result<Self> {
        let (engine, allocator) = if options.pooling {
            match Engine::new(&base_config(options, Some(pooling_config(options)))?) {
                Ok(engine) => (engine, Allocator::Pooling),
                Err(e) => {
                    eprintln!(
                        "kiln: the pooling allocator is unavailable ({e}); using on-demand allocation"
                    );
                    (on_demand(options)?, Allocator::OnDemand)
                }
            }
        } else {
            (on_demand(options)?, Allocator::OnDemand)
        };
        let ticker = Arc::new(EpochTicker::start(&engine));
        Ok(KilnEngine {
            engine,
            allocator,
            fuel: options.fuel,
            _ticker: ticker,
        })
    }

    /// The wasmtime engine.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The allocator in use.
    pub fn allocator(&self) -> Allocator {
        self.allocator
    }

    /// Whether invocations can be given a fuel budget.
    pub fn fuel_enabled(&self) -> bool {
        self.fuel
    }

    /// The number of epoch ticks that covers `timeout`, rounded up, at least one.
    pub fn deadline_ticks(timeout: Duration) -> u64 {
        let tick = EPOCH_TICK.as_nanos();
        (timeout.as_nanos().div_ceil(tick) as u64).max(1)
    }
}

fn on_demand(options: &EngineOptions) -> Result<Engine> {
    Engine::new(&base_config(options, None)?)
        .map_err(anyhow::Error::from)
        .context("building the wasmtime engine")
}

fn base_config(
    options: &EngineOptions,
    pooling: Option<PoolingAllocationConfig>,
) -> Result<Config> {
    let mut config = Config::new();
    if let Some(target) = &options.target {
        config
            .target(target)
            .map_err(anyhow::Error::from)
            .with_context(|| format!("compiling for target `{target}`"))?;
    }
    config
        .wasm_component_model(true)
        .epoch_interruption(true)
        .consume_fuel(options.fuel)
        .memory_init_cow(true);
    if options.memory == MemoryProfile::Device {
        config
            .memory_reservation(DEVICE_RESERVATION)
            .memory_guard_size(DEVICE_GUARD)
            .memory_reservation_for_growth(DEVICE_RESERVATION)
            .memory_may_move(true);
    }
    #[cfg(feature = "compiler")]
    config.parallel_compilation(true);
    // For `perf`: each function of every loaded plugin by name in /tmp/perf-PID.map.
    if std::env::var_os("KILN_PERFMAP").is_some_and(|v| v == "1") {
        config.profiler(wasmtime::ProfilingStrategy::PerfMap);
    }
    if let Some(pool) = pooling {
        config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    }
    Ok(config)
}

fn pooling_config(options: &EngineOptions) -> PoolingAllocationConfig {
    let n = options.pool_instances;
    let pagemap = PoolingAllocationConfig::is_pagemap_scan_available();
    let mut pool = PoolingAllocationConfig::new();
    pool.total_component_instances(n)
        .total_core_instances(n * 8)
        .total_memories(n * 2)
        .total_tables(n * 8)
        .max_core_instances_per_component(32)
        .max_memories_per_component(4)
        .max_tables_per_component(16)
        .max_memory_size(MAX_MEMORY as usize)
        .max_component_instance_size(1 << 20)
        .max_core_instance_size(1 << 20)
        // Each call runs on a fiber stack (plugins are called asynchronously): one per
        // instance the pool holds.
        .total_stacks(n)
        // Where the kernel can report dirty pages (Linux 6.7+ PAGEMAP_SCAN), a reused slot
        // is reset by zeroing only the pages the last instance touched, up to this size,
        // instead of madvise and fresh page faults on the next instantiation: that halves
        // instantiate+call and triples large-tensor throughput. Without it, wasmtime would
        // memset the whole window, so the window stays at zero there. Idle slots keep
        // their touched pages resident; `max_unused_warm_slots` bounds how many.
        .pagemap_scan(Enabled::Auto)
        .max_unused_warm_slots(32)
        .linear_memory_keep_resident(if pagemap { 32 << 20 } else { 0 })
        .table_keep_resident(if pagemap { 1 << 16 } else { 0 });
    pool
}

/// Advances the engine's epoch every [`EPOCH_TICK`] on a thread that holds only a weak
/// reference to the engine, and so ends when the engine is dropped.
struct EpochTicker;

impl EpochTicker {
    fn start(engine: &Engine) -> EpochTicker {
        let weak = engine.weak();
        let spawned = thread::Builder::new()
            .name("kiln-epoch".into())
            .spawn(move || {
                let mut next = Instant::now();
                loop {
                    next += EPOCH_TICK;
                    thread::sleep(next.saturating_duration_since(Instant::now()));
                    match weak.upgrade() {
                        Some(engine) => engine.increment_epoch(),
                        None => break,
                    }
                }
            });
        if let Err(e) = spawned {
            // Without a ticker deadlines cannot fire; say so rather than hang later.
            eprintln!("kiln: could not start the epoch ticker ({e}); deadlines will not fire");
        }
        EpochTicker
    }
}
