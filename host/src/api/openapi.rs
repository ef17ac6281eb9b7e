//! `GET /openapi.json`: an OpenAPI 3.1 document of every route, built from [`ROUTES`].
//! A unit test below reads the router's sources and checks the table names exactly the
//! routes they mount, method by method; an integration test calls every one of them.

use std::sync::OnceLock;

use axum::{Json, response::IntoResponse};
use serde_json::{Map, Value as J, json};

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone, whatever the config: the health probes.
    Public,
    /// Anyone while `anonymous_reads` holds, else any valid token.
    Read,
    /// A token with this scope (`admin` grants every scope).
    Scope(&'static str),
    /// MLflow's writes: the `run` scope once the config has tokens, else anyone.
    MlflowWrite,
}

/// One operation: method, path (axum's `{param}` syntax, which OpenAPI shares), who may
/// call it, its tag, its success status, the body it takes, and what it does.
pub struct Route {
    pub method: &'static str,
    pub path: &'static str,
    pub access: Access,
    tag: &'static str,
    ok: u16,
    body: Body,
    summary: &'static str,
}

#[derive(Clone, Copy)]
enum Body {
    None,
    Json,
    /// A workflow: YAML or JSON.
    Workflow,
    /// JSON, CSV, or a binary tensor (`application/octet-stream`).
    Predict,
    /// JSON or CSV (MLflow's scoring protocol).
    Scoring,
    /// Raw bytes.
    Bytes,
}

const fn r(
    method: &'static str,
    path: &'static str,
    access: Access,
    tag: &'static str,
    summary: &'static str,
) -> Route {
    let body = match method.as_bytes() {
        b"GET" | b"DELETE" => Body::None,
        _ => Body::Json,
    };
    Route {
        method,
        path,
        access,
        tag,
        ok: 200,
        body,
        summary,
    }
}

const fn with(route: Route, ok: u16, body: Body) -> Route {
    Route { ok, body, ..route }
}

use Access::{MlflowWrite as W, Public, Read, Scope};

const ML: &str = "mlflow";

/// Every route the server mounts.
pub const ROUTES: &[Route] = &[
    r("GET", "/healthz", Public, "server", "Liveness: `ok`"),
    r(
        "GET",
        "/readyz",
        Public,
        "server",
        "Readiness: the stores answer and the server is not draining",
    ),
    r(
        "GET",
        "/metrics",
        Read,
        "server",
        "Prometheus metrics (OpenMetrics text)",
    ),
    r("GET", "/openapi.json", Read, "server", "This document"),
    r(
        "GET",
        "/v1/plugins",
        Read,
        "marketplace",
        "Plugins, paginated (`q`, `page`, `per_page`)",
    ),
    with(
        r(
            "POST",
            "/v1/plugins",
            Scope("publish"),
            "marketplace",
            "Publish a signed plugin version",
        ),
        201,
        Body::Json,
    ),
    r(
        "GET",
        "/v1/plugins/{name}",
        Read,
        "marketplace",
        "A plugin and its versions",
    ),
    r(
        "GET",
        "/v1/plugins/{name}/{version}",
        Read,
        "marketplace",
        "One version: manifest, digest, signature",
    ),
    r(
        "POST",
        "/v1/plugins/{name}/{version}/yank",
        Scope("publish"),
        "marketplace",
        "Yank a version",
    ),
    r(
        "POST",
        "/v1/plugins/{name}/{version}/unyank",
        Scope("publish"),
        "marketplace",
        "Restore a yanked version",
    ),
    r(
        "GET",
        "/v1/blobs/{digest}",
        Read,
        "marketplace",
        "A component's bytes, by digest",
    ),
    r(
        "GET",
        "/v1/keys/{id}",
        Read,
        "marketplace",
        "A publisher's public key",
    ),
    r("GET", "/v1/runs", Read, "runs", "Workflow runs"),
    r(
        "POST",
        "/v1/sync",
        Scope("run"),
        "runs",
        "Runs and prediction logs a device recorded offline (`kiln sync`)",
    ),
    r(
        "GET",
        "/v1/predictions",
        Read,
        "runs",
        "Prediction logs devices synced (`device`)",
    ),
    with(
        r(
            "POST",
            "/v1/runs",
            Scope("run"),
            "runs",
            "Start a workflow (YAML or JSON); answers its id at once",
        ),
        202,
        Body::Workflow,
    ),
    r(
        "GET",
        "/v1/runs/{id}",
        Read,
        "runs",
        "A run: live status while it runs, then its record",
    ),
    r(
        "GET",
        "/v1/runs/{id}/events",
        Read,
        "runs",
        "A run's step events (Server-Sent Events)",
    ),
    with(
        r(
            "POST",
            "/v1/runs/{id}/cancel",
            Scope("run"),
            "runs",
            "Cancel a run",
        ),
        202,
        Body::None,
    ),
    r(
        "GET",
        "/v1/runs/{id}/outputs/{step}/{output}",
        Read,
        "runs",
        "One output of a run (value document)",
    ),
    r("GET", "/v1/models", Read, "models", "Registered models"),
    r(
        "GET",
        "/v1/models/{name}",
        Read,
        "models",
        "A model and its versions",
    ),
    r(
        "PUT",
        "/v1/models/{name}/aliases/{alias}",
        Scope("publish"),
        "models",
        "Point an alias at a version",
    ),
    r(
        "DELETE",
        "/v1/models/{name}/aliases/{alias}",
        Scope("publish"),
        "models",
        "Remove an alias",
    ),
    r(
        "POST",
        "/v1/models/{name}/aliases/{alias}/rollback",
        Scope("publish"),
        "models",
        "Move an alias back to its previous version",
    ),
    r(
        "GET",
        "/v1/models/{name}/alias-history",
        Read,
        "models",
        "Every move of the model's aliases",
    ),
    with(
        r(
            "POST",
            "/v1/models/{name}/{reference}/predict",
            Read,
            "serving",
            "Predict with a version or alias: rows, columns, MLflow's forms, or a binary tensor",
        ),
        200,
        Body::Predict,
    ),
    with(
        r(
            "POST",
            "/v1/models/{name}/predict",
            Read,
            "serving",
            "Predict with what /v2/models/{name} serves: the default alias, else the latest version",
        ),
        200,
        Body::Predict,
    ),
    with(
        r(
            "POST",
            "/invocations",
            Read,
            "serving",
            "MLflow's scoring protocol: predict with the model `[serving] invocations` names (or the only one)",
        ),
        200,
        Body::Scoring,
    ),
    r(
        "GET",
        "/ping",
        Read,
        "serving",
        "MLflow's scoring protocol: 200 once the /invocations model loads",
    ),
    r(
        "GET",
        "/health",
        Read,
        "serving",
        "MLflow's scoring protocol: as /ping",
    ),
    r(
        "GET",
        "/version",
        Read,
        "serving",
        "MLflow's scoring protocol: the server's version",
    ),
    r(
        "GET",
        "/v2",
        Read,
        "inference",
        "Open Inference Protocol: server metadata",
    ),
    r(
        "GET",
        "/v2/health/live",
        Public,
        "inference",
        "Open Inference Protocol: live",
    ),
    r(
        "GET",
        "/v2/health/ready",
        Public,
        "inference",
        "Open Inference Protocol: ready",
    ),
    r(
        "GET",
        "/v2/models/{name}",
        Read,
        "inference",
        "Model metadata (default alias, else the latest version)",
    ),
    r(
        "GET",
        "/v2/models/{name}/ready",
        Read,
        "inference",
        "Whether the model can answer",
    ),
    r(
        "POST",
        "/v2/models/{name}/infer",
        Read,
        "inference",
        "Inference",
    ),
    r(
        "GET",
        "/v2/models/{name}/versions/{version}",
        Read,
        "inference",
        "A version's metadata (number or alias)",
    ),
    r(
        "GET",
        "/v2/models/{name}/versions/{version}/ready",
        Read,
        "inference",
        "Whether the version can answer",
    ),
    r(
        "POST",
        "/v2/models/{name}/versions/{version}/infer",
        Read,
        "inference",
        "Inference with a version",
    ),
    r(
        "POST",
        "/api/2.0/mlflow/experiments/create",
        W,
        ML,
        "Create an experiment",
    ),
    r(
        "GET",
        "/api/2.0/mlflow/experiments/get",
        Read,
        ML,
        "An experiment by id",
    ),
    r(
        "GET",
        "/api/2.0/mlflow/experiments/get-by-name",
        Read,
        ML,
        "An experiment by name",
    ),
    r(
        "POST",
        "/api/2.0/mlflow/experiments/search",
        Read,
        ML,
        "Search experiments",
    ),
    r(
        "GET",
        "/api/2.0/mlflow/experiments/search",
        Read,
        ML,
        "Search experiments",
    ),
    r(
        "POST",
        "/api/2.0/mlflow/experiments/delete",
        W,
        ML,
        "Delete an experiment",
    ),
    r(
        "POST",
        "/api/2.0/mlflow/experiments/restore",
        W,
        ML,
        "Restore an experiment",
    ),
    r(
        "POST",
        "/api/2.0/mlflow/experiments/update",
        W,
        ML,
        "Rename an experiment",
    ),
    r(
        "POST",
        "/api/2.0/mlflow/experiments/set-experiment-tag",
        W,
        ML,
        "Tag an experiment",
    ),
    r("POST", "/api/2.0/mlflow/runs/create", W, ML, "Create a run"),
    r("GET", "/api/2.0/mlflow/runs/get", Read, ML, "A run"),
    r(
        "POST",
        "/api/2.0/mlflow/runs/update",
        W,
        ML,
        "Update a run's status, end time or name",
    ),
    r("POST", "/api/2.0/mlflow/runs/delete", W, ML, "Delete a run"),
    r(
        "POST",
        "/api/2.0/mlflow/runs/restore",
        W,
        ML,
        "Restore a run",
    ),
    r(
        "POST",
        "/api/2.0/mlflow/runs/log-metric",
        W,
        ML,
        "Log a metric point",
    ),
    r(
        "POST",
        "/api/2.0/mlflow/runs/log-parameter",
        W,
        ML,
        "Log a parameter",
    ),
    r("POST", "/api/2.0/mlflow/runs/set-tag", W, ML, "Tag a run"),
    r(
        "POST",
        "/api/2.0/mlflow/runs/delete-tag",
        W,
        ML,
        "Remove a run's tag",
    ),
    r(
        "POST",
        "/api/2.0/mlflow/runs/log-batch",
        W,
        ML,
        "Log metrics, parameters and tags at once",
    ),
    r(
        "POST",
        "/api/2.0/mlflow/runs/log-inputs",
        W,
        ML,
        "Log a run's datasets",
    ),
    r(
        "POST",
        "/api/2.0/mlflow/runs/search",
        Read,
        ML,
        "Search runs",
    ),
    r(
        "GET",
        "/api/2.0/mlflow/metrics/get-history",
        Read,
        ML,
        "A metric's history",
    ),
    r(
        "POST",
        "/api/2.0/mlflow/logged-models/search",
        Read,
        ML,
        "Search logged models",
    ),
    r(
        "POST",
        "/api/2.0/mlflow/registered-models/create",
        W,
        ML,
        "Create a registered model",
    ),
    r(
        "GET",
        "/api/2.0/mlflow/registered-models/get",
        Read,
        ML,
        "A registered model",
    ),
    r(
        "GET",
        "/api/2.0/mlflow/registered-models/search",
        Read,
        ML,
        "Search registered models",
    ),
    r(
        "POST",
        "/api/2.0/mlflow/registered-models/search",
        Read,
        ML,
        "Search registered models",
    ),
    r(
        "PATCH",
        "/api/2.0/mlflow/registered-models/update",
        W,
        ML,
        "Describe a registered model",
    ),
    r(
        "POST",
        "/api/2.0/mlflow/registered-models/set-tag",
        W,
        ML,
        "Tag a registered model",
    ),
    r(
        "POST",
        "/api/2.0/mlflow/registered-models/get-latest-versions",
        Read,
        ML,
        "The latest versions",
    ),
    r(
        "GET",
        "/api/2.0/mlflow/registered-models/get-latest-versions",
        Read,
        ML,
        "The latest versions",
    ),
    r(
        "POST",
        "/api/2.0/mlflow/registered-models/alias",
        W,
        ML,
        "Point an alias at a version",
    ),
    r(
        "DELETE",
        "/api/2.0/mlflow/registered-models/alias",
        W,
        ML,
        "Remove an alias",
    ),
    r(
        "GET",
        "/api/2.0/mlflow/registered-models/alias",
        Read,
        ML,
        "The version an alias names",
    ),
    r(
        "POST",
        "/api/2.0/mlflow/model-versions/create",
        W,
        ML,
        "Create a model version",
    ),
    r(
        "GET",
        "/api/2.0/mlflow/model-versions/get",
        Read,
        ML,
        "A model version",
    ),
    r(
        "GET",
        "/api/2.0/mlflow/model-versions/search",
        Read,
        ML,
        "Search model versions",
    ),
    r(
        "GET",
        "/api/2.0/mlflow/model-versions/get-download-uri",
        Read,
        ML,
        "Where a version's artifacts are",
    ),
    r(
        "GET",
        "/api/2.0/mlflow-artifacts/artifacts",
        Read,
        ML,
        "List artifacts",
    ),
    r(
        "GET",
        "/api/2.0/mlflow-artifacts/artifacts/{path}",
        Read,
        ML,
        "Download an artifact",
    ),
    with(
        r(
            "PUT",
            "/api/2.0/mlflow-artifacts/artifacts/{path}",
            W,
            ML,
            "Upload an artifact",
        ),
        200,
        Body::Bytes,
    ),
];

/// The path's `{parameters}`.
pub fn params(path: &str) -> impl Iterator<Item = &str> {
    path.split('/')
        .filter_map(|seg| seg.strip_prefix('{')?.strip_suffix('}'))
}

fn operation(route: &Route) -> J {
    let parameters: Vec<J> = params(route.path)
        .map(|p| json!({"name": p, "in": "path", "required": true, "schema": {"type": "string"}}))
        .collect();
    let (security, note) = match route.access {
        Access::Public => (json!([]), "No token needed.".to_string()),
        Access::Read => (
            json!([{"bearer": []}, {}]),
            "Anonymous unless the server turns anonymous reads off; then any valid token."
                .to_string(),
        ),
        Access::Scope(s) => (
            json!([{"bearer": [s]}]),
            format!("A token with the `{s}` scope."),
        ),
        Access::MlflowWrite => (
            json!([{"bearer": ["run"]}, {}]),
            "A token with the `run` scope once the server has tokens; anonymous otherwise."
                .to_string(),
        ),
    };
    let error = if route.tag == ML {
        "#/components/schemas/MlflowError"
    } else {
        "#/components/schemas/Error"
    };
    let mut responses = Map::new();
    responses.insert(route.ok.to_string(), json!({"description": "Success"}));
    responses.insert(
        "default".into(),
        json!({"description": "An error with a stable code", "content": {"application/json": {"schema": {"$ref": error}}}}),
    );
    let any = json!({"schema": {}});
    let body = match route.body {
        Body::None => None,
        Body::Json => Some(json!({"application/json": any})),
        Body::Workflow => Some(json!({"application/yaml": any, "application/json": any})),
        Body::Predict => {
            Some(json!({"application/json": any, "text/csv": any, "application/octet-stream": any}))
        }
        Body::Scoring => Some(json!({"application/json": any, "text/csv": any})),
        Body::Bytes => Some(json!({"application/octet-stream": any})),
    };
    let mut op = json!({
        "summary": route.summary,
        "description": note,
        "tags": [route.tag],
        "operationId": format!("{} {}", route.method, route.path),
        "security": security,
        "responses": responses,
    });
    if !parameters.is_empty() {
        op["parameters"] = J::Array(parameters);
    }
    if let Some(content) = body {
        op["requestBody"] = json!({"required": true, "content": content});
    }
    op
}

/// Whether this build mounts `route` (the marketplace and MLflow's API are features).
fn served(route: &Route) -> bool {
    (route.tag != "marketplace" || cfg!(feature = "marketplace"))
        && (route.tag != ML || cfg!(feature = "mlflow"))
}

/// The whole document.
pub fn document() -> &'static J {
    static DOC: OnceLock<J> = OnceLock::new();
    DOC.get_or_init(|| {
        let mut paths = Map::new();
        for route in ROUTES.iter().filter(|r| served(r)) {
            let entry = paths
                .entry(route.path.to_string())
                .or_insert_with(|| json!({}));
            entry[route.method.to_ascii_lowercase()] = operation(route);
        }
        json!({
            "openapi": "3.1.0",
            "info": {
                "title": "Kiln",
                "version": env!("CARGO_PKG_VERSION"),
                "description": "Kiln's HTTP API: the plugin marketplace, workflow runs, registered models and their serving (also over the Open Inference Protocol v2), and MLflow's tracking API.",
            },
            "components": {
                "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
                "schemas": {
                    "Error": {
                        "type": "object",
                        "required": ["error"],
                        "properties": {"error": {
                            "type": "object",
                            "required": ["code", "message"],
                            "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
                        }},
                    },
                    "MlflowError": {
                        "type": "object",
                        "required": ["error_code", "message"],
                        "properties": {"error_code": {"type": "string"}, "message": {"type": "string"}},
                    },
                },
            },
            "paths": paths,
        })
    })
}

/// `GET /openapi.json`.
pub async fn serve() -> impl IntoResponse {
    Json(document())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    /// The `(METHOD, path)` pairs the router's sources mount, read from their `.route(...)`
    /// calls: a path literal, `p("...")` (MLflow's prefix) or `ARTIFACTS`, then the
    /// method routers chained on it.
    fn mounted() -> BTreeSet<(String, String)> {
        let sources = [
            include_str!("mod.rs"),
            include_str!("marketplace.rs"),
            include_str!("tracking.rs"),
            include_str!("runs.rs"),
            include_str!("oip.rs"),
            include_str!("invocations.rs"),
            include_str!("mlflow.rs"),
        ];
        let mut found = BTreeSet::new();
        for src in sources {
            let mut rest = src;
            while let Some(at) = rest.find(".route(") {
                rest = &rest[at + ".route(".len()..];
                // The call's text, up to its closing parenthesis.
                let mut depth = 1;
                let end = rest
                    .char_indices()
                    .find(|&(_, c)| {
                        depth += match c {
                            '(' => 1,
                            ')' => -1,
                            _ => 0,
                        };
                        depth == 0
                    })
                    .map(|(i, _)| i)
                    .expect("a closed .route(");
                let call = &rest[..end];
                let literal = |s: &str| s.split('"').nth(1).map(str::to_string);
                let path = if call.trim_start().starts_with("&p(") {
                    format!("/api/2.0/mlflow/{}", literal(call).unwrap())
                } else if call.trim_start().starts_with("ARTIFACTS") {
                    "/api/2.0/mlflow-artifacts/artifacts".into()
                } else if call.contains("{ARTIFACTS}/") {
                    "/api/2.0/mlflow-artifacts/artifacts/{path}".into()
                } else {
                    literal(call).unwrap_or_default()
                };
                // MLflow's catch-all for endpoints it does not serve is no route of its own.
                if path.is_empty() || path.contains("{*rest}") {
                    continue;
                }
                let path = path.replace("{*path}", "{path}");
                let handlers = &call[call.find(',').expect("a handler")..];
                for (method, marks) in [
                    ("GET", ["get(", ".get("]),
                    ("POST", ["post(", ".post("]),
                    ("PUT", ["put(", ".put("]),
                    ("PATCH", ["patch(", ".patch("]),
                    ("DELETE", ["delete(", ".delete("]),
                ] {
                    let calls = handlers.match_indices(marks[0]).any(|(i, _)| {
                        let before = handlers[..i].chars().next_back();
                        // `get(` as a function or a method; not `budget(` or `widget(`.
                        !before.is_some_and(|c| c.is_alphanumeric() || c == '_')
                            || handlers[..i].ends_with("routing::")
                    }) || handlers.contains(marks[1]);
                    if calls {
                        found.insert((method.to_string(), path.clone()));
                    }
                }
            }
        }
        found
    }

    #[test]
    fn the_document_names_exactly_the_mounted_routes() {
        let documented: BTreeSet<(String, String)> = ROUTES
            .iter()
            .map(|r| (r.method.to_string(), r.path.to_string()))
            .collect();
        assert_eq!(documented.len(), ROUTES.len(), "a route is listed twice");
        let mounted = mounted();
        let undocumented: Vec<_> = mounted.difference(&documented).collect();
        let unmounted: Vec<_> = documented.difference(&mounted).collect();
        assert!(
            undocumented.is_empty() && unmounted.is_empty(),
            "mounted but not documented: {undocumented:?}\ndocumented but not mounted: {unmounted:?}"
        );
        let doc = document();
        let operations: usize = doc["paths"]
            .as_object()
            .unwrap()
            .values()
            .map(|p| p.as_object().unwrap().len())
            .sum();
        assert_eq!(operations, ROUTES.len());
        assert_eq!(
            doc["paths"]["/v1/runs/{id}/outputs/{step}/{output}"]["get"]["parameters"]
                .as_array()
                .unwrap()
                .len(),
            3
        );
    }
}
