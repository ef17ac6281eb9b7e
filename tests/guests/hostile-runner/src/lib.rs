//! A model runner that misbehaves on request, to prove serving holds. It loads any
//! artifact. Each prediction answers a `prediction` column with one number per row of
//! `features` (the artifact's length), after what the optional text input `mode` asks:
//! `spin:N` (busy for N milliseconds first), `loop` (never returns), `sleep` (waits an
//! hour in WASI's clock), `trap` (a wasm trap), `fail` (an `invalid-input` error), `bomb`
//! (allocates until stopped), `recurse` (past any stack) or `exit` (the process exits with
//! status 3). Without `mode` it answers at once.

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
                "spin:N, loop, sleep, trap, fail, bomb, recurse or exit",
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
                "loop" => loop {
                    std::hint::black_box(rows);
                },
                "sleep" => std::thread::sleep(Duration::from_secs(3600)),
                "trap" => core::arch::wasm32::unreachable(),
                "fail" => return Err(Error::invalid_input("asked to fail")),
                "bomb" => {
                    let mut hoard: Vec<Vec<u8>> = Vec::new();
                    loop {
                        hoard.push(vec![0xAB; 1 << 20]);
                        std::hint::black_box(&hoard);
                    }
                }
                "recurse" => {
                    std::hint::black_box(deep(0));
                }
                "exit" => std::process::exit(3),
                spin => {
                    let ms: u64 = spin
                        .strip_prefix("spin:")
                        .and_then(|n| n.parse().ok())
                        .ok_or_else(|| Error::invalid_input(format!("unknown mode `{spin}`")))?;
                    let start = Instant::now();
                    while start.elapsed() < Duration::from_millis(ms) {
                        std::hint::black_box(rows);
                    }
                }
            },
            Some(_) => return Err(Error::invalid_input("`mode` is a text")),
        }
        let column = Column::float64("prediction", vec![self.0; rows]);
        Ok(Outputs::new().with("predictions", Table::new(vec![column])))
    }
}

/// Recursion that no stack holds.
#[allow(unconditional_recursion)]
fn deep(n: u64) -> u64 {
    let local = std::hint::black_box([n; 64]);
    deep(local[3] + 1).wrapping_add(local[7])
}

kiln_sdk::export_model_runner!(Runner);
