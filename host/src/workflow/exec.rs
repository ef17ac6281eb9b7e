//! Running a checked plan on tokio: independent steps in parallel (at most `jobs` at a
//! time, each on a blocking thread since a plugin call is synchronous), every step under
//! its own deadline, memory cap and retries, outputs cached by content.
//!
//! The runtime's blocking pool must not be capped at `jobs`: WASI's synchronous file
//! calls inside a plugin hand their work to that same pool and wait for it.
//!
//! A failed step fails the steps that depend on it, and the run; independent branches
//! still finish, and everything finished is kept (stored and cached).

use std::{
    collections::{BTreeMap, HashMap, VecDeque},
    path::Path,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Context, Result};
use sha2::{Digest, Sha256};

use super::{
    feed::{Feed, step_events},
    plan::{MODEL_PORT, Plan, PlanStep, Plugins, REPORT_OUTPUT},
};
use crate::{
    bindings::{
        Check, Event as TrackerEvent, Metric as TrackerMetric, NamedValue, Severity, Value,
    },
    engine::Limits,
    host_impl::{LogSink, TrackingEvent},
    plugin::{CallOptions, NamedValueRef, Plugin, Role},
    serving::{
        Runner, ServeError,
        pipeline::{PipelineRunner, Stages},
    },
    tracking::{
        CacheEntry, CheckRecord, DatasetInput, DatasetRef, InputRef, MetricRecord, Object,
        OutputRef, RunRecord, Status, StepRecord, Store, Write, Writer, experiments::RunEnd,
    },
    value,
};

/// How a plan is executed.
#[derive(Debug, Clone)]
pub struct ExecOptions {
    /// The most steps running at once.
    pub jobs: usize,
    /// Take step outputs from the cache when their key matches.
    pub use_cache: bool,
    /// Set to cancel the run: no step starts, and those running are stopped.
    pub cancel: Arc<AtomicBool>,
    /// For a replay: the run being re-executed.
    pub replay_of: Option<String>,
    /// The new run's id (default: a fresh time-ordered UUID).
    pub run_id: Option<String>,
}

impl Default for ExecOptions {
    fn default() -> Self {
        ExecOptions {
            jobs: std::thread::available_parallelism().map_or(2, |n| n.get()),
            use_cache: true,
            cancel: Arc::new(AtomicBool::new(false)),
            replay_of: None,
            run_id: None,
        }
    }
}

/// A fresh run id: a time-ordered UUID, as 32 hex digits.
pub fn new_run_id() -> String {
    uuid::Uuid::now_v7().simple().to_string()
}

/// Progress, as the executor reports it.
#[derive(Debug, Clone)]
pub enum Event {
    /// The run began; its id.
    Begun {
        run: String,
    },
    Started {
        step: String,
    },
    Retrying {
        step: String,
        attempt: u32,
        error: String,
        wait: Duration,
    },
    Finished {
        step: String,
        status: Status,
        elapsed_ms: f64,
        error: Option<String>,
    },
}

/// A finished step's outputs: name → (digest, the value while some step still needs it).
type Produced = HashMap<String, (String, Option<Arc<Value>>)>;

/// What a step's task returns.
enum Done {
    Cached(CacheEntry),
    Ran(Ran),
    Failed {
        error: String,
        attempts: u32,
        checks: Vec<CheckRecord>,
    },
}

struct Ran {
    outputs: Vec<(String, Arc<Value>, Option<Object>)>,
    checks: Vec<CheckRecord>,
    /// Each key's latest point.
    metrics: Vec<MetricRecord>,
    /// Every point logged, keyed `step.key`.
    history: Vec<(String, crate::tracking::Metric)>,
    params: Vec<(String, String)>,
    attempts: u32,
    elapsed_ms: f64,
}

/// The inputs a step's task is given: the value when it is in memory, else its digest.
struct Input {
    port: String,
    digest: String,
    value: Option<Arc<Value>>,
}

/// Runs a plan to the end; returns its run record (also stored).
pub async fn execute(
    plan: Arc<Plan>,
    plugins: Plugins,
    store: Arc<Store>,
    opts: ExecOptions,
    on_event: Arc<dyn Fn(&Event) + Send + Sync>,
) -> Result<RunRecord> {
    let n = plan.steps.len();
    let index: HashMap<&str, usize> = plan
        .steps
        .iter()
        .enumerate()
        .map(|(i, s)| (s.id.as_str(), i))
        .collect();
    let mut deps: Vec<Vec<usize>> = plan
        .steps
        .iter()
        .map(|s| s.upstream().filter_map(|u| index.get(u).copied()).collect())
        .collect();
    for d in &mut deps {
        d.sort_unstable();
        d.dedup();
    }
    let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (i, d) in deps.iter().enumerate() {
        for &u in d {
            dependents[u].push(i);
        }
    }
    let mut waiting: Vec<usize> = deps.iter().map(Vec::len).collect();
    let mut ready: VecDeque<usize> = (0..n).filter(|&i| waiting[i] == 0).collect();

    let writer = Writer::start(store.clone());
    let started_ms = crate::now_ms();
    let mut run = RunRecord {
        id: opts.run_id.clone().unwrap_or_else(new_run_id),
        workflow: plan.name.clone(),
        status: Status::Running,
        started_ms,
        ended_ms: None,
        plan: (*plan).clone(),
        steps: plan
            .steps
            .iter()
            .map(|s| StepRecord {
                id: s.id.clone(),
                plugin: s.plugin.clone(),
                config: s.config.clone(),
                status: Status::Pending,
                cache_key: None,
                inputs: Vec::new(),
                outputs: Vec::new(),
                checks: Vec::new(),
                metrics: Vec::new(),
                params: Vec::new(),
                attempts: 0,
                elapsed_ms: 0.0,
                error: None,
                datasets: Vec::new(),
            })
            .collect(),
        register_note: None,
        registered: None,
        replay_of: opts.replay_of.clone(),
        git_commit: git_commit(Path::new(&plan.file)),
        trackers: Vec::new(),
    };
    // Live from before its first record until after its last: a run this process leaves
    // unfinished is found by the next start (see `tracking::live`).
    let live = store.hold_live(&run.id)?;
    writer.send(Write::Run(Box::new(run.clone())));
    writer.send(track_start(&store, &run)?);
    // Durable before any step runs: a crash from here on leaves a run to mark interrupted.
    writer.flush()?;
    let feed = Feed::start(&run.id, &plan.trackers, &plugins.trackers)
        .context("starting the trackers' threads")?;
    feed.send(vec![TrackerEvent::RunStarted(run.workflow.clone())]);
    on_event(&Event::Begun {
        run: run.id.clone(),
    });

    // Each finished step's outputs: name → (digest, value when in memory).
    let mut produced: Vec<Produced> = vec![HashMap::new(); n];
    let mut tasks = tokio::task::JoinSet::new();
    let jobs = opts.jobs.max(1);
    let mut running = 0usize;
    loop {
        while running < jobs
            && let Some(i) = ready.pop_front()
        {
            let step = &plan.steps[i];
            if opts.cancel.load(Ordering::Relaxed) {
                finish_skipped(&mut run.steps[i], "the run was cancelled", &on_event);
                skip_dependents(i, &dependents, &mut run.steps, &plan, &on_event);
                continue;
            }
            let mut missing = None;
            let inputs: Vec<Input> = step
                .inputs
                .iter()
                .filter_map(|w| match produced[index[w.step.as_str()]].get(&w.output) {
                    Some((digest, value)) => Some(Input {
                        port: w.port.clone(),
                        digest: digest.clone(),
                        value: value.clone(),
                    }),
                    None => {
                        missing.get_or_insert_with(|| {
                            format!(
                                "input `{}`: step `{}` finished without an output `{}`",
                                w.port, w.step, w.output
                            )
                        });
                        None
                    }
                })
                .collect();
            if let Some(why) = missing {
                let rec = &mut run.steps[i];
                rec.status = Status::Failed;
                rec.error = Some(why);
                on_event(&Event::Finished {
                    step: rec.id.clone(),
                    status: Status::Failed,
                    elapsed_ms: 0.0,
                    error: rec.error.clone(),
                });
                skip_dependents(i, &dependents, &mut run.steps, &plan, &on_event);
                continue;
            }
            run.steps[i].inputs = step
                .inputs
                .iter()
                .zip(&inputs)
                .map(|(w, inp)| InputRef {
                    port: w.port.clone(),
                    from: format!("{}.{}", w.step, w.output),
                    digest: inp.digest.clone(),
                })
                .collect();
            let mut inputs = inputs;
            if let Some(m) = &step.model {
                // A registered model's artifact, read from the store when the step runs.
                inputs.push(Input {
                    port: MODEL_PORT.to_string(),
                    digest: m.artifact.clone(),
                    value: None,
                });
                run.steps[i].inputs.push(InputRef {
                    port: MODEL_PORT.to_string(),
                    from: format!("models:/{}/{}", m.model, m.version),
                    digest: m.artifact.clone(),
                });
            }
            let key = cache_key(step, &inputs, plan.seed).map(|(key, datasets)| {
                run.steps[i].datasets = datasets;
                key
            });
            run.steps[i].cache_key = key.as_ref().ok().cloned();
            run.steps[i].status = Status::Running;
            on_event(&Event::Started {
                step: step.id.clone(),
            });
            let task = StepTask {
                step: step.clone(),
                plugin: plugins.steps[i].clone(),
                stages: step
                    .model
                    .iter()
                    .flat_map(|m| m.pipeline.iter().flat_map(|p| &p.stages))
                    .filter_map(|s| plugins.stages.get(&s.plugin.digest).cloned())
                    .collect(),
                inputs,
                key,
                store: store.clone(),
                use_cache: opts.use_cache && step.cache,
                seed: plan.seed.map(|s| step_seed(s, &step.id)),
                on_event: on_event.clone(),
                cancel: opts.cancel.clone(),
            };
            running += 1;
            tasks.spawn_blocking(move || (i, task.run()));
        }
        let Some(joined) = tasks.join_next().await else {
            break;
        };
        running -= 1;
        let (i, done) = joined.context("a step's task panicked")?;
        let step = &plan.steps[i];
        let rec = &mut run.steps[i];
        // For the trackers: every point a step that ran logged.
        let mut points = None;
        match done {
            Done::Cached(entry) => {
                rec.status = Status::Cached;
                rec.outputs = entry.outputs.clone();
                rec.checks = entry.checks;
                rec.metrics = entry.metrics;
                rec.params = entry.params;
                rec.elapsed_ms = 0.0;
                for o in &entry.outputs {
                    produced[i].insert(o.name.clone(), (o.digest.clone(), None));
                }
            }
            Done::Ran(ran) => {
                if feed.active() {
                    points = Some(ran.history.iter().map(tracker_metric).collect::<Vec<_>>());
                }
                if !ran.history.is_empty() {
                    writer.send(Write::Metrics {
                        run: run.id.clone(),
                        points: ran.history,
                    });
                }
                rec.status = Status::Succeeded;
                rec.attempts = ran.attempts;
                rec.elapsed_ms = ran.elapsed_ms;
                rec.checks = ran.checks;
                rec.metrics = ran.metrics;
                rec.params = ran.params;
                rec.outputs.clear();
                for (name, v, object) in ran.outputs {
                    let (digest, size) = match &object {
                        Some(o) => (o.digest.clone(), o.bytes.len() as u64),
                        None => produced_digest(&produced, &index, step, &name),
                    };
                    rec.outputs.push(OutputRef {
                        name: name.clone(),
                        kind: value::kind_name(&v).to_string(),
                        digest: digest.clone(),
                        size,
                    });
                    if let Some(o) = object {
                        writer.send(Write::Object(o));
                    }
                    produced[i].insert(name, (digest, Some(v)));
                }
                if let (Some(key), true) = (&rec.cache_key, step.cache && !writes(step)) {
                    writer.send(Write::Cache(
                        key.clone(),
                        CacheEntry {
                            outputs: rec.outputs.clone(),
                            checks: rec.checks.clone(),
                            metrics: rec.metrics.clone(),
                            params: rec.params.clone(),
                            run: run.id.clone(),
                            elapsed_ms: rec.elapsed_ms,
                        },
                    ));
                }
            }
            Done::Failed {
                error,
                attempts,
                checks,
            } => {
                rec.status = Status::Failed;
                rec.error = Some(error);
                rec.attempts = attempts;
                rec.checks = checks;
            }
        }
        let rec = &run.steps[i];
        if feed.active() {
            let metrics = points.unwrap_or_else(|| {
                rec.metrics
                    .iter()
                    .map(|m| TrackerMetric {
                        key: format!("{}.{}", rec.id, m.key),
                        value: m.value,
                        step: m.step,
                        timestamp_ms: m.timestamp_ms,
                    })
                    .collect()
            });
            feed.send(step_events(
                &rec.id,
                rec.status.name(),
                &rec.config,
                metrics,
                &rec.params,
                &rec.outputs,
            ));
        }
        on_event(&Event::Finished {
            step: rec.id.clone(),
            status: rec.status,
            elapsed_ms: rec.elapsed_ms,
            error: rec.error.clone(),
        });
        if rec.status.done() {
            for &j in &dependents[i] {
                waiting[j] -= 1;
                if waiting[j] == 0 && run.steps[j].status == Status::Pending {
                    ready.push_back(j);
                }
            }
        } else {
            skip_dependents(i, &dependents, &mut run.steps, &plan, &on_event);
        }
        // Keep values in memory only while a step still needs them.
        for &u in &deps[i] {
            if dependents[u].iter().all(|&j| {
                run.steps[j].status != Status::Pending && run.steps[j].status != Status::Running
            }) {
                for (_, v) in produced[u].values_mut() {
                    *v = None;
                }
            }
        }
    }

    let failed = run
        .steps
        .iter()
        .any(|s| s.status != Status::Succeeded && s.status != Status::Cached);
    run.status = if failed && opts.cancel.load(Ordering::Relaxed) {
        Status::Cancelled
    } else if failed {
        Status::Failed
    } else {
        Status::Succeeded
    };
    if !failed && let Some(reg) = &plan.register {
        // Objects must be stored before a model version may point at one.
        writer.flush()?;
        super::register::register(&mut run, reg, &plan, &plugins, &store)?;
    }
    feed.send(vec![TrackerEvent::RunFinished(
        run.status.name().to_string(),
    )]);
    run.trackers = feed.finish();
    run.ended_ms = Some(crate::now_ms());
    // The run record's last write and the tracked run's end: one commit.
    writer.send(Write::Run(Box::new(run.clone())));
    writer.send(track_end(&run));
    writer.flush()?;
    live.finish();
    Ok(run)
}

fn tracker_metric((key, m): &(String, crate::tracking::Metric)) -> TrackerMetric {
    TrackerMetric {
        key: key.clone(),
        value: m.value,
        step: m.step as u64,
        timestamp_ms: m.timestamp as u64,
    }
}

/// The commit checked out in the git repository holding `file`, if any.
fn git_commit(file: &Path) -> Option<String> {
    let dir = file.parent().filter(|d| !d.as_os_str().is_empty())?;
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["rev-parse", "--verify", "--quiet", "HEAD"])
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    let commit = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (out.status.success() && commit.len() >= 40).then_some(commit)
}

/// Opens the tracked run of a workflow run: in the experiment named after the workflow,
/// with the same id.
fn track_start(store: &Store, run: &RunRecord) -> Result<Write> {
    let experiment = store.ensure_experiment(&run.workflow)?;
    let mut tags = BTreeMap::new();
    tags.insert("kiln.workflow".to_string(), run.plan.file.clone());
    tags.insert("mlflow.source.name".to_string(), run.plan.file.clone());
    tags.insert("mlflow.source.type".to_string(), "LOCAL".to_string());
    if let Some(commit) = &run.git_commit {
        tags.insert("mlflow.source.git.commit".to_string(), commit.clone());
    }
    if let Some(of) = &run.replay_of {
        tags.insert("kiln.replay_of".to_string(), of.clone());
    }
    let tracked = store.new_run(
        &run.id,
        &experiment.experiment_id,
        None,
        Some(run.started_ms as i64),
        &tags,
    )?;
    Ok(Write::TrackStart(Box::new(tracked)))
}

/// Closes the tracked run: every step's config as params, and the run's status; a cached
/// step's metrics (a step that ran logged its own points as it finished), named `step.key`.
fn track_end(run: &RunRecord) -> Write {
    use crate::tracking::Metric;
    let mut params = Vec::new();
    let mut metrics = Vec::new();
    let mut tags = Vec::new();
    use crate::tracking::experiments::{MAX_KEY_LEN, MAX_PARAM_VALUE_LEN, MAX_TAG_VALUE_LEN};
    // Tracking keeps MLflow's limits: overlong keys are left out and values cut, rather
    // than failing a run that has already finished.
    let clip = |v: &str, max: usize| v.chars().take(max).collect::<String>();
    for s in &run.steps {
        for (k, v) in &s.config {
            params.push((format!("{}.{k}", s.id), clip(v, MAX_PARAM_VALUE_LEN)));
        }
        for m in s.metrics.iter().filter(|_| s.status == Status::Cached) {
            metrics.push((
                format!("{}.{}", s.id, m.key),
                Metric {
                    value: m.value,
                    timestamp: m.timestamp_ms as i64,
                    step: m.step as i64,
                },
            ));
        }
        for (k, v) in &s.params {
            tags.push((format!("{}.{k}", s.id), clip(v, MAX_TAG_VALUE_LEN)));
        }
    }
    if let Some(reg) = &run.registered {
        tags.push((
            "kiln.registered".to_string(),
            format!("{}/{}", reg.model, reg.version),
        ));
    }
    params.retain(|(k, _)| k.len() <= MAX_KEY_LEN);
    metrics.retain(|(k, _)| k.len() <= MAX_KEY_LEN);
    tags.retain(|(k, _)| k.len() <= MAX_KEY_LEN);
    let status = match run.status {
        Status::Succeeded => "FINISHED",
        Status::Cancelled => "KILLED",
        _ => "FAILED",
    };
    let mut datasets: Vec<DatasetInput> = Vec::new();
    for s in &run.steps {
        for d in &s.datasets {
            if !datasets
                .iter()
                .any(|x| x.name == d.path && x.digest == d.digest)
            {
                datasets.push(DatasetInput {
                    name: d.path.clone(),
                    digest: d.digest.clone(),
                    source_type: "local".into(),
                    source: d.path.clone(),
                    schema: String::new(),
                    profile: String::new(),
                    tags: BTreeMap::from([("kiln.step".to_string(), s.id.clone())]),
                });
            }
        }
    }
    Write::TrackEnd(Box::new(RunEnd {
        run_id: run.id.clone(),
        metrics,
        params,
        tags,
        inputs: datasets,
        status: status.to_string(),
        end_time: run.ended_ms.map(|e| e as i64),
    }))
}

/// The digest of a validator's pass-through output: the digest of the input it passes on.
fn produced_digest(
    produced: &[Produced],
    index: &HashMap<&str, usize>,
    step: &PlanStep,
    name: &str,
) -> (String, u64) {
    step.inputs
        .iter()
        .find(|w| w.port == name)
        .and_then(|w| produced[index[w.step.as_str()]].get(&w.output))
        .map_or((String::new(), 0), |(d, _)| (d.clone(), 0))
}

fn writes(step: &PlanStep) -> bool {
    step.grants.dirs.iter().any(|d| d.writable)
}

fn finish_skipped(rec: &mut StepRecord, why: &str, on_event: &Arc<dyn Fn(&Event) + Send + Sync>) {
    rec.status = Status::Skipped;
    rec.error = Some(why.to_string());
    on_event(&Event::Finished {
        step: rec.id.clone(),
        status: Status::Skipped,
        elapsed_ms: 0.0,
        error: rec.error.clone(),
    });
}

/// Marks every step downstream of `i` skipped.
fn skip_dependents(
    i: usize,
    dependents: &[Vec<usize>],
    steps: &mut [StepRecord],
    plan: &Plan,
    on_event: &Arc<dyn Fn(&Event) + Send + Sync>,
) {
    let mut stack = vec![i];
    while let Some(u) = stack.pop() {
        for &j in &dependents[u] {
            if steps[j].status == Status::Pending {
                let why = format!("step `{}` did not finish", plan.steps[u].id);
                finish_skipped(&mut steps[j], &why, on_event);
                stack.push(j);
            }
        }
    }
}

/// The cache key of a step given its inputs: plugin digest, role, config, input digests,
/// grants (with the content of granted directories) and deterministic seed.
/// Also returns the granted directories the step may only read, with their digests: the
/// datasets it reads.
fn cache_key(
    step: &PlanStep,
    inputs: &[Input],
    seed: Option<u64>,
) -> Result<(String, Vec<DatasetRef>), String> {
    let mut datasets = Vec::new();
    let mut h = Sha256::new();
    let mut field = |bytes: &[u8]| {
        h.update((bytes.len() as u64).to_le_bytes());
        h.update(bytes);
    };
    field(b"kiln-step-cache/1");
    field(step.plugin.digest.as_bytes());
    field(step.role.interface().as_bytes());
    // A registered pipeline's stages, fitted values and signature are part of its code.
    if let Some(p) = step.model.as_ref().and_then(|m| m.pipeline.as_ref()) {
        let identity =
            serde_json::to_vec(&(&p.stages, &p.runner, &p.columns)).map_err(|e| e.to_string())?;
        field(&identity);
    }
    // The order config is written in means nothing to a plugin.
    let mut config: Vec<&(String, String)> = step.config.iter().collect();
    config.sort_unstable();
    for (k, v) in config {
        field(k.as_bytes());
        field(v.as_bytes());
    }
    field(b"inputs");
    let mut sorted: Vec<&Input> = inputs.iter().collect();
    sorted.sort_by(|a, b| a.port.cmp(&b.port));
    for i in sorted {
        field(i.port.as_bytes());
        field(i.digest.as_bytes());
    }
    field(b"grants");
    for d in &step.grants.dirs {
        field(d.guest.as_bytes());
        field(&[u8::from(d.writable)]);
        let digest = dir_digest(&d.host).map_err(|e| format!("{e:#}"))?;
        field(digest.as_bytes());
        if !d.writable {
            datasets.push(DatasetRef {
                path: d.guest.clone(),
                digest,
            });
        }
    }
    for (k, v) in &step.grants.env {
        field(k.as_bytes());
        field(v.as_bytes());
    }
    if let Some(s) = seed {
        field(&step_seed(s, &step.id).to_le_bytes());
    }
    Ok((hex::encode(h.finalize()), datasets))
}

/// A digest of everything in a directory: relative paths and file contents, in order.
fn dir_digest(dir: &Path) -> Result<String> {
    let mut h = Sha256::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let mut entries: Vec<_> = std::fs::read_dir(&d)
            .with_context(|| format!("reading granted directory {}", d.display()))?
            .collect::<std::io::Result<_>>()?;
        entries.sort_by_key(|e| e.file_name());
        for e in entries.into_iter().rev() {
            let path = e.path();
            let rel = path.strip_prefix(dir).unwrap_or(&path);
            if e.file_type()?.is_dir() {
                h.update(b"d");
                h.update(rel.to_string_lossy().as_bytes());
                stack.push(path);
            } else {
                let mut f = std::fs::File::open(&path)
                    .with_context(|| format!("reading {}", path.display()))?;
                h.update(b"f");
                h.update(rel.to_string_lossy().as_bytes());
                h.update(b"\0");
                std::io::copy(&mut f, &mut h)?;
            }
        }
    }
    Ok(hex::encode(h.finalize()))
}

/// A step's own seed in deterministic mode, from the run's seed and the step's id.
fn step_seed(seed: u64, id: &str) -> u64 {
    let d = Sha256::new()
        .chain_update(seed.to_le_bytes())
        .chain_update(id.as_bytes())
        .finalize();
    u64::from_le_bytes(d[..8].try_into().expect("8 bytes"))
}

/// Everything one step's blocking task needs.
struct StepTask {
    step: PlanStep,
    plugin: Arc<Plugin>,
    /// For a step predicting with a registered pipeline: its stages' plugins, in order.
    stages: Vec<Arc<Plugin>>,
    inputs: Vec<Input>,
    key: Result<String, String>,
    store: Arc<Store>,
    use_cache: bool,
    seed: Option<u64>,
    on_event: Arc<dyn Fn(&Event) + Send + Sync>,
    /// The run's cancel flag: it stops the plugin call, and no retry follows.
    cancel: Arc<AtomicBool>,
}

impl StepTask {
    fn run(self) -> Done {
        let key = match &self.key {
            Ok(k) => k,
            Err(e) => {
                return Done::Failed {
                    error: e.clone(),
                    attempts: 0,
                    checks: Vec::new(),
                };
            }
        };
        if self.use_cache
            && !writes(&self.step)
            && let Ok(Some(entry)) = self.store.cached(key)
        {
            return Done::Cached(entry);
        }
        // Values not in memory come from the store.
        let mut values = Vec::with_capacity(self.inputs.len());
        for i in &self.inputs {
            match &i.value {
                Some(v) => values.push(v.clone()),
                None => match self.store.value(&i.digest) {
                    Ok(v) => values.push(Arc::new(v)),
                    Err(e) => {
                        return Done::Failed {
                            error: format!("reading input `{}`: {e:#}", i.port),
                            attempts: 0,
                            checks: Vec::new(),
                        };
                    }
                },
            }
        }
        let opts = CallOptions {
            limits: Limits {
                memory: self.step.memory,
                timeout: Duration::from_millis(self.step.timeout_ms),
                ..Limits::default()
            },
            grants: self.step.grants.clone(),
            log: LogSink::Collect,
            deterministic: self.seed,
            cancel: Some(self.cancel.clone()),
        };
        let mut attempt = 0;
        let mut wait = Duration::from_millis(self.step.backoff_ms);
        loop {
            attempt += 1;
            let t0 = Instant::now();
            match self.attempt(&values, &opts) {
                Ok(mut ran) => {
                    ran.attempts = attempt;
                    ran.elapsed_ms = t0.elapsed().as_secs_f64() * 1e3;
                    return Done::Ran(ran);
                }
                Err((error, checks))
                    if attempt > self.step.retries
                        || !checks.is_empty()
                        || self.cancel.load(Ordering::Relaxed) =>
                {
                    return Done::Failed {
                        error,
                        attempts: attempt,
                        checks,
                    };
                }
                Err((error, _)) => {
                    (self.on_event)(&Event::Retrying {
                        step: self.step.id.clone(),
                        attempt,
                        error,
                        wait,
                    });
                    std::thread::sleep(wait);
                    wait *= 2;
                }
            }
        }
    }

    /// One attempt. A failure carries the validator checks that caused it, if any
    /// (a failed check is not retried: the data will not change).
    fn attempt(
        &self,
        values: &[Arc<Value>],
        opts: &CallOptions,
    ) -> Result<Ran, (String, Vec<CheckRecord>)> {
        let plain = |e: String| (e, Vec::new());
        let refs: Vec<NamedValueRef<'_>> = self
            .inputs
            .iter()
            .zip(values)
            .filter(|(i, _)| !(self.step.role == Role::ModelRunner && i.port == MODEL_PORT))
            .map(|(i, v)| NamedValueRef {
                name: &i.port,
                value: v,
            })
            .collect();
        let (outputs, checks, tracking) = match self.step.role {
            Role::Step => {
                let out = self
                    .plugin
                    .run_step(&refs, &self.step.config, opts)
                    .map_err(|e| plain(e.to_string()))?;
                (shared(out.value), Vec::new(), out.tracking)
            }
            Role::Validator => {
                let out = self
                    .plugin
                    .validate(&refs, &self.step.config, opts)
                    .map_err(|e| plain(e.to_string()))?;
                let checks: Vec<CheckRecord> = out.value.iter().map(check_record).collect();
                let blocking: Vec<&Check> = out
                    .value
                    .iter()
                    .filter(|c| !c.passed && c.severity == Severity::Error)
                    .collect();
                if !blocking.is_empty() {
                    let list: Vec<String> = blocking
                        .iter()
                        .map(|c| format!("{} ({})", c.name, c.detail))
                        .collect();
                    return Err((
                        format!("{} check(s) failed: {}", blocking.len(), list.join("; ")),
                        checks,
                    ));
                }
                let mut outputs: Vec<(String, Arc<Value>)> = self
                    .inputs
                    .iter()
                    .zip(values)
                    .map(|(i, v)| (i.port.clone(), v.clone()))
                    .collect();
                let report = serde_json::to_string(&checks).unwrap_or_default();
                outputs.push((REPORT_OUTPUT.to_string(), Arc::new(Value::Json(report))));
                (outputs, checks, out.tracking)
            }
            Role::ModelRunner => {
                let artifact = self
                    .inputs
                    .iter()
                    .zip(values)
                    .find(|(i, _)| i.port == MODEL_PORT)
                    .map(|(_, v)| v);
                let Some(Value::Bytes(artifact)) = artifact.map(|v| &**v) else {
                    return Err(plain(format!(
                        "input `{MODEL_PORT}` must be bytes (a model artifact)"
                    )));
                };
                let pipeline = self.step.model.as_ref().and_then(|m| m.pipeline.as_ref());
                let config = pipeline.map_or(&self.step.config, |p| &p.runner.config);
                let mut model = self
                    .plugin
                    .load_model(artifact, config, opts)
                    .map_err(|e| plain(e.to_string()))?;
                let owned: Vec<NamedValue> = refs
                    .iter()
                    .map(|r| NamedValue {
                        name: r.name.to_string(),
                        value: r.value.clone(),
                    })
                    .collect();
                match pipeline {
                    // A registered pipeline: the rows go through its stages first.
                    Some(p) => {
                        let stages = Stages::from_store(p, &self.store, |s| {
                            self.stages
                                .iter()
                                .find(|p| p.digest() == s.plugin.digest)
                                .cloned()
                                .ok_or_else(|| {
                                    ServeError::Unavailable(format!(
                                        "stage `{}` is not loaded",
                                        s.step
                                    ))
                                })
                        })
                        .map_err(|e| plain(e.to_string()))?;
                        let out = PipelineRunner::new(Arc::new(stages), Runner::Wasm(model), opts)
                            .and_then(|mut p| p.predict(&owned))
                            .map_err(|e| plain(e.to_string()))?;
                        (shared(out), Vec::new(), Vec::new())
                    }
                    None => {
                        let out = model.predict(&owned).map_err(|e| plain(e.to_string()))?;
                        (shared(out.value), Vec::new(), out.tracking)
                    }
                }
            }
            Role::Tracker => return Err(plain("a tracker cannot run as a step".into())),
        };
        // Every point goes to the tracked run's history (as `step.key`); the step's record
        // keeps each key's latest point.
        let mut history = Vec::new();
        let mut latest: indexmap::IndexMap<String, MetricRecord> = indexmap::IndexMap::new();
        let mut params = Vec::new();
        for t in tracking {
            match t {
                TrackingEvent::Metric {
                    key,
                    value,
                    step,
                    timestamp_ms,
                } => {
                    let full = format!("{}.{key}", self.step.id);
                    if full.len() <= crate::tracking::experiments::MAX_KEY_LEN {
                        history.push((
                            full,
                            crate::tracking::Metric {
                                value,
                                timestamp: timestamp_ms as i64,
                                step: step as i64,
                            },
                        ));
                    }
                    let point = MetricRecord {
                        key,
                        value,
                        step,
                        timestamp_ms,
                    };
                    match latest.get_mut(&point.key) {
                        Some(old) if old.step > step => {}
                        Some(old) => *old = point,
                        None => {
                            latest.insert(point.key.clone(), point);
                        }
                    }
                }
                TrackingEvent::Param { key, value } | TrackingEvent::Tag { key, value } => {
                    params.push((key, value))
                }
            }
        }
        let metrics = latest.into_values().collect();
        let passthrough = self.step.role == Role::Validator;
        let mut encoded = Vec::with_capacity(outputs.len());
        for (name, v) in outputs {
            let object = if passthrough && name != REPORT_OUTPUT {
                None
            } else {
                Some(Object::encode(&v).map_err(|e| plain(format!("{e:#}")))?)
            };
            encoded.push((name, v, object));
        }
        Ok(Ran {
            outputs: encoded,
            checks,
            metrics,
            history,
            params,
            attempts: 0,
            elapsed_ms: 0.0,
        })
    }
}

/// A plugin's outputs as the executor keeps them: by name, each value shared.
fn shared(outputs: Vec<NamedValue>) -> Vec<(String, Arc<Value>)> {
    outputs
        .into_iter()
        .map(|nv| (nv.name, Arc::new(nv.value)))
        .collect()
}

fn check_record(c: &Check) -> CheckRecord {
    CheckRecord {
        name: c.name.clone(),
        passed: c.passed,
        severity: match c.severity {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Error => "error",
        }
        .to_string(),
        observed: c.observed,
        detail: c.detail.clone(),
    }
}
