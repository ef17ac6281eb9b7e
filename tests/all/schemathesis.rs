//! schemathesis (pinned in `scripts/python-env.sh`) against a real `kiln serve` and its own
//! `/openapi.json`: generated requests to every operation, without a token and with an
//! admin token, must never meet a server error, and every answer must have a status,
//! content type and body the document allows. Bounded: a few cases per operation and a
//! hard limit on each run's time. Its figures are printed beside the test's result.

use std::{
    io::Write as _,
    path::Path,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use crate::{Kiln, Server, mlflow::python_env};

const ADMIN: &str = "admin-token-0123456789abcdef";

/// The longest one run may take; it is stopped (and the test fails) past that.
const LIMIT: Duration = Duration::from_secs(50);

/// Runs schemathesis against `server` (with `token`, if any): its exit status and output.
fn schemathesis(server: &Server, token: Option<&str>, work: &Path) -> (bool, String) {
    let python = python_env("schemathesis");
    let cli = Path::new(&python).with_file_name("schemathesis");
    let mut cmd = Command::new(cli);
    cmd.current_dir(work)
        .env("NO_COLOR", "1")
        .args(["run", &format!("{}/openapi.json", server.url)])
        .args([
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance",
            "--max-examples",
            "3",
            "--phases",
            "examples,coverage,fuzzing",
            "--seed",
            "7",
            "--workers",
            "2",
            "--request-timeout",
            "10",
            "--generation-database",
            "none",
            "--no-color",
        ]);
    if let Some(t) = token {
        cmd.args(["--header", &format!("Authorization: Bearer {t}")]);
    }
    let out = work.join(format!(
        "schemathesis-{}.log",
        token.map_or("anonymous", |_| "admin")
    ));
    let log = std::fs::File::create(&out).unwrap();
    let mut child = cmd
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .stdin(Stdio::null())
        .spawn()
        .expect("running schemathesis");
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if start.elapsed() > LIMIT {
            child.kill().ok();
            child.wait().ok();
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let text = std::fs::read_to_string(&out).unwrap_or_default();
    match status {
        Some(s) => (s.success(), text),
        None => (false, format!("{text}\nstopped after {LIMIT:?}")),
    }
}

/// The summary's figures: operations tested and test cases.
fn figures(text: &str) -> String {
    text.lines()
        .map(str::trim)
        .filter(|l| {
            l.starts_with("Selected:")
                || l.starts_with("Tested:")
                || l.contains(" generated, ")
                || l.starts_with("Seed:")
        })
        .collect::<Vec<_>>()
        .join("; ")
}

#[test]
fn schemathesis_finds_nothing_the_document_does_not_allow() {
    let k = Kiln::seeded();
    let server = Server::start(
        &k,
        Some(&format!(
            "[[tokens]]\ntoken = \"{ADMIN}\"\nscopes = [\"admin\"]\n"
        )),
    );
    let work = tempfile::tempdir().unwrap();
    for token in [None, Some(ADMIN)] {
        let who = if token.is_some() {
            "admin token"
        } else {
            "no token"
        };
        let started = Instant::now();
        let (ok, text) = schemathesis(&server, token, work.path());
        // Written past the test harness's capture, so the figures show in CI's log.
        let _ = writeln!(
            std::io::stderr(),
            "schemathesis, {who}: {} in {:.1} s",
            figures(&text),
            started.elapsed().as_secs_f64()
        );
        assert!(ok, "schemathesis, {who}, failed:\n{text}");
    }
}
