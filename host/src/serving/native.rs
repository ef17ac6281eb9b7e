//! Native twins of model-runner plugins: the same model code compiled into the host, for
//! where speed matters more than the sandbox. An operator picks them per model
//! (`runner = "native"` in the server config); nothing else changes for the client.
//!
//! A twin exists for a runner only where its model code is a Rust crate the host can link:
//! `linear-runner` (the `ml-core` crate) and, with the `onnx` feature, `onnx-runner` (the
//! `onnx-core` crate: tract). It must answer exactly as the plugin does: the same inputs,
//! outputs, metadata and errors.

use ml_core::{ModelArtifact, ModelKind};

use crate::bindings::{
    Column, ColumnData, ModelMetadata, NamedValue, Port, Table, Value, ValueKind,
};

/// A model loaded natively.
pub trait NativeModel: Send {
    fn metadata(&self) -> ModelMetadata;
    /// Predicts for a batch; an `Err` is the runner's own `invalid-input` message.
    fn predict(&self, inputs: &[NamedValue]) -> Result<Vec<NamedValue>, String>;
}

/// Whether `runner` (a plugin name) has a native twin.
pub fn has_twin(runner: &str) -> bool {
    runner == "linear-runner" || (cfg!(feature = "onnx") && runner == "onnx-runner")
}

/// Loads `artifact` with the native twin of `runner`.
pub fn load(runner: &str, artifact: &[u8]) -> Result<Box<dyn NativeModel>, String> {
    match runner {
        "linear-runner" => Ok(Box::new(Linear(ModelArtifact::from_json(artifact)?))),
        #[cfg(feature = "onnx")]
        "onnx-runner" => Ok(Box::new(onnx::Onnx::load(artifact)?)),
        other => Err(format!("the model runner `{other}` has no native twin")),
    }
}

/// `linear-runner`'s twin.
struct Linear(ModelArtifact);

fn port(name: &str, kind: ValueKind, description: String) -> Port {
    Port {
        name: name.into(),
        kind,
        optional: false,
        description,
    }
}

impl NativeModel for Linear {
    fn metadata(&self) -> ModelMetadata {
        let m = &self.0;
        let kind = match m.kind {
            ModelKind::Linear => "linear",
            ModelKind::Logistic => "logistic",
        };
        let mut properties = vec![
            ("kind".into(), kind.into()),
            ("target".into(), m.target.clone()),
            ("features".into(), m.features.join(",")),
        ];
        if !m.classes.is_empty() {
            properties.push(("classes".into(), m.classes.join(",")));
        }
        ModelMetadata {
            inputs: vec![port(
                "features",
                ValueKind::Any,
                format!(
                    "a table with columns {}, or a [rows, {}] numeric tensor in that order",
                    m.features.join(", "),
                    m.features.len()
                ),
            )],
            outputs: vec![port(
                "predictions",
                ValueKind::Table,
                "column `prediction`, and `proba:<class>` for classifiers".into(),
            )],
            properties,
        }
    }

    fn predict(&self, inputs: &[NamedValue]) -> Result<Vec<NamedValue>, String> {
        let m = &self.0;
        let features = inputs
            .iter()
            .find(|v| v.name == "features")
            .ok_or("missing input `features`")?;
        let x = match &features.value {
            Value::Table(t) => table_columns(t, &m.features)?,
            Value::Tensor(t) => {
                crate::value::check_tensor(t).map_err(|e| e.to_string())?;
                crate::value::matrix_columns(t.dtype, &t.shape, &t.data, m.features.len())?
            }
            other => {
                return Err(format!(
                    "`features` is a table or a tensor, not {}",
                    crate::value::kind_name(other)
                ));
            }
        };
        let rows = x.first().map_or(0, Vec::len);
        let column = |name: String, data| Column {
            name,
            data,
            valid: None,
        };
        let columns = match m.kind {
            ModelKind::Linear => vec![column(
                "prediction".into(),
                ColumnData::Float64(m.predict_values(&x, rows)),
            )],
            ModelKind::Logistic => {
                let (probs, labels) = m.predict_proba(&x, rows);
                let mut cols = vec![column(
                    "prediction".into(),
                    ColumnData::Text(labels.iter().map(|&k| m.classes[k].clone()).collect()),
                )];
                cols.extend(
                    probs
                        .into_iter()
                        .zip(&m.classes)
                        .map(|(p, c)| column(format!("proba:{c}"), ColumnData::Float64(p))),
                );
                cols
            }
        };
        Ok(vec![NamedValue {
            name: "predictions".into(),
            value: Value::Table(Table { columns }),
        }])
    }
}

/// The named numeric columns of a table as f64, refusing missing values, as the SDK's
/// `Table::numeric_columns` does inside the plugin (no names: every numeric column).
fn table_columns(t: &Table, names: &[String]) -> Result<Vec<Vec<f64>>, String> {
    let rows = t.columns.first().map_or(0, Column::data_len);
    if t.columns.iter().any(|c| c.data_len() != rows) {
        return Err("the table's columns differ in length".into());
    }
    let numeric: Vec<String>;
    let names = if names.is_empty() {
        numeric = t
            .columns
            .iter()
            .filter(|c| !matches!(c.data, ColumnData::Text(_)))
            .map(|c| c.name.clone())
            .collect();
        if numeric.is_empty() {
            return Err("no numeric feature columns".into());
        }
        &numeric
    } else {
        names
    };
    names
        .iter()
        .map(|name| {
            let c = t
                .columns
                .iter()
                .find(|c| &c.name == name)
                .ok_or_else(|| format!("no column `{name}`"))?;
            let missing = c
                .valid
                .as_ref()
                .map_or(0, |v| v.iter().filter(|ok| !**ok).count());
            if missing > 0 {
                return Err(format!(
                    "column `{name}` has {missing} missing values; impute them first"
                ));
            }
            match &c.data {
                ColumnData::Float64(v) => Ok(v.clone()),
                ColumnData::Int64(v) => Ok(v.iter().map(|&x| x as f64).collect()),
                ColumnData::Boolean(v) => Ok(v.iter().map(|&b| f64::from(u8::from(b))).collect()),
                ColumnData::Text(_) => Err(format!("column `{name}` is text, not numeric")),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bindings::Dtype;

    fn model() -> Box<dyn NativeModel> {
        let artifact = serde_json::json!({
            "format": ml_core::model::FORMAT, "kind": "linear", "features": ["a", "b"],
            "target": "y", "coefficients": [[2.0, -1.0]], "intercepts": [0.5],
        });
        load("linear-runner", artifact.to_string().as_bytes()).unwrap()
    }

    fn predictions(out: &[NamedValue]) -> Vec<f64> {
        match &out[0].value {
            Value::Table(t) => match &t.columns[0].data {
                ColumnData::Float64(v) => v.clone(),
                other => panic!("{other:?}"),
            },
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_table_and_the_same_rows_as_a_tensor_predict_the_same() {
        let m = model();
        let table = Value::Table(Table {
            columns: vec![
                Column {
                    name: "b".into(),
                    data: ColumnData::Float64(vec![1.0, 0.0]),
                    valid: None,
                },
                Column {
                    name: "a".into(),
                    data: ColumnData::Int64(vec![1, 3]),
                    valid: None,
                },
            ],
        });
        let named = |value| {
            vec![NamedValue {
                name: "features".into(),
                value,
            }]
        };
        assert_eq!(predictions(&m.predict(&named(table)).unwrap()), [1.5, 6.5]);
        let data: Vec<u8> = [1.0f32, 1.0, 3.0, 0.0]
            .iter()
            .flat_map(|x| x.to_le_bytes())
            .collect();
        let tensor = Value::Tensor(crate::bindings::Tensor {
            dtype: Dtype::Float32,
            shape: vec![2, 2],
            data,
        });
        assert_eq!(predictions(&m.predict(&named(tensor)).unwrap()), [1.5, 6.5]);
        let short = Value::Tensor(crate::bindings::Tensor {
            dtype: Dtype::Float32,
            shape: vec![2, 3],
            data: vec![0; 24],
        });
        assert!(m.predict(&named(short)).unwrap_err().contains("2 columns"));
        assert!(load("linear-runner", b"{}").is_err());
        assert!(load("onnx-runner", b"{}").is_err());
    }
}

/// `onnx-runner`'s twin: the same `onnx-core` code, compiled into the host.
#[cfg(feature = "onnx")]
mod onnx {
    use onnx_core::{Elem, In, OnnxModel, Options, Output, Prediction};

    use super::{NativeModel, port, table_columns};
    use crate::bindings::{
        Column, ColumnData, Dtype, ModelMetadata, NamedValue, Table, Tensor, Value, ValueKind,
    };

    pub struct Onnx {
        model: OnnxModel,
        options: Options,
    }

    impl Onnx {
        pub fn load(artifact: &[u8]) -> Result<Onnx, String> {
            let model = OnnxModel::load(artifact).map_err(|e| e.message)?;
            Ok(Onnx {
                model,
                options: Options::default(),
            })
        }
    }

    impl NativeModel for Onnx {
        fn metadata(&self) -> ModelMetadata {
            let ports = |ports: &[onnx_core::Port]| {
                ports
                    .iter()
                    .map(|p| port(&p.name, ValueKind::Any, p.description()))
                    .collect()
            };
            ModelMetadata {
                inputs: ports(self.model.inputs()),
                outputs: ports(self.model.outputs()),
                properties: self.model.metadata_properties(),
            }
        }

        fn predict(&self, inputs: &[NamedValue]) -> Result<Vec<NamedValue>, String> {
            let mut request = Vec::with_capacity(inputs.len());
            for v in inputs {
                let value = match &v.value {
                    Value::Tensor(t) => {
                        crate::value::check_tensor(t).map_err(|e| e.to_string())?;
                        In::Tensor {
                            elem: elem(t.dtype),
                            shape: &t.shape,
                            data: &t.data,
                        }
                    }
                    Value::Table(t) => In::Columns(table_columns(t, &self.options.features)?),
                    other => {
                        return Err(format!(
                            "input `{}` is {}; the model takes tensors (or a table of features)",
                            v.name,
                            crate::value::kind_name(other)
                        ));
                    }
                };
                request.push((v.name.as_str(), value));
            }
            let named = |name: String, value| NamedValue { name, value };
            Ok(match self.model.predict(&self.options, request)? {
                Prediction::Outputs(outputs) => outputs
                    .into_iter()
                    .map(|(name, out)| match out {
                        Output::Tensor { elem, shape, data } => named(
                            name,
                            Value::Tensor(Tensor {
                                dtype: dtype(elem),
                                shape,
                                data,
                            }),
                        ),
                        Output::Text { values, .. } => {
                            let column = Column {
                                name: name.clone(),
                                data: ColumnData::Text(values),
                                valid: None,
                            };
                            named(
                                name,
                                Value::Table(Table {
                                    columns: vec![column],
                                }),
                            )
                        }
                    })
                    .collect(),
                Prediction::Table(cols) => {
                    let columns = cols
                        .into_iter()
                        .map(|(name, c)| Column {
                            name,
                            data: column_data(c),
                            valid: None,
                        })
                        .collect();
                    vec![named("predictions".into(), Value::Table(Table { columns }))]
                }
            })
        }
    }

    fn elem(d: Dtype) -> Elem {
        match d {
            Dtype::Float32 => Elem::Float32,
            Dtype::Float64 => Elem::Float64,
            Dtype::Int32 => Elem::Int32,
            Dtype::Int64 => Elem::Int64,
            Dtype::Uint8 => Elem::Uint8,
            Dtype::Boolean => Elem::Boolean,
        }
    }

    fn dtype(e: Elem) -> Dtype {
        match e {
            Elem::Float32 => Dtype::Float32,
            Elem::Float64 => Dtype::Float64,
            Elem::Int32 => Dtype::Int32,
            Elem::Int64 => Dtype::Int64,
            Elem::Uint8 => Dtype::Uint8,
            Elem::Boolean | Elem::Text => Dtype::Boolean,
        }
    }

    fn column_data(c: onnx_core::Column) -> ColumnData {
        match c {
            onnx_core::Column::Float64(v) => ColumnData::Float64(v),
            onnx_core::Column::Int64(v) => ColumnData::Int64(v),
            onnx_core::Column::Boolean(v) => ColumnData::Boolean(v),
            onnx_core::Column::Text(v) => ColumnData::Text(v),
        }
    }
}
