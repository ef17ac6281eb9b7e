//! Values outside the sandbox: a JSON document form for files and `--json`, and a
//! human-readable rendering for terminals.
//!
//! The document form is an object tagged `"$kiln": "value/1"`:
//!
//! ```json
//! {"$kiln": "value/1", "kind": "table", "columns": [
//!     {"name": "age", "type": "float64", "values": [59.0, null, 48.0]}]}
//! {"$kiln": "value/1", "kind": "tensor", "dtype": "float32", "shape": [2], "values": [0.5, 1.5]}
//! {"$kiln": "value/1", "kind": "scalar", "value": 0.97}
//! {"$kiln": "value/1", "kind": "text", "value": "hello"}
//! {"$kiln": "value/1", "kind": "bytes", "base64": "aGk="}
//! {"$kiln": "value/1", "kind": "json", "value": {"any": "document"}}
//! ```
//!
//! `null` in a column marks a missing value. Tensor elements are written as numbers
//! (booleans as `true`/`false`) and re-encoded little-endian on the way back.

use anyhow::{Context, Result, bail, ensure};
use base64::Engine as _;
use serde_json::{Value as J, json};

use crate::bindings::{Column, ColumnData, Dtype, Table, Tensor, Value};

/// The tag that marks a JSON file as a Kiln value document.
pub const TAG: &str = "value/1";

pub fn dtype_name(d: Dtype) -> &'static str {
    match d {
        Dtype::Float32 => "float32",
        Dtype::Float64 => "float64",
        Dtype::Int32 => "int32",
        Dtype::Int64 => "int64",
        Dtype::Uint8 => "uint8",
        Dtype::Boolean => "boolean",
    }
}

pub fn parse_dtype(s: &str) -> Result<Dtype> {
    Ok(match s {
        "float32" => Dtype::Float32,
        "float64" => Dtype::Float64,
        "int32" => Dtype::Int32,
        "int64" => Dtype::Int64,
        "uint8" => Dtype::Uint8,
        "boolean" => Dtype::Boolean,
        other => bail!("unknown dtype `{other}`"),
    })
}

pub fn dtype_size(d: Dtype) -> usize {
    match d {
        Dtype::Float32 | Dtype::Int32 => 4,
        Dtype::Float64 | Dtype::Int64 => 8,
        Dtype::Uint8 | Dtype::Boolean => 1,
    }
}

/// A port kind's name, as workflows and signatures write it.
pub fn value_kind_name(k: crate::bindings::ValueKind) -> &'static str {
    use crate::bindings::ValueKind as K;
    match k {
        K::Any => "any",
        K::Tensor => "tensor",
        K::Table => "table",
        K::Scalar => "scalar",
        K::Text => "text",
        K::Bytes => "bytes",
        K::Json => "json",
    }
}

pub fn kind_name(v: &Value) -> &'static str {
    match v {
        Value::Tensor(_) => "tensor",
        Value::Table(_) => "table",
        Value::Scalar(_) => "scalar",
        Value::Text(_) => "text",
        Value::Bytes(_) => "bytes",
        Value::Json(_) => "json",
    }
}

pub fn column_type(d: &ColumnData) -> &'static str {
    match d {
        ColumnData::Float64(_) => "float64",
        ColumnData::Int64(_) => "int64",
        ColumnData::Text(_) => "text",
        ColumnData::Boolean(_) => "boolean",
    }
}

/// A row-major `[rows, columns]` tensor as f64 columns.
pub fn matrix_columns(
    dtype: Dtype,
    shape: &[u64],
    data: &[u8],
    columns: usize,
) -> Result<Vec<Vec<f64>>, String> {
    let [rows, cols] = shape else {
        return Err(format!(
            "a feature tensor has shape [rows, {columns}]; this one has {shape:?}"
        ));
    };
    let (rows, cols) = (*rows as usize, *cols as usize);
    if cols != columns {
        return Err(format!(
            "a feature tensor has {columns} columns; this one has {cols}"
        ));
    }
    let size = dtype_size(dtype);
    let at = |i: usize| -> f64 {
        let b = &data[i * size..(i + 1) * size];
        match dtype {
            Dtype::Float64 => f64::from_le_bytes(b.try_into().unwrap_or_default()),
            Dtype::Float32 => f32::from_le_bytes(b.try_into().unwrap_or_default()).into(),
            Dtype::Int64 => i64::from_le_bytes(b.try_into().unwrap_or_default()) as f64,
            Dtype::Int32 => i32::from_le_bytes(b.try_into().unwrap_or_default()).into(),
            Dtype::Uint8 | Dtype::Boolean => b[0].into(),
        }
    };
    Ok((0..cols)
        .map(|c| (0..rows).map(|r| at(r * cols + c)).collect())
        .collect())
}

/// Checks a tensor's data length against its shape; returns the element count.
pub fn check_tensor(t: &Tensor) -> Result<usize> {
    let count = t
        .shape
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(usize::try_from(d).ok()?))
        .context("tensor shape overflows")?;
    let want = count
        .checked_mul(dtype_size(t.dtype))
        .context("tensor size overflows")?;
    ensure!(
        want == t.data.len(),
        "tensor of shape {:?} and dtype {} needs {want} bytes, has {}",
        t.shape,
        dtype_name(t.dtype),
        t.data.len()
    );
    Ok(count)
}

/// Tensor elements as JSON numbers (or booleans).
pub fn tensor_elements(t: &Tensor) -> Vec<J> {
    let d = &t.data;
    fn arr<const N: usize>(c: &[u8]) -> [u8; N] {
        c.try_into().unwrap_or([0; N])
    }
    match t.dtype {
        Dtype::Float32 => d
            .chunks_exact(4)
            .map(|c| json!(f32::from_le_bytes(arr(c))))
            .collect(),
        Dtype::Float64 => d
            .chunks_exact(8)
            .map(|c| json!(f64::from_le_bytes(arr(c))))
            .collect(),
        Dtype::Int32 => d
            .chunks_exact(4)
            .map(|c| json!(i32::from_le_bytes(arr(c))))
            .collect(),
        Dtype::Int64 => d
            .chunks_exact(8)
            .map(|c| json!(i64::from_le_bytes(arr(c))))
            .collect(),
        Dtype::Uint8 => d.iter().map(|&b| json!(b)).collect(),
        Dtype::Boolean => d.iter().map(|&b| json!(b != 0)).collect(),
    }
}

/// The JSON document form of a value.
pub fn to_json(v: &Value) -> J {
    let body = match v {
        Value::Tensor(t) => json!({
            "dtype": dtype_name(t.dtype),
            "shape": t.shape,
            "values": tensor_elements(t),
        }),
        Value::Table(t) => {
            json!({ "columns": t.columns.iter().map(column_json).collect::<Vec<_>>() })
        }
        Value::Scalar(x) => json!({ "value": x }),
        Value::Text(s) => json!({ "value": s }),
        Value::Bytes(b) => json!({ "base64": base64::engine::general_purpose::STANDARD.encode(b) }),
        Value::Json(s) => {
            json!({ "value": serde_json::from_str::<J>(s).unwrap_or(J::String(s.clone())) })
        }
    };
    let mut doc = json!({ "$kiln": TAG, "kind": kind_name(v) });
    if let (Some(doc), J::Object(body)) = (doc.as_object_mut(), body) {
        doc.extend(body);
    }
    doc
}

fn column_json(c: &Column) -> J {
    json!({ "name": c.name, "type": column_type(&c.data), "values": column_cells(c) })
}

/// A column's cells as JSON, `null` where a value is missing.
pub fn column_cells(c: &Column) -> Vec<J> {
    fn each<T: serde::Serialize>(v: &[T], valid: Option<&Vec<bool>>) -> Vec<J> {
        v.iter()
            .enumerate()
            .map(|(i, x)| match valid {
                Some(ok) if !ok.get(i).copied().unwrap_or(false) => J::Null,
                _ => json!(x),
            })
            .collect()
    }
    let valid = c.valid.as_ref();
    match &c.data {
        ColumnData::Float64(v) => each(v, valid),
        ColumnData::Int64(v) => each(v, valid),
        ColumnData::Text(v) => each(v, valid),
        ColumnData::Boolean(v) => each(v, valid),
    }
}

/// The cell texts a CSV input reads as missing (csv-reader's default `na`).
const CSV_NA: [&str; 4] = ["", "NA", "NaN", "null"];

/// A CSV text with a header row as a table. Each column's type is inferred as csv-reader
/// infers it: boolean (`true`/`false`), else int64, else float64, else text; empty cells
/// and `NA`, `NaN`, `null` are missing.
pub fn table_from_csv(bytes: &[u8]) -> Result<Table> {
    let mut reader = csv::ReaderBuilder::new().from_reader(bytes);
    let names: Vec<String> = reader
        .headers()
        .context("reading the CSV header")?
        .iter()
        .map(|h| h.trim().to_string())
        .collect();
    let mut cells: Vec<Vec<Option<String>>> = vec![Vec::new(); names.len()];
    for (line, record) in reader.records().enumerate() {
        let record = record.with_context(|| format!("CSV record {}", line + 1))?;
        for (column, cell) in cells.iter_mut().zip(record.iter()) {
            let cell = cell.trim();
            column.push((!CSV_NA.contains(&cell)).then(|| cell.to_string()));
        }
    }
    let columns = names
        .into_iter()
        .zip(cells)
        .map(|(name, values)| {
            let present = || values.iter().flatten();
            let boolean = |v: &str| match v.to_ascii_lowercase().as_str() {
                "true" => Some(true),
                "false" => Some(false),
                _ => None,
            };
            let data = if present().next().is_some() && present().all(|v| boolean(v).is_some()) {
                ColumnData::Boolean(
                    values
                        .iter()
                        .map(|v| v.as_deref().and_then(boolean).unwrap_or(false))
                        .collect(),
                )
            } else if present().next().is_some() && present().all(|v| v.parse::<i64>().is_ok()) {
                ColumnData::Int64(
                    values
                        .iter()
                        .map(|v| v.as_deref().map_or(0, |v| v.parse().unwrap_or(0)))
                        .collect(),
                )
            } else if present().next().is_some() && present().all(|v| v.parse::<f64>().is_ok()) {
                ColumnData::Float64(
                    values
                        .iter()
                        .map(|v| {
                            v.as_deref()
                                .map_or(f64::NAN, |v| v.parse().unwrap_or(f64::NAN))
                        })
                        .collect(),
                )
            } else {
                ColumnData::Text(
                    values
                        .iter()
                        .map(|v| v.clone().unwrap_or_default())
                        .collect(),
                )
            };
            let valid = values
                .iter()
                .any(Option::is_none)
                .then(|| values.iter().map(Option::is_some).collect());
            Column { name, data, valid }
        })
        .collect();
    Ok(Table { columns })
}

/// Whether a JSON document is a Kiln value document.
pub fn is_document(j: &J) -> bool {
    j.get("$kiln").and_then(J::as_str) == Some(TAG)
}

/// Reads a value back from its JSON document form.
pub fn from_json(j: &J) -> Result<Value> {
    ensure!(
        is_document(j),
        "not a Kiln value document (no \"$kiln\": \"{TAG}\")"
    );
    let kind = j
        .get("kind")
        .and_then(J::as_str)
        .context("value document has no `kind`")?;
    let field = |k: &str| {
        j.get(k)
            .with_context(|| format!("{kind} value has no `{k}`"))
    };
    Ok(match kind {
        "scalar" => Value::Scalar(
            field("value")?
                .as_f64()
                .context("scalar `value` is not a number")?,
        ),
        "text" => Value::Text(
            field("value")?
                .as_str()
                .context("text `value` is not a string")?
                .to_string(),
        ),
        "json" => Value::Json(field("value")?.to_string()),
        "bytes" => Value::Bytes(
            base64::engine::general_purpose::STANDARD
                .decode(
                    field("base64")?
                        .as_str()
                        .context("`base64` is not a string")?,
                )
                .context("`base64` is not valid base64")?,
        ),
        "tensor" => Value::Tensor(tensor_from_json(j)?),
        "table" => Value::Table(table_from_json(j)?),
        other => bail!("unknown value kind `{other}`"),
    })
}

fn tensor_from_json(j: &J) -> Result<Tensor> {
    let dtype = parse_dtype(
        j.get("dtype")
            .and_then(J::as_str)
            .context("tensor has no `dtype`")?,
    )?;
    let shape: Vec<u64> =
        serde_json::from_value(j.get("shape").cloned().context("tensor has no `shape`")?)
            .context("tensor `shape` must be a list of non-negative integers")?;
    let values = j
        .get("values")
        .and_then(J::as_array)
        .context("tensor has no `values` list")?;
    let data = encode_elements(dtype, values)
        .map_err(|i| anyhow::anyhow!("tensor element {i} is not a valid {}", dtype_name(dtype)))?;
    let t = Tensor { dtype, shape, data };
    check_tensor(&t)?;
    Ok(t)
}

/// JSON elements packed little-endian as `dtype`; `Err(i)` names the first element that
/// is not a valid `dtype`.
pub fn encode_elements<'a>(
    dtype: Dtype,
    values: impl IntoIterator<Item = &'a J>,
) -> std::result::Result<Vec<u8>, usize> {
    let values = values.into_iter();
    let mut data = Vec::with_capacity(values.size_hint().0 * dtype_size(dtype));
    for (i, v) in values.enumerate() {
        let packed = match dtype {
            // A finite number past FP32's range is refused, not turned into infinity.
            Dtype::Float32 => v
                .as_f64()
                .map(|x| x as f32)
                .filter(|x| x.is_finite())
                .map(|x| data.extend(x.to_le_bytes())),
            Dtype::Float64 => v.as_f64().map(|x| data.extend(x.to_le_bytes())),
            Dtype::Int32 => v
                .as_i64()
                .and_then(|x| i32::try_from(x).ok())
                .map(|x| data.extend(x.to_le_bytes())),
            Dtype::Int64 => v.as_i64().map(|x| data.extend(x.to_le_bytes())),
            Dtype::Uint8 => v
                .as_u64()
                .and_then(|x| u8::try_from(x).ok())
                .map(|x| data.push(x)),
            Dtype::Boolean => v.as_bool().map(|b| data.push(u8::from(b))),
        };
        packed.ok_or(i)?;
    }
    Ok(data)
}

fn table_from_json(j: &J) -> Result<Table> {
    let cols = j
        .get("columns")
        .and_then(J::as_array)
        .context("table has no `columns` list")?;
    let mut columns = Vec::with_capacity(cols.len());
    for c in cols {
        let name = c
            .get("name")
            .and_then(J::as_str)
            .context("column has no `name`")?;
        let ty = c
            .get("type")
            .and_then(J::as_str)
            .with_context(|| format!("column `{name}` has no `type`"))?;
        let values = c
            .get("values")
            .and_then(J::as_array)
            .with_context(|| format!("column `{name}` has no `values`"))?;
        let valid: Vec<bool> = values.iter().map(|v| !v.is_null()).collect();
        let bad = |i: usize| format!("column `{name}` row {i} is not a {ty}");
        let data = match ty {
            "float64" => ColumnData::Float64(
                values
                    .iter()
                    .enumerate()
                    .map(|(i, v)| {
                        if v.is_null() {
                            Ok(f64::NAN)
                        } else {
                            v.as_f64().with_context(|| bad(i))
                        }
                    })
                    .collect::<Result<_>>()?,
            ),
            "int64" => ColumnData::Int64(
                values
                    .iter()
                    .enumerate()
                    .map(|(i, v)| {
                        if v.is_null() {
                            Ok(0)
                        } else {
                            v.as_i64().with_context(|| bad(i))
                        }
                    })
                    .collect::<Result<_>>()?,
            ),
            "text" => ColumnData::Text(
                values
                    .iter()
                    .enumerate()
                    .map(|(i, v)| {
                        if v.is_null() {
                            Ok(String::new())
                        } else {
                            v.as_str().map(String::from).with_context(|| bad(i))
                        }
                    })
                    .collect::<Result<_>>()?,
            ),
            "boolean" => ColumnData::Boolean(
                values
                    .iter()
                    .enumerate()
                    .map(|(i, v)| {
                        if v.is_null() {
                            Ok(false)
                        } else {
                            v.as_bool().with_context(|| bad(i))
                        }
                    })
                    .collect::<Result<_>>()?,
            ),
            other => bail!("column `{name}` has unknown type `{other}`"),
        };
        let valid = if valid.iter().all(|v| *v) {
            None
        } else {
            Some(valid)
        };
        columns.push(Column {
            name: name.to_string(),
            data,
            valid,
        });
    }
    if let Some(first) = columns.first() {
        let rows = first.data_len();
        for c in &columns {
            ensure!(
                c.data_len() == rows,
                "column `{}` has {} rows, `{}` has {rows}",
                c.name,
                c.data_len(),
                first.name
            );
        }
    }
    Ok(Table { columns })
}

impl Column {
    /// The number of rows.
    pub fn data_len(&self) -> usize {
        match &self.data {
            ColumnData::Float64(v) => v.len(),
            ColumnData::Int64(v) => v.len(),
            ColumnData::Text(v) => v.len(),
            ColumnData::Boolean(v) => v.len(),
        }
    }

    fn cell(&self, i: usize) -> String {
        if self
            .valid
            .as_ref()
            .is_some_and(|v| !v.get(i).copied().unwrap_or(false))
        {
            return "·".into();
        }
        match &self.data {
            ColumnData::Float64(v) => short_float(v[i]),
            ColumnData::Int64(v) => v[i].to_string(),
            ColumnData::Text(v) => v[i].clone(),
            ColumnData::Boolean(v) => v[i].to_string(),
        }
    }
}

/// A float for a terminal: six significant digits, scientific when very small or large.
fn short_float(x: f64) -> String {
    let a = x.abs();
    if x == 0.0 || !x.is_finite() || (1e-4..1e9).contains(&a) {
        let digits = if a >= 1.0 {
            6usize.saturating_sub(a.log10() as usize + 1)
        } else {
            6
        };
        let s = format!("{x:.digits$}");
        if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.').to_string()
        } else {
            s
        }
    } else {
        format!("{x:.4e}")
    }
}

/// Rows shown at most when a table is rendered for a terminal.
const SHOW_ROWS: usize = 10;
/// Elements shown at most when a tensor is rendered.
const SHOW_ELEMENTS: usize = 12;

/// A terminal rendering of a value.
pub fn render(v: &Value) -> String {
    match v {
        Value::Scalar(x) => format!("{x}"),
        Value::Text(s) => s.clone(),
        Value::Json(s) => serde_json::from_str::<J>(s)
            .and_then(|j| serde_json::to_string_pretty(&j))
            .unwrap_or_else(|_| s.clone()),
        Value::Bytes(b) => format!("{} bytes, sha256 {}", b.len(), crate::digest::sha256_hex(b)),
        Value::Tensor(t) => render_tensor(t),
        Value::Table(t) => render_table(t),
    }
}

fn render_tensor(t: &Tensor) -> String {
    let shape = t
        .shape
        .iter()
        .map(u64::to_string)
        .collect::<Vec<_>>()
        .join("×");
    if let Err(e) = check_tensor(t) {
        return format!("tensor {} [{shape}] (malformed: {e})", dtype_name(t.dtype));
    }
    let elems = tensor_elements(t);
    let shown: Vec<String> = elems.iter().take(SHOW_ELEMENTS).map(J::to_string).collect();
    let more = if elems.len() > SHOW_ELEMENTS {
        format!(", … {} more", elems.len() - SHOW_ELEMENTS)
    } else {
        String::new()
    };
    format!(
        "tensor {} [{shape}]: [{}{more}]",
        dtype_name(t.dtype),
        shown.join(", ")
    )
}

fn render_table(t: &Table) -> String {
    let rows = t.columns.first().map_or(0, Column::data_len);
    let shown = rows.min(SHOW_ROWS);
    let header: Vec<String> = t
        .columns
        .iter()
        .map(|c| format!("{}:{}", c.name, column_type(&c.data)))
        .collect();
    let cells: Vec<Vec<String>> = (0..shown)
        .map(|i| t.columns.iter().map(|c| c.cell(i)).collect())
        .collect();
    let widths: Vec<usize> = (0..header.len())
        .map(|j| {
            cells
                .iter()
                .map(|r| r[j].chars().count())
                .chain([header[j].chars().count()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |r: &[String]| {
        r.iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:>w$}"))
            .collect::<Vec<_>>()
            .join("  ")
    };
    let mut out = vec![line(&header)];
    out.extend(cells.iter().map(|r| line(r)));
    if rows > shown {
        out.push(format!("… {} more rows", rows - shown));
    }
    out.push(format!("({rows} rows × {} columns)", t.columns.len()));
    out.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_fp32_element_past_its_range_is_refused_not_made_infinite() {
        let ok = encode_elements(Dtype::Float32, &[json!(1.5), json!(-3.0e38)]).unwrap();
        assert_eq!(&ok[..4], &1.5f32.to_le_bytes());
        assert_eq!(
            encode_elements(Dtype::Float32, &[json!(1.0), json!(1e39)]),
            Err(1)
        );
        assert_eq!(encode_elements(Dtype::Float32, &[json!(-1e39)]), Err(0));
        // FP64 holds it.
        assert!(encode_elements(Dtype::Float64, &[json!(1e39)]).is_ok());
    }

    #[test]
    fn table_round_trips_with_missing_values() {
        let t = Value::Table(Table {
            columns: vec![
                Column {
                    name: "x".into(),
                    data: ColumnData::Float64(vec![1.5, f64::NAN]),
                    valid: Some(vec![true, false]),
                },
                Column {
                    name: "s".into(),
                    data: ColumnData::Text(vec!["a".into(), "b".into()]),
                    valid: None,
                },
            ],
        });
        let j = to_json(&t);
        assert_eq!(j["columns"][0]["values"], json!([1.5, null]));
        let back = from_json(&j).unwrap();
        let Value::Table(back) = back else {
            panic!("not a table")
        };
        assert_eq!(back.columns[0].valid, Some(vec![true, false]));
        assert_eq!(
            back.columns[1].data,
            ColumnData::Text(vec!["a".into(), "b".into()])
        );
    }

    #[test]
    fn tensor_round_trips_and_checks_its_shape() {
        let t = Value::Tensor(Tensor {
            dtype: Dtype::Int32,
            shape: vec![2],
            data: [7i32, -1].iter().flat_map(|v| v.to_le_bytes()).collect(),
        });
        let j = to_json(&t);
        assert_eq!(j["values"], json!([7, -1]));
        assert_eq!(from_json(&j).unwrap(), t);
        let bad = json!({"$kiln": TAG, "kind": "tensor", "dtype": "float64", "shape": [3], "values": [1.0]});
        assert!(
            from_json(&bad)
                .unwrap_err()
                .to_string()
                .contains("needs 24 bytes")
        );
    }

    #[test]
    fn floats_render_short() {
        assert_eq!(short_float(4.8598), "4.8598");
        assert_eq!(short_float(151.0), "151");
        assert_eq!(short_float(0.000000348192), "3.4819e-7");
        assert_eq!(short_float(0.9752108695725098), "0.975211");
        assert_eq!(short_float(-334.56713851879), "-334.567");
    }

    #[test]
    fn refuses_documents_without_the_tag() {
        assert!(from_json(&json!({"kind": "scalar", "value": 1})).is_err());
    }
}
