//! Serves the models the standard trainers write (`kiln-linear-model/1`): linear models
//! predict a number per row; logistic models a label and one probability per class.

use kiln_sdk::{
    Column, Config, Descriptor, Error, Inputs, Model, ModelMetadata, ModelRunner, Outputs, Table,
    Value, ValueKind,
};
use ml_core::{ModelArtifact, ModelKind};

struct LinearRunner;

impl ModelRunner for LinearRunner {
    type Model = Loaded;

    fn describe() -> Descriptor {
        // The ports every model it loads has, so that `kiln validate` checks the wires to
        // it (a workflow reading `prediction` for `predictions` is an error at its line).
        Descriptor::new(
            "linear-runner",
            "Serves linear and logistic models written by the standard trainers",
        )
        .input(
            "features",
            ValueKind::Any,
            "a table with the model's feature columns, or a [rows, features] numeric tensor in their order",
        )
        .output(
            "predictions",
            ValueKind::Table,
            "column `prediction`, and `proba:<class>` for classifiers",
        )
    }

    fn load(artifact: Vec<u8>, _config: Config) -> Result<Loaded, Error> {
        let model = ModelArtifact::from_json(&artifact).map_err(Error::invalid_input)?;
        kiln_sdk::log::debug(&format!(
            "loaded a {:?} model of {} features",
            model.kind,
            model.features.len()
        ));
        Ok(Loaded(model))
    }
}

struct Loaded(ModelArtifact);

impl Model for Loaded {
    fn metadata(&self) -> ModelMetadata {
        let m = &self.0;
        let kind = match m.kind {
            ModelKind::Linear => "linear",
            ModelKind::Logistic => "logistic",
        };
        let mut meta = ModelMetadata::new()
            .input(
                "features",
                ValueKind::Any,
                &format!(
                    "a table with columns {}, or a [rows, {}] numeric tensor in that order",
                    m.features.join(", "),
                    m.features.len()
                ),
            )
            .output(
                "predictions",
                ValueKind::Table,
                "column `prediction`, and `proba:<class>` for classifiers",
            )
            .property("kind", kind)
            .property("target", m.target.clone())
            .property("features", m.features.join(","));
        if !m.classes.is_empty() {
            meta = meta.property("classes", m.classes.join(","));
        }
        meta
    }

    fn predict(&self, mut inputs: Inputs) -> Result<Outputs, Error> {
        let m = &self.0;
        let x = match inputs.take("features")? {
            Value::Table(table) => {
                table.check()?;
                table.numeric_columns(&m.features, &[])?.1
            }
            Value::Tensor(t) => t.matrix_columns(m.features.len())?,
            other => {
                return Err(Error::invalid_input(format!(
                    "`features` is a table or a tensor, not {}",
                    other.kind_name()
                )));
            }
        };
        let rows = x.first().map_or(0, Vec::len);
        let columns = match m.kind {
            ModelKind::Linear => vec![Column::float64("prediction", m.predict_values(&x, rows))],
            ModelKind::Logistic => {
                let (probs, labels) = m.predict_proba(&x, rows);
                let mut cols = vec![Column::text(
                    "prediction",
                    labels.iter().map(|&k| m.classes[k].clone()).collect(),
                )];
                cols.extend(
                    probs
                        .into_iter()
                        .zip(&m.classes)
                        .map(|(p, c)| Column::float64(format!("proba:{c}"), p)),
                );
                cols
            }
        };
        Ok(Outputs::new().with("predictions", Table::new(columns)))
    }
}

kiln_sdk::export_model_runner!(LinearRunner);
