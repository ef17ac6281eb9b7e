//! ONNX models made by public tools (scikit-learn + skl2onnx, an onnx CNN; see
//! tests/onnx/make_models.py), imported with `kiln model import` and served by onnx-runner:
//! every output matches onnxruntime's within 1e-4 relative, through the CLI and the serving
//! API, in the sandbox and natively. Broken and unsupported models are refused at import
//! with their reason, leaving the registry as it was; a workflow step evaluates a
//! registered model.

use std::{
    path::{Path, PathBuf},
    process::Command,
    sync::OnceLock,
};

use kiln_test_artifacts as g;
use serde_json::{Value as J, json};

use crate::{Kiln, Server, write_json};

/// ONNX outputs are float32: this is the relative tolerance the issue sets, with an
/// absolute floor for values near zero (probabilities of 1e-9 differ in their last bits).
const RTOL: f64 = 1e-4;
const ATOL: f64 = 1e-6;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The models and onnxruntime's answers, made once per test process by the project script.
fn models() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let out = Command::new(root().join("scripts/onnx-models.sh"))
            .output()
            .expect("running scripts/onnx-models.sh");
        assert!(
            out.status.success(),
            "scripts/onnx-models.sh failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
    })
}

/// The python of the venv the models are made in (scikit-learn at its pinned version):
/// for references computed by scikit-learn itself.
pub(crate) fn sklearn_python() -> PathBuf {
    models().join("../toolchains/onnx-venv/bin/python")
}

fn model(name: &str) -> String {
    models().join(name).to_str().unwrap().to_string()
}

fn cases(name: &str) -> Vec<J> {
    let text = std::fs::read_to_string(models().join(format!("{name}.cases.json"))).unwrap();
    serde_json::from_str::<J>(&text)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

fn import(k: &Kiln, file: &str, name: &str) -> J {
    k.json(&[
        "model",
        "import",
        &model(file),
        "--name",
        name,
        "--alias",
        "production",
    ])
}

/// The numbers or strings of an answer: a value document (tensor, or a table's first
/// column), a bare list, or `{column: [...]}`, or an OIP output's `data`.
fn elements(v: &J) -> Vec<J> {
    if let Some(values) = v.get("values") {
        return values.as_array().unwrap().clone();
    }
    if let Some(cols) = v.get("columns") {
        return cols[0]["values"].as_array().unwrap().clone();
    }
    if let Some(data) = v.get("data") {
        return data.as_array().unwrap().clone();
    }
    match v {
        J::Array(a) => a.clone(),
        J::Object(m) if m.len() == 1 => elements(m.values().next().unwrap()),
        other => panic!("no elements in {other}"),
    }
}

/// Asserts an answer's elements equal onnxruntime's: strings exactly, numbers within
/// the tolerance. Returns the largest relative difference seen.
#[track_caller]
fn same(got: &J, want: &J, what: &str) -> f64 {
    let (got, want) = (elements(got), elements(&want["values"]));
    assert_eq!(got.len(), want.len(), "{what}: element count");
    let mut worst: f64 = 0.0;
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        if let Some(w) = w.as_str() {
            assert_eq!(g.as_str(), Some(w), "{what}[{i}]");
            continue;
        }
        let (g, w) = (g.as_f64().unwrap(), w.as_f64().unwrap());
        assert!(
            (g - w).abs() <= RTOL * w.abs() + ATOL,
            "{what}[{i}]: {g} vs onnxruntime's {w}"
        );
        if w.abs() > 1e-3 {
            worst = worst.max((g - w).abs() / w.abs());
        }
    }
    worst
}

#[test]
fn imported_models_predict_as_onnxruntime_does_through_the_cli() {
    let k = Kiln::seeded();
    let iris = import(&k, "iris-pipeline.onnx", "iris");
    assert_eq!(iris["new"], true);
    let sig = &iris["version"]["signature"];
    assert_eq!(sig["inputs"][0]["name"], "features");
    assert_eq!(sig["properties"]["input.features"], "float32 [N, 4]");
    assert_eq!(sig["properties"]["output.label"], "int64 [N]");
    assert_eq!(sig["properties"]["output.probabilities"], "float32 [N, 3]");
    assert_eq!(iris["version"]["runner"]["name"], "onnx-runner");
    let cnn = import(&k, "digits-cnn.onnx", "digits");
    assert_eq!(
        cnn["version"]["signature"]["properties"]["input.image"],
        "float32 [N, 1, 8, 8]"
    );
    // The same file again is the same version, not a new one.
    let again = import(&k, "digits-cnn.onnx", "digits");
    assert_eq!(again["new"], false);
    assert_eq!(again["version"]["version"], 1);

    let scratch = tempfile::tempdir().unwrap();
    let mut checked = 0;
    for (file, name) in [("iris-pipeline", "iris"), ("digits-cnn", "digits")] {
        for case in cases(file) {
            let batch = case["batch"].as_u64().unwrap();
            let mut args: Vec<String> = vec!["model".into(), "predict".into(), name.into()];
            for (input, doc) in case["inputs"].as_object().unwrap() {
                let path = write_json(scratch.path(), &format!("{name}-{batch}-{input}.json"), doc);
                args.extend(["-i".into(), format!("{input}={path}")]);
            }
            args.push("--json".into());
            for native in [false, true] {
                let mut a = args.clone();
                if native {
                    a.push("--native".into());
                }
                let a: Vec<&str> = a.iter().map(String::as_str).collect();
                let doc: J = serde_json::from_str(&k.ok(&a)).unwrap();
                assert_eq!(doc["backend"], if native { "native" } else { "wasm" });
                for (output, want) in case["outputs"].as_object().unwrap() {
                    same(
                        &doc["outputs"][output],
                        want,
                        &format!("{name} batch {batch} {output} native={native}"),
                    );
                    checked += 1;
                }
            }
        }
    }
    assert_eq!(checked, 2 * (3 * 2 + 3));
}

#[test]
fn the_serving_api_answers_as_onnxruntime_does_in_the_sandbox_and_natively() {
    let k = Kiln::seeded();
    import(&k, "iris-pipeline.onnx", "iris");
    import(&k, "digits-cnn.onnx", "digits");
    // One instance each, so repeated requests meet the same loaded model: a batch size that
    // recurs is answered by a plan made for that size (onnx-core's `plans`), which must
    // answer as the first, symbolic one did.
    let wasm = "[serving.models.iris]\ninstances = 1\n[serving.models.digits]\ninstances = 1\n";
    let native = "[serving.models.iris]\ninstances = 1\nrunner = \"native\"\n[serving.models.digits]\ninstances = 1\nrunner = \"native\"\n";
    for config in [wasm, native] {
        let server = Server::start(&k, Some(config));
        for (file, name) in [("iris-pipeline", "iris"), ("digits-cnn", "digits")] {
            let (status, meta) = server.json("GET", &format!("/v2/models/{name}"), None, None);
            assert_eq!(status, 200, "{meta}");
            for case in cases(file) {
                let batch = case["batch"].as_u64().unwrap();
                let what = format!("{name} batch {batch} config {config:?}");
                // Kiln's own route, with value documents.
                let body = json!({"inputs": case["inputs"]});
                for call in 1..=3 {
                    let (status, answer) = server.send_json(
                        "POST",
                        &format!("/v1/models/{name}/production/predict"),
                        None,
                        &body,
                    );
                    assert_eq!(status, 200, "{what}: {answer}");
                    for (output, want) in case["outputs"].as_object().unwrap() {
                        same(
                            &answer["outputs"][output],
                            want,
                            &format!("{what} /v1 call {call} {output}"),
                        );
                    }
                }
                // The Open Inference Protocol, with FP32 tensors.
                let inputs: Vec<J> = case["inputs"]
                    .as_object()
                    .unwrap()
                    .iter()
                    .map(|(input, doc)| {
                        json!({"name": input, "shape": doc["shape"], "datatype": "FP32", "data": doc["values"]})
                    })
                    .collect();
                let (status, answer) = server.send_json(
                    "POST",
                    &format!("/v2/models/{name}/infer"),
                    None,
                    &json!({ "inputs": inputs }),
                );
                assert_eq!(status, 200, "{what}: {answer}");
                for (output, want) in case["outputs"].as_object().unwrap() {
                    let got = answer["outputs"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .find(|o| o["name"] == *output)
                        .unwrap_or_else(|| panic!("{what}: no output {output} in {answer}"));
                    assert_eq!(got["shape"], want["shape"], "{what} {output}");
                    same(got, want, &format!("{what} /v2 {output}"));
                }
            }
        }
    }
}

#[test]
fn broken_and_unsupported_models_are_refused_at_import_and_nothing_is_stored() {
    let k = Kiln::seeded();
    import(&k, "digits-cnn.onnx", "digits");
    let before = k.ok(&["model", "list", "--json"]);
    let err = k.fails(&["model", "import", &model("broken.onnx"), "--name", "digits"]);
    assert!(err.contains("not an ONNX model"), "{err}");
    assert!(err.contains("nothing was imported"), "{err}");
    let err = k.fails(&[
        "model",
        "import",
        &model("iris-zipmap.onnx"),
        "--name",
        "iris",
    ]);
    assert!(
        err.contains("unsupported operator: ZipMap (ai.onnx.ml)"),
        "{err}"
    );
    assert!(err.contains("zipmap"), "{err}");
    // An empty file, and one that is not there.
    let empty = k.home().join("empty.onnx");
    std::fs::write(&empty, b"").unwrap();
    let err = k.fails(&["model", "import", empty.to_str().unwrap(), "--name", "e"]);
    assert!(err.contains("empty"), "{err}");
    assert_eq!(k.ok(&["model", "list", "--json"]), before);
    // A prediction with the wrong input is refused with the model's signature.
    let bad = write_json(
        k.home(),
        "bad.json",
        &json!({"$kiln": "value/1", "kind": "tensor", "dtype": "float32", "shape": [1, 4], "values": [1, 2, 3, 4]}),
    );
    let err = k.fails(&["model", "predict", "digits", "-i", &format!("image={bad}")]);
    assert!(err.contains("[N, 1, 8, 8]"), "{err}");
}

#[test]
fn a_workflow_step_evaluates_a_registered_model() {
    let k = Kiln::seeded();
    import(&k, "iris-pipeline.onnx", "iris");
    let dir = k.home().join("wf");
    std::fs::create_dir_all(dir.join("data")).unwrap();
    // The model predicts class indices (setosa 0, versicolor 1, virginica 2).
    let text = std::fs::read_to_string(crate::data("iris.csv"))
        .unwrap()
        .replace("setosa", "0")
        .replace("versicolor", "1")
        .replace("virginica", "2");
    std::fs::write(dir.join("data/iris.csv"), text).unwrap();
    let workflow = dir.join("evaluate.yaml");
    std::fs::write(
        &workflow,
        r#"name: iris-onnx-evaluation
steps:
  read:
    uses: csv-reader@^0.1
    with: { path: data/iris.csv }
    grants: { dirs: ["data:ro"] }
  predict:
    uses: models:/iris@production
    inputs: { features: read.table }
    with: { features: "sepal_length_cm,sepal_width_cm,petal_length_cm,petal_width_cm" }
  evaluate:
    uses: evaluator@^0.1
    inputs: { truth: read.table, predictions: predict.predictions }
    with: { target: species, task: classification }
"#,
    )
    .unwrap();
    let out = k.ok(&["run", workflow.to_str().unwrap(), "--json"]);
    let run: J = serde_json::from_str(&out).unwrap();
    assert_eq!(run["status"], "succeeded", "{run}");
    let predict = run["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == "predict")
        .unwrap();
    let model_input = predict["inputs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["port"] == "model")
        .unwrap();
    assert_eq!(model_input["from"], "models:/iris/1");
    let evaluate = run["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == "evaluate")
        .unwrap();
    let accuracy = evaluate["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["key"] == "test.accuracy")
        .unwrap()["value"]
        .as_f64()
        .unwrap();
    // scikit-learn's own training accuracy for this pipeline on all 150 rows is 0.973.
    assert!(accuracy > 0.95, "accuracy {accuracy}");
    // A model that is not registered is named at its line.
    std::fs::write(
        &workflow,
        std::fs::read_to_string(&workflow)
            .unwrap()
            .replace("models:/iris@production", "models:/iris@staging"),
    )
    .unwrap();
    let err = k.fails(&["run", workflow.to_str().unwrap()]);
    assert!(err.contains("staging"), "{err}");
}

#[test]
fn the_runner_component_predicts_on_its_own_and_reports_its_signature() {
    let k = Kiln::sharing_code();
    let case = &cases("digits-cnn")[1];
    let input = write_json(k.home(), "image.json", &case["inputs"]["image"]);
    let doc = k.json(&[
        "plugin",
        "run",
        g::ONNX_RUNNER,
        "--model",
        &model("digits-cnn.onnx"),
        "-i",
        &format!("image={input}"),
    ]);
    same(
        crate::output(&doc, "probabilities"),
        &case["outputs"]["probabilities"],
        "plugin run",
    );
    // A table of features gets a table back, with `prediction` for the evaluator.
    let rows = write_json(
        k.home(),
        "rows.json",
        &json!({"$kiln": "value/1", "kind": "table", "columns": [
            {"name": "a", "type": "float64", "values": [5.1, 6.7]},
            {"name": "b", "type": "float64", "values": [3.5, 3.0]},
            {"name": "c", "type": "float64", "values": [1.4, 5.2]},
            {"name": "d", "type": "float64", "values": [0.2, 2.3]},
            {"name": "species", "type": "text", "values": ["setosa", "virginica"]}]}),
    );
    let doc = k.json(&[
        "plugin",
        "run",
        g::ONNX_RUNNER,
        "--model",
        &model("iris-pipeline.onnx"),
        "-i",
        &format!("rows={rows}"),
    ]);
    let table = crate::output(&doc, "predictions");
    assert_eq!(crate::column(table, "prediction")["values"], json!([0, 2]));
    let p0 = crate::column(table, "probabilities:0")["values"][0]
        .as_f64()
        .unwrap();
    assert!(p0 > 0.9, "{table}");
    // A config key the runner does not know is refused.
    let err = k.fails(&[
        "plugin",
        "run",
        g::ONNX_RUNNER,
        "--model",
        &model("iris-pipeline.onnx"),
        "-c",
        "colour=blue",
        "-i",
        &format!("rows={rows}"),
    ]);
    assert!(err.contains("config key `colour`"), "{err}");
}

#[test]
fn a_bundle_carries_a_model_to_another_data_directory_and_predicts_there_without_compiling() {
    let k = Kiln::seeded();
    import(&k, "digits-cnn.onnx", "digits");
    // Bundling signs with the user's key; without one it says how to make it.
    let app = k.home().join("digits.kiln");
    let app = app.to_str().unwrap();
    let err = k.fails(&["bundle", "model", "digits@production", "-o", app]);
    assert!(err.contains("kiln key generate"), "{err}");
    k.ok(&["key", "generate"]);
    let made = k.json(&["bundle", "model", "digits@production", "-o", app]);
    assert_eq!(made["manifest"]["model"]["name"], "digits");
    assert_eq!(made["manifest"]["plugins"][0]["name"], "onnx-runner");
    let key = made["key"].as_str().unwrap().to_string();
    // Another machine's data directory: it predicts only once it trusts the bundler's key.
    let device = Kiln::seeded();
    let case = &cases("digits-cnn")[1];
    let input = write_json(device.home(), "image.json", &case["inputs"]["image"]);
    let predict = ["bundle", "predict", app, "-i", &format!("image={input}")];
    let err = device.fails(&predict);
    assert!(err.contains("not trusted here"), "{err}");
    let public = k
        .json(&["key", "list"])
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == key.as_str())
        .expect("the bundler's key is listed")["public"]
        .as_str()
        .unwrap()
        .to_string();
    device.ok(&["key", "trust", &public, "--name", "bundler"]);
    let doc = device.json(&predict);
    assert_eq!(doc["compiled"], false, "{doc}");
    same(
        &doc["outputs"]["probabilities"],
        &case["outputs"]["probabilities"],
        "bundle predict",
    );
    let shown = device.ok(&["bundle", "inspect", app]);
    assert!(
        shown.contains("model    digits version 1 @production"),
        "{shown}"
    );
    // A byte changed anywhere in the precompiled code is caught before anything loads.
    let mut bytes = std::fs::read(app).unwrap();
    let at = bytes.len() - 4096;
    bytes[at] ^= 0x55;
    let tampered = device.home().join("tampered.kiln");
    std::fs::write(&tampered, &bytes).unwrap();
    let tampered = tampered.to_str().unwrap();
    let err = device.fails(&[
        "bundle",
        "predict",
        tampered,
        "-i",
        &format!("image={input}"),
    ]);
    assert!(err.contains("does not match its digest"), "{err}");
    // Something that is no bundle at all.
    let junk = write_json(device.home(), "junk.kiln", &json!({"not": "a bundle"}));
    let err = device.fails(&["bundle", "inspect", &junk]);
    assert!(err.contains("is not a usable bundle"), "{err}");
    // Pulley, wasmtime's interpreter, runs anywhere and answers alike.
    let portable = k.home().join("digits-pulley.kiln");
    let portable = portable.to_str().unwrap();
    k.ok(&[
        "bundle", "model", "digits", "--target", "pulley64", "-o", portable,
    ]);
    let doc = device.json(&[
        "bundle",
        "predict",
        portable,
        "-i",
        &format!("image={input}"),
    ]);
    same(
        &doc["outputs"]["probabilities"],
        &case["outputs"]["probabilities"],
        "pulley bundle predict",
    );
    // Code for another machine verifies here but does not run here.
    let arm = k.home().join("digits-aarch64.kiln");
    let arm = arm.to_str().unwrap();
    let target = "aarch64-unknown-linux-gnu";
    k.ok(&["bundle", "model", "digits", "--target", target, "-o", arm]);
    let shown = device.json(&["bundle", "inspect", arm]);
    assert_eq!(shown["manifest"]["target"], target);
    assert_eq!(shown["runs_here"], false);
    let err = device.fails(&["bundle", "predict", arm, "-i", &format!("image={input}")]);
    assert!(err.contains(&format!("it was built for {target}")), "{err}");
}
