//! The runtime for devices: `kiln` built by `scripts/edge.sh` without the compiler, MLflow's
//! API or the marketplace, running bundles the full build made: here on x86_64, and
//! cross-compiled for aarch64 under qemu-aarch64. The demo's model must answer alike
//! everywhere, and nothing may be compiled on the device.

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    process::{Command, Output},
    sync::{Mutex, OnceLock},
};

use serde_json::{Value as J, json};

use crate::{Kiln, Server, write_json};

const MODEL: &str = "diabetes-progression";
const ARM: &str = "aarch64-unknown-linux-gnu";

/// The runtime binary for `target` (`None`: this machine), built once per test process.
fn runtime(target: Option<&str>) -> PathBuf {
    static BUILT: OnceLock<Mutex<HashMap<String, PathBuf>>> = OnceLock::new();
    // One build at a time: they share target/edge-build.
    let mut built = BUILT
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    let key = target.unwrap_or("host").to_string();
    if let Some(path) = built.get(&key) {
        return path.clone();
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/edge.sh");
    let out = Command::new(script)
        .args(target)
        .output()
        .expect("running scripts/edge.sh");
    assert!(
        out.status.success(),
        "scripts/edge.sh {target:?} failed; the edge tests need it:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let path = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    assert!(path.is_file(), "no runtime at {}", path.display());
    built.insert(key, path.clone());
    path
}

/// A device: the runtime binary (under `qemu` for another target) and a data directory.
struct Device {
    binary: PathBuf,
    qemu: bool,
    home: tempfile::TempDir,
}

impl Device {
    fn new(target: Option<&str>) -> Device {
        Device {
            binary: runtime(target),
            qemu: target == Some(ARM),
            home: tempfile::tempdir().unwrap(),
        }
    }

    fn cmd(&self) -> Command {
        let mut c = if self.qemu {
            let mut c = Command::new("qemu-aarch64");
            c.arg("-L").arg("/usr/aarch64-linux-gnu").arg(&self.binary);
            c
        } else {
            Command::new(&self.binary)
        };
        c.env("KILN_HOME", self.home.path()).env("KILN_SEED", "off");
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        self.cmd().args(args).output().expect("running the runtime")
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "runtime {args:?} failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            !out.status.success(),
            "runtime {args:?} should have failed:\n{}",
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    fn json(&self, args: &[&str]) -> J {
        let mut args = args.to_vec();
        args.push("--json");
        serde_json::from_str(&self.ok(&args)).expect("the runtime printed JSON")
    }
}

/// The demo's model, registered by the full build, and the bundler's public key.
fn demo() -> (Kiln, String) {
    let k = Kiln::seeded();
    k.ok(&["demo"]);
    let public = signing_key(&k);
    (k, public)
}

/// Generates the user's signing key; its public half (the seed's key is listed too).
fn signing_key(k: &Kiln) -> String {
    let shown = k.ok(&["key", "generate"]);
    let public = shown
        .lines()
        .find_map(|l| l.trim().strip_prefix("public"))
        .unwrap_or_else(|| panic!("no public key in: {shown}"))
        .trim()
        .to_string();
    assert!(
        k.json(&["key", "list"])
            .as_array()
            .unwrap()
            .iter()
            .any(|key| key["public"] == public.as_str())
    );
    public
}

/// Bundles the demo's model for `target`.
fn bundle(k: &Kiln, target: &str) -> String {
    let file = k.home().join(format!("app-{target}.kiln"));
    let file = file.to_str().unwrap().to_string();
    let model = format!("{MODEL}@candidate");
    k.ok(&["bundle", "model", &model, "--target", target, "-o", &file]);
    file
}

/// Three rows of the demo's (standardised) features, as a value document.
fn rows(dir: &Path) -> String {
    let columns = [
        ("age", [0.038, -0.0019, 0.085]),
        ("sex", [0.0507, -0.0446, 0.0507]),
        ("bmi", [0.0617, -0.0515, 0.0445]),
        ("bp", [0.0219, -0.0263, -0.0057]),
        ("s1", [-0.0442, -0.0084, -0.0456]),
        ("s2", [-0.0348, -0.0192, -0.0342]),
        ("s3", [-0.0434, 0.0744, -0.0324]),
        ("s4", [-0.0026, -0.0395, -0.0026]),
        ("s5", [0.0199, -0.0683, 0.0029]),
        ("s6", [-0.0176, -0.0922, -0.0259]),
    ];
    let doc = json!({
        "$kiln": "value/1",
        "kind": "table",
        "columns": columns
            .iter()
            .map(|(name, values)| json!({"name": name, "type": "float64", "values": values}))
            .collect::<Vec<_>>(),
    });
    format!("features={}", write_json(dir, "rows.json", &doc))
}

fn predictions(doc: &J) -> Vec<f64> {
    doc["outputs"]["predictions"]["columns"][0]["values"]
        .as_array()
        .unwrap_or_else(|| panic!("no predictions: {doc}"))
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect()
}

#[test]
fn the_runtime_only_build_runs_and_serves_a_bundle_and_never_compiles() {
    let (k, public) = demo();
    let app = bundle(&k, kiln::bundle::HOST_TARGET);
    let input = rows(k.home());
    // The full build's answer, from the registered model (compiled there).
    let want = predictions(&k.json(&["model", "predict", MODEL, "-i", &input]));
    assert_eq!(want.len(), 3);

    let device = Device::new(None);
    // It has no compiler: a plain component is refused with the reason, not compiled.
    let err = device.fails(&["plugin", "inspect", kiln_test_artifacts::ECHO_STEP]);
    assert!(
        err.contains("runtime-only build") && err.contains("kiln bundle"),
        "{err}"
    );
    // Nor does it make bundles or build plugins: those subcommands are not there.
    let err = device.fails(&["bundle", "model", MODEL, "-o", "x.kiln"]);
    assert!(err.contains("unrecognized subcommand"), "{err}");
    // A bundle signed by a key it does not trust is refused.
    let predict = ["bundle", "predict", &app, "-i", &input];
    let err = device.fails(&predict);
    assert!(err.contains("not trusted here"), "{err}");
    device.ok(&["key", "trust", &public, "--name", "ci"]);
    let doc = device.json(&predict);
    assert_eq!(doc["compiled"], false, "{doc}");
    crate::serving::all_close(&predictions(&doc), &want, 1e-12);
    // Pulley, the interpreter: the same answer.
    let portable = bundle(&k, "pulley64");
    let doc = device.json(&["bundle", "predict", &portable, "-i", &input]);
    crate::serving::all_close(&predictions(&doc), &want, 1e-12);

    // Served over HTTP on a small port: registered in the device's store once.
    let mut serve = device.cmd();
    serve.args(["bundle", "serve", &app, "--addr", "127.0.0.1:0"]);
    let s = Server::spawn(serve);
    let rows: Vec<J> = (0..3)
        .map(|i| {
            let doc: J = serde_json::from_str(
                &std::fs::read_to_string(input.strip_prefix("features=").unwrap()).unwrap(),
            )
            .unwrap();
            doc["columns"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| {
                    (
                        c["name"].as_str().unwrap().to_string(),
                        c["values"][i].clone(),
                    )
                })
                .collect::<serde_json::Map<_, _>>()
                .into()
        })
        .collect();
    let (status, doc) = s.send_json(
        "POST",
        &format!("/v1/models/{MODEL}/candidate/predict"),
        None,
        &json!({ "rows": rows }),
    );
    assert_eq!(status, 200, "{doc}");
    let got: Vec<f64> = doc["outputs"]["predictions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["prediction"].as_f64().unwrap())
        .collect();
    crate::serving::all_close(&got, &want, 1e-12);
    // The marketplace and MLflow's API are not in this build.
    let (status, _) = s.json("GET", "/v1/plugins", None, None);
    assert_eq!(status, 404);
    let (status, _) = s.json("GET", "/api/2.0/mlflow/experiments/search", None, None);
    assert_eq!(status, 404);
    // A stopped server commits its prediction log before it exits.
    let mut s = s;
    s.terminate();
    assert!(s.child.wait().unwrap().success());
    // The model is in the device's own store now.
    let models = device.json(&["model", "list"]);
    assert_eq!(models[0]["name"], MODEL, "{models}");
    // Its prediction log goes to a central server with `kiln sync`, once.
    let central = Kiln::new();
    let config = "[[tokens]]\ntoken = \"sync-token-for-the-device\"\nscopes = [\"run\"]\n";
    let server = Server::start(&central, Some(config));
    let sync = [
        "sync",
        "--to",
        &server.url,
        "--token",
        "sync-token-for-the-device",
        "--device",
        "pi-7",
    ];
    let first = device.json(&sync);
    assert_eq!(
        (first["sent"].as_u64(), first["predictions"].as_u64()),
        (Some(0), Some(1)),
        "{first}"
    );
    let again = device.json(&sync);
    assert_eq!(again["predictions"], 0, "{again}");
    let (status, logged) = server.json("GET", "/v1/predictions?device=pi-7", None, None);
    assert_eq!(status, 200, "{logged}");
    let records = logged["predictions"].as_array().unwrap();
    assert_eq!(records.len(), 1, "{logged}");
    assert_eq!(
        (
            records[0]["model"].as_str(),
            records[0]["rows"].as_u64(),
            records[0]["backend"].as_str()
        ),
        (Some(MODEL), Some(3), Some("wasm")),
        "{logged}"
    );
    assert!(records[0].get("error").is_none(), "{logged}");

    // A bundle altered by one byte is refused before anything loads.
    let mut bytes = std::fs::read(&app).unwrap();
    let at = bytes.len() - 2048;
    bytes[at] ^= 0x55;
    let tampered = device.home.path().join("tampered.kiln");
    std::fs::write(&tampered, &bytes).unwrap();
    let err = device.fails(&[
        "bundle",
        "predict",
        tampered.to_str().unwrap(),
        "-i",
        &input,
    ]);
    assert!(err.contains("does not match its digest"), "{err}");
}

#[test]
fn an_aarch64_runtime_under_qemu_predicts_as_x86_64_does() {
    let (k, public) = demo();
    let input = rows(k.home());
    let want = predictions(&k.json(&["model", "predict", MODEL, "-i", &input]));
    let app = bundle(&k, ARM);
    let device = Device::new(Some(ARM));
    device.ok(&["key", "trust", &public, "--name", "ci"]);
    let shown = device.json(&["bundle", "inspect", &app]);
    assert_eq!(shown["runs_here"], true, "{shown}");
    let doc = device.json(&["bundle", "predict", &app, "-i", &input]);
    assert_eq!(doc["compiled"], false, "{doc}");
    crate::serving::all_close(&predictions(&doc), &want, 1e-12);
    // An x86_64 bundle is not for this device.
    let x86 = bundle(&k, kiln::bundle::HOST_TARGET);
    let err = device.fails(&["bundle", "predict", &x86, "-i", &input]);
    assert!(
        err.contains(&format!("it was built for {}", kiln::bundle::HOST_TARGET)),
        "{err}"
    );
}

#[test]
fn a_workflow_bundle_runs_on_the_runtime_with_the_devices_data() {
    let k = Kiln::seeded();
    let public = signing_key(&k);
    // The quickstart, run here first: the figures the device must reproduce.
    let dir = k.home().join("wf");
    std::fs::create_dir_all(dir.join("data")).unwrap();
    std::fs::copy(crate::data("diabetes.csv"), dir.join("data/diabetes.csv")).unwrap();
    let workflow = dir.join("quickstart.yaml");
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/quickstart.yaml"),
        &workflow,
    )
    .unwrap();
    let workflow = workflow.to_str().unwrap();
    let here = k.json(&["run", workflow]);
    let app = k.home().join("quickstart.kiln");
    let app = app.to_str().unwrap();
    let made = k.json(&["bundle", "workflow", workflow, "-o", app]);
    assert_eq!(made["manifest"]["plugins"].as_array().unwrap().len(), 7);
    // `kiln bundle FILE.yaml` is the same command.
    let other = k.home().join("same.kiln");
    let same = k.json(&["bundle", workflow, "-o", other.to_str().unwrap()]);
    assert_eq!(same["manifest"], made["manifest"]);
    let err = k.fails(&["bundle", "nonsense", "-o", "x.kiln"]);
    assert!(err.contains("give a workflow file"), "{err}");

    let device = Device::new(None);
    device.ok(&["key", "trust", &public, "--name", "ci"]);
    // A model bundle's commands refuse it with what to do instead.
    let err = device.fails(&["bundle", "predict", app, "-i", "x=y"]);
    assert!(err.contains("kiln bundle run"), "{err}");
    // The device's data sits beside where the workflow is placed (`--dir`).
    let site = device.home.path().join("site");
    let err = device.fails(&["bundle", "run", app, "--dir", site.to_str().unwrap()]);
    assert!(
        err.contains("granted directory `data` does not exist"),
        "{err}"
    );
    std::fs::create_dir_all(site.join("data")).unwrap();
    std::fs::copy(crate::data("diabetes.csv"), site.join("data/diabetes.csv")).unwrap();
    let run = device.json(&["bundle", "run", app, "--dir", site.to_str().unwrap()]);
    assert_eq!(run["status"], "succeeded", "{run}");
    let r2 = |doc: &J| {
        let step = doc["steps"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["id"] == "evaluate")
            .unwrap();
        step["metrics"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["key"] == "test.r2")
            .unwrap()["value"]
            .as_f64()
            .unwrap()
    };
    assert_eq!(r2(&run), r2(&here));
    // Its `register` registered the model in the device's own store.
    let models = device.json(&["model", "list"]);
    assert_eq!(models[0]["name"], MODEL, "{models}");
    // A second run, every step from the device's cache.
    let again = device.json(&["bundle", "run", app, "--dir", site.to_str().unwrap()]);
    assert_eq!(again["status"], "succeeded", "{again}");

    // Later, online: the device's runs go to a central server, once.
    let central = Kiln::new();
    let config = "[[tokens]]\ntoken = \"sync-token-for-the-device\"\nscopes = [\"run\"]\n";
    let server = Server::start(&central, Some(config));
    let url = server.url.clone();
    let sync = || {
        [
            "sync",
            "--to",
            url.as_str(),
            "--token",
            "sync-token-for-the-device",
            "--batch",
            "1",
        ]
    };
    let err = device.fails(&["sync", "--to", &url, "--token", "wrong"]);
    assert!(err.contains("unknown token"), "{err}");
    let first = device.json(&sync());
    assert_eq!(first["sent"], 2, "{first}");
    let device_name = first["device"].as_str().unwrap().to_string();
    // Nothing is sent twice.
    assert_eq!(device.json(&sync())["sent"], 0);
    let on_server = |id: &str| -> J {
        serde_json::from_str(&central.ok(&["--server", &url, "runs", "show", id, "--json"]))
            .unwrap()
    };
    let id = run["id"].as_str().unwrap();
    assert_eq!(on_server(id)["id"], run["id"]);
    // The server is down: a sync says what is on it and how to resume, and records nothing.
    let third = device.json(&["bundle", "run", app, "--dir", site.to_str().unwrap()]);
    let addr = url.strip_prefix("http://").unwrap().to_string();
    drop(server);
    let err = device.fails(&sync());
    assert!(
        err.contains("0 of 1 runs are on") && err.contains("again sends the rest"),
        "{err}"
    );
    // Back on the same address: only the new run goes.
    let server = Server::start_at(&central, Some(config), &addr);
    assert_eq!(server.url, url);
    let resumed = device.json(&sync());
    assert_eq!(resumed["sent"], 1, "{resumed}");
    assert_eq!(device.json(&sync())["sent"], 0);
    let listed: J =
        serde_json::from_str(&central.ok(&["--server", &url, "runs", "list", "--json"])).unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 3, "{listed}");
    let synced = on_server(third["id"].as_str().unwrap());
    assert_eq!(synced["status"], "succeeded");
    // The tracked runs carry the device's name and every metric point, once.
    let (status, got) = server.json(
        "GET",
        &format!("/api/2.0/mlflow/runs/get?run_id={id}"),
        None,
        None,
    );
    assert_eq!(status, 200, "{got}");
    let tags = got["run"]["data"]["tags"].as_array().unwrap();
    assert!(
        tags.iter()
            .any(|t| t["key"] == "kiln.device" && t["value"] == device_name.as_str()),
        "{got}"
    );
    let (status, history) = server.json(
        "GET",
        &format!("/api/2.0/mlflow/metrics/get-history?run_id={id}&metric_key=evaluate.test.r2"),
        None,
        None,
    );
    assert_eq!(status, 200, "{history}");
    let points = history["metrics"].as_array().unwrap();
    assert_eq!(points.len(), 1, "{history}");
    assert_eq!(points[0]["value"].as_f64(), Some(r2(&run)));
}
