//! The marketplace: list and search plugins (paginated), a plugin's versions, one
//! version's record, components by digest, publisher keys, and publish / yank / unyank.

use axum::{
    Json, Router,
    body::Bytes,
    extract::{Path, Query, State, rejection::JsonRejection},
    http::{HeaderMap, StatusCode, header},
    response::IntoResponse,
    routing::{get, post},
};
use base64::Engine as _;
use serde::Deserialize;
use serde_json::{Value as J, json};

use super::{ApiError, AppState};
use crate::{
    plugin::Role,
    registry::{Manifest, VersionRecord, manifest::valid_name},
};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/plugins", get(list).post(publish))
        .route("/v1/plugins/{name}", get(plugin))
        .route("/v1/plugins/{name}/{version}", get(version))
        .route("/v1/plugins/{name}/{version}/yank", post(yank))
        .route("/v1/plugins/{name}/{version}/unyank", post(unyank))
        .route("/v1/blobs/{digest}", get(blob))
        .route("/v1/keys/{id}", get(key))
}

#[derive(Debug, Deserialize)]
struct ListQuery {
    #[serde(default)]
    q: String,
    #[serde(default = "one")]
    page: usize,
    #[serde(default = "twenty")]
    per_page: usize,
}

fn one() -> usize {
    1
}
fn twenty() -> usize {
    20
}

async fn list(State(s): State<AppState>, Query(q): Query<ListQuery>) -> Result<Json<J>, ApiError> {
    if q.page == 0 || q.per_page == 0 || q.per_page > 100 {
        return Err(ApiError::bad_request(
            "page starts at 1; per_page is 1 to 100",
        ));
    }
    let words: Vec<String> = q.q.split_whitespace().map(String::from).collect();
    let found = s.registry.search(&words)?;
    let total = found.len();
    let items: Vec<J> = found
        .into_iter()
        .skip((q.page - 1).saturating_mul(q.per_page))
        .take(q.per_page)
        .map(|p| json!({"name": p.name, "role": p.role, "description": p.description, "keywords": p.keywords}))
        .collect();
    Ok(Json(
        json!({"items": items, "page": q.page, "per_page": q.per_page, "total": total}),
    ))
}

fn check_name(name: &str) -> Result<(), ApiError> {
    if valid_name(name) {
        Ok(())
    } else {
        Err(ApiError::bad_request(format!(
            "`{name}` is not a plugin name"
        )))
    }
}

async fn plugin(State(s): State<AppState>, Path(name): Path<String>) -> Result<Json<J>, ApiError> {
    check_name(&name)?;
    let versions = s.registry.versions(&name)?;
    if versions.is_empty() {
        return Err(ApiError::not_found(format!("no plugin named `{name}`")));
    }
    let latest = &versions[versions.len() - 1].manifest.plugin;
    Ok(Json(json!({
        "name": name,
        "role": latest.role,
        "description": latest.description,
        "versions": versions.iter().map(|v| json!({"version": v.version, "digest": v.digest, "yanked": v.yanked})).collect::<Vec<_>>(),
    })))
}

async fn version(
    State(s): State<AppState>,
    Path((name, version)): Path<(String, String)>,
) -> Result<Json<VersionRecord>, ApiError> {
    check_name(&name)?;
    let req = semver::VersionReq::parse(&format!("={version}"))
        .map_err(|_| ApiError::bad_request(format!("`{version}` is not a version")))?;
    Ok(Json(s.registry.resolve(&name, &req)?))
}

async fn blob(
    State(s): State<AppState>,
    Path(digest): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    if digest.len() != 64
        || !digest
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    {
        return Err(ApiError::bad_request("a digest is 64 lowercase hex digits"));
    }
    let bytes = s
        .registry
        .blob(&digest)?
        .ok_or_else(|| ApiError::not_found(format!("no component with digest {digest}")))?;
    Ok((
        [(header::CONTENT_TYPE, "application/wasm")],
        Bytes::from(bytes),
    ))
}

async fn key(State(s): State<AppState>, Path(id): Path<String>) -> Result<Json<J>, ApiError> {
    let record = s
        .registry
        .trusted_key(&id)?
        .ok_or_else(|| ApiError::not_found(format!("no key {id}")))?;
    Ok(Json(json!(record)))
}

/// `POST /v1/plugins`: a version signed by its publisher, whose key the server trusts.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublishBody {
    pub manifest: Manifest,
    /// The component, base64.
    pub component: String,
    /// The publisher's signature over the version (hex), and its key id.
    pub signature: String,
    pub key_id: String,
}

async fn publish(
    State(s): State<AppState>,
    headers: HeaderMap,
    body: Result<Json<PublishBody>, JsonRejection>,
) -> Result<(StatusCode, Json<VersionRecord>), ApiError> {
    s.authorize(&headers, "publish")?;
    let Json(body) = body.map_err(|rejection| {
        let status = rejection.status();
        let code = if status == StatusCode::PAYLOAD_TOO_LARGE {
            "payload_too_large"
        } else {
            "bad_request"
        };
        ApiError::new(status, code, rejection.body_text())
    })?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(body.component.as_bytes())
        .map_err(|_| ApiError::bad_request("`component` is not base64"))?;
    body.manifest.check().map_err(ApiError::from)?;
    let role = Role::parse(&body.manifest.plugin.role)
        .ok_or_else(|| ApiError::bad_request("unknown role"))?;
    // The component must implement its declared world: checked off the async runtime.
    let host = s.host.clone();
    let spec = format!(
        "{}@{}",
        body.manifest.plugin.name, body.manifest.plugin.version
    );
    let checked = tokio::task::spawn_blocking(move || {
        host.load_bytes(&spec, &bytes, Some(role)).map(|_| bytes)
    })
    .await
    .map_err(|_| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "the check did not finish",
        )
    })?;
    let bytes = checked
        .map_err(|e| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, e.code(), e.to_string()))?;
    let record =
        s.registry
            .publish_signed(&body.manifest, &bytes, &body.signature, &body.key_id)?;
    Ok((StatusCode::CREATED, Json(record)))
}

async fn set_yanked(
    s: AppState,
    headers: HeaderMap,
    name: String,
    version: String,
    yanked: bool,
) -> Result<Json<VersionRecord>, ApiError> {
    s.authorize(&headers, "publish")?;
    check_name(&name)?;
    Ok(Json(s.registry.set_yanked(&name, &version, yanked)?))
}

async fn yank(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path((name, version)): Path<(String, String)>,
) -> Result<Json<VersionRecord>, ApiError> {
    set_yanked(s, headers, name, version, true).await
}

async fn unyank(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path((name, version)): Path<(String, String)>,
) -> Result<Json<VersionRecord>, ApiError> {
    set_yanked(s, headers, name, version, false).await
}
