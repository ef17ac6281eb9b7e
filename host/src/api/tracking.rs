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
    Json, Router,
    extract::{Path, Query, State, rejection::JsonRejection},
    http::{HeaderMap, StatusCode},
    routing::{get, post, put},
};
use serde::Deserialize;
use serde_json::{Value as J, json};

use super::{ApiError, AppState};
use crate::tracking::{RunSummary, TrackingError};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/runs", get(runs).post(super::runs::start))
        .route("/v1/runs/{id}", get(run))
        .route("/v1/runs/{id}/outputs/{step}/{output}", get(output))
        .route("/v1/models", get(models))
        .route("/v1/models/{name}", get(model))
        .route(
            "/v1/models/{name}/aliases/{alias}",
            put(set_alias).delete(delete_alias),
        )
        .route(
            "/v1/models/{name}/aliases/{alias}/rollback",
            post(rollback_alias),
        )
        .route("/v1/models/{name}/alias-history", get(alias_history))
        .route("/v1/sync", post(sync))
        .route("/v1/predictions", get(synced_predictions))
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

async fn runs(State(s): State<AppState>) -> Result<Json<J>, ApiError> {
    let runs = blocking(move || {
        s.tracking
            .runs()
            .map_err(|e| TrackingError::Storage(format!("{e:#}")))
    })
    .await?;
    let list: Vec<RunSummary> = runs.iter().map(RunSummary::from).collect();
    Ok(Json(json!({ "runs": list })))
}

async fn run(State(s): State<AppState>, Path(id): Path<String>) -> Result<Json<J>, ApiError> {
    if let Some(live) = super::runs::live_doc(&s, &id) {
        return Ok(Json(live));
    }
    let run = blocking(move || s.tracking.run(&id)).await?;
    to_json(&run)
}

async fn output(
    State(s): State<AppState>,
    Path((id, step, name)): Path<(String, String, String)>,
) -> Result<Json<J>, ApiError> {
    let value = blocking(move || s.tracking.run_output(&id, &step, &name)).await?;
    Ok(Json(crate::value::to_json(&value)))
}

async fn models(State(s): State<AppState>) -> Result<Json<J>, ApiError> {
    let models = blocking(move || s.tracking.models()).await?;
    Ok(Json(json!({ "models": models })))
}

async fn model(State(s): State<AppState>, Path(name): Path<String>) -> Result<Json<J>, ApiError> {
    let (model, versions) = blocking(move || s.tracking.model(&name)).await?;
    Ok(Json(json!({ "model": model, "versions": versions })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AliasBody {
    version: u64,
}

async fn set_alias(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path((name, alias)): Path<(String, String)>,
    body: Result<Json<AliasBody>, JsonRejection>,
) -> Result<Json<J>, ApiError> {
    s.authorize(&headers, "publish")?;
    let Json(body) = body.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let version = body.version;
    let previous = blocking(move || s.tracking.set_alias(&name, &alias, version)).await?;
    Ok(Json(json!({ "version": version, "previous": previous })))
}

async fn delete_alias(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path((name, alias)): Path<(String, String)>,
) -> Result<Json<J>, ApiError> {
    s.authorize(&headers, "publish")?;
    blocking(move || s.tracking.delete_alias(&name, &alias)).await?;
    Ok(Json(json!({})))
}

async fn rollback_alias(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path((name, alias)): Path<(String, String)>,
) -> Result<Json<J>, ApiError> {
    s.authorize(&headers, "publish")?;
    let version = blocking(move || s.tracking.rollback_alias(&name, &alias)).await?;
    Ok(Json(json!({ "version": version })))
}

#[derive(Debug, Deserialize)]
struct SyncBody {
    /// Who sent them (tagged on each tracked run).
    device: String,
    #[serde(default)]
    runs: Vec<crate::tracking::sync::SyncedRun>,
    /// Prediction log records, by the device's sequence numbers.
    #[serde(default)]
    predictions: Vec<(u64, crate::tracking::predictions::PredictionRecord)>,
}

async fn sync(
    State(s): State<AppState>,
    headers: HeaderMap,
    body: Result<Json<SyncBody>, JsonRejection>,
) -> Result<Json<J>, ApiError> {
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
    Ok(Json(
        json!({ "stored": stored, "predictions": predictions }),
    ))
}

#[derive(Debug, Deserialize)]
struct PredictionsQuery {
    device: Option<String>,
}

/// The prediction logs devices synced here.
async fn synced_predictions(
    State(s): State<AppState>,
    Query(q): Query<PredictionsQuery>,
) -> Result<Json<J>, ApiError> {
    let records = blocking(move || s.tracking.synced_predictions(q.device.as_deref())).await?;
    Ok(Json(json!({ "predictions": records })))
}

#[derive(Debug, Deserialize)]
struct HistoryQuery {
    alias: Option<String>,
}

async fn alias_history(
    State(s): State<AppState>,
    Path(name): Path<String>,
    Query(q): Query<HistoryQuery>,
) -> Result<Json<J>, ApiError> {
    let events = blocking(move || s.tracking.alias_history(&name, q.alias.as_deref())).await?;
    Ok(Json(json!({ "events": events })))
}
