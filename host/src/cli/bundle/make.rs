//! Making bundles: `kiln bundle model` and `kiln bundle workflow`. Both compile every plugin
//! for the device's target with the device's engine settings, so this needs the compiler.

use std::{
    path::{Path, PathBuf},
    process::ExitCode,
};

use anyhow::{Context, Result, bail};
use serde_json::json;

use super::{HOST_TARGET, device_engine};
use crate::{
    bindings::Value,
    bundle::{Builder, FORMAT, FileEntry, Manifest, ModelEntry, PluginEntry, WorkflowEntry},
    cli::{Ctx, emit, emit_json},
    digest::sha256_hex,
    engine::{KilnEngine, engine_key},
    registry::manifest::Manifest as PluginManifest,
    serving::{DEFAULT_ALIAS, Reference, version_number},
    tracking::Store,
    workflow::{PrepareError, Resolver, lock::Lockfile, plan::PluginRef, prepare},
};

/// What every bundle is made with.
#[derive(Debug, clap::Args)]
pub struct MakeArgs {
    /// The target to compile for: a triple (x86_64-unknown-linux-gnu,
    /// aarch64-unknown-linux-gnu, ...) or pulley64/pulley32, wasmtime's interpreter.
    #[arg(long, default_value = HOST_TARGET)]
    target: String,
    /// The bundle file to write.
    #[arg(long, short = 'o')]
    out: PathBuf,
    /// The signing key's name (`kiln key generate --name NAME`).
    #[arg(long, default_value = "default")]
    key: String,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

/// A bundle being filled: files, and the plugins compiled for the target.
struct Making<'a> {
    args: &'a MakeArgs,
    /// Loaded first: a missing key is said before anything compiles.
    key: ed25519_dalek::SigningKey,
    files: Builder,
    plugins: Vec<PluginEntry>,
    compiler: KilnEngine,
    /// What the bundle is for: a model, or a workflow.
    model: Option<ModelEntry>,
    workflow: Option<WorkflowEntry>,
}

impl<'a> Making<'a> {
    fn new(ctx: &Ctx, args: &'a MakeArgs) -> Result<Making<'a>> {
        Ok(Making {
            key: signing_key(ctx, &args.key)?,
            args,
            files: Builder::new(),
            plugins: Vec::new(),
            compiler: device_engine(&args.target)?,
            model: None,
            workflow: None,
        })
    }

    fn add(&mut self, path: String, bytes: Vec<u8>) -> FileEntry {
        self.files.add(path, bytes)
    }

    /// Compiles the plugin `r` names (once per component) for the target.
    fn plugin(
        &mut self,
        resolver: &Resolver<'_>,
        r: &PluginRef,
        manifest: Option<PluginManifest>,
    ) -> Result<()> {
        if self.plugins.iter().any(|p| p.component == r.digest) {
            return Ok(());
        }
        let component = resolver.component(r)?;
        let code = self
            .compiler
            .engine()
            .precompile_component(&component)
            .map_err(anyhow::Error::from)
            .with_context(|| format!("compiling `{}` for {}", r.label(), self.args.target))?;
        let file = match &r.version {
            Some(v) => format!("plugins/{}-{v}.cwasm", r.name),
            None => format!("plugins/{}-{}.cwasm", r.name, &r.digest[..12]),
        };
        let code = self.files.add(file, code);
        self.plugins.push(PluginEntry {
            name: r.name.clone(),
            version: r.version.clone(),
            component: r.digest.clone(),
            component_size: component.len() as u64,
            code,
            manifest,
        });
        Ok(())
    }

    /// Signs and writes the bundle; reports what it holds.
    fn finish(self, what: String) -> Result<ExitCode> {
        let MakeArgs {
            target, out, json, ..
        } = self.args;
        let manifest = Manifest {
            format: FORMAT,
            target: target.clone(),
            engine: engine_key(self.compiler.engine()),
            model: self.model,
            workflow: self.workflow,
            plugins: self.plugins,
        };
        let seal = self.files.write(&manifest, &self.key, out)?;
        let size = std::fs::metadata(out)?.len();
        if *json {
            emit_json(&json!({
                "file": out,
                "bytes": size,
                "manifest": manifest,
                "key": seal.key,
            }))?;
        } else {
            emit(&format!(
                "bundled {what} for {target}: {} ({size} bytes), signed by key {}\n",
                out.display(),
                seal.key
            ))?;
        }
        Ok(ExitCode::SUCCESS)
    }
}

fn signing_key(ctx: &Ctx, name: &str) -> Result<ed25519_dalek::SigningKey> {
    let path = ctx.key_path(name);
    if !path.exists() {
        bail!("no signing key `{name}`: make one with `kiln key generate --name {name}`");
    }
    Ok(crate::registry::sign::load(&path)?)
}

/// `kiln bundle model NAME[@ALIAS|/VERSION]`: the version's artifact and its runner.
pub(super) fn model(ctx: &Ctx, model: &str, args: &MakeArgs) -> Result<ExitCode> {
    let mut making = Making::new(ctx, args)?;
    let store = Store::open(&ctx.data_dir)?;
    let (name, reference) = Reference::split(model).map_err(anyhow::Error::msg)?;
    let version =
        version_number(&store, name, &reference, DEFAULT_ALIAS).map_err(anyhow::Error::msg)?;
    let record = store.model_version(name, version)?;
    let runner = record.runner.as_ref().with_context(|| {
        format!(
            "version {version} of `{name}` names no model runner, so there is nothing to serve it"
        )
    })?;
    let artifact = match store.value(&record.artifact) {
        Ok(Value::Bytes(b)) => b,
        _ => bail!("version {version} of `{name}` has no artifact bytes in the store"),
    };
    let host = ctx.plugin_host()?;
    let registry = ctx.registry()?;
    let resolver = Resolver {
        host: &host,
        registry: &|| Ok(registry.clone()),
        update: false,
        models: None,
        bundle: None,
    };
    making.plugin(&resolver, runner, None)?;
    // A pipeline travels whole: its stages' code and their fitted values.
    let mut fitted = Vec::new();
    if let Some(p) = &record.pipeline {
        for stage in &p.stages {
            making.plugin(&resolver, &stage.plugin, None)?;
        }
        for f in p.stages.iter().chain([&p.runner]).flat_map(|s| &s.fitted) {
            if !fitted.iter().any(|e: &FileEntry| e.sha256 == f.digest) {
                let bytes = store.object(&f.digest).with_context(|| {
                    format!("version {version} of `{name}`: fitted value {}", f.from)
                })?;
                fitted.push(making.add(format!("fitted/{}", f.digest), bytes));
            }
        }
    }
    let artifact = making.add(format!("model/{}", sha256_hex(&artifact)), artifact);
    let entry = ModelEntry {
        name: name.to_string(),
        version,
        alias: match &reference {
            Reference::Alias(a) => Some(a.clone()),
            _ => None,
        },
        runner: runner.name.clone(),
        artifact,
        pipeline: record.pipeline.clone(),
        fitted,
    };
    let what = match &record.pipeline {
        Some(p) => format!(
            "`{name}` version {version}, its pipeline {} with {}",
            p.stages
                .iter()
                .map(|s| s.plugin.label())
                .collect::<Vec<_>>()
                .join(" → "),
            runner.label()
        ),
        None => format!("`{name}` version {version} with {}", runner.label()),
    };
    making.model = Some(entry);
    making.finish(what)
}

/// `kiln bundle workflow FILE`: the workflow, its lockfile and every plugin it uses.
pub(super) fn workflow(ctx: &Ctx, path: &Path, args: &MakeArgs) -> Result<ExitCode> {
    let mut making = Making::new(ctx, args)?;
    let host = ctx.plugin_host()?;
    let registry = || ctx.registry();
    let store = ctx.store()?;
    let resolver = Resolver {
        host: &host,
        registry: &registry,
        update: false,
        models: Some(&store),
        bundle: None,
    };
    let prepared = match prepare(path, &resolver, false) {
        Ok(p) => p,
        Err(PrepareError::Invalid(d)) => bail!("{d}"),
        Err(PrepareError::Other(e)) => return Err(e),
    };
    let plan = &prepared.plan;
    if let Some(step) = plan.steps.iter().find(|s| s.model.is_some()) {
        bail!(
            "step `{}` uses a registered model (`{}`): bundle the model itself with `kiln bundle model`",
            step.id,
            step.plugin.uses
        );
    }
    let refs = plan
        .steps
        .iter()
        .chain(&plan.trackers)
        .map(|s| &s.plugin)
        .chain(plan.register.iter().map(|r| &r.runner));
    for r in refs {
        let manifest = match &r.version {
            Some(v) => Some(
                registry()?
                    .resolve(&r.name, &semver::VersionReq::parse(&format!("={v}"))?)?
                    .manifest,
            ),
            None => None,
        };
        making.plugin(&resolver, r, manifest)?;
    }
    let lock = Lockfile {
        version: prepared.lock.version,
        plugins: prepared
            .lock
            .plugins
            .iter()
            .filter(|e| {
                let digest = e.digest.strip_prefix("sha256:").unwrap_or(&e.digest);
                making.plugins.iter().any(|p| p.component == digest)
            })
            .cloned()
            .collect(),
    };
    let text = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let file = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "workflow.yaml".into());
    let spec = making.add(format!("workflow/{file}"), text);
    let what = format!(
        "workflow `{}` with {} plugins",
        plan.name,
        making.plugins.len()
    );
    making.workflow = Some(WorkflowEntry { file, spec, lock });
    making.finish(what)
}
