//! One prediction: named Kiln values in, matched to the model's inputs; tensors out, or a
//! table when rows came in as a table (so a workflow can score them with `evaluator`).

use tract_onnx::prelude::Tensor;

use crate::{Elem, OnnxModel, Output};

/// The runner's config, given when the model is loaded.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Options {
    /// For a table input: its columns, in the model's feature order (default: every
    /// numeric column, in the table's order).
    pub features: Vec<String>,
    /// For a table answer: the output copied into the `prediction` column (default: the
    /// first output with one value per row).
    pub prediction: Option<String>,
}

/// The config keys, with their descriptions, for the runner's descriptor.
pub const CONFIG_KEYS: [(&str, &str); 2] = [
    (
        "features",
        "for table input: the columns, comma-separated, in the model's feature order (default: every numeric column)",
    ),
    (
        "prediction",
        "for table input: the output copied into the `prediction` column (default: the first with one value per row)",
    ),
];

impl Options {
    /// Reads the config pairs; an unknown key is refused.
    pub fn parse(pairs: &[(String, String)]) -> Result<Options, String> {
        let mut o = Options::default();
        for (k, v) in pairs {
            match k.as_str() {
                "features" => {
                    o.features = v
                        .split(',')
                        .map(|s| s.trim().to_string())
                        .filter(|s| !s.is_empty())
                        .collect();
                }
                "prediction" => o.prediction = Some(v.trim().to_string()),
                other => {
                    return Err(format!(
                        "unknown config key `{other}`; the keys are features and prediction"
                    ));
                }
            }
        }
        Ok(o)
    }
}

/// One input value.
pub enum In<'a> {
    /// A Kiln tensor's parts.
    Tensor {
        elem: Elem,
        shape: &'a [u64],
        data: &'a [u8],
    },
    /// A table's numeric feature columns, for a `[rows, features]` input.
    Columns(Vec<Vec<f64>>),
}

/// One column of a table answer.
#[derive(Debug, Clone, PartialEq)]
pub enum Column {
    Float64(Vec<f64>),
    Int64(Vec<i64>),
    Boolean(Vec<bool>),
    Text(Vec<String>),
}

/// What a prediction returns.
pub enum Prediction {
    /// Every output, by name, in the model's order.
    Outputs(Vec<(String, Output)>),
    /// Rows came in as a table: one column per output value, and `prediction`.
    Table(Vec<(String, Column)>),
}

impl OnnxModel {
    /// Checks the options against this model.
    pub fn check_options(&self, o: &Options) -> Result<(), String> {
        if let Some(p) = &o.prediction
            && !self.outputs().iter().any(|port| &port.name == p)
        {
            return Err(format!(
                "config `prediction`: the model has no output `{p}`; its outputs are {}",
                self.output_names()
            ));
        }
        Ok(())
    }

    fn input_names(&self) -> String {
        names(self.inputs().iter().map(|p| p.name.as_str()))
    }

    fn output_names(&self) -> String {
        names(self.outputs().iter().map(|p| p.name.as_str()))
    }

    /// Predicts for the named values. A value goes to the input of its name; a model with
    /// one input takes a single value of any name.
    pub fn predict(
        &self,
        options: &Options,
        values: Vec<(&str, In)>,
    ) -> Result<Prediction, String> {
        let mut slots: Vec<Option<Tensor>> = (0..self.inputs().len()).map(|_| None).collect();
        let sole = self.inputs().len() == 1 && values.len() == 1;
        let mut tabular = false;
        for (name, value) in values {
            let index = match self.inputs().iter().position(|p| p.name == name) {
                Some(i) => i,
                None if sole => 0,
                None => {
                    return Err(format!(
                        "the model has no input `{name}`; its inputs are {}",
                        self.input_names()
                    ));
                }
            };
            if slots[index].is_some() {
                return Err(format!(
                    "input `{}` is given twice",
                    self.inputs()[index].name
                ));
            }
            let tensor = match value {
                In::Tensor { elem, shape, data } => self.input_tensor(index, elem, shape, data)?,
                In::Columns(columns) => {
                    tabular = true;
                    self.matrix_tensor(index, &columns)?
                }
            };
            slots[index] = Some(tensor);
        }
        let inputs = slots
            .into_iter()
            .zip(self.inputs())
            .map(|(t, p)| t.ok_or_else(|| format!("missing input `{}`", p.name)))
            .collect::<Result<Vec<_>, _>>()?;
        let outputs = self.run(inputs)?;
        let named = self
            .outputs()
            .iter()
            .map(|p| p.name.clone())
            .zip(outputs)
            .collect();
        if tabular {
            table(named, options.prediction.as_deref()).map(Prediction::Table)
        } else {
            Ok(Prediction::Outputs(named))
        }
    }
}

fn names<'a>(names: impl Iterator<Item = &'a str>) -> String {
    names
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The outputs as columns: `[rows]` and `[rows, 1]` give one column named after the output,
/// `[rows, k]` give `name:0` … `name:k-1`.
fn table(
    outputs: Vec<(String, Output)>,
    prediction: Option<&str>,
) -> Result<Vec<(String, Column)>, String> {
    let mut columns = Vec::new();
    let mut first_single: Option<usize> = None;
    let mut chosen: Option<usize> = None;
    for (name, out) in outputs {
        let shape = out.shape().to_vec();
        let (rows, width) = match shape[..] {
            [rows] => (rows as usize, 1),
            [rows, width] => (rows as usize, width as usize),
            _ => {
                return Err(format!(
                    "output `{name}` has shape {shape:?}; only [rows] and [rows, k] outputs fit a table (send a tensor to get it whole)"
                ));
            }
        };
        let values = column_values(out);
        let single = width == 1 && !shape.is_empty();
        if single && first_single.is_none() {
            first_single = Some(columns.len());
        }
        if prediction == Some(name.as_str()) {
            if !single {
                return Err(format!(
                    "config `prediction`: output `{name}` has {width} values per row, not one"
                ));
            }
            chosen = Some(columns.len());
        }
        if width == 1 {
            columns.push((name, values));
        } else {
            for j in 0..width {
                columns.push((format!("{name}:{j}"), values.strided(j, width, rows)));
            }
        }
    }
    if let Some(i) = chosen.or(first_single)
        && !columns.iter().any(|(n, _)| n == "prediction")
    {
        let copy = columns[i].1.clone();
        columns.insert(0, ("prediction".to_string(), copy));
    }
    Ok(columns)
}

fn column_values(out: Output) -> Column {
    match out {
        Output::Text { values, .. } => Column::Text(values),
        Output::Tensor { elem, data, .. } => {
            let n = elem.size();
            let words = data.chunks_exact(n);
            match elem {
                Elem::Float32 => Column::Float64(
                    words
                        .map(|b| f64::from(f32::from_le_bytes([b[0], b[1], b[2], b[3]])))
                        .collect(),
                ),
                Elem::Float64 => Column::Float64(
                    words
                        .map(|b| f64::from_le_bytes(b.try_into().unwrap_or_default()))
                        .collect(),
                ),
                Elem::Int32 => Column::Int64(
                    words
                        .map(|b| i64::from(i32::from_le_bytes([b[0], b[1], b[2], b[3]])))
                        .collect(),
                ),
                Elem::Int64 => Column::Int64(
                    words
                        .map(|b| i64::from_le_bytes(b.try_into().unwrap_or_default()))
                        .collect(),
                ),
                Elem::Uint8 => Column::Int64(data.iter().map(|&b| i64::from(b)).collect()),
                Elem::Boolean | Elem::Text => {
                    Column::Boolean(data.iter().map(|&b| b != 0).collect())
                }
            }
        }
    }
}

impl Column {
    /// Column `j` of a row-major `[rows, width]` matrix.
    fn strided(&self, j: usize, width: usize, rows: usize) -> Column {
        fn pick<T: Clone>(v: &[T], j: usize, width: usize, rows: usize) -> Vec<T> {
            (0..rows).map(|r| v[r * width + j].clone()).collect()
        }
        match self {
            Column::Float64(v) => Column::Float64(pick(v, j, width, rows)),
            Column::Int64(v) => Column::Int64(pick(v, j, width, rows)),
            Column::Boolean(v) => Column::Boolean(pick(v, j, width, rows)),
            Column::Text(v) => Column::Text(pick(v, j, width, rows)),
        }
    }
}
