//! Scales numeric columns to mean 0 and standard deviation 1, as scikit-learn's
//! `StandardScaler` does: the population standard deviation, and a constant column
//! left centred but unscaled. The means and scales are output as JSON.
//!
//! Given a `scaler` input (another standardize step's output), it fits nothing and applies
//! those means and scales instead: fit on the training rows, then scale the test rows with
//! the same figures, so nothing of the test set leaks into training.

use kiln_sdk::{Column, Config, Descriptor, Error, Inputs, Outputs, Step, Table, Value, ValueKind};
use serde_json::{Map, json};

struct Standardize;

impl Step for Standardize {
    fn describe() -> Descriptor {
        Descriptor::new(
            "standardize",
            "Scales numeric columns to mean 0 and standard deviation 1",
        )
        .input("table", ValueKind::Table, "the table")
        .optional_input(
            "scaler",
            ValueKind::Json,
            "means and scales to apply instead of fitting (a `scaler` output)",
        )
        .output(
            "table",
            ValueKind::Table,
            "the table with the chosen columns scaled",
        )
        .output("scaler", ValueKind::Json, "each column's mean and scale")
        .config(
            "columns",
            None,
            "columns to scale (default: every numeric column not excluded)",
        )
        .config("exclude", None, "columns to leave alone, e.g. the target")
    }

    fn run(mut inputs: Inputs, config: Config) -> Result<Outputs, Error> {
        let table = inputs.table("table")?;
        table.check()?;
        if let Some(fitted) = inputs.take_opt("scaler") {
            let Value::Json(text) = fitted else {
                return Err(Error::invalid_input("`scaler` must be JSON"));
            };
            return apply(table, &text);
        }
        let exclude = config.list("exclude");
        let exclude: Vec<&str> = exclude.iter().map(String::as_str).collect();
        let (names, values) = table.numeric_columns(&config.list("columns"), &exclude)?;
        let mut scaler = Map::new();
        let mut columns = table.columns;
        for (name, v) in names.iter().zip(values) {
            let n = v.len() as f64;
            let mean = v.iter().sum::<f64>() / n;
            let std = (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n).sqrt();
            let scale = if std > 0.0 { std } else { 1.0 };
            let scaled = v.iter().map(|x| (x - mean) / scale).collect();
            if let Some(col) = columns.iter_mut().find(|c| &c.name == name) {
                *col = Column::float64(name.clone(), scaled);
            }
            scaler.insert(name.clone(), json!({ "mean": mean, "scale": scale }));
        }
        Ok(Outputs::new()
            .with("table", Table::new(columns))
            .with("scaler", Value::Json(json!(scaler).to_string())))
    }
}

/// Scales the columns a fitted scaler names, with its figures.
fn apply(table: Table, scaler: &str) -> Result<Outputs, Error> {
    let fitted: Map<String, serde_json::Value> = serde_json::from_str(scaler)
        .map_err(|e| Error::invalid_input(format!("`scaler` is not a scaler: {e}")))?;
    let names: Vec<String> = fitted.keys().cloned().collect();
    let (names, values) = table.numeric_columns(&names, &[])?;
    let mut columns = table.columns;
    for (name, v) in names.iter().zip(values) {
        let figure = |key: &str| {
            fitted[name][key].as_f64().ok_or_else(|| {
                Error::invalid_input(format!("`scaler` has no number `{key}` for `{name}`"))
            })
        };
        let (mean, scale) = (figure("mean")?, figure("scale")?);
        let scaled = v.iter().map(|x| (x - mean) / scale).collect();
        if let Some(col) = columns.iter_mut().find(|c| &c.name == name) {
            *col = Column::float64(name.clone(), scaled);
        }
    }
    Ok(Outputs::new()
        .with("table", Table::new(columns))
        .with("scaler", Value::Json(scaler.to_string())))
}

kiln_sdk::export_step!(Standardize);
