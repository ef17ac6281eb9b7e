//! Per-invocation limits: a memory cap, a wall-clock deadline and an optional fuel budget.

use std::time::Duration;

use wasmtime::ResourceLimiter;

/// What one invocation may use. The smaller of what a plugin asks for and what the
/// operator grants ends up here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The most linear memory, in bytes, that all of the instance's memories may reach.
    pub memory: u64,
    /// How long one call may run before it is interrupted.
    pub timeout: Duration,
    /// Instructions' worth of fuel; `None` means unmetered. Needs a fuel-enabled engine.
    pub fuel: Option<u64>,
    /// The most elements any table may grow to.
    pub table_elements: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            memory: 256 << 20,
            timeout: Duration::from_secs(30),
            fuel: None,
            table_elements: 100_000,
        }
    }
}

/// Enforces [`Limits::memory`] across all memories of one store and remembers a refusal,
/// so a failed grow can be reported as the memory cap rather than a bare trap.
#[derive(Debug)]
pub struct MemoryLimiter {
    cap: u64,
    table_elements: usize,
    /// Bytes granted so far, summed over the store's memories.
    in_use: u64,
    /// The size a memory asked to grow to when it was refused.
    pub refused: Option<u64>,
}

impl MemoryLimiter {
    /// A limiter for the given limits.
    pub fn new(limits: &Limits) -> Self {
        MemoryLimiter {
            cap: limits.memory,
            table_elements: limits.table_elements,
            in_use: 0,
            refused: None,
        }
    }

    /// The memory cap in bytes.
    pub fn cap(&self) -> u64 {
        self.cap
    }
}

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let after = self.in_use.saturating_sub(current as u64) + desired as u64;
        if after > self.cap {
            self.refused = Some(desired as u64);
            // Trap rather than return -1 from memory.grow: a guest allocator that sees
            // failure aborts anyway, and the trap lets the host name the cause.
            wasmtime::bail!(
                "memory limit exceeded: growing to {desired} bytes would pass the cap of {} bytes",
                self.cap
            );
        }
        self.in_use = after;
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= self.table_elements)
    }
}
