//! Helpers on the contract's types: errors, tensors, tables, descriptors and checks.

use crate::{
    Check, Column, ColumnData, ConfigKey, Descriptor, Dtype, Error, ErrorKind, ModelMetadata, Port,
    Severity, Table, Tensor, Value, ValueKind,
};

impl Error {
    /// An error of the given kind.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error {
            kind,
            message: message.into(),
        }
    }
    /// The inputs are missing, of the wrong kind, or hold bad data.
    pub fn invalid_input(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidInput, message)
    }
    /// A config key is missing or holds a bad value.
    pub fn invalid_config(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidConfig, message)
    }
    /// The plugin does not support what was asked.
    pub fn unsupported(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Unsupported, message)
    }
    /// Something went wrong inside the plugin.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Internal, message)
    }
}

impl Dtype {
    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            Dtype::Float32 | Dtype::Int32 => 4,
            Dtype::Float64 | Dtype::Int64 => 8,
            Dtype::Uint8 | Dtype::Boolean => 1,
        }
    }
}

impl Tensor {
    /// A float64 tensor of the given shape.
    pub fn from_f64(shape: Vec<u64>, values: &[f64]) -> Tensor {
        let data = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        Tensor {
            dtype: Dtype::Float64,
            shape,
            data,
        }
    }

    /// A float32 tensor of the given shape.
    pub fn from_f32(shape: Vec<u64>, values: &[f32]) -> Tensor {
        let data = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        Tensor {
            dtype: Dtype::Float32,
            shape,
            data,
        }
    }

    /// The number of elements the shape describes.
    pub fn element_count(&self) -> usize {
        self.shape.iter().map(|&d| d as usize).product()
    }

    /// Checks that the data length matches the shape and dtype.
    pub fn check(&self) -> Result<(), Error> {
        let want = self
            .shape
            .iter()
            .try_fold(self.dtype.size(), |acc, &d| acc.checked_mul(d as usize));
        match want {
            Some(n) if n == self.data.len() => Ok(()),
            _ => Err(Error::invalid_input(format!(
                "tensor of shape {:?} and dtype {:?} needs {} bytes, has {}",
                self.shape,
                self.dtype,
                want.map_or_else(|| "too many".to_string(), |n| n.to_string()),
                self.data.len()
            ))),
        }
    }

    /// The elements as f64, whatever the numeric dtype.
    pub fn to_f64(&self) -> Result<Vec<f64>, Error> {
        self.check()?;
        let d = &self.data;
        Ok(match self.dtype {
            Dtype::Float64 => d
                .chunks_exact(8)
                .map(|c| f64::from_le_bytes(c.try_into().unwrap_or_default()))
                .collect(),
            Dtype::Float32 => d
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes(c.try_into().unwrap_or_default()) as f64)
                .collect(),
            Dtype::Int64 => d
                .chunks_exact(8)
                .map(|c| i64::from_le_bytes(c.try_into().unwrap_or_default()) as f64)
                .collect(),
            Dtype::Int32 => d
                .chunks_exact(4)
                .map(|c| i32::from_le_bytes(c.try_into().unwrap_or_default()) as f64)
                .collect(),
            Dtype::Uint8 | Dtype::Boolean => d.iter().map(|&b| b as f64).collect(),
        })
    }
}

impl ColumnData {
    /// The number of rows.
    pub fn len(&self) -> usize {
        match self {
            ColumnData::Float64(v) => v.len(),
            ColumnData::Int64(v) => v.len(),
            ColumnData::Text(v) => v.len(),
            ColumnData::Boolean(v) => v.len(),
        }
    }

    /// Whether there are no rows.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The type's name, as the WIT spells it.
    pub fn type_name(&self) -> &'static str {
        match self {
            ColumnData::Float64(_) => "float64",
            ColumnData::Int64(_) => "int64",
            ColumnData::Text(_) => "text",
            ColumnData::Boolean(_) => "boolean",
        }
    }
}

impl Column {
    /// A column with no missing values.
    pub fn new(name: impl Into<String>, data: ColumnData) -> Column {
        Column {
            name: name.into(),
            data,
            valid: None,
        }
    }

    /// A float64 column with no missing values.
    pub fn float64(name: impl Into<String>, values: Vec<f64>) -> Column {
        Column::new(name, ColumnData::Float64(values))
    }

    /// A text column with no missing values.
    pub fn text(name: impl Into<String>, values: Vec<String>) -> Column {
        Column::new(name, ColumnData::Text(values))
    }

    /// The number of rows.
    pub fn len(&self) -> usize {
        self.data.len()
    }

    /// Whether the column has no rows.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// Whether row `i` holds a value.
    pub fn is_valid(&self, i: usize) -> bool {
        self.valid
            .as_ref()
            .is_none_or(|v| v.get(i).copied().unwrap_or(false))
    }

    /// The number of missing values.
    pub fn missing_count(&self) -> usize {
        self.valid
            .as_ref()
            .map_or(0, |v| v.iter().filter(|ok| !**ok).count())
    }

    /// Whether the column is float64, int64 or boolean.
    pub fn is_numeric(&self) -> bool {
        !matches!(self.data, ColumnData::Text(_))
    }

    /// The values as f64; missing values become NaN. Text columns are an error.
    pub fn to_f64(&self) -> Result<Vec<f64>, Error> {
        let mut out: Vec<f64> = match &self.data {
            ColumnData::Float64(v) => v.clone(),
            ColumnData::Int64(v) => v.iter().map(|&x| x as f64).collect(),
            ColumnData::Boolean(v) => v.iter().map(|&x| f64::from(u8::from(x))).collect(),
            ColumnData::Text(_) => {
                return Err(Error::invalid_input(format!(
                    "column `{}` is text, a number was expected",
                    self.name
                )));
            }
        };
        if let Some(valid) = &self.valid {
            for (x, ok) in out.iter_mut().zip(valid) {
                if !ok {
                    *x = f64::NAN;
                }
            }
        }
        Ok(out)
    }

    /// The values as text (numbers formatted); missing values become `None`.
    pub fn to_text(&self) -> Vec<Option<String>> {
        (0..self.len())
            .map(|i| {
                self.is_valid(i).then(|| match &self.data {
                    ColumnData::Float64(v) => v[i].to_string(),
                    ColumnData::Int64(v) => v[i].to_string(),
                    ColumnData::Text(v) => v[i].clone(),
                    ColumnData::Boolean(v) => v[i].to_string(),
                })
            })
            .collect()
    }

    /// A copy of the rows at `indices`, in that order.
    pub fn take_rows(&self, indices: &[usize]) -> Column {
        fn pick<T: Clone>(v: &[T], idx: &[usize]) -> Vec<T> {
            idx.iter().map(|&i| v[i].clone()).collect()
        }
        let data = match &self.data {
            ColumnData::Float64(v) => ColumnData::Float64(pick(v, indices)),
            ColumnData::Int64(v) => ColumnData::Int64(pick(v, indices)),
            ColumnData::Text(v) => ColumnData::Text(pick(v, indices)),
            ColumnData::Boolean(v) => ColumnData::Boolean(pick(v, indices)),
        };
        Column {
            name: self.name.clone(),
            data,
            valid: self.valid.as_ref().map(|v| pick(v, indices)),
        }
    }
}

impl Table {
    /// A table of the given columns.
    pub fn new(columns: Vec<Column>) -> Table {
        Table { columns }
    }

    /// The number of rows (that of the first column).
    pub fn num_rows(&self) -> usize {
        self.columns.first().map_or(0, Column::len)
    }

    /// Checks that every column has as many rows as the first, and valid masks fit.
    pub fn check(&self) -> Result<(), Error> {
        let rows = self.num_rows();
        for c in &self.columns {
            if c.len() != rows || c.valid.as_ref().is_some_and(|v| v.len() != rows) {
                return Err(Error::invalid_input(format!(
                    "column `{}` has {} rows, the table has {rows}",
                    c.name,
                    c.len()
                )));
            }
        }
        Ok(())
    }

    /// The column names, in order.
    pub fn column_names(&self) -> Vec<&str> {
        self.columns.iter().map(|c| c.name.as_str()).collect()
    }

    /// The column called `name`.
    pub fn column(&self, name: &str) -> Result<&Column, Error> {
        self.columns.iter().find(|c| c.name == name).ok_or_else(|| {
            Error::invalid_input(format!(
                "no column `{name}`; the table has {}",
                self.column_names().join(", ")
            ))
        })
    }

    /// A copy of the rows at `indices`, in that order.
    pub fn take_rows(&self, indices: &[usize]) -> Table {
        Table::new(self.columns.iter().map(|c| c.take_rows(indices)).collect())
    }

    /// The named columns as f64, column-major, refusing missing values (a model cannot
    /// use them: impute first). An empty `names` means every numeric column except
    /// those in `exclude`; the names used are returned alongside.
    pub fn numeric_columns(
        &self,
        names: &[String],
        exclude: &[&str],
    ) -> Result<(Vec<String>, Vec<Vec<f64>>), Error> {
        let names: Vec<String> = if names.is_empty() {
            self.columns
                .iter()
                .filter(|c| c.is_numeric() && !exclude.contains(&c.name.as_str()))
                .map(|c| c.name.clone())
                .collect()
        } else {
            names.to_vec()
        };
        if names.is_empty() {
            return Err(Error::invalid_input("no numeric feature columns"));
        }
        let mut out = Vec::with_capacity(names.len());
        for name in &names {
            let col = self.column(name)?;
            let missing = col.missing_count();
            if missing > 0 {
                return Err(Error::invalid_input(format!(
                    "column `{name}` has {missing} missing values; impute them first"
                )));
            }
            out.push(col.to_f64()?);
        }
        Ok((names, out))
    }
}

impl Column {
    /// The column as class codes: each row's index into the sorted distinct labels
    /// (numbers are labelled by their text form). Missing values are refused.
    pub fn categories(&self) -> Result<(Vec<usize>, Vec<String>), Error> {
        let text = self.to_text();
        let mut labels: Vec<String> = Vec::new();
        for (i, v) in text.iter().enumerate() {
            match v {
                Some(v) => labels.push(v.clone()),
                None => {
                    return Err(Error::invalid_input(format!(
                        "column `{}` row {i} is missing; a label is needed",
                        self.name
                    )));
                }
            }
        }
        let mut classes = labels.clone();
        classes.sort();
        classes.dedup();
        let codes = labels
            .iter()
            .map(|l| classes.binary_search(l).unwrap_or(0))
            .collect();
        Ok((codes, classes))
    }
}

impl Value {
    /// The kind of this value.
    pub fn kind(&self) -> ValueKind {
        match self {
            Value::Tensor(_) => ValueKind::Tensor,
            Value::Table(_) => ValueKind::Table,
            Value::Scalar(_) => ValueKind::Scalar,
            Value::Text(_) => ValueKind::Text,
            Value::Bytes(_) => ValueKind::Bytes,
            Value::Json(_) => ValueKind::Json,
        }
    }

    /// The kind's name, as the WIT spells it.
    pub fn kind_name(&self) -> &'static str {
        match self {
            Value::Tensor(_) => "tensor",
            Value::Table(_) => "table",
            Value::Scalar(_) => "scalar",
            Value::Text(_) => "text",
            Value::Bytes(_) => "bytes",
            Value::Json(_) => "json",
        }
    }
}

impl From<Tensor> for Value {
    fn from(t: Tensor) -> Value {
        Value::Tensor(t)
    }
}
impl From<Table> for Value {
    fn from(t: Table) -> Value {
        Value::Table(t)
    }
}
impl From<f64> for Value {
    fn from(x: f64) -> Value {
        Value::Scalar(x)
    }
}
impl From<String> for Value {
    fn from(s: String) -> Value {
        Value::Text(s)
    }
}
impl From<Vec<u8>> for Value {
    fn from(b: Vec<u8>) -> Value {
        Value::Bytes(b)
    }
}

fn port(name: &str, kind: ValueKind, optional: bool, description: &str) -> Port {
    Port {
        name: name.into(),
        kind,
        optional,
        description: description.into(),
    }
}

impl Descriptor {
    /// A descriptor with no ports and no config keys yet.
    pub fn new(name: &str, description: &str) -> Descriptor {
        Descriptor {
            name: name.into(),
            description: description.into(),
            inputs: Vec::new(),
            outputs: Vec::new(),
            config: Vec::new(),
        }
    }
    /// Declares a required input.
    pub fn input(mut self, name: &str, kind: ValueKind, description: &str) -> Self {
        self.inputs.push(port(name, kind, false, description));
        self
    }
    /// Declares an optional input.
    pub fn optional_input(mut self, name: &str, kind: ValueKind, description: &str) -> Self {
        self.inputs.push(port(name, kind, true, description));
        self
    }
    /// Declares an output.
    pub fn output(mut self, name: &str, kind: ValueKind, description: &str) -> Self {
        self.outputs.push(port(name, kind, false, description));
        self
    }
    /// Declares a config key, with its default (`None` means no default, not required).
    pub fn config(mut self, name: &str, default: Option<&str>, description: &str) -> Self {
        self.config.push(ConfigKey {
            name: name.into(),
            required: false,
            default: default.map(String::from),
            description: description.into(),
        });
        self
    }
    /// Declares a required config key.
    pub fn required_config(mut self, name: &str, description: &str) -> Self {
        self.config.push(ConfigKey {
            name: name.into(),
            required: true,
            default: None,
            description: description.into(),
        });
        self
    }
}

// A generated type: `derive` is not available here.
#[allow(clippy::derivable_impls)]
impl Default for ModelMetadata {
    fn default() -> Self {
        ModelMetadata {
            inputs: Vec::new(),
            outputs: Vec::new(),
            properties: Vec::new(),
        }
    }
}

impl ModelMetadata {
    /// Empty metadata.
    pub fn new() -> Self {
        Self::default()
    }
    /// Declares a model input.
    pub fn input(mut self, name: &str, kind: ValueKind, description: &str) -> Self {
        self.inputs.push(port(name, kind, false, description));
        self
    }
    /// Declares a model output.
    pub fn output(mut self, name: &str, kind: ValueKind, description: &str) -> Self {
        self.outputs.push(port(name, kind, false, description));
        self
    }
    /// Adds a free-form property.
    pub fn property(mut self, key: &str, value: impl Into<String>) -> Self {
        self.properties.push((key.into(), value.into()));
        self
    }
}

impl Check {
    /// A check with no observed value and no detail yet.
    pub fn new(name: &str, passed: bool, severity: Severity) -> Check {
        Check {
            name: name.into(),
            passed,
            severity,
            observed: None,
            detail: String::new(),
        }
    }
    /// Records the figure the check looked at.
    pub fn observed(mut self, value: f64) -> Self {
        self.observed = Some(value);
        self
    }
    /// Explains the outcome.
    pub fn detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = detail.into();
        self
    }
}

// Added after 0.1: kept at the end of the file, so the panic locations compiled into
// the published plugins stay where they were.
impl Tensor {
    /// A row-major `[rows, columns]` numeric tensor as f64 columns (column-major), the
    /// form [`Table::numeric_columns`] gives; `columns` is how many the caller expects.
    pub fn matrix_columns(&self, columns: usize) -> Result<Vec<Vec<f64>>, Error> {
        let (rows, cols) = match self.shape[..] {
            [rows, cols] => (rows as usize, cols as usize),
            _ => {
                return Err(Error::invalid_input(format!(
                    "a feature tensor has shape [rows, {columns}]; this one has {:?}",
                    self.shape
                )));
            }
        };
        if cols != columns {
            return Err(Error::invalid_input(format!(
                "a feature tensor has {columns} columns; this one has {cols}"
            )));
        }
        let flat = self.to_f64()?;
        Ok((0..cols)
            .map(|c| (0..rows).map(|r| flat[r * cols + c]).collect())
            .collect())
    }
}

impl ModelMetadata {
    /// Declares an input the model can do without.
    pub fn optional_input(mut self, name: &str, kind: ValueKind, description: &str) -> Self {
        self.inputs.push(port(name, kind, true, description));
        self
    }
}
