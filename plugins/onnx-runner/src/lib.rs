//! Serves ONNX models with tract, inside the sandbox. The model is read, checked and
//! optimised once when it is loaded; each prediction then runs the optimised plan.
//!
//! Inputs are matched to the model's inputs by name (a model with one input takes a single
//! value of any name). A tensor of another numeric type is converted to the input's. A
//! table feeds a `[rows, features]` input from its numeric columns (config `features`
//! picks and orders them); the answer is then one table, `predictions`, with a column per
//! output value and `prediction`, ready for `evaluator`. Otherwise each output comes back
//! as a tensor under its own name, text outputs (a classifier's labels) as a one-column
//! table.

use kiln_sdk::{
    Column, ColumnData, Config, Descriptor, Dtype, Error, Inputs, Model, ModelMetadata,
    ModelRunner, Outputs, Table, Tensor, Value, ValueKind,
};
use onnx_core::{Elem, In, OnnxModel, Options, Output, Prediction};

struct OnnxRunner;

impl ModelRunner for OnnxRunner {
    type Model = Loaded;

    fn describe() -> Descriptor {
        onnx_core::CONFIG_KEYS.iter().fold(
            Descriptor::new(
                "onnx-runner",
                "Serves ONNX models with tract, inside the sandbox",
            ),
            |d, (key, description)| d.config(key, None, description),
        )
    }

    fn load(artifact: Vec<u8>, config: Config) -> Result<Loaded, Error> {
        let options = Options::parse(config.pairs()).map_err(Error::invalid_config)?;
        let model = OnnxModel::load(&artifact).map_err(|e| {
            if e.unsupported {
                Error::unsupported(e.message)
            } else {
                Error::invalid_input(e.message)
            }
        })?;
        model
            .check_options(&options)
            .map_err(Error::invalid_config)?;
        Ok(Loaded { model, options })
    }
}

struct Loaded {
    model: OnnxModel,
    options: Options,
}

impl Model for Loaded {
    fn metadata(&self) -> ModelMetadata {
        let mut meta = ModelMetadata::new();
        for p in self.model.inputs() {
            meta = meta.input(&p.name, ValueKind::Any, &p.description());
        }
        for p in self.model.outputs() {
            meta = meta.output(&p.name, ValueKind::Any, &p.description());
        }
        self.model
            .metadata_properties()
            .into_iter()
            .fold(meta, |m, (k, v)| m.property(&k, v))
    }

    fn predict(&self, inputs: Inputs) -> Result<Outputs, Error> {
        let values = inputs.into_inner();
        let mut columns = Vec::new();
        for v in &values {
            if let Value::Table(t) = &v.value {
                t.check()?;
                columns.push(t.numeric_columns(&self.options.features, &[])?.1);
            }
        }
        let mut columns = columns.into_iter();
        let mut request = Vec::with_capacity(values.len());
        for v in &values {
            let value = match &v.value {
                Value::Tensor(t) => {
                    t.check()?;
                    In::Tensor {
                        elem: elem(t.dtype),
                        shape: &t.shape,
                        data: &t.data,
                    }
                }
                Value::Table(_) => In::Columns(columns.next().unwrap_or_default()),
                other => {
                    return Err(Error::invalid_input(format!(
                        "input `{}` is {}; the model takes tensors (or a table of features)",
                        v.name,
                        other.kind_name()
                    )));
                }
            };
            request.push((v.name.as_str(), value));
        }
        let prediction = self
            .model
            .predict(&self.options, request)
            .map_err(Error::invalid_input)?;
        Ok(match prediction {
            Prediction::Outputs(outputs) => {
                outputs
                    .into_iter()
                    .fold(Outputs::new(), |o, (name, out)| match out {
                        Output::Tensor { elem, shape, data } => o.with(
                            &name,
                            Tensor {
                                dtype: dtype(elem),
                                shape,
                                data,
                            },
                        ),
                        Output::Text { values, .. } => {
                            o.with(&name, Table::new(vec![Column::text(name.clone(), values)]))
                        }
                    })
            }
            Prediction::Table(cols) => Outputs::new().with(
                "predictions",
                Table::new(
                    cols.into_iter()
                        .map(|(name, c)| Column::new(name, column_data(c)))
                        .collect(),
                ),
            ),
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

kiln_sdk::export_model_runner!(OnnxRunner);
