//! Scales numeric columns to mean 0 and standard deviation 1, as scikit-learn's
//! `StandardScaler` does: the population standard deviation, and a constant column
//! left centred but unscaled. The means and scales are output as JSON.
//!
//! Given a `scaler` input (another standardize step's output), it fits nothing and applies
//! those means and scales instead: fit on the training rows, then scale the test rows with
//! the same figures, so nothing of the test set leaks into training.

use std::collections::BTreeMap;

use kiln_sdk::{
    Column, ColumnData, Config, Descriptor, Error, Inputs, Outputs, Step, Table, Value, ValueKind,
};
use serde::Deserialize;
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
            return apply(table, text);
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

/// One column's figures in a fitted scaler.
#[derive(Deserialize)]
struct Figures {
    mean: f64,
    scale: f64,
}

/// Scales the columns a fitted scaler names, with its figures. A serving pipeline runs this
/// on every request, so it does no more than it must: the scaler is read straight into its
/// figures (no JSON tree), float64 columns are scaled where they are, and the scaler goes
/// back out as it came in.
fn apply(mut table: Table, scaler: String) -> Result<Outputs, Error> {
    let fitted: BTreeMap<String, Figures> = serde_json::from_str(&scaler)
        .map_err(|e| Error::invalid_input(format!("`scaler` is not a scaler: {e}")))?;
    for (name, f) in &fitted {
        let Some(col) = table.columns.iter_mut().find(|c| &c.name == name) else {
            return Err(table
                .column(name)
                .err()
                .unwrap_or_else(|| Error::invalid_input(format!("no column `{name}`"))));
        };
        let missing = col.missing_count();
        if missing > 0 {
            return Err(Error::invalid_input(format!(
                "column `{name}` has {missing} missing values; impute them first"
            )));
        }
        match &mut col.data {
            ColumnData::Float64(v) => v.iter_mut().for_each(|x| *x = (*x - f.mean) / f.scale),
            _ => {
                let scaled = col
                    .to_f64()?
                    .iter()
                    .map(|x| (x - f.mean) / f.scale)
                    .collect();
                col.data = ColumnData::Float64(scaled);
            }
        }
        col.valid = None;
    }
    Ok(Outputs::new()
        .with("table", table)
        .with("scaler", Value::Json(scaler)))
}

kiln_sdk::export_step!(Standardize);
