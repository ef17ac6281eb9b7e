//! The Open Inference Protocol (v2) that KServe and Triton clients speak:
//!
//! - `GET /v2`, `GET /v2/health/live`, `GET /v2/health/ready`;
//! - `GET /v2/models/{name}[/versions/{v}]` (metadata), `.../ready`;
//! - `POST /v2/models/{name}[/versions/{v}]/infer`.
//!
//! `{name}` alone serves the version the server's default alias (`production`) points at,
//! or else the latest version; `{v}` is a version number or an alias.
//!
//! Input tensors named after the model's inputs go to those inputs as tensors. Otherwise,
//! for a model with one table input, each input tensor (shape `[n]` or `[n, 1]`) is one
//! column of that table, as a pandas-style client sends them. Table outputs come back one
//! output tensor per column.

use axum::{
    Json,
    body::Bytes,
    extract::{Path, State, rejection::BytesRejection},
};
use serde::{Deserialize, Serialize};
use serde_json::{Value as J, json};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{ApiError, AppState, predict::sole_input};
use crate::{
    bindings::{
        Column, ColumnData, Dtype, ModelMetadata, NamedValue, Port, Table, Tensor, Value, ValueKind,
    },
    serving::{Loaded, Reference},
    value,
};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(server))
        .routes(routes!(live))
        .routes(routes!(server_ready))
        .routes(routes!(metadata))
        .routes(routes!(ready))
        .routes(routes!(infer))
        .routes(routes!(metadata_of))
        .routes(routes!(ready_of))
        .routes(routes!(infer_of))
}

/// The server's metadata.
#[derive(Serialize, ToSchema)]
struct ServerMetadata {
    name: &'static str,
    version: &'static str,
    extensions: Vec<String>,
}

#[utoipa::path(
    get,
    path = "/v2",
    tag = "inference",
    summary = "Open Inference Protocol: server metadata",
    security(("bearer" = []), ()),
    responses((status = 200, description = "The server", body = ServerMetadata)),
)]
async fn server() -> Json<ServerMetadata> {
    Json(ServerMetadata {
        name: "kiln",
        version: env!("CARGO_PKG_VERSION"),
        extensions: Vec::new(),
    })
}

/// `GET /v2/health/live`.
#[derive(Serialize, ToSchema)]
struct Live {
    live: bool,
}

#[utoipa::path(
    get,
    path = "/v2/health/live",
    tag = "inference",
    summary = "Open Inference Protocol: live",
    security(),
    responses((status = 200, description = "Live", body = Live)),
)]
async fn live() -> Json<Live> {
    Json(Live { live: true })
}

/// `GET /v2/health/ready`.
#[derive(Serialize, ToSchema)]
struct ServerReady {
    ready: bool,
}

#[utoipa::path(
    get,
    path = "/v2/health/ready",
    tag = "inference",
    summary = "Open Inference Protocol: ready",
    security(),
    responses((status = 200, description = "Ready", body = ServerReady)),
)]
async fn server_ready() -> Json<ServerReady> {
    Json(ServerReady { ready: true })
}

async fn load(
    s: &AppState,
    name: &str,
    version: Option<&str>,
) -> Result<std::sync::Arc<Loaded>, ApiError> {
    let reference = version.map_or(Reference::Default, Reference::parse);
    Ok(s.serving.get(name, &reference).await?)
}

/// A model's metadata.
#[derive(Serialize, ToSchema)]
struct ModelMetadataAnswer {
    name: String,
    /// Every version of the model.
    versions: Vec<String>,
    /// `kiln-wasm` or `kiln-native`.
    platform: String,
    inputs: Vec<TensorMetadata>,
    outputs: Vec<TensorMetadata>,
    parameters: MetadataParameters,
}

/// The version described, and what its runner reports of it.
#[derive(Serialize, ToSchema)]
struct MetadataParameters {
    version: String,
    properties: std::collections::BTreeMap<String, String>,
}

/// A tensor a model takes or answers.
#[derive(Serialize, ToSchema)]
struct TensorMetadata {
    name: String,
    /// `FP64`, `INT64`, `BOOL`, `BYTES`...
    datatype: &'static str,
    /// -1 for a size that varies.
    shape: Vec<i64>,
    /// For a model's own port: its Kiln kind and description.
    #[serde(skip_serializing_if = "Option::is_none")]
    parameters: Option<PortParameters>,
}

/// A port's Kiln kind and description.
#[derive(Serialize, ToSchema)]
struct PortParameters {
    kind: &'static str,
    description: String,
}

#[utoipa::path(
    get,
    path = "/v2/models/{name}",
    tag = "inference",
    summary = "Model metadata (default alias, else the latest version)",
    params(("name" = String, Path, description = "The model's name")),
    security(("bearer" = []), ()),
    responses(
        (status = 200, description = "The model", body = ModelMetadataAnswer),
        (status = 404, description = "No such model"),
        (status = 409, description = "The version cannot be served as registered: it names no model runner"),
        (status = 503, description = "The model cannot be loaded"),
    ),
)]
async fn metadata(
    State(s): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<ModelMetadataAnswer>, ApiError> {
    describe(&s, &name, None).await
}

#[utoipa::path(
    get,
    path = "/v2/models/{name}/versions/{version}",
    tag = "inference",
    summary = "A version's metadata (number or alias)",
    params(
        ("name" = String, Path, description = "The model's name"),
        ("version" = String, Path, description = "A version number or an alias"),
    ),
    security(("bearer" = []), ()),
    responses(
        (status = 200, description = "The version", body = ModelMetadataAnswer),
        (status = 404, description = "No such model or version"),
        (status = 409, description = "The version cannot be served as registered: it names no model runner"),
        (status = 503, description = "The model cannot be loaded"),
    ),
)]
async fn metadata_of(
    State(s): State<AppState>,
    Path((name, version)): Path<(String, String)>,
) -> Result<Json<ModelMetadataAnswer>, ApiError> {
    describe(&s, &name, Some(&version)).await
}

async fn describe(
    s: &AppState,
    name: &str,
    version: Option<&str>,
) -> Result<Json<ModelMetadataAnswer>, ApiError> {
    let loaded = load(s, name, version).await?;
    let tracking = s.tracking.clone();
    let model = name.to_string();
    let (_, versions) = super::store_task::<_, ApiError>(move || tracking.model(&model)).await?;
    let meta = &loaded.pool.metadata;
    // A pipeline knows its raw columns and what it answers: the inputs are the columns
    // (each an input tensor of its own, or all of them as one `[rows, columns]` tensor),
    // the outputs the tensors infer returns.
    let (inputs, outputs): (Vec<TensorMetadata>, Vec<TensorMetadata>) =
        match &loaded.record.pipeline {
            Some(p) if !p.columns.is_empty() => (
                p.columns
                    .iter()
                    .map(|c| column_tensor(&c.name, &c.kind))
                    .collect(),
                p.outputs
                    .iter()
                    .flat_map(|o| match o.kind.as_str() {
                        "table" => o
                            .columns
                            .iter()
                            .map(|c| column_tensor(&c.name, &c.kind))
                            .collect(),
                        "scalar" => vec![tensor_port(&o.name, "FP64", vec![1])],
                        "tensor" => vec![tensor_port(&o.name, "FP64", vec![-1, -1])],
                        _ => vec![tensor_port(&o.name, "BYTES", vec![1])],
                    })
                    .collect(),
            ),
            _ => (
                meta.inputs.iter().map(port).collect(),
                meta.outputs.iter().map(port).collect(),
            ),
        };
    Ok(Json(ModelMetadataAnswer {
        name: loaded.record.model.clone(),
        versions: versions.iter().map(|v| v.version.to_string()).collect(),
        platform: format!("kiln-{}", loaded.backend.name()),
        inputs,
        outputs,
        parameters: MetadataParameters {
            version: loaded.record.version.to_string(),
            properties: meta.properties.iter().cloned().collect(),
        },
    }))
}

fn tensor_port(name: &str, datatype: &'static str, shape: Vec<i64>) -> TensorMetadata {
    TensorMetadata {
        name: name.to_string(),
        datatype,
        shape,
        parameters: None,
    }
}

/// A table column as the tensor infer takes or answers for it.
fn column_tensor(name: &str, kind: &str) -> TensorMetadata {
    let datatype = match kind {
        "int64" => "INT64",
        "text" => "BYTES",
        "boolean" => "BOOL",
        _ => "FP64",
    };
    tensor_port(name, datatype, vec![-1])
}

/// A port as a tensor description: Kiln ports have kinds, not dtypes.
fn port(p: &Port) -> TensorMetadata {
    let (datatype, shape) = match p.kind {
        ValueKind::Scalar => ("FP64", vec![1]),
        ValueKind::Text | ValueKind::Json | ValueKind::Bytes => ("BYTES", vec![1]),
        ValueKind::Tensor | ValueKind::Table | ValueKind::Any => ("FP64", vec![-1, -1]),
    };
    TensorMetadata {
        parameters: Some(PortParameters {
            kind: value::value_kind_name(p.kind),
            description: p.description.clone(),
        }),
        ..tensor_port(&p.name, datatype, shape)
    }
}

/// A model that can answer.
#[derive(Serialize, ToSchema)]
struct ModelReady {
    name: String,
    ready: bool,
}

#[utoipa::path(
    get,
    path = "/v2/models/{name}/ready",
    tag = "inference",
    summary = "Whether the model can answer",
    params(("name" = String, Path, description = "The model's name")),
    security(("bearer" = []), ()),
    responses(
        (status = 200, description = "It can", body = ModelReady),
        (status = 404, description = "No such model"),
        (status = 409, description = "The version cannot be served as registered: it names no model runner"),
        (status = 503, description = "The model cannot be loaded"),
    ),
)]
async fn ready(
    State(s): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<ModelReady>, ApiError> {
    ready_answer(&s, &name, None).await
}

#[utoipa::path(
    get,
    path = "/v2/models/{name}/versions/{version}/ready",
    tag = "inference",
    summary = "Whether the version can answer",
    params(
        ("name" = String, Path, description = "The model's name"),
        ("version" = String, Path, description = "A version number or an alias"),
    ),
    security(("bearer" = []), ()),
    responses(
        (status = 200, description = "It can", body = ModelReady),
        (status = 404, description = "No such model or version"),
        (status = 409, description = "The version cannot be served as registered: it names no model runner"),
        (status = 503, description = "The model cannot be loaded"),
    ),
)]
async fn ready_of(
    State(s): State<AppState>,
    Path((name, version)): Path<(String, String)>,
) -> Result<Json<ModelReady>, ApiError> {
    ready_answer(&s, &name, Some(&version)).await
}

async fn ready_answer(
    s: &AppState,
    name: &str,
    version: Option<&str>,
) -> Result<Json<ModelReady>, ApiError> {
    let loaded = load(s, name, version).await?;
    Ok(Json(ModelReady {
        name: loaded.record.model.clone(),
        ready: true,
    }))
}

/// An inference request: input tensors, each with its elements in row-major order.
#[derive(Debug, Deserialize, ToSchema)]
struct InferRequest {
    /// Echoed in the answer.
    #[serde(default)]
    id: Option<String>,
    inputs: Vec<InferInput>,
    /// Only these outputs (default: all).
    #[serde(default)]
    outputs: Vec<RequestedOutput>,
}

/// An input tensor.
#[derive(Debug, Deserialize, ToSchema)]
struct InferInput {
    name: String,
    shape: Vec<u64>,
    /// `BOOL`, `UINT8`, `INT32`, `INT64`, `FP32`, `FP64` or `BYTES`.
    datatype: String,
    /// The elements, flat or nested.
    data: J,
}

/// An output asked for.
#[derive(Debug, Deserialize, ToSchema)]
struct RequestedOutput {
    name: String,
}

/// An inference answer.
#[derive(Serialize, ToSchema)]
struct InferResponse {
    model_name: String,
    model_version: String,
    /// The request's id.
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<String>,
    /// One tensor per output (per column of a table output).
    #[schema(value_type = Vec<OutputTensor>)]
    outputs: Vec<J>,
}

/// An output tensor, as [`encode`] writes it.
#[derive(ToSchema)]
#[allow(dead_code)]
struct OutputTensor {
    name: String,
    datatype: String,
    shape: Vec<u64>,
    data: Vec<J>,
}

#[utoipa::path(
    post,
    path = "/v2/models/{name}/infer",
    tag = "inference",
    summary = "Inference",
    params(("name" = String, Path, description = "The model's name")),
    request_body = InferRequest,
    security(("bearer" = []), ()),
    responses(
        (status = 200, description = "The outputs", body = InferResponse),
        (status = 404, description = "No such model"),
        (status = 429, description = "The model's queue is full"),
        (status = 409, description = "The version cannot be served as registered: it names no model runner"),
        (status = 503, description = "The model cannot be loaded"),
        (status = 504, description = "The prediction ran past its deadline"),
    ),
)]
async fn infer(
    State(s): State<AppState>,
    Path(name): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<InferResponse>, ApiError> {
    run(&s, &name, None, &body?).await
}

#[utoipa::path(
    post,
    path = "/v2/models/{name}/versions/{version}/infer",
    tag = "inference",
    summary = "Inference with a version",
    params(
        ("name" = String, Path, description = "The model's name"),
        ("version" = String, Path, description = "A version number or an alias"),
    ),
    request_body = InferRequest,
    security(("bearer" = []), ()),
    responses(
        (status = 200, description = "The outputs", body = InferResponse),
        (status = 404, description = "No such model or version"),
        (status = 429, description = "The model's queue is full"),
        (status = 409, description = "The version cannot be served as registered: it names no model runner"),
        (status = 503, description = "The model cannot be loaded"),
        (status = 504, description = "The prediction ran past its deadline"),
    ),
)]
async fn infer_of(
    State(s): State<AppState>,
    Path((name, version)): Path<(String, String)>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<InferResponse>, ApiError> {
    run(&s, &name, Some(&version), &body?).await
}

async fn run(
    s: &AppState,
    name: &str,
    version: Option<&str>,
    body: &[u8],
) -> Result<Json<InferResponse>, ApiError> {
    let request: InferRequest = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("not an inference request: {e}")))?;
    let loaded = load(s, name, version).await?;
    let inputs = decode(&request.inputs, &loaded.pool.metadata).map_err(ApiError::bad_request)?;
    let outputs = loaded.predict(inputs).await?;
    let mut tensors: Vec<J> = outputs.iter().flat_map(encode).collect();
    if !request.outputs.is_empty() {
        let name_of = |t: &J| t["name"].as_str().unwrap_or_default().to_string();
        for want in &request.outputs {
            if !tensors.iter().any(|t| name_of(t) == want.name) {
                return Err(ApiError::bad_request(format!(
                    "the model has no output `{}`",
                    want.name
                )));
            }
        }
        tensors.retain(|t| request.outputs.iter().any(|w| w.name == name_of(t)));
    }
    Ok(Json(InferResponse {
        model_name: loaded.record.model.clone(),
        model_version: loaded.record.version.to_string(),
        id: request.id,
        outputs: tensors,
    }))
}

/// Every element of nested lists, in row-major order.
fn flatten<'a>(j: &'a J, out: &mut Vec<&'a J>) {
    match j {
        J::Array(items) => items.iter().for_each(|i| flatten(i, out)),
        other => out.push(other),
    }
}

fn elements(input: &InferInput) -> Result<Vec<&J>, String> {
    let mut out = Vec::new();
    flatten(&input.data, &mut out);
    let want = input
        .shape
        .iter()
        .try_fold(1u64, |a, &d| a.checked_mul(d))
        .ok_or_else(|| format!("input `{}`: the shape overflows", input.name))?;
    if out.len() as u64 != want {
        return Err(format!(
            "input `{}` has {} elements; its shape {:?} needs {want}",
            input.name,
            out.len(),
            input.shape
        ));
    }
    Ok(out)
}

fn decode(inputs: &[InferInput], meta: &ModelMetadata) -> Result<Vec<NamedValue>, String> {
    let is_port = |n: &str| meta.inputs.iter().any(|p| p.name == n);
    if !inputs.is_empty() && inputs.iter().all(|i| is_port(&i.name)) {
        return inputs
            .iter()
            .map(|i| {
                Ok(NamedValue {
                    name: i.name.clone(),
                    value: tensor(i)?,
                })
            })
            .collect();
    }
    // Each input a column of the model's one table input, or one `[rows, columns]`
    // tensor of them all (a pipeline maps its columns to its signature's, in order).
    let target = sole_input(meta)?;
    if let [one] = inputs
        && one.shape.len() == 2
        && one.shape[1] > 1
    {
        return Ok(vec![NamedValue {
            name: target.to_string(),
            value: tensor(one)?,
        }]);
    }
    let mut rows = None;
    let columns = inputs
        .iter()
        .map(|i| {
            let n = match i.shape[..] {
                [n] | [n, 1] => n,
                _ => {
                    return Err(format!(
                        "input `{}` is not an input of the model ({target}), so it is taken as a \
                         column of `{target}`: its shape is [rows] or [rows, 1], not {:?}",
                        i.name, i.shape
                    ));
                }
            };
            if *rows.get_or_insert(n) != n {
                return Err(format!(
                    "input `{}` differs in rows from the others",
                    i.name
                ));
            }
            column(i)
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(vec![NamedValue {
        name: target.to_string(),
        value: Value::Table(Table { columns }),
    }])
}

fn bad_element(input: &InferInput) -> String {
    format!(
        "input `{}` holds an element that is not {}",
        input.name, input.datatype
    )
}

fn column(input: &InferInput) -> Result<Column, String> {
    let items = elements(input)?;
    let bad = || bad_element(input);
    let data = match input.datatype.as_str() {
        "FP32" | "FP64" => ColumnData::Float64(
            items
                .iter()
                .map(|j| j.as_f64().ok_or_else(bad))
                .collect::<Result<_, _>>()?,
        ),
        "INT8" | "INT16" | "INT32" | "INT64" | "UINT8" | "UINT16" | "UINT32" => ColumnData::Int64(
            items
                .iter()
                .map(|j| j.as_i64().ok_or_else(bad))
                .collect::<Result<_, _>>()?,
        ),
        "BOOL" => ColumnData::Boolean(
            items
                .iter()
                .map(|j| j.as_bool().ok_or_else(bad))
                .collect::<Result<_, _>>()?,
        ),
        "BYTES" => ColumnData::Text(
            items
                .iter()
                .map(|j| j.as_str().map(String::from).ok_or_else(bad))
                .collect::<Result<_, _>>()?,
        ),
        other => return Err(unsupported(other)),
    };
    Ok(Column {
        name: input.name.clone(),
        data,
        valid: None,
    })
}

fn unsupported(datatype: &str) -> String {
    format!("datatype {datatype} is not supported (BOOL, UINT8, INT32, INT64, FP32, FP64, BYTES)")
}

fn tensor(input: &InferInput) -> Result<Value, String> {
    let items = elements(input)?;
    let dtype = match input.datatype.as_str() {
        "BYTES" => {
            return match items[..] {
                [J::String(s)] => Ok(Value::Text(s.clone())),
                _ => Err(format!(
                    "input `{}`: BYTES is taken as one text",
                    input.name
                )),
            };
        }
        "BOOL" => Dtype::Boolean,
        "UINT8" => Dtype::Uint8,
        "INT32" => Dtype::Int32,
        "INT64" => Dtype::Int64,
        "FP32" => Dtype::Float32,
        "FP64" => Dtype::Float64,
        other => return Err(unsupported(other)),
    };
    let data = value::encode_elements(dtype, items).map_err(|_| bad_element(input))?;
    Ok(Value::Tensor(Tensor {
        dtype,
        shape: input.shape.clone(),
        data,
    }))
}

fn datatype(d: Dtype) -> &'static str {
    match d {
        Dtype::Float32 => "FP32",
        Dtype::Float64 => "FP64",
        Dtype::Int32 => "INT32",
        Dtype::Int64 => "INT64",
        Dtype::Uint8 => "UINT8",
        Dtype::Boolean => "BOOL",
    }
}

/// An output as v2 output tensors: one per column of a table.
fn encode(o: &NamedValue) -> Vec<J> {
    let one = |name: &str, datatype: &str, shape: J, data: J| json!({"name": name, "datatype": datatype, "shape": shape, "data": data});
    match &o.value {
        Value::Table(t) => t
            .columns
            .iter()
            .map(|c| {
                let dt = match c.data {
                    ColumnData::Float64(_) => "FP64",
                    ColumnData::Int64(_) => "INT64",
                    ColumnData::Text(_) => "BYTES",
                    ColumnData::Boolean(_) => "BOOL",
                };
                let cells = value::column_cells(c);
                one(&c.name, dt, json!([cells.len()]), J::Array(cells))
            })
            .collect(),
        Value::Tensor(t) => vec![one(
            &o.name,
            datatype(t.dtype),
            json!(t.shape),
            J::Array(value::tensor_elements(t)),
        )],
        Value::Scalar(x) => vec![one(&o.name, "FP64", json!([1]), json!([x]))],
        Value::Text(s) | Value::Json(s) => vec![one(&o.name, "BYTES", json!([1]), json!([s]))],
        other => vec![one(
            &o.name,
            "BYTES",
            json!([1]),
            json!([value::to_json(other).to_string()]),
        )],
    }
}
