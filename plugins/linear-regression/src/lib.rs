//! Fits ordinary least squares and outputs the model artifact the linear runner serves.
//! Training R², RMSE and MAE are logged through the tracking import.

use kiln_sdk::{Config, Descriptor, Error, Inputs, Outputs, Step, Value, ValueKind, tracking};
use ml_core::{ModelArtifact, ModelKind, linear, metrics, model::FORMAT};

struct LinearRegression;

impl Step for LinearRegression {
    fn describe() -> Descriptor {
        Descriptor::new("linear-regression", "Fits ordinary least squares")
            .input(
                "table",
                ValueKind::Table,
                "training rows: features and target",
            )
            .output(
                "model",
                ValueKind::Bytes,
                "the model artifact (JSON, kiln-linear-model/1)",
            )
            .output(
                "coefficients",
                ValueKind::Json,
                "intercept and coefficient per feature",
            )
            .required_config("target", "the column to predict")
            .config(
                "features",
                None,
                "feature columns (default: every other numeric column)",
            )
            .config("fit_intercept", Some("true"), "fit an intercept")
    }

    fn run(mut inputs: Inputs, config: Config) -> Result<Outputs, Error> {
        let table = inputs.table("table")?;
        table.check()?;
        let target = config.require("target")?;
        let fit_intercept: bool = config.parse_or("fit_intercept", true)?;
        let (features, x) = table.numeric_columns(&config.list("features"), &[target])?;
        if features.iter().any(|f| f == target) {
            return Err(Error::invalid_config("the target cannot also be a feature"));
        }
        let (_, y) = table.numeric_columns(&[target.to_string()], &[])?;
        let y = &y[0];
        let fit = linear::fit(&x, y, fit_intercept).map_err(Error::invalid_input)?;
        let model = ModelArtifact {
            format: FORMAT.into(),
            kind: ModelKind::Linear,
            features: features.clone(),
            target: target.into(),
            coefficients: vec![fit.coefficients.clone()],
            intercepts: vec![fit.intercept],
            classes: vec![],
        };
        let pred = model.predict_values(&x, y.len());
        tracking::log_param("model", "linear-regression");
        tracking::log_param("features", &features.len().to_string());
        for (name, value) in metrics::regression(y, &pred) {
            tracking::log_metric(&format!("train.{name}"), value, 0);
        }
        let coefficients = serde_json::json!({
            "intercept": fit.intercept,
            "coefficients": features.iter().zip(&fit.coefficients).map(|(f, c)| (f.clone(), serde_json::json!(c))).collect::<serde_json::Map<_, _>>(),
        });
        Ok(Outputs::new()
            .with("model", model.to_json())
            .with("coefficients", Value::Json(coefficients.to_string())))
    }
}

kiln_sdk::export_step!(LinearRegression);
