//! Every HTTP error is JSON with a stable code and a message; no internal detail leaks.

use axum::{
    Json,
    http::StatusCode,
    response::{IntoResponse, Response},
};
use serde::Serialize;
use utoipa::ToSchema;

use crate::registry::RegistryError;

/// Kiln's error body: `{"error": {"code": "...", "message": "..."}}`.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Error)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

/// An error's stable code and its message.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable, snake_case: `not_found`, `unauthorized`, `payload_too_large`...
    pub code: String,
    pub message: String,
}

/// MLflow's error body, on MLflow's routes: `{"error_code": "...", "message": "..."}`.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = MlflowError)]
pub struct MlflowErrorBody {
    /// MLflow's code: `RESOURCE_DOES_NOT_EXIST`, `INVALID_PARAMETER_VALUE`...
    pub error_code: String,
    pub message: String,
}

impl MlflowErrorBody {
    /// The answer `status` with this body.
    pub fn response(status: StatusCode, code: &str, message: impl Into<String>) -> Response {
        let body = MlflowErrorBody {
            error_code: code.to_string(),
            message: message.into(),
        };
        (status, Json(body)).into_response()
    }
}

/// Whether errors on `path` take MLflow's form: its tracking API and its artifact proxy,
/// and its scoring protocol's routes.
pub fn mlflow_path(path: &str) -> bool {
    path.starts_with("/api/2.0/mlflow")
        || path.starts_with("/ajax-api/2.0/mlflow")
        || matches!(path, "/invocations" | "/ping" | "/health")
}

/// An error answer: `{"error": {"code": "...", "message": "..."}}`.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }
    pub fn too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!(
                "the body is larger than this route takes ({})",
                bytesize::ByteSize(limit as u64).display().iec()
            ),
        )
    }
}

/// A body that could not be read: too large, or cut off.
impl From<axum::extract::rejection::BytesRejection> for ApiError {
    fn from(r: axum::extract::rejection::BytesRejection) -> Self {
        if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
            Self::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                r.body_text(),
            )
        } else {
            Self::bad_request(r.body_text())
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code.to_string(),
                message: self.message,
            },
        };
        (self.status, Json(body)).into_response()
    }
}

impl From<RegistryError> for ApiError {
    fn from(e: RegistryError) -> Self {
        use RegistryError as E;
        match e {
            E::UnknownPlugin(_) | E::UnknownVersion { .. } | E::NoMatch { .. } => {
                Self::not_found(e.to_string())
            }
            E::Immutable { .. } => Self::new(StatusCode::CONFLICT, "version_exists", e.to_string()),
            E::Manifest(_) => Self::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_manifest",
                e.to_string(),
            ),
            E::Signature { .. } | E::Key(_) => {
                Self::new(StatusCode::FORBIDDEN, "untrusted_signature", e.to_string())
            }
            E::Corrupt { .. } => {
                Self::new(StatusCode::INTERNAL_SERVER_ERROR, "corrupt", e.to_string())
            }
            // Storage and open failures carry paths and internals: say less.
            _ => Self::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "the registry could not complete the request",
            ),
        }
    }
}

/// Every error answer is JSON, including those the framework makes with an empty or plain
/// text body (405 for a method a route does not take, 408 from the request timeout, 413 for
/// a chunked body past the limit): the body becomes Kiln's error form, or MLflow's on the
/// routes MLflow's clients call. Their own text, if any, is the message (its first 500
/// characters).
pub async fn json_errors(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let mlflow = mlflow_path(request.uri().path());
    let response = next.run(request).await;
    let status = response.status();
    let json = response
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if status.as_u16() < 400 || json {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, 64 << 10)
        .await
        .unwrap_or_default();
    let text = String::from_utf8_lossy(&text);
    let mut message: String = text.trim().chars().take(500).collect();
    if message.is_empty() {
        message = status.canonical_reason().unwrap_or("error").to_lowercase();
    }
    let body = if mlflow {
        let code = match status {
            StatusCode::NOT_FOUND | StatusCode::METHOD_NOT_ALLOWED => "ENDPOINT_NOT_FOUND",
            StatusCode::REQUEST_TIMEOUT => "DEADLINE_EXCEEDED",
            StatusCode::PAYLOAD_TOO_LARGE => "REQUEST_LIMIT_EXCEEDED",
            s if s.is_server_error() => "INTERNAL_ERROR",
            _ => "BAD_REQUEST",
        };
        serde_json::to_vec(&MlflowErrorBody {
            error_code: code.to_string(),
            message,
        })
    } else {
        let code = match status {
            StatusCode::NOT_FOUND => "not_found",
            StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
            StatusCode::REQUEST_TIMEOUT => "request_timeout",
            StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
            StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
            s if s.is_server_error() => "internal",
            _ => "bad_request",
        };
        serde_json::to_vec(&ErrorBody {
            error: ErrorDetail {
                code: code.to_string(),
                message,
            },
        })
    };
    parts.headers.remove(axum::http::header::CONTENT_LENGTH);
    parts.headers.insert(
        axum::http::header::CONTENT_TYPE,
        axum::http::HeaderValue::from_static("application/json"),
    );
    Response::from_parts(parts, axum::body::Body::from(body.unwrap_or_default()))
}
