//! Workflow runs over HTTP:
//!
//! - `POST /v1/runs`: the body is a workflow (YAML, or JSON, which YAML reads too); the
//!   server checks it exactly as `kiln validate` does, starts it and answers `202` with its
//!   id at once. Query: `deterministic`, `no_cache`, `jobs`. An invalid workflow is `422`
//!   `invalid_workflow` with the CLI's diagnostics (`kiln validate --json`) under
//!   `diagnostics`. Takes the `run` scope.
//! - `GET /v1/runs/{id}`: while the run is live, its status and each step's (a subset of
//!   the stored record, with `"live": true`); afterwards the stored record.
//! - `GET /v1/runs/{id}/events`: Server-Sent Events `begun`, `started`, `retrying`,
//!   `finished` (per step) and `end`, numbered so `Last-Event-ID` resumes; a finished run's
//!   events are told again from its record.
//! - `POST /v1/runs/{id}/cancel`: no further step starts, running plugin calls are
//!   stopped, the run ends `cancelled`. Takes the `run` scope.
//!
//! A posted workflow reaches only what the server allows: registry plugins, and
//! directories inside `[workflows] root`. At most `[workflows] max_running` runs go at
//! once (beyond: `429`). On shutdown every live run is cancelled and awaited.

use std::{
    collections::HashMap,
    convert::Infallible,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use axum::{
    Json,
    body::Bytes,
    extract::{Path, Query, State, rejection::BytesRejection},
    http::{HeaderMap, StatusCode, header},
    response::{
        IntoResponse, Response,
        sse::{Event as SseEvent, KeepAlive, Sse},
    },
};
use serde::{Deserialize, Serialize};
use serde_json::{Value as J, json};
use tokio::sync::watch;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{ApiError, AppState};
use crate::{
    tracking::{RunRecord, Status},
    workflow::{
        Event, ExecOptions, Origin, PrepareError, Resolver, execute, new_run_id, plan::PluginRef,
        prepare_text,
    },
};

/// `[workflows]` in the server config.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkflowsConfig {
    /// The directory posted workflows may grant to their plugins (they name directories
    /// relative to it); without it, a posted workflow can grant none.
    pub root: Option<std::path::PathBuf>,
    /// Runs at once; a run posted beyond that is refused with 429.
    #[serde(default = "default_max_running")]
    pub max_running: usize,
    /// Steps at once within one run (default: half the cores).
    #[serde(default = "super::half_the_cores")]
    pub jobs: usize,
}

fn default_max_running() -> usize {
    4
}

impl Default for WorkflowsConfig {
    fn default() -> Self {
        WorkflowsConfig {
            root: None,
            max_running: default_max_running(),
            jobs: super::half_the_cores(),
        }
    }
}

impl WorkflowsConfig {
    pub fn check(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            (1..=1024).contains(&self.max_running),
            "workflows.max_running is 1 to 1024"
        );
        anyhow::ensure!((1..=256).contains(&self.jobs), "workflows.jobs is 1 to 256");
        if let Some(root) = &self.root {
            anyhow::ensure!(
                root.is_dir(),
                "workflows.root `{}` is not a directory",
                root.display()
            );
        }
        Ok(())
    }
}

/// The runs this server is executing.
#[derive(Default)]
pub struct Runs {
    live: Mutex<HashMap<String, Arc<LiveRun>>>,
    /// Told whenever a run ends, for shutdown to wait on.
    ended: tokio::sync::Notify,
}

impl Runs {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<LiveRun>>> {
        self.live.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The live run with this id, or the one whose id it uniquely begins.
    fn find(&self, id: &str) -> Option<Arc<LiveRun>> {
        let live = self.lock();
        if let Some(r) = live.get(id) {
            return Some(r.clone());
        }
        let mut found = live.values().filter(|r| r.id.starts_with(id));
        match (found.next(), found.next()) {
            (Some(r), None) if !id.is_empty() => Some(r.clone()),
            _ => None,
        }
    }

    /// Asks every live run to stop.
    pub fn cancel_all(&self) {
        for r in self.lock().values() {
            r.cancel.store(true, Ordering::Relaxed);
        }
    }

    /// Waits until no run is live, or `limit` passes; whether none is.
    pub async fn wait_idle(&self, limit: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let ended = self.ended.notified();
            if self.lock().is_empty() {
                return true;
            }
            if tokio::time::timeout_at(deadline, ended).await.is_err() {
                return self.lock().is_empty();
            }
        }
    }
}

/// One run in progress: its steps' states and every event so far.
struct LiveRun {
    id: String,
    workflow: String,
    started_ms: u64,
    cancel: Arc<AtomicBool>,
    state: Mutex<LiveState>,
    /// The number of events so far; subscribers wake when it grows.
    count: watch::Sender<usize>,
}

struct LiveState {
    steps: Vec<LiveStep>,
    events: Vec<(&'static str, J)>,
    ended: bool,
}

impl LiveState {
    fn step(&mut self, id: &str) -> Option<&mut LiveStep> {
        self.steps.iter_mut().find(|s| s.id == id)
    }
}

#[derive(Serialize)]
struct LiveStep {
    id: String,
    plugin: PluginRef,
    status: Status,
    attempts: u32,
    elapsed_ms: f64,
    error: Option<String>,
}

impl LiveRun {
    fn state(&self) -> std::sync::MutexGuard<'_, LiveState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn push(&self, state: &mut LiveState, name: &'static str, data: J) {
        state.events.push((name, data));
        let n = state.events.len();
        self.count.send_replace(n);
    }

    /// Records an executor event.
    fn event(&self, e: &Event) {
        let mut st = self.state();
        let (name, data) = event_doc(e);
        match e {
            Event::Begun { .. } => {}
            Event::Started { step } => {
                if let Some(s) = st.step(step) {
                    s.status = Status::Running;
                    s.attempts = 1;
                }
            }
            Event::Retrying { step, attempt, .. } => {
                if let Some(s) = st.step(step) {
                    s.attempts = attempt + 1;
                }
            }
            Event::Finished {
                step,
                status,
                elapsed_ms,
                error,
            } => {
                if let Some(s) = st.step(step) {
                    s.status = *status;
                    s.elapsed_ms = *elapsed_ms;
                    s.error = error.clone();
                }
            }
        }
        self.push(&mut st, name, data);
    }

    /// The run's status document while it is live.
    fn doc(&self) -> J {
        let st = self.state();
        json!({
            "id": self.id,
            "workflow": self.workflow,
            "status": Status::Running,
            "started_ms": self.started_ms,
            "ended_ms": null,
            "steps": st.steps,
            "cancelling": self.cancel.load(Ordering::Relaxed),
            "live": true,
        })
    }
}

/// An executor event as an SSE event's name and data.
fn event_doc(e: &Event) -> (&'static str, J) {
    match e {
        Event::Begun { run } => ("begun", json!({ "run": run })),
        Event::Started { step } => ("started", json!({ "step": step })),
        Event::Retrying {
            step,
            attempt,
            error,
            wait,
        } => (
            "retrying",
            json!({ "step": step, "attempt": attempt, "error": error, "wait_ms": wait.as_millis() as u64 }),
        ),
        Event::Finished {
            step,
            status,
            elapsed_ms,
            error,
        } => (
            "finished",
            json!({ "step": step, "status": status, "elapsed_ms": elapsed_ms, "error": error }),
        ),
    }
}

/// The `end` event of a finished run.
fn end_doc(run: &RunRecord) -> J {
    json!({
        "run": run.id,
        "status": run.status,
        "registered": run.registered,
        "register_note": run.register_note,
    })
}

/// A finished run's events, told again from its record.
fn recorded_events(run: &RunRecord) -> Vec<(&'static str, J)> {
    let mut events = vec![event_doc(&Event::Begun {
        run: run.id.clone(),
    })];
    for s in run.steps.iter().filter(|s| s.status != Status::Pending) {
        events.push(event_doc(&Event::Finished {
            step: s.id.clone(),
            status: s.status,
            elapsed_ms: s.elapsed_ms,
            error: s.error.clone(),
        }));
    }
    events.push(("end", end_doc(run)));
    events
}

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(events))
        .routes(routes!(cancel))
}

/// The query of `POST /v1/runs` (mounted beside `GET /v1/runs` in `tracking`).
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct StartQuery {
    /// Run as `kiln run --deterministic` does.
    #[serde(default)]
    deterministic: bool,
    /// Run every step, even those the cache holds.
    #[serde(default)]
    no_cache: bool,
    /// Steps at once (at most the server's `[workflows] jobs`).
    jobs: Option<usize>,
}

/// A workflow, as `kiln validate` and `kiln run` read it (YAML; JSON is YAML too).
#[derive(ToSchema)]
struct WorkflowText(#[allow(dead_code)] String);

/// A run started.
#[derive(Serialize, ToSchema)]
pub struct Started {
    /// Its id.
    run: String,
    status: Status,
    links: RunLinks,
}

/// Where to follow a run.
#[derive(Serialize, ToSchema)]
pub struct RunLinks {
    #[serde(rename = "self")]
    #[schema(rename = "self")]
    this: String,
    events: String,
    cancel: String,
}

/// An invalid workflow: the error, with `kiln validate --json`'s diagnostics.
#[derive(ToSchema)]
#[allow(dead_code)]
struct InvalidWorkflow {
    error: super::error::ErrorDetail,
    diagnostics: Vec<serde_json::Map<String, J>>,
}

/// `POST /v1/runs`.
#[utoipa::path(
    post,
    path = "/v1/runs",
    tag = "runs",
    summary = "Start a workflow (YAML or JSON); answers its id at once",
    params(StartQuery),
    request_body(
        content(
            (WorkflowText = "application/yaml"),
            (Object = "application/json"),
        ),
    ),
    security(("bearer" = ["run"])),
    responses(
        (status = 202, description = "Started", body = Started,
            headers(("location" = String, description = "The run"))),
        (status = 422, description = "The workflow is invalid", body = InvalidWorkflow),
        (status = 429, description = "As many runs as the server takes are in progress"),
    ),
)]
pub async fn start(
    State(s): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<StartQuery>, axum::extract::rejection::QueryRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    s.authorize(&headers, "run")?;
    let Query(q) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let body = body?;
    let text = std::str::from_utf8(&body)
        .map_err(|_| ApiError::bad_request("the workflow is not UTF-8 text"))?
        .to_string();
    let config = &s.config.workflows;
    if s.runs.lock().len() >= config.max_running {
        return Err(full(config.max_running));
    }
    let jobs = q.jobs.unwrap_or(config.jobs).clamp(1, config.jobs);
    let (host, registry, root) = (s.host.clone(), s.registry.clone(), config.root.clone());
    let models = s.tracking.clone();
    let deterministic = q.deterministic;
    let prepared = tokio::task::spawn_blocking(move || {
        let registry = move || Ok(registry.clone());
        let resolver = Resolver {
            host: &host,
            registry: &registry,
            update: false,
            models: Some(&models),
            bundle: None,
        };
        prepare_text(
            &text,
            Origin::Posted {
                root: root.as_deref(),
            },
            &resolver,
            deterministic,
        )
    })
    .await
    .map_err(|_| internal())?;
    let prepared = match prepared {
        Ok(p) => p,
        Err(PrepareError::Invalid(d)) => {
            let body = json!({
                "error": { "code": "invalid_workflow", "message": d.summary() },
                "diagnostics": d,
            });
            return Ok((StatusCode::UNPROCESSABLE_ENTITY, Json(body)).into_response());
        }
        Err(PrepareError::Other(_)) => return Err(internal()),
    };
    let id = new_run_id();
    let plan = Arc::new(prepared.plan);
    let live = Arc::new(LiveRun {
        id: id.clone(),
        workflow: plan.name.clone(),
        started_ms: crate::now_ms(),
        cancel: Arc::new(AtomicBool::new(false)),
        state: Mutex::new(LiveState {
            steps: plan
                .steps
                .iter()
                .map(|p| LiveStep {
                    id: p.id.clone(),
                    plugin: p.plugin.clone(),
                    status: Status::Pending,
                    attempts: 0,
                    elapsed_ms: 0.0,
                    error: None,
                })
                .collect(),
            events: Vec::new(),
            ended: false,
        }),
        count: watch::Sender::new(0),
    });
    {
        let mut runs = s.runs.lock();
        // Checked again now that the workflow is prepared: others may have started.
        if runs.len() >= config.max_running {
            return Err(full(config.max_running));
        }
        runs.insert(id.clone(), live.clone());
    }
    let opts = ExecOptions {
        jobs,
        use_cache: !q.no_cache,
        cancel: live.cancel.clone(),
        replay_of: None,
        run_id: Some(id.clone()),
    };
    let labels: HashMap<String, String> = plan
        .steps
        .iter()
        .map(|p| (p.id.clone(), p.plugin.name_version()))
        .collect();
    let on_event = {
        let (live, metrics) = (live.clone(), s.metrics.clone());
        Arc::new(move |e: &Event| {
            if let Event::Finished { step, status, .. } = e
                && let Some(plugin) = labels.get(step)
            {
                metrics.step_finished(plugin, *status);
            }
            live.event(e);
        })
    };
    let (store, runs, metrics) = (s.tracking.clone(), s.runs.clone(), s.metrics.clone());
    // The executor opens and closes the run with store writes that wait on a commit: it
    // is driven from a blocking thread, so the HTTP threads never wait on them.
    let handle = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || {
        let outcome = handle.block_on(execute(plan, prepared.plugins, store, opts, on_event));
        let end = match &outcome {
            Ok(run) => end_doc(run),
            Err(_) => json!({
                "run": live.id,
                "status": Status::Failed,
                "error": "the run could not be recorded",
            }),
        };
        metrics.run_finished(outcome.as_ref().map_or(Status::Failed, |r| r.status));
        // The record is stored: readers find it there from now on, and a new run may
        // take this one's place before its followers hear the end.
        runs.lock().remove(&live.id);
        {
            let mut st = live.state();
            st.ended = true;
            live.push(&mut st, "end", end);
        }
        runs.ended.notify_waiters();
    });
    let links = RunLinks {
        this: format!("/v1/runs/{id}"),
        events: format!("/v1/runs/{id}/events"),
        cancel: format!("/v1/runs/{id}/cancel"),
    };
    Ok((
        StatusCode::ACCEPTED,
        [(header::LOCATION, links.this.clone())],
        Json(Started {
            run: id,
            status: Status::Running,
            links,
        }),
    )
        .into_response())
}

/// The answer when `max_running` runs are in progress.
fn full(max_running: usize) -> ApiError {
    ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "overloaded",
        format!("{max_running} runs are in progress, as many as this server runs at once"),
    )
}

fn internal() -> ApiError {
    ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal",
        "the run could not be started",
    )
}

/// `GET /v1/runs/{id}` for a live run, if it is one.
pub fn live_doc(s: &AppState, id: &str) -> Option<J> {
    s.runs.find(id).map(|r| r.doc())
}

/// `GET /v1/runs/{id}/events`.
#[utoipa::path(
    get,
    path = "/v1/runs/{id}/events",
    tag = "runs",
    summary = "A run's step events (Server-Sent Events)",
    params(
        ("id" = String, Path, description = "A run's id, or a unique start of one"),
        ("last-event-id" = Option<String>, Header, description = "The number of the last event seen: resume after it"),
    ),
    security(("bearer" = []), ()),
    responses(
        (status = 200, description = "`begun`, `started`, `retrying`, `finished` per step, then `end`", body = String, content_type = "text/event-stream"),
        (status = 404, description = "No such run"),
    ),
)]
async fn events(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    // Events already seen: `Last-Event-ID` is the number of the last one.
    let from = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok())
        .map_or(0, |n| n + 1);
    if let Some(live) = s.runs.find(&id) {
        let stream = futures_util::stream::unfold(
            (live.count.subscribe(), from, false),
            move |(mut rx, mut cursor, done)| {
                let live = live.clone();
                async move {
                    if done {
                        return None;
                    }
                    loop {
                        rx.borrow_and_update();
                        let (batch, ended) = {
                            let st = live.state();
                            (
                                st.events.get(cursor..).unwrap_or_default().to_vec(),
                                st.ended,
                            )
                        };
                        if !batch.is_empty() {
                            let first = cursor;
                            cursor += batch.len();
                            let events: Vec<Result<SseEvent, Infallible>> = batch
                                .into_iter()
                                .enumerate()
                                .map(|(i, (name, data))| Ok(sse_event(first + i, name, &data)))
                                .collect();
                            return Some((futures_util::stream::iter(events), (rx, cursor, ended)));
                        }
                        if ended || rx.changed().await.is_err() {
                            return None;
                        }
                    }
                }
            },
        );
        use futures_util::StreamExt as _;
        return Ok(sse(stream.flatten().boxed()));
    }
    let tracking = s.tracking.clone();
    let run = super::store_task::<_, ApiError>(move || tracking.run(&id)).await?;
    let events: Vec<Result<SseEvent, Infallible>> = recorded_events(&run)
        .into_iter()
        .enumerate()
        .skip(from)
        .map(|(i, (name, data))| Ok(sse_event(i, name, &data)))
        .collect();
    use futures_util::StreamExt as _;
    Ok(sse(futures_util::stream::iter(events).boxed()))
}

type EventStream = futures_util::stream::BoxStream<'static, Result<SseEvent, Infallible>>;

fn sse(stream: EventStream) -> Response {
    Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response()
}

fn sse_event(n: usize, name: &str, data: &J) -> SseEvent {
    SseEvent::default()
        .id(n.to_string())
        .event(name)
        .data(data.to_string())
}

/// A run asked to stop.
#[derive(Serialize, ToSchema)]
struct Cancelling {
    run: String,
    /// `cancelling`.
    status: &'static str,
}

/// `POST /v1/runs/{id}/cancel`.
#[utoipa::path(
    post,
    path = "/v1/runs/{id}/cancel",
    tag = "runs",
    summary = "Cancel a run",
    params(("id" = String, Path, description = "A run's id, or a unique start of one")),
    security(("bearer" = ["run"])),
    responses(
        (status = 202, description = "The run is asked to stop", body = Cancelling),
        (status = 404, description = "No such run"),
        (status = 409, description = "The run is not running on this server"),
    ),
)]
async fn cancel(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<Cancelling>), ApiError> {
    s.authorize(&headers, "run")?;
    if let Some(live) = s.runs.find(&id) {
        live.cancel.store(true, Ordering::Relaxed);
        return Ok((
            StatusCode::ACCEPTED,
            Json(Cancelling {
                run: live.id.clone(),
                status: "cancelling",
            }),
        ));
    }
    let tracking = s.tracking.clone();
    let run = super::store_task::<_, ApiError>(move || tracking.run(&id)).await?;
    Err(ApiError::new(
        StatusCode::CONFLICT,
        "not_running",
        format!(
            "run {} is not running on this server (its status is {})",
            run.id,
            run.status.as_str()
        ),
    ))
}
