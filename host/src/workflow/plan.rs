//! From a workflow file to a checked plan: every plugin resolved to an exact digest
//! (through the lockfile), described, and every wire, config key, grant and limit
//! checked before anything runs. All problems are reported at once, each at its line.

use std::{
    collections::{HashMap, HashSet},
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use serde::{Deserialize, Serialize};
use serde_saphyr::Spanned;

use super::{
    cond::Condition,
    diag::{Collector, Diagnostics, Loc},
    lock::{LockEntry, Lockfile},
    spec::{self, StepSpec, WorkflowSpec, loc},
};
use crate::{
    bindings::{Descriptor, ValueKind},
    digest::sha256_hex,
    plugin::{CallOptions, DirGrant, Grants, Plugin, PluginHost, Role},
    registry::{Manifest, Registry, resolve::parse_spec},
    serving::{Reference, version_number},
    tracking::{ModelVersion, Store},
};

/// How a step names a registered model: `models:/NAME@ALIAS` or `models:/NAME/VERSION`.
pub const MODELS_SCHEME: &str = "models:/";

/// The plugin a `uses` resolved to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PluginRef {
    /// The `uses` text as written.
    pub uses: String,
    pub name: String,
    /// The registry version; `None` for a component file.
    pub version: Option<String>,
    /// sha256 of the component, hex.
    pub digest: String,
    /// The component file, for a plugin not from the registry.
    pub file: Option<PathBuf>,
}

impl PluginRef {
    /// `name@version`, or the file's name.
    pub fn label(&self) -> String {
        match &self.version {
            Some(v) => format!("{}@{v}", self.name),
            None => self.uses.clone(),
        }
    }

    /// `name@version`, or the name alone for a component file: never a path, so fit for
    /// metrics labels and whoever reads them.
    pub fn name_version(&self) -> String {
        match &self.version {
            Some(v) => format!("{}@{v}", self.name),
            None => self.name.clone(),
        }
    }
}

/// An input port fed by another step's output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Wire {
    pub port: String,
    pub step: String,
    pub output: String,
}

/// A registered model version a step predicts with (`uses: models:/NAME@ALIAS`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelInput {
    pub model: String,
    pub version: u64,
    /// The digest of its artifact in the store, which the step's `model` input carries.
    pub artifact: String,
    /// Its inference pipeline, which the step runs whole.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pipeline: Option<crate::tracking::Pipeline>,
}

/// One step, resolved and checked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanStep {
    pub id: String,
    pub plugin: PluginRef,
    pub role: Role,
    pub config: Vec<(String, String)>,
    pub inputs: Vec<Wire>,
    pub after: Vec<String>,
    pub grants: Grants,
    pub memory: u64,
    pub timeout_ms: u64,
    pub retries: u32,
    pub backoff_ms: u64,
    pub cache: bool,
    /// For `uses: models:/...`: the model version whose runner this step is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<ModelInput>,
}

impl PlanStep {
    /// The steps this one waits for: its inputs' steps and its `after` list.
    pub fn upstream(&self) -> impl Iterator<Item = &str> {
        self.inputs
            .iter()
            .map(|w| w.step.as_str())
            .chain(self.after.iter().map(String::as_str))
    }
}

/// What to register when the run succeeds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegisterPlan {
    pub model: String,
    pub step: String,
    pub output: String,
    pub runner: PluginRef,
    pub when: Option<String>,
    pub alias: Option<String>,
    /// The inference pipeline (`register.serve`), the runner's step last; empty when the
    /// runner takes requests as they are.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub serve: Vec<ServeStage>,
}

/// A step of a model's inference pipeline, as `register.serve` names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServeStage {
    pub step: String,
    /// The port the rows enter at: the raw input for the first, the one before's output
    /// for the others.
    pub input: String,
    /// The output the next stage reads (empty for the runner).
    pub output: String,
}

/// A checked workflow: steps in an order where each comes after what it needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    pub name: String,
    pub file: String,
    /// The seed of deterministic mode, when it is on.
    pub seed: Option<u64>,
    pub steps: Vec<PlanStep>,
    pub register: Option<RegisterPlan>,
    /// Tracker plugins: every event of the run goes to each.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub trackers: Vec<PlanStep>,
}

/// The loaded plugins of a plan.
#[derive(Clone, Default)]
pub struct Plugins {
    /// One per step, in plan order.
    pub steps: Vec<Arc<Plugin>>,
    /// One per tracker, in plan order.
    pub trackers: Vec<Arc<Plugin>>,
    /// The model runner of `register`, which must load the model before it is registered.
    pub runner: Option<Arc<Plugin>>,
    /// The stages of the registered pipelines steps predict with, by component digest.
    pub stages: HashMap<String, Arc<Plugin>>,
}

/// A plan with its plugins loaded, ready to execute.
pub struct Prepared {
    pub plan: Plan,
    pub plugins: Plugins,
    /// The lockfile after resolution, and whether it changed.
    pub lock: Lockfile,
    pub lock_changed: bool,
}

/// How plugins are found.
pub struct Resolver<'a> {
    pub host: &'a PluginHost,
    /// The registry, opened on first need.
    pub registry: &'a dyn Fn() -> anyhow::Result<Arc<Registry>>,
    /// Ignore the lockfile's choices and resolve afresh.
    pub update: bool,
    /// The model registry, for steps that use a registered model (`models:/...`).
    pub models: Option<&'a Store>,
    /// Running a bundle: its plugins, already loaded into `host`, by component digest, with
    /// their registry manifests. Every `uses` resolves through the lockfile to one of
    /// them, and nothing else is looked up.
    pub bundle: Option<&'a HashMap<String, Option<Manifest>>>,
}

struct Resolved {
    plugin_ref: PluginRef,
    plugin: Arc<Plugin>,
    manifest: Option<Manifest>,
    descriptor: Descriptor,
}

impl Resolver<'_> {
    /// Loads the plugin a lock entry or a run record names, checking its digest.
    pub fn load_ref(&self, r: &PluginRef) -> anyhow::Result<Arc<Plugin>> {
        // Already loaded (a bundle's, from its precompiled code): the digest is its identity.
        if let Some(plugin) = self.host.cached(&r.digest) {
            return Ok(plugin);
        }
        let bytes = self.component(r)?;
        Ok(self.host.load_bytes(&r.name, &bytes, None)?)
    }

    /// The component `r` names, its digest checked against the one recorded.
    pub fn component(&self, r: &PluginRef) -> anyhow::Result<Vec<u8>> {
        let bytes = match (&r.file, &r.version) {
            (Some(path), _) => std::fs::read(path)
                .map_err(|e| anyhow::anyhow!("cannot read plugin {}: {e}", path.display()))?,
            (None, Some(version)) => {
                let registry = (self.registry)()?;
                let req = semver::VersionReq::parse(&format!("={version}"))?;
                let record = registry.resolve(&r.name, &req)?;
                registry.fetch(&record)?
            }
            (None, None) => anyhow::bail!("plugin `{}` has neither a file nor a version", r.uses),
        };
        let digest = sha256_hex(&bytes);
        anyhow::ensure!(
            digest == r.digest,
            "plugin `{}` has digest sha256:{digest}, but sha256:{} was recorded",
            r.label(),
            r.digest
        );
        Ok(bytes)
    }

    /// The model version `models:/NAME@ALIAS` or `models:/NAME/VERSION` names.
    pub fn registered(&self, uses: &str) -> Result<ModelVersion, String> {
        let what = uses.strip_prefix(MODELS_SCHEME).unwrap_or(uses);
        let store = self
            .models
            .ok_or("registered models are not available here (no tracking store)")?;
        let (name, reference) = Reference::split(what)?;
        if reference == Reference::Default {
            return Err(format!(
                "name the version: `{MODELS_SCHEME}{what}@ALIAS` or `{MODELS_SCHEME}{what}/VERSION`"
            ));
        }
        let version = version_number(store, name, &reference, "")?;
        store
            .model_version(name, version)
            .map_err(|e| e.to_string())
    }

    /// Finds the plugin `uses` names: a component file beside the workflow (when `files`
    /// gives the directory), a registered model's runner (`models:/...`), or a registry
    /// requirement.
    fn resolve(
        &self,
        uses: &str,
        files: Option<&Path>,
        lock: &mut Lockfile,
    ) -> Result<(PluginRef, Arc<Plugin>, Option<Manifest>), String> {
        if let Some(pinned) = self.bundle {
            let entry = lock
                .get(uses)
                .ok_or_else(|| format!("`{uses}` is not in the bundle's lockfile"))?;
            let digest = strip(&entry.digest);
            let (Some(manifest), Some(plugin)) = (pinned.get(digest), self.host.cached(digest))
            else {
                return Err(format!(
                    "the bundle's lockfile pins `{uses}` to sha256:{digest}, which the bundle does not carry"
                ));
            };
            let r = PluginRef {
                uses: uses.to_string(),
                name: entry.name.clone(),
                version: entry.version.clone(),
                digest: digest.to_string(),
                file: None,
            };
            return Ok((r, plugin, manifest.clone()));
        }
        if uses.starts_with(MODELS_SCHEME) {
            // Not locked: the alias says which version; the run records its digests.
            let version = self.registered(uses)?;
            let runner = version.runner.ok_or_else(|| {
                format!(
                    "version {} of `{}` names no model runner",
                    version.version, version.model
                )
            })?;
            let plugin = self.load_ref(&runner).map_err(|e| format!("{e:#}"))?;
            return Ok((
                PluginRef {
                    uses: uses.to_string(),
                    ..runner
                },
                plugin,
                None,
            ));
        }
        let is_file = uses.contains('/') || uses.ends_with(".wasm");
        if is_file {
            let Some(base) = files else {
                return Err(
                    "a workflow sent to the server uses registry plugins only (`name@requirement`)"
                        .into(),
                );
            };
            let path = base.join(uses);
            let bytes = std::fs::read(&path)
                .map_err(|e| format!("cannot read plugin file {}: {e}", path.display()))?;
            let digest = sha256_hex(&bytes);
            let name = path
                .file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or("plugin")
                .replace('_', "-");
            let plugin = self
                .host
                .load_bytes(&name, &bytes, None)
                .map_err(|e| e.to_string())?;
            let r = PluginRef {
                uses: uses.to_string(),
                name,
                version: None,
                digest,
                file: Some(std::path::absolute(&path).unwrap_or(path)),
            };
            record_entry(lock, &r);
            return Ok((r, plugin, None));
        }
        let (name, req) = parse_spec(uses)?;
        let registry = (self.registry)().map_err(|e| format!("{e:#}"))?;
        let locked = lock
            .get(uses)
            .filter(|_| !self.update)
            .and_then(|e| Some((e.version.clone()?, e.digest.clone())))
            .filter(|(v, _)| semver::Version::parse(v).is_ok_and(|v| req.matches(&v)));
        let record = match &locked {
            Some((version, _)) => {
                let exact =
                    semver::VersionReq::parse(&format!("={version}")).map_err(|e| e.to_string())?;
                registry.resolve(name, &exact).map_err(|e| {
                    format!("the lockfile pins {name}@{version}, which this registry lacks ({e}); run with --update to re-resolve")
                })?
            }
            None => registry.resolve(name, &req).map_err(|e| e.to_string())?,
        };
        if let Some((version, digest)) = &locked
            && strip(digest) != record.digest
        {
            return Err(format!(
                "the lockfile pins {name}@{version} at {digest}, but this registry's {name}@{version} is sha256:{}",
                record.digest
            ));
        }
        let bytes = registry.fetch(&record).map_err(|e| e.to_string())?;
        let plugin = self
            .host
            .load_bytes(&record.spec(), &bytes, None)
            .map_err(|e| e.to_string())?;
        let r = PluginRef {
            uses: uses.to_string(),
            name: record.name.clone(),
            version: Some(record.version.clone()),
            digest: record.digest.clone(),
            file: None,
        };
        record_entry(lock, &r);
        Ok((r, plugin, Some(record.manifest)))
    }
}

fn strip(digest: &str) -> &str {
    digest.strip_prefix("sha256:").unwrap_or(digest)
}

fn record_entry(lock: &mut Lockfile, r: &PluginRef) {
    let entry = LockEntry {
        uses: r.uses.clone(),
        name: r.name.clone(),
        version: r.version.clone(),
        digest: format!("sha256:{}", r.digest),
    };
    match lock.plugins.iter_mut().find(|e| e.uses == r.uses) {
        Some(e) => *e = entry,
        None => lock.plugins.push(entry),
    }
}

/// A port's kind as far as validation knows it; `None` is unknown (anything goes).
type Kind = Option<ValueKind>;

fn kind_name(k: Kind) -> &'static str {
    k.map_or("any", crate::value::value_kind_name)
}

fn compatible(from: Kind, to: Kind) -> bool {
    match (from, to) {
        (None | Some(ValueKind::Any), _) | (_, None | Some(ValueKind::Any)) => true,
        (Some(a), Some(b)) => a == b,
    }
}

/// The outputs a step offers: known names and kinds, or `None` when the plugin does not
/// declare them (a model runner whose outputs depend on the model).
type Offered = Option<Vec<(String, Kind)>>;

/// The port a model runner's artifact arrives on.
pub const MODEL_PORT: &str = "model";
/// The extra output of a validator step: its checks, as JSON.
pub const REPORT_OUTPUT: &str = "report";

/// Reads, resolves and checks a workflow file.
pub fn prepare(
    path: &Path,
    resolver: &Resolver<'_>,
    deterministic: bool,
) -> Result<Prepared, PrepareError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| PrepareError::Other(anyhow::anyhow!("reading {}: {e}", path.display())))?;
    prepare_text(&text, Origin::File(path), resolver, deterministic)
}

/// Where a workflow's text came from, and so what on this machine it may reach.
#[derive(Debug, Clone, Copy)]
pub enum Origin<'a> {
    /// A file: plugin files and granted directories are found beside it, and the
    /// lockfile beside it is read.
    File(&'a Path),
    /// A request to the server: registry plugins only, no lockfile, and granted
    /// directories only inside `root` (none at all without one).
    Posted { root: Option<&'a Path> },
    /// A bundle's workflow, placed at `path` (which need not exist: relative paths and
    /// granted directories start beside it), with the bundle's lockfile.
    Bundled { path: &'a Path, lock: &'a Lockfile },
}

impl Origin<'_> {
    /// The name errors give the workflow.
    fn label(&self) -> String {
        match self {
            Origin::File(path) | Origin::Bundled { path, .. } => path.display().to_string(),
            Origin::Posted { .. } => "request".into(),
        }
    }

    /// Where relative paths start.
    fn base(&self) -> PathBuf {
        match self {
            Origin::File(path) | Origin::Bundled { path, .. } => {
                path.parent().unwrap_or(Path::new(".")).to_path_buf()
            }
            Origin::Posted { root } => root.map(Path::to_path_buf).unwrap_or_default(),
        }
    }

    /// The host directory a grant names, if this origin may have it.
    fn grant_dir(&self, base: &Path, path: &Path) -> Result<PathBuf, String> {
        let host = base.join(path);
        let Origin::Posted { root } = self else {
            return Ok(host);
        };
        let root = root.ok_or(
            "this server grants no directories to workflows sent to it (its config sets no `[workflows] root`)",
        )?;
        let inside = match (host.canonicalize(), root.canonicalize()) {
            (Ok(h), Ok(r)) => h.starts_with(r),
            _ => false,
        };
        if inside {
            Ok(host)
        } else {
            Err(format!(
                "granted directory `{}` is not a directory inside the server's workflow root",
                path.display()
            ))
        }
    }
}

/// Why a workflow could not be prepared.
#[derive(Debug, thiserror::Error)]
pub enum PrepareError {
    #[error("{0}")]
    Invalid(Diagnostics),
    #[error(transparent)]
    Other(anyhow::Error),
}

/// As [`prepare`], for text already read (`path` names the file and anchors relative paths).
pub fn prepare_text(
    text: &str,
    origin: Origin<'_>,
    resolver: &Resolver<'_>,
    deterministic: bool,
) -> Result<Prepared, PrepareError> {
    let label = origin.label();
    let spec = WorkflowSpec::parse(text, &label).map_err(PrepareError::Invalid)?;
    let base = origin.base();
    let mut lock = match origin {
        Origin::File(path) => {
            Lockfile::read(&Lockfile::path_for(path)).map_err(PrepareError::Other)?
        }
        Origin::Bundled { lock, .. } => lock.clone(),
        Origin::Posted { .. } => Lockfile::default(),
    };
    let before = lock.clone();
    let files = matches!(origin, Origin::File(_));
    let mut c = Collector::new(label.clone(), text);

    // Resolve and describe every plugin once per `uses`.
    let mut by_uses: HashMap<String, Option<Resolved>> = HashMap::new();
    let mut resolve = |uses: &Spanned<String>, step: Option<&str>, c: &mut Collector<'_>| {
        if !by_uses.contains_key(&uses.value) {
            let got = resolver
                .resolve(&uses.value, files.then_some(base.as_path()), &mut lock)
                .and_then(|(plugin_ref, plugin, manifest)| {
                    let descriptor = plugin
                        .describe(&CallOptions::default())
                        .map_err(|e| format!("describe() failed: {e}"))?;
                    Ok(Resolved {
                        plugin_ref,
                        plugin,
                        manifest,
                        descriptor,
                    })
                });
            let got = match got {
                Ok(r) => Some(r),
                Err(e) => {
                    c.error(loc(uses), step, format!("`{}`: {e}", uses.value));
                    None
                }
            };
            by_uses.insert(uses.value.clone(), got);
        }
        by_uses.get(&uses.value).and_then(Option::as_ref).map(|r| {
            (
                r.plugin_ref.clone(),
                r.plugin.clone(),
                r.manifest.clone(),
                r.descriptor.clone(),
            )
        })
    };

    let ids: HashSet<&str> = spec.steps.keys().map(|k| k.value.as_str()).collect();
    struct Draft {
        step: PlanStep,
        plugin: Option<Arc<Plugin>>,
        descriptor: Option<Descriptor>,
        loc: Option<Loc>,
    }
    let mut drafts: Vec<Draft> = Vec::new();
    let mut stage_plugins: HashMap<String, Arc<Plugin>> = HashMap::new();
    for (key, s) in &spec.steps {
        let id = key.value.as_str();
        let step_loc = loc(key);
        if !valid_id(id) {
            c.error(
                step_loc,
                Some(id),
                "step ids are letters, digits, `-` and `_`",
            );
        }
        let resolved = resolve(&s.uses, Some(id), &mut c);
        let role = resolved.as_ref().map(|r| r.1.role());
        if role == Some(Role::Tracker) {
            c.error(
                loc(&s.uses),
                Some(id),
                format!(
                    "`{}` is a tracker plugin; a step uses a step, validator or model-runner plugin",
                    s.uses.value
                ),
            );
        }
        let config = check_config(&mut c, id, s, resolved.as_ref().map(|r| &r.3));
        let grants = check_grants(
            &mut c,
            id,
            s,
            (&origin, &base),
            resolved.as_ref().map(|r| &r.2),
        );
        let (memory, timeout) = check_limits(&mut c, id, s);
        let backoff = match &s.backoff {
            Some(b) => spec::duration(&b.value).unwrap_or_else(|e| {
                c.error(loc(b), Some(id), e);
                Duration::ZERO
            }),
            None => Duration::from_millis(200),
        };
        let mut inputs = Vec::new();
        for (port, from) in &s.inputs {
            match from.value.split_once('.') {
                Some((step, output)) if !step.is_empty() && !output.is_empty() => {
                    if !ids.contains(step) {
                        c.error(
                            loc(from),
                            Some(id),
                            format!(
                                "input `{}` reads `{}`, but there is no step `{step}`",
                                port.value, from.value
                            ),
                        );
                    } else if step == id {
                        c.error(
                            loc(from),
                            Some(id),
                            format!("input `{}` reads the step's own output", port.value),
                        );
                    }
                    inputs.push(Wire {
                        port: port.value.clone(),
                        step: step.to_string(),
                        output: output.to_string(),
                    });
                }
                _ => c.error(
                    loc(from),
                    Some(id),
                    format!(
                        "input `{}` must name a step's output as `step.output`, not `{}`",
                        port.value, from.value
                    ),
                ),
            }
        }
        let mut after = Vec::new();
        for a in &s.after {
            if !ids.contains(a.value.as_str()) {
                c.error(
                    loc(a),
                    Some(id),
                    format!("`after` names `{}`, which is not a step", a.value),
                );
            }
            after.push(a.value.clone());
        }
        let plugin_ref = resolved.as_ref().map(|r| r.0.clone());
        let model = if s.uses.value.starts_with(MODELS_SCHEME) && resolved.is_some() {
            let v = resolver.registered(&s.uses.value).ok();
            v.map(|v| ModelInput {
                model: v.model,
                version: v.version,
                artifact: v.artifact,
                pipeline: v.pipeline,
            })
        } else {
            None
        };
        // A registered pipeline runs whole: its stages' plugins, pinned by digest, load now.
        if let Some(p) = model.as_ref().and_then(|m| m.pipeline.as_ref()) {
            for stage in &p.stages {
                match resolver.load_ref(&stage.plugin) {
                    Ok(plugin) => {
                        stage_plugins.insert(stage.plugin.digest.clone(), plugin);
                    }
                    Err(e) => c.error(
                        loc(&s.uses),
                        Some(id),
                        format!(
                            "`{}`: its pipeline's stage `{}` ({}) cannot be loaded: {e:#}",
                            s.uses.value,
                            stage.step,
                            stage.plugin.label()
                        ),
                    ),
                }
            }
            if !s.with.is_empty() {
                c.error(
                    loc(&s.uses),
                    Some(id),
                    format!(
                        "`{}` is a registered pipeline, which runs with the config it was registered with; drop `with`",
                        s.uses.value
                    ),
                );
            }
            let raw: Vec<&str> = s
                .inputs
                .keys()
                .map(|k| k.value.as_str())
                .filter(|p| *p != MODEL_PORT)
                .collect();
            if raw.len() != 1 {
                c.error(
                    loc(&s.uses),
                    Some(id),
                    format!(
                        "`{}` is a registered pipeline, which takes one input, the raw rows (its columns: {}); this step gives it {}",
                        s.uses.value,
                        crate::serving::pipeline::describe_columns(&p.columns),
                        raw.len()
                    ),
                );
            }
        }
        if model.is_some()
            && let Some((port, _)) = s.inputs.iter().find(|(p, _)| p.value == MODEL_PORT)
        {
            c.error(
                loc(port),
                Some(id),
                format!(
                    "`{}` brings its own model; drop input `{MODEL_PORT}`",
                    s.uses.value
                ),
            );
        }
        drafts.push(Draft {
            step: PlanStep {
                id: id.to_string(),
                plugin: plugin_ref.unwrap_or_else(|| PluginRef {
                    uses: s.uses.value.clone(),
                    name: String::new(),
                    version: None,
                    digest: String::new(),
                    file: None,
                }),
                role: role.unwrap_or(Role::Step),
                config,
                inputs,
                after,
                grants,
                memory,
                timeout_ms: timeout.as_millis() as u64,
                retries: s.retries,
                backoff_ms: backoff.as_millis() as u64,
                cache: s.cache.unwrap_or(true),
                model,
            },
            plugin: resolved.as_ref().map(|r| r.1.clone()),
            descriptor: resolved.map(|r| r.3),
            loc: step_loc,
        });
    }

    let mut trackers = Vec::new();
    for (key, s) in &spec.trackers {
        let id = key.value.as_str();
        if !valid_id(id) {
            c.error(
                loc(key),
                Some(id),
                "tracker ids are letters, digits, `-` and `_`",
            );
        }
        if ids.contains(id) {
            c.error(loc(key), Some(id), "a tracker cannot have a step's id");
        }
        let resolved = resolve(&s.uses, Some(id), &mut c);
        if let Some(role) = resolved.as_ref().map(|r| r.1.role())
            && role != Role::Tracker
        {
            c.error(
                loc(&s.uses),
                Some(id),
                format!(
                    "`{}` is a {} plugin; a tracker uses a tracker plugin",
                    s.uses.value,
                    role.interface()
                ),
            );
        }
        if !s.inputs.is_empty() || !s.after.is_empty() {
            c.error(
                loc(key),
                Some(id),
                "a tracker takes no `inputs` or `after`: it receives every event of the run",
            );
        }
        let config = check_config(&mut c, id, s, resolved.as_ref().map(|r| &r.3));
        let grants = check_grants(
            &mut c,
            id,
            s,
            (&origin, &base),
            resolved.as_ref().map(|r| &r.2),
        );
        let (memory, timeout) = check_limits(&mut c, id, s);
        if let Some((plugin_ref, plugin, _, _)) = resolved {
            trackers.push((
                PlanStep {
                    id: id.to_string(),
                    plugin: plugin_ref,
                    role: Role::Tracker,
                    config,
                    inputs: Vec::new(),
                    after: Vec::new(),
                    grants,
                    memory,
                    timeout_ms: timeout.as_millis() as u64,
                    retries: 0,
                    backoff_ms: 0,
                    cache: false,
                    model: None,
                },
                plugin,
            ));
        }
    }

    // Order the steps; a cycle is reported once, at its first step.
    let order = topo_order(&drafts.iter().map(|d| &d.step).collect::<Vec<_>>());
    let order = match order {
        Ok(o) => o,
        Err(cycle) => {
            let first = &drafts[cycle[0]];
            let names: Vec<&str> = cycle.iter().map(|&i| drafts[i].step.id.as_str()).collect();
            c.error(
                first.loc,
                Some(&first.step.id),
                format!(
                    "the steps form a cycle: {} → {}",
                    names.join(" → "),
                    names[0]
                ),
            );
            (0..drafts.len()).collect()
        }
    };

    // Check the wiring against what each plugin declares, in dependency order so that a
    // validator's pass-through outputs are known before its readers are checked.
    let mut offered: HashMap<String, Offered> = HashMap::new();
    for &i in &order {
        let d = &drafts[i];
        let s = &spec.steps[i];
        let id = d.step.id.as_str();
        let declared_inputs: Option<Vec<(String, Kind, bool)>> =
            d.descriptor.as_ref().map(|desc| {
                let mut ports: Vec<(String, Kind, bool)> = desc
                    .inputs
                    .iter()
                    .map(|p| (p.name.clone(), Some(p.kind), p.optional))
                    .collect();
                if d.step.role == Role::ModelRunner && d.step.model.is_none() {
                    ports.push((MODEL_PORT.into(), Some(ValueKind::Bytes), false));
                }
                ports
            });
        let mut wired_kinds: Vec<(String, Kind)> = Vec::new();
        for (w, (port, from)) in d.step.inputs.iter().zip(&s.inputs) {
            let src_kind: Kind = match offered.get(&w.step) {
                Some(Some(outs)) => match outs.iter().find(|(n, _)| *n == w.output) {
                    Some((_, k)) => *k,
                    None => {
                        let names: Vec<&str> = outs.iter().map(|(n, _)| n.as_str()).collect();
                        c.error(
                            loc(from),
                            Some(id),
                            format!(
                                "input `{}` reads `{}`, but step `{}` has no output `{}` (it has: {})",
                                w.port,
                                from.value,
                                w.step,
                                w.output,
                                names.join(", ")
                            ),
                        );
                        None
                    }
                },
                _ => None,
            };
            // A runner with no declared inputs takes any port besides its model.
            let open_runner = d.step.role == Role::ModelRunner
                && d.descriptor.as_ref().is_some_and(|x| x.inputs.is_empty());
            if let Some(ports) = &declared_inputs {
                match ports.iter().find(|(n, _, _)| *n == w.port) {
                    Some((_, want, _)) if !compatible(src_kind, *want) => c.error(
                        loc(from),
                        Some(id),
                        format!(
                            "input `{}` takes a {}, but `{}` is a {}",
                            w.port,
                            kind_name(*want),
                            from.value,
                            kind_name(src_kind)
                        ),
                    ),
                    Some(_) => {}
                    None if open_runner => {}
                    None => c.error(
                        loc(port),
                        Some(id),
                        format!(
                            "`{}` has no input `{}` (its inputs: {})",
                            d.step.plugin.label(),
                            w.port,
                            ports
                                .iter()
                                .map(|(n, _, _)| n.as_str())
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    ),
                }
            }
            wired_kinds.push((w.port.clone(), src_kind));
        }
        if let Some(ports) = &declared_inputs {
            for (name, kind, optional) in ports {
                if !optional && !d.step.inputs.iter().any(|w| w.port == *name) {
                    c.error(
                        d.loc,
                        Some(id),
                        format!(
                            "missing input `{name}` ({}) that `{}` requires",
                            kind_name(*kind),
                            d.step.plugin.label()
                        ),
                    );
                }
            }
        }
        let outs: Offered = match (&d.descriptor, d.step.role) {
            (None, _) => None,
            (Some(_), Role::Validator) => {
                let mut outs = wired_kinds.clone();
                outs.push((REPORT_OUTPUT.into(), Some(ValueKind::Json)));
                Some(outs)
            }
            (Some(desc), Role::ModelRunner) if desc.outputs.is_empty() => None,
            (Some(desc), _) => Some(
                desc.outputs
                    .iter()
                    .map(|p| (p.name.clone(), Some(p.kind)))
                    .collect(),
            ),
        };
        offered.insert(id.to_string(), outs);
    }

    let by_id: HashMap<&str, &PlanStep> = drafts
        .iter()
        .map(|d| (d.step.id.as_str(), &d.step))
        .collect();
    let register = spec
        .register
        .as_ref()
        .and_then(|r| check_register(&mut c, r, &by_id, &offered, &mut resolve));
    let runner = register.as_ref().and_then(|r| {
        by_uses
            .get(&r.runner.uses)
            .and_then(Option::as_ref)
            .map(|x| x.plugin.clone())
    });
    if spec.steps.is_empty() {
        c.error(loc(&spec.name), None, "the workflow has no steps");
    }
    c.finish().map_err(PrepareError::Invalid)?;

    let mut steps = Vec::with_capacity(drafts.len());
    let mut plugins = Vec::with_capacity(drafts.len());
    let mut drafts: Vec<Option<Draft>> = drafts.into_iter().map(Some).collect();
    for i in order {
        let d = drafts[i].take().expect("each step is ordered once");
        plugins.push(d.plugin.expect("a resolved plugin, as no error was found"));
        steps.push(d.step);
    }
    let lock_changed = lock != before;
    Ok(Prepared {
        plan: Plan {
            name: spec.name.value.clone(),
            file: label,
            seed: deterministic
                .then_some(spec.seed)
                .or(spec.deterministic.then_some(spec.seed)),
            steps,
            register,
            trackers: trackers.iter().map(|(t, _)| t.clone()).collect(),
        },
        plugins: Plugins {
            steps: plugins,
            trackers: trackers.into_iter().map(|(_, p)| p).collect(),
            runner,
            stages: stage_plugins,
        },
        lock,
        lock_changed,
    })
}

fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id
            .chars()
            .all(|ch| ch.is_ascii_alphanumeric() || ch == '-' || ch == '_')
}

fn check_config(
    c: &mut Collector<'_>,
    id: &str,
    s: &StepSpec,
    descriptor: Option<&Descriptor>,
) -> Vec<(String, String)> {
    let mut config = Vec::new();
    for (k, v) in &s.with {
        match spec::config_text(&v.value) {
            Ok(text) => config.push((k.value.clone(), text)),
            Err(e) => c.error(loc(v), Some(id), format!("config `{}`: {e}", k.value)),
        }
        if let Some(d) = descriptor
            && !d.config.is_empty()
            && !d.config.iter().any(|ck| ck.name == k.value)
        {
            let known: Vec<&str> = d.config.iter().map(|ck| ck.name.as_str()).collect();
            c.error(
                loc(k),
                Some(id),
                format!(
                    "`{}` has no config key `{}` (its keys: {})",
                    d.name,
                    k.value,
                    known.join(", ")
                ),
            );
        }
    }
    if let Some(d) = descriptor {
        for ck in d.config.iter().filter(|ck| ck.required) {
            if !s.with.keys().any(|k| k.value == ck.name) {
                c.error(
                    loc(&s.uses),
                    Some(id),
                    format!(
                        "missing config `{}` that `{}` requires: {}",
                        ck.name, d.name, ck.description
                    ),
                );
            }
        }
    }
    config
}

fn check_grants(
    c: &mut Collector<'_>,
    id: &str,
    s: &StepSpec,
    (origin, base): (&Origin<'_>, &Path),
    manifest: Option<&Option<Manifest>>,
) -> Grants {
    let mut grants = Grants::default();
    let mut grant_loc = loc(&s.uses);
    if let Some(g) = &s.grants {
        grant_loc = loc(g).or(grant_loc);
        for d in &g.value.dirs {
            match DirGrant::parse(&d.value) {
                Ok(mut grant) => {
                    match origin.grant_dir(base, &grant.host) {
                        Ok(host) => grant.host = host,
                        Err(e) => {
                            // Kept, so the capability check below says nothing more.
                            c.error(loc(d), Some(id), e);
                            grants.dirs.push(grant);
                            continue;
                        }
                    }
                    if !grant.host.is_dir() {
                        c.error(
                            loc(d),
                            Some(id),
                            format!(
                                "granted directory `{}` does not exist ({})",
                                grant.guest,
                                grant.host.display()
                            ),
                        );
                    }
                    grants.dirs.push(grant);
                }
                Err(e) => c.error(loc(d), Some(id), format!("{e:#}")),
            }
        }
        grants.env = g
            .value
            .env
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
    }
    // A registry plugin's manifest says what it needs; the step must grant that, and no more.
    if let Some(Some(m)) = manifest {
        let wants = m.capabilities.filesystem.as_deref().unwrap_or("none");
        let any = !grants.dirs.is_empty();
        let writes = grants.dirs.iter().any(|d| d.writable);
        let name = &m.plugin.name;
        match wants {
            "read" | "read-write" if !any => c.error(
                grant_loc,
                Some(id),
                format!(
                    "`{name}` asks for filesystem access ({wants}), which this step does not grant: add `grants: {{dirs: [PATH]}}`"
                ),
            ),
            "read" if writes => c.error(
                grant_loc,
                Some(id),
                format!("`{name}` asks to read files only, but the step grants a directory read-write"),
            ),
            "none" if any => c.error(
                grant_loc,
                Some(id),
                format!("`{name}` asks for no filesystem access, but the step grants directories"),
            ),
            _ => {}
        }
    }
    grants
}

fn check_limits(c: &mut Collector<'_>, id: &str, s: &StepSpec) -> (u64, Duration) {
    let defaults = crate::engine::Limits::default();
    let (mut memory, mut timeout) = (defaults.memory, defaults.timeout);
    if let Some(l) = &s.limits {
        if let Some(m) = &l.value.memory {
            match spec::size(&m.value) {
                Ok(v) if v > 0 && v <= 4 << 30 => memory = v,
                Ok(_) => c.error(loc(m), Some(id), "memory must be above 0 and at most 4GiB"),
                Err(e) => c.error(loc(m), Some(id), e),
            }
        }
        if let Some(t) = &l.value.timeout {
            match spec::duration(&t.value) {
                Ok(v) if !v.is_zero() => timeout = v,
                Ok(_) => c.error(loc(t), Some(id), "timeout must be above 0"),
                Err(e) => c.error(loc(t), Some(id), e),
            }
        }
    }
    (memory, timeout)
}

type ResolveFn<'r> = dyn FnMut(
        &Spanned<String>,
        Option<&str>,
        &mut Collector<'_>,
    ) -> Option<(PluginRef, Arc<Plugin>, Option<Manifest>, Descriptor)>
    + 'r;

fn check_register(
    c: &mut Collector<'_>,
    r: &Spanned<super::spec::RegisterSpec>,
    steps: &HashMap<&str, &PlanStep>,
    offered: &HashMap<String, Offered>,
    resolve: &mut ResolveFn<'_>,
) -> Option<RegisterPlan> {
    let spec = &r.value;
    let mut ok = true;
    if spec.model.value.is_empty() || spec.model.value.contains(['/', '@', ' ']) {
        c.error(
            loc(&spec.model),
            None,
            "register.model must be a name without `/`, `@` or spaces",
        );
        ok = false;
    }
    let serve = check_serve(c, r, steps, offered);
    ok &= serve.is_some();
    let serve = serve.unwrap_or_default();
    // With `serve`, the artifact is what the runner step loads.
    let runner_step = serve.last().and_then(|s| steps.get(s.step.as_str()));
    let served_model = runner_step.and_then(|s| s.inputs.iter().find(|w| w.port == MODEL_PORT));
    let (step, output) = match (&spec.from, served_model) {
        (None, Some(w)) => (w.step.clone(), w.output.clone()),
        (None, None) => {
            if serve.is_empty() && ok {
                c.error(
                    loc(r),
                    None,
                    "register needs `serve` (the steps a request goes through, ending in the model runner) or `from` and `runner`",
                );
            }
            return None;
        }
        (Some(from), served) => {
            let Some((s, o)) = from
                .value
                .split_once('.')
                .filter(|(s, _)| steps.contains_key(s))
            else {
                c.error(
                    loc(from),
                    None,
                    format!(
                        "register.from must name a step's output as `step.output`, not `{}`",
                        from.value
                    ),
                );
                return None;
            };
            if let Some(Some(outs)) = offered.get(s) {
                match outs.iter().find(|(n, _)| n == o) {
                    Some((_, k)) if !compatible(*k, Some(ValueKind::Bytes)) => {
                        c.error(
                            loc(from),
                            None,
                            format!(
                                "register.from `{}` is a {}; a model artifact is bytes",
                                from.value,
                                kind_name(*k)
                            ),
                        );
                        ok = false;
                    }
                    Some(_) => {}
                    None => {
                        c.error(
                            loc(from),
                            None,
                            format!("register.from: step `{s}` has no output `{o}`"),
                        );
                        ok = false;
                    }
                }
            }
            if let Some(w) = served
                && (w.step != s || w.output != o)
            {
                c.error(
                    loc(from),
                    None,
                    format!(
                        "register.from is `{}`, but the serving runner `{}` loads `{}.{}`; leave `from` out with `serve`",
                        from.value,
                        runner_step.map_or("", |s| s.id.as_str()),
                        w.step,
                        w.output
                    ),
                );
                ok = false;
            }
            (s.to_string(), o.to_string())
        }
    };
    let runner = match (&spec.runner, runner_step) {
        (Some(uses), served) => {
            let runner = resolve(uses, None, c);
            if let Some((r, plugin, _, _)) = &runner {
                if plugin.role() != Role::ModelRunner {
                    c.error(
                        loc(uses),
                        None,
                        format!(
                            "register.runner `{}` is a {} plugin, not a model-runner",
                            uses.value,
                            plugin.role()
                        ),
                    );
                    ok = false;
                } else if let Some(s) = served
                    && s.plugin.digest != r.digest
                {
                    c.error(
                        loc(uses),
                        None,
                        format!(
                            "register.runner `{}` is not the plugin of the serving runner `{}` ({}); leave `runner` out with `serve`",
                            uses.value,
                            s.id,
                            s.plugin.label()
                        ),
                    );
                    ok = false;
                }
            }
            runner.map(|r| r.0)
        }
        (None, Some(s)) => Some(s.plugin.clone()),
        (None, None) => {
            c.error(
                loc(r),
                None,
                "register.runner names the model-runner plugin that serves the model (or use `serve`)",
            );
            None
        }
    };
    if let Some(w) = &spec.when {
        match Condition::parse(&w.value) {
            Ok(cond) => {
                for cmp in &cond.0 {
                    if !steps.contains_key(cmp.step.as_str()) {
                        c.error(
                            loc(w),
                            None,
                            format!(
                                "register.when reads metrics of `{}`, which is not a step",
                                cmp.step
                            ),
                        );
                        ok = false;
                    }
                }
            }
            Err(e) => {
                c.error(loc(w), None, format!("register.when: {e}"));
                ok = false;
            }
        }
    }
    let runner = runner?;
    ok.then(|| RegisterPlan {
        model: spec.model.value.clone(),
        step,
        output,
        runner,
        when: spec.when.as_ref().map(|w| w.value.clone()),
        alias: spec.alias.as_ref().map(|a| a.value.clone()),
        serve,
    })
}

/// Whether a value of this kind is data (rows a request would bring) rather than a fitted
/// value: tables and tensors, and whatever Kiln cannot tell apart.
fn is_data(k: Kind) -> bool {
    !matches!(
        k,
        Some(ValueKind::Json | ValueKind::Bytes | ValueKind::Scalar | ValueKind::Text)
    )
}

/// Checks `register.serve`: step plugins ending in a model runner, each reading the one
/// before it, the first reading the one raw input (a table from outside the pipeline), and
/// every other input they read from outside a fitted value (JSON, bytes, a scalar or text:
/// what training made), never data. `None` when something is wrong (each reported).
fn check_serve(
    c: &mut Collector<'_>,
    r: &Spanned<super::spec::RegisterSpec>,
    steps: &HashMap<&str, &PlanStep>,
    offered: &HashMap<String, Offered>,
) -> Option<Vec<ServeStage>> {
    let list = &r.value.serve;
    let mut ok = true;
    let mut chosen: Vec<(&Spanned<String>, &PlanStep)> = Vec::new();
    for (k, s) in list.iter().enumerate() {
        let Some(step) = steps.get(s.value.as_str()) else {
            c.error(
                loc(s),
                None,
                format!("register.serve: `{}` is not a step", s.value),
            );
            ok = false;
            continue;
        };
        if chosen.iter().any(|(_, x)| x.id == step.id) {
            c.error(
                loc(s),
                None,
                format!("register.serve names `{}` twice", s.value),
            );
            ok = false;
            continue;
        }
        let last = k + 1 == list.len();
        let role_ok = if last {
            step.role == Role::ModelRunner
        } else {
            step.role == Role::Step
        };
        if !role_ok {
            let why = if last {
                "the last serving step is the model runner that makes the prediction"
            } else {
                "the steps before the runner are step plugins (a model runner ends the pipeline)"
            };
            c.error(
                loc(s),
                Some(&step.id),
                format!(
                    "register.serve: `{}` runs a {} plugin; {why}",
                    step.id, step.role
                ),
            );
            ok = false;
        }
        if step.model.is_some() {
            c.error(
                loc(s),
                Some(&step.id),
                format!(
                    "register.serve: `{}` predicts with a registered model (`{}`); serve the model this workflow trains",
                    step.id, step.plugin.uses
                ),
            );
            ok = false;
        }
        if !step.grants.dirs.is_empty() || !step.grants.env.is_empty() {
            c.error(
                loc(s),
                Some(&step.id),
                format!(
                    "register.serve: `{}` is granted directories or environment variables; a serving step gets neither (a request brings all it reads)",
                    step.id
                ),
            );
            ok = false;
        }
        chosen.push((s, step));
    }
    if !ok {
        return None;
    }
    let kind_of = |w: &Wire| -> Kind {
        match offered.get(&w.step) {
            Some(Some(outs)) => outs
                .iter()
                .find(|(n, _)| *n == w.output)
                .and_then(|(_, k)| *k),
            _ => None,
        }
    };
    let ids: Vec<&str> = chosen.iter().map(|(_, s)| s.id.as_str()).collect();
    let mut stages: Vec<ServeStage> = Vec::with_capacity(chosen.len());
    for (k, (at, step)) in chosen.iter().enumerate() {
        let (at, id) = (loc(at), step.id.as_str());
        let prev = k.checked_sub(1).map(|p| ids[p]);
        let mut flow: Option<&Wire> = None;
        for w in &step.inputs {
            if step.role == Role::ModelRunner && w.port == MODEL_PORT {
                if ids.contains(&w.step.as_str()) {
                    c.error(
                        at,
                        Some(id),
                        format!(
                            "register.serve: the runner's model comes from `{}`, a serving step; it must be the model training made",
                            w.step
                        ),
                    );
                    ok = false;
                }
                continue;
            }
            let kind = kind_of(w);
            let from = format!("{}.{}", w.step, w.output);
            if Some(w.step.as_str()) == prev {
                if let Some(f) = flow {
                    c.error(
                        at,
                        Some(id),
                        format!(
                            "register.serve: `{id}` reads two outputs of `{}` (`{}` and `{}`); rows go from stage to stage through one",
                            w.step, f.output, w.output
                        ),
                    );
                    ok = false;
                }
                flow = Some(w);
            } else if ids.contains(&w.step.as_str()) {
                c.error(
                    at,
                    Some(id),
                    format!(
                        "register.serve: `{id}` reads `{from}`, but the stage before it is `{}`: each serving step reads the one before it",
                        prev.unwrap_or("none")
                    ),
                );
                ok = false;
            } else if k == 0 && is_data(kind) {
                if let Some(f) = flow {
                    c.error(
                        at,
                        Some(id),
                        format!(
                            "register.serve: `{id}` reads data from two steps outside the pipeline (`{}.{}` and `{from}`); a pipeline has one raw input",
                            f.step, f.output
                        ),
                    );
                    ok = false;
                }
                flow = Some(w);
            } else if is_data(kind) {
                c.error(
                    at,
                    Some(id),
                    format!(
                        "register.serve: `{id}` reads `{from}` ({}) at `{}`; only the first serving step reads data, and the others' inputs from outside the pipeline must be fitted values (JSON, bytes, a scalar or text), since a request brings nothing else",
                        kind_name(kind),
                        w.port
                    ),
                );
                ok = false;
            }
        }
        match flow {
            None if k == 0 => {
                c.error(
                    at,
                    Some(id),
                    format!(
                        "register.serve: `{id}` reads no table from outside the pipeline; the first serving step reads the raw rows a request brings"
                    ),
                );
                ok = false;
            }
            None => {
                c.error(
                    at,
                    Some(id),
                    format!(
                        "register.serve: `{id}` does not read `{}`: each serving step reads the one before it",
                        prev.unwrap_or_default()
                    ),
                );
                ok = false;
            }
            Some(w) => {
                let kind = kind_of(w);
                if k == 0 && kind.is_some_and(|k| k != ValueKind::Table && k != ValueKind::Any) {
                    c.error(
                        at,
                        Some(id),
                        format!(
                            "register.serve: the raw input `{}.{}` is a {}; a pipeline's raw input is a table",
                            w.step,
                            w.output,
                            kind_name(kind)
                        ),
                    );
                    ok = false;
                }
                if let Some(before) = stages.last_mut() {
                    before.output = w.output.clone();
                }
                stages.push(ServeStage {
                    step: id.to_string(),
                    input: w.port.clone(),
                    output: String::new(),
                });
            }
        }
    }
    ok.then_some(stages)
}

/// Orders steps so each comes after those it reads (ties in file order), or returns the
/// indices of a cycle.
pub fn topo_order(steps: &[&PlanStep]) -> Result<Vec<usize>, Vec<usize>> {
    let index: HashMap<&str, usize> = steps
        .iter()
        .enumerate()
        .map(|(i, s)| (s.id.as_str(), i))
        .collect();
    let deps: Vec<Vec<usize>> = steps
        .iter()
        .map(|s| {
            let mut d: Vec<usize> = s.upstream().filter_map(|u| index.get(u).copied()).collect();
            d.sort_unstable();
            d.dedup();
            d
        })
        .collect();
    let mut indegree: Vec<usize> = deps.iter().map(Vec::len).collect();
    let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); steps.len()];
    for (i, d) in deps.iter().enumerate() {
        for &u in d {
            dependents[u].push(i);
        }
    }
    let mut ready: std::collections::BTreeSet<usize> =
        (0..steps.len()).filter(|&i| indegree[i] == 0).collect();
    let mut order = Vec::with_capacity(steps.len());
    while let Some(i) = ready.pop_first() {
        order.push(i);
        for &j in &dependents[i] {
            indegree[j] -= 1;
            if indegree[j] == 0 {
                ready.insert(j);
            }
        }
    }
    if order.len() == steps.len() {
        return Ok(order);
    }
    // Walk back through unfinished dependencies from an unfinished step until one repeats.
    let start = (0..steps.len()).find(|&i| indegree[i] > 0).unwrap_or(0);
    let mut path = vec![start];
    let mut at = start;
    loop {
        let Some(&next) = deps[at].iter().find(|&&u| indegree[u] > 0) else {
            return Err(path);
        };
        if let Some(pos) = path.iter().position(|&p| p == next) {
            let mut cycle: Vec<usize> = path[pos..].to_vec();
            cycle.reverse();
            let first = cycle
                .iter()
                .enumerate()
                .min_by_key(|(_, i)| **i)
                .map_or(0, |(k, _)| k);
            cycle.rotate_left(first);
            return Err(cycle);
        }
        path.push(next);
        at = next;
    }
}
