//! The official MLflow Python client against a real `kiln serve`: `tests/mlflow/client_test.py`
//! in the venv `scripts/python-env.sh` sets up (mlflow from PyPI).

use std::{path::Path, process::Command};

use crate::{Kiln, Server};

#[test]
fn the_official_mlflow_client_works_unchanged() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let setup = Command::new(repo.join("scripts/python-env.sh"))
        .output()
        .expect("running scripts/python-env.sh");
    assert!(
        setup.status.success(),
        "setting up the Python environment failed:\n{}",
        String::from_utf8_lossy(&setup.stderr)
    );
    let python = String::from_utf8(setup.stdout).unwrap().trim().to_string();

    let k = Kiln::new();
    let server = Server::start(&k, None);

    let out = Command::new(&python)
        .arg(repo.join("tests/mlflow/client_test.py"))
        .env("MLFLOW_TRACKING_URI", &server.url)
        .env("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
        .output()
        .expect("running the client script");
    drop(server);
    assert!(
        out.status.success(),
        "the MLflow client failed against kiln serve:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("client checks passed"));
}
