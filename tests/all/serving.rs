//! Model serving against a real `kiln serve`: the demo's registered model answers over
//! /v1 (rows, columns, MLflow's forms, a binary tensor) and the Open Inference Protocol,
//! the same as its native twin; an alias moves under concurrent traffic without a failed
//! request; overload is refused with 429 and the server stays healthy; a looping or
//! trapping model is stopped and its instance replaced; bad bodies are refused; metrics,
//! readiness, graceful shutdown and the anonymous-reads switch.

use std::{
    path::Path,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
};

use base64::Engine as _;
use kiln_test_artifacts as g;
use serde_json::{Value as J, json};

use crate::{Kiln, Server};

const TOKEN: &str = "publish-token-0123456789";
const MODEL: &str = "diabetes-progression";

fn seed() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("registry-data")
}

/// Runs a workflow file with the standard plugins; returns the run id.
pub(crate) fn run(k: &Kiln, workflow: &Path) -> String {
    let mut cmd = k.cmd();
    cmd.env("KILN_SEED", seed())
        .args(["run", workflow.to_str().unwrap(), "--json"]);
    Kiln::json_of(cmd)["id"].as_str().unwrap().to_string()
}

/// The quickstart, its split seeded with `seed`, in a scratch directory with the data.
pub(crate) fn quickstart(k: &Kiln, split_seed: u64) -> std::path::PathBuf {
    let dir = k.home().join(format!("wf-{split_seed}"));
    std::fs::create_dir_all(dir.join("data")).unwrap();
    std::fs::copy(crate::data("diabetes.csv"), dir.join("data/diabetes.csv")).unwrap();
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/quickstart.yaml"),
    )
    .unwrap()
    .replace(
        "with: { test_fraction: 0.2, seed: 42 }",
        &format!("with: {{ test_fraction: 0.2, seed: {split_seed} }}"),
    );
    let path = dir.join("quickstart.yaml");
    std::fs::write(&path, text).unwrap();
    path
}

/// The quickstart's inference pipeline as a run fitted it: the scaler (each feature's
/// mean and scale) and the linear model (feature names, coefficients, intercept).
struct Linear {
    features: Vec<String>,
    coefficients: Vec<f64>,
    intercept: f64,
    scaler: Vec<(f64, f64)>,
}

impl Linear {
    fn of_run(k: &Kiln, run: &str) -> Linear {
        let doc: J = serde_json::from_str(&k.ok(&["runs", "get", run, "train.model"])).unwrap();
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(doc["base64"].as_str().unwrap())
            .unwrap();
        let m: J = serde_json::from_slice(&bytes).unwrap();
        let scaler: J =
            serde_json::from_str(&k.ok(&["runs", "get", run, "scale-train.scaler"])).unwrap();
        let features: Vec<String> = serde_json::from_value(m["features"].clone()).unwrap();
        Linear {
            scaler: features
                .iter()
                .map(|f| {
                    let s = &scaler["value"][f.as_str()];
                    (s["mean"].as_f64().unwrap(), s["scale"].as_f64().unwrap())
                })
                .collect(),
            features,
            coefficients: serde_json::from_value(m["coefficients"][0].clone()).unwrap(),
            intercept: m["intercepts"][0].as_f64().unwrap(),
        }
    }

    /// The prediction for a raw row: scaled, then the linear model.
    fn predict(&self, row: &[f64]) -> f64 {
        self.intercept
            + self
                .coefficients
                .iter()
                .zip(row)
                .zip(&self.scaler)
                .map(|((c, x), (mean, scale))| c * (x - mean) / scale)
                .sum::<f64>()
    }

    fn rows_json(&self, rows: &[Vec<f64>]) -> J {
        J::Array(
            rows.iter()
                .map(|r| {
                    J::Object(
                        self.features
                            .iter()
                            .zip(r)
                            .map(|(f, x)| (f.clone(), json!(x)))
                            .collect(),
                    )
                })
                .collect(),
        )
    }
}

/// Three rows of ten features.
fn rows() -> Vec<Vec<f64>> {
    (0..3)
        .map(|i| {
            (0..10)
                .map(|j| ((i * 10 + j) as f64 * 0.37).sin())
                .collect()
        })
        .collect()
}

#[track_caller]
pub(crate) fn all_close(got: &[f64], want: &[f64], rel: f64) {
    assert_eq!(got.len(), want.len(), "{got:?} vs {want:?}");
    for (g, w) in got.iter().zip(want) {
        assert!(
            (g - w).abs() <= rel * w.abs().max(1.0),
            "{got:?} vs {want:?}"
        );
    }
}

fn numbers(j: &J) -> Vec<f64> {
    j.as_array()
        .unwrap_or_else(|| panic!("not a list: {j}"))
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

/// A POST that must be refused with `status` and the error `code`.
#[track_caller]
fn refused(s: &Server, path: &str, body: impl Into<Vec<u8>>, status: u16, code: &str) -> J {
    let (got, doc) = s.json("POST", path, None, Some(body.into()));
    assert_eq!(
        (got, doc["error"]["code"].as_str()),
        (status, Some(code)),
        "{path}: {doc}"
    );
    doc
}

#[test]
fn a_registered_model_answers_in_every_form_over_v1_and_v2() {
    let k = Kiln::new();
    let id = run(&k, &quickstart(&k, 42));
    let model = Linear::of_run(&k, &id);
    let rows = rows();
    let want: Vec<f64> = rows.iter().map(|r| model.predict(r)).collect();
    let s = Server::start(&k, None);
    let predict = |reference: &str, body: J| -> J {
        let path = format!("/v1/models/{MODEL}/{reference}/predict");
        let (status, doc) = s.send_json("POST", &path, None, &body);
        assert_eq!(status, 200, "{doc}");
        assert_eq!(
            (doc["model"].as_str(), doc["version"].as_u64()),
            (Some(MODEL), Some(1))
        );
        doc["outputs"]["predictions"].clone()
    };
    let from_rows = |p: &J| -> Vec<f64> {
        p.as_array()
            .unwrap()
            .iter()
            .map(|r| r["prediction"].as_f64().unwrap())
            .collect()
    };

    // Rows, by alias and by version; MLflow's record form.
    let by_rows = json!({ "rows": model.rows_json(&rows) });
    all_close(
        &from_rows(&predict("candidate", by_rows.clone())),
        &want,
        1e-12,
    );
    all_close(&from_rows(&predict("1", by_rows)), &want, 1e-12);
    let records = json!({ "dataframe_records": model.rows_json(&rows) });
    all_close(&from_rows(&predict("1", records)), &want, 1e-12);
    // Columns.
    let columns: serde_json::Map<String, J> = model
        .features
        .iter()
        .enumerate()
        .map(|(j, f)| {
            (
                f.clone(),
                json!(rows.iter().map(|r| r[j]).collect::<Vec<_>>()),
            )
        })
        .collect();
    let got = predict("candidate", json!({ "columns": columns }));
    all_close(&numbers(&got["prediction"]), &want, 1e-12);
    // MLflow's split form, and a matrix in the features' order.
    let split = json!({"dataframe_split": {"columns": model.features, "data": rows}});
    all_close(&from_rows(&predict("1", split)), &want, 1e-12);
    all_close(
        &from_rows(&predict("1", json!({ "instances": rows }))),
        &want,
        1e-12,
    );

    // A binary float32 tensor in, a binary float64 tensor out.
    let body: Vec<u8> = rows
        .iter()
        .flatten()
        .flat_map(|&x| (x as f32).to_le_bytes())
        .collect();
    let binary = |body: Vec<u8>, shape: &str| {
        s.send(
            "POST",
            &format!("/v1/models/{MODEL}/candidate/predict"),
            &[
                ("Content-Type", "application/octet-stream"),
                ("Accept", "application/octet-stream"),
                ("kiln-dtype", "float32"),
                ("kiln-shape", shape),
            ],
            Some(body),
        )
    };
    let (status, headers, bytes) = binary(body.clone(), "3,10");
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&bytes));
    assert_eq!(headers["kiln-dtype"], "float64");
    assert_eq!(headers["kiln-shape"], "3,1");
    let got: Vec<f64> = bytes
        .chunks_exact(8)
        .map(|c| f64::from_le_bytes(c.try_into().unwrap()))
        .collect();
    all_close(&got, &want, 1e-4);
    let (status, _, bytes) = binary(body[..40].to_vec(), "3,10");
    assert_eq!(status, 400, "{}", String::from_utf8_lossy(&bytes));
    let (status, _, bytes) = binary(body.clone(), "3,10,1,x");
    assert_eq!(status, 400, "{}", String::from_utf8_lossy(&bytes));

    // The Open Inference Protocol: columns as input tensors, or the features as one.
    let (status, meta) = s.json("GET", &format!("/v2/models/{MODEL}"), None, None);
    assert_eq!(status, 200, "{meta}");
    assert_eq!(meta["versions"], json!(["1"]));
    assert_eq!(meta["platform"], "kiln-wasm");
    // The inputs are the raw columns the pipeline reads (not the target); the outputs
    // are the tensors infer answers.
    let names = |ports: &J| -> Vec<String> {
        ports
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(names(&meta["inputs"]), model.features, "{meta}");
    assert_eq!(names(&meta["outputs"]), ["prediction"], "{meta}");
    let (status, ready) = s.json("GET", &format!("/v2/models/{MODEL}/ready"), None, None);
    assert_eq!((status, &ready["ready"]), (200, &json!(true)));
    let (status, _) = s.json(
        "GET",
        &format!("/v2/models/{MODEL}/versions/candidate/ready"),
        None,
        None,
    );
    assert_eq!(status, 200);
    for path in ["/v2", "/v2/health/live", "/v2/health/ready"] {
        assert_eq!(s.json("GET", path, None, None).0, 200, "{path}");
    }
    let infer = |path: &str, body: J| -> J {
        let (status, doc) = s.send_json("POST", path, None, &body);
        assert_eq!(status, 200, "{doc}");
        doc
    };
    let by_columns: Vec<J> = model
        .features
        .iter()
        .enumerate()
        .map(|(j, f)| json!({"name": f, "datatype": "FP64", "shape": [3], "data": rows.iter().map(|r| r[j]).collect::<Vec<_>>()}))
        .collect();
    let doc = infer(
        &format!("/v2/models/{MODEL}/infer"),
        json!({"id": "req-7", "inputs": by_columns}),
    );
    assert_eq!(
        (doc["id"].as_str(), doc["model_version"].as_str()),
        (Some("req-7"), Some("1"))
    );
    assert_eq!(doc["outputs"][0]["name"], "prediction");
    assert_eq!(doc["outputs"][0]["shape"], json!([3]));
    all_close(&numbers(&doc["outputs"][0]["data"]), &want, 1e-12);
    let doc = infer(
        &format!("/v2/models/{MODEL}/versions/1/infer"),
        json!({"inputs": [{"name": "features", "datatype": "FP32", "shape": [3, 10], "data": rows}]}),
    );
    all_close(&numbers(&doc["outputs"][0]["data"]), &want, 1e-4);

    // Refusals: JSON errors with stable codes, and nothing internal in them.
    let path = format!("/v1/models/{MODEL}/candidate/predict");
    let infer = format!("/v2/models/{MODEL}/infer");
    let text = |j: J| j.to_string();
    refused(&s, "/v1/models/nope/1/predict", "{}", 404, "not_found");
    refused(
        &s,
        &format!("/v1/models/{MODEL}/7/predict"),
        "{}",
        404,
        "not_found",
    );
    refused(
        &s,
        &format!("/v1/models/{MODEL}/champion/predict"),
        "{}",
        404,
        "not_found",
    );
    refused(&s, &path, "{\"rows\": [", 400, "bad_request");
    refused(&s, &path, "[1, 2]", 400, "bad_request");
    refused(&s, &path, "{\"table\": []}", 400, "bad_request");
    let doc = refused(
        &s,
        &path,
        text(json!({"rows": [{"age": 1.0}]})),
        400,
        "invalid_input",
    );
    assert!(
        doc["error"]["message"].as_str().unwrap().contains("sex"),
        "{doc}"
    );
    refused(
        &s,
        &path,
        text(json!({"rows": [{"age": [1]}]})),
        400,
        "bad_request",
    );
    let uneven = json!({"columns": {"a": [1], "b": [1, 2]}});
    refused(&s, &path, text(uneven), 400, "bad_request");
    let fp16 =
        json!({"inputs": [{"name": "features", "datatype": "FP16", "shape": [1], "data": [1]}]});
    refused(&s, &infer, text(fp16), 400, "bad_request");
    let short = json!({"inputs": [{"name": "features", "datatype": "FP64", "shape": [2, 10], "data": [1]}]});
    refused(&s, &infer, text(short), 400, "bad_request");
    // A body past the prediction limit (16 MiB) is refused from its length alone.
    let answer = s.head_only(&path, 17 << 20);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("payload_too_large"), "{answer}");
    // The server is still there.
    all_close(
        &from_rows(&predict(
            "candidate",
            json!({ "rows": model.rows_json(&rows) }),
        )),
        &want,
        1e-12,
    );
    drop(s);

    // The native twin answers the same, for the same model, through the same server.
    let s = Server::start(
        &k,
        Some(&format!("[serving.models.{MODEL}]\nrunner = \"native\"\n")),
    );
    let (status, meta) = s.json("GET", &format!("/v2/models/{MODEL}"), None, None);
    assert_eq!(
        (status, meta["platform"].as_str()),
        (200, Some("kiln-native"))
    );
    let (status, doc) = s.send_json(
        "POST",
        &path,
        None,
        &json!({ "rows": model.rows_json(&rows) }),
    );
    assert_eq!(status, 200, "{doc}");
    all_close(&from_rows(&doc["outputs"]["predictions"]), &want, 1e-12);
}

#[test]
fn moving_an_alias_switches_traffic_with_no_failed_request() {
    let k = Kiln::new();
    let first = run(&k, &quickstart(&k, 42));
    let second = run(&k, &quickstart(&k, 7));
    let models = [Linear::of_run(&k, &first), Linear::of_run(&k, &second)];
    assert_ne!(models[0].coefficients, models[1].coefficients);
    let row = rows().remove(0);
    let want = [models[0].predict(&row), models[1].predict(&row)];
    let s = Arc::new(Server::start(
        &k,
        Some(&format!(
            "[[tokens]]\ntoken = \"{TOKEN}\"\nscopes = [\"publish\"]\n"
        )),
    ));
    let set = |version: u64| {
        let path = format!("/v1/models/{MODEL}/aliases/production");
        let (status, doc) = s.send_json("PUT", &path, Some(TOKEN), &json!({ "version": version }));
        assert_eq!(status, 200, "{doc}");
    };
    let body = json!({ "rows": models[0].rows_json(std::slice::from_ref(&row)) })
        .to_string()
        .into_bytes();
    let predict = {
        let s = s.clone();
        move || -> (u16, J) {
            s.json(
                "POST",
                &format!("/v1/models/{MODEL}/production/predict"),
                None,
                Some(body.clone()),
            )
        }
    };
    set(1);
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..4)
        .map(|_| {
            let (predict, stop) = (predict.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut seen = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    seen.push(predict());
                }
                seen
            })
        })
        .collect();
    for round in 0..10u64 {
        let version = 2 - round % 2;
        set(version);
        // Every request sent after the move is answered by the version moved to.
        let (status, doc) = predict();
        assert_eq!(
            (status, doc["version"].as_u64()),
            (200, Some(version)),
            "{doc}"
        );
        std::thread::sleep(std::time::Duration::from_millis(30));
    }
    stop.store(true, Ordering::Relaxed);
    let mut answered = [0usize; 2];
    for client in clients {
        for (status, doc) in client.join().unwrap() {
            assert_eq!(status, 200, "{doc}");
            let v = doc["version"].as_u64().unwrap() as usize;
            let got = doc["outputs"]["predictions"][0]["prediction"]
                .as_f64()
                .unwrap();
            all_close(&[got], &[want[v - 1]], 1e-12);
            answered[v - 1] += 1;
        }
    }
    assert!(answered[0] > 0 && answered[1] > 0, "{answered:?}");
}

/// A workflow that trains on the demo data and registers the model to be served by the
/// hostile runner.
fn hostile_model(k: &Kiln) {
    let dir = k.home().join("hostile");
    std::fs::create_dir_all(dir.join("data")).unwrap();
    std::fs::copy(crate::data("diabetes.csv"), dir.join("data/diabetes.csv")).unwrap();
    let path = dir.join("hostile.yaml");
    std::fs::write(
        &path,
        format!(
            "name: hostile-serving\nsteps:\n  read:\n    uses: csv-reader@^0.1\n    with: {{ path: data/diabetes.csv }}\n    grants: {{ dirs: [data] }}\n  train:\n    uses: linear-regression@^0.1\n    inputs: {{ table: read.table }}\n    with: {{ target: progression }}\nregister:\n  model: hostile\n  from: train.model\n  runner: {}\n",
            g::HOSTILE_RUNNER
        ),
    )
    .unwrap();
    run(k, &path);
}

#[test]
fn overload_is_refused_with_429_and_a_misbehaving_model_is_contained() {
    let k = Kiln::new();
    hostile_model(&k);
    let s = Arc::new(Server::start(
        &k,
        Some(
            "[serving]\npredict_timeout_ms = 1000\n\n[serving.models.hostile]\ninstances = 1\nqueue = 2\n",
        ),
    ));
    let call = |s: &Server, mode: Option<&str>| -> (u16, J) {
        let mut inputs = json!({"features": {"x": [1.0, 2.0]}});
        if let Some(m) = mode {
            inputs["mode"] = json!(m);
        }
        let body = json!({ "inputs": inputs });
        s.send_json("POST", "/v1/models/hostile/1/predict", None, &body)
    };
    let (status, doc) = call(&s, None);
    assert_eq!(status, 200, "{doc}");
    assert_eq!(
        doc["outputs"]["predictions"]["prediction"]
            .as_array()
            .unwrap()
            .len(),
        2
    );

    // One instance and two places in the queue: of 16 slow requests at once, most are
    // refused at once with 429, and the rest are answered.
    let slow: Vec<_> = (0..16)
        .map(|_| {
            let s = s.clone();
            std::thread::spawn(move || call(&s, Some("spin:300")))
        })
        .collect();
    std::thread::sleep(std::time::Duration::from_millis(100));
    let started = std::time::Instant::now();
    assert_eq!(s.call("GET", "/healthz", None, None).0, 200);
    assert!(started.elapsed() < std::time::Duration::from_millis(250));
    let answers: Vec<(u16, J)> = slow.into_iter().map(|t| t.join().unwrap()).collect();
    let count = |code: u16| answers.iter().filter(|(s, _)| *s == code).count();
    assert!(count(429) >= 10, "{answers:?}");
    assert!(count(200) >= 1, "{answers:?}");
    assert_eq!(count(429) + count(200), 16, "{answers:?}");
    let busy = answers.iter().find(|(s, _)| *s == 429).unwrap();
    assert_eq!(busy.1["error"]["code"], "overloaded");

    // A model that loops is stopped at its deadline; one that traps is replaced; neither
    // shows its insides; the next request is answered.
    let (status, doc) = call(&s, Some("loop"));
    assert_eq!(
        (status, doc["error"]["code"].as_str()),
        (504, Some("model_timeout")),
        "{doc}"
    );
    let (status, doc) = call(&s, Some("trap"));
    assert_eq!(
        (status, doc["error"]["code"].as_str()),
        (500, Some("model_failed")),
        "{doc}"
    );
    assert!(!doc.to_string().contains("wasm"), "{doc}");
    let (status, doc) = call(&s, Some("fail"));
    assert_eq!(
        (status, doc["error"]["code"].as_str()),
        (400, Some("invalid_input")),
        "{doc}"
    );
    assert_eq!(doc["error"]["message"], "asked to fail");
    let (status, doc) = call(&s, None);
    assert_eq!(status, 200, "{doc}");

    // The metrics tell the story: by route template and status, and per model version.
    let (status, text) = s.call("GET", "/metrics", None, None);
    assert_eq!(status, 200);
    let text = String::from_utf8(text).unwrap();
    let value = |series: &str| -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {series} in\n{text}"))
    };
    let model = r#"{model="hostile",version="1",backend="wasm"}"#;
    assert!(value(&format!("kiln_predictions_rejected_total{model}")) >= 10.0);
    assert_eq!(value(&format!("kiln_pool_instances{model}")), 1.0);
    let busy = r#"kiln_http_requests_total{method="POST",route="/v1/models/{name}/{reference}/predict",status="429"}"#;
    assert!(value(busy) >= 10.0);
    assert!(text.contains("kiln_http_request_duration_seconds_bucket"));
    assert!(text.contains(r#"kiln_compiled_cache{outcome="hit"}"#));
    assert!(text.contains("hostile-runner"), "{text}");
}

#[test]
fn shutdown_finishes_the_predictions_in_flight() {
    let k = Kiln::new();
    hostile_model(&k);
    let s = Server::start(&k, None);
    let (status, ready) = s.json("GET", "/readyz", None, None);
    assert_eq!((status, &ready["ready"]), (200, &json!(true)));
    let url = s.url.clone();
    let slow = std::thread::spawn(move || {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        let body = json!({"inputs": {"features": {"x": [1.0]}, "mode": "spin:600"}});
        let mut r = agent
            .post(format!("{url}/v1/models/hostile/1/predict"))
            .send_json(&body)
            .unwrap();
        (r.status().as_u16(), r.body_mut().read_to_string().unwrap())
    });
    std::thread::sleep(std::time::Duration::from_millis(200));
    let mut s = s;
    s.terminate();
    let (status, body) = slow.join().unwrap();
    assert_eq!(status, 200, "{body}");
    assert!(s.child.wait().unwrap().success());
}

#[test]
fn with_anonymous_reads_off_every_route_but_the_probes_needs_a_token() {
    let k = Kiln::new();
    hostile_model(&k);
    let read = "read-only-token-0123456789";
    let s = Server::start(
        &k,
        Some(&format!(
            "anonymous_reads = false\n\n[[tokens]]\ntoken = \"{read}\"\nscopes = [\"read\"]\n"
        )),
    );
    let predict = json!({"inputs": {"features": {"x": [1.0]}}})
        .to_string()
        .into_bytes();
    for (method, path, body) in [
        ("GET", "/v1/runs", None),
        ("GET", "/v1/models/hostile", None),
        ("GET", "/v1/plugins", None),
        ("GET", "/metrics", None),
        ("GET", "/v2/models/hostile", None),
        (
            "POST",
            "/v1/models/hostile/1/predict",
            Some(predict.clone()),
        ),
        ("GET", "/api/2.0/mlflow/experiments/search", None),
    ] {
        let (status, _) = s.call(method, path, None, body.clone());
        assert_eq!(status, 401, "{path}");
        let (status, _) = s.call(
            method,
            path,
            Some("not-a-token-of-this-server"),
            body.clone(),
        );
        assert_eq!(status, 401, "{path}");
        let (status, _) = s.call(method, path, Some(read), body);
        assert_eq!(status, 200, "{path}");
    }
    for path in ["/healthz", "/readyz", "/v2/health/live", "/v2/health/ready"] {
        assert_eq!(s.call("GET", path, None, None).0, 200, "{path}");
    }
    // Reading does not grant moving an alias.
    let (status, _) = s.call(
        "PUT",
        "/v1/models/hostile/aliases/production",
        Some(read),
        Some(json!({"version": 1}).to_string().into_bytes()),
    );
    assert_eq!(status, 403);
}

#[test]
fn batched_requests_are_each_answered_with_their_own_rows() {
    let k = Kiln::new();
    let id = run(&k, &quickstart(&k, 42));
    let model = Arc::new(Linear::of_run(&k, &id));
    let s = Arc::new(Server::start(
        &k,
        Some("[serving]\ninstances = 1\nmax_batch = 16\nmax_delay_us = 2000\n"),
    ));
    let clients: Vec<_> = (0..8)
        .map(|c| {
            let (s, model) = (s.clone(), model.clone());
            std::thread::spawn(move || {
                for i in 0..25 {
                    let rows: Vec<Vec<f64>> = (0..1 + (c + i) % 4)
                        .map(|r| {
                            (0..10)
                                .map(|j| ((c * 100 + i * 10 + r) as f64 + j as f64).cos())
                                .collect()
                        })
                        .collect();
                    let want: Vec<f64> = rows.iter().map(|r| model.predict(r)).collect();
                    let path = format!("/v1/models/{MODEL}/1/predict");
                    let body = json!({ "rows": model.rows_json(&rows) });
                    let (status, doc) = s.send_json("POST", &path, None, &body);
                    assert_eq!(status, 200, "{doc}");
                    let got: Vec<f64> = doc["outputs"]["predictions"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|r| r["prediction"].as_f64().unwrap())
                        .collect();
                    all_close(&got, &want, 1e-12);
                }
            })
        })
        .collect();
    for c in clients {
        c.join().unwrap();
    }
    // Requests were merged: fewer predict calls than predictions.
    let (_, text) = s.call("GET", "/metrics", None, None);
    let text = String::from_utf8(text).unwrap();
    let value = |prefix: &str| -> f64 {
        text.lines()
            .find_map(|l| {
                l.starts_with(prefix)
                    .then(|| l.rsplit(' ').next()?.parse().ok())?
            })
            .unwrap_or_else(|| panic!("no {prefix} in\n{text}"))
    };
    let predictions = value("kiln_predictions_total{");
    let calls = value("kiln_plugin_invocations_total{");
    assert_eq!(predictions, 200.0);
    assert!(
        calls < predictions,
        "{calls} calls for {predictions} predictions"
    );
}
