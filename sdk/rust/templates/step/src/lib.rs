//! {{name}}: {{description}}.

use kiln_sdk::{Config, Descriptor, Error, Inputs, Outputs, Step, Tensor, ValueKind};

struct Plugin;

impl Step for Plugin {
    fn describe() -> Descriptor {
        Descriptor::new("{{name}}", "{{description}}")
            .input("x", ValueKind::Tensor, "the tensor to scale")
            .output("y", ValueKind::Tensor, "x times the factor")
            .config("factor", Some("2"), "the multiplier")
    }

    fn run(mut inputs: Inputs, config: Config) -> Result<Outputs, Error> {
        let factor: f64 = config.parse_or("factor", 2.0)?;
        let x = inputs.tensor("x")?;
        let y: Vec<f64> = x.to_f64()?.iter().map(|v| v * factor).collect();
        kiln_sdk::tracking::log_metric("factor", factor, 0);
        Ok(Outputs::new().with("y", Tensor::from_f64(x.shape.clone(), &y)))
    }
}

kiln_sdk::export_step!(Plugin);
