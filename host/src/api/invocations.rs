//! MLflow's scoring protocol, as `mlflow models serve` answers it, so a client of an MLflow
//! model server works unchanged: `POST /invocations`, `GET /ping`, `/health` and `/version`.
//!
//! The model is the one `[serving] invocations = "NAME@ALIAS"` names (what `kiln model serve
//! NAME@ALIAS` sets), or else the only registered model. A body is JSON in one of MLflow's
//! forms (`dataframe_split`, `dataframe_records`, `instances`, `inputs`) or CSV with a header
//! row (`Content-Type: text/csv`). The answer is `{"predictions": ...}` as MLflow's pyfunc
//! gives it: a list of values when the model answers one column, a list of records when it
//! answers several. Errors are MLflow's: `{"error_code": ..., "message": ...}`.

use axum::{
    Json,
    body::Bytes,
    extract::{State, rejection::BytesRejection},
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::Serialize;
use serde_json::Value as J;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{ApiError, AppState, error::MlflowErrorBody, predict};
use crate::{
    bindings::{NamedValue, Value},
    serving::{Loaded, Reference},
    value,
};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(invocations))
        .routes(routes!(ping))
        .routes(routes!(health))
        .routes(routes!(version))
}

/// An error as MLflow's scoring server gives it.
fn mlflow_error(status: StatusCode, code: &str, message: impl Into<String>) -> Response {
    MlflowErrorBody::response(status, code, message)
}

/// A body in one of MLflow's JSON forms.
#[derive(ToSchema)]
#[allow(dead_code)]
struct ScoringRequest {
    /// `{"columns": [...], "data": [[...], ...]}`.
    dataframe_split: Option<serde_json::Map<String, J>>,
    /// `[{"column": value, ...}, ...]`.
    dataframe_records: Option<Vec<serde_json::Map<String, J>>>,
    /// Rows of values.
    instances: Option<Vec<J>>,
    /// Named inputs, or columns.
    inputs: Option<J>,
}

/// MLflow's answer: a list of values when the model answers one column, else records
/// (or, for several outputs, each by name).
#[derive(Serialize, ToSchema)]
struct Predictions {
    predictions: J,
}

fn from_api(e: ApiError) -> Response {
    let status = e.status;
    let code = match status {
        StatusCode::BAD_REQUEST => "BAD_REQUEST",
        StatusCode::NOT_FOUND => "RESOURCE_DOES_NOT_EXIST",
        StatusCode::CONFLICT => "INVALID_STATE",
        StatusCode::TOO_MANY_REQUESTS => "REQUEST_LIMIT_EXCEEDED",
        _ => "INTERNAL_ERROR",
    };
    mlflow_error(status, code, e.message)
}

/// The model `/invocations` serves.
async fn target(s: &AppState) -> Result<std::sync::Arc<Loaded>, Response> {
    let (name, reference) = match &s.config.serving.invocations {
        Some(named) => {
            let (name, reference) = Reference::split(named).map_err(|e| {
                mlflow_error(StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL_ERROR", e)
            })?;
            (name.to_string(), reference)
        }
        None => match s.serving.sole_model().map_err(|e| from_api(e.into()))? {
            Ok(name) => (name, Reference::Default),
            Err(count) => {
                return Err(mlflow_error(
                    StatusCode::NOT_FOUND,
                    "RESOURCE_DOES_NOT_EXIST",
                    format!(
                        "this server has {count} registered models; say which one answers /invocations: [serving] invocations = \"NAME@ALIAS\", or kiln model serve NAME@ALIAS"
                    ),
                ));
            }
        },
    };
    s.serving
        .get(&name, &reference)
        .await
        .map_err(|e| from_api(e.into()))
}

#[utoipa::path(
    post,
    path = "/invocations",
    tag = "serving",
    summary = "MLflow's scoring protocol: predict with the model `[serving] invocations` names (or the only one)",
    request_body(content(
        (ScoringRequest = "application/json"),
        (String = "text/csv"),
    )),
    security(("bearer" = []), ()),
    responses(
        (status = 200, description = "The predictions", body = Predictions),
        (status = 404, description = "No model to answer"),
        (status = 429, description = "The model's queue is full"),
        (status = 409, description = "The version cannot be served as registered: it names no model runner"),
        (status = 503, description = "The model cannot be loaded"),
    ),
)]
async fn invocations(
    State(s): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let body = match body {
        Ok(b) => b,
        Err(e) => return from_api(e.into()),
    };
    let loaded = match target(&s).await {
        Ok(l) => l,
        Err(answer) => return answer,
    };
    let meta = &loaded.pool.metadata;
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json");
    let inputs = if content_type.starts_with("text/csv") {
        predict::csv_input(&body, meta).map(|input| vec![input])
    } else if content_type.starts_with("application/json") {
        serde_json::from_slice::<J>(&body)
            .map_err(|e| format!("the body is not JSON: {e}"))
            .and_then(|doc| predict::decode(&doc, meta).map(|(inputs, _)| inputs))
    } else {
        Err(format!(
            "the content type is {content_type}; send application/json or text/csv"
        ))
    };
    let inputs = match inputs {
        Ok(i) => i,
        Err(e) => return mlflow_error(StatusCode::BAD_REQUEST, "BAD_REQUEST", e),
    };
    match loaded.predict(inputs).await {
        Ok(outputs) => Json(Predictions {
            predictions: predictions(&outputs),
        })
        .into_response(),
        Err(e) => from_api(e.into()),
    }
}

/// The answer as MLflow's pyfunc gives it: one table's single column as a list of values,
/// several columns as a list of records; anything else as its value document.
fn predictions(outputs: &[NamedValue]) -> J {
    match outputs {
        [one] => match &one.value {
            Value::Table(t) if t.columns.len() == 1 => J::Array(value::column_cells(&t.columns[0])),
            other => predict::render(other, predict::Orientation::Rows),
        },
        many => J::Object(
            many.iter()
                .map(|o| (o.name.clone(), predictions(std::slice::from_ref(o))))
                .collect(),
        ),
    }
}

/// 200 once the model loads, as MLflow's `/ping` answers when its model is loaded.
#[utoipa::path(
    get,
    path = "/ping",
    tag = "serving",
    summary = "MLflow's scoring protocol: 200 once the /invocations model loads",
    security(("bearer" = []), ()),
    responses(
        (status = 200, description = "The model is loaded", body = String, content_type = "text/plain"),
        (status = 404, description = "No model to answer"),
        (status = 409, description = "The version cannot be served as registered: it names no model runner"),
        (status = 503, description = "The model cannot be loaded"),
    ),
)]
async fn ping(State(s): State<AppState>) -> Response {
    match target(&s).await {
        Ok(_) => (StatusCode::OK, "\n").into_response(),
        Err(answer) => answer,
    }
}

/// As [`ping`].
#[utoipa::path(
    get,
    path = "/health",
    tag = "serving",
    summary = "MLflow's scoring protocol: as /ping",
    security(("bearer" = []), ()),
    responses(
        (status = 200, description = "The model is loaded", body = String, content_type = "text/plain"),
        (status = 404, description = "No model to answer"),
        (status = 409, description = "The version cannot be served as registered: it names no model runner"),
        (status = 503, description = "The model cannot be loaded"),
    ),
)]
async fn health(state: State<AppState>) -> Response {
    ping(state).await
}

#[utoipa::path(
    get,
    path = "/version",
    tag = "serving",
    summary = "MLflow's scoring protocol: the server's version",
    security(("bearer" = []), ()),
    responses((status = 200, description = "The version", body = String, content_type = "text/plain")),
)]
async fn version() -> &'static str {
    env!("CARGO_PKG_VERSION")
}
