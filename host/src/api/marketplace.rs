//! The marketplace: list and search plugins (paginated), a plugin's versions, one
//! version's record, components by digest, publisher keys, and publish / yank / unyank.

use axum::{
    Json,
    body::Bytes,
    extract::{Path, Query, State, rejection::JsonRejection},
    http::{HeaderMap, StatusCode, header},
    response::IntoResponse,
};
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{ApiError, AppState, records::Binary};
use crate::{
    plugin::Role,
    registry::{KeyRecord, Manifest, VersionRecord, manifest::valid_name},
};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, publish))
        .routes(routes!(plugin))
        .routes(routes!(version))
        .routes(routes!(yank))
        .routes(routes!(unyank))
        .routes(routes!(blob))
        .routes(routes!(key))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    /// Words a plugin's name, description or keywords hold (all of them).
    #[serde(default)]
    q: String,
    /// From 1.
    #[serde(default = "one")]
    #[param(minimum = 1)]
    page: usize,
    /// 1 to 100.
    #[serde(default = "twenty")]
    #[param(minimum = 1, maximum = 100)]
    per_page: usize,
}

/// A page of plugins.
#[derive(Serialize, ToSchema)]
struct PluginList {
    items: Vec<PluginSummary>,
    page: usize,
    per_page: usize,
    /// Plugins found in all.
    total: usize,
}

/// A plugin as a list shows it.
#[derive(Serialize, ToSchema)]
struct PluginSummary {
    name: String,
    role: String,
    description: String,
    keywords: Vec<String>,
}

/// A plugin and its versions.
#[derive(Serialize, ToSchema)]
struct PluginVersions {
    name: String,
    /// The latest version's.
    role: String,
    description: String,
    versions: Vec<VersionSummary>,
}

/// One version, as the plugin's list shows it.
#[derive(Serialize, ToSchema)]
struct VersionSummary {
    version: String,
    digest: String,
    yanked: bool,
}

fn one() -> usize {
    1
}
fn twenty() -> usize {
    20
}

#[utoipa::path(
    get,
    path = "/v1/plugins",
    tag = "marketplace",
    summary = "Plugins, paginated (`q`, `page`, `per_page`)",
    params(ListQuery),
    security(("bearer" = []), ()),
    responses(
        (status = 200, description = "A page of plugins", body = PluginList),
        (status = 400, description = "`page` or `per_page` out of range"),
    ),
)]
async fn list(
    State(s): State<AppState>,
    Query(q): Query<ListQuery>,
) -> Result<Json<PluginList>, ApiError> {
    if q.page == 0 || q.per_page == 0 || q.per_page > 100 {
        return Err(ApiError::bad_request(
            "page starts at 1; per_page is 1 to 100",
        ));
    }
    let words: Vec<String> = q.q.split_whitespace().map(String::from).collect();
    let found = s.registry.search(&words)?;
    let total = found.len();
    let items = found
        .into_iter()
        .skip((q.page - 1).saturating_mul(q.per_page))
        .take(q.per_page)
        .map(|p| PluginSummary {
            name: p.name,
            role: p.role,
            description: p.description,
            keywords: p.keywords,
        })
        .collect();
    Ok(Json(PluginList {
        items,
        page: q.page,
        per_page: q.per_page,
        total,
    }))
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

#[utoipa::path(
    get,
    path = "/v1/plugins/{name}",
    tag = "marketplace",
    summary = "A plugin and its versions",
    params(("name" = String, Path, description = "The plugin's name")),
    security(("bearer" = []), ()),
    responses(
        (status = 200, description = "The plugin", body = PluginVersions),
        (status = 400, description = "Not a plugin name"),
        (status = 404, description = "No such plugin"),
    ),
)]
async fn plugin(
    State(s): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<PluginVersions>, ApiError> {
    check_name(&name)?;
    let versions = s.registry.versions(&name)?;
    if versions.is_empty() {
        return Err(ApiError::not_found(format!("no plugin named `{name}`")));
    }
    let latest = &versions[versions.len() - 1].manifest.plugin;
    Ok(Json(PluginVersions {
        role: latest.role.clone(),
        description: latest.description.clone(),
        versions: versions
            .iter()
            .map(|v| VersionSummary {
                version: v.version.clone(),
                digest: v.digest.clone(),
                yanked: v.yanked,
            })
            .collect(),
        name,
    }))
}

#[utoipa::path(
    get,
    path = "/v1/plugins/{name}/{version}",
    tag = "marketplace",
    summary = "One version: manifest, digest, signature",
    params(
        ("name" = String, Path, description = "The plugin's name"),
        ("version" = String, Path, description = "A version (semver)"),
    ),
    security(("bearer" = []), ()),
    responses(
        (status = 200, description = "The version", body = VersionRecord),
        (status = 400, description = "Not a plugin name or not a version"),
        (status = 404, description = "No such plugin or version"),
    ),
)]
async fn version(
    State(s): State<AppState>,
    Path((name, version)): Path<(String, String)>,
) -> Result<Json<VersionRecord>, ApiError> {
    check_name(&name)?;
    let req = semver::VersionReq::parse(&format!("={version}"))
        .map_err(|_| ApiError::bad_request(format!("`{version}` is not a version")))?;
    Ok(Json(s.registry.resolve(&name, &req)?))
}

#[utoipa::path(
    get,
    path = "/v1/blobs/{digest}",
    tag = "marketplace",
    summary = "A component's bytes, by digest",
    params(("digest" = String, Path, description = "sha256", pattern = "^[0-9a-f]{64}$")),
    security(("bearer" = []), ()),
    responses(
        (status = 200, description = "The component", body = Binary, content_type = "application/wasm"),
        (status = 400, description = "Not a digest"),
        (status = 404, description = "No component with this digest"),
    ),
)]
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

#[utoipa::path(
    get,
    path = "/v1/keys/{id}",
    tag = "marketplace",
    summary = "A publisher's public key",
    params(("id" = String, Path, description = "The key's id")),
    security(("bearer" = []), ()),
    responses(
        (status = 200, description = "The key", body = KeyRecord),
        (status = 404, description = "No such key"),
    ),
)]
async fn key(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<KeyRecord>, ApiError> {
    let record = s
        .registry
        .trusted_key(&id)?
        .ok_or_else(|| ApiError::not_found(format!("no key {id}")))?;
    Ok(Json(record))
}

/// `POST /v1/plugins`: a version signed by its publisher, whose key the server trusts.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PublishBody {
    pub manifest: Manifest,
    /// The component, base64.
    pub component: String,
    /// The publisher's signature over the version (hex), and its key id.
    pub signature: String,
    pub key_id: String,
}

#[utoipa::path(
    post,
    path = "/v1/plugins",
    tag = "marketplace",
    summary = "Publish a signed plugin version",
    request_body = PublishBody,
    security(("bearer" = ["publish"])),
    responses(
        (status = 201, description = "Published", body = VersionRecord),
        (status = 403, description = "The token lacks the scope, or the signature is not trusted"),
        (status = 409, description = "The version exists"),
        (status = 422, description = "The manifest or the component is invalid"),
    ),
)]
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

#[utoipa::path(
    post,
    path = "/v1/plugins/{name}/{version}/yank",
    tag = "marketplace",
    summary = "Yank a version",
    params(
        ("name" = String, Path, description = "The plugin's name"),
        ("version" = String, Path, description = "The version"),
    ),
    security(("bearer" = ["publish"])),
    responses(
        (status = 200, description = "The version, yanked", body = VersionRecord),
        (status = 400, description = "Not a plugin name"),
        (status = 404, description = "No such plugin or version"),
    ),
)]
async fn yank(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path((name, version)): Path<(String, String)>,
) -> Result<Json<VersionRecord>, ApiError> {
    set_yanked(s, headers, name, version, true).await
}

#[utoipa::path(
    post,
    path = "/v1/plugins/{name}/{version}/unyank",
    tag = "marketplace",
    summary = "Restore a yanked version",
    params(
        ("name" = String, Path, description = "The plugin's name"),
        ("version" = String, Path, description = "The version"),
    ),
    security(("bearer" = ["publish"])),
    responses(
        (status = 200, description = "The version, restored", body = VersionRecord),
        (status = 400, description = "Not a plugin name"),
        (status = 404, description = "No such plugin or version"),
    ),
)]
async fn unyank(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path((name, version)): Path<(String, String)>,
) -> Result<Json<VersionRecord>, ApiError> {
    set_yanked(s, headers, name, version, false).await
}
