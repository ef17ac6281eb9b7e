//! Kiln's own API over the tracking store, the one `kiln runs` and `kiln model` use with
//! `--server`: workflow runs and their lineage, registered models, and their aliases.
//!
//! - `GET /v1/runs`, `GET /v1/runs/{id}` (a unique start of an id will do; a run in
//!   progress answers from memory, see `runs`),
//!   `GET /v1/runs/{id}/outputs/{step}/{output}` (the value document);
//! - `GET /v1/models`, `GET /v1/models/{name}` (the model and its versions);
//! - `PUT|DELETE /v1/models/{name}/aliases/{alias}` (body `{"version": N}`),
//!   `POST /v1/models/{name}/aliases/{alias}/rollback`,
//!   `GET /v1/models/{name}/alias-history[?alias=A]`;
//! - `POST /v1/sync`: runs a device recorded offline (`kiln sync`), each replacing any
//!   earlier copy of it (see `tracking::sync`), and its prediction logs;
//!   `GET /v1/predictions[?device=D]`: the prediction logs devices synced.
//!
//! Reads are anonymous; moving an alias takes the `publish` scope, syncing the `run` scope.

use axum::{
    Json,
    extract::{Path, Query, State, rejection::JsonRejection},
    http::{HeaderMap, StatusCode},
};
use serde::{Deserialize, Serialize};
use serde_json::Value as J;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{ApiError, AppState, Empty, records::RunSchema};
use crate::tracking::{
    ModelRecord, ModelVersion, RunSummary, TrackingError, models::AliasEvent,
    predictions::SyncedPrediction,
};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(runs, super::runs::start))
        .routes(routes!(run))
        .routes(routes!(output))
        .routes(routes!(models))
        .routes(routes!(model))
        .routes(routes!(set_alias, delete_alias))
        .routes(routes!(rollback_alias))
        .routes(routes!(alias_history))
        .routes(routes!(sync))
        .routes(routes!(synced_predictions))
}

impl From<TrackingError> for ApiError {
    fn from(e: TrackingError) -> Self {
        match e {
            TrackingError::NotFound(m) => ApiError::not_found(m),
            TrackingError::AlreadyExists(m) => ApiError::new(StatusCode::CONFLICT, "conflict", m),
            TrackingError::Invalid(m) => ApiError::bad_request(m),
            TrackingError::TooLarge(m) => {
                ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", m)
            }
            // Storage failures carry paths and internals: say less.
            TrackingError::Storage(_) => ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "the tracking store could not complete the request",
            ),
        }
    }
}

/// Runs store work off the async threads.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, TrackingError> + Send + 'static,
) -> Result<T, ApiError> {
    super::store_task(f).await
}

fn to_json<T: serde::Serialize>(v: &T) -> Result<Json<J>, ApiError> {
    serde_json::to_value(v)
        .map(Json)
        .map_err(|e| TrackingError::Storage(e.to_string()).into())
}

/// `GET /v1/runs`.
#[derive(Serialize, ToSchema)]
struct RunList {
    runs: Vec<RunSummary>,
}

#[utoipa::path(
    get,
    path = "/v1/runs",
    tag = "runs",
    summary = "Workflow runs",
    security(("bearer" = []), ()),
    responses((status = 200, description = "Every run, oldest first", body = RunList)),
)]
async fn runs(State(s): State<AppState>) -> Result<Json<RunList>, ApiError> {
    let runs = blocking(move || {
        s.tracking
            .runs()
            .map_err(|e| TrackingError::Storage(format!("{e:#}")))
    })
    .await?;
    let runs = runs.iter().map(RunSummary::from).collect();
    Ok(Json(RunList { runs }))
}

#[utoipa::path(
    get,
    path = "/v1/runs/{id}",
    tag = "runs",
    summary = "A run: live status while it runs, then its record",
    params(("id" = String, Path, description = "A run's id, or a unique start of one")),
    security(("bearer" = []), ()),
    responses(
        (status = 200, description = "The run", body = RunSchema),
        (status = 404, description = "No such run"),
    ),
)]
async fn run(State(s): State<AppState>, Path(id): Path<String>) -> Result<Json<J>, ApiError> {
    if let Some(live) = super::runs::live_doc(&s, &id) {
        return Ok(Json(live));
    }
    let run = blocking(move || s.tracking.run(&id)).await?;
    to_json(&run)
}

#[utoipa::path(
    get,
    path = "/v1/runs/{id}/outputs/{step}/{output}",
    tag = "runs",
    summary = "One output of a run (value document)",
    params(
        ("id" = String, Path, description = "A run's id"),
        ("step" = String, Path, description = "A step of the run"),
        ("output" = String, Path, description = "An output of the step"),
    ),
    security(("bearer" = []), ()),
    responses(
        (status = 200, description = "The value document: `{\"kind\": ..., ...}`", body = Object),
        (status = 404, description = "No such run, step or output"),
    ),
)]
async fn output(
    State(s): State<AppState>,
    Path((id, step, name)): Path<(String, String, String)>,
) -> Result<Json<J>, ApiError> {
    let value = blocking(move || s.tracking.run_output(&id, &step, &name)).await?;
    Ok(Json(crate::value::to_json(&value)))
}

/// `GET /v1/models`.
#[derive(Serialize, ToSchema)]
struct ModelList {
    models: Vec<ModelRecord>,
}

#[utoipa::path(
    get,
    path = "/v1/models",
    tag = "models",
    summary = "Registered models",
    security(("bearer" = []), ()),
    responses((status = 200, description = "Every registered model", body = ModelList)),
)]
async fn models(State(s): State<AppState>) -> Result<Json<ModelList>, ApiError> {
    let models = blocking(move || s.tracking.models()).await?;
    Ok(Json(ModelList { models }))
}

/// `GET /v1/models/{name}`.
#[derive(Serialize, ToSchema)]
struct ModelAndVersions {
    model: ModelRecord,
    versions: Vec<ModelVersion>,
}

#[utoipa::path(
    get,
    path = "/v1/models/{name}",
    tag = "models",
    summary = "A model and its versions",
    params(("name" = String, Path, description = "The model's name")),
    security(("bearer" = []), ()),
    responses(
        (status = 200, description = "The model", body = ModelAndVersions),
        (status = 404, description = "No such model"),
    ),
)]
async fn model(
    State(s): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<ModelAndVersions>, ApiError> {
    let (model, versions) = blocking(move || s.tracking.model(&name)).await?;
    Ok(Json(ModelAndVersions { model, versions }))
}

/// `PUT /v1/models/{name}/aliases/{alias}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct AliasBody {
    /// The version the alias points at from now on.
    version: u64,
}

/// Where an alias points after a move, and where it pointed before.
#[derive(Serialize, ToSchema)]
struct AliasMoved {
    version: u64,
    previous: Option<u64>,
}

/// Where an alias points after a rollback.
#[derive(Serialize, ToSchema)]
struct AliasVersion {
    version: u64,
}

#[utoipa::path(
    put,
    path = "/v1/models/{name}/aliases/{alias}",
    tag = "models",
    summary = "Point an alias at a version",
    params(
        ("name" = String, Path, description = "The model's name"),
        ("alias" = String, Path, description = "The alias"),
    ),
    request_body = AliasBody,
    security(("bearer" = ["publish"])),
    responses(
        (status = 200, description = "The alias moved", body = AliasMoved),
        (status = 404, description = "No such model or version"),
    ),
)]
async fn set_alias(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path((name, alias)): Path<(String, String)>,
    body: Result<Json<AliasBody>, JsonRejection>,
) -> Result<Json<AliasMoved>, ApiError> {
    s.authorize(&headers, "publish")?;
    let Json(body) = body.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let version = body.version;
    let previous = blocking(move || s.tracking.set_alias(&name, &alias, version)).await?;
    Ok(Json(AliasMoved { version, previous }))
}

#[utoipa::path(
    delete,
    path = "/v1/models/{name}/aliases/{alias}",
    tag = "models",
    summary = "Remove an alias",
    params(
        ("name" = String, Path, description = "The model's name"),
        ("alias" = String, Path, description = "The alias"),
    ),
    security(("bearer" = ["publish"])),
    responses(
        (status = 200, description = "Removed", body = Empty),
        (status = 404, description = "No such model or alias"),
    ),
)]
async fn delete_alias(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path((name, alias)): Path<(String, String)>,
) -> Result<Json<Empty>, ApiError> {
    s.authorize(&headers, "publish")?;
    blocking(move || s.tracking.delete_alias(&name, &alias)).await?;
    Ok(Json(Empty {}))
}

#[utoipa::path(
    post,
    path = "/v1/models/{name}/aliases/{alias}/rollback",
    tag = "models",
    summary = "Move an alias back to its previous version",
    params(
        ("name" = String, Path, description = "The model's name"),
        ("alias" = String, Path, description = "The alias"),
    ),
    security(("bearer" = ["publish"])),
    responses(
        (status = 200, description = "The alias moved back", body = AliasVersion),
        (status = 404, description = "No such model or alias"),
        (status = 409, description = "The alias has no previous version"),
    ),
)]
async fn rollback_alias(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path((name, alias)): Path<(String, String)>,
) -> Result<Json<AliasVersion>, ApiError> {
    s.authorize(&headers, "publish")?;
    let version = blocking(move || s.tracking.rollback_alias(&name, &alias)).await?;
    Ok(Json(AliasVersion { version }))
}

/// `POST /v1/sync`: what a device recorded offline.
#[derive(Debug, Deserialize, ToSchema)]
struct SyncBody {
    /// Who sent them (tagged on each tracked run).
    #[schema(min_length = 1, max_length = 256)]
    device: String,
    /// The device's run records, each with its steps' outputs.
    #[serde(default)]
    #[schema(value_type = Vec<Object>)]
    runs: Vec<crate::tracking::sync::SyncedRun>,
    /// Prediction log records, by the device's sequence numbers: `[seq, record]` pairs.
    #[serde(default)]
    #[schema(value_type = Vec<Vec<Object>>)]
    predictions: Vec<(u64, crate::tracking::predictions::PredictionRecord)>,
}

/// What a sync stored.
#[derive(Serialize, ToSchema)]
struct Synced {
    /// The runs stored.
    stored: usize,
    /// The prediction records stored.
    predictions: usize,
}

#[utoipa::path(
    post,
    path = "/v1/sync",
    tag = "runs",
    summary = "Runs and prediction logs a device recorded offline (`kiln sync`)",
    request_body = SyncBody,
    security(("bearer" = ["run"])),
    responses((status = 200, description = "Stored", body = Synced)),
)]
async fn sync(
    State(s): State<AppState>,
    headers: HeaderMap,
    body: Result<Json<SyncBody>, JsonRejection>,
) -> Result<Json<Synced>, ApiError> {
    s.authorize(&headers, "run")?;
    let Json(body) = body.map_err(|e| ApiError::bad_request(e.body_text()))?;
    if body.device.is_empty() || body.device.len() > 256 {
        return Err(ApiError::bad_request(
            "`device` must be 1 to 256 characters",
        ));
    }
    let (stored, predictions) = blocking(move || {
        let stored = s.tracking.import_synced(&body.device, body.runs)?;
        let predictions = s
            .tracking
            .import_predictions(&body.device, &body.predictions)?;
        Ok((stored, predictions))
    })
    .await?;
    Ok(Json(Synced {
        stored,
        predictions,
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct PredictionsQuery {
    /// Only this device's.
    device: Option<String>,
}

/// `GET /v1/predictions`.
#[derive(Serialize, ToSchema)]
struct SyncedPredictions {
    predictions: Vec<SyncedPrediction>,
}

/// The prediction logs devices synced here.
#[utoipa::path(
    get,
    path = "/v1/predictions",
    tag = "runs",
    summary = "Prediction logs devices synced (`device`)",
    params(PredictionsQuery),
    security(("bearer" = []), ()),
    responses((status = 200, description = "The records", body = SyncedPredictions)),
)]
async fn synced_predictions(
    State(s): State<AppState>,
    Query(q): Query<PredictionsQuery>,
) -> Result<Json<SyncedPredictions>, ApiError> {
    let predictions = blocking(move || s.tracking.synced_predictions(q.device.as_deref())).await?;
    Ok(Json(SyncedPredictions { predictions }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct HistoryQuery {
    /// Only this alias's moves.
    alias: Option<String>,
}

/// `GET /v1/models/{name}/alias-history`.
#[derive(Serialize, ToSchema)]
struct AliasHistory {
    events: Vec<AliasEvent>,
}

#[utoipa::path(
    get,
    path = "/v1/models/{name}/alias-history",
    tag = "models",
    summary = "Every move of the model's aliases",
    params(("name" = String, Path, description = "The model's name"), HistoryQuery),
    security(("bearer" = []), ()),
    responses(
        (status = 200, description = "The moves, oldest first", body = AliasHistory),
        (status = 404, description = "No such model"),
    ),
)]
async fn alias_history(
    State(s): State<AppState>,
    Path(name): Path<String>,
    Query(q): Query<HistoryQuery>,
) -> Result<Json<AliasHistory>, ApiError> {
    let events = blocking(move || s.tracking.alias_history(&name, q.alias.as_deref())).await?;
    Ok(Json(AliasHistory { events }))
}
