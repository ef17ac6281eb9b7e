//! A step that misbehaves on request, to prove the sandbox holds. `mode` selects one of
//! the attacks every hostile guest makes (`attacks.rs`: loop, sleep, bomb, trap, recurse,
//! exit, huge, env, connect, read), whose text is its output `out`, or one of a step's own:
//! `echo` (returns its inputs: the trivial step of the benchmarks), `fail` (returns an
//! error), `write` (writes the file at `path`), `spam` (logs and tracks a flood),
//! `entropy` (returns a random number and the time: what deterministic mode fixes),
//! `jitter` (returns its input table with a random part in a billion added to every float:
//! a step that never answers the same twice), `metrics` (tracks `count` metric points,
//! nothing else: the tracking benchmark).

mod attacks;

use kiln_sdk::{ColumnData, Config, Descriptor, Error, Inputs, Outputs, Step, Value, ValueKind};

struct Hostile;

impl Step for Hostile {
    fn describe() -> Descriptor {
        Descriptor::new("hostile", "Misbehaves on request")
            .optional_input("in", ValueKind::Any, "anything, returned by `echo`")
            .output("out", ValueKind::Any, "what `echo` and the attacks return")
            .config(
                "mode",
                Some("echo"),
                &format!(
                    "echo, fail, write, spam, entropy, jitter, metrics, or an attack: {}",
                    attacks::MODES
                ),
            )
            .config(
                "path",
                None,
                "the file for read and write; HOST:PORT for connect",
            )
            .config("mib", Some("200"), "the size of huge's output, in MiB")
            .config("count", Some("100000"), "the points `metrics` tracks")
    }

    fn run(inputs: Inputs, config: Config) -> Result<Outputs, Error> {
        match config.get("mode").unwrap_or("echo") {
            "echo" => {
                let mut out = Outputs::new();
                for v in inputs.into_inner() {
                    out.push(&v.name, v.value);
                }
                Ok(out)
            }
            "entropy" => {
                use std::hash::BuildHasher as _;
                let random = std::collections::hash_map::RandomState::new().hash_one(0u64);
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_nanos());
                Ok(Outputs::new().with("out", format!("{random} {now}")))
            }
            "jitter" => {
                use std::hash::BuildHasher as _;
                let Some(Value::Table(mut table)) =
                    inputs.into_inner().into_iter().next().map(|v| v.value)
                else {
                    return Err(Error::invalid_input("`jitter` takes a table"));
                };
                let random = std::collections::hash_map::RandomState::new();
                for (i, column) in table.columns.iter_mut().enumerate() {
                    if let ColumnData::Float64(values) = &mut column.data {
                        for (j, x) in values.iter_mut().enumerate() {
                            let r = random.hash_one((i, j)) as f64 / u64::MAX as f64;
                            *x *= 1.0 + r * 1e-9;
                        }
                    }
                }
                Ok(Outputs::new().with("out", Value::Table(table)))
            }
            "fail" => Err(Error::internal("deliberate failure")),
            "write" => {
                let path = config.require("path")?;
                std::fs::write(path, "written by the hostile plugin")
                    .map_err(|e| Error::invalid_input(format!("cannot write `{path}`: {e}")))?;
                Ok(Outputs::new())
            }
            "spam" => {
                for i in 0..300_000u64 {
                    kiln_sdk::log::info(&"x".repeat(64));
                    kiln_sdk::tracking::log_metric("spam", i as f64, i);
                }
                Ok(Outputs::new())
            }
            "metrics" => {
                let count: u64 = config.parse_or("count", 100_000)?;
                for i in 0..count {
                    kiln_sdk::tracking::log_metric("loss", 1.0 / (i + 1) as f64, i);
                }
                Ok(Outputs::new())
            }
            other => match attacks::attack(other, &config) {
                Some(text) => Ok(Outputs::new().with("out", text?)),
                None => Err(Error::invalid_config(format!("unknown mode `{other}`"))),
            },
        }
    }
}

kiln_sdk::export_step!(Hostile);
