//! Model serving: registered model versions, each loaded into a [`Pool`] of warm
//! model-runner instances, found by version number or alias.
//!
//! Owns which versions are loaded and what an alias points at for traffic. An alias is
//! read from the tracking store once and cached until the store's models generation
//! changes, so a request costs one atomic load to know it still holds; after an alias
//! moves, the next request goes to the new version while requests already queued on the
//! old one finish there (no request fails over a switch). At most `max_loaded` versions
//! stay loaded; the least recently used beyond that is unloaded once its requests finish.
//!
//! It never speaks HTTP (that is `api::serving`) and never changes the model registry.

pub mod import;
pub mod log;
pub mod native;
pub mod pipeline;
mod pool;

use std::{
    collections::{BTreeMap, HashMap},
    sync::{
        Arc, RwLock,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use serde::{Deserialize, Serialize};
use tokio::sync::OnceCell;

pub use pool::{Factory, Pool, PoolOptions, PoolStats, Runner, ServeError, rows};

use crate::{
    bindings::Value,
    engine::Limits,
    plugin::{CallOptions, PluginHost},
    registry::Registry,
    tracking::{ModelVersion, Store},
    workflow::plan::Resolver,
};

/// Where a model's code runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// The model-runner plugin, sandboxed.
    #[default]
    Wasm,
    /// The runner's native twin in the host (see [`native`]).
    Native,
}

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Backend::Wasm => "wasm",
            Backend::Native => "native",
        }
    }
}

/// `[serving]` in `kiln-server.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServingConfig {
    /// Warm instances per loaded model version, each with its own thread (default: half
    /// the cores, at least one).
    #[serde(default = "crate::api::half_the_cores")]
    pub instances: usize,
    /// Requests that may wait per model version; beyond that the answer is 429.
    #[serde(default = "default_queue")]
    pub queue: usize,
    /// Dynamic batching: the most requests merged into one predict call (1 turns it off).
    #[serde(default = "one")]
    pub max_batch: usize,
    /// Dynamic batching: how long a worker waits for a batch to fill, in microseconds.
    #[serde(default)]
    pub max_delay_us: u64,
    /// One predict call's deadline, in milliseconds.
    #[serde(default = "default_predict_timeout")]
    pub predict_timeout_ms: u64,
    /// The most memory one instance may use, in MiB.
    #[serde(default = "default_memory")]
    pub memory_mib: u64,
    /// Model versions kept loaded at once.
    #[serde(default = "default_loaded")]
    pub max_loaded: usize,
    /// What `/v2/models/{name}` serves: this alias, or the latest version without it.
    #[serde(default = "default_alias")]
    pub default_alias: String,
    /// Per-model settings, by registered model name.
    #[serde(default)]
    pub models: BTreeMap<String, ModelServing>,
    /// The model MLflow's scoring protocol (`POST /invocations`) serves: `NAME`, `NAME@ALIAS`
    /// or `NAME/VERSION` (default: the only registered model).
    #[serde(default)]
    pub invocations: Option<String>,
    /// Log every prediction (model, version, rows, latency, error) to the tracking store,
    /// for `kiln sync` to push (default: on for `kiln bundle serve`, off otherwise).
    #[serde(default)]
    pub log_predictions: Option<bool>,
}

/// `[serving.models.NAME]`: what differs for one model.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelServing {
    #[serde(default)]
    pub runner: Backend,
    pub instances: Option<usize>,
    pub queue: Option<usize>,
    pub max_batch: Option<usize>,
    pub max_delay_us: Option<u64>,
}

fn default_queue() -> usize {
    256
}
fn one() -> usize {
    1
}
fn default_predict_timeout() -> u64 {
    10_000
}
fn default_memory() -> u64 {
    256
}
fn default_loaded() -> usize {
    16
}
/// The alias a bare model name serves, unless `[serving] default_alias` says otherwise.
pub const DEFAULT_ALIAS: &str = "production";

fn default_alias() -> String {
    DEFAULT_ALIAS.into()
}

impl Default for ServingConfig {
    fn default() -> Self {
        toml::from_str("").expect("every serving setting has a default")
    }
}

impl ServingConfig {
    /// Checks the settings' ranges.
    pub fn check(&self) -> anyhow::Result<()> {
        let all = std::iter::once((
            "[serving]",
            Some(self.instances),
            Some(self.queue),
            Some(self.max_batch),
        ))
        .chain(
            self.models
                .iter()
                .map(|(n, m)| (n.as_str(), m.instances, m.queue, m.max_batch)),
        );
        for (at, instances, queue, batch) in all {
            anyhow::ensure!(
                instances.is_none_or(|n| (1..=256).contains(&n)),
                "{at}: instances is 1 to 256"
            );
            anyhow::ensure!(
                queue.is_none_or(|n| (1..=1_000_000).contains(&n)),
                "{at}: queue is 1 to 1000000"
            );
            anyhow::ensure!(
                batch.is_none_or(|n| (1..=4096).contains(&n)),
                "{at}: max_batch is 1 to 4096"
            );
        }
        anyhow::ensure!(self.max_loaded >= 1, "[serving]: max_loaded is at least 1");
        Ok(())
    }

    fn options(&self, model: &str) -> (Backend, PoolOptions) {
        let m = self.models.get(model).cloned().unwrap_or_default();
        (
            m.runner,
            PoolOptions {
                instances: m.instances.unwrap_or(self.instances),
                queue: m.queue.unwrap_or(self.queue),
                max_batch: m.max_batch.unwrap_or(self.max_batch),
                max_delay: Duration::from_micros(m.max_delay_us.unwrap_or(self.max_delay_us)),
            },
        )
    }
}

/// Which version of a model a request names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reference {
    Version(u64),
    Alias(String),
    /// The default alias, or the latest version.
    Default,
}

impl Reference {
    /// A version number, or else an alias.
    pub fn parse(text: &str) -> Reference {
        match text.parse() {
            Ok(v) => Reference::Version(v),
            Err(_) => Reference::Alias(text.to_string()),
        }
    }

    /// `NAME@ALIAS`, `NAME/VERSION` or a bare `NAME` (the default): the name and reference.
    pub fn split(text: &str) -> Result<(&str, Reference), String> {
        if let Some((name, alias)) = text.split_once('@') {
            return Ok((name, Reference::Alias(alias.to_string())));
        }
        match text.split_once('/') {
            Some((name, v)) => v
                .parse()
                .map(|v| (name, Reference::Version(v)))
                .map_err(|_| format!("`{v}` is not a version number")),
            None => Ok((text, Reference::Default)),
        }
    }
}

/// The version number a reference names, read from the registry: `Default` is
/// `default_alias`, or else the latest version. A version number is taken as given.
pub fn version_number(
    store: &Store,
    name: &str,
    reference: &Reference,
    default_alias: &str,
) -> Result<u64, String> {
    match reference {
        Reference::Version(v) => Ok(*v),
        Reference::Alias(a) => store
            .version_by_alias(name, a)
            .map(|v| v.version)
            .map_err(|e| e.to_string()),
        Reference::Default => {
            let (m, _) = store.model(name).map_err(|e| e.to_string())?;
            match m.aliases.get(default_alias) {
                Some(&v) => Ok(v),
                None if m.latest > 0 => Ok(m.latest),
                None => Err(format!("registered model `{name}` has no versions")),
            }
        }
    }
}

/// A model version loaded for serving (`record.model`, `record.version` name it).
pub struct Loaded {
    pub backend: Backend,
    pub record: ModelVersion,
    pub pool: Pool,
    /// Where its predictions are logged, when serving logs them.
    log: Option<Arc<log::PredictionLog>>,
}

impl Loaded {
    /// Predicts with the pool, logging the request when serving logs predictions.
    pub async fn predict(
        &self,
        inputs: Vec<crate::bindings::NamedValue>,
    ) -> Result<Vec<crate::bindings::NamedValue>, ServeError> {
        let Some(log) = &self.log else {
            return self.pool.predict(inputs).await;
        };
        let rows = inputs
            .first()
            .and_then(|i| pool::rows(&i.value))
            .unwrap_or(0) as u64;
        let start = std::time::Instant::now();
        let answer = self.pool.predict(inputs).await;
        log.record(crate::tracking::predictions::PredictionRecord {
            time_ms: crate::now_ms(),
            model: self.record.model.clone(),
            version: self.record.version,
            backend: self.backend.name().to_string(),
            rows,
            latency_us: start.elapsed().as_micros() as u64,
            error: answer
                .as_ref()
                .err()
                .map(ServeError::code)
                .map(str::to_string),
        });
        answer
    }
}

#[derive(Clone)]
struct Slot {
    cell: Arc<OnceCell<Arc<Loaded>>>,
    used: Arc<AtomicU64>,
}

/// alias → (the models generation it was read at, the version it pointed at).
type AliasCache = HashMap<String, (u64, u64)>;

/// The alias key under which [`Reference::Default`] is cached.
const DEFAULT_KEY: &str = "";

/// Every loaded model version, and the aliases that lead to them.
pub struct Serving {
    store: Arc<Store>,
    host: Arc<PluginHost>,
    registry: Arc<Registry>,
    config: ServingConfig,
    /// model → alias → (models generation, version).
    aliases: RwLock<HashMap<String, AliasCache>>,
    /// Set when `[serving] log_predictions` is on.
    log: Option<Arc<log::PredictionLog>>,
    /// model → version → slot.
    pools: RwLock<HashMap<String, HashMap<u64, Slot>>>,
    /// (models generation, the only model's name or how many there are), for
    /// [`sole_model`](Self::sole_model).
    sole: RwLock<Option<(u64, Result<String, usize>)>>,
    clock: AtomicU64,
}

fn read<T>(l: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(|p| p.into_inner())
}
fn write<T>(l: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(|p| p.into_inner())
}

impl Serving {
    pub fn new(
        store: Arc<Store>,
        host: Arc<PluginHost>,
        registry: Arc<Registry>,
        config: ServingConfig,
    ) -> Serving {
        let log = if config.log_predictions.unwrap_or(false) {
            match log::PredictionLog::start(store.clone()) {
                Ok(l) => Some(Arc::new(l)),
                Err(e) => {
                    eprintln!("kiln: predictions will not be logged: {e}");
                    None
                }
            }
        } else {
            None
        };
        Serving {
            log,
            store,
            host,
            registry,
            config,
            aliases: RwLock::default(),
            pools: RwLock::default(),
            sole: RwLock::default(),
            clock: AtomicU64::new(0),
        }
    }

    /// The loaded version a request names, loading it on first use.
    pub async fn get(&self, name: &str, reference: &Reference) -> Result<Arc<Loaded>, ServeError> {
        let version = match reference {
            Reference::Version(v) => *v,
            Reference::Alias(a) => self.alias_version(name, a)?,
            Reference::Default => self.alias_version(name, DEFAULT_KEY)?,
        };
        self.load(name, version).await
    }

    /// The only registered model's name, or how many models there are when not exactly
    /// one (what MLflow's `/invocations` serves unless told): read from the store once per
    /// change of the models, like the aliases.
    pub fn sole_model(&self) -> Result<Result<String, usize>, ServeError> {
        let generation = self.store.models_generation();
        if let Some((g, found)) = &*read(&self.sole)
            && *g == generation
        {
            return Ok(found.clone());
        }
        let models = self
            .store
            .models()
            .map_err(|e| ServeError::Unavailable(e.to_string()))?;
        let found = match models.as_slice() {
            [one] => Ok(one.name.clone()),
            _ => Err(models.len()),
        };
        *write(&self.sole) = Some((generation, found.clone()));
        Ok(found)
    }

    /// The version an alias points at now (cached until the registry changes).
    fn alias_version(&self, name: &str, alias: &str) -> Result<u64, ServeError> {
        let generation = self.store.models_generation();
        if let Some(&(g, v)) = read(&self.aliases).get(name).and_then(|m| m.get(alias))
            && g == generation
        {
            return Ok(v);
        }
        let reference = if alias == DEFAULT_KEY {
            Reference::Default
        } else {
            Reference::Alias(alias.to_string())
        };
        let version = version_number(&self.store, name, &reference, &self.config.default_alias)
            .map_err(ServeError::NotFound)?;
        write(&self.aliases)
            .entry(name.to_string())
            .or_default()
            .insert(alias.to_string(), (generation, version));
        Ok(version)
    }

    async fn load(&self, name: &str, version: u64) -> Result<Arc<Loaded>, ServeError> {
        let tick = self.clock.fetch_add(1, Ordering::Relaxed);
        let found = read(&self.pools)
            .get(name)
            .and_then(|m| m.get(&version))
            .cloned();
        let slot = match found {
            Some(slot) => {
                slot.used.store(tick, Ordering::Relaxed);
                if let Some(loaded) = slot.cell.get() {
                    return Ok(loaded.clone());
                }
                slot
            }
            None => self.insert_slot(name, version, tick),
        };
        let loaded = slot
            .cell
            .get_or_try_init(|| self.start(name, version))
            .await
            .cloned();
        if loaded.is_err() {
            // Not kept: the next request tries again (the registry may have been fixed).
            let mut pools = write(&self.pools);
            if let Some(m) = pools.get_mut(name)
                && m.get(&version)
                    .is_some_and(|s| Arc::ptr_eq(&s.cell, &slot.cell))
            {
                m.remove(&version);
            }
        }
        loaded
    }

    fn insert_slot(&self, name: &str, version: u64, tick: u64) -> Slot {
        let mut pools = write(&self.pools);
        let slot = pools
            .entry(name.to_string())
            .or_default()
            .entry(version)
            .or_insert_with(|| Slot {
                cell: Arc::new(OnceCell::new()),
                used: Arc::new(AtomicU64::new(tick)),
            })
            .clone();
        let loaded: usize = pools.values().map(HashMap::len).sum();
        if loaded > self.config.max_loaded {
            let oldest = pools
                .iter()
                .flat_map(|(n, m)| m.iter().map(move |(v, s)| (n, *v, s)))
                .filter(|(_, _, s)| !Arc::ptr_eq(&s.cell, &slot.cell))
                .min_by_key(|(_, _, s)| s.used.load(Ordering::Relaxed))
                .map(|(n, v, _)| (n.clone(), v));
            if let Some((n, v)) = oldest
                && let Some(m) = pools.get_mut(&n)
            {
                m.remove(&v);
            }
        }
        slot
    }

    /// Loads a version's pool on a blocking thread.
    async fn start(&self, name: &str, version: u64) -> Result<Arc<Loaded>, ServeError> {
        let record = self
            .store
            .model_version(name, version)
            .map_err(|e| ServeError::NotFound(e.to_string()))?;
        let (backend, options) = self.config.options(name);
        let limits = Limits {
            memory: self.config.memory_mib << 20,
            timeout: Duration::from_millis(self.config.predict_timeout_ms.max(1)),
            ..Limits::default()
        };
        let (store, host, registry) =
            (self.store.clone(), self.host.clone(), self.registry.clone());
        let label = format!("{name}-{version}");
        let log = self.log.clone();
        tokio::task::spawn_blocking(move || {
            let make = factory(&record, backend, limits, &store, &host, &registry)?;
            let pool = Pool::start(&label, make, options)?;
            Ok(Arc::new(Loaded {
                backend,
                record,
                pool,
                log,
            }))
        })
        .await
        .map_err(|_| ServeError::Unavailable("loading the model failed".into()))?
    }

    /// Every loaded version, for `/metrics`.
    pub fn loaded(&self) -> Vec<Arc<Loaded>> {
        read(&self.pools)
            .values()
            .flat_map(|m| m.values().filter_map(|s| s.cell.get().cloned()))
            .collect()
    }
}

/// What makes one more instance of a version's model: its runner (the plugin, or its
/// native twin) and its artifact, read once, behind its pipeline's stages (each stage's
/// plugin and fitted values read once) when it has one.
pub fn factory(
    record: &ModelVersion,
    backend: Backend,
    limits: Limits,
    store: &Store,
    host: &PluginHost,
    registry: &Arc<Registry>,
) -> Result<pool::Factory, ServeError> {
    let what = format!("version {} of `{}`", record.version, record.model);
    let runner = record.runner.as_ref().ok_or_else(|| {
        ServeError::NotServable(format!(
            "{what} names no model runner: register it from a workflow with `register.runner`"
        ))
    })?;
    let artifact = match store.value(&record.artifact) {
        Ok(Value::Bytes(b)) => Arc::new(b),
        Ok(_) => {
            return Err(ServeError::Unavailable(format!(
                "{what}'s artifact is not bytes"
            )));
        }
        Err(e) => {
            return Err(ServeError::Unavailable(format!(
                "{what}'s artifact cannot be read: {e:#}"
            )));
        }
    };
    let opts = CallOptions {
        limits,
        ..CallOptions::default()
    };
    let load_plugin = |r: &crate::workflow::plan::PluginRef| {
        let registry = registry.clone();
        Resolver {
            host,
            registry: &move || Ok(registry.clone()),
            update: false,
            models: None,
            bundle: None,
        }
        .load_ref(r)
        .map_err(|e| {
            ServeError::Unavailable(format!("{what}: `{}` cannot be loaded: {e:#}", r.label()))
        })
    };
    let model: pool::Factory = match backend {
        Backend::Native => {
            let name = runner.name.clone();
            if !native::has_twin(&name) {
                return Err(ServeError::Unavailable(format!(
                    "{what} is to be served natively, but its runner `{name}` has no native twin"
                )));
            }
            Arc::new(move || {
                native::load(&name, &artifact)
                    .map(Runner::Native)
                    .map_err(ServeError::Invalid)
            })
        }
        Backend::Wasm => {
            let plugin = load_plugin(runner)?;
            let config = record
                .pipeline
                .as_ref()
                .map(|p| p.runner.config.clone())
                .unwrap_or_default();
            let opts = opts.clone();
            Arc::new(move || {
                plugin
                    .load_model(&artifact, &config, &opts)
                    .map(Runner::Wasm)
                    .map_err(ServeError::Plugin)
            })
        }
    };
    let Some(p) = &record.pipeline else {
        return Ok(model);
    };
    let stages = Arc::new(pipeline::Stages::from_store(p, store, |s| {
        load_plugin(&s.plugin)
    })?);
    if backend == Backend::Native && !p.stages.is_empty() {
        eprintln!(
            "kiln: {what}: the runner runs natively; its stages {} stay sandboxed (no native twin)",
            stages.describe().join(", ")
        );
    }
    Ok(Arc::new(move || {
        let model = model()?;
        pipeline::PipelineRunner::new(stages.clone(), model, &opts)
            .map(|p| Runner::Pipeline(Box::new(p)))
    }))
}
