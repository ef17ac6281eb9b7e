//! A step that misbehaves on request, to prove the sandbox holds. `mode` selects:
//! `echo` (returns its inputs: the trivial step of the benchmarks), `loop` (never
//! returns), `sleep` (waits an hour in WASI's clock), `bomb` (allocates until stopped), `trap` (panics), `fail` (returns an
//! error), `read` / `write` (touch the file at `path`), `spam` (logs and tracks a flood),
//! `entropy` (returns a random number and the time: what deterministic mode fixes),
//! `jitter` (returns its input table with a random part in a billion added to every float:
//! a step that never answers the same twice), `metrics` (tracks `count` metric points,
//! nothing else: the tracking benchmark), `recurse` (past any stack), `exit` (the process
//! exits with status 3), `huge` (an output of `mib` MiB), `env` (the names of the
//! environment variables it sees), `connect` (a TCP connection to `path`, HOST:PORT).

use kiln_sdk::{ColumnData, Config, Descriptor, Error, Inputs, Outputs, Step, Value, ValueKind};

struct Hostile;

impl Step for Hostile {
    fn describe() -> Descriptor {
        Descriptor::new("hostile", "Misbehaves on request")
            .optional_input("in", ValueKind::Any, "anything, returned by `echo`")
            .output("out", ValueKind::Any, "what `echo` and `read` return")
            .config(
                "mode",
                Some("echo"),
                "echo, loop, sleep, bomb, trap, fail, read, write, spam, entropy, jitter, metrics, recurse, exit, huge, env or connect",
            )
            .config("path", None, "the file for read and write; HOST:PORT for connect")
            .config("mib", Some("200"), "the size of huge's output")
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
            "loop" => {
                let mut n = 0u64;
                loop {
                    n = std::hint::black_box(n.wrapping_add(1));
                }
            }
            "sleep" => {
                std::thread::sleep(std::time::Duration::from_secs(3600));
                Ok(Outputs::new())
            }
            "bomb" => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(vec![0xAB; 1 << 20]);
                    std::hint::black_box(&hoard);
                }
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
            "trap" => panic!("deliberate panic in the hostile plugin"),
            "recurse" => Ok(Outputs::new().with("out", deep(std::hint::black_box(0)).to_string())),
            "exit" => std::process::exit(3),
            "huge" => {
                let mib: usize = config.parse_or("mib", 200)?;
                Ok(Outputs::new().with("out", Value::Bytes(vec![7; mib << 20])))
            }
            "env" => {
                let names: Vec<String> = std::env::vars_os()
                    .map(|(k, _)| k.to_string_lossy().into_owned())
                    .collect();
                Ok(Outputs::new().with("out", names.join(",")))
            }
            "connect" => {
                let to = config.require("path")?;
                std::net::TcpStream::connect(to)
                    .map_err(|e| Error::invalid_input(format!("cannot connect to {to}: {e}")))?;
                Ok(Outputs::new().with("out", "connected".to_string()))
            }
            "fail" => Err(Error::internal("deliberate failure")),
            "read" => {
                let path = config.require("path")?;
                let text = std::fs::read_to_string(path)
                    .map_err(|e| Error::invalid_input(format!("cannot read `{path}`: {e}")))?;
                Ok(Outputs::new().with("out", text))
            }
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
            other => Err(Error::invalid_config(format!("unknown mode `{other}`"))),
        }
    }
}

/// Recursion that no stack holds.
#[allow(unconditional_recursion)]
fn deep(n: u64) -> u64 {
    let local = std::hint::black_box([n; 64]);
    deep(local[3] + 1).wrapping_add(local[7])
}

kiln_sdk::export_step!(Hostile);
