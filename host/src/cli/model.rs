//! `kiln model import` and `kiln model predict`: a model file made elsewhere into the
//! registry, and one prediction with a registered version, the way the server would make it.

use std::{path::PathBuf, process::ExitCode};

use anyhow::{Context as _, Result, bail};
use clap::Args;
use serde_json::json;

use super::{Ctx, emit, emit_json, plugin};
use crate::{
    bindings::NamedValue,
    engine::Limits,
    serving::{
        Backend, DEFAULT_ALIAS, Reference,
        import::{self, ImportRequest},
        version_number,
    },
    tracking::Store,
    value,
};

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The model file (ONNX).
    pub file: PathBuf,
    /// The registered model's name; the version is the next one.
    #[arg(long)]
    pub name: String,
    /// Point this alias at the new version.
    #[arg(long)]
    pub alias: Option<String>,
    /// The model-runner plugin that serves it: NAME@REQUIREMENT from the registry.
    #[arg(long, default_value = import::ONNX_RUNNER)]
    pub runner: String,
    #[arg(long, default_value = "")]
    pub description: String,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct PredictArgs {
    /// NAME (the default alias `production`, else the latest version), NAME@ALIAS or NAME/VERSION.
    pub model: String,
    /// An input: NAME=PATH to a Kiln value document (JSON) or a CSV file (a table); a PATH
    /// alone goes to the version's one input.
    #[arg(long = "input", short = 'i', value_name = "[NAME=]PATH")]
    pub inputs: Vec<String>,
    /// Run the model with its runner's native twin in this process instead of the sandbox.
    #[arg(long)]
    pub native: bool,
    /// Write each output to DIR as NAME.json value documents.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

fn local_only(ctx: &Ctx, what: &str) -> Result<()> {
    if ctx.server.is_some() {
        bail!("`kiln model {what}` works on the local data directory; drop --server");
    }
    Ok(())
}

/// `kiln model import FILE --name NAME [--alias A]`.
pub fn import(ctx: &Ctx, args: ImportArgs) -> Result<ExitCode> {
    local_only(ctx, "import")?;
    let artifact =
        std::fs::read(&args.file).with_context(|| format!("reading {}", args.file.display()))?;
    let source = args
        .file
        .file_name()
        .map(|n| format!("file:{}", n.to_string_lossy()))
        .unwrap_or_default();
    let store = Store::open(&ctx.data_dir)?;
    let host = ctx.plugin_host()?;
    let registry = ctx.registry()?;
    let imported = import::import(
        &store,
        &host,
        &registry,
        ImportRequest {
            name: args.name.clone(),
            alias: args.alias.clone(),
            runner: args.runner,
            artifact,
            source,
            description: args.description,
        },
    )?;
    let v = &imported.record;
    if args.json {
        emit_json(&json!({"new": imported.new, "version": v}))?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut o = String::new();
    if imported.new {
        out!(
            o,
            "imported {} version {}{}",
            args.name,
            imported.version,
            args.alias
                .as_ref()
                .map(|a| format!(" (@{a})"))
                .unwrap_or_default()
        );
    } else {
        out!(
            o,
            "{} version {} already holds this model; nothing new imported",
            args.name,
            imported.version
        );
    }
    if let Some(r) = &v.runner {
        out!(o, "  runner    {}", r.label());
    }
    out!(o, "  artifact  sha256:{}", v.artifact);
    if let Some(sig) = &v.signature {
        for (what, ports) in [("input", &sig.inputs), ("output", &sig.outputs)] {
            for p in ports {
                let shape = sig
                    .properties
                    .get(&format!("{what}.{}", p.name))
                    .cloned()
                    .unwrap_or_else(|| p.kind.clone());
                out!(o, "  {what:<9} {}  {shape}", p.name);
            }
        }
    }
    emit(&o)?;
    Ok(ExitCode::SUCCESS)
}

/// `kiln model predict NAME[@ALIAS|/VERSION] -i NAME=PATH`.
pub fn predict(ctx: &Ctx, args: PredictArgs) -> Result<ExitCode> {
    local_only(ctx, "predict")?;
    let store = Store::open(&ctx.data_dir)?;
    let (name, reference) = Reference::split(&args.model).map_err(anyhow::Error::msg)?;
    let version =
        version_number(&store, name, &reference, DEFAULT_ALIAS).map_err(anyhow::Error::msg)?;
    let record = store.model_version(name, version)?;
    // `-i rows.csv` (a path alone) goes to the version's one input.
    let sole = record
        .signature
        .as_ref()
        .and_then(|s| match s.inputs.as_slice() {
            [one] => Some(one.name.clone()),
            _ => None,
        });
    let specs: Vec<String> = args
        .inputs
        .iter()
        .map(|s| match (&sole, s.contains('=')) {
            (Some(input), false) => format!("{input}={s}"),
            _ => s.clone(),
        })
        .collect();
    let inputs = prediction_inputs(&specs)?;
    let backend = if args.native {
        Backend::Native
    } else {
        Backend::Wasm
    };
    let host = ctx.plugin_host()?;
    let registry = ctx.registry()?;
    let make = crate::serving::factory(
        &record,
        backend,
        Limits::default(),
        &store,
        &host,
        &registry,
    )
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut runner = make().map_err(|e| anyhow::anyhow!("{e}"))?;
    let outputs = runner
        .predict(&inputs)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    if let Some(dir) = &args.out {
        plugin::write_outputs(dir, &outputs)?;
    }
    emit_prediction(
        json!({"model": name, "version": version, "backend": backend.name()}),
        &outputs,
        args.json,
    )?;
    Ok(ExitCode::SUCCESS)
}

/// `kiln model serve NAME[@ALIAS|/VERSION]`: the server, with MLflow's scoring protocol
/// answering for that model. The version must load before the server listens.
pub fn serve(ctx: &Ctx, model: &str, args: super::serve::ServeArgs) -> Result<ExitCode> {
    local_only(ctx, "serve")?;
    {
        let store = Store::open(&ctx.data_dir)?;
        let (name, reference) = Reference::split(model).map_err(anyhow::Error::msg)?;
        version_number(&store, name, &reference, DEFAULT_ALIAS).map_err(anyhow::Error::msg)?;
    }
    super::serve::serve_model(ctx, args, model.to_string())
}

/// A prediction's `-i NAME=PATH` inputs; at least one.
pub(super) fn prediction_inputs(specs: &[String]) -> Result<Vec<NamedValue>> {
    let inputs = plugin::read_inputs(specs)?;
    anyhow::ensure!(!inputs.is_empty(), "no inputs: pass -i NAME=PATH");
    Ok(inputs)
}

/// Prints a prediction's outputs: rendered, or with `json` as the `head` document plus
/// `outputs` (name → value document).
pub(super) fn emit_prediction(
    mut head: serde_json::Value,
    outputs: &[NamedValue],
    json: bool,
) -> Result<()> {
    if json {
        head["outputs"] = outputs
            .iter()
            .map(|o| (o.name.clone(), value::to_json(&o.value)))
            .collect::<serde_json::Map<_, _>>()
            .into();
        emit_json(&head)
    } else {
        let mut o = String::new();
        for out in outputs {
            out!(o, "{}:\n{}", out.name, value::render(&out.value));
        }
        emit(&o)
    }
}
