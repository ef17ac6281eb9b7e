//! schemathesis (pinned in `scripts/python-env.sh`) against a real `kiln serve` and its own
//! `/openapi.json`: generated requests to every operation, without a token and with an
//! admin token, must never meet a server error, and every answer must have a status,
//! content type and body the document allows. The server holds an experiment, a run with
//! a metric and an artifact, and a registered model with a version and an alias, and
//! schemathesis is told their names for the path and query parameters that take them, so
//! operations answer with their records as well as with 404. Bounded: a few cases per
//! operation and a hard limit on each run's time. Its figures are printed beside the test's
//! result.

use std::{
    io::Write as _,
    path::Path,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use serde_json::{Value as J, json};

use crate::{Kiln, Server, mlflow::python_env};

const ADMIN: &str = "admin-token-0123456789abcdef";

/// The longest one run may take; it is stopped (and the test fails) past that.
const LIMIT: Duration = Duration::from_secs(50);

/// Records for the operations to find, made through the API itself; the schemathesis
/// config that names them (`[parameters]`, and the marketplace's plugin for its paths).
fn seed(server: &Server) -> String {
    let post = |path: &str, body: J| {
        let (status, doc) = server.send_json("POST", path, Some(ADMIN), &body);
        assert_eq!(status, 200, "{path}: {doc}");
        doc
    };
    let experiment = post(
        "/api/2.0/mlflow/experiments/create",
        json!({"name": "schemathesis"}),
    )["experiment_id"]
        .as_str()
        .unwrap()
        .to_string();
    let run = post(
        "/api/2.0/mlflow/runs/create",
        json!({"experiment_id": experiment, "run_name": "probe"}),
    )["run"]["info"]["run_id"]
        .as_str()
        .unwrap()
        .to_string();
    post(
        "/api/2.0/mlflow/runs/log-metric",
        json!({"run_id": run, "key": "rmse", "value": 0.5}),
    );
    let artifacts = format!("{experiment}/{run}/artifacts");
    let auth = format!("Bearer {ADMIN}");
    let (status, _, _) = server.send(
        "PUT",
        &format!("/api/2.0/mlflow-artifacts/artifacts/{artifacts}/notes.txt"),
        &[("Authorization", &auth)],
        Some(b"notes".to_vec()),
    );
    assert_eq!(status, 200);
    post(
        "/api/2.0/mlflow/registered-models/create",
        json!({"name": "probe"}),
    );
    post(
        "/api/2.0/mlflow/model-versions/create",
        json!({"name": "probe", "source": format!("runs:/{run}/model"), "run_id": run}),
    );
    post(
        "/api/2.0/mlflow/registered-models/alias",
        json!({"name": "probe", "alias": "champion", "version": "1"}),
    );
    let (_, plugins) = server.json("GET", "/v1/plugins", None, None);
    let plugin = plugins["items"][0]["name"].as_str().unwrap().to_string();
    let (_, versions) = server.json("GET", &format!("/v1/plugins/{plugin}"), None, None);
    let latest = &versions["versions"][0];
    format!(
        r#"[parameters]
"path.name" = "probe"
"path.reference" = "1"
"path.version" = "1"
"path.alias" = "champion"
"path.path" = "{artifacts}/notes.txt"
"path.digest" = "{digest}"
"query.run_id" = "{run}"
"query.experiment_id" = "{experiment}"
"query.experiment_name" = "schemathesis"
"query.name" = "probe"
"query.version" = "1"
"query.alias" = "champion"
"query.metric_key" = "rmse"
"query.path" = "{artifacts}"

[[operations]]
include-path-regex = "^/v1/plugins/"
parameters = {{ "path.name" = "{plugin}", "path.version" = "{version}" }}
"#,
        digest = latest["digest"].as_str().unwrap(),
        version = latest["version"].as_str().unwrap(),
    )
}

/// Runs schemathesis against `server` (with `token`, if any) with `config`: its exit
/// status and output.
fn schemathesis(
    server: &Server,
    token: Option<&str>,
    config: &Path,
    work: &Path,
) -> (bool, String) {
    let python = python_env("schemathesis");
    let cli = Path::new(&python).with_file_name("schemathesis");
    let mut cmd = Command::new(cli);
    cmd.current_dir(work)
        .env("NO_COLOR", "1")
        .arg("--config-file")
        .arg(config)
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
    let config = work.path().join("schemathesis.toml");
    std::fs::write(&config, seed(&server)).unwrap();
    for token in [None, Some(ADMIN)] {
        let who = if token.is_some() {
            "admin token"
        } else {
            "no token"
        };
        let started = Instant::now();
        let (ok, text) = schemathesis(&server, token, &config, work.path());
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
