//! `kiln runs` and `kiln model`: workflow runs and their lineage, registered models and
//! their aliases, read from the local data directory or, with `--server`, from a Kiln
//! server's /v1 API (the same records either way).

use std::process::ExitCode;

use anyhow::{Context as _, Result};
use clap::Subcommand;
use serde::de::DeserializeOwned;
use serde_json::{Value as J, json};

use super::{
    Ctx, emit, emit_json,
    remote::{Remote, seg},
    workflow::{format_ms, short},
};
use crate::tracking::{
    ModelRecord, ModelVersion, RunRecord, RunSummary, Store, models::AliasEvent,
};

#[derive(Debug, Subcommand)]
pub enum RunsCommand {
    /// List runs, newest last.
    List {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Show a run's lineage: per step, plugin digest, config, input and output digests.
    Show {
        /// The run id, or a unique start of it.
        id: String,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Print one output of a run as a value document (JSON): `kiln runs get ID step.output`.
    Get {
        id: String,
        /// `step.output`.
        output: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum ModelCommand {
    /// List registered models.
    List {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Show a model's versions and aliases.
    Show {
        name: String,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Move, remove, trace and roll back a model's aliases.
    #[command(subcommand)]
    Alias(AliasCommand),
    /// Register a model file made elsewhere (ONNX) as a new version, served by onnx-runner.
    Import(super::model::ImportArgs),
    /// Predict with a registered version, in the sandbox (or natively with --native).
    Predict(super::model::PredictArgs),
    /// Serve one model as `mlflow models serve` does (`POST /invocations`, `/ping`,
    /// `/health`, `/version`), besides Kiln's own routes: NAME (the `production` alias,
    /// else the latest version), NAME@ALIAS or NAME/VERSION.
    Serve {
        model: String,
        #[command(flatten)]
        serve: super::serve::ServeArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum AliasCommand {
    /// Point ALIAS of MODEL at VERSION.
    Set {
        model: String,
        alias: String,
        version: u64,
    },
    /// Remove an alias.
    Delete { model: String, alias: String },
    /// Every change of the model's aliases (or of one), oldest first.
    History {
        model: String,
        alias: Option<String>,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Point ALIAS back at the version it pointed at before its last change.
    Rollback { model: String, alias: String },
}

/// Where the records come from.
enum Source {
    Local(Store),
    Remote(Remote),
}

fn field<T: DeserializeOwned>(doc: &mut J, name: &str) -> Result<T> {
    serde_json::from_value(doc[name].take())
        .with_context(|| format!("the server's answer has no valid `{name}`"))
}

impl Source {
    fn open(ctx: &Ctx) -> Result<Source> {
        Ok(match &ctx.server {
            Some((base, token)) => Source::Remote(Remote::new(base.clone(), token.clone())),
            None => Source::Local(Store::open(&ctx.data_dir)?),
        })
    }

    fn runs(&self) -> Result<Vec<RunSummary>> {
        match self {
            Source::Local(s) => Ok(s.runs()?.iter().map(RunSummary::from).collect()),
            Source::Remote(r) => field(&mut r.call("GET", "/v1/runs", None)?, "runs"),
        }
    }

    fn run(&self, id: &str) -> Result<RunRecord> {
        match self {
            Source::Local(s) => Ok(s.run(id)?),
            Source::Remote(r) => r.call("GET", &format!("/v1/runs/{}", seg(id)), None),
        }
    }

    /// One output of a run, as a value document.
    fn output(&self, id: &str, step: &str, name: &str) -> Result<J> {
        match self {
            Source::Local(s) => Ok(crate::value::to_json(&s.run_output(id, step, name)?)),
            Source::Remote(r) => r.call(
                "GET",
                &format!("/v1/runs/{}/outputs/{}/{}", seg(id), seg(step), seg(name)),
                None,
            ),
        }
    }

    fn models(&self) -> Result<Vec<ModelRecord>> {
        match self {
            Source::Local(s) => Ok(s.models()?),
            Source::Remote(r) => field(&mut r.call("GET", "/v1/models", None)?, "models"),
        }
    }

    fn model(&self, name: &str) -> Result<(ModelRecord, Vec<ModelVersion>)> {
        match self {
            Source::Local(s) => Ok(s.model(name)?),
            Source::Remote(r) => {
                let mut doc: J = r.call("GET", &format!("/v1/models/{}", seg(name)), None)?;
                Ok((field(&mut doc, "model")?, field(&mut doc, "versions")?))
            }
        }
    }

    fn set_alias(&self, model: &str, alias: &str, version: u64) -> Result<Option<u64>> {
        match self {
            Source::Local(s) => Ok(s.set_alias(model, alias, version)?),
            Source::Remote(r) => field(
                &mut r.call(
                    "PUT",
                    &format!("/v1/models/{}/aliases/{}", seg(model), seg(alias)),
                    Some(json!({ "version": version })),
                )?,
                "previous",
            ),
        }
    }

    fn delete_alias(&self, model: &str, alias: &str) -> Result<()> {
        match self {
            Source::Local(s) => Ok(s.delete_alias(model, alias)?),
            Source::Remote(r) => r
                .call::<J>(
                    "DELETE",
                    &format!("/v1/models/{}/aliases/{}", seg(model), seg(alias)),
                    None,
                )
                .map(drop),
        }
    }

    fn alias_history(&self, model: &str, alias: Option<&str>) -> Result<Vec<AliasEvent>> {
        match self {
            Source::Local(s) => Ok(s.alias_history(model, alias)?),
            Source::Remote(r) => {
                let query = alias
                    .map(|a| format!("?alias={}", seg(a)))
                    .unwrap_or_default();
                let path = format!("/v1/models/{}/alias-history{query}", seg(model));
                field(&mut r.call("GET", &path, None)?, "events")
            }
        }
    }

    fn rollback_alias(&self, model: &str, alias: &str) -> Result<u64> {
        match self {
            Source::Local(s) => Ok(s.rollback_alias(model, alias)?),
            Source::Remote(r) => field(
                &mut r.call(
                    "POST",
                    &format!("/v1/models/{}/aliases/{}/rollback", seg(model), seg(alias)),
                    None,
                )?,
                "version",
            ),
        }
    }
}

/// `kiln runs`.
pub fn runs(ctx: &Ctx, cmd: RunsCommand) -> Result<ExitCode> {
    let source = Source::open(ctx)?;
    match cmd {
        RunsCommand::List { json } => {
            let runs = source.runs()?;
            if json {
                emit_json(&runs)?;
                return Ok(ExitCode::SUCCESS);
            }
            let mut o = String::new();
            out!(
                o,
                "{:<32}  {:<20}  {:<9}  {:<20}  {:>9}  steps",
                "id",
                "workflow",
                "status",
                "started",
                "time"
            );
            for r in &runs {
                let started = humantime::format_rfc3339_seconds(
                    std::time::UNIX_EPOCH + std::time::Duration::from_millis(r.started_ms),
                );
                let time = r.ended_ms.map_or("-".into(), |e| {
                    format_ms(e.saturating_sub(r.started_ms) as f64)
                });
                let cached = r.cached;
                out!(
                    o,
                    "{:<32}  {:<20}  {:<9}  {:<20}  {:>9}  {} ({cached} cached){}",
                    r.id,
                    r.workflow,
                    r.status.name(),
                    started,
                    time,
                    r.steps,
                    r.replay_of
                        .as_ref()
                        .map(|o| format!(", replay of {}", short(o)))
                        .unwrap_or_default()
                );
            }
            emit(&o)?;
        }
        RunsCommand::Get { id, output } => {
            let (step, name) = output
                .split_once('.')
                .with_context(|| format!("`{output}` must be step.output"))?;
            let value = source.output(&id, step, name)?;
            emit_json(&value)?;
        }
        RunsCommand::Show { id, json } => {
            let r = source.run(&id)?;
            if json {
                emit_json(&r)?;
                return Ok(ExitCode::SUCCESS);
            }
            let mut o = String::new();
            out!(
                o,
                "run {} of workflow `{}` ({})",
                r.id,
                r.workflow,
                r.plan.file
            );
            out!(o, "  status  {}", r.status.name());
            if let Some(commit) = &r.git_commit {
                out!(o, "  commit  {commit}");
            }
            if let Some(seed) = r.plan.seed {
                out!(o, "  deterministic, seed {seed}");
            }
            if let Some(of) = &r.replay_of {
                out!(o, "  replay of {of}");
            }
            for s in &r.steps {
                out!(o, "\nstep {} — {}", s.id, s.status.name());
                out!(
                    o,
                    "  plugin   {} sha256:{}",
                    s.plugin.label(),
                    s.plugin.digest
                );
                if !s.config.is_empty() {
                    let cfg: Vec<String> =
                        s.config.iter().map(|(k, v)| format!("{k}={v}")).collect();
                    out!(o, "  config   {}", cfg.join(" "));
                }
                for d in &s.datasets {
                    out!(o, "  dataset  {} sha256:{}", d.path, d.digest);
                }
                for i in &s.inputs {
                    out!(o, "  input    {} ← {} sha256:{}", i.port, i.from, i.digest);
                }
                for x in &s.outputs {
                    out!(o, "  output   {} ({}) sha256:{}", x.name, x.kind, x.digest);
                }
                for m in &s.metrics {
                    out!(o, "  metric   {} = {}", m.key, m.value);
                }
                for c in &s.checks {
                    out!(
                        o,
                        "  check    {} {} ({}) {}",
                        if c.passed { "pass" } else { "FAIL" },
                        c.name,
                        c.severity,
                        c.detail
                    );
                }
                if let Some(e) = &s.error {
                    out!(o, "  error    {}", e.replace('\n', "\n           "));
                }
            }
            if let Some(note) = &r.register_note {
                out!(o, "\n{note}");
            }
            emit(&o)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `kiln model`.
pub fn model(ctx: &Ctx, cmd: ModelCommand) -> Result<ExitCode> {
    let cmd = match cmd {
        ModelCommand::Import(args) => return super::model::import(ctx, args),
        ModelCommand::Predict(args) => return super::model::predict(ctx, args),
        ModelCommand::Serve { model, serve } => return super::model::serve(ctx, &model, serve),
        other => other,
    };
    let source = Source::open(ctx)?;
    match cmd {
        ModelCommand::List { json } => {
            let models = source.models()?;
            if json {
                emit_json(&models)?;
            } else {
                let mut o = String::new();
                for m in &models {
                    let aliases: Vec<String> = m
                        .aliases
                        .iter()
                        .map(|(a, v)| format!("@{a}→v{v}"))
                        .collect();
                    out!(o, "{}  latest v{}  {}", m.name, m.latest, aliases.join(" "));
                }
                emit(&o)?;
            }
        }
        ModelCommand::Alias(cmd) => return alias(&source, cmd),
        ModelCommand::Import(_) | ModelCommand::Predict(_) | ModelCommand::Serve { .. } => {
            unreachable!("handled above")
        }
        ModelCommand::Show { name, json } => {
            let (m, versions) = source.model(&name)?;
            if json {
                let doc = serde_json::json!({"model": m, "versions": versions});
                emit_json(&doc)?;
            } else {
                let mut o = String::new();
                out!(o, "model {}", m.name);
                for v in &versions {
                    let aliases: Vec<&str> = m
                        .aliases
                        .iter()
                        .filter(|(_, n)| **n == v.version)
                        .map(|(a, _)| a.as_str())
                        .collect();
                    out!(
                        o,
                        "  v{}{}  run {}  artifact sha256:{}  runner {}",
                        v.version,
                        if aliases.is_empty() {
                            String::new()
                        } else {
                            format!(" (@{})", aliases.join(", @"))
                        },
                        v.run,
                        short(&v.artifact),
                        v.runner
                            .as_ref()
                            .map_or_else(|| "-".to_string(), |r| r.label())
                    );
                    if let Some(sig) = &v.signature {
                        let ports = |ports: &[crate::tracking::SignaturePort]| {
                            ports
                                .iter()
                                .map(|p| format!("{} ({})", p.name, p.kind))
                                .collect::<Vec<_>>()
                                .join(", ")
                        };
                        out!(
                            o,
                            "      signature  {} → {}",
                            ports(&sig.inputs),
                            ports(&sig.outputs)
                        );
                    }
                    if let Some(p) = &v.pipeline {
                        if !p.columns.is_empty() {
                            out!(
                                o,
                                "      columns    {}",
                                crate::serving::pipeline::describe_columns(&p.columns)
                            );
                        }
                        let stages: Vec<String> = p
                            .stages
                            .iter()
                            .chain([&p.runner])
                            .map(|s| format!("{} ({})", s.step, s.plugin.label()))
                            .collect();
                        out!(o, "      pipeline   {}", stages.join(" → "));
                        for s in p.stages.iter().chain([&p.runner]) {
                            for f in &s.fitted {
                                out!(
                                    o,
                                    "      fitted     {}.{} ← {} sha256:{}",
                                    s.step,
                                    f.port,
                                    f.from,
                                    short(&f.digest)
                                );
                            }
                        }
                        out!(
                            o,
                            "      proved     on {} rows of {}: {} as the run answered",
                            p.proof.rows,
                            p.proof.from,
                            p.proof
                                .outputs
                                .iter()
                                .map(|r| format!("{} sha256:{}", r.name, short(&r.digest)))
                                .collect::<Vec<_>>()
                                .join(", ")
                        );
                    }
                    for (k, x) in &v.metrics {
                        out!(o, "      {k} = {x:.6}");
                    }
                }
                emit(&o)?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn alias(source: &Source, cmd: AliasCommand) -> Result<ExitCode> {
    match cmd {
        AliasCommand::Set {
            model,
            alias,
            version,
        } => {
            let previous = source.set_alias(&model, &alias, version)?;
            emit(&format!(
                "{model}@{alias} → version {version}{}\n",
                previous.map(|p| format!(" (was {p})")).unwrap_or_default()
            ))?;
        }
        AliasCommand::Delete { model, alias } => {
            source.delete_alias(&model, &alias)?;
            emit(&format!("{model}@{alias} removed\n"))?;
        }
        AliasCommand::History { model, alias, json } => {
            let events = source.alias_history(&model, alias.as_deref())?;
            if json {
                emit_json(&events)?;
            } else {
                let mut o = String::new();
                for e in &events {
                    let at = humantime::format_rfc3339_seconds(
                        std::time::UNIX_EPOCH + std::time::Duration::from_millis(e.at_ms),
                    );
                    let show = |v: Option<u64>| v.map_or("-".to_string(), |v| format!("v{v}"));
                    out!(
                        o,
                        "{at}  @{:<12} {} → {}",
                        e.alias,
                        show(e.previous),
                        show(e.version)
                    );
                }
                emit(&o)?;
            }
        }
        AliasCommand::Rollback { model, alias } => {
            let version = source.rollback_alias(&model, &alias)?;
            emit(&format!(
                "{model}@{alias} rolled back to version {version}\n"
            ))?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
