//! `kiln bundle`: one signed file that carries a registered model and its precompiled runner,
//! or a workflow and its precompiled plugins, to a device, and the commands that check and
//! run one there (see `crate::bundle`). Making a bundle compiles, so it needs the
//! `compiler` feature (`make`); everything else runs in a runtime-only build.

#[cfg(feature = "compiler")]
mod make;

use std::{collections::HashMap, path::PathBuf, process::ExitCode, sync::Arc};

use anyhow::{Context, Result, bail};
use clap::Subcommand;
use serde_json::json;

use super::{Ctx, emit, emit_json, serve::ServeArgs};
use crate::{
    bindings::Value,
    bundle::{Bundle, HOST_TARGET, is_pulley, runs_here},
    engine::{ArtifactCache, EngineOptions, KilnEngine, compatibility_key},
    plugin::{CallOptions, Plugin, PluginHost},
    serving::{
        Runner, ServeError,
        pipeline::{PipelineRunner, Stages},
    },
    tracking::{ModelVersion, Object, Write},
    workflow::{Origin, Resolver, plan::PluginRef, prepare_text},
};

#[derive(Debug, Subcommand)]
pub enum BundleCommand {
    #[cfg(feature = "compiler")]
    /// Bundle a registered model (NAME, NAME@ALIAS or NAME/VERSION) with its runner,
    /// precompiled for the target, signed with your key.
    Model {
        model: String,
        #[command(flatten)]
        make: make::MakeArgs,
    },
    #[cfg(feature = "compiler")]
    /// Bundle a workflow with every plugin it uses (through its lockfile), precompiled for
    /// the target, signed with your key. Its steps may not use registered models.
    Workflow(WorkflowArgs),
    #[cfg(feature = "compiler")]
    /// `kiln bundle FILE.yaml ...` is `kiln bundle workflow FILE.yaml ...`.
    #[command(external_subcommand)]
    File(Vec<String>),
    /// Check a bundle's digests and signature and show what it holds and where it runs.
    Inspect {
        file: PathBuf,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Predict with a bundle's model, from its precompiled code: nothing is compiled.
    Predict {
        file: PathBuf,
        /// An input: NAME=PATH to a Kiln value document (JSON).
        #[arg(long = "input", short = 'i', value_name = "NAME=PATH")]
        inputs: Vec<String>,
        /// Predict this many times more on the same instance and report the latency of
        /// one call (median and 99th percentile), to measure the device.
        #[arg(long, default_value_t = 0)]
        repeat: u32,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Serve a bundle's model over HTTP from its precompiled code: it is registered in this
    /// data directory (once; predictions and runs are tracked here) and served as
    /// `/v1/models/NAME/...` and `/v2/models/NAME`.
    Serve {
        file: PathBuf,
        #[command(flatten)]
        serve: ServeArgs,
    },
    /// Run a bundle's workflow from its precompiled plugins, as if its file were in DIR
    /// (its data paths and granted directories are relative to that); the run is
    /// recorded in this data directory.
    Run {
        file: PathBuf,
        /// Where the workflow's relative paths start.
        #[arg(long, default_value = ".")]
        dir: PathBuf,
        /// The most steps to run at once (default: the number of CPUs).
        #[arg(long, short = 'j')]
        jobs: Option<usize>,
        /// Print the run record as JSON at the end instead of the table.
        #[arg(long)]
        json: bool,
    },
}

/// What `kiln bundle workflow` takes.
#[cfg(feature = "compiler")]
#[derive(Debug, clap::Parser)]
#[command(name = "kiln bundle workflow")]
pub struct WorkflowArgs {
    workflow: PathBuf,
    #[command(flatten)]
    make: make::MakeArgs,
}

pub fn run(ctx: &Ctx, cmd: BundleCommand) -> Result<ExitCode> {
    if ctx.server.is_some() {
        bail!("`kiln bundle` works on the local data directory; drop --server");
    }
    match cmd {
        #[cfg(feature = "compiler")]
        BundleCommand::Model { model, make } => make::model(ctx, &model, &make),
        #[cfg(feature = "compiler")]
        BundleCommand::Workflow(a) => make::workflow(ctx, &a.workflow, &a.make),
        #[cfg(feature = "compiler")]
        BundleCommand::File(args) => {
            let is_workflow = args
                .first()
                .is_some_and(|f| f.ends_with(".yaml") || f.ends_with(".yml"));
            if !is_workflow {
                bail!(
                    "`kiln bundle {}`: give a workflow file (.yaml), or a subcommand: model, workflow, inspect, predict, serve, run",
                    args.first().map_or("", String::as_str)
                );
            }
            use clap::Parser as _;
            let a = WorkflowArgs::try_parse_from(
                std::iter::once("kiln bundle".to_string()).chain(args),
            )?;
            make::workflow(ctx, &a.workflow, &a.make)
        }
        BundleCommand::Inspect { file, json } => inspect(ctx, &file, json),
        BundleCommand::Predict {
            file,
            inputs,
            repeat,
            json,
        } => predict(ctx, &file, &inputs, repeat, json),
        BundleCommand::Serve { file, serve } => serve_bundle(ctx, &file, serve),
        BundleCommand::Run {
            file,
            dir,
            jobs,
            json,
        } => run_bundle(ctx, &file, &dir, jobs, json),
    }
}

/// The engine of a device's runtime (see [`EngineOptions::device`]), for `target`.
pub(crate) fn device_engine(target: &str) -> Result<KilnEngine> {
    KilnEngine::new(&EngineOptions::device(
        (target != HOST_TARGET).then(|| target.to_string()),
    ))
}

/// Reads `file` and checks it all: digests, signature (against the keys this data
/// directory trusts), target and engine; then loads its plugins from their code, into a
/// host that has no other way to get code (nothing is compiled).
fn open(ctx: &Ctx, file: &std::path::Path) -> Result<(Bundle, PluginHost)> {
    let bundle = read_verified(ctx, file)?;
    bundle.check_target().map_err(|e| refusing(e, file))?;
    let target = &bundle.manifest.target;
    let engine = device_engine(if is_pulley(target) {
        target
    } else {
        HOST_TARGET
    })?;
    let cache = ArtifactCache::disabled(engine.engine());
    let host = PluginHost::new(engine, cache).context("setting up the plugin host")?;
    bundle
        .check_engine(compatibility_key(host.engine().engine()).as_deref())
        .map_err(|e| refusing(e, file))?;
    for p in &bundle.manifest.plugins {
        // SAFETY: the code's digest is in the manifest, whose signature verified against a
        // key this data directory trusts, and it was compiled for this target and engine
        // (wasmtime checks the engine settings again as it deserializes).
        unsafe {
            host.load_precompiled(
                &p.name,
                &p.component,
                bundle.file(&p.code),
                p.component_size as usize,
            )
        }
        .map_err(|e| refusing(e.into(), file))?;
    }
    Ok((bundle, host))
}

/// The bundle's model runner, loaded by [`open`].
fn runner(bundle: &Bundle, host: &PluginHost) -> Result<Arc<Plugin>> {
    let entry = bundle.plugin(&bundle.model()?.runner)?;
    host.cached(&entry.component)
        .with_context(|| format!("the runner `{}` was not loaded", entry.name))
}

/// The bundle's model, loaded into its runner, behind its pipeline's stages when it has
/// one (their code and fitted values from the bundle).
fn load_model(bundle: &Bundle, host: &PluginHost) -> Result<Runner> {
    let m = bundle.model()?;
    let plugin = runner(bundle, host)?;
    let name = &bundle.plugin(&m.runner)?.name;
    let config = m
        .pipeline
        .as_ref()
        .map(|p| p.runner.config.clone())
        .unwrap_or_default();
    let opts = CallOptions::default();
    let instance = plugin
        .load_model(bundle.file(&m.artifact), &config, &opts)
        .with_context(|| format!("{name} cannot load its model"))?;
    let Some(p) = &m.pipeline else {
        return Ok(Runner::Wasm(instance));
    };
    let stages = Stages::load(p, &|digest| bundle.fitted(digest), |s| {
        host.cached(&s.plugin.digest).ok_or_else(|| {
            ServeError::Unavailable(format!(
                "the bundle does not carry stage `{}` ({})",
                s.step,
                s.plugin.label()
            ))
        })
    })
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    let pipeline = PipelineRunner::new(Arc::new(stages), Runner::Wasm(instance), &opts)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(Runner::Pipeline(Box::new(pipeline)))
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
        if let Some(model) = &m.model {
            out!(
                o,
                "  model    {} version {}{} ({} bytes)",
                model.name,
                model.version,
                model
                    .alias
                    .as_ref()
                    .map_or(String::new(), |a| format!(" @{a}")),
                model.artifact.size
            );
        }
        if let Some(w) = &m.workflow {
            out!(o, "  workflow {} ({} bytes)", w.file, w.spec.size);
        }
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

fn predict(
    ctx: &Ctx,
    file: &std::path::Path,
    specs: &[String],
    repeat: u32,
    json: bool,
) -> Result<ExitCode> {
    let (bundle, host) = open(ctx, file)?;
    let m = bundle.model()?;
    let plugin = runner(&bundle, &host)?;
    let inputs = super::model::prediction_inputs(specs)?;
    let mut instance = load_model(&bundle, &host)?;
    let mut predict = |inputs: &[crate::bindings::NamedValue]| {
        instance.predict(inputs).map_err(|e| anyhow::anyhow!("{e}"))
    };
    let outputs = predict(&inputs)?;
    let mut head = json!({
        "model": m.name,
        "version": m.version,
        "compiled": plugin.cache_outcome() != crate::engine::CacheOutcome::Hit,
    });
    if repeat > 0 {
        let mut took = Vec::with_capacity(repeat as usize);
        for _ in 0..repeat {
            let start = std::time::Instant::now();
            predict(&inputs)?;
            took.push(start.elapsed().as_nanos() as f64 / 1e3);
        }
        took.sort_by(f64::total_cmp);
        let at = |q: f64| took[((took.len() - 1) as f64 * q).round() as usize];
        head["latency_us"] = json!({ "calls": repeat, "median": at(0.5), "p99": at(0.99) });
        if !json {
            eprintln!(
                "kiln: {repeat} predictions: median {:.1} µs, p99 {:.1} µs",
                at(0.5),
                at(0.99)
            );
        }
    }
    super::model::emit_prediction(head, &outputs, json)?;
    Ok(ExitCode::SUCCESS)
}

/// Registers the bundle's model in this data directory (once: the same artifact and runner
/// are not registered twice) and serves it with the bundle's precompiled runner.
fn serve_bundle(ctx: &Ctx, file: &std::path::Path, args: ServeArgs) -> Result<ExitCode> {
    let (bundle, host) = open(ctx, file)?;
    let m = bundle.model()?;
    let entry = bundle.plugin(&m.runner)?;
    let artifact = bundle.file(&m.artifact);
    // The model (and its pipeline) must load before it is registered: a bundle whose
    // runner refuses its own model leaves the store as it was.
    let signature = load_model(&bundle, &host)?
        .metadata()
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let store = ctx.store()?;
    let object = Object::encode(&Value::Bytes(artifact.to_vec()))?;
    let digest = object.digest.clone();
    // The fitted values go in with the artifact, under the digests the pipeline names.
    let mut writes = vec![Write::Object(object)];
    for f in &m.fitted {
        writes.push(Write::Object(Object {
            digest: f.sha256.clone(),
            bytes: Arc::new(bundle.file(f).to_vec()),
        }));
    }
    store.apply(&writes)?;
    let version = ModelVersion {
        model: m.name.clone(),
        version: 0,
        created_ms: 0,
        run: String::new(),
        step: String::new(),
        artifact: digest,
        source: format!("bundle:{}", file.display()),
        runner: Some(PluginRef {
            uses: match &entry.version {
                Some(v) => format!("{}@={v}", entry.name),
                None => entry.name.clone(),
            },
            name: entry.name.clone(),
            version: entry.version.clone(),
            digest: entry.component.clone(),
            file: None,
        }),
        metrics: Default::default(),
        tags: [
            ("bundle.version".to_string(), m.version.to_string()),
            ("bundle.key".to_string(), bundle.seal.key.clone()),
        ]
        .into(),
        description: String::new(),
        signature: Some(signature.into()),
        pipeline: m.pipeline.clone(),
    };
    let (local, new) = store.register_model(version, m.alias.as_deref())?;
    eprintln!(
        "kiln: {} `{}` version {local}{} from {} ({})",
        if new { "registered" } else { "serving" },
        m.name,
        m.alias.as_ref().map_or(String::new(), |a| format!(" @{a}")),
        file.display(),
        if new {
            "new in this data directory"
        } else {
            "already registered here"
        }
    );
    // A device keeps a log of what it predicted, for `kiln sync`.
    super::serve::serve_with(ctx, args, Arc::new(host), true, None)
}

/// Runs the bundle's workflow with its plugins, resolved through its lockfile to the code
/// it carries; nothing else is resolved, and nothing is compiled.
fn run_bundle(
    ctx: &Ctx,
    file: &std::path::Path,
    dir: &std::path::Path,
    jobs: Option<usize>,
    json: bool,
) -> Result<ExitCode> {
    let (bundle, host) = open(ctx, file)?;
    let w = bundle.workflow()?;
    let text = std::str::from_utf8(bundle.file(&w.spec))
        .context("the bundle's workflow is not UTF-8 text")?;
    let pinned: HashMap<String, Option<crate::registry::manifest::Manifest>> = bundle
        .manifest
        .plugins
        .iter()
        .map(|p| (p.component.clone(), p.manifest.clone()))
        .collect();
    let path = std::path::absolute(dir)?.join(&w.file);
    let prepared = {
        let store = ctx.store()?;
        let registry = || ctx.registry();
        let resolver = Resolver {
            host: &host,
            registry: &registry,
            update: false,
            models: Some(&store),
            bundle: Some(&pinned),
        };
        prepare_text(
            text,
            Origin::Bundled {
                path: &path,
                lock: &w.lock,
            },
            &resolver,
            false,
        )
    };
    match prepared {
        Ok(p) => super::workflow::run_and_report(ctx, p, jobs, true, json),
        Err(e) => super::workflow::report_invalid(e, json),
    }
}
