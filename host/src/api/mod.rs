//! The HTTP API (axum): `fn router(state) -> Router`. It carries the marketplace
//! (`/v1/plugins`, `/v1/blobs`, `/v1/keys`), runs and models (`/v1/runs`, `/v1/models`),
//! workflow runs started, followed and cancelled over HTTP (`/v1/runs`, `runs`),
//! model serving (`/v1/models/{name}/{ref}/predict`, the Open Inference Protocol under
//! `/v2`, MLflow's scoring protocol at `/invocations`), MLflow's tracking API (`/api/2.0/mlflow/`), health, readiness, metrics and the
//! OpenAPI document of it all (`/openapi.json`, from the handlers' `#[utoipa::path]`s).
//!
//! Reads are anonymous unless the config turns that off; writes need a bearer token whose
//! scopes the server config grants (MLflow's writes too, once the config has tokens).
//! Bodies are size-limited (refused from their announced length when it is too large),
//! requests time out (all but MLflow's artifact uploads, whose time grows with their size),
//! a body that stops arriving is cut off, and errors are JSON with stable codes.
//! Handlers never block the runtime on plugin compilation or store writes: those run on
//! blocking threads, and predictions on their pools' own threads.

mod error;
mod invocations;
pub mod listen;
#[cfg(feature = "marketplace")]
mod marketplace;
mod metrics;
#[cfg(feature = "mlflow")]
pub mod mlflow;
mod oip;
mod openapi;
mod predict;
mod records;
mod runs;
mod tracking;

use std::{sync::Arc, time::Duration};

use axum::{Router, extract::DefaultBodyLimit, http::HeaderMap};
use serde::{Deserialize, Serialize};
use tower_http::timeout::{TimeoutBody, TimeoutError};
use utoipa::{OpenApi as _, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

pub use error::ApiError;
pub use runs::{Runs, WorkflowsConfig};

use crate::{plugin::PluginHost, registry::Registry};

/// The largest request body accepted (a published component, base64 in JSON).
pub const MAX_BODY: usize = 64 << 20;

/// `kiln-server.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    #[serde(default)]
    pub tokens: Vec<TokenConfig>,
    /// Whether reads (GET routes, predictions, MLflow's API) need no token. With `false`,
    /// every request but the health probes needs a token; any scope grants reading.
    #[serde(default = "yes")]
    pub anonymous_reads: bool,
    /// Seconds before a request is abandoned (an MLflow artifact upload is held to
    /// `body_timeout_secs` alone).
    #[serde(default = "default_timeout")]
    pub request_timeout_secs: u64,
    /// Seconds a request body may send nothing before it is cut off (408).
    #[serde(default = "default_body_timeout")]
    pub body_timeout_secs: u64,
    /// Seconds a connection has to send a whole request head, and the longest an idle
    /// keep-alive connection stays open.
    #[serde(default = "default_header_timeout")]
    pub header_timeout_secs: u64,
    /// Connections open at once; one more is answered 503 and closed.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// Seconds the open connections get to finish on shutdown before they are closed.
    #[serde(default = "default_drain")]
    pub shutdown_drain_secs: u64,
    /// Threads answering HTTP (default: half the cores, at least one; model instances
    /// have their own threads, and on a small machine fewer threads than cores keep the
    /// latency tail short).
    #[serde(default = "half_the_cores")]
    pub http_threads: usize,
    /// The largest prediction body, in MiB (other bodies: [`MAX_BODY`]).
    #[serde(default = "default_predict_body")]
    pub max_predict_body_mib: usize,
    /// The largest artifact MLflow's client may upload, in MiB; streamed to disk.
    #[serde(default = "default_artifact")]
    pub max_artifact_mib: usize,
    /// Model serving: pools, queues, batching, per-model runners.
    #[serde(default)]
    pub serving: crate::serving::ServingConfig,
    /// Workflows run over HTTP: what they may reach, how many at once.
    #[serde(default)]
    pub workflows: runs::WorkflowsConfig,
}

fn yes() -> bool {
    true
}

/// Half the machine's cores, at least one.
pub fn half_the_cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| (n.get() / 2).max(1))
}

fn default_predict_body() -> usize {
    16
}

fn default_artifact() -> usize {
    2048
}

fn default_timeout() -> u64 {
    60
}

fn default_body_timeout() -> u64 {
    30
}

fn default_header_timeout() -> u64 {
    10
}

fn default_max_connections() -> usize {
    1024
}

fn default_drain() -> u64 {
    10
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenConfig {
    pub token: String,
    pub scopes: Vec<String>,
}

/// Without a config file: every setting's default (no tokens: anonymous reads only).
impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig::parse("").expect("every server setting has a default")
    }
}

impl ServerConfig {
    /// Parses and checks a config file's text.
    pub fn parse(text: &str) -> anyhow::Result<ServerConfig> {
        let config: ServerConfig = toml::from_str(text)?;
        config.serving.check()?;
        config.workflows.check()?;
        anyhow::ensure!(
            (1..=1024).contains(&config.http_threads),
            "http_threads is 1 to 1024"
        );
        anyhow::ensure!(
            (1..=3600).contains(&config.header_timeout_secs),
            "header_timeout_secs is 1 to 3600"
        );
        anyhow::ensure!(
            (1..=3600).contains(&config.body_timeout_secs),
            "body_timeout_secs is 1 to 3600"
        );
        anyhow::ensure!(
            (1..=1_000_000).contains(&config.max_connections),
            "max_connections is 1 to 1000000"
        );
        anyhow::ensure!(
            config.shutdown_drain_secs <= 3600,
            "shutdown_drain_secs is 0 to 3600"
        );
        for t in &config.tokens {
            anyhow::ensure!(
                t.token.len() >= 16,
                "a token must be at least 16 characters"
            );
            for s in &t.scopes {
                anyhow::ensure!(
                    ["read", "run", "publish", "admin"].contains(&s.as_str()),
                    "unknown scope `{s}` (read, run, publish, admin)"
                );
            }
        }
        Ok(config)
    }
}

impl ServerConfig {
    /// The listener's limits.
    pub fn listen_limits(&self) -> listen::Limits {
        listen::Limits {
            header_timeout: Duration::from_secs(self.header_timeout_secs),
            max_connections: self.max_connections,
            drain: Duration::from_secs(self.shutdown_drain_secs),
        }
    }
}

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    pub registry: Arc<Registry>,
    pub host: Arc<PluginHost>,
    pub config: Arc<ServerConfig>,
    pub tracking: Arc<crate::tracking::Store>,
    pub serving: Arc<crate::serving::Serving>,
    pub metrics: Arc<metrics::Metrics>,
    /// Workflow runs in progress.
    pub runs: Arc<runs::Runs>,
    /// Set once the server begins to shut down: `/readyz` then answers 503.
    pub draining: Arc<std::sync::atomic::AtomicBool>,
}

impl AppState {
    /// The state for a server over these stores and this config.
    pub fn new(
        registry: Arc<Registry>,
        host: Arc<PluginHost>,
        tracking: Arc<crate::tracking::Store>,
        config: ServerConfig,
    ) -> AppState {
        let serving = Arc::new(crate::serving::Serving::new(
            tracking.clone(),
            host.clone(),
            registry.clone(),
            config.serving.clone(),
        ));
        AppState {
            registry,
            host,
            config: Arc::new(config),
            tracking,
            serving,
            metrics: Arc::default(),
            runs: Arc::default(),
            draining: Arc::default(),
        }
    }
}

impl AppState {
    /// Checks the request's bearer token grants `scope` (`admin` grants everything).
    pub fn authorize(&self, headers: &HeaderMap, scope: &str) -> Result<(), ApiError> {
        use axum::http::StatusCode;
        let token = headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(bearer)
            .ok_or_else(|| {
                ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    "unauthorized",
                    "a bearer token is required",
                )
            })?;
        let granted = self
            .config
            .tokens
            .iter()
            .find(|t| constant_time_eq(t.token.as_bytes(), token.as_bytes()));
        match granted {
            None => Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "unknown token",
            )),
            Some(_) if scope == "read" => Ok(()),
            Some(t) if t.scopes.iter().any(|s| s == scope || s == "admin") => Ok(()),
            Some(_) => Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                format!("the token lacks the `{scope}` scope"),
            )),
        }
    }
}

/// Runs tracking-store work off the async threads; its error becomes the API's own.
async fn store_task<T: Send + 'static, E: From<crate::tracking::TrackingError>>(
    f: impl FnOnce() -> Result<T, crate::tracking::TrackingError> + Send + 'static,
) -> Result<T, E> {
    use crate::tracking::TrackingError;
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|_| TrackingError::Storage("a store task failed".into()))?
        .map_err(E::from)
}

/// The token of an `Authorization` value in the bearer scheme, whose name is matched
/// without regard to case (RFC 9110 §11.1).
fn bearer(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once(' ')?;
    let token = token.trim_start();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Refuses a request whose announced length passes `limit` before any of its body is
/// read; a body without a length is cut off at the limit by [`DefaultBodyLimit`]. An
/// artifact upload is left to its own limit.
async fn check_length(
    limit: usize,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse as _;
    let announced = request
        .headers()
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    #[cfg(feature = "mlflow")]
    if mlflow::is_artifact_upload(&request) {
        return next.run(request).await;
    }
    if announced.is_some_and(|n| n > limit as u64) {
        return ApiError::too_large(limit).into_response();
    }
    next.run(request).await
}

/// Abandons a request at `timeout` (408), except an MLflow artifact upload, whose time
/// grows with its size: that one is held to its body's pace alone ([`body_pace`]).
async fn deadline(
    timeout: Duration,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse as _;
    #[cfg(feature = "mlflow")]
    if mlflow::is_artifact_upload(&request) {
        return next.run(request).await;
    }
    match tokio::time::timeout(timeout, next.run(request)).await {
        Ok(response) => response,
        Err(_) => (
            axum::http::StatusCode::REQUEST_TIMEOUT,
            format!("the request took longer than {} s", timeout.as_secs()),
        )
            .into_response(),
    }
}

/// Cuts off a request body that sends nothing for `timeout`: its reader gets an error, and
/// the error the handler answers with becomes 408. A request without a body is untouched.
async fn body_pace(
    timeout: Duration,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse as _;
    use http_body::Body as _;
    use http_body_util::BodyExt as _;
    use std::sync::atomic::{AtomicBool, Ordering};
    if request.body().is_end_stream() {
        return next.run(request).await;
    }
    let stalled = Arc::new(AtomicBool::new(false));
    let seen = stalled.clone();
    let request = request.map(|body| {
        axum::body::Body::new(TimeoutBody::new(timeout, body).map_err(move |e| {
            if e.is::<TimeoutError>() {
                seen.store(true, Ordering::Relaxed);
            }
            e
        }))
    });
    let response = next.run(request).await;
    if stalled.load(Ordering::Relaxed) && response.status().is_client_error() {
        return (
            axum::http::StatusCode::REQUEST_TIMEOUT,
            format!(
                "the request's body sent nothing for {} s",
                timeout.as_secs()
            ),
        )
            .into_response();
    }
    response
}

/// `router` with both body limits applied.
fn with_limit(router: Router<AppState>, limit: usize) -> Router<AppState> {
    router
        .layer(axum::middleware::from_fn(move |r, n| {
            check_length(limit, r, n)
        }))
        .layer(DefaultBodyLimit::max(limit))
}

/// Paths answered without a token whatever the config: the health probes.
fn is_probe(path: &str) -> bool {
    matches!(
        path,
        "/healthz" | "/readyz" | "/v2/health/live" | "/v2/health/ready"
    )
}

/// With anonymous reads off, a request needs a valid token before anything else.
async fn guard(
    axum::extract::State(s): axum::extract::State<AppState>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse as _;
    if !s.config.anonymous_reads
        && !is_probe(request.uri().path())
        && let Err(e) = s.authorize(request.headers(), "read")
    {
        if error::mlflow_path(request.uri().path()) {
            return mlflow_refusal(e);
        }
        return e.into_response();
    }
    next.run(request).await
}

/// A refused token in MLflow's error form, for MLflow's clients.
fn mlflow_refusal(e: ApiError) -> axum::response::Response {
    let code = if e.status == axum::http::StatusCode::UNAUTHORIZED {
        "UNAUTHENTICATED"
    } else {
        "PERMISSION_DENIED"
    };
    error::MlflowErrorBody::response(e.status, code, e.message)
}

/// `GET /healthz`.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "server",
    summary = "Liveness: `ok`",
    security(),
    responses((status = 200, description = "The server answers", body = String, content_type = "text/plain")),
)]
async fn healthz() -> &'static str {
    "ok"
}

/// An answer with nothing to say: `{}`.
#[derive(Serialize, ToSchema)]
pub struct Empty {}

/// `/readyz`'s answer.
#[derive(Serialize, ToSchema)]
struct Ready {
    ready: bool,
}

/// `/readyz`: the stores answer and the server is not shutting down.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "server",
    summary = "Readiness: the stores answer and the server is not draining",
    security(),
    responses(
        (status = 200, description = "Ready", body = Ready),
        (status = 503, description = "Draining, or a store does not answer"),
    ),
)]
async fn ready(
    axum::extract::State(s): axum::extract::State<AppState>,
) -> Result<axum::Json<Ready>, ApiError> {
    use axum::http::StatusCode;
    if s.draining.load(std::sync::atomic::Ordering::Relaxed) {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "draining",
            "the server is shutting down",
        ));
    }
    let (tracking, registry) = (s.tracking.clone(), s.registry.clone());
    let ok = tokio::task::spawn_blocking(move || {
        tracking.ping().is_ok() && registry.meta("schema").is_ok()
    })
    .await
    .unwrap_or(false);
    if !ok {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "not_ready",
            "a store does not answer",
        ));
    }
    Ok(axum::Json(Ready { ready: true }))
}

/// Every route, each mounted with its handler's OpenAPI operation, in the three groups the
/// router layers apart.
struct Api {
    /// Under the server's body limit.
    main: OpenApiRouter<AppState>,
    /// MLflow's API, whose writes take the `run` scope once the server has tokens.
    #[cfg(feature = "mlflow")]
    mlflow: OpenApiRouter<AppState>,
    /// Predictions, under their own body limit.
    predict: OpenApiRouter<AppState>,
}

fn api() -> Api {
    let main = OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .routes(routes!(healthz))
        .routes(routes!(ready))
        .routes(routes!(metrics::scrape))
        .routes(routes!(openapi::serve))
        .merge(tracking::routes())
        .merge(runs::routes());
    // The marketplace and MLflow's API are features: a device's runtime leaves them out.
    #[cfg(feature = "marketplace")]
    let main = main.merge(marketplace::routes());
    Api {
        main,
        #[cfg(feature = "mlflow")]
        mlflow: mlflow::routes(),
        predict: predict::routes()
            .merge(oip::routes())
            .merge(invocations::routes()),
    }
}

impl Api {
    /// The OpenAPI document of every route.
    fn openapi(self) -> utoipa::openapi::OpenApi {
        let all = self.main.merge(self.predict);
        #[cfg(feature = "mlflow")]
        let all = all.merge(self.mlflow);
        all.into_openapi()
    }
}

/// The whole API.
pub fn router(state: AppState) -> Router {
    let timeout = Duration::from_secs(state.config.request_timeout_secs.max(1));
    let body_timeout = Duration::from_secs(state.config.body_timeout_secs.max(1));
    let api = api();
    let router = Router::from(api.main);
    #[cfg(feature = "mlflow")]
    let router = router.merge(Router::from(api.mlflow).route_layer(
        axum::middleware::from_fn_with_state(state.clone(), mlflow::writes_take_run),
    ));
    router
        .merge(with_limit(
            Router::from(api.predict),
            state.config.max_predict_body_mib.max(1) << 20,
        ))
        .route(
            "/api/2.0/mlflow/{*rest}",
            axum::routing::any(|| async {
                error::MlflowErrorBody::response(
                    axum::http::StatusCode::NOT_FOUND,
                    "ENDPOINT_NOT_FOUND",
                    "this MLflow endpoint is not served",
                )
            }),
        )
        .fallback(|| async { ApiError::not_found("no such route") })
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            metrics::track,
        ))
        .layer(axum::middleware::from_fn_with_state(state.clone(), guard))
        .layer(axum::middleware::from_fn(|r, n| {
            check_length(MAX_BODY, r, n)
        }))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(axum::middleware::from_fn(move |r, n| {
            body_pace(body_timeout, r, n)
        }))
        .layer(axum::middleware::from_fn(move |r, n| {
            deadline(timeout, r, n)
        }))
        .layer(axum::middleware::from_fn(error::json_errors))
        .with_state(state)
}
