//! A model version's inference pipeline, loaded: each stage's step plugin with its config
//! and fitted values (read from the store once per loaded version, their digests checked),
//! ahead of the model runner. A request's rows go from stage to stage as values in memory;
//! each instance keeps one warm instance of every stage.

use std::{borrow::Cow, sync::Arc};

use super::pool::{Runner, ServeError};
use crate::{
    bindings::{
        Column, ColumnData, Dtype, ModelMetadata, NamedValue, Port, Table, Value, ValueKind,
    },
    plugin::{CallOptions, NamedValueRef, Plugin, StepInstance},
    tracking::{ColumnSpec, InputRef, Pipeline, Store},
    value::column_type,
};

/// One stage, shared by every instance of a loaded version.
struct StageSpec {
    step: String,
    plugin: Arc<Plugin>,
    config: Vec<(String, String)>,
    input: String,
    output: String,
    fitted: Vec<NamedValue>,
}

/// What a version's pipeline runs, loaded once: the stages before the runner, and how
/// the rows reach the runner.
pub struct Stages {
    stages: Vec<StageSpec>,
    /// The pipeline's raw input: the first stage's port (the runner's without stages).
    input: String,
    /// Its columns (the version's signature).
    columns: Vec<ColumnSpec>,
    /// The runner's port the rows reach it at, and its other inputs.
    runner_input: String,
    runner_fitted: Vec<NamedValue>,
}

/// Reads the fitted values a stage binds through `value` (the store's, or a bundle's),
/// which checks each against its digest: a value changed after registration is refused.
fn fitted(
    value: &dyn Fn(&str) -> anyhow::Result<Value>,
    step: &str,
    inputs: &[InputRef],
) -> Result<Vec<NamedValue>, ServeError> {
    inputs
        .iter()
        .map(|i| {
            let value = value(&i.digest).map_err(|e| {
                ServeError::Unavailable(format!(
                    "the fitted value `{}` of stage `{step}` ({}) cannot be read: {e:#}",
                    i.port, i.from
                ))
            })?;
            Ok(NamedValue {
                name: i.port.clone(),
                value,
            })
        })
        .collect()
}

impl Stages {
    /// Loads a pipeline's stages: `value` reads a fitted value by digest (checking it),
    /// `plugin` gives the loaded plugin of each stage (pinned by the digest in its
    /// [`Stage`](crate::tracking::Stage)).
    pub fn load(
        pipeline: &Pipeline,
        value: &dyn Fn(&str) -> anyhow::Result<Value>,
        mut plugin: impl FnMut(&crate::tracking::Stage) -> Result<Arc<Plugin>, ServeError>,
    ) -> Result<Stages, ServeError> {
        let mut stages = Vec::with_capacity(pipeline.stages.len());
        for s in &pipeline.stages {
            stages.push(StageSpec {
                step: s.step.clone(),
                plugin: plugin(s)?,
                config: s.config.clone(),
                input: s.input.clone(),
                output: s.output.clone(),
                fitted: fitted(value, &s.step, &s.fitted)?,
            });
        }
        Ok(Stages {
            stages,
            input: pipeline.input().to_string(),
            columns: pipeline.columns.clone(),
            runner_input: pipeline.runner.input.clone(),
            runner_fitted: fitted(value, &pipeline.runner.step, &pipeline.runner.fitted)?,
        })
    }

    /// Loads a pipeline's stages with the fitted values of `store`.
    pub fn from_store(
        pipeline: &Pipeline,
        store: &Store,
        plugin: impl FnMut(&crate::tracking::Stage) -> Result<Arc<Plugin>, ServeError>,
    ) -> Result<Stages, ServeError> {
        Stages::load(pipeline, &|digest| store.value(digest), plugin)
    }

    /// The steps, in order, as `name@version (step)`.
    pub fn describe(&self) -> Vec<String> {
        self.stages
            .iter()
            .map(|s| format!("{} ({})", s.plugin.name(), s.step))
            .collect()
    }
}

/// One loaded instance of a pipeline: a warm instance of each stage, then the model.
pub struct PipelineRunner {
    stages: Arc<Stages>,
    instances: Vec<StepInstance>,
    model: Runner,
}

impl PipelineRunner {
    /// Instantiates every stage ahead of `model`.
    pub fn new(
        stages: Arc<Stages>,
        model: Runner,
        opts: &CallOptions,
    ) -> Result<PipelineRunner, ServeError> {
        let instances = stages
            .stages
            .iter()
            .map(|s| s.plugin.step_instance(opts).map_err(ServeError::Plugin))
            .collect::<Result<_, _>>()?;
        Ok(PipelineRunner {
            stages,
            instances,
            model,
        })
    }

    /// The pipeline's input (the raw table) and the model's outputs.
    pub fn metadata(&mut self) -> Result<ModelMetadata, ServeError> {
        let mut meta = self.model.metadata()?;
        let Some(first) = self.stages.stages.first() else {
            return Ok(meta);
        };
        meta.inputs = vec![Port {
            name: self.stages.input.clone(),
            kind: ValueKind::Table,
            optional: false,
            description: format!("the raw rows, which `{}` reads first", first.step),
        }];
        // The model's own input facts describe what the stages made, not the request.
        meta.properties.retain(|(k, _)| !k.starts_with("input."));
        if !self.stages.columns.is_empty() {
            meta.properties.push((
                format!("input.{}", self.stages.input),
                describe_columns(&self.stages.columns),
            ));
        }
        Ok(meta)
    }

    /// Runs the rows through every stage, then the model.
    pub fn predict(&mut self, inputs: &[NamedValue]) -> Result<Vec<NamedValue>, ServeError> {
        let stages = &*self.stages;
        let raw = match inputs {
            [one] => &one.value,
            _ => {
                return Err(ServeError::Invalid(format!(
                    "the model's pipeline takes one input, the table `{}`; got {}",
                    stages.input,
                    inputs.len()
                )));
            }
        };
        let raw = conform(raw, &stages.columns).map_err(ServeError::Invalid)?;
        let borrowed = matches!(raw, Cow::Borrowed(_));
        let raw = &*raw;
        let mut rows: Option<Value> = None;
        for (spec, instance) in stages.stages.iter().zip(&mut self.instances) {
            let current = rows.as_ref().unwrap_or(raw);
            let mut args = Vec::with_capacity(1 + spec.fitted.len());
            args.push(NamedValueRef {
                name: &spec.input,
                value: current,
            });
            args.extend(spec.fitted.iter().map(|f| NamedValueRef {
                name: &f.name,
                value: &f.value,
            }));
            let outputs = instance
                .run(&args, &spec.config)
                .map_err(ServeError::Plugin)?;
            let next = outputs
                .into_iter()
                .find(|o| o.name == spec.output)
                .ok_or_else(|| {
                    ServeError::Unavailable(format!(
                        "stage `{}` ({}) gave no output `{}`",
                        spec.step,
                        spec.plugin.name(),
                        spec.output
                    ))
                })?;
            rows = Some(next.value);
        }
        let rows = match rows {
            Some(v) => v,
            // No stages: the request goes to the runner as it is, renamed if need be.
            None if borrowed
                && stages.runner_fitted.is_empty()
                && inputs[0].name == stages.runner_input =>
            {
                return self.model.predict(inputs);
            }
            None => raw.clone(),
        };
        let mut args = Vec::with_capacity(1 + stages.runner_fitted.len());
        args.push(NamedValue {
            name: stages.runner_input.clone(),
            value: rows,
        });
        args.extend(stages.runner_fitted.iter().cloned());
        self.model.predict(&args)
    }

    /// Whether every stage and the model can still run.
    pub fn usable(&self) -> bool {
        self.instances.iter().all(StepInstance::usable) && self.model.usable()
    }
}

/// Columns as `name type, ...`.
pub fn describe_columns(columns: &[ColumnSpec]) -> String {
    columns
        .iter()
        .map(|c| format!("{} {}", c.name, c.kind))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A request's rows as the pipeline's raw input. A table must have exactly the
/// signature's columns: they are put in its order, and integers and floats converted
/// where no value changes. A float tensor `[rows, columns]` (the Open Inference
/// Protocol's) gives the signature's columns in order. Anything else is refused, naming
/// every missing, unexpected or mistyped column. Without a signature the value is taken
/// as it is; a table that already matches is not copied.
pub fn conform<'a>(raw: &'a Value, columns: &[ColumnSpec]) -> Result<Cow<'a, Value>, String> {
    if columns.is_empty() {
        return Ok(Cow::Borrowed(raw));
    }
    match raw {
        Value::Table(t) => conform_table(t, columns).map(|t| match t {
            Some(t) => Cow::Owned(Value::Table(t)),
            None => Cow::Borrowed(raw),
        }),
        Value::Tensor(t) => {
            let width = columns.len();
            let floats = matches!(t.dtype, Dtype::Float64 | Dtype::Float32);
            if !floats || !matches!(t.shape.as_slice(), [_, w] if *w as usize == width) {
                return Err(format!(
                    "a tensor for this model is FP32 or FP64 of shape [rows, {width}], its columns {} in that order",
                    describe_columns(columns)
                ));
            }
            let values = crate::value::matrix_columns(t.dtype, &t.shape, &t.data, width)?;
            let mut out = Vec::with_capacity(width);
            for (spec, values) in columns.iter().zip(values) {
                let column = Column {
                    name: spec.name.clone(),
                    data: ColumnData::Float64(values),
                    valid: None,
                };
                out.push(convert(column, &spec.kind)?);
            }
            Ok(Cow::Owned(Value::Table(Table { columns: out })))
        }
        other => Err(format!(
            "the model takes a table of {} (or a tensor of those columns); got a {}",
            describe_columns(columns),
            crate::value::kind_name(other)
        )),
    }
}

/// `None` when the table already has exactly the signature's columns, in order.
fn conform_table(t: &Table, columns: &[ColumnSpec]) -> Result<Option<Table>, String> {
    let exact = t.columns.len() == columns.len()
        && t.columns
            .iter()
            .zip(columns)
            .all(|(c, s)| c.name == s.name && column_type(&c.data) == s.kind);
    if exact {
        return Ok(None);
    }
    let missing: Vec<&str> = columns
        .iter()
        .filter(|s| !t.columns.iter().any(|c| c.name == s.name))
        .map(|s| s.name.as_str())
        .collect();
    let mut problems: Vec<String> = Vec::new();
    for c in &t.columns {
        if columns.iter().any(|s| s.name == c.name) {
            continue;
        }
        let near = missing
            .iter()
            .filter(|m| strsim::levenshtein(m, &c.name) <= 2)
            .min_by_key(|m| strsim::levenshtein(m, &c.name));
        problems.push(match near {
            Some(m) => format!("unexpected column `{}` (did you mean `{m}`?)", c.name),
            None => format!("unexpected column `{}`", c.name),
        });
    }
    for m in &missing {
        problems.push(format!("missing column `{m}`"));
    }
    let mut out = Vec::with_capacity(columns.len());
    for s in columns {
        let Some(c) = t.columns.iter().find(|c| c.name == s.name) else {
            continue;
        };
        match convert(c.clone(), &s.kind) {
            Ok(c) => out.push(c),
            Err(e) => problems.push(e),
        }
    }
    if !problems.is_empty() {
        return Err(format!(
            "the rows do not match the model's signature ({}): {}",
            describe_columns(columns),
            problems.join("; ")
        ));
    }
    Ok(Some(Table { columns: out }))
}

/// A column as type `kind`: integers and floats convert when no value changes.
fn convert(c: Column, kind: &str) -> Result<Column, String> {
    let have = column_type(&c.data);
    if have == kind {
        return Ok(c);
    }
    let data = match (c.data, kind) {
        (ColumnData::Int64(v), "float64") => {
            ColumnData::Float64(v.into_iter().map(|x| x as f64).collect())
        }
        (ColumnData::Float64(v), "int64") => {
            let exact = |x: f64| x.fract() == 0.0 && x.abs() < 9.007_199_254_740_992e15;
            let valid = c.valid.as_deref();
            if let Some(i) = v
                .iter()
                .enumerate()
                .position(|(i, x)| valid.is_none_or(|m| m.get(i) == Some(&true)) && !exact(*x))
            {
                return Err(format!(
                    "column `{}` is int64 for the model, but row {} holds {}",
                    c.name,
                    i + 1,
                    v[i]
                ));
            }
            ColumnData::Int64(v.into_iter().map(|x| x as i64).collect())
        }
        _ => {
            return Err(format!(
                "column `{}` holds {have}; the model takes {kind}",
                c.name
            ));
        }
    };
    Ok(Column {
        name: c.name,
        data,
        valid: c.valid,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(columns: &[(&str, &str)]) -> Vec<ColumnSpec> {
        columns
            .iter()
            .map(|(n, k)| ColumnSpec {
                name: n.to_string(),
                kind: k.to_string(),
            })
            .collect()
    }

    fn floats(name: &str, v: &[f64]) -> Column {
        Column {
            name: name.into(),
            data: ColumnData::Float64(v.to_vec()),
            valid: None,
        }
    }

    #[test]
    fn a_matching_table_is_taken_as_it_is_and_another_order_is_put_right() {
        let columns = spec(&[("a", "float64"), ("b", "int64")]);
        let exact = Value::Table(Table {
            columns: vec![
                floats("a", &[1.5]),
                Column {
                    name: "b".into(),
                    data: ColumnData::Int64(vec![2]),
                    valid: None,
                },
            ],
        });
        assert!(matches!(conform(&exact, &columns), Ok(Cow::Borrowed(_))));
        // Reordered, with b sent as a float that is a whole number: converted.
        let sent = Value::Table(Table {
            columns: vec![floats("b", &[2.0]), floats("a", &[1.5])],
        });
        assert_eq!(conform(&sent, &columns).unwrap().into_owned(), exact);
        // b as 2.5 cannot be an integer.
        let e = conform(
            &Value::Table(Table {
                columns: vec![floats("a", &[1.5]), floats("b", &[2.5])],
            }),
            &columns,
        )
        .unwrap_err();
        assert!(
            e.contains("`b` is int64 for the model, but row 1 holds 2.5"),
            "{e}"
        );
    }

    #[test]
    fn every_mismatched_column_is_named() {
        let columns = spec(&[("age", "float64"), ("bmi", "float64"), ("s1", "float64")]);
        let sent = Value::Table(Table {
            columns: vec![
                floats("agee", &[1.0]),
                floats("extra", &[1.0]),
                Column {
                    name: "s1".into(),
                    data: ColumnData::Text(vec!["x".into()]),
                    valid: None,
                },
            ],
        });
        let e = conform(&sent, &columns).unwrap_err();
        for part in [
            "unexpected column `agee` (did you mean `age`?)",
            "unexpected column `extra`",
            "missing column `age`",
            "missing column `bmi`",
            "column `s1` holds text; the model takes float64",
        ] {
            assert!(e.contains(part), "{part}: {e}");
        }
    }

    #[test]
    fn a_float_tensor_gives_the_columns_in_order() {
        let columns = spec(&[("a", "float64"), ("b", "float64")]);
        let data: Vec<u8> = [1.0f32, 2.0, 3.0, 4.0]
            .iter()
            .flat_map(|x| x.to_le_bytes())
            .collect();
        let tensor = Value::Tensor(crate::bindings::Tensor {
            dtype: Dtype::Float32,
            shape: vec![2, 2],
            data,
        });
        let want = Value::Table(Table {
            columns: vec![floats("a", &[1.0, 3.0]), floats("b", &[2.0, 4.0])],
        });
        assert_eq!(conform(&tensor, &columns).unwrap().into_owned(), want);
        let wide = Value::Tensor(crate::bindings::Tensor {
            dtype: Dtype::Float64,
            shape: vec![1, 3],
            data: vec![0; 24],
        });
        let e = conform(&wide, &columns).unwrap_err();
        assert!(e.contains("of shape [rows, 2]"), "{e}");
    }
}
