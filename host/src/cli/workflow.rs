//! `kiln run`, `kiln validate`, `kiln replay` and `kiln demo`.

use std::{
    collections::HashMap,
    io::IsTerminal as _,
    path::{Path, PathBuf},
    process::ExitCode,
    sync::{Arc, Mutex},
};

use anyhow::{Context as _, Result, bail};
use clap::Args;
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

use super::{
    Ctx, emit, emit_json,
    remote::{self, Remote, seg},
};
use crate::{
    tracking::{RunRecord, Status, Store},
    workflow::{
        Diagnostics, Event, ExecOptions, PrepareError, Prepared, Resolver, execute, plan::Plan,
        prepare,
    },
};

#[derive(Debug, Args)]
pub struct RunArgs {
    /// The workflow file (YAML).
    workflow: PathBuf,
    /// The most steps to run at once (default: the number of CPUs).
    #[arg(long, short = 'j')]
    jobs: Option<usize>,
    /// Run every step, ignoring cached outputs.
    #[arg(long)]
    no_cache: bool,
    /// Fix each step's random source (seeded from the workflow's `seed`) and clocks.
    #[arg(long)]
    deterministic: bool,
    /// Refuse to run if the lockfile is missing a plugin or would change.
    #[arg(long, conflicts_with = "update")]
    locked: bool,
    /// Resolve every plugin afresh, ignoring the lockfile's choices.
    #[arg(long)]
    update: bool,
    /// Print the run record as JSON at the end instead of the table.
    #[arg(long)]
    json: bool,
}

impl Ctx {
    /// The tracking store in the data directory. Runs left `running` by a process that
    /// stopped before they finished are marked interrupted first, and said so.
    pub(crate) fn store(&self) -> Result<Arc<Store>> {
        let store = Store::open(&self.data_dir)?;
        store
            .clean_uploads()
            .context("removing the uploads a stopped process left")?;
        let interrupted = store.recover_interrupted()?;
        if !interrupted.is_empty() {
            eprintln!(
                "kiln: {} interrupted: {} (the process running it stopped before it finished)",
                if interrupted.len() == 1 {
                    "one run was".to_string()
                } else {
                    format!("{} runs were", interrupted.len())
                },
                interrupted.join(", ")
            );
        }
        Ok(Arc::new(store))
    }
}

/// `kiln validate`: checks a workflow without running it.
pub fn validate(ctx: &Ctx, workflow: &Path, json: bool) -> Result<ExitCode> {
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
    match prepare(workflow, &resolver, false) {
        Ok(p) => {
            if json {
                emit_json(&p.plan)?;
            } else {
                emit(&format!(
                    "{}: workflow `{}` is valid: {} steps\n",
                    workflow.display(),
                    p.plan.name,
                    p.plan.steps.len()
                ))?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => report_invalid(e, json),
    }
}

pub(super) fn report_invalid(e: PrepareError, json: bool) -> Result<ExitCode> {
    match e {
        PrepareError::Invalid(d) => {
            if json {
                emit_json(&d)?;
            } else {
                eprintln!("{d}");
                eprintln!("kiln: {}", d.summary());
            }
            Ok(ExitCode::from(2))
        }
        PrepareError::Other(e) => Err(e),
    }
}

/// `kiln run`.
pub fn run(ctx: &Ctx, args: RunArgs) -> Result<ExitCode> {
    if let Some((base, token)) = &ctx.server {
        return run_on_server(&Remote::new(base.clone(), token.clone()), &args);
    }
    let host = ctx.plugin_host()?;
    let registry = || ctx.registry();
    let prepared = {
        // Closed before the run opens it again (one handle per process).
        let store = ctx.store()?;
        let resolver = Resolver {
            host: &host,
            registry: &registry,
            update: args.update,
            models: Some(&store),
            bundle: None,
        };
        prepare(&args.workflow, &resolver, args.deterministic)
    };
    let prepared = match prepared {
        Ok(p) => p,
        Err(e) => return report_invalid(e, args.json),
    };
    save_lock(&args.workflow, &prepared, args.locked)?;
    if !args.update {
        note_held_back(ctx, &args.workflow, &prepared.lock);
    }
    run_and_report(ctx, prepared, args.jobs, !args.no_cache, args.json)
}

/// `kiln run --server URL`: the workflow is sent to the server (`POST /v1/runs`) and runs
/// there as any workflow posted to it does (registry plugins only, directories inside its
/// `[workflows] root`, its data directory); its events are followed as a local run's
/// progress is, and its record is printed the same way. Ctrl-C cancels it there.
fn run_on_server(remote: &Remote, args: &RunArgs) -> Result<ExitCode> {
    if args.locked || args.update {
        bail!(
            "--locked and --update act on this machine's lockfile; a run on a server resolves its plugins in the server's registry, without one"
        );
    }
    let text = std::fs::read_to_string(&args.workflow)
        .with_context(|| format!("reading {}", args.workflow.display()))?;
    let mut query = Vec::new();
    if args.deterministic {
        query.push("deterministic=true".to_string());
    }
    if args.no_cache {
        query.push("no_cache=true".to_string());
    }
    if let Some(jobs) = args.jobs {
        query.push(format!("jobs={jobs}"));
    }
    let path = match query.is_empty() {
        true => "/v1/runs".to_string(),
        false => format!("/v1/runs?{}", query.join("&")),
    };
    let body = Some(("application/yaml", text.clone().into_bytes()));
    let (status, mut answer) = remote.send("POST", &path, body)?;
    if status == 422 && answer["diagnostics"].is_array() {
        // The server's diagnostics, pointed at this file.
        let mut d: Diagnostics = serde_json::from_value(answer["diagnostics"].take())
            .context("the server's diagnostics cannot be read")?;
        for diagnostic in &mut d.0 {
            diagnostic.file = args.workflow.display().to_string();
            diagnostic.source_line = diagnostic
                .loc
                .and_then(|l| text.lines().nth(l.line.saturating_sub(1) as usize))
                .map(str::to_string);
        }
        return report_invalid(PrepareError::Invalid(d), args.json);
    }
    let id: String = remote::accepted(status, &answer)
        .and_then(|()| {
            answer["run"]
                .as_str()
                .context("the server's answer names no run")
        })?
        .to_string();
    let progress = Progress::new(HashMap::new(), args.json);
    let cancel = {
        let (remote, id) = (remote.clone(), id.clone());
        move || {
            eprintln!("kiln: interrupted; cancelling the run on the server");
            let cancelled = remote.send("POST", &format!("/v1/runs/{}/cancel", seg(&id)), None);
            if let Err(e) = cancelled {
                eprintln!("kiln: cancelling: {e:#}");
            }
        }
    };
    ctrlc_once(cancel);
    remote.events(&format!("/v1/runs/{}/events", seg(&id)), |name, doc| {
        match remote_event(name, &doc) {
            Some(e) => progress.event(&e),
            None => return name != "end",
        }
        true
    })?;
    progress.clear();
    let run: RunRecord = remote.call("GET", &format!("/v1/runs/{}", seg(&id)), None)?;
    if args.json {
        emit_json(&run)?;
    } else {
        emit(&summary(&run))?;
    }
    Ok(exit_for(&run))
}

/// Calls `f` (once) when the user presses Ctrl-C, instead of the process ending there.
fn ctrlc_once(f: impl FnOnce() + Send + 'static) {
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build();
        if let Ok(runtime) = runtime
            && runtime.block_on(tokio::signal::ctrl_c()).is_ok()
        {
            f();
        }
    });
}

/// A run's event as the server sends it (`GET /v1/runs/{id}/events`), as the executor
/// told it; `None` for `end` and anything unknown.
fn remote_event(name: &str, doc: &serde_json::Value) -> Option<Event> {
    let text = |k: &str| doc[k].as_str().map(str::to_string);
    Some(match name {
        "begun" => Event::Begun { run: text("run")? },
        "started" => Event::Started {
            step: text("step")?,
        },
        "retrying" => Event::Retrying {
            step: text("step")?,
            attempt: doc["attempt"].as_u64()? as u32,
            error: text("error").unwrap_or_default(),
            wait: std::time::Duration::from_millis(doc["wait_ms"].as_u64().unwrap_or(0)),
        },
        "finished" => Event::Finished {
            step: text("step")?,
            status: serde_json::from_value(doc["status"].clone()).ok()?,
            elapsed_ms: doc["elapsed_ms"].as_f64().unwrap_or(0.0),
            error: text("error"),
        },
        _ => return None,
    })
}

/// Executes a prepared workflow with live progress and prints its record.
pub(super) fn run_and_report(
    ctx: &Ctx,
    prepared: Prepared,
    jobs: Option<usize>,
    use_cache: bool,
    json: bool,
) -> Result<ExitCode> {
    let opts = ExecOptions {
        jobs: jobs.unwrap_or(ExecOptions::default().jobs),
        use_cache,
        ..ExecOptions::default()
    };
    let run = run_prepared(ctx, prepared.plan, prepared.plugins, opts, json)?;
    if json {
        emit_json(&run)?;
    } else {
        emit(&summary(&run))?;
    }
    Ok(exit_for(&run))
}

fn exit_for(run: &RunRecord) -> ExitCode {
    if run.status == Status::Succeeded {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// Says on stderr which plugins the lockfile keeps at an older version than the registry
/// has for the same requirement, and how to move to it.
fn note_held_back(ctx: &Ctx, workflow: &Path, lock: &crate::workflow::lock::Lockfile) {
    let Ok(registry) = ctx.registry() else {
        return;
    };
    let held = lock.held_back(&registry);
    if held.is_empty() {
        return;
    }
    let path = crate::workflow::lock::Lockfile::path_for(workflow);
    for (entry, newest) in &held {
        eprintln!(
            "kiln: {} pins {}@{}; the registry has {newest}, which `{}` also matches",
            path.display(),
            entry.name,
            entry.version.as_deref().unwrap_or("?"),
            entry.uses
        );
    }
    eprintln!(
        "kiln: `kiln run --update {}` moves to the newest (and rewrites the lockfile)",
        workflow.display()
    );
}

fn save_lock(workflow: &Path, prepared: &Prepared, locked: bool) -> Result<()> {
    let path = crate::workflow::lock::Lockfile::path_for(workflow);
    if !prepared.lock_changed {
        return Ok(());
    }
    if locked {
        bail!(
            "{} is missing plugins or would change (--locked); run without --locked to update it",
            path.display()
        );
    }
    prepared.lock.write(&path)
}

/// Executes a plan with live progress on stderr.
fn run_prepared(
    ctx: &Ctx,
    plan: Plan,
    plugins: crate::workflow::Plugins,
    opts: ExecOptions,
    quiet: bool,
) -> Result<RunRecord> {
    let store = ctx.store()?;
    let progress = Arc::new(Progress::of(&plan, quiet));
    let on_event = {
        let progress = progress.clone();
        Arc::new(move |e: &Event| progress.event(e))
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the workflow runtime")?;
    let cancel = opts.cancel.clone();
    let run = runtime.block_on(async move {
        let interrupt = tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                eprintln!("kiln: interrupted; stopping the run");
                cancel.store(true, std::sync::atomic::Ordering::Relaxed);
            }
        });
        let run = execute(Arc::new(plan), plugins, store, opts, on_event).await;
        interrupt.abort();
        run
    })?;
    progress.clear();
    Ok(run)
}

/// Live progress: a spinner per running step on a terminal, one line per event otherwise.
struct Progress {
    bars: Option<MultiProgress>,
    running: Mutex<HashMap<String, ProgressBar>>,
    labels: HashMap<String, String>,
    quiet: bool,
}

impl Progress {
    /// Progress of steps whose plugins `labels` names by step id.
    fn new(labels: HashMap<String, String>, quiet: bool) -> Progress {
        let tty = std::io::stderr().is_terminal() && !quiet;
        Progress {
            bars: tty.then(MultiProgress::new),
            running: Mutex::new(HashMap::new()),
            labels,
            quiet,
        }
    }

    /// Progress of a plan's steps.
    fn of(plan: &Plan, quiet: bool) -> Progress {
        let labels = plan
            .steps
            .iter()
            .map(|s| (s.id.clone(), s.plugin.label()))
            .collect();
        Progress::new(labels, quiet)
    }

    fn line(&self, text: String) {
        if self.quiet {
            return;
        }
        match &self.bars {
            Some(m) => {
                let _ = m.println(text);
            }
            None => eprintln!("{text}"),
        }
    }

    fn event(&self, e: &Event) {
        let mut running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        match e {
            Event::Begun { run } => self.line(format!("run {run}")),
            Event::Started { step } => {
                if let Some(m) = &self.bars {
                    let bar = m.add(ProgressBar::new_spinner());
                    bar.set_style(
                        ProgressStyle::with_template("  {spinner} {msg} {elapsed}")
                            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
                    );
                    bar.set_message(match self.labels.get(step) {
                        Some(label) => format!("{step} ({label})"),
                        None => step.clone(),
                    });
                    bar.enable_steady_tick(std::time::Duration::from_millis(100));
                    running.insert(step.clone(), bar);
                }
            }
            Event::Retrying {
                step,
                attempt,
                error,
                wait,
            } => self.line(format!(
                "  ↻ {step}: attempt {attempt} failed ({}); retrying in {}",
                first_line(error),
                humantime::format_duration(*wait)
            )),
            Event::Finished {
                step,
                status,
                elapsed_ms,
                error,
            } => {
                if let Some(bar) = running.remove(step) {
                    bar.finish_and_clear();
                }
                let mark = match status {
                    Status::Succeeded => "✓",
                    Status::Cached => "●",
                    Status::Failed => "✗",
                    _ => "-",
                };
                let detail = match (status, error) {
                    (Status::Cached, _) => "cached".to_string(),
                    (Status::Succeeded, _) => format_ms(*elapsed_ms),
                    (_, Some(e)) => first_line(e).to_string(),
                    _ => String::new(),
                };
                self.line(format!("  {mark} {step:<16} {detail}"));
            }
        }
    }

    fn clear(&self) {
        if let Some(m) = &self.bars {
            let _ = m.clear();
        }
    }
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or(s)
}

pub(super) fn format_ms(ms: f64) -> String {
    if ms >= 1000.0 {
        format!("{:.2} s", ms / 1000.0)
    } else {
        format!("{ms:.1} ms")
    }
}

/// The end-of-run table, metrics and what was registered.
fn summary(run: &RunRecord) -> String {
    let mut o = String::new();
    let w_step = run
        .steps
        .iter()
        .map(|s| s.id.len())
        .max()
        .unwrap_or(4)
        .max(4);
    let w_plugin = run
        .steps
        .iter()
        .map(|s| s.plugin.label().len())
        .max()
        .unwrap_or(6)
        .max(6);
    out!(
        o,
        "\n{:<w_step$}  {:<w_plugin$}  {:<7}  {:>9}  outputs",
        "step",
        "plugin",
        "status",
        "time"
    );
    for s in &run.steps {
        let time = match s.status {
            Status::Succeeded => format_ms(s.elapsed_ms),
            _ => "-".into(),
        };
        let outputs: Vec<String> = s
            .outputs
            .iter()
            .map(|o| format!("{} {}", o.name, &o.digest[..o.digest.len().min(12)]))
            .collect();
        out!(
            o,
            "{:<w_step$}  {:<w_plugin$}  {:<7}  {:>9}  {}",
            s.id,
            s.plugin.label(),
            s.status.name(),
            time,
            outputs.join(", ")
        );
    }
    let metrics: Vec<String> = run
        .steps
        .iter()
        .flat_map(|s| {
            s.metrics
                .iter()
                .map(move |m| format!("{}.{} = {:.6}", s.id, m.key, m.value))
        })
        .collect();
    if !metrics.is_empty() {
        out!(o, "\nmetrics\n  {}", metrics.join("\n  "));
    }
    let failed: Vec<&crate::tracking::StepRecord> = run
        .steps
        .iter()
        .filter(|s| s.status == Status::Failed)
        .collect();
    for s in &failed {
        out!(
            o,
            "\nstep `{}` failed after {} attempt{}:\n  {}",
            s.id,
            s.attempts,
            if s.attempts == 1 { "" } else { "s" },
            s.error.as_deref().unwrap_or("").replace('\n', "\n  ")
        );
    }
    if !run.trackers.is_empty() {
        out!(o, "\ntrackers");
        for t in &run.trackers {
            match &t.error {
                None => out!(
                    o,
                    "  {} ({}): {} events in {} batches",
                    t.id,
                    t.plugin.label(),
                    t.events,
                    t.batches
                ),
                Some(e) => out!(
                    o,
                    "  {} ({}) FAILED after {} batches: {}",
                    t.id,
                    t.plugin.label(),
                    t.batches,
                    first_line(e)
                ),
            }
        }
    }
    if let Some(note) = &run.register_note {
        out!(o, "\n{note}");
    }
    let ran = run
        .steps
        .iter()
        .filter(|s| s.status == Status::Succeeded)
        .count();
    let cached = run
        .steps
        .iter()
        .filter(|s| s.status == Status::Cached)
        .count();
    let elapsed = run
        .ended_ms
        .map(|e| e.saturating_sub(run.started_ms))
        .unwrap_or(0);
    out!(
        o,
        "\nrun {} {}: {ran} ran, {cached} cached, {} failed, {} skipped in {}",
        run.id,
        match run.status {
            Status::Succeeded => "succeeded",
            Status::Cancelled => "CANCELLED",
            _ => "FAILED",
        },
        failed.len(),
        run.steps
            .iter()
            .filter(|s| s.status == Status::Skipped)
            .count(),
        format_ms(elapsed as f64)
    );
    o
}

/// `kiln replay`: re-executes a recorded run, without the cache, and compares every
/// output digest with the record.
pub fn replay(ctx: &Ctx, id: &str, jobs: Option<usize>, json: bool) -> Result<ExitCode> {
    let store = ctx.store()?;
    let original = store.run(id)?;
    let host = ctx.plugin_host()?;
    let registry = || ctx.registry();
    let resolver = Resolver {
        host: &host,
        registry: &registry,
        update: false,
        models: Some(&store),
        bundle: None,
    };
    let mut plugins = crate::workflow::Plugins::default();
    for s in &original.plan.steps {
        plugins.steps.push(
            resolver
                .load_ref(&s.plugin)
                .with_context(|| format!("step `{}`", s.id))?,
        );
    }
    for t in &original.plan.trackers {
        plugins.trackers.push(
            resolver
                .load_ref(&t.plugin)
                .with_context(|| format!("tracker `{}`", t.id))?,
        );
    }
    let mut plan = original.plan.clone();
    // Registration is not repeated by a replay.
    plan.register = None;
    let opts = ExecOptions {
        jobs: jobs.unwrap_or(ExecOptions::default().jobs),
        use_cache: false,
        replay_of: Some(original.id.clone()),
        ..ExecOptions::default()
    };
    let replayed = run_prepared(ctx, plan, plugins, opts, json)?;
    let mut same = true;
    let mut rows = Vec::new();
    for (a, b) in original.steps.iter().zip(&replayed.steps) {
        let mut diffs = Vec::new();
        for o in &a.outputs {
            match b.outputs.iter().find(|x| x.name == o.name) {
                Some(x) if x.digest == o.digest => {}
                Some(x) => diffs.push(format!(
                    "{}: {} → {}",
                    o.name,
                    short(&o.digest),
                    short(&x.digest)
                )),
                None => diffs.push(format!("{}: not produced", o.name)),
            }
        }
        let verdict = if !a.status.done() {
            "not compared (did not finish in the recorded run)".to_string()
        } else if !b.status.done() {
            format!(
                "FAILED: {}",
                first_line(b.error.as_deref().unwrap_or("did not finish"))
            )
        } else if diffs.is_empty() {
            format!("match ({} outputs)", a.outputs.len())
        } else {
            format!("DIFFERS: {}", diffs.join(", "))
        };
        if a.status.done() && (!b.status.done() || !diffs.is_empty()) {
            same = false;
        }
        rows.push((a.id.clone(), verdict));
    }
    if json {
        let doc = serde_json::json!({
            "run": original.id,
            "replay": replayed.id,
            "reproduced": same,
            "steps": rows.iter().map(|(s, v)| serde_json::json!({"step": s, "result": v})).collect::<Vec<_>>(),
        });
        emit_json(&doc)?;
    } else {
        let mut o = String::new();
        let w = rows.iter().map(|(s, _)| s.len()).max().unwrap_or(4);
        out!(o, "replay {} of run {}", replayed.id, original.id);
        for (s, v) in &rows {
            out!(o, "  {s:<w$}  {v}");
        }
        out!(
            o,
            "{}",
            if same {
                "every output digest matches: the run is reproduced"
            } else {
                "the replay differs from the recorded run"
            }
        );
        emit(&o)?;
    }
    Ok(if same {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

pub(super) fn short(digest: &str) -> &str {
    &digest[..digest.len().min(12)]
}

/// The quickstart, compiled into the binary so `kiln demo` works from anywhere.
const DEMO_WORKFLOW: &str = include_str!("../../../examples/quickstart.yaml");
const DEMO_DATA: &str = include_str!("../../../examples/data/diabetes.csv");
const DEMO_NOTE: &str = include_str!("../../../examples/data/README.md");

/// `kiln demo`: writes the quickstart into the data directory and runs it.
pub fn demo(ctx: &Ctx, jobs: Option<usize>) -> Result<ExitCode> {
    let dir = ctx.data_dir.join("demo");
    std::fs::create_dir_all(dir.join("data"))
        .with_context(|| format!("creating {}", dir.display()))?;
    for (name, text) in [
        ("quickstart.yaml", DEMO_WORKFLOW),
        ("data/diabetes.csv", DEMO_DATA),
        ("data/README.md", DEMO_NOTE),
    ] {
        let path = dir.join(name);
        if std::fs::read_to_string(&path).ok().as_deref() != Some(text) {
            std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
        }
    }
    let workflow = dir.join("quickstart.yaml");
    eprintln!(
        "kiln demo: the quickstart workflow is {}",
        workflow.display()
    );
    let code = run(
        ctx,
        RunArgs {
            workflow: workflow.clone(),
            jobs,
            no_cache: false,
            deterministic: false,
            locked: false,
            update: false,
            json: false,
        },
    )?;
    let store = ctx.store()?;
    let last = store.runs()?.into_iter().next_back();
    if let Some(r) = last {
        let mut o = String::new();
        out!(o, "\nwhere to look next:");
        out!(
            o,
            "  kiln runs show {}        the run's lineage: digests in and out of every step",
            short(&r.id)
        );
        if let Some(reg) = &r.registered {
            out!(
                o,
                "  kiln model show {}   the registered model (version {})",
                reg.model,
                reg.version
            );
        }
        out!(
            o,
            "  kiln replay {}           re-execute the run and check every output digest",
            short(&r.id)
        );
        out!(
            o,
            "  kiln run {}  again: every step comes from the cache",
            workflow.display()
        );
        out!(o, "  {}  the workflow, annotated", workflow.display());
        emit(&o)?;
    }
    Ok(code)
}
