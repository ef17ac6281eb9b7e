//! `kiln bundle`: one signed file that carries a registered model and its precompiled runner
//! to a device, and the commands that check and run one there (see `crate::bundle`).

use std::{path::PathBuf, process::ExitCode};

use anyhow::{Context, Result, bail};
use clap::Subcommand;
use serde_json::json;

use super::{Ctx, emit, emit_json};
use crate::{
    bindings::Value,
    bundle::{
        Builder, Bundle, FileEntry, HOST_TARGET, Manifest, ModelEntry, PluginEntry, is_pulley,
        runs_here,
    },
    digest::sha256_hex,
    engine::{ArtifactCache, EngineOptions, KilnEngine, engine_key},
    plugin::{CallOptions, PluginHost},
    registry::sign,
    serving::{DEFAULT_ALIAS, Reference, version_number},
    tracking::Store,
    workflow::plan::Resolver,
};

#[derive(Debug, Subcommand)]
pub enum BundleCommand {
    /// Bundle a registered model (NAME, NAME@ALIAS or NAME/VERSION) with its runner,
    /// precompiled for the target, signed with your key.
    Model {
        model: String,
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
        #[arg(long)]
        json: bool,
    },
    /// Check a bundle's digests and signature and show what it holds and where it runs.
    Inspect {
        file: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Predict with a bundle's model, from its precompiled code: nothing is compiled.
    Predict {
        file: PathBuf,
        /// An input: NAME=PATH to a Kiln value document (JSON).
        #[arg(long = "input", short = 'i', value_name = "NAME=PATH")]
        inputs: Vec<String>,
        #[arg(long)]
        json: bool,
    },
}

pub fn run(ctx: &Ctx, cmd: BundleCommand) -> Result<ExitCode> {
    if ctx.server.is_some() {
        bail!("`kiln bundle` works on the local data directory; drop --server");
    }
    match cmd {
        BundleCommand::Model {
            model,
            target,
            out,
            key,
            json,
        } => bundle_model(ctx, &model, &target, &out, &key, json),
        BundleCommand::Inspect { file, json } => inspect(ctx, &file, json),
        BundleCommand::Predict { file, inputs, json } => predict(ctx, &file, &inputs, json),
    }
}

fn bundle_model(
    ctx: &Ctx,
    model: &str,
    target: &str,
    out_path: &std::path::Path,
    key_name: &str,
    json: bool,
) -> Result<ExitCode> {
    let key_path = ctx.key_path(key_name);
    if !key_path.exists() {
        bail!("no signing key `{key_name}`: make one with `kiln key generate --name {key_name}`");
    }
    let key = sign::load(&key_path)?;
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
    let component = Resolver {
        host: &host,
        registry: &|| Ok(registry.clone()),
        update: false,
        models: None,
    }
    .component(runner)?;
    // The same engine settings as the device's runtime, for the device's target (this
    // machine's own: the host's engine).
    let compiler = if target == HOST_TARGET {
        host.engine().clone()
    } else {
        engine_for(ctx, target)?
    };
    let engine = compiler.engine();
    let code = engine
        .precompile_component(&component)
        .map_err(anyhow::Error::from)
        .with_context(|| format!("compiling `{}` for {target}", runner.label()))?;
    let mut b = Builder::new();
    let artifact = b.add(format!("model/{}", sha256_hex(&artifact)), artifact);
    let file = match &runner.version {
        Some(v) => format!("plugins/{}-{v}.cwasm", runner.name),
        None => format!("plugins/{}.cwasm", runner.name),
    };
    let code = b.add(file, code);
    let alias = match &reference {
        Reference::Alias(a) => Some(a.clone()),
        _ => None,
    };
    let manifest = Manifest {
        format: crate::bundle::FORMAT,
        target: target.to_string(),
        engine: engine_key(engine),
        model: ModelEntry {
            name: name.to_string(),
            version,
            alias,
            runner: runner.name.clone(),
            artifact,
        },
        plugins: vec![PluginEntry {
            name: runner.name.clone(),
            version: runner.version.clone(),
            component: runner.digest.clone(),
            component_size: component.len() as u64,
            code,
        }],
    };
    let seal = b.write(&manifest, &key, out_path)?;
    let size = std::fs::metadata(out_path)?.len();
    if json {
        emit_json(&json!({
            "file": out_path,
            "bytes": size,
            "manifest": manifest,
            "key": seal.key,
        }))?;
    } else {
        emit(&format!(
            "bundled `{name}` version {version} with {} for {target}: {} ({size} bytes), signed by key {}\n",
            runner.label(),
            out_path.display(),
            seal.key
        ))?;
    }
    Ok(ExitCode::SUCCESS)
}

/// An engine like the runtime's, compiling for `target`.
fn engine_for(ctx: &Ctx, target: &str) -> Result<KilnEngine> {
    let options = EngineOptions {
        target: (target != HOST_TARGET).then(|| target.to_string()),
        ..ctx.engine_options.clone()
    };
    KilnEngine::new(&options)
}

/// Reads `file` and checks it all: digests, signature (against the keys this data
/// directory trusts), target and engine; and the host that runs its code.
fn open(ctx: &Ctx, file: &std::path::Path) -> Result<(Bundle, PluginHost)> {
    let bundle = read_verified(ctx, file)?;
    let target = &bundle.manifest.target;
    let engine = if is_pulley(target) {
        engine_for(ctx, target)?
    } else {
        KilnEngine::new(&ctx.engine_options)?
    };
    // No compiled-code cache: a bundle brings its code.
    let cache = ArtifactCache::disabled(engine.engine());
    let host = PluginHost::new(engine, cache).context("setting up the plugin host")?;
    bundle
        .check_engine(&engine_key(host.engine().engine()))
        .map_err(|e| refusing(e, file))?;
    Ok((bundle, host))
}

/// Reads `file`, checking its digests and its signature against the keys this data
/// directory trusts.
fn read_verified(ctx: &Ctx, file: &std::path::Path) -> Result<Bundle> {
    let bundle = Bundle::read(file)?;
    let registry = ctx.registry()?;
    bundle
        .verify_signature(&|id| {
            registry
                .trusted_key(id)
                .ok()
                .flatten()
                .map(|record| record.public)
        })
        .map_err(|e| refusing(e, file))?;
    Ok(bundle)
}

fn refusing(e: anyhow::Error, file: &std::path::Path) -> anyhow::Error {
    e.context(format!("refusing bundle {}", file.display()))
}

fn inspect(ctx: &Ctx, file: &std::path::Path, json: bool) -> Result<ExitCode> {
    let bundle = read_verified(ctx, file)?;
    let m = &bundle.manifest;
    let here = runs_here(&m.target);
    if json {
        emit_json(&json!({
            "manifest": m,
            "key": bundle.seal.key,
            "verified": true,
            "runs_here": here,
        }))?;
    } else {
        let mut o = String::new();
        out!(
            o,
            "bundle {} (verified, signed by key {})",
            file.display(),
            bundle.seal.key
        );
        out!(
            o,
            "  target   {}{}",
            m.target,
            if here {
                ""
            } else {
                " (does not run on this machine)"
            }
        );
        out!(o, "  engine   {}", m.engine);
        out!(
            o,
            "  model    {} version {}{} ({} bytes)",
            m.model.name,
            m.model.version,
            m.model
                .alias
                .as_ref()
                .map_or(String::new(), |a| format!(" @{a}")),
            m.model.artifact.size
        );
        for p in &m.plugins {
            out!(
                o,
                "  plugin   {}{} (component sha256:{}, code {} bytes)",
                p.name,
                p.version
                    .as_ref()
                    .map_or(String::new(), |v| format!("@{v}")),
                p.component,
                p.code.size
            );
        }
        emit(&o)?;
    }
    Ok(ExitCode::SUCCESS)
}

fn predict(ctx: &Ctx, file: &std::path::Path, specs: &[String], json: bool) -> Result<ExitCode> {
    let (bundle, host) = open(ctx, file)?;
    let m = &bundle.manifest;
    let runner = bundle.plugin(&m.model.runner)?;
    let code: &FileEntry = &runner.code;
    // SAFETY: the code's digest is in the manifest, whose signature verified against a key
    // this data directory trusts, and it was compiled for this target and engine.
    let plugin = unsafe {
        host.load_precompiled(
            &runner.name,
            &runner.component,
            bundle.file(code),
            runner.component_size as usize,
        )
    }?;
    let inputs = super::model::prediction_inputs(specs)?;
    let mut instance = plugin.load_model(
        bundle.file(&m.model.artifact),
        &Vec::new(),
        &CallOptions::default(),
    )?;
    let outputs = instance.predict(&inputs)?.value;
    super::model::emit_prediction(
        json!({
            "model": m.model.name,
            "version": m.model.version,
            "compiled": plugin.cache_outcome() != crate::engine::CacheOutcome::Hit,
        }),
        &outputs,
        json,
    )?;
    Ok(ExitCode::SUCCESS)
}
