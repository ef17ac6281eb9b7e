//! Registering the model a run trained, when `register.when` holds. With `register.serve`
//! the version is its inference pipeline: the serving steps as the run ran them, each
//! pinned by digest with its config and fitted inputs, ending in the runner; and before
//! the version is stored, the pipeline runs on the rows the run gave its first serving
//! step and must answer exactly what the run's own steps answered.

use std::{collections::BTreeMap, sync::Arc};

use anyhow::{Context, Result};

use super::{
    cond::Condition,
    plan::{MODEL_PORT, Plan, Plugins, RegisterPlan, ServeStage},
};
use crate::{
    bindings::{Column, ColumnData, NamedValue, Table, Value},
    plugin::{CallOptions, Plugin},
    serving::{
        Runner, ServeError,
        pipeline::{PipelineRunner, Stages, describe_columns},
    },
    tracking::{
        ColumnSpec, ModelVersion, Object, OutputRef, OutputSpec, Pipeline, Proof, Registered,
        RunRecord, Signature, Stage, Store,
    },
    value::column_type,
};

/// Registers the model if the run's metrics meet the condition. The runner must load the
/// model first (its signature is recorded with the version), and a pipeline must answer
/// as the run did; otherwise nothing is registered and the run's note says why.
pub(super) fn register(
    run: &mut RunRecord,
    reg: &RegisterPlan,
    plan: &Plan,
    plugins: &Plugins,
    store: &Store,
) -> Result<()> {
    let metrics: BTreeMap<String, f64> = run
        .steps
        .iter()
        .flat_map(|s| {
            s.metrics
                .iter()
                .map(move |m| (format!("{}.{}", s.id, m.key), m.value))
        })
        .collect();
    if let Some(when) = &reg.when {
        let cond = Condition::parse(when).map_err(anyhow::Error::msg)?;
        let holds = cond.eval(|step, key| metrics.get(&format!("{step}.{key}")).copied());
        match holds {
            Ok(true) => {}
            Ok(false) => {
                run.register_note = Some(format!("not registered: `{when}` does not hold"));
                return Ok(());
            }
            Err(e) => {
                run.register_note = Some(format!("not registered: {e}"));
                return Ok(());
            }
        }
    }
    let artifact = run
        .steps
        .iter()
        .find(|s| s.id == reg.step)
        .and_then(|s| s.outputs.iter().find(|o| o.name == reg.output))
        .with_context(|| {
            format!(
                "the run has no output `{}.{}` to register",
                reg.step, reg.output
            )
        })?;
    anyhow::ensure!(
        artifact.kind == "bytes",
        "`{}.{}` is a {}; a model artifact is bytes",
        reg.step,
        reg.output,
        artifact.kind
    );
    let artifact = artifact.digest.clone();
    let Value::Bytes(bytes) = store.value(&artifact)? else {
        anyhow::bail!("the model artifact is not bytes");
    };
    let (signature, pipeline) = if reg.serve.is_empty() {
        let signature = match &plugins.runner {
            Some(runner) => {
                let loaded = runner
                    .load_model(&bytes, &Vec::new(), &CallOptions::default())
                    .and_then(|mut m| m.metadata());
                match loaded {
                    Ok(metadata) => Some(metadata.into()),
                    Err(e) => {
                        run.register_note = Some(format!(
                            "not registered: `{}` cannot load the model: {e}",
                            reg.runner.label()
                        ));
                        return Ok(());
                    }
                }
            }
            None => None,
        };
        (signature, None)
    } else {
        match capture(run, &reg.serve).and_then(|p| prove(run, p, plan, plugins, store, &bytes)) {
            Ok((signature, pipeline)) => (Some(signature), Some(pipeline)),
            Err(why) => {
                run.register_note = Some(format!("not registered: {why}"));
                return Ok(());
            }
        }
    };
    let (version, new) = store.register_model(
        ModelVersion {
            model: reg.model.clone(),
            version: 0,
            created_ms: crate::now_ms(),
            run: run.id.clone(),
            step: reg.step.clone(),
            artifact,
            source: format!("runs:/{}/{}.{}", run.id, reg.step, reg.output),
            runner: Some(reg.runner.clone()),
            metrics,
            tags: Default::default(),
            description: String::new(),
            signature,
            pipeline,
        },
        reg.alias.as_deref(),
    )?;
    run.registered = Some(Registered {
        model: reg.model.clone(),
        version,
        alias: reg.alias.clone(),
    });
    run.register_note = Some(if new {
        format!("registered {} version {version}", reg.model)
    } else {
        format!(
            "{} version {version} already holds this model; nothing new registered",
            reg.model
        )
    });
    Ok(())
}

/// The serving steps as the run ran them: plugin, config and every input but the rows
/// (and the runner's model), bound by digest. Its proof is still to be made.
fn capture(run: &RunRecord, serve: &[ServeStage]) -> Result<Pipeline, String> {
    let stage = |s: &ServeStage, runner: bool| {
        let rec = run
            .steps
            .iter()
            .find(|r| r.id == s.step)
            .ok_or_else(|| format!("the run has no step `{}`", s.step))?;
        Ok::<_, String>(Stage {
            step: s.step.clone(),
            plugin: rec.plugin.clone(),
            config: rec.config.clone(),
            input: s.input.clone(),
            output: s.output.clone(),
            fitted: rec
                .inputs
                .iter()
                .filter(|i| i.port != s.input && !(runner && i.port == MODEL_PORT))
                .cloned()
                .collect(),
        })
    };
    let (last, before) = serve.split_last().ok_or("register.serve is empty")?;
    Ok(Pipeline {
        stages: before
            .iter()
            .map(|s| stage(s, false))
            .collect::<Result<_, _>>()?,
        runner: stage(last, true)?,
        columns: Vec::new(),
        outputs: Vec::new(),
        proof: Proof {
            input: String::new(),
            rows: 0,
            from: String::new(),
            outputs: Vec::new(),
        },
    })
}

/// Runs the captured pipeline on the rows the run gave its first serving step and checks
/// that it answers what the run's runner step answered, output for output, digest for
/// digest. Returns the pipeline's signature and the pipeline with its proof.
fn prove(
    run: &RunRecord,
    mut pipeline: Pipeline,
    plan: &Plan,
    plugins: &Plugins,
    store: &Store,
    artifact: &[u8],
) -> Result<(Signature, Pipeline), String> {
    let plugin_of = |step: &str| -> Result<Arc<Plugin>, String> {
        plan.steps
            .iter()
            .position(|s| s.id == step)
            .and_then(|i| plugins.steps.get(i).cloned())
            .ok_or_else(|| format!("step `{step}` has no loaded plugin"))
    };
    let record = |step: &str| {
        run.steps
            .iter()
            .find(|r| r.id == step)
            .ok_or_else(|| format!("the run has no step `{step}`"))
    };
    let first = pipeline.stages.first().unwrap_or(&pipeline.runner);
    let raw_ref = record(&first.step)?
        .inputs
        .iter()
        .find(|i| i.port == first.input)
        .cloned()
        .ok_or_else(|| format!("the run gave `{}` no `{}`", first.step, first.input))?;
    let raw = store
        .value(&raw_ref.digest)
        .map_err(|e| format!("the rows `{}` read cannot be read back: {e:#}", first.step))?;
    let stages = Stages::from_store(&pipeline, store, |s| {
        plugin_of(&s.step).map_err(ServeError::Unavailable)
    })
    .map_err(|e| e.to_string())?;
    let opts = CallOptions::default();
    let model = plugin_of(&pipeline.runner.step)?
        .load_model(artifact, &pipeline.runner.config, &opts)
        .map_err(|e| format!("`{}` cannot load the model: {e}", pipeline.runner.step))?;
    let mut runner = PipelineRunner::new(Arc::new(stages), Runner::Wasm(model), &opts)
        .map_err(|e| e.to_string())?;
    let signature: Signature = runner.metadata().map_err(|e| e.to_string())?.into();
    let rows = crate::serving::rows(&raw).unwrap_or(0) as u64;
    let mut input = [NamedValue {
        name: first.input.clone(),
        value: raw,
    }];
    let answer = runner
        .predict(&input)
        .map_err(|e| format!("the pipeline fails on the rows the run used: {e}"))?;
    let expected = &record(&pipeline.runner.step)?.outputs;
    let names = |n: &mut dyn Iterator<Item = &str>| n.collect::<Vec<_>>().join(", ");
    if answer.len() != expected.len()
        || !expected
            .iter()
            .all(|e| answer.iter().any(|a| a.name == e.name))
    {
        return Err(format!(
            "the pipeline answers {} where the run's `{}` answered {}",
            names(&mut answer.iter().map(|a| a.name.as_str())),
            pipeline.runner.step,
            names(&mut expected.iter().map(|e| e.name.as_str())),
        ));
    }
    for e in expected {
        let ours = answer
            .iter()
            .find(|a| a.name == e.name)
            .expect("checked above");
        let digest = Object::encode(&ours.value)
            .map_err(|e| e.to_string())?
            .digest;
        if digest != e.digest {
            let theirs = store.value(&e.digest).map_err(|e| e.to_string())?;
            return Err(format!(
                "the pipeline does not answer as the run did on the rows of `{}`: output `{}`, {}",
                raw_ref.from,
                e.name,
                first_difference(&ours.value, &theirs)
            ));
        }
    }
    let columns = signature_columns(&mut runner, &mut input, expected);
    let mut signature = signature;
    if !columns.is_empty() {
        signature.properties.insert(
            format!("input.{}", input[0].name),
            describe_columns(&columns),
        );
    }
    pipeline.columns = columns;
    pipeline.outputs = answer
        .iter()
        .map(|a| OutputSpec {
            name: a.name.clone(),
            kind: crate::value::kind_name(&a.value).to_string(),
            columns: match &a.value {
                Value::Table(t) => t
                    .columns
                    .iter()
                    .map(|c| ColumnSpec {
                        name: c.name.clone(),
                        kind: column_type(&c.data).to_string(),
                    })
                    .collect(),
                _ => Vec::new(),
            },
        })
        .collect();
    pipeline.proof = Proof {
        input: raw_ref.digest.clone(),
        rows,
        from: raw_ref.from.clone(),
        outputs: expected.clone(),
    };
    Ok((signature, pipeline))
}

/// The raw input's columns the answer depends on: each column of the rows the run used is
/// left out in turn, and kept in the signature if the answer changes (or the pipeline
/// fails) without it. The rows with only those columns must still give the run's answer;
/// if they do not, every column is kept. Empty when the raw input is not a table.
fn signature_columns(
    runner: &mut PipelineRunner,
    input: &mut [NamedValue; 1],
    expected: &[OutputRef],
) -> Vec<ColumnSpec> {
    let Value::Table(table) = std::mem::replace(&mut input[0].value, Value::Scalar(0.0)) else {
        return Vec::new();
    };
    let mut answers_as_run = |runner: &mut PipelineRunner, columns: Vec<Column>| {
        input[0].value = Value::Table(Table { columns });
        runner.predict(&input[..]).is_ok_and(|answer| {
            expected.iter().all(|e| {
                answer.iter().any(|a| {
                    a.name == e.name && Object::encode(&a.value).is_ok_and(|o| o.digest == e.digest)
                })
            })
        })
    };
    let spec = |c: &Column| ColumnSpec {
        name: c.name.clone(),
        kind: column_type(&c.data).to_string(),
    };
    let mut needed = Vec::new();
    for i in 0..table.columns.len() {
        let mut without = table.columns.clone();
        without.remove(i);
        if !answers_as_run(runner, without) {
            needed.push(i);
        }
    }
    let kept: Vec<Column> = needed.iter().map(|&i| table.columns[i].clone()).collect();
    if needed.len() < table.columns.len() && answers_as_run(runner, kept) {
        needed.iter().map(|&i| spec(&table.columns[i])).collect()
    } else {
        table.columns.iter().map(spec).collect()
    }
}

/// Where two values first differ, for a refused registration: the row (counting from
/// one) and column of a table, or the element of a tensor.
fn first_difference(ours: &Value, theirs: &Value) -> String {
    match (ours, theirs) {
        (Value::Table(a), Value::Table(b)) => table_difference(a, b),
        (Value::Tensor(a), Value::Tensor(b)) if a.shape != b.shape || a.dtype != b.dtype => {
            format!(
                "a tensor of shape {:?} where the run's is {:?}",
                a.shape, b.shape
            )
        }
        (Value::Tensor(a), Value::Tensor(b)) => {
            let size = crate::value::dtype_size(a.dtype).max(1);
            let at = a
                .data
                .chunks(size)
                .zip(b.data.chunks(size))
                .position(|(x, y)| x != y)
                .unwrap_or(0);
            format!("element {} differs", at + 1)
        }
        _ => format!(
            "a {} where the run's is a {}",
            crate::value::kind_name(ours),
            crate::value::kind_name(theirs)
        ),
    }
}

fn table_difference(a: &Table, b: &Table) -> String {
    let names = |t: &Table| {
        t.columns
            .iter()
            .map(|c| c.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    if names(a) != names(b) {
        return format!("columns {} where the run's are {}", names(a), names(b));
    }
    let rows = |t: &Table| t.columns.first().map_or(0, |c| c.data_len());
    for row in 0..rows(a).max(rows(b)) {
        for (x, y) in a.columns.iter().zip(&b.columns) {
            let (cx, cy) = (cell(x, row), cell(y, row));
            if cx != cy {
                return format!(
                    "row {}: `{}` is {} from the pipeline and {} in the run",
                    row + 1,
                    x.name,
                    cx.as_deref().unwrap_or("missing"),
                    cy.as_deref().unwrap_or("missing")
                );
            }
        }
    }
    "the same cells, encoded differently (column types or missing-value masks)".into()
}

/// A cell exactly (floats in their shortest round-trip form); `None` when missing.
fn cell(c: &crate::bindings::Column, i: usize) -> Option<String> {
    if c.valid
        .as_ref()
        .is_some_and(|v| !v.get(i).copied().unwrap_or(false))
    {
        return None;
    }
    match &c.data {
        ColumnData::Float64(v) => v.get(i).map(|x| format!("{x:?}")),
        ColumnData::Int64(v) => v.get(i).map(i64::to_string),
        ColumnData::Text(v) => v.get(i).map(|s| format!("{s:?}")),
        ColumnData::Boolean(v) => v.get(i).map(bool::to_string),
    }
}
