//! `/metrics` in the OpenMetrics text format that Prometheus scrapes:
//!
//! - `kiln_http_requests_total{method,route,status}` and
//!   `kiln_http_request_duration_seconds{method,route}`, by route template (never the raw
//!   path, so hostile paths cannot grow the label set);
//! - per loaded model version: `kiln_predictions_total`, `kiln_prediction_failures_total`,
//!   `kiln_predictions_rejected_total` (429s), `kiln_plugin_invocations_total` (predict
//!   calls: fewer than predictions when batching merges them), `kiln_pool_instances`,
//!   `kiln_pool_queued`;
//! - `kiln_step_invocations_total{plugin,status}` and `kiln_workflow_runs_total{status}`:
//!   workflow steps and runs over HTTP;
//! - `kiln_compiled_cache_total{outcome}`: plugins loaded from compiled code (`hit`) or
//!   compiled (`compiled`).
//!
//! Model figures live in the pools as plain atomics; a scrape copies them here, so the
//! prediction path pays for no metric of its own.

use std::{sync::Mutex, time::Instant};

use axum::{
    extract::{MatchedPath, Request, State},
    http::{Method, header},
    middleware::Next,
    response::{IntoResponse, Response},
};
use prometheus_client::{
    encoding::{EncodeLabelSet, text::encode},
    metrics::{
        counter::Counter,
        family::Family,
        gauge::Gauge,
        histogram::{Histogram, exponential_buckets},
    },
    registry::Registry,
};

use super::AppState;
use crate::engine::CacheOutcome;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: &'static str,
    route: String,
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    method: &'static str,
    route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ModelLabels {
    model: String,
    version: String,
    backend: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PluginLabels {
    plugin: String,
    model: String,
    version: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StepLabels {
    plugin: String,
    status: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabels {
    status: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

type Histograms = Family<RouteLabels, Histogram, fn() -> Histogram>;

/// The server's metrics.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: Histograms,
    predictions: Family<ModelLabels, Counter>,
    failures: Family<ModelLabels, Counter>,
    rejected: Family<ModelLabels, Counter>,
    invocations: Family<PluginLabels, Counter>,
    instances: Family<ModelLabels, Gauge>,
    queued: Family<ModelLabels, Gauge>,
    compiled: Family<OutcomeLabels, Gauge>,
    steps: Family<StepLabels, Counter>,
    runs: Family<StatusLabels, Counter>,
    /// One scrape at a time copies the pools' figures.
    scrape: Mutex<()>,
}

fn latency_histogram() -> Histogram {
    // 50 µs to ~13 s.
    Histogram::new(exponential_buckets(0.000_05, 2.0, 19))
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("kiln");
        let requests = Family::default();
        let latency: Histograms = Family::new_with_constructor(latency_histogram);
        let (predictions, failures, rejected, invocations) = Default::default();
        let (instances, queued, compiled) = Default::default();
        let (steps, runs) = Default::default();
        registry.register(
            "http_requests",
            "HTTP requests answered",
            Family::clone(&requests),
        );
        registry.register(
            "http_request_duration_seconds",
            "Time to answer an HTTP request",
            latency.clone(),
        );
        registry.register(
            "predictions",
            "Predictions answered",
            Family::clone(&predictions),
        );
        registry.register(
            "prediction_failures",
            "Predictions that failed",
            Family::clone(&failures),
        );
        registry.register(
            "predictions_rejected",
            "Predictions refused because the model's queue was full (429)",
            Family::clone(&rejected),
        );
        registry.register(
            "plugin_invocations",
            "Model-runner predict calls",
            Family::clone(&invocations),
        );
        registry.register(
            "pool_instances",
            "Warm model-runner instances",
            Family::clone(&instances),
        );
        registry.register(
            "pool_queued",
            "Predictions waiting for an instance",
            Family::clone(&queued),
        );
        registry.register(
            "compiled_cache",
            "Plugins loaded, from compiled code (hit) or compiled now",
            Family::clone(&compiled),
        );
        registry.register(
            "step_invocations",
            "Workflow steps run over HTTP, by plugin and how they ended (cached steps call no plugin)",
            Family::clone(&steps),
        );
        registry.register(
            "workflow_runs",
            "Workflow runs over HTTP that ended, by status",
            Family::clone(&runs),
        );
        Metrics {
            registry,
            steps,
            runs,
            requests,
            latency,
            predictions,
            failures,
            rejected,
            invocations,
            instances,
            queued,
            compiled,
            scrape: Mutex::new(()),
        }
    }
}

impl Metrics {
    /// A workflow step run over HTTP ended.
    pub fn step_finished(&self, plugin: &str, status: crate::tracking::Status) {
        self.steps
            .get_or_create(&StepLabels {
                plugin: plugin.to_string(),
                status: status.as_str(),
            })
            .inc();
    }

    /// A workflow run over HTTP ended.
    pub fn run_finished(&self, status: crate::tracking::Status) {
        self.runs
            .get_or_create(&StatusLabels {
                status: status.as_str(),
            })
            .inc();
    }
}

fn method_label(m: &Method) -> &'static str {
    match *m {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::PATCH => "PATCH",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// Counts and times every request by its route template.
pub async fn track(State(s): State<AppState>, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |p| p.as_str().to_string());
    let method = method_label(request.method());
    let started = Instant::now();
    let response = next.run(request).await;
    let m = &s.metrics;
    let route = RouteLabels { method, route };
    m.latency
        .get_or_create(&route)
        .observe(started.elapsed().as_secs_f64());
    m.requests
        .get_or_create(&RequestLabels {
            method,
            route: route.route,
            status: response.status().as_u16().to_string(),
        })
        .inc();
    response
}

/// Raises `counter` to `value` (the pools' atomics only grow).
fn raise(counter: &Counter, value: u64) {
    let now = counter.get();
    if value > now {
        counter.inc_by(value - now);
    }
}

/// `GET /metrics`.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "server",
    summary = "Prometheus metrics (OpenMetrics text)",
    security(("bearer" = []), ()),
    responses((
        status = 200,
        description = "The metrics",
        body = String,
        content_type = "application/openmetrics-text",
    )),
)]
pub async fn scrape(State(s): State<AppState>) -> Response {
    use std::sync::atomic::Ordering::Relaxed;
    let m = &s.metrics;
    let _one = m.scrape.lock().unwrap_or_else(|p| p.into_inner());
    m.instances.clear();
    m.queued.clear();
    for loaded in s.serving.loaded() {
        let labels = ModelLabels {
            model: loaded.record.model.clone(),
            version: loaded.record.version.to_string(),
            backend: loaded.backend.name(),
        };
        let stats = &loaded.pool.stats;
        raise(
            &m.predictions.get_or_create(&labels),
            stats.predictions.load(Relaxed),
        );
        raise(
            &m.failures.get_or_create(&labels),
            stats.failures.load(Relaxed),
        );
        raise(
            &m.rejected.get_or_create(&labels),
            stats.rejected.load(Relaxed),
        );
        // The plugin's name and version; never a file path.
        let plugin = match &loaded.record.runner {
            Some(r) => {
                let named = r.name_version();
                match loaded.backend {
                    crate::serving::Backend::Wasm => named,
                    crate::serving::Backend::Native => format!("{named} (native)"),
                }
            }
            None => "unknown".into(),
        };
        raise(
            &m.invocations.get_or_create(&PluginLabels {
                plugin,
                model: labels.model.clone(),
                version: labels.version.clone(),
            }),
            stats.calls.load(Relaxed),
        );
        m.instances
            .get_or_create(&labels)
            .set(loaded.pool.options.instances as i64);
        m.queued
            .get_or_create(&labels)
            .set(loaded.pool.queued() as i64);
    }
    let (mut hits, mut compiled) = (0, 0);
    for p in s.host.loaded() {
        match p.cache_outcome() {
            CacheOutcome::Hit => hits += 1,
            CacheOutcome::Compiled => compiled += 1,
        }
    }
    m.compiled
        .get_or_create(&OutcomeLabels { outcome: "hit" })
        .set(hits);
    m.compiled
        .get_or_create(&OutcomeLabels {
            outcome: "compiled",
        })
        .set(compiled);
    let mut text = String::new();
    if encode(&mut text, &m.registry).is_err() {
        return super::ApiError::new(
            axum::http::StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "the metrics could not be written",
        )
        .into_response();
    }
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        text,
    )
        .into_response()
}
