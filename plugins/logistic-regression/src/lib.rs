//! Fits logistic regression with scikit-learn's L2 objective: multinomial over every
//! class of the target, or binary one-vs-rest when `positive` names a class. Training
//! accuracy and log-loss are logged through the tracking import.

use kiln_sdk::{Config, Descriptor, Error, Inputs, Outputs, Step, Value, ValueKind, tracking};
use ml_core::{ModelArtifact, ModelKind, logistic, model::FORMAT};

struct LogisticRegression;

impl Step for LogisticRegression {
    fn describe() -> Descriptor {
        Descriptor::new(
            "logistic-regression",
            "Fits L2-penalised logistic regression",
        )
        .input(
            "table",
            ValueKind::Table,
            "training rows: features and label",
        )
        .output(
            "model",
            ValueKind::Bytes,
            "the model artifact (JSON, kiln-linear-model/1)",
        )
        .output(
            "coefficients",
            ValueKind::Json,
            "intercepts and coefficients per class",
        )
        .required_config("target", "the label column")
        .config(
            "features",
            None,
            "feature columns (default: every other numeric column)",
        )
        .config(
            "positive",
            None,
            "fit a binary model of this class against the rest",
        )
        .config("C", Some("1.0"), "inverse regularisation strength")
        .config("max_iter", Some("100"), "the most Newton iterations")
    }

    fn run(mut inputs: Inputs, config: Config) -> Result<Outputs, Error> {
        let table = inputs.table("table")?;
        table.check()?;
        let target = config.require("target")?;
        let c: f64 = config.parse_or("C", 1.0)?;
        if c <= 0.0 || !c.is_finite() {
            return Err(Error::invalid_config("`C` must be a positive number"));
        }
        let max_iter: usize = config.parse_or("max_iter", 100)?;
        let (features, x) = table.numeric_columns(&config.list("features"), &[target])?;
        let (codes, labels) = table.column(target)?.categories()?;
        let (codes, classes) = match config.get("positive") {
            Some(pos) => {
                let Some(p) = labels.iter().position(|l| l == pos) else {
                    return Err(Error::invalid_config(format!(
                        "`positive` class `{pos}` is not among {}",
                        labels.join(", ")
                    )));
                };
                (
                    codes
                        .iter()
                        .map(|&k| usize::from(k == p))
                        .collect::<Vec<_>>(),
                    vec![format!("not {pos}"), pos.to_string()],
                )
            }
            None => (codes, labels),
        };
        if classes.len() < 2 {
            return Err(Error::invalid_input(format!(
                "column `{target}` has a single class"
            )));
        }
        let settings = logistic::Settings {
            c,
            max_iter,
            ..Default::default()
        };
        let fit =
            logistic::fit(&x, &codes, classes.len(), settings).map_err(Error::invalid_input)?;
        let model = ModelArtifact {
            format: FORMAT.into(),
            kind: ModelKind::Logistic,
            features: features.clone(),
            target: target.into(),
            coefficients: fit.coefficients.clone(),
            intercepts: fit.intercepts.clone(),
            classes: classes.clone(),
        };
        let rows = codes.len();
        let (probs, predicted) = model.predict_proba(&x, rows);
        let accuracy =
            predicted.iter().zip(&codes).filter(|(p, t)| p == t).count() as f64 / rows as f64;
        let log_loss = -codes
            .iter()
            .enumerate()
            .map(|(i, &k)| probs[k][i].max(1e-300).ln())
            .sum::<f64>()
            / rows as f64;
        tracking::log_param("model", "logistic-regression");
        tracking::log_param("C", &c.to_string());
        tracking::log_metric("train.accuracy", accuracy, 0);
        tracking::log_metric("train.log_loss", log_loss, 0);
        tracking::log_metric("train.iterations", fit.iterations as f64, 0);
        let coefficients = serde_json::json!({
            "classes": classes,
            "features": features,
            "intercepts": fit.intercepts,
            "coefficients": fit.coefficients,
        });
        Ok(Outputs::new()
            .with("model", model.to_json())
            .with("coefficients", Value::Json(coefficients.to_string())))
    }
}

kiln_sdk::export_step!(LogisticRegression);
