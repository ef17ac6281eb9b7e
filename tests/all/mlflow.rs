//! The official MLflow Python client against a real `kiln serve`: `tests/mlflow/client_test.py`
//! in the venv `scripts/python-env.sh` sets up (mlflow from PyPI).

use std::{path::Path, process::Command};

use crate::{Kiln, Server};

/// The venv's python that `scripts/python-env.sh` sets up (made on first use).
pub(crate) fn mlflow_python() -> String {
    python_env("client")
}

/// The python of the venv `scripts/python-env.sh KIND` sets up (made on first use).
pub(crate) fn python_env(kind: &str) -> String {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let setup = Command::new(repo.join("scripts/python-env.sh"))
        .arg(kind)
        .output()
        .expect("running scripts/python-env.sh");
    assert!(
        setup.status.success(),
        "setting up the Python environment failed:\n{}",
        String::from_utf8_lossy(&setup.stderr)
    );
    String::from_utf8(setup.stdout).unwrap().trim().to_string()
}

#[test]
fn the_official_mlflow_client_works_unchanged() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let python = mlflow_python();

    // With tokens configured, MLflow's writes take the `run` scope: the client sends
    // MLFLOW_TRACKING_TOKEN as a bearer token.
    let k = Kiln::new();
    let token = "mlflow-run-token-0123456789";
    let server = Server::start(
        &k,
        Some(&format!(
            "[[tokens]]\ntoken = \"{token}\"\nscopes = [\"run\"]\n"
        )),
    );
    let client = |script: &[&str], token: Option<&str>| {
        let mut c = Command::new(&python);
        c.args(script)
            .env("MLFLOW_TRACKING_URI", &server.url)
            .env("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
            .env_remove("MLFLOW_TRACKING_TOKEN");
        if let Some(t) = token {
            c.env("MLFLOW_TRACKING_TOKEN", t);
        }
        c.output().expect("running the client")
    };
    let anonymous = client(
        &[
            "-c",
            "import mlflow\nprint(len(mlflow.search_experiments()))\nmlflow.create_experiment('anonymous')",
        ],
        None,
    );
    assert!(!anonymous.status.success());
    assert_eq!(String::from_utf8_lossy(&anonymous.stdout).trim(), "1");
    assert!(
        String::from_utf8_lossy(&anonymous.stderr).contains("UNAUTHENTICATED"),
        "{}",
        String::from_utf8_lossy(&anonymous.stderr)
    );
    let out = client(
        &[repo.join("tests/mlflow/client_test.py").to_str().unwrap()],
        Some(token),
    );
    drop(server);
    assert!(
        out.status.success(),
        "the MLflow client failed against kiln serve:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("client checks passed"));
}
