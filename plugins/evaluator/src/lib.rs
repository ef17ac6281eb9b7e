//! Scores predictions against the truth. Classification: accuracy, and precision, recall
//! and F1 (macro-averaged, or of the `positive` class). Regression: RMSE, MAE and R².
//! Each metric is output as JSON and logged through the tracking import.

use kiln_sdk::{Config, Descriptor, Error, Inputs, Outputs, Step, Value, ValueKind, tracking};
use ml_core::metrics;

struct Evaluator;

impl Step for Evaluator {
    fn describe() -> Descriptor {
        Descriptor::new("evaluator", "Scores predictions against the truth")
            .input("truth", ValueKind::Table, "rows holding the true target")
            .input(
                "predictions",
                ValueKind::Table,
                "the same rows' predictions",
            )
            .output("metrics", ValueKind::Json, "metric name to value")
            .required_config("target", "the truth column")
            .config("prediction", Some("prediction"), "the predictions column")
            .config(
                "task",
                None,
                "classification or regression (default: text targets are classification)",
            )
            .config("positive", None, "score this class alone (binary metrics)")
            .config("prefix", Some("test"), "prefix of the tracked metric names")
    }

    fn run(mut inputs: Inputs, config: Config) -> Result<Outputs, Error> {
        let truth_table = inputs.table("truth")?;
        let pred_table = inputs.table("predictions")?;
        let truth = truth_table.column(config.require("target")?)?;
        let pred = pred_table.column(config.get("prediction").unwrap_or("prediction"))?;
        if truth.len() != pred.len() {
            return Err(Error::invalid_input(format!(
                "{} true values but {} predictions",
                truth.len(),
                pred.len()
            )));
        }
        if truth.is_empty() {
            return Err(Error::invalid_input("nothing to evaluate: no rows"));
        }
        let task = match config.get("task") {
            Some(t @ ("classification" | "regression")) => t,
            Some(other) => return Err(Error::invalid_config(format!("unknown task `{other}`"))),
            None if truth.is_numeric() && pred.is_numeric() && config.get("positive").is_none() => {
                "regression"
            }
            None => "classification",
        };
        let scores: Vec<(&str, f64)> = if task == "regression" {
            metrics::regression(&truth.to_f64()?, &pred.to_f64()?).to_vec()
        } else {
            let t = truth.to_text();
            let p = pred.to_text();
            let mut labels: Vec<String> = t.iter().chain(&p).flatten().cloned().collect();
            labels.sort();
            labels.dedup();
            let code = |v: &Option<String>| {
                v.as_ref()
                    .and_then(|s| labels.binary_search(s).ok())
                    .unwrap_or(usize::MAX)
            };
            let (tc, pc): (Vec<usize>, Vec<usize>) = match config.get("positive") {
                Some(pos) => (
                    t.iter()
                        .map(|v| usize::from(v.as_deref() == Some(pos)))
                        .collect(),
                    p.iter()
                        .map(|v| usize::from(v.as_deref() == Some(pos)))
                        .collect(),
                ),
                None => (t.iter().map(code).collect(), p.iter().map(code).collect()),
            };
            let classes = if config.get("positive").is_some() {
                2
            } else {
                labels.len()
            };
            let positive = config.get("positive").map(|_| 1);
            metrics::classification(&tc, &pc, classes, positive).to_vec()
        };
        let prefix = config.get("prefix").unwrap_or("test");
        let mut doc = serde_json::Map::new();
        for (name, value) in &scores {
            let key = if prefix.is_empty() {
                name.to_string()
            } else {
                format!("{prefix}.{name}")
            };
            tracking::log_metric(&key, *value, 0);
            doc.insert(name.to_string(), serde_json::json!(value));
        }
        Ok(Outputs::new().with(
            "metrics",
            Value::Json(serde_json::Value::Object(doc).to_string()),
        ))
    }
}

kiln_sdk::export_step!(Evaluator);
