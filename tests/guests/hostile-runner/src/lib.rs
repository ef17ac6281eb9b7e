//! A model runner that misbehaves on request, to prove serving holds. It loads any
//! artifact. Each prediction answers a `prediction` column with one number per row of
//! `features` (the artifact's length), after what the optional text input `mode` asks:
//! `spin:N` (busy for N milliseconds first), `trap` (a wasm trap), `fail` (an
//! `invalid-input` error), or one of the attacks every hostile guest makes (`loop`, `sleep`,
//! `bomb`, `recurse`, `exit`...: `../hostile/src/attacks.rs`). Without `mode` it answers
//! at once.

#[path = "../../hostile/src/attacks.rs"]
mod attacks;

use std::time::{Duration, Instant};

use kiln_sdk::{
    Column, Config, Descriptor, Error, Inputs, Model, ModelMetadata, ModelRunner, Outputs, Table,
    Value, ValueKind,
};

struct Runner;

impl ModelRunner for Runner {
    type Model = Loaded;

    fn describe() -> Descriptor {
        Descriptor::new(
            "hostile-runner",
            "A model runner that misbehaves on request",
        )
    }

    fn load(artifact: Vec<u8>, _config: Config) -> Result<Loaded, Error> {
        Ok(Loaded(artifact.len() as f64))
    }
}

struct Loaded(f64);

impl Model for Loaded {
    fn metadata(&self) -> ModelMetadata {
        ModelMetadata::new()
            .input(
                "features",
                ValueKind::Any,
                "a table or tensor: its rows are counted",
            )
            .optional_input(
                "mode",
                ValueKind::Text,
                &format!("spin:N, trap, fail, or an attack: {}", attacks::MODES),
            )
            .output("predictions", ValueKind::Table, "column `prediction`")
    }

    fn predict(&self, mut inputs: Inputs) -> Result<Outputs, Error> {
        let rows = match inputs.take("features")? {
            Value::Table(t) => t.num_rows(),
            Value::Tensor(t) => t.shape.first().copied().unwrap_or(0) as usize,
            _ => 1,
        };
        match inputs.take_opt("mode") {
            None => {}
            Some(Value::Text(mode)) => match mode.as_str() {
                "trap" => core::arch::wasm32::unreachable(),
                "fail" => return Err(Error::invalid_input("asked to fail")),
                mode => match mode.strip_prefix("spin:") {
                    Some(ms) => {
                        let ms: u64 = ms
                            .parse()
                            .map_err(|_| Error::invalid_input(format!("unknown mode `{mode}`")))?;
                        let start = Instant::now();
                        while start.elapsed() < Duration::from_millis(ms) {
                            std::hint::black_box(rows);
                        }
                    }
                    None => {
                        attacks::attack(mode, &Config::new(Vec::new())).ok_or_else(|| {
                            Error::invalid_input(format!("unknown mode `{mode}`"))
                        })??;
                    }
                },
            },
            Some(_) => return Err(Error::invalid_input("`mode` is a text")),
        }
        let column = Column::float64("prediction", vec![self.0; rows]);
        Ok(Outputs::new().with("predictions", Table::new(vec![column])))
    }
}

kiln_sdk::export_model_runner!(Runner);
