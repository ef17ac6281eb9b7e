//! MLflow's REST API 2.0 over the tracking store, under `/api/2.0/mlflow/`, so the official
//! `mlflow` client works against `kiln serve` unchanged (`MLFLOW_TRACKING_URI`).
//!
//! Proto-JSON conventions: GET takes query parameters, POST a JSON body; int64 fields are
//! accepted as numbers or strings; errors are `{"error_code": ..., "message": ...}`.

use std::collections::{BTreeMap, HashMap};

use axum::{
    Json,
    body::Bytes,
    extract::{Query, State},
    http::StatusCode,
    response::{IntoResponse, Response},
};
use base64::Engine as _;
use serde::{Deserialize, Deserializer, Serialize, de::DeserializeOwned};
use serde_json::{Value as J, json};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{AppState, Empty, error::MlflowErrorBody, records::Binary};
use crate::tracking::{
    DatasetInput, Experiment, Metric, ModelRecord, ModelVersion, RunInfo, TrackedRun,
    TrackingError,
    experiments::DEFAULT_EXPERIMENT,
    search::{Filter, order},
};

/// An MLflow error answer.
#[derive(Debug)]
pub struct MlflowError(TrackingError);

impl From<TrackingError> for MlflowError {
    fn from(e: TrackingError) -> Self {
        MlflowError(e)
    }
}

impl IntoResponse for MlflowError {
    fn into_response(self) -> Response {
        let status = match &self.0 {
            TrackingError::NotFound(_) => StatusCode::NOT_FOUND,
            TrackingError::Storage(_) => StatusCode::INTERNAL_SERVER_ERROR,
            TrackingError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            _ => StatusCode::BAD_REQUEST,
        };
        let message = match &self.0 {
            // Storage failures say no more than that: no paths or internals.
            TrackingError::Storage(_) => "the tracking store failed".to_string(),
            e => e.to_string(),
        };
        MlflowErrorBody::response(status, self.0.mlflow_code(), message)
    }
}

/// A handler's answer: `T` as JSON, or MLflow's error.
type Answer<T = Empty> = Result<Json<T>, MlflowError>;

fn invalid(msg: impl Into<String>) -> MlflowError {
    MlflowError(TrackingError::Invalid(msg.into()))
}

/// Parses a POST body.
fn body<T: DeserializeOwned>(bytes: &Bytes) -> Result<T, MlflowError> {
    let bytes = if bytes.is_empty() { &b"{}"[..] } else { bytes };
    serde_json::from_slice(bytes).map_err(|e| invalid(format!("malformed request body: {e}")))
}

/// Runs store work off the async threads.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, TrackingError> + Send + 'static,
) -> Result<T, MlflowError> {
    super::store_task(f).await
}

/// An int64 given as a number or a string.
fn int64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum I {
        N(i64),
        F(f64),
        S(String),
    }
    Ok(match Option::<I>::deserialize(d)? {
        None => None,
        Some(I::N(n)) => Some(n),
        // A number serde could not read as an i64: a whole one within range is taken (JSON
        // `1e3`), anything else refused rather than saturated.
        Some(I::F(f)) => {
            const LIMIT: f64 = 9_223_372_036_854_775_808.0; // 2^63
            if f.fract() != 0.0 || !(-LIMIT..LIMIT).contains(&f) {
                return Err(serde::de::Error::custom(format!(
                    "`{f}` is not a 64-bit integer"
                )));
            }
            Some(f as i64)
        }
        Some(I::S(s)) => Some(
            s.parse()
                .map_err(|_| serde::de::Error::custom(format!("`{s}` is not an integer")))?,
        ),
    })
}

/// A double given as a number or a string (`NaN`, `Infinity`...).
fn double<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    crate::tracking::experiments::json_f64::deserialize(d)
}

/// A tag or a parameter (MLflow's `RunTag`, `Param`, `ExperimentTag`...).
#[derive(Debug, Deserialize, Serialize, ToSchema)]
struct KeyValue {
    key: String,
    #[serde(default)]
    value: String,
}

fn kv_list(map: &BTreeMap<String, String>) -> Vec<KeyValue> {
    map.iter()
        .map(|(k, v)| KeyValue {
            key: k.clone(),
            value: v.clone(),
        })
        .collect()
}

/// A double: a number, or `NaN`, `Infinity` or `-Infinity` as text.
struct Double;

impl utoipa::PartialSchema for Double {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Type};
        OneOfBuilder::new()
            .item(ObjectBuilder::new().schema_type(Type::Number))
            .item(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .enum_values(Some(["NaN", "Infinity", "-Infinity"])),
            )
            .into()
    }
}

impl ToSchema for Double {}

/// MLflow's `Experiment`.
#[derive(Serialize, ToSchema)]
struct ExperimentDoc {
    experiment_id: String,
    name: String,
    artifact_location: String,
    /// `active` or `deleted`.
    lifecycle_stage: String,
    creation_time: i64,
    last_update_time: i64,
    tags: Vec<KeyValue>,
}

/// MLflow's `RunInfo`.
#[derive(Serialize, ToSchema)]
struct RunInfoDoc {
    run_id: String,
    /// The same as `run_id`, for older clients.
    run_uuid: String,
    run_name: String,
    experiment_id: String,
    user_id: String,
    /// RUNNING, SCHEDULED, FINISHED, FAILED or KILLED.
    status: String,
    start_time: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    end_time: Option<i64>,
    artifact_uri: String,
    lifecycle_stage: String,
}

/// MLflow's `Metric`: one point.
#[derive(Serialize, ToSchema)]
struct MetricDoc {
    key: String,
    #[serde(with = "crate::tracking::experiments::json_f64")]
    #[schema(value_type = Double)]
    value: f64,
    timestamp: i64,
    step: i64,
}

/// MLflow's `RunData`: the latest point of each metric, the parameters and the tags.
#[derive(Serialize, ToSchema)]
struct RunData {
    metrics: Vec<MetricDoc>,
    params: Vec<KeyValue>,
    tags: Vec<KeyValue>,
}

/// MLflow's `RunInputs`.
#[derive(Serialize, ToSchema)]
struct RunInputs {
    dataset_inputs: Vec<DatasetInputDoc>,
}

/// MLflow's `DatasetInput`.
#[derive(Serialize, ToSchema)]
struct DatasetInputDoc {
    tags: Vec<KeyValue>,
    dataset: DatasetDoc,
}

/// MLflow's `Dataset`.
#[derive(Serialize, Deserialize, ToSchema)]
struct DatasetDoc {
    #[serde(default)]
    name: String,
    #[serde(default)]
    digest: String,
    #[serde(default)]
    source_type: String,
    #[serde(default)]
    source: String,
    #[serde(default)]
    schema: String,
    #[serde(default)]
    profile: String,
}

/// MLflow's `Run`.
#[derive(Serialize, ToSchema)]
struct RunDoc {
    info: RunInfoDoc,
    data: RunData,
    inputs: RunInputs,
}

fn kv_map(list: Vec<KeyValue>) -> BTreeMap<String, String> {
    list.into_iter().map(|t| (t.key, t.value)).collect()
}

fn experiment_json(e: &Experiment) -> ExperimentDoc {
    ExperimentDoc {
        experiment_id: e.experiment_id.clone(),
        name: e.name.clone(),
        artifact_location: e.artifact_location.clone(),
        lifecycle_stage: e.lifecycle_stage.clone(),
        creation_time: e.creation_time,
        last_update_time: e.last_update_time,
        tags: kv_list(&e.tags),
    }
}

fn info_json(i: &RunInfo) -> RunInfoDoc {
    RunInfoDoc {
        run_id: i.run_id.clone(),
        run_uuid: i.run_id.clone(),
        run_name: i.run_name.clone(),
        experiment_id: i.experiment_id.clone(),
        user_id: i.user_id.clone(),
        status: i.status.clone(),
        start_time: i.start_time,
        end_time: i.end_time,
        artifact_uri: i.artifact_uri.clone(),
        lifecycle_stage: i.lifecycle_stage.clone(),
    }
}

fn metric_json(key: &str, m: &Metric) -> MetricDoc {
    MetricDoc {
        key: key.to_string(),
        value: m.value,
        timestamp: m.timestamp,
        step: m.step,
    }
}

fn run_json(r: &TrackedRun) -> RunDoc {
    RunDoc {
        info: info_json(&r.info),
        data: RunData {
            metrics: r.metrics.iter().map(|(k, m)| metric_json(k, m)).collect(),
            params: kv_list(&r.params),
            tags: kv_list(&r.tags),
        },
        inputs: RunInputs {
            dataset_inputs: r
                .inputs
                .iter()
                .map(|d| DatasetInputDoc {
                    tags: kv_list(&d.tags),
                    dataset: DatasetDoc {
                        name: d.name.clone(),
                        digest: d.digest.clone(),
                        source_type: d.source_type.clone(),
                        source: d.source.clone(),
                        schema: d.schema.clone(),
                        profile: d.profile.clone(),
                    },
                })
                .collect(),
        },
    }
}

fn required<'a>(q: &'a HashMap<String, String>, key: &str) -> Result<&'a str, MlflowError> {
    q.get(key)
        .map(String::as_str)
        .filter(|v| !v.is_empty())
        .ok_or_else(|| invalid(format!("missing value for required parameter `{key}`")))
}

fn page(token: Option<&str>) -> Result<usize, MlflowError> {
    match token.filter(|t| !t.is_empty()) {
        None => Ok(0),
        Some(t) => base64::engine::general_purpose::STANDARD
            .decode(t)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| invalid("invalid page_token")),
    }
}

fn next_token(offset: usize, shown: usize, total: usize) -> Option<String> {
    (offset + shown < total)
        .then(|| base64::engine::general_purpose::STANDARD.encode((offset + shown).to_string()))
}

/// MLflow's endpoints that are POSTs but only read.
const READ_POSTS: [&str; 5] = [
    "experiments/search",
    "runs/search",
    "logged-models/search",
    "registered-models/search",
    "registered-models/get-latest-versions",
];

/// Whether a request to MLflow's API changes anything.
fn writes(request: &axum::extract::Request) -> bool {
    use axum::http::Method;
    let m = request.method();
    if m == Method::GET || m == Method::HEAD {
        return false;
    }
    let endpoint = request.uri().path().strip_prefix("/api/2.0/mlflow/");
    !(m == Method::POST && endpoint.is_some_and(|e| READ_POSTS.contains(&e)))
}

/// Once the server config has tokens, MLflow's writes take the `run` scope (the `mlflow`
/// client sends `MLFLOW_TRACKING_TOKEN` as a bearer token); reads follow
/// `anonymous_reads`. A server without tokens takes writes from anyone, as an MLflow
/// tracking server does.
pub async fn writes_take_run(
    State(s): State<AppState>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    if !s.config.tokens.is_empty()
        && writes(&request)
        && let Err(e) = s.authorize(request.headers(), "run")
    {
        return super::mlflow_refusal(e);
    }
    next.run(request).await
}

/// The routes under `/api/2.0/mlflow/` and MLflow's artifact proxy.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_experiment))
        .routes(routes!(get_experiment))
        .routes(routes!(get_experiment_by_name))
        .routes(routes!(search_experiments, search_experiments_get))
        .routes(routes!(delete_experiment))
        .routes(routes!(restore_experiment))
        .routes(routes!(update_experiment))
        .routes(routes!(set_experiment_tag))
        .routes(routes!(create_run))
        .routes(routes!(get_run))
        .routes(routes!(update_run))
        .routes(routes!(delete_run))
        .routes(routes!(restore_run))
        .routes(routes!(log_metric))
        .routes(routes!(log_param))
        .routes(routes!(set_tag))
        .routes(routes!(delete_tag))
        .routes(routes!(log_batch))
        .routes(routes!(log_inputs))
        .routes(routes!(search_runs))
        .routes(routes!(metric_history))
        .routes(routes!(search_logged_models))
        .routes(routes!(create_registered_model))
        .routes(routes!(get_registered_model))
        .routes(routes!(
            search_registered_models_get,
            search_registered_models
        ))
        .routes(routes!(update_registered_model))
        .routes(routes!(set_registered_model_tag))
        .routes(routes!(latest_versions, latest_versions_get))
        .routes(routes!(set_alias, delete_alias, get_by_alias))
        .routes(routes!(create_model_version))
        .routes(routes!(get_model_version))
        .routes(routes!(search_model_versions))
        .routes(routes!(model_version_uri))
        .routes(routes!(list_artifacts))
        .routes(routes!(download_artifact, upload_artifact))
}

/// `logged-models/search`.
#[derive(Deserialize, ToSchema)]
struct SearchLoggedModels {
    #[serde(default)]
    experiment_ids: Vec<String>,
}

/// Logged models found: none.
#[derive(Serialize, ToSchema)]
struct LoggedModels {
    models: Vec<serde_json::Map<String, J>>,
}

/// MLflow 3's logged models: Kiln records models in its own registry (`register:`), none
/// as MLflow logged models, so a search finds none; the experiments must exist.
#[utoipa::path(
    post,
    path = "/api/2.0/mlflow/logged-models/search",
    tag = "mlflow",
    summary = "Search logged models",
    request_body = SearchLoggedModels,
    security(("bearer" = []), ()),
    responses(
        (status = 200, description = "None: Kiln keeps no logged models", body = LoggedModels),
        (status = 404, description = "No such experiment"),
    ),
)]
async fn search_logged_models(State(s): State<AppState>, b: Bytes) -> Answer<LoggedModels> {
    let req: SearchLoggedModels = body(&b)?;
    blocking(move || {
        for id in &req.experiment_ids {
            s.tracking.experiment(id)?;
        }
        Ok(())
    })
    .await?;
    Ok(Json(LoggedModels { models: Vec::new() }))
}

/// The artifact proxy's root.
pub(super) const ARTIFACTS: &str = "/api/2.0/mlflow-artifacts/artifacts";

/// Whether `request` is an artifact upload, which has its own limit
/// ([`ServerConfig::max_artifact_mib`](super::ServerConfig)) instead of the API's.
pub(super) fn is_artifact_upload(request: &axum::extract::Request) -> bool {
    request.method() == axum::http::Method::PUT
        && request
            .uri()
            .path()
            .strip_prefix(ARTIFACTS)
            .is_some_and(|rest| rest.starts_with('/'))
}

/// Checks an artifact path names a run that exists, under its own experiment:
/// `<experiment>/<run>/artifacts/...`.
fn run_of_path(s: &AppState, path: &str) -> Result<(), TrackingError> {
    crate::tracking::artifacts::check_path(path)?;
    let mut parts = path.splitn(4, '/');
    let (experiment, run, root) = (parts.next(), parts.next(), parts.next());
    match (experiment, run, root) {
        (Some(experiment), Some(run), Some("artifacts")) => {
            let found = s.tracking.tracked_run(run)?;
            if found.info.experiment_id != experiment {
                return Err(TrackingError::NotFound(format!(
                    "run {run} is not in experiment `{experiment}` (it is in {})",
                    found.info.experiment_id
                )));
            }
            Ok(())
        }
        _ => Err(TrackingError::Invalid(format!(
            "`{path}` is not under <experiment>/<run>/artifacts"
        ))),
    }
}

/// An artifact's path: `<experiment>/<run>/artifacts/...`.
const ARTIFACT_PATH: &str = "<experiment>/<run>/artifacts/...";

#[utoipa::path(
    put,
    path = "/api/2.0/mlflow-artifacts/artifacts/{*path}",
    tag = "mlflow",
    summary = "Upload an artifact",
    params(("path" = String, Path, description = ARTIFACT_PATH)),
    request_body(content((Binary = "application/octet-stream"))),
    security(("bearer" = ["run"]), ()),
    responses(
        (status = 200, description = "Stored", body = Empty),
        (status = 404, description = "No such run in that experiment"),
    ),
)]
async fn upload_artifact(
    State(s): State<AppState>,
    axum::extract::Path(path): axum::extract::Path<String>,
    headers: axum::http::HeaderMap,
    request_body: axum::body::Body,
) -> Answer {
    use futures_util::StreamExt as _;
    let limit = (s.config.max_artifact_mib.max(1) as u64) << 20;
    let announced = headers
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if announced.is_some_and(|n| n > limit) {
        return Err(TrackingError::TooLarge(crate::tracking::artifacts::too_large(limit)).into());
    }
    {
        let (s, path) = (s.clone(), path.clone());
        blocking(move || run_of_path(&s, &path)).await?;
    }
    let mut upload = s.tracking.begin_upload(limit)?;
    let mut stream = request_body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| invalid(format!("reading the upload: {e}")))?;
        upload.write(&chunk)?;
    }
    blocking(move || s.tracking.commit_upload(&path, upload)).await?;
    Ok(Json(Empty {}))
}

/// Streams an artifact from its file: it may be as large as uploads allow (2 GiB by
/// default), and a download holds only a chunk of it in memory at a time.
#[utoipa::path(
    get,
    path = "/api/2.0/mlflow-artifacts/artifacts/{*path}",
    tag = "mlflow",
    summary = "Download an artifact",
    params(("path" = String, Path, description = ARTIFACT_PATH)),
    security(("bearer" = []), ()),
    responses(
        (status = 200, description = "The artifact's bytes", body = Binary, content_type = "application/octet-stream"),
        (status = 400, description = "Not an artifact path"),
        (status = 404, description = "No such run or artifact"),
    ),
)]
async fn download_artifact(
    State(s): State<AppState>,
    axum::extract::Path(path): axum::extract::Path<String>,
) -> Result<Response, MlflowError> {
    use axum::http::{HeaderValue, header};
    let (file, size) = blocking(move || {
        run_of_path(&s, &path)?;
        let (file, size) = s.tracking.artifact(&path)?;
        let file = std::fs::File::open(&file).map_err(|e| TrackingError::Storage(e.to_string()))?;
        Ok((file, size))
    })
    .await?;
    let chunks =
        tokio_util::io::ReaderStream::with_capacity(tokio::fs::File::from_std(file), 256 << 10);
    Ok((
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/octet-stream"),
            ),
            (header::CONTENT_LENGTH, HeaderValue::from(size)),
        ],
        axum::body::Body::from_stream(chunks),
    )
        .into_response())
}

/// MLflow's `FileInfo`.
#[derive(Serialize, ToSchema)]
struct FileInfo {
    path: String,
    is_dir: bool,
    /// A file's size in bytes.
    #[serde(skip_serializing_if = "Option::is_none")]
    file_size: Option<u64>,
}

/// `GET .../artifacts`.
#[derive(Serialize, ToSchema)]
struct Files {
    files: Vec<FileInfo>,
}

#[utoipa::path(
    get,
    path = "/api/2.0/mlflow-artifacts/artifacts",
    tag = "mlflow",
    summary = "List artifacts",
    params(("path" = String, Query, description = ARTIFACT_PATH)),
    security(("bearer" = []), ()),
    responses(
        (status = 200, description = "The directory's entries", body = Files),
        (status = 400, description = "No path, or not an artifact path"),
        (status = 404, description = "No such run or directory"),
    ),
)]
async fn list_artifacts(
    State(s): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
) -> Answer<Files> {
    let path = required(&q, "path")?.trim_end_matches('/').to_string();
    let entries = blocking(move || {
        run_of_path(&s, &path)?;
        s.tracking.list_artifacts(&path)
    })
    .await?;
    let files = entries
        .into_iter()
        .map(|e| FileInfo {
            path: e.name,
            is_dir: e.is_dir,
            file_size: e.size,
        })
        .collect();
    Ok(Json(Files { files }))
}

/// `experiments/create`.
#[derive(Deserialize, ToSchema)]
struct CreateExperiment {
    name: String,
    artifact_location: Option<String>,
    #[serde(default)]
    tags: Vec<KeyValue>,
}

/// The experiment created.
#[derive(Serialize, ToSchema)]
struct ExperimentCreated {
    experiment_id: String,
}

#[utoipa::path(
    post,
    path = "/api/2.0/mlflow/experiments/create",
    tag = "mlflow",
    summary = "Create an experiment",
    request_body = CreateExperiment,
    security(("bearer" = ["run"]), ()),
    responses((status = 200, description = "Created", body = ExperimentCreated)),
)]
async fn create_experiment(State(s): State<AppState>, b: Bytes) -> Answer<ExperimentCreated> {
    let req: CreateExperiment = body(&b)?;
    let id = blocking(move || {
        let loc = req.artifact_location.filter(|l| !l.is_empty());
        s.tracking
            .create_experiment(&req.name, loc.as_deref(), &kv_map(req.tags))
    })
    .await?;
    Ok(Json(ExperimentCreated { experiment_id: id }))
}

/// An experiment.
#[derive(Serialize, ToSchema)]
struct ExperimentAnswer {
    experiment: ExperimentDoc,
}

#[utoipa::path(
    get,
    path = "/api/2.0/mlflow/experiments/get",
    tag = "mlflow",
    summary = "An experiment by id",
    params(("experiment_id" = String, Query)),
    security(("bearer" = []), ()),
    responses(
        (status = 200, description = "The experiment", body = ExperimentAnswer),
        (status = 400, description = "No `experiment_id`"),
        (status = 404, description = "No such experiment"),
    ),
)]
async fn get_experiment(
    State(s): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
) -> Answer<ExperimentAnswer> {
    let id = required(&q, "experiment_id")?.to_string();
    let e = blocking(move || {
        if id == "0" {
            s.tracking.ensure_experiment(DEFAULT_EXPERIMENT)?;
        }
        s.tracking.experiment(&id)
    })
    .await?;
    Ok(Json(ExperimentAnswer {
        experiment: experiment_json(&e),
    }))
}

#[utoipa::path(
    get,
    path = "/api/2.0/mlflow/experiments/get-by-name",
    tag = "mlflow",
    summary = "An experiment by name",
    params(("experiment_name" = String, Query)),
    security(("bearer" = []), ()),
    responses(
        (status = 200, description = "The experiment", body = ExperimentAnswer),
        (status = 400, description = "No `experiment_name`"),
        (status = 404, description = "No such experiment"),
    ),
)]
async fn get_experiment_by_name(
    State(s): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
) -> Answer<ExperimentAnswer> {
    let name = required(&q, "experiment_name")?.to_string();
    let e = blocking(move || {
        if name == DEFAULT_EXPERIMENT {
            return s.tracking.ensure_experiment(DEFAULT_EXPERIMENT);
        }
        s.tracking.experiment_by_name(&name)
    })
    .await?;
    Ok(Json(ExperimentAnswer {
        experiment: experiment_json(&e),
    }))
}

/// `experiments/search`.
#[derive(Deserialize, Default, ToSchema)]
struct SearchExperiments {
    #[serde(default, deserialize_with = "int64")]
    #[schema(value_type = Option<i64>)]
    max_results: Option<i64>,
    page_token: Option<String>,
    filter: Option<String>,
    #[serde(default)]
    order_by: Vec<String>,
    view_type: Option<String>,
}

/// A page of experiments.
#[derive(Serialize, ToSchema)]
struct Experiments {
    experiments: Vec<ExperimentDoc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_page_token: Option<String>,
}

#[utoipa::path(
    get,
    path = "/api/2.0/mlflow/experiments/search",
    tag = "mlflow",
    summary = "Search experiments",
    params(
        ("max_results" = Option<i64>, Query),
        ("page_token" = Option<String>, Query),
        ("filter" = Option<String>, Query),
        ("view_type" = Option<String>, Query, description = "ACTIVE_ONLY, DELETED_ONLY or ALL"),
    ),
    security(("bearer" = []), ()),
    responses(
        (status = 200, description = "A page of experiments", body = Experiments),
        (status = 400, description = "A malformed filter or page token"),
    ),
)]
async fn search_experiments_get(
    state: State<AppState>,
    Query(q): Query<HashMap<String, String>>,
) -> Answer<Experiments> {
    let req = SearchExperiments {
        max_results: q.get("max_results").and_then(|v| v.parse().ok()),
        page_token: q.get("page_token").cloned(),
        filter: q.get("filter").cloned(),
        order_by: Vec::new(),
        view_type: q.get("view_type").cloned(),
    };
    experiments_answer(state, req).await
}

#[utoipa::path(
    post,
    path = "/api/2.0/mlflow/experiments/search",
    tag = "mlflow",
    summary = "Search experiments",
    request_body = SearchExperiments,
    security(("bearer" = []), ()),
    responses((status = 200, description = "A page of experiments", body = Experiments)),
)]
async fn search_experiments(state: State<AppState>, b: Bytes) -> Answer<Experiments> {
    experiments_answer(state, body(&b)?).await
}

async fn experiments_answer(
    State(s): State<AppState>,
    req: SearchExperiments,
) -> Answer<Experiments> {
    let offset = page(req.page_token.as_deref())?;
    let max = req.max_results.unwrap_or(1000).clamp(1, 50_000) as usize;
    let view = req.view_type.unwrap_or_else(|| "ACTIVE_ONLY".into());
    let filter = req.filter.unwrap_or_default();
    let all = blocking(move || {
        s.tracking.ensure_experiment(DEFAULT_EXPERIMENT)?;
        s.tracking.experiments()
    })
    .await?;
    // Experiments filter by name (`name = 'x'`, `name LIKE 'x%'`) and tags, as runs do.
    let filter = Filter::parse(&filter)?;
    let mut list: Vec<Experiment> = all
        .into_iter()
        .filter(|e| match view.as_str() {
            "DELETED_ONLY" => e.lifecycle_stage == "deleted",
            "ALL" => true,
            _ => e.lifecycle_stage == "active",
        })
        .filter(|e| filter.matches(&experiment_as_run(e)))
        .collect();
    list.sort_by(|a, b| {
        b.creation_time
            .cmp(&a.creation_time)
            .then(b.experiment_id.len().cmp(&a.experiment_id.len()))
            .then(b.experiment_id.cmp(&a.experiment_id))
    });
    if let Some(o) = req.order_by.first() {
        let desc = o.to_ascii_uppercase().ends_with("DESC");
        if o.starts_with("name") {
            list.sort_by(|a, b| a.name.cmp(&b.name));
            if desc {
                list.reverse();
            }
        }
    }
    let total = list.len();
    let experiments: Vec<ExperimentDoc> = list
        .iter()
        .skip(offset)
        .take(max)
        .map(experiment_json)
        .collect();
    Ok(Json(Experiments {
        next_page_token: next_token(offset, experiments.len(), total),
        experiments,
    }))
}

/// An experiment seen through the run filter: `name` as an attribute, its tags as tags.
fn experiment_as_run(e: &Experiment) -> TrackedRun {
    TrackedRun {
        info: RunInfo {
            run_id: e.experiment_id.clone(),
            run_name: e.name.clone(),
            experiment_id: e.experiment_id.clone(),
            user_id: String::new(),
            status: String::new(),
            start_time: e.creation_time,
            end_time: None,
            artifact_uri: e.artifact_location.clone(),
            lifecycle_stage: e.lifecycle_stage.clone(),
        },
        params: BTreeMap::new(),
        tags: e.tags.clone(),
        metrics: BTreeMap::new(),
        inputs: Vec::new(),
    }
}

/// An experiment to change: `experiments/delete`, `restore`, `update` (`new_name`),
/// `set-experiment-tag` (`key`, `value`).
#[derive(Deserialize, ToSchema)]
struct ExperimentId {
    experiment_id: String,
    new_name: Option<String>,
    key: Option<String>,
    value: Option<String>,
}

async fn modify_experiment(
    s: AppState,
    b: Bytes,
    change: impl FnOnce(&mut Experiment, &ExperimentId) + Send + 'static,
) -> Answer {
    let req: ExperimentId = body(&b)?;
    blocking(move || {
        s.tracking.modify_experiment(&req.experiment_id, |e| {
            change(e, &req);
            Ok(())
        })
    })
    .await?;
    Ok(Json(Empty {}))
}

#[utoipa::path(
    post,
    path = "/api/2.0/mlflow/experiments/delete",
    tag = "mlflow",
    summary = "Delete an experiment",
    request_body = ExperimentId,
    security(("bearer" = ["run"]), ()),
    responses(
        (status = 200, description = "Done", body = Empty),
        (status = 404, description = "No such experiment"),
    ),
)]
async fn delete_experiment(State(s): State<AppState>, b: Bytes) -> Answer {
    modify_experiment(s, b, |e, _| e.lifecycle_stage = "deleted".into()).await
}

#[utoipa::path(
    post,
    path = "/api/2.0/mlflow/experiments/restore",
    tag = "mlflow",
    summary = "Restore an experiment",
    request_body = ExperimentId,
    security(("bearer" = ["run"]), ()),
    responses(
        (status = 200, description = "Done", body = Empty),
        (status = 404, description = "No such experiment"),
    ),
)]
async fn restore_experiment(State(s): State<AppState>, b: Bytes) -> Answer {
    modify_experiment(s, b, |e, _| e.lifecycle_stage = "active".into()).await
}

#[utoipa::path(
    post,
    path = "/api/2.0/mlflow/experiments/update",
    tag = "mlflow",
    summary = "Rename an experiment",
    request_body = ExperimentId,
    security(("bearer" = ["run"]), ()),
    responses(
        (status = 200, description = "Done", body = Empty),
        (status = 404, description = "No such experiment"),
    ),
)]
async fn update_experiment(State(s): State<AppState>, b: Bytes) -> Answer {
    modify_experiment(s, b, |e, r| {
        if let Some(n) = &r.new_name {
            e.name = n.clone();
        }
    })
    .await
}

#[utoipa::path(
    post,
    path = "/api/2.0/mlflow/experiments/set-experiment-tag",
    tag = "mlflow",
    summary = "Tag an experiment",
    request_body = ExperimentId,
    security(("bearer" = ["run"]), ()),
    responses(
        (status = 200, description = "Done", body = Empty),
        (status = 404, description = "No such experiment"),
    ),
)]
async fn set_experiment_tag(State(s): State<AppState>, b: Bytes) -> Answer {
    modify_experiment(s, b, |e, r| {
        if let Some(k) = &r.key {
            e.tags
                .insert(k.clone(), r.value.clone().unwrap_or_default());
        }
    })
    .await
}

/// `runs/create`.
#[derive(Deserialize, ToSchema)]
struct CreateRun {
    experiment_id: Option<String>,
    run_name: Option<String>,
    #[serde(default, deserialize_with = "int64")]
    #[schema(value_type = Option<i64>)]
    start_time: Option<i64>,
    #[serde(default)]
    tags: Vec<KeyValue>,
    user_id: Option<String>,
}

/// A run.
#[derive(Serialize, ToSchema)]
struct RunAnswer {
    run: RunDoc,
}

#[utoipa::path(
    post,
    path = "/api/2.0/mlflow/runs/create",
    tag = "mlflow",
    summary = "Create a run",
    request_body = CreateRun,
    security(("bearer" = ["run"]), ()),
    responses(
        (status = 200, description = "The run", body = RunAnswer),
        (status = 404, description = "No such experiment"),
    ),
)]
async fn create_run(State(s): State<AppState>, b: Bytes) -> Answer<RunAnswer> {
    let req: CreateRun = body(&b)?;
    let run = blocking(move || {
        let experiment = match req.experiment_id.filter(|e| !e.is_empty()) {
            Some(id) if id != "0" => id,
            _ => {
                s.tracking
                    .ensure_experiment(DEFAULT_EXPERIMENT)?
                    .experiment_id
            }
        };
        let mut tags = kv_map(req.tags);
        if let Some(u) = req.user_id.filter(|u| !u.is_empty()) {
            tags.entry("mlflow.user".into()).or_insert(u);
        }
        s.tracking.create_run(
            &experiment,
            req.run_name.as_deref().filter(|n| !n.is_empty()),
            req.start_time,
            &tags,
        )
    })
    .await?;
    Ok(Json(RunAnswer {
        run: run_json(&run),
    }))
}

fn run_id_of(q: &HashMap<String, String>) -> Result<String, MlflowError> {
    q.get("run_id")
        .or_else(|| q.get("run_uuid"))
        .filter(|v| !v.is_empty())
        .cloned()
        .ok_or_else(|| invalid("missing value for required parameter `run_id`"))
}

#[utoipa::path(
    get,
    path = "/api/2.0/mlflow/runs/get",
    tag = "mlflow",
    summary = "A run",
    params(
        ("run_id" = Option<String>, Query, description = "The run (or `run_uuid`)"),
        ("run_uuid" = Option<String>, Query),
    ),
    security(("bearer" = []), ()),
    responses(
        (status = 200, description = "The run", body = RunAnswer),
        (status = 400, description = "No `run_id`"),
        (status = 404, description = "No such run"),
    ),
)]
async fn get_run(
    State(s): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
) -> Answer<RunAnswer> {
    let id = run_id_of(&q)?;
    let run = blocking(move || s.tracking.tracked_run(&id)).await?;
    Ok(Json(RunAnswer {
        run: run_json(&run),
    }))
}

/// A change to a run: `runs/update` (`status`, `end_time`, `run_name`), `delete`,
/// `restore`, `log-metric` (`key`, `value`, `timestamp`, `step`), `log-parameter` and
/// `set-tag` (`key`, `value`), `delete-tag` (`key`).
#[derive(Deserialize, ToSchema)]
struct RunRequest {
    run_id: Option<String>,
    run_uuid: Option<String>,
    status: Option<String>,
    #[serde(default, deserialize_with = "int64")]
    #[schema(value_type = Option<i64>)]
    end_time: Option<i64>,
    run_name: Option<String>,
    key: Option<String>,
    value: Option<J>,
    #[serde(default, deserialize_with = "int64")]
    #[schema(value_type = Option<i64>)]
    timestamp: Option<i64>,
    #[serde(default, deserialize_with = "int64")]
    #[schema(value_type = Option<i64>)]
    step: Option<i64>,
}

impl RunRequest {
    fn id(&self) -> Result<String, MlflowError> {
        self.run_id
            .clone()
            .or_else(|| self.run_uuid.clone())
            .filter(|v| !v.is_empty())
            .ok_or_else(|| invalid("missing value for required parameter `run_id`"))
    }

    fn key(&self) -> Result<String, MlflowError> {
        self.key
            .clone()
            .ok_or_else(|| invalid("missing value for required parameter `key`"))
    }

    fn text(&self) -> String {
        match &self.value {
            Some(J::String(v)) => v.clone(),
            Some(J::Null) | None => String::new(),
            Some(other) => other.to_string(),
        }
    }
}

/// A run's info.
#[derive(Serialize, ToSchema)]
struct RunInfoAnswer {
    run_info: RunInfoDoc,
}

#[utoipa::path(
    post,
    path = "/api/2.0/mlflow/runs/update",
    tag = "mlflow",
    summary = "Update a run's status, end time or name",
    request_body = RunRequest,
    security(("bearer" = ["run"]), ()),
    responses(
        (status = 200, description = "The run's info", body = RunInfoAnswer),
        (status = 404, description = "No such run"),
    ),
)]
async fn update_run(State(s): State<AppState>, b: Bytes) -> Answer<RunInfoAnswer> {
    let req: RunRequest = body(&b)?;
    let id = req.id()?;
    let info = blocking(move || {
        s.tracking.update_run(
            &id,
            req.status.as_deref(),
            req.end_time,
            req.run_name.as_deref().filter(|n| !n.is_empty()),
        )
    })
    .await?;
    Ok(Json(RunInfoAnswer {
        run_info: info_json(&info),
    }))
}

#[utoipa::path(
    post,
    path = "/api/2.0/mlflow/runs/delete",
    tag = "mlflow",
    summary = "Delete a run",
    request_body = RunRequest,
    security(("bearer" = ["run"]), ()),
    responses(
        (status = 200, description = "Done", body = Empty),
        (status = 404, description = "No such run"),
    ),
)]
async fn delete_run(State(s): State<AppState>, b: Bytes) -> Answer {
    let id = body::<RunRequest>(&b)?.id()?;
    blocking(move || s.tracking.set_run_lifecycle(&id, "deleted")).await?;
    Ok(Json(Empty {}))
}

#[utoipa::path(
    post,
    path = "/api/2.0/mlflow/runs/restore",
    tag = "mlflow",
    summary = "Restore a run",
    request_body = RunRequest,
    security(("bearer" = ["run"]), ()),
    responses(
        (status = 200, description = "Done", body = Empty),
        (status = 404, description = "No such run"),
    ),
)]
async fn restore_run(State(s): State<AppState>, b: Bytes) -> Answer {
    let id = body::<RunRequest>(&b)?.id()?;
    blocking(move || s.tracking.set_run_lifecycle(&id, "active")).await?;
    Ok(Json(Empty {}))
}

#[utoipa::path(
    post,
    path = "/api/2.0/mlflow/runs/log-metric",
    tag = "mlflow",
    summary = "Log a metric point",
    request_body = RunRequest,
    security(("bearer" = ["run"]), ()),
    responses(
        (status = 200, description = "Done", body = Empty),
        (status = 404, description = "No such run"),
    ),
)]
async fn log_metric(State(s): State<AppState>, b: Bytes) -> Answer {
    let req: RunRequest = body(&b)?;
    let (id, key) = (req.id()?, req.key()?);
    let value = match &req.value {
        Some(v) => crate::tracking::experiments::json_f64::deserialize(v.clone())
            .map_err(|e| invalid(format!("metric `{key}`: {e}")))?,
        None => return Err(invalid("missing value for required parameter `value`")),
    };
    let point = Metric {
        value,
        timestamp: req.timestamp.unwrap_or(crate::now_ms() as i64),
        step: req.step.unwrap_or(0),
    };
    blocking(move || s.tracking.log_batch(&id, &[(key, point)], &[], &[])).await?;
    Ok(Json(Empty {}))
}

#[utoipa::path(
    post,
    path = "/api/2.0/mlflow/runs/log-parameter",
    tag = "mlflow",
    summary = "Log a parameter",
    request_body = RunRequest,
    security(("bearer" = ["run"]), ()),
    responses(
        (status = 200, description = "Done", body = Empty),
        (status = 404, description = "No such run"),
    ),
)]
async fn log_param(State(s): State<AppState>, b: Bytes) -> Answer {
    let req: RunRequest = body(&b)?;
    let (id, key, value) = (req.id()?, req.key()?, req.text());
    blocking(move || s.tracking.log_batch(&id, &[], &[(key, value)], &[])).await?;
    Ok(Json(Empty {}))
}

#[utoipa::path(
    post,
    path = "/api/2.0/mlflow/runs/set-tag",
    tag = "mlflow",
    summary = "Tag a run",
    request_body = RunRequest,
    security(("bearer" = ["run"]), ()),
    responses(
        (status = 200, description = "Done", body = Empty),
        (status = 404, description = "No such run"),
    ),
)]
async fn set_tag(State(s): State<AppState>, b: Bytes) -> Answer {
    let req: RunRequest = body(&b)?;
    let (id, key, value) = (req.id()?, req.key()?, req.text());
    blocking(move || s.tracking.log_batch(&id, &[], &[], &[(key, value)])).await?;
    Ok(Json(Empty {}))
}

#[utoipa::path(
    post,
    path = "/api/2.0/mlflow/runs/delete-tag",
    tag = "mlflow",
    summary = "Remove a run's tag",
    request_body = RunRequest,
    security(("bearer" = ["run"]), ()),
    responses(
        (status = 200, description = "Done", body = Empty),
        (status = 404, description = "No such run"),
    ),
)]
async fn delete_tag(State(s): State<AppState>, b: Bytes) -> Answer {
    let req: RunRequest = body(&b)?;
    let (id, key) = (req.id()?, req.key()?);
    blocking(move || s.tracking.delete_run_tag(&id, &key)).await?;
    Ok(Json(Empty {}))
}

/// A metric point of `runs/log-batch`.
#[derive(Deserialize, ToSchema)]
struct BatchMetric {
    key: String,
    #[serde(deserialize_with = "double")]
    #[schema(value_type = Double)]
    value: f64,
    #[serde(default, deserialize_with = "int64")]
    #[schema(value_type = Option<i64>)]
    timestamp: Option<i64>,
    #[serde(default, deserialize_with = "int64")]
    #[schema(value_type = Option<i64>)]
    step: Option<i64>,
}

/// `runs/log-batch`.
#[derive(Deserialize, ToSchema)]
struct LogBatch {
    run_id: String,
    #[serde(default)]
    metrics: Vec<BatchMetric>,
    #[serde(default)]
    params: Vec<KeyValue>,
    #[serde(default)]
    tags: Vec<KeyValue>,
}

#[utoipa::path(
    post,
    path = "/api/2.0/mlflow/runs/log-batch",
    tag = "mlflow",
    summary = "Log metrics, parameters and tags at once",
    request_body = LogBatch,
    security(("bearer" = ["run"]), ()),
    responses(
        (status = 200, description = "Logged", body = Empty),
        (status = 404, description = "No such run"),
    ),
)]
async fn log_batch(State(s): State<AppState>, b: Bytes) -> Answer {
    let req: LogBatch = body(&b)?;
    let now = crate::now_ms() as i64;
    let metrics: Vec<(String, Metric)> = req
        .metrics
        .into_iter()
        .map(|m| {
            (
                m.key,
                Metric {
                    value: m.value,
                    timestamp: m.timestamp.unwrap_or(now),
                    step: m.step.unwrap_or(0),
                },
            )
        })
        .collect();
    let params: Vec<(String, String)> = req.params.into_iter().map(|p| (p.key, p.value)).collect();
    let tags: Vec<(String, String)> = req.tags.into_iter().map(|t| (t.key, t.value)).collect();
    let id = req.run_id;
    blocking(move || s.tracking.log_batch(&id, &metrics, &params, &tags)).await?;
    Ok(Json(Empty {}))
}

/// `runs/log-inputs`.
#[derive(Deserialize, ToSchema)]
struct LogInputs {
    #[serde(default)]
    #[schema(required = true, min_length = 1)]
    run_id: String,
    #[serde(default)]
    datasets: Vec<DatasetInputBody>,
}

/// A dataset a run read.
#[derive(Deserialize, ToSchema)]
struct DatasetInputBody {
    #[serde(default)]
    tags: Vec<KeyValue>,
    dataset: DatasetDoc,
}

#[utoipa::path(
    post,
    path = "/api/2.0/mlflow/runs/log-inputs",
    tag = "mlflow",
    summary = "Log a run's datasets",
    request_body = LogInputs,
    security(("bearer" = ["run"]), ()),
    responses(
        (status = 200, description = "Logged", body = Empty),
        (status = 404, description = "No such run"),
    ),
)]
async fn log_inputs(State(s): State<AppState>, b: Bytes) -> Answer {
    // Logged-model inputs (`models`) are accepted and not kept: Kiln has no logged models.
    let req: LogInputs = body(&b)?;
    if req.run_id.is_empty() {
        return Err(invalid("missing value for required parameter `run_id`"));
    }
    let inputs = req
        .datasets
        .into_iter()
        .map(|d| DatasetInput {
            name: d.dataset.name,
            digest: d.dataset.digest,
            source_type: d.dataset.source_type,
            source: d.dataset.source,
            schema: d.dataset.schema,
            profile: d.dataset.profile,
            tags: kv_map(d.tags),
        })
        .collect();
    blocking(move || s.tracking.log_inputs(&req.run_id, inputs)).await?;
    Ok(Json(Empty {}))
}

/// `runs/search`.
#[derive(Deserialize, ToSchema)]
struct SearchRuns {
    #[serde(default)]
    experiment_ids: Vec<String>,
    filter: Option<String>,
    /// ACTIVE_ONLY, DELETED_ONLY or ALL.
    run_view_type: Option<String>,
    /// 1 to 50000.
    #[serde(default, deserialize_with = "int64")]
    #[schema(value_type = Option<i64>)]
    max_results: Option<i64>,
    #[serde(default)]
    order_by: Vec<String>,
    page_token: Option<String>,
}

/// A page of runs.
#[derive(Serialize, ToSchema)]
struct Runs {
    runs: Vec<RunDoc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_page_token: Option<String>,
}

#[utoipa::path(
    post,
    path = "/api/2.0/mlflow/runs/search",
    tag = "mlflow",
    summary = "Search runs",
    request_body = SearchRuns,
    security(("bearer" = []), ()),
    responses(
        (status = 200, description = "A page of runs", body = Runs),
        (status = 404, description = "No such experiment"),
    ),
)]
async fn search_runs(State(s): State<AppState>, b: Bytes) -> Answer<Runs> {
    let req: SearchRuns = body(&b)?;
    let filter = Filter::parse(req.filter.as_deref().unwrap_or(""))?;
    let offset = page(req.page_token.as_deref())?;
    let max = req.max_results.unwrap_or(1000);
    if !(1..=50_000).contains(&max) {
        return Err(invalid(format!(
            "max_results must be between 1 and 50000, not {max}"
        )));
    }
    let view = req.run_view_type.unwrap_or_else(|| "ACTIVE_ONLY".into());
    let ids = req.experiment_ids;
    let mut runs = blocking(move || s.tracking.tracked_runs(&ids)).await?;
    runs.retain(|r| {
        (match view.as_str() {
            "DELETED_ONLY" => r.info.lifecycle_stage == "deleted",
            "ALL" => true,
            _ => r.info.lifecycle_stage == "active",
        }) && filter.matches(r)
    });
    order(&mut runs, &req.order_by)?;
    let total = runs.len();
    let shown: Vec<RunDoc> = runs
        .iter()
        .skip(offset)
        .take(max as usize)
        .map(run_json)
        .collect();
    Ok(Json(Runs {
        next_page_token: next_token(offset, shown.len(), total),
        runs: shown,
    }))
}

/// A page of a metric's points.
#[derive(Serialize, ToSchema)]
struct MetricHistory {
    metrics: Vec<MetricDoc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_page_token: Option<String>,
}

#[utoipa::path(
    get,
    path = "/api/2.0/mlflow/metrics/get-history",
    tag = "mlflow",
    summary = "A metric's history",
    params(
        ("run_id" = Option<String>, Query, description = "The run (or `run_uuid`)"),
        ("run_uuid" = Option<String>, Query),
        ("metric_key" = String, Query),
        ("page_token" = Option<String>, Query),
        ("max_results" = Option<i64>, Query),
    ),
    security(("bearer" = []), ()),
    responses(
        (status = 200, description = "The points", body = MetricHistory),
        (status = 400, description = "No `run_id` or `metric_key`"),
        (status = 404, description = "No such run"),
    ),
)]
async fn metric_history(
    State(s): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
) -> Answer<MetricHistory> {
    let id = run_id_of(&q)?;
    let key = required(&q, "metric_key")?.to_string();
    let offset = page(q.get("page_token").map(String::as_str))?;
    let max: usize = q
        .get("max_results")
        .and_then(|m| m.parse().ok())
        .unwrap_or(25_000);
    let history = {
        let key = key.clone();
        blocking(move || s.tracking.metric_history(&id, &key)).await?
    };
    let metrics: Vec<MetricDoc> = history
        .iter()
        .skip(offset)
        .take(max)
        .map(|m| metric_json(&key, m))
        .collect();
    Ok(Json(MetricHistory {
        next_page_token: next_token(offset, metrics.len(), history.len()),
        metrics,
    }))
}

/// MLflow's stages, as a view of aliases: the version `production` points at is in
/// Production, the one `staging` points at in Staging, every other in None.
fn stage(version: u64, aliases: &BTreeMap<String, u64>) -> &'static str {
    let at = |alias: &str| {
        aliases
            .iter()
            .any(|(a, v)| *v == version && a.eq_ignore_ascii_case(alias))
    };
    if at("production") {
        "Production"
    } else if at("staging") {
        "Staging"
    } else {
        "None"
    }
}

/// MLflow's `ModelVersion`.
#[derive(Serialize, ToSchema)]
struct ModelVersionDoc {
    name: String,
    version: String,
    creation_timestamp: u64,
    last_updated_timestamp: u64,
    /// `None`, `Staging` or `Production`: a view of the `staging` and `production` aliases.
    current_stage: &'static str,
    description: String,
    source: String,
    run_id: String,
    /// `READY`.
    status: &'static str,
    tags: Vec<KeyValue>,
    aliases: Vec<String>,
}

/// MLflow's `RegisteredModelAlias`.
#[derive(Serialize, ToSchema)]
struct ModelAlias {
    alias: String,
    version: String,
}

/// MLflow's `RegisteredModel`.
#[derive(Serialize, ToSchema)]
struct RegisteredModelDoc {
    name: String,
    creation_timestamp: u64,
    last_updated_timestamp: u64,
    description: String,
    latest_versions: Vec<ModelVersionDoc>,
    tags: Vec<KeyValue>,
    aliases: Vec<ModelAlias>,
}

fn version_json(v: &ModelVersion, aliases: &BTreeMap<String, u64>) -> ModelVersionDoc {
    ModelVersionDoc {
        name: v.model.clone(),
        version: v.version.to_string(),
        creation_timestamp: v.created_ms,
        last_updated_timestamp: v.created_ms,
        current_stage: stage(v.version, aliases),
        description: v.description.clone(),
        source: v.source.clone(),
        run_id: v.run.clone(),
        status: "READY",
        tags: kv_list(&v.tags),
        aliases: aliases
            .iter()
            .filter(|(_, n)| **n == v.version)
            .map(|(a, _)| a.clone())
            .collect(),
    }
}

fn model_json(m: &ModelRecord, versions: &[ModelVersion]) -> RegisteredModelDoc {
    RegisteredModelDoc {
        name: m.name.clone(),
        creation_timestamp: m.created_ms,
        last_updated_timestamp: m.updated_ms.max(m.created_ms),
        description: m.description.clone(),
        latest_versions: versions
            .last()
            .map(|v| vec![version_json(v, &m.aliases)])
            .unwrap_or_default(),
        tags: kv_list(&m.tags),
        aliases: m
            .aliases
            .iter()
            .map(|(a, v)| ModelAlias {
                alias: a.clone(),
                version: v.to_string(),
            })
            .collect(),
    }
}

/// A registered model.
#[derive(Serialize, ToSchema)]
struct RegisteredModelAnswer {
    registered_model: RegisteredModelDoc,
}

/// A model version.
#[derive(Serialize, ToSchema)]
struct ModelVersionAnswer {
    model_version: ModelVersionDoc,
}

/// Model versions (a page of them, for a search).
#[derive(Serialize, ToSchema)]
struct ModelVersions {
    model_versions: Vec<ModelVersionDoc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_page_token: Option<String>,
}

/// A page of registered models.
#[derive(Serialize, ToSchema)]
struct RegisteredModels {
    registered_models: Vec<RegisteredModelDoc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_page_token: Option<String>,
}

/// `registered-models/create`.
#[derive(Deserialize, ToSchema)]
struct CreateRegisteredModel {
    #[serde(default)]
    #[schema(required = true, min_length = 1)]
    name: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    tags: Vec<KeyValue>,
}

/// `registered-models/update`: the description, when given, replaces the model's.
#[derive(Deserialize, ToSchema)]
struct UpdateRegisteredModel {
    #[serde(default)]
    #[schema(required = true, min_length = 1)]
    name: String,
    description: Option<String>,
}

/// `registered-models/set-tag`.
#[derive(Deserialize, ToSchema)]
struct RegisteredModelTag {
    #[serde(default)]
    #[schema(required = true, min_length = 1)]
    name: String,
    #[serde(default)]
    #[schema(required = true, min_length = 1)]
    key: String,
    #[serde(default)]
    value: String,
}

/// `registered-models/get-latest-versions`: the newest version in each stage named (in
/// every stage when none is).
#[derive(Deserialize, ToSchema)]
struct LatestVersions {
    #[serde(default)]
    #[schema(required = true, min_length = 1)]
    name: String,
    #[serde(default)]
    stages: Vec<String>,
}

/// `registered-models/alias`: the alias and, to set it, the version it names.
#[derive(Deserialize, ToSchema)]
struct AliasRequest {
    #[serde(default)]
    #[schema(required = true, min_length = 1)]
    name: String,
    #[serde(default)]
    #[schema(required = true, min_length = 1)]
    alias: String,
    /// A version number, as text or a number.
    #[schema(value_type = Option<String>)]
    version: Option<J>,
}

/// `model-versions/create`.
#[derive(Deserialize, ToSchema)]
struct CreateModelVersion {
    #[serde(default)]
    #[schema(required = true, min_length = 1)]
    name: String,
    /// Where the model's files are (`runs:/...`, `mlflow-artifacts:/...`).
    #[serde(default)]
    source: String,
    #[serde(default)]
    run_id: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    tags: Vec<KeyValue>,
}

/// `registered-models/search`.
#[derive(Deserialize, ToSchema)]
struct SearchRegisteredModels {
    filter: Option<String>,
    page_token: Option<String>,
    #[serde(default, deserialize_with = "int64")]
    #[schema(value_type = Option<i64>)]
    max_results: Option<i64>,
}

/// A version number given as text or a number.
fn version_number(v: Option<&J>) -> Result<u64, MlflowError> {
    let text = match v {
        Some(J::String(s)) => s.clone(),
        Some(J::Number(n)) => n.to_string(),
        _ => return Err(invalid("missing value for required parameter `version`")),
    };
    text.parse()
        .map_err(|_| invalid(format!("`{text}` is not a model version number")))
}

/// A request from the query and, for POST/PATCH/DELETE, the JSON body, as one (the body's
/// fields first).
fn request<T: DeserializeOwned>(q: &HashMap<String, String>, b: &Bytes) -> Result<T, MlflowError> {
    let mut all: J = if b.is_empty() { json!({}) } else { body(b)? };
    if let J::Object(map) = &mut all {
        for (k, v) in q {
            map.entry(k.clone()).or_insert(J::String(v.clone()));
        }
    }
    serde_json::from_value(all).map_err(|e| invalid(format!("malformed request: {e}")))
}

/// `value`, which a request must give (not empty).
fn given(value: String, key: &str) -> Result<String, MlflowError> {
    if value.is_empty() {
        return Err(invalid(format!(
            "missing value for required parameter `{key}`"
        )));
    }
    Ok(value)
}

#[utoipa::path(
    post,
    path = "/api/2.0/mlflow/registered-models/create",
    tag = "mlflow",
    summary = "Create a registered model",
    request_body = CreateRegisteredModel,
    security(("bearer" = ["run"]), ()),
    responses((status = 200, description = "The model", body = RegisteredModelAnswer)),
)]
async fn create_registered_model(
    State(s): State<AppState>,
    b: Bytes,
) -> Answer<RegisteredModelAnswer> {
    let req: CreateRegisteredModel = body(&b)?;
    let (name, description, tags) = (given(req.name, "name")?, req.description, kv_map(req.tags));
    let m = blocking(move || s.tracking.create_model(&name, &description, &tags)).await?;
    Ok(Json(RegisteredModelAnswer {
        registered_model: model_json(&m, &[]),
    }))
}

#[utoipa::path(
    get,
    path = "/api/2.0/mlflow/registered-models/get",
    tag = "mlflow",
    summary = "A registered model",
    params(("name" = String, Query)),
    security(("bearer" = []), ()),
    responses(
        (status = 200, description = "The model", body = RegisteredModelAnswer),
        (status = 400, description = "No `name`"),
        (status = 404, description = "No such model"),
    ),
)]
async fn get_registered_model(
    State(s): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
) -> Answer<RegisteredModelAnswer> {
    let name = required(&q, "name")?.to_string();
    let (m, versions) = blocking(move || s.tracking.model(&name)).await?;
    Ok(Json(RegisteredModelAnswer {
        registered_model: model_json(&m, &versions),
    }))
}

#[utoipa::path(
    get,
    path = "/api/2.0/mlflow/registered-models/search",
    tag = "mlflow",
    summary = "Search registered models",
    params(
        ("filter" = Option<String>, Query),
        ("page_token" = Option<String>, Query),
        ("max_results" = Option<i64>, Query),
    ),
    security(("bearer" = []), ()),
    responses((status = 200, description = "A page of models", body = RegisteredModels)),
)]
async fn search_registered_models_get(
    state: State<AppState>,
    Query(q): Query<HashMap<String, String>>,
) -> Answer<RegisteredModels> {
    registered_models_answer(state, request(&q, &Bytes::new())?).await
}

#[utoipa::path(
    post,
    path = "/api/2.0/mlflow/registered-models/search",
    tag = "mlflow",
    summary = "Search registered models",
    request_body = SearchRegisteredModels,
    security(("bearer" = []), ()),
    responses((status = 200, description = "A page of models", body = RegisteredModels)),
)]
async fn search_registered_models(state: State<AppState>, b: Bytes) -> Answer<RegisteredModels> {
    registered_models_answer(state, body(&b)?).await
}

async fn registered_models_answer(
    State(s): State<AppState>,
    req: SearchRegisteredModels,
) -> Answer<RegisteredModels> {
    let filter = Filter::parse(req.filter.as_deref().unwrap_or(""))?.missing_tags_differ();
    let offset = page(req.page_token.as_deref())?;
    let max = req.max_results.filter(|m| *m > 0).unwrap_or(100) as usize;
    let all = blocking(move || {
        let mut out = Vec::new();
        for m in s.tracking.models()? {
            let versions = s.tracking.model(&m.name)?.1;
            out.push((m, versions));
        }
        Ok(out)
    })
    .await?;
    let matching: Vec<_> = all
        .iter()
        .filter(|(m, _)| filter.matches(&named(&m.name, "", &m.tags)))
        .collect();
    let total = matching.len();
    let shown: Vec<RegisteredModelDoc> = matching
        .into_iter()
        .skip(offset)
        .take(max.max(1))
        .map(|(m, v)| model_json(m, v))
        .collect();
    Ok(Json(RegisteredModels {
        next_page_token: next_token(offset, shown.len(), total),
        registered_models: shown,
    }))
}

/// A model or version seen through the run filter: `name`, `run_id` and tags.
fn named(name: &str, run: &str, tags: &BTreeMap<String, String>) -> TrackedRun {
    TrackedRun {
        info: RunInfo {
            run_id: run.to_string(),
            run_name: name.to_string(),
            experiment_id: String::new(),
            user_id: String::new(),
            status: String::new(),
            start_time: 0,
            end_time: None,
            artifact_uri: String::new(),
            lifecycle_stage: "active".into(),
        },
        params: BTreeMap::new(),
        tags: tags.clone(),
        metrics: BTreeMap::new(),
        inputs: Vec::new(),
    }
}

#[utoipa::path(
    patch,
    path = "/api/2.0/mlflow/registered-models/update",
    tag = "mlflow",
    summary = "Describe a registered model",
    request_body = UpdateRegisteredModel,
    security(("bearer" = ["run"]), ()),
    responses(
        (status = 200, description = "The model", body = RegisteredModelAnswer),
        (status = 404, description = "No such model"),
    ),
)]
async fn update_registered_model(
    State(s): State<AppState>,
    b: Bytes,
) -> Answer<RegisteredModelAnswer> {
    let req: UpdateRegisteredModel = body(&b)?;
    let (name, description) = (given(req.name, "name")?, req.description);
    let (m, versions) = blocking(move || {
        s.tracking.update_model(&name, |m| {
            if let Some(d) = description {
                m.description = d;
            }
        })?;
        s.tracking.model(&name)
    })
    .await?;
    Ok(Json(RegisteredModelAnswer {
        registered_model: model_json(&m, &versions),
    }))
}

#[utoipa::path(
    post,
    path = "/api/2.0/mlflow/registered-models/set-tag",
    tag = "mlflow",
    summary = "Tag a registered model",
    request_body = RegisteredModelTag,
    security(("bearer" = ["run"]), ()),
    responses(
        (status = 200, description = "Tagged", body = Empty),
        (status = 404, description = "No such model"),
    ),
)]
async fn set_registered_model_tag(State(s): State<AppState>, b: Bytes) -> Answer {
    let req: RegisteredModelTag = body(&b)?;
    let (name, key, value) = (given(req.name, "name")?, given(req.key, "key")?, req.value);
    blocking(move || {
        s.tracking.update_model(&name, |m| {
            m.tags.insert(key, value);
        })
    })
    .await?;
    Ok(Json(Empty {}))
}

#[utoipa::path(
    get,
    path = "/api/2.0/mlflow/registered-models/get-latest-versions",
    tag = "mlflow",
    summary = "The latest versions",
    params(("name" = String, Query)),
    security(("bearer" = []), ()),
    responses(
        (status = 200, description = "The newest version in each stage", body = ModelVersions),
        (status = 404, description = "No such model"),
    ),
)]
async fn latest_versions_get(
    state: State<AppState>,
    Query(q): Query<HashMap<String, String>>,
) -> Answer<ModelVersions> {
    let req = LatestVersions {
        name: q.get("name").cloned().unwrap_or_default(),
        stages: Vec::new(),
    };
    latest_answer(state, req).await
}

#[utoipa::path(
    post,
    path = "/api/2.0/mlflow/registered-models/get-latest-versions",
    tag = "mlflow",
    summary = "The latest versions",
    request_body = LatestVersions,
    security(("bearer" = []), ()),
    responses(
        (status = 200, description = "The newest version in each stage", body = ModelVersions),
        (status = 404, description = "No such model"),
    ),
)]
async fn latest_versions(state: State<AppState>, b: Bytes) -> Answer<ModelVersions> {
    latest_answer(state, body(&b)?).await
}

/// Stages are a view only: every version is in stage `None`, so the latest of `None` (or
/// of no stage named) is the newest version.
async fn latest_answer(State(s): State<AppState>, req: LatestVersions) -> Answer<ModelVersions> {
    let (name, stages) = (given(req.name, "name")?, req.stages);
    let (m, versions) = blocking(move || s.tracking.model(&name)).await?;
    // The newest version in each stage asked for (every stage when none is named).
    let latest: Vec<ModelVersionDoc> = ["None", "Staging", "Production"]
        .into_iter()
        .filter(|st| stages.is_empty() || stages.iter().any(|x| x.eq_ignore_ascii_case(st)))
        .filter_map(|st| {
            versions
                .iter()
                .rev()
                .find(|v| stage(v.version, &m.aliases) == st)
        })
        .map(|v| version_json(v, &m.aliases))
        .collect();
    Ok(Json(ModelVersions {
        model_versions: latest,
        next_page_token: None,
    }))
}

#[utoipa::path(
    post,
    path = "/api/2.0/mlflow/registered-models/alias",
    tag = "mlflow",
    summary = "Point an alias at a version",
    request_body = AliasRequest,
    security(("bearer" = ["run"]), ()),
    responses(
        (status = 200, description = "Set", body = Empty),
        (status = 404, description = "No such model or version"),
    ),
)]
async fn set_alias(State(s): State<AppState>, b: Bytes) -> Answer {
    let req: AliasRequest = body(&b)?;
    let (name, alias) = (given(req.name, "name")?, given(req.alias, "alias")?);
    let version = version_number(req.version.as_ref())?;
    blocking(move || s.tracking.set_alias(&name, &alias, version)).await?;
    Ok(Json(Empty {}))
}

#[utoipa::path(
    delete,
    path = "/api/2.0/mlflow/registered-models/alias",
    tag = "mlflow",
    summary = "Remove an alias",
    params(
        ("name" = Option<String>, Query, description = "The model (here or in the body)"),
        ("alias" = Option<String>, Query, description = "The alias (here or in the body)"),
    ),
    request_body = AliasRequest,
    security(("bearer" = ["run"]), ()),
    responses(
        (status = 200, description = "Removed", body = Empty),
        (status = 404, description = "No such model or alias"),
    ),
)]
async fn delete_alias(
    State(s): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
    b: Bytes,
) -> Answer {
    let req: AliasRequest = request(&q, &b)?;
    let (name, alias) = (given(req.name, "name")?, given(req.alias, "alias")?);
    blocking(move || s.tracking.delete_alias(&name, &alias)).await?;
    Ok(Json(Empty {}))
}

#[utoipa::path(
    get,
    path = "/api/2.0/mlflow/registered-models/alias",
    tag = "mlflow",
    summary = "The version an alias names",
    params(("name" = String, Query), ("alias" = String, Query)),
    security(("bearer" = []), ()),
    responses(
        (status = 200, description = "The version", body = ModelVersionAnswer),
        (status = 400, description = "No `name` or `alias`"),
        (status = 404, description = "No such model or alias"),
    ),
)]
async fn get_by_alias(
    State(s): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
) -> Answer<ModelVersionAnswer> {
    let (name, alias) = (
        required(&q, "name")?.to_string(),
        required(&q, "alias")?.to_string(),
    );
    let doc = blocking(move || {
        let v = s.tracking.version_by_alias(&name, &alias)?;
        version_answer(&s.tracking, &v)
    })
    .await?;
    Ok(Json(doc))
}

/// MLflow's `{"model_version": ...}` answer, with the version's aliases.
fn version_answer(
    store: &crate::tracking::Store,
    v: &ModelVersion,
) -> Result<ModelVersionAnswer, TrackingError> {
    let (m, _) = store.model(&v.model)?;
    Ok(ModelVersionAnswer {
        model_version: version_json(v, &m.aliases),
    })
}

#[utoipa::path(
    post,
    path = "/api/2.0/mlflow/model-versions/create",
    tag = "mlflow",
    summary = "Create a model version",
    request_body = CreateModelVersion,
    security(("bearer" = ["run"]), ()),
    responses(
        (status = 200, description = "The version", body = ModelVersionAnswer),
        (status = 404, description = "No such model or run"),
    ),
)]
async fn create_model_version(State(s): State<AppState>, b: Bytes) -> Answer<ModelVersionAnswer> {
    let req: CreateModelVersion = body(&b)?;
    let name = given(req.name, "name")?;
    let (source, run, description) = (req.source, req.run_id, req.description);
    let tags = kv_map(req.tags);
    let doc = blocking(move || {
        // MLflow creates versions of models that exist only.
        s.tracking.model(&name)?;
        if !run.is_empty() {
            s.tracking.tracked_run(&run)?;
        }
        let (number, _) = s.tracking.register_model(
            ModelVersion {
                model: name.clone(),
                version: 0,
                created_ms: 0,
                run,
                step: String::new(),
                artifact: String::new(),
                source,
                runner: None,
                metrics: BTreeMap::new(),
                tags,
                description,
                signature: None,
                pipeline: None,
            },
            None,
        )?;
        version_answer(&s.tracking, &s.tracking.model_version(&name, number)?)
    })
    .await?;
    Ok(Json(doc))
}

#[utoipa::path(
    get,
    path = "/api/2.0/mlflow/model-versions/get",
    tag = "mlflow",
    summary = "A model version",
    params(("name" = String, Query), ("version" = String, Query)),
    security(("bearer" = []), ()),
    responses(
        (status = 200, description = "The version", body = ModelVersionAnswer),
        (status = 400, description = "No `name`, or not a version number"),
        (status = 404, description = "No such model or version"),
    ),
)]
async fn get_model_version(
    State(s): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
) -> Answer<ModelVersionAnswer> {
    let name = required(&q, "name")?.to_string();
    let version = version_number(q.get("version").map(|v| J::String(v.clone())).as_ref())?;
    let doc =
        blocking(move || version_answer(&s.tracking, &s.tracking.model_version(&name, version)?))
            .await?;
    Ok(Json(doc))
}

/// Where a version's artifacts are.
#[derive(Serialize, ToSchema)]
struct DownloadUri {
    artifact_uri: String,
}

#[utoipa::path(
    get,
    path = "/api/2.0/mlflow/model-versions/get-download-uri",
    tag = "mlflow",
    summary = "Where a version's artifacts are",
    params(("name" = String, Query), ("version" = String, Query)),
    security(("bearer" = []), ()),
    responses(
        (status = 200, description = "The URI", body = DownloadUri),
        (status = 400, description = "No `name`, or not a version number"),
        (status = 404, description = "No such model or version"),
    ),
)]
async fn model_version_uri(
    State(s): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
) -> Answer<DownloadUri> {
    let name = required(&q, "name")?.to_string();
    let version = version_number(q.get("version").map(|v| J::String(v.clone())).as_ref())?;
    let v = blocking(move || s.tracking.model_version(&name, version)).await?;
    Ok(Json(DownloadUri {
        artifact_uri: v.source,
    }))
}

#[utoipa::path(
    get,
    path = "/api/2.0/mlflow/model-versions/search",
    tag = "mlflow",
    summary = "Search model versions",
    params(
        ("filter" = Option<String>, Query),
        ("page_token" = Option<String>, Query),
        ("max_results" = Option<i64>, Query),
    ),
    security(("bearer" = []), ()),
    responses(
        (status = 200, description = "A page of versions", body = ModelVersions),
        (status = 400, description = "A malformed filter or page token"),
    ),
)]
async fn search_model_versions(
    State(s): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
) -> Answer<ModelVersions> {
    let filter = Filter::parse(q.get("filter").map_or("", String::as_str))?.missing_tags_differ();
    let offset = page(q.get("page_token").map(String::as_str))?;
    let max: usize = q
        .get("max_results")
        .and_then(|m| m.parse().ok())
        .unwrap_or(10_000);
    let all = blocking(move || {
        let mut out = Vec::new();
        for m in s.tracking.models()? {
            let (m, versions) = s.tracking.model(&m.name)?;
            out.extend(versions.into_iter().map(|v| (v, m.aliases.clone())));
        }
        Ok(out)
    })
    .await?;
    let matching: Vec<_> = all
        .iter()
        .rev()
        .filter(|(v, _)| filter.matches(&named(&v.model, &v.run, &v.tags)))
        .collect();
    let total = matching.len();
    let shown: Vec<ModelVersionDoc> = matching
        .into_iter()
        .skip(offset)
        .take(max.max(1))
        .map(|(v, aliases)| version_json(v, aliases))
        .collect();
    Ok(Json(ModelVersions {
        next_page_token: next_token(offset, shown.len(), total),
        model_versions: shown,
    }))
}
