//! The attacks every hostile test guest makes, whatever its role (the step, the model
//! runner, the validator and the tracker include this file). Each mode either never
//! returns as asked or returns a text:
//! `loop` (never returns), `sleep` (waits an hour in WASI's clock), `bomb` (allocates until
//! stopped), `trap` (panics), `recurse` (past any stack), `exit` (the process exits with
//! status 3), `huge` (a text of `mib` MiB), `env` (the names of the environment variables
//! it sees), `connect` (a TCP connection to `path`, HOST:PORT), `read` (the file at `path`).

use kiln_sdk::{Config, Error};

/// The modes [`attack`] knows, for descriptions.
pub const MODES: &str = "loop, sleep, bomb, trap, recurse, exit, huge, env, connect, read";

/// Makes the attack `mode` names; `None` if it names none of these.
pub fn attack(mode: &str, config: &Config) -> Option<Result<String, Error>> {
    Some(match mode {
        "loop" => {
            let mut n = 0u64;
            loop {
                n = std::hint::black_box(n.wrapping_add(1));
            }
        }
        "sleep" => {
            std::thread::sleep(std::time::Duration::from_secs(3600));
            Ok(String::new())
        }
        "bomb" => {
            let mut hoard: Vec<Vec<u8>> = Vec::new();
            loop {
                hoard.push(vec![0xAB; 1 << 20]);
                std::hint::black_box(&hoard);
            }
        }
        "trap" => panic!("deliberate panic in the hostile plugin"),
        "recurse" => Ok(deep(std::hint::black_box(0)).to_string()),
        "exit" => std::process::exit(3),
        "huge" => config
            .parse_or("mib", 200usize)
            .map(|mib| "x".repeat(mib << 20)),
        "env" => Ok(std::env::vars_os()
            .map(|(k, _)| k.to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join(",")),
        "connect" => config.require("path").and_then(|to| {
            std::net::TcpStream::connect(to)
                .map(|_| "connected".to_string())
                .map_err(|e| Error::invalid_input(format!("cannot connect to {to}: {e}")))
        }),
        "read" => config.require("path").and_then(|path| {
            std::fs::read_to_string(path)
                .map_err(|e| Error::invalid_input(format!("cannot read `{path}`: {e}")))
        }),
        _ => return None,
    })
}

/// Recursion that no stack holds.
#[allow(unconditional_recursion)]
fn deep(n: u64) -> u64 {
    let local = std::hint::black_box([n; 64]);
    deep(local[3] + 1).wrapping_add(local[7])
}
