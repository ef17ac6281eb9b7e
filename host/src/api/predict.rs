//! Kiln's own prediction route, `POST /v1/models/{name}/{version|alias}/predict`.
//!
//! A JSON body names the rows for the model's (sole) input in one of these forms:
//!
//! - `{"rows": [{"age": 0.03, "bmi": 0.06}, ...]}` (also MLflow's `dataframe_records`);
//! - `{"columns": {"age": [0.03, ...], "bmi": [0.06, ...]}}`;
//! - `{"dataframe_split": {"columns": ["age", "bmi"], "data": [[0.03, 0.06], ...]}}`;
//! - `{"instances": [[0.03, 0.06], ...]}`: a float64 `[rows, columns]` tensor;
//! - `{"inputs": {"port": <any of the above, or a Kiln value document>}}` for models with
//!   several inputs.
//!
//! The answer is `{"model", "version", "outputs": {name: ...}}`, a table output as rows when
//! rows were sent and as columns otherwise; other outputs as value documents.
//!
//! A CSV body (`Content-Type: text/csv`, a header row first) is a table for the sole input.
//!
//! A binary body (`Content-Type: application/octet-stream`) is one tensor: its elements
//! little-endian, described by the headers `kiln-dtype` and `kiln-shape` (`rows,columns`),
//! for the input `kiln-input` (or the sole one). With `Accept: application/octet-stream`
//! the first output comes back the same way (a table of float64 columns as a float64
//! `[rows, columns]` tensor).

use axum::{
    Json,
    body::Bytes,
    extract::{Path, State, rejection::BytesRejection},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::Serialize;
use serde_json::{Map, Value as J};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{ApiError, AppState, records::Binary};
use crate::{
    bindings::{Column, ColumnData, ModelMetadata, NamedValue, Table, Tensor, Value},
    serving::{Reference, ServeError},
    value,
};

/// How a table travels in JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Orientation {
    Rows,
    Columns,
}

impl From<ServeError> for ApiError {
    fn from(e: ServeError) -> Self {
        use crate::plugin::PluginError as P;
        match e {
            ServeError::NotFound(m) => ApiError::not_found(m),
            ServeError::Busy => ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "overloaded",
                "the model's queue is full; retry later",
            ),
            ServeError::Unavailable(m) => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "model_unavailable", m)
            }
            ServeError::NotServable(m) => ApiError::new(StatusCode::CONFLICT, "not_servable", m),
            ServeError::Invalid(m) => ApiError::new(StatusCode::BAD_REQUEST, "invalid_input", m),
            ServeError::Plugin(P::Failed { kind, message, .. }) if kind != "internal" => {
                ApiError::new(StatusCode::BAD_REQUEST, "invalid_input", message)
            }
            ServeError::Plugin(P::Deadline { timeout, .. }) => ApiError::new(
                StatusCode::GATEWAY_TIMEOUT,
                "model_timeout",
                format!(
                    "the prediction ran past its deadline of {}",
                    humantime::format_duration(timeout)
                ),
            ),
            ServeError::Plugin(P::Memory { .. }) => ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "model_memory_limit",
                "the model exceeded its memory limit",
            ),
            // Traps and bad results carry the plugin's own output: keep it in the log.
            ServeError::Plugin(e) => {
                eprintln!("kiln serve: {e}");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "model_failed",
                    "the model runner failed; the server log has the detail",
                )
            }
        }
    }
}

/// `/v1/models/.../predict`.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(predict))
        .routes(routes!(predict_default))
}

/// A JSON prediction request: one of these forms (see the module's documentation).
#[derive(ToSchema)]
#[allow(dead_code)]
struct PredictRequest {
    /// Records: `[{"age": 0.03, "bmi": 0.06}, ...]`.
    rows: Option<Vec<Map<String, J>>>,
    /// MLflow's name for `rows`.
    dataframe_records: Option<Vec<Map<String, J>>>,
    /// Columns: `{"age": [0.03, ...], "bmi": [0.06, ...]}`.
    columns: Option<Map<String, J>>,
    /// `{"columns": ["age", "bmi"], "data": [[0.03, 0.06], ...]}`.
    dataframe_split: Option<Map<String, J>>,
    /// A float64 `[rows, columns]` tensor: `[[0.03, 0.06], ...]`.
    instances: Option<Vec<J>>,
    /// For models with several inputs: `{"port": <any of the above, or a value document>}`.
    inputs: Option<J>,
}

/// A prediction.
#[derive(Serialize, ToSchema)]
struct Predicted<'a> {
    model: &'a str,
    version: u64,
    /// Each output by name: a table as rows when rows were sent, as columns otherwise;
    /// other outputs as value documents.
    outputs: Map<String, J>,
}

#[utoipa::path(
    post,
    path = "/v1/models/{name}/{reference}/predict",
    tag = "serving",
    summary = "Predict with a version or alias: rows, columns, MLflow's forms, or a binary tensor",
    params(
        ("name" = String, Path, description = "The model's name"),
        ("reference" = String, Path, description = "A version number or an alias"),
        TensorHeaders,
    ),
    request_body(content(
        (PredictRequest = "application/json"),
        (String = "text/csv"),
        (Binary = "application/octet-stream"),
    )),
    security(("bearer" = []), ()),
    responses(
        (status = 200, description = "The outputs (one binary tensor with `Accept: application/octet-stream`)",
            content((Predicted = "application/json"), (Binary = "application/octet-stream"))),
        (status = 404, description = "No such model or version"),
        (status = 406, description = "The first output is no tensor to answer in binary"),
        (status = 429, description = "The model's queue is full"),
        (status = 409, description = "The version cannot be served as registered: it names no model runner"),
        (status = 503, description = "The model cannot be loaded"),
        (status = 504, description = "The prediction ran past its deadline"),
    ),
)]
pub async fn predict(
    State(s): State<AppState>,
    Path((name, reference)): Path<(String, String)>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    answer(&s, &name, &Reference::parse(&reference), &headers, body?).await
}

/// The headers that describe a binary tensor body.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Header)]
#[allow(dead_code)]
struct TensorHeaders {
    /// The elements' type (default `float64`).
    #[param(rename = "kiln-dtype")]
    dtype: Option<String>,
    /// The sizes: `rows,columns` (a binary body needs it).
    #[param(rename = "kiln-shape")]
    shape: Option<String>,
    /// The input it is for (default: the sole one).
    #[param(rename = "kiln-input")]
    input: Option<String>,
}

/// `POST /v1/models/{name}/predict`: what `/v2/models/{name}` serves (the default alias,
/// else the latest version).
#[utoipa::path(
    post,
    path = "/v1/models/{name}/predict",
    tag = "serving",
    summary = "Predict with what /v2/models/{name} serves: the default alias, else the latest version",
    params(("name" = String, Path, description = "The model's name"), TensorHeaders),
    request_body(content(
        (PredictRequest = "application/json"),
        (String = "text/csv"),
        (Binary = "application/octet-stream"),
    )),
    security(("bearer" = []), ()),
    responses(
        (status = 200, description = "The outputs (one binary tensor with `Accept: application/octet-stream`)",
            content((Predicted = "application/json"), (Binary = "application/octet-stream"))),
        (status = 404, description = "No such model"),
        (status = 406, description = "The first output is no tensor to answer in binary"),
        (status = 429, description = "The model's queue is full"),
        (status = 409, description = "The version cannot be served as registered: it names no model runner"),
        (status = 503, description = "The model cannot be loaded"),
        (status = 504, description = "The prediction ran past its deadline"),
    ),
)]
pub async fn predict_default(
    State(s): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    answer(&s, &name, &Reference::Default, &headers, body?).await
}

async fn answer(
    s: &AppState,
    name: &str,
    reference: &Reference,
    headers: &HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let loaded = s.serving.get(name, reference).await?;
    let meta = &loaded.pool.metadata;
    let binary = is_binary(headers.get(header::CONTENT_TYPE));
    let csv = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/csv"));
    let (inputs, orientation) = if binary {
        (
            vec![tensor_input(headers, body, meta)?],
            Orientation::Columns,
        )
    } else if csv {
        (
            vec![csv_input(&body, meta).map_err(ApiError::bad_request)?],
            Orientation::Rows,
        )
    } else {
        let doc: J = serde_json::from_slice(&body)
            .map_err(|e| ApiError::bad_request(format!("the body is not JSON: {e}")))?;
        decode(&doc, meta).map_err(ApiError::bad_request)?
    };
    let outputs = loaded.predict(inputs).await?;
    if is_binary(headers.get(header::ACCEPT)) {
        return binary_answer(outputs);
    }
    let rendered: Map<String, J> = outputs
        .iter()
        .map(|o| (o.name.clone(), render(&o.value, orientation)))
        .collect();
    Ok(Json(Predicted {
        model: &loaded.record.model,
        version: loaded.record.version,
        outputs: rendered,
    })
    .into_response())
}

fn is_binary(v: Option<&HeaderValue>) -> bool {
    v.and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/octet-stream"))
}

/// A CSV body (a header row first) as the table for the model's sole input.
pub fn csv_input(body: &[u8], meta: &ModelMetadata) -> Result<NamedValue, String> {
    let name = sole_input(meta)?.to_string();
    let table = value::table_from_csv(body)
        .map_err(|e| format!("the body is not CSV with a header row: {e:#}"))?;
    Ok(NamedValue {
        name,
        value: Value::Table(table),
    })
}

/// The input a body goes to when the request does not name one: the model's only input,
/// or its only required one.
pub fn sole_input(meta: &ModelMetadata) -> Result<&str, String> {
    if let [only] = meta.inputs.as_slice() {
        return Ok(&only.name);
    }
    let mut required = meta.inputs.iter().filter(|p| !p.optional);
    match (required.next(), required.next()) {
        (Some(only), None) => Ok(&only.name),
        _ => Err(format!(
            "the model takes several inputs ({}); name them: {{\"inputs\": {{\"name\": ...}}}}",
            meta.inputs
                .iter()
                .map(|p| p.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

fn tensor_input(
    headers: &HeaderMap,
    body: Bytes,
    meta: &ModelMetadata,
) -> Result<NamedValue, ApiError> {
    let text = |h: &str| headers.get(h).and_then(|v| v.to_str().ok());
    let dtype = value::parse_dtype(text("kiln-dtype").unwrap_or("float64"))
        .map_err(|e| ApiError::bad_request(format!("kiln-dtype: {e}")))?;
    let shape: Vec<u64> = text("kiln-shape")
        .ok_or_else(|| ApiError::bad_request("a binary body needs a kiln-shape header"))?
        .split(',')
        .map(|d| d.trim().parse())
        .collect::<Result<_, _>>()
        .map_err(|_| ApiError::bad_request("kiln-shape is a list of sizes: `rows,columns`"))?;
    let name = match text("kiln-input") {
        Some(n) => n.to_string(),
        None => sole_input(meta).map_err(ApiError::bad_request)?.to_string(),
    };
    let tensor = Tensor {
        dtype,
        shape,
        data: Vec::from(body),
    };
    value::check_tensor(&tensor).map_err(|e| ApiError::bad_request(e.to_string()))?;
    Ok(NamedValue {
        name,
        value: Value::Tensor(tensor),
    })
}

/// A JSON request body as named inputs, and the orientation to answer in.
pub fn decode(doc: &J, meta: &ModelMetadata) -> Result<(Vec<NamedValue>, Orientation), String> {
    let J::Object(fields) = doc else {
        return Err("the body is a JSON object: {\"rows\": [...]} or {\"columns\": {...}}".into());
    };
    let is_port = |k: &String| meta.inputs.iter().any(|p| &p.name == k);
    if let Some(J::Object(named)) = fields.get("inputs")
        && named.keys().any(is_port)
    {
        let mut orientation = Orientation::Columns;
        let inputs = named
            .iter()
            .map(|(name, j)| {
                let (value, o) = decode_value(j).map_err(|e| format!("input `{name}`: {e}"))?;
                if o == Orientation::Rows {
                    orientation = o;
                }
                Ok(NamedValue {
                    name: name.clone(),
                    value,
                })
            })
            .collect::<Result<_, String>>()?;
        return Ok((inputs, orientation));
    }
    let (value, orientation) = if let Some(rows) = fields
        .get("rows")
        .or_else(|| fields.get("dataframe_records"))
    {
        (
            Value::Table(table_from_rows(rows.as_array().ok_or("`rows` is a list")?)?),
            Orientation::Rows,
        )
    } else if let Some(columns) = fields.get("columns") {
        (
            Value::Table(table_from_columns(
                columns
                    .as_object()
                    .ok_or("`columns` is an object of lists")?,
            )?),
            Orientation::Columns,
        )
    } else if let Some(split) = fields.get("dataframe_split") {
        (Value::Table(table_from_split(split)?), Orientation::Rows)
    } else if let Some(J::Object(columns)) = fields.get("inputs") {
        // MLflow's tensor form: column name → values.
        (
            Value::Table(table_from_columns(columns)?),
            Orientation::Rows,
        )
    } else if let Some(instances) = fields.get("instances").or_else(|| fields.get("inputs")) {
        decode_value(instances)?
    } else {
        return Err(
            "the body names no rows: send {\"rows\": [...]}, {\"columns\": {...}}, \
             {\"dataframe_split\": ...}, {\"instances\": [...]} or {\"inputs\": {...}}"
                .into(),
        );
    };
    let name = sole_input(meta)?.to_string();
    Ok((vec![NamedValue { name, value }], orientation))
}

/// One input's value: a value document, rows, columns, a matrix, a number or a text.
fn decode_value(j: &J) -> Result<(Value, Orientation), String> {
    if value::is_document(j) {
        return Ok((
            value::from_json(j).map_err(|e| format!("{e:#}"))?,
            Orientation::Columns,
        ));
    }
    Ok(match j {
        J::Array(items) if items.iter().all(J::is_object) => {
            (Value::Table(table_from_rows(items)?), Orientation::Rows)
        }
        J::Array(items) => (Value::Tensor(matrix(items)?), Orientation::Rows),
        J::Object(columns) => (
            Value::Table(table_from_columns(columns)?),
            Orientation::Columns,
        ),
        J::Number(n) => (
            Value::Scalar(n.as_f64().unwrap_or(f64::NAN)),
            Orientation::Columns,
        ),
        J::String(s) => (Value::Text(s.clone()), Orientation::Columns),
        _ => return Err("expected rows, columns, a matrix, a number or a text".into()),
    })
}

/// Rows of numbers as a float64 `[rows, columns]` tensor.
fn matrix(rows: &[J]) -> Result<Tensor, String> {
    let width = rows.first().and_then(J::as_array).map_or(0, Vec::len);
    let mut data = Vec::with_capacity(rows.len() * width * 8);
    for (i, row) in rows.iter().enumerate() {
        let row = row
            .as_array()
            .filter(|r| r.len() == width)
            .ok_or_else(|| format!("row {i} is not a list of {width} numbers"))?;
        for x in row {
            let x = x
                .as_f64()
                .ok_or_else(|| format!("row {i} holds something other than a number"))?;
            data.extend_from_slice(&x.to_le_bytes());
        }
    }
    Ok(Tensor {
        dtype: crate::bindings::Dtype::Float64,
        shape: vec![rows.len() as u64, width as u64],
        data,
    })
}

fn table_from_rows(rows: &[J]) -> Result<Table, String> {
    let mut names: Vec<&str> = Vec::new();
    for (i, row) in rows.iter().enumerate() {
        let row = row
            .as_object()
            .ok_or_else(|| format!("row {i} is not an object"))?;
        for k in row.keys() {
            if !names.contains(&k.as_str()) {
                names.push(k);
            }
        }
    }
    let columns = names
        .iter()
        .map(|name| {
            let values = rows.iter().map(|r| r.get(*name).unwrap_or(&J::Null));
            column(name, values, rows.len())
        })
        .collect::<Result<_, _>>()?;
    Ok(Table { columns })
}

fn table_from_columns(columns: &Map<String, J>) -> Result<Table, String> {
    let mut len = None;
    let columns = columns
        .iter()
        .map(|(name, values)| {
            let values = values
                .as_array()
                .ok_or_else(|| format!("column `{name}` is not a list"))?;
            if *len.get_or_insert(values.len()) != values.len() {
                return Err(format!("column `{name}` differs in length from the others"));
            }
            column(name, values.iter(), values.len())
        })
        .collect::<Result<_, _>>()?;
    Ok(Table { columns })
}

fn table_from_split(split: &J) -> Result<Table, String> {
    let names: Vec<&str> = split
        .get("columns")
        .and_then(J::as_array)
        .and_then(|c| c.iter().map(J::as_str).collect())
        .ok_or("`dataframe_split.columns` is a list of names")?;
    let data = split
        .get("data")
        .and_then(J::as_array)
        .ok_or("`dataframe_split.data` is a list of rows")?;
    for (i, row) in data.iter().enumerate() {
        if row.as_array().is_none_or(|r| r.len() != names.len()) {
            return Err(format!("row {i} does not have {} values", names.len()));
        }
    }
    let columns = names
        .iter()
        .enumerate()
        .map(|(c, name)| column(name, data.iter().map(|r| &r[c]), data.len()))
        .collect::<Result<_, _>>()?;
    Ok(Table { columns })
}

/// A column from JSON values: numbers, texts or booleans, with `null` for missing.
fn column<'a>(
    name: &str,
    values: impl Iterator<Item = &'a J> + Clone,
    n: usize,
) -> Result<Column, String> {
    let first = values.clone().find(|v| !v.is_null()).unwrap_or(&J::Null);
    // Every cell through `f`, a missing one as `T::default()`.
    fn cells<'a, T: Default>(
        name: &str,
        values: impl Iterator<Item = &'a J>,
        f: impl Fn(&'a J) -> Option<T>,
    ) -> Result<Vec<T>, String> {
        values
            .enumerate()
            .map(|(i, v)| match v {
                J::Null => Ok(T::default()),
                v => f(v).ok_or_else(|| {
                    format!("column `{name}` row {i} does not match the column's type")
                }),
            })
            .collect()
    }
    let data = match first {
        J::Number(_) | J::Null => ColumnData::Float64(cells(name, values.clone(), J::as_f64)?),
        J::String(_) => ColumnData::Text(cells(name, values.clone(), |v| {
            v.as_str().map(String::from)
        })?),
        J::Bool(_) => ColumnData::Boolean(cells(name, values.clone(), J::as_bool)?),
        _ => return Err(format!("column `{name}` holds lists or objects")),
    };
    let valid = values
        .clone()
        .any(J::is_null)
        .then(|| values.map(|v| !v.is_null()).collect::<Vec<_>>());
    debug_assert!(valid.as_ref().is_none_or(|v| v.len() == n));
    Ok(Column {
        name: name.to_string(),
        data,
        valid,
    })
}

/// An output as JSON: a table as rows or columns, anything else as a value document.
pub fn render(v: &Value, orientation: Orientation) -> J {
    let Value::Table(t) = v else {
        return value::to_json(v);
    };
    let cells: Vec<Vec<J>> = t.columns.iter().map(value::column_cells).collect();
    match orientation {
        Orientation::Columns => J::Object(
            t.columns
                .iter()
                .zip(cells)
                .map(|(c, v)| (c.name.clone(), J::Array(v)))
                .collect(),
        ),
        Orientation::Rows => {
            let rows = cells.first().map_or(0, Vec::len);
            J::Array(
                (0..rows)
                    .map(|i| {
                        J::Object(
                            t.columns
                                .iter()
                                .zip(&cells)
                                .map(|(c, v)| (c.name.clone(), v[i].clone()))
                                .collect(),
                        )
                    })
                    .collect(),
            )
        }
    }
}

/// The first output as a binary tensor.
fn binary_answer(outputs: Vec<NamedValue>) -> Result<Response, ApiError> {
    let refuse = || {
        ApiError::new(
            StatusCode::NOT_ACCEPTABLE,
            "not_acceptable",
            "the model's first output is not a tensor or a table of float64 columns; ask for JSON",
        )
    };
    let first = outputs.into_iter().next().ok_or_else(refuse)?;
    let tensor = match first.value {
        Value::Tensor(t) => t,
        Value::Table(t) => {
            let cols: Vec<&Vec<f64>> = t
                .columns
                .iter()
                .map(|c| match (&c.data, &c.valid) {
                    (ColumnData::Float64(v), None) => Some(v),
                    _ => None,
                })
                .collect::<Option<_>>()
                .ok_or_else(refuse)?;
            let rows = cols.first().map_or(0, |c| c.len());
            let mut data = Vec::with_capacity(rows * cols.len() * 8);
            for r in 0..rows {
                for c in &cols {
                    data.extend_from_slice(&c[r].to_le_bytes());
                }
            }
            Tensor {
                dtype: crate::bindings::Dtype::Float64,
                shape: vec![rows as u64, cols.len() as u64],
                data,
            }
        }
        _ => return Err(refuse()),
    };
    let shape = tensor
        .shape
        .iter()
        .map(u64::to_string)
        .collect::<Vec<_>>()
        .join(",");
    let header = |v: &str| HeaderValue::from_str(v).map_err(|_| refuse());
    Ok((
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/octet-stream"),
            ),
            (
                header::HeaderName::from_static("kiln-dtype"),
                header(value::dtype_name(tensor.dtype))?,
            ),
            (
                header::HeaderName::from_static("kiln-shape"),
                header(&shape)?,
            ),
            (
                header::HeaderName::from_static("kiln-output"),
                header(&first.name)?,
            ),
        ],
        tensor.data,
    )
        .into_response())
}
