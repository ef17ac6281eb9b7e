//! {{name}}: {{description}}. The artifact is one number, predicted for every row.

use kiln_sdk::{
    Config, Descriptor, Error, Inputs, Model, ModelMetadata, ModelRunner, Outputs, Tensor,
    ValueKind,
};

struct Plugin;
struct Constant(f64);

impl ModelRunner for Plugin {
    type Model = Constant;

    fn describe() -> Descriptor {
        Descriptor::new("{{name}}", "{{description}}")
    }

    fn load(artifact: Vec<u8>, _config: Config) -> Result<Constant, Error> {
        let text = String::from_utf8(artifact)
            .map_err(|_| Error::invalid_input("the artifact is not UTF-8"))?;
        let value = text
            .trim()
            .parse()
            .map_err(|_| Error::invalid_input("the artifact is not a number"))?;
        Ok(Constant(value))
    }
}

impl Model for Constant {
    fn metadata(&self) -> ModelMetadata {
        ModelMetadata::new()
            .input("features", ValueKind::Table, "one row per prediction")
            .output("predictions", ValueKind::Tensor, "one value per row")
    }

    fn predict(&self, mut inputs: Inputs) -> Result<Outputs, Error> {
        let rows = inputs.table("features")?.num_rows();
        let values = vec![self.0; rows];
        Ok(Outputs::new().with("predictions", Tensor::from_f64(vec![rows as u64], &values)))
    }
}

kiln_sdk::export_model_runner!(Plugin);
