//! Calling a plugin: a fresh store per invocation, limits set, the role's function called,
//! and every failure turned into a [`PluginError`] that names the plugin.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use wasmtime::{
    Store, Trap,
    component::{ComponentNamedList, ComponentType, Lift, Lower, ResourceAny, TypedFunc},
};

use super::{
    Plugin, PluginError, PluginState, RoleExports,
    drive::{self, Halt, Watch},
    state::Grants,
};
use crate::{
    bindings::{
        Check, Config, Descriptor, Error as WitError, Event, ModelMetadata, NamedValue,
        model_runner,
    },
    engine::{KilnEngine, Limits},
    host_impl::{LogLine, LogSink, TrackingEvent},
};

/// What one invocation is given.
#[derive(Debug, Clone)]
pub struct CallOptions {
    pub limits: Limits,
    pub grants: Grants,
    pub log: LogSink,
    /// Fixes the plugin's random sources (seeded with this) and clocks.
    pub deterministic: Option<u64>,
    /// When set, the call stops within one epoch tick of the flag being raised, whether
    /// it is computing or waiting in a host call.
    pub cancel: Option<Arc<AtomicBool>>,
}

impl CallOptions {
    /// When a call armed now is given up if it is waiting in a host call.
    fn watch(&self) -> Watch<'_> {
        watch(&self.limits, self.cancel.as_deref())
    }
}

/// A call armed now with `limits` is given up at its timeout, or on `cancel`, even while it
/// waits in a host call.
fn watch<'a>(limits: &Limits, cancel: Option<&'a AtomicBool>) -> Watch<'a> {
    Watch {
        deadline: Instant::now() + limits.timeout,
        cancel,
    }
}

impl Default for CallOptions {
    fn default() -> Self {
        CallOptions {
            limits: Limits::default(),
            grants: Grants::default(),
            log: LogSink::Collect,
            deterministic: None,
            cancel: None,
        }
    }
}

/// A `named-value` that borrows its name and value, so inputs held elsewhere (a
/// workflow's outputs) are passed without copying them first.
#[derive(Debug, Clone, Copy, wasmtime::component::ComponentType, wasmtime::component::Lower)]
#[component(record)]
pub struct NamedValueRef<'a> {
    pub name: &'a str,
    pub value: &'a crate::bindings::Value,
}

/// What a step or validator takes as inputs: owned or borrowed named values, which lower
/// to the same `list<named-value>`.
pub trait NamedInput: ComponentType + Lower + Sync + sealed::Sealed {}
impl NamedInput for NamedValue {}
impl NamedInput for NamedValueRef<'_> {}

mod sealed {
    pub trait Sealed {}
    impl Sealed for super::NamedValue {}
    impl Sealed for super::NamedValueRef<'_> {}
}

/// A call's result with what the plugin logged and tracked along the way.
#[derive(Debug)]
pub struct Outcome<T> {
    pub value: T,
    pub logs: Vec<LogLine>,
    pub tracking: Vec<TrackingEvent>,
}

impl Plugin {
    fn store(&self, opts: &CallOptions) -> Result<Store<PluginState>, PluginError> {
        let state = PluginState::new(
            self.name.clone(),
            &opts.grants,
            &opts.limits,
            opts.log,
            opts.deterministic,
        )
        .map_err(|source| PluginError::Setup {
            plugin: self.name.to_string(),
            source,
        })?;
        let mut store = Store::new(self.engine.engine(), state);
        store.limiter(|s| &mut s.limiter);
        self.arm(&mut store, &opts.limits, opts.cancel.as_ref())?;
        Ok(store)
    }

    /// Sets the deadline (and fuel) for the next call into `store`; with a cancel flag,
    /// the call also stops once the flag is raised.
    fn arm(
        &self,
        store: &mut Store<PluginState>,
        limits: &Limits,
        cancel: Option<&Arc<AtomicBool>>,
    ) -> Result<(), PluginError> {
        let ticks = KilnEngine::deadline_ticks(limits.timeout);
        // A refusal belongs to the call it happened in.
        store.data_mut().limiter.refused = None;
        match cancel {
            None => store.set_epoch_deadline(ticks),
            Some(flag) => watch_cancel(store, flag.clone(), ticks),
        }
        if self.engine.fuel_enabled() {
            store
                .set_fuel(limits.fuel.unwrap_or(u64::MAX))
                .map_err(|e| self.setup(e.into()))?;
        } else if limits.fuel.is_some() {
            return Err(self.setup(anyhow::anyhow!(
                "a fuel budget needs an engine built with fuel metering"
            )));
        }
        Ok(())
    }

    fn setup(&self, source: anyhow::Error) -> PluginError {
        PluginError::Setup {
            plugin: self.name.to_string(),
            source,
        }
    }

    /// Turns an error from a call into wasm into the plugin's failure.
    fn call_error(
        &self,
        store: &Store<PluginState>,
        limits: &Limits,
        err: wasmtime::Error,
    ) -> PluginError {
        if let Some(memory) = self.memory_refused(store) {
            return memory;
        }
        let plugin = self.name.to_string();
        if err.downcast_ref::<Cancelled>().is_some() {
            return PluginError::Cancelled { plugin };
        }
        // WASI's `exit` (a process exit, `std::process::exit`, `os._exit`) ends the call.
        if let Some(exit) = err.downcast_ref::<wasmtime_wasi::I32Exit>() {
            return PluginError::Exited {
                plugin,
                status: exit.0,
                output: store.data().captured_output(),
            };
        }
        match err.downcast_ref::<Trap>() {
            Some(Trap::Interrupt) => PluginError::Deadline {
                plugin,
                timeout: limits.timeout,
            },
            Some(Trap::OutOfFuel) => PluginError::Fuel {
                plugin,
                fuel: limits.fuel.unwrap_or(u64::MAX),
            },
            Some(trap) => PluginError::Trap {
                plugin,
                trap: trap_message(trap, &err),
                output: store.data().captured_output(),
            },
            None => PluginError::Trap {
                plugin,
                trap: format!("{err:#}"),
                output: store.data().captured_output(),
            },
        }
    }

    /// The failure of a call given up while it waited in a host call.
    fn halted(&self, halt: Halt, limits: &Limits) -> PluginError {
        let plugin = self.name.to_string();
        match halt {
            Halt::Deadline => PluginError::Deadline {
                plugin,
                timeout: limits.timeout,
            },
            Halt::Cancelled => PluginError::Cancelled { plugin },
        }
    }

    /// Maps what [`drive::run`] returns for a call into `store` to the plugin's outcome.
    fn settle<T>(
        &self,
        store: &Store<PluginState>,
        limits: &Limits,
        result: Result<wasmtime::Result<T>, Halt>,
    ) -> Result<T, PluginError> {
        match result {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => Err(self.call_error(store, limits, e)),
            Err(halt) => Err(self.halted(halt, limits)),
        }
    }

    /// The memory limit's error, if the cap refused `store`'s plugin memory in this call.
    fn memory_refused(&self, store: &Store<PluginState>) -> Option<PluginError> {
        let limiter = &store.data().limiter;
        limiter.refused.map(|wanted| PluginError::Memory {
            plugin: self.name.to_string(),
            cap: limiter.cap(),
            wanted: Some(wanted),
        })
    }

    /// The error a plugin returned; one returned after the memory cap refused it more
    /// memory (a guest that catches its out-of-memory error: Python's `MemoryError`,
    /// JavaScript's) is the memory limit's.
    fn failed(&self, store: &Store<PluginState>, e: crate::bindings::Error) -> PluginError {
        if let Some(memory) = self.memory_refused(store) {
            return memory;
        }
        PluginError::Failed {
            plugin: self.name.to_string(),
            kind: error_kind_name(e.kind),
            message: e.message,
        }
    }

    /// Instantiates into a fresh store and drops it, calling nothing: what every call pays
    /// before the plugin runs (the benchmarks time it).
    pub fn instantiate(&self, opts: &CallOptions) -> Result<(), PluginError> {
        let mut store = self.store(opts)?;
        let result = drive::run(self.pre.instantiate_async(&mut store), opts.watch());
        self.settle(&store, &opts.limits, result).map(drop)
    }

    /// Instantiates into a fresh store and runs `f` on it, mapping failures.
    fn with_instance<T>(
        &self,
        opts: &CallOptions,
        f: impl AsyncFnOnce(
            &mut Store<PluginState>,
            &wasmtime::component::Instance,
        ) -> wasmtime::Result<Result<T, crate::bindings::Error>>,
    ) -> Result<Outcome<T>, PluginError> {
        let mut store = self.store(opts)?;
        let pre = &self.pre;
        let result = drive::run(
            async {
                let instance = pre.instantiate_async(&mut store).await?;
                f(&mut store, &instance).await
            },
            opts.watch(),
        );
        match self.settle(&store, &opts.limits, result)? {
            Ok(value) => {
                let (logs, tracking) = store.data_mut().take_records();
                Ok(Outcome {
                    value,
                    logs,
                    tracking,
                })
            }
            Err(e) => Err(self.failed(&store, e)),
        }
    }

    /// Instantiates once with default limits and type-checks the role's exports, so a
    /// mistyped plugin is refused at load. Runs no plugin function.
    pub(super) fn check_export_types(&self) -> Result<(), PluginError> {
        let mut store = self.store(&CallOptions::default())?;
        let wrong = |e: wasmtime::Error| {
            let export = self.role.export_name();
            let found = super::world::exported_signatures(
                self.engine.engine(),
                self.pre.component(),
                &export,
            );
            PluginError::WrongWorld {
                plugin: self.name.to_string(),
                reason: format!(
                    "its `{export}` functions do not have the contract's types ({e:#}); it exports:\n  {}\nsee wit/roles.wit for the types `{export}` must have",
                    found.join("\n  ")
                ),
            }
        };
        let limits = Limits::default();
        let instantiated = drive::run(self.pre.instantiate_async(&mut store), watch(&limits, None));
        let instance = self.settle(&store, &limits, instantiated)?;
        match &self.exports {
            RoleExports::Step(ix, _) => ix.load(&mut store, &instance).map(drop),
            RoleExports::Validator(ix, _) => ix.load(&mut store, &instance).map(drop),
            RoleExports::ModelRunner(ix) => ix.load(&mut store, &instance).map(drop),
            RoleExports::Tracker(ix) => ix.load(&mut store, &instance).map(drop),
        }
        .map_err(wrong)
    }

    /// Calls the role's `describe`.
    pub fn describe(&self, opts: &CallOptions) -> Result<Descriptor, PluginError> {
        self.with_instance(opts, async |store, instance| {
            Ok(Ok(match &self.exports {
                RoleExports::Step(ix, _) => {
                    ix.load(&mut *store, instance)?.call_describe(store).await?
                }
                RoleExports::Validator(ix, _) => {
                    ix.load(&mut *store, instance)?.call_describe(store).await?
                }
                RoleExports::ModelRunner(ix) => {
                    ix.load(&mut *store, instance)?.call_describe(store).await?
                }
                RoleExports::Tracker(ix) => {
                    ix.load(&mut *store, instance)?.call_describe(store).await?
                }
            }))
        })
        .map(|o| o.value)
    }

    /// The error for calling this plugin as a role it does not implement.
    fn wrong_role(&self, want: super::Role) -> PluginError {
        PluginError::WrongWorld {
            plugin: self.name.to_string(),
            reason: format!("it is a {} plugin, not a {want} plugin", self.role),
        }
    }

    /// Runs a step.
    pub fn run_step<I: NamedInput>(
        &self,
        inputs: &[I],
        config: &Config,
        opts: &CallOptions,
    ) -> Result<Outcome<Vec<NamedValue>>, PluginError> {
        let RoleExports::Step(_, run) = &self.exports else {
            return Err(self.wrong_role(super::Role::Step));
        };
        self.with_instance(opts, async |store, instance| {
            // SAFETY: `check_export_types` proved at load that `run` has this type, and a
            // component's types never change.
            let run = unsafe {
                hot_func::<(&[I], &Config), Result<Vec<NamedValue>, WitError>>(
                    store, instance, run,
                )?
            };
            Ok(run.call_async(store, (inputs, config)).await?.0)
        })
    }

    /// Runs a validator's checks.
    pub fn validate<I: NamedInput>(
        &self,
        inputs: &[I],
        config: &Config,
        opts: &CallOptions,
    ) -> Result<Outcome<Vec<Check>>, PluginError> {
        let RoleExports::Validator(_, validate) = &self.exports else {
            return Err(self.wrong_role(super::Role::Validator));
        };
        self.with_instance(opts, async |store, instance| {
            // SAFETY: as in `run_step`: `validate`'s type was checked at load.
            let validate = unsafe {
                hot_func::<(&[I], &Config), Result<Vec<Check>, WitError>>(
                    store, instance, validate,
                )?
            };
            Ok(validate.call_async(store, (inputs, config)).await?.0)
        })
    }

    /// Sends a batch of run events to a tracker.
    pub fn send_events(
        &self,
        run_id: &str,
        events: &[Event],
        config: &Config,
        opts: &CallOptions,
    ) -> Result<Outcome<()>, PluginError> {
        let RoleExports::Tracker(ix) = &self.exports else {
            return Err(self.wrong_role(super::Role::Tracker));
        };
        self.with_instance(opts, async |store, instance| {
            ix.load(&mut *store, instance)?
                .call_on_events(store, run_id, events, config)
                .await
        })
    }

    /// Instantiates a model runner and loads a model into it; the instance stays warm
    /// for many predictions.
    pub fn load_model(
        self: &Arc<Self>,
        artifact: &[u8],
        config: &Config,
        opts: &CallOptions,
    ) -> Result<ModelInstance, PluginError> {
        let RoleExports::ModelRunner(ix) = &self.exports else {
            return Err(self.wrong_role(super::Role::ModelRunner));
        };
        let mut store = self.store(opts)?;
        let pre = &self.pre;
        let loaded = drive::run(
            async {
                let instance = pre.instantiate_async(&mut store).await?;
                let guest = ix.load(&mut store, &instance)?;
                let model = guest
                    .model()
                    .call_load(&mut store, artifact, config)
                    .await?;
                Ok((guest, model))
            },
            opts.watch(),
        );
        match self.settle(&store, &opts.limits, loaded)? {
            (guest, Ok(model)) => Ok(ModelInstance {
                plugin: self.clone(),
                store,
                guest,
                model: Some(model),
                limits: opts.limits,
                cancel: opts.cancel.clone(),
                poisoned: false,
            }),
            (_, Err(e)) => Err(self.failed(&store, e)),
        }
    }
}

impl Plugin {
    /// Instantiates a step plugin once, to run it many times (a serving pipeline's stage):
    /// each run pays the call alone, not the instantiation.
    pub fn step_instance(
        self: &Arc<Self>,
        opts: &CallOptions,
    ) -> Result<StepInstance, PluginError> {
        let RoleExports::Step(_, run) = &self.exports else {
            return Err(self.wrong_role(super::Role::Step));
        };
        let mut store = self.store(opts)?;
        let instantiated = drive::run(self.pre.instantiate_async(&mut store), opts.watch());
        let instance = self.settle(&store, &opts.limits, instantiated)?;
        let run = instance
            .get_func(&mut store, run)
            .ok_or_else(|| self.setup(anyhow::anyhow!("the export checked at load is missing")))?;
        Ok(StepInstance {
            plugin: self.clone(),
            store,
            run,
            limits: opts.limits,
            poisoned: false,
        })
    }
}

/// A step plugin instance kept warm between runs.
pub struct StepInstance {
    plugin: Arc<Plugin>,
    store: Store<PluginState>,
    run: wasmtime::component::Func,
    limits: Limits,
    poisoned: bool,
}

impl StepInstance {
    /// Runs the step; what it logs or tracks is dropped (a serving stage has no run).
    pub fn run<I: NamedInput>(
        &mut self,
        inputs: &[I],
        config: &Config,
    ) -> Result<Vec<NamedValue>, PluginError> {
        let plugin = &self.plugin;
        if self.poisoned {
            return Err(PluginError::Trap {
                plugin: plugin.name.to_string(),
                trap: "this instance trapped earlier and can no longer be used".into(),
                output: String::new(),
            });
        }
        plugin.arm(&mut self.store, &self.limits, None)?;
        // SAFETY: `check_export_types` proved at load that `run` has this type, and a
        // component's types never change.
        let run = unsafe {
            TypedFunc::<(&[I], &Config), (Result<Vec<NamedValue>, WitError>,)>::new_unchecked(
                self.run,
            )
        };
        let result = drive::run(
            run.call_async(&mut self.store, (inputs, config)),
            watch(&self.limits, None),
        );
        self.store.data_mut().take_records();
        match plugin.settle(&self.store, &self.limits, result) {
            Ok((Ok(outputs),)) => Ok(outputs),
            Ok((Err(e),)) => Err(plugin.failed(&self.store, e)),
            Err(e) => {
                self.poisoned = true;
                Err(e)
            }
        }
    }

    /// Whether the instance can still run (it has not trapped).
    pub fn usable(&self) -> bool {
        !self.poisoned
    }
}

/// A model runner instance with a model loaded, kept warm between predictions.
pub struct ModelInstance {
    plugin: Arc<Plugin>,
    store: Store<PluginState>,
    guest: model_runner::Guest,
    model: Option<ResourceAny>,
    limits: Limits,
    cancel: Option<Arc<AtomicBool>>,
    poisoned: bool,
}

impl ModelInstance {
    fn call<T>(
        &mut self,
        f: impl AsyncFnOnce(
            &model_runner::GuestModel,
            &mut Store<PluginState>,
            ResourceAny,
        ) -> wasmtime::Result<T>,
    ) -> Result<T, PluginError> {
        let plugin = &self.plugin;
        let model = match self.model {
            Some(m) if !self.poisoned => m,
            _ => {
                return Err(PluginError::Trap {
                    plugin: plugin.name.to_string(),
                    trap: "this model instance trapped earlier and can no longer be used".into(),
                    output: String::new(),
                });
            }
        };
        plugin.arm(&mut self.store, &self.limits, self.cancel.as_ref())?;
        let result = drive::run(
            f(&self.guest.model(), &mut self.store, model),
            watch(&self.limits, self.cancel.as_deref()),
        );
        match plugin.settle(&self.store, &self.limits, result) {
            Ok(v) => Ok(v),
            Err(e) => {
                self.poisoned = true;
                Err(e)
            }
        }
    }

    /// Whether the instance can still predict (it has not trapped).
    pub fn usable(&self) -> bool {
        self.model.is_some() && !self.poisoned
    }

    /// The model's signature.
    pub fn metadata(&mut self) -> Result<ModelMetadata, PluginError> {
        self.call(async |g, store, m| g.call_metadata(store, m).await)
    }

    /// Predicts for a batch.
    pub fn predict(
        &mut self,
        inputs: &[NamedValue],
    ) -> Result<Outcome<Vec<NamedValue>>, PluginError> {
        let result = self.call(async |g, store, m| g.call_predict(store, m, inputs).await)?;
        let value = result.map_err(|e| self.plugin.failed(&self.store, e))?;
        let (logs, tracking) = self.store.data_mut().take_records();
        Ok(Outcome {
            value,
            logs,
            tracking,
        })
    }
}

impl Drop for ModelInstance {
    fn drop(&mut self) {
        if let Some(model) = self.model.take()
            && !self.poisoned
        {
            let limits = Limits {
                timeout: Duration::from_secs(1),
                ..self.limits
            };
            self.store
                .set_epoch_deadline(KilnEngine::deadline_ticks(limits.timeout));
            let _ = drive::run(
                model.resource_drop_async(&mut self.store),
                watch(&limits, None),
            );
        }
    }
}

/// Why a call was stopped by [`CallOptions::cancel`].
#[derive(Debug)]
struct Cancelled;

impl std::fmt::Display for Cancelled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("cancelled")
    }
}

impl std::error::Error for Cancelled {}

/// Checks `flag` at every epoch tick of a call into `store`, keeping the call's own
/// deadline of `ticks`: the call stops with [`Cancelled`] once the flag is raised, or is
/// interrupted as usual when its ticks run out.
fn watch_cancel(store: &mut Store<PluginState>, flag: Arc<AtomicBool>, ticks: u64) {
    let mut left = ticks;
    store.set_epoch_deadline(1);
    store.epoch_deadline_callback(move |_| {
        if flag.load(Ordering::Relaxed) {
            return Err(Cancelled.into());
        }
        left = left.saturating_sub(1);
        if left == 0 {
            return Err(Trap::Interrupt.into());
        }
        Ok(wasmtime::UpdateDeadline::Continue(1))
    });
}

/// The typed function at `index` in `instance`, without a type check.
///
/// # Safety
///
/// The function must have exactly the type `(P) -> (R)`: the caller must have checked it
/// for this component (as `Plugin::check_export_types` does at load).
unsafe fn hot_func<P, R>(
    store: &mut Store<PluginState>,
    instance: &wasmtime::component::Instance,
    index: &wasmtime::component::ComponentExportIndex,
) -> wasmtime::Result<TypedFunc<P, (R,)>>
where
    P: ComponentNamedList + Lower,
    (R,): ComponentNamedList + Lift,
{
    let func = instance
        .get_func(&mut *store, index)
        .ok_or_else(|| wasmtime::format_err!("the export checked at load is missing"))?;
    // SAFETY: guaranteed by the caller.
    Ok(unsafe { TypedFunc::new_unchecked(func) })
}

/// A trap's cause in words; the wasm backtrace only when `KILN_BACKTRACE` is set, since
/// stripped plugins give little more than function numbers.
fn trap_message(trap: &Trap, err: &wasmtime::Error) -> String {
    if std::env::var_os("KILN_BACKTRACE").is_some() {
        return format!("{err:?}");
    }
    match trap {
        // Rust, C and Go keep their call stack in linear memory, below everything else: a
        // stack overflow there is an access below address 0.
        Trap::MemoryOutOfBounds => format!(
            "{trap} (a bug in the plugin, or its stack overflowing: Rust, C and Go keep their stack in linear memory)"
        ),
        _ => trap.to_string(),
    }
}

pub(crate) fn error_kind_name(kind: crate::bindings::ErrorKind) -> &'static str {
    use crate::bindings::ErrorKind as K;
    match kind {
        K::InvalidInput => "invalid-input",
        K::InvalidConfig => "invalid-config",
        K::Unsupported => "unsupported",
        K::Internal => "internal",
    }
}
