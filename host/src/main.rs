//! The `kiln` binary: parse the command line, run it, print the error chain on failure.

use std::process::ExitCode;

fn main() -> ExitCode {
    match kiln::cli::main() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
