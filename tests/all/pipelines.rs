//! Inference pipelines: a version registered with `register.serve` is everything serving
//! needs. The quickstart, served raw rows from the dataset's own file, answers what
//! scikit-learn's StandardScaler + LinearRegression answers when fitted on the same
//! training rows (computed here, in the scikit-learn venv); its signature is the raw
//! columns, and a request that does not match it is refused naming each column; the proof
//! made at registration is shown; a fitted value changed in the store is refused at load.

use std::{path::Path, process::Command};

use redb::ReadableTable as _;

use serde_json::{Value as J, json};

use crate::{Kiln, Server, serving::all_close};

const MODEL: &str = "diabetes-progression";

/// The file's rows as (column names, rows of numbers).
fn read_csv(path: &str) -> (Vec<String>, Vec<Vec<f64>>) {
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines = text.lines();
    let names = lines
        .next()
        .unwrap()
        .split(',')
        .map(str::to_string)
        .collect();
    let rows = lines
        .filter(|l| !l.is_empty())
        .map(|l| l.split(',').map(|x| x.parse().unwrap()).collect())
        .collect();
    (names, rows)
}

/// The features of the file's rows: every column but the target, and the target's values.
fn features(names: &[String], rows: &[Vec<f64>]) -> (Vec<String>, Vec<Vec<f64>>, Vec<f64>) {
    let target = names.iter().position(|n| n == "progression").unwrap();
    let features = names
        .iter()
        .filter(|n| *n != "progression")
        .cloned()
        .collect();
    let values = rows
        .iter()
        .map(|r| {
            r.iter()
                .enumerate()
                .filter(|(j, _)| *j != target)
                .map(|(_, x)| *x)
                .collect()
        })
        .collect();
    (features, values, rows.iter().map(|r| r[target]).collect())
}

/// Rows as JSON records.
fn records(features: &[String], rows: &[Vec<f64>]) -> Vec<J> {
    rows.iter()
        .map(|r| {
            J::Object(
                features
                    .iter()
                    .zip(r)
                    .map(|(f, x)| (f.clone(), json!(x)))
                    .collect(),
            )
        })
        .collect()
}

/// The quickstart's predictions for `records`, through Kiln's own route.
fn served(s: &Server, records: &[J]) -> Vec<f64> {
    let (status, doc) = s.send_json(
        "POST",
        &format!("/v1/models/{MODEL}/candidate/predict"),
        None,
        &json!({ "rows": records }),
    );
    assert_eq!(status, 200, "{doc}");
    doc["outputs"]["predictions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["prediction"].as_f64().unwrap())
        .collect()
}

/// A table value document (`kiln runs get`) as CSV text.
fn table_csv(doc: &J) -> String {
    let columns = doc["columns"].as_array().unwrap();
    let mut out = columns
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect::<Vec<_>>()
        .join(",");
    let rows = columns[0]["values"].as_array().unwrap().len();
    for r in 0..rows {
        out.push('\n');
        let cells: Vec<String> = columns
            .iter()
            .map(|c| match &c["values"][r] {
                J::Null => String::new(),
                J::String(text) => text.clone(),
                number => number.as_f64().unwrap().to_string(),
            })
            .collect();
        out.push_str(&cells.join(","));
    }
    out.push('\n');
    out
}

/// The training rows the run's split made (`split.train`), as a CSV file in the kiln's home.
fn training_rows(k: &Kiln, run: &str) -> std::path::PathBuf {
    let train: J = serde_json::from_str(&k.ok(&["runs", "get", run, "split.train"])).unwrap();
    let path = k.home().join("train.csv");
    std::fs::write(&path, table_csv(&train)).unwrap();
    path
}

/// This directory's test files: the reference script, the iris copy and its workflow.
fn pipelines_dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/pipelines")
}

/// scikit-learn's answer for `rows_csv`, a `kind` pipeline fitted on `train_csv`.
fn reference(kind: &str, train_csv: &Path, rows_csv: &str, target: &str) -> J {
    let out = Command::new(crate::onnx::sklearn_python())
        .arg(pipelines_dir().join("sklearn_reference.py"))
        .args([kind, train_csv.to_str().unwrap(), rows_csv, target])
        .output()
        .expect("running the scikit-learn reference");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// scikit-learn's predictions for `rows_csv`, fitted on `train_csv`.
fn sklearn(train_csv: &Path, rows_csv: &str) -> Vec<f64> {
    serde_json::from_value(reference("regression", train_csv, rows_csv, "progression")).unwrap()
}

#[test]
fn the_quickstart_serves_raw_rows_as_scikit_learn_does() {
    let k = Kiln::new();
    let run = crate::serving::run(&k, &crate::serving::quickstart(&k, 42));

    // scikit-learn's pipeline, fitted on the training rows Kiln's split made.
    let train_csv = training_rows(&k, &run);
    let file = crate::data("diabetes.csv");
    let want = sklearn(&train_csv, &file);

    // Every row of the file, in its own units, through the served pipeline.
    let (names, rows) = read_csv(&file);
    let (features, values, truth) = features(&names, &rows);
    let raw = records(&features, &values);
    assert_eq!(raw.len(), 442);
    let s = Server::start(&k, None);
    let got = served(&s, &raw);
    all_close(&got, &want, 1e-6);
    // The file's first patient: progression 151 a year on; the model says 205.3 (the README).
    assert_eq!(truth[0], 151.0);
    assert!((got[0] - 205.3).abs() < 0.05, "{}", got[0]);

    // The same rows as one FP64 tensor over the Open Inference Protocol, in the
    // signature's column order; the metadata names those columns and the output.
    let (status, meta) = s.json("GET", &format!("/v2/models/{MODEL}"), None, None);
    assert_eq!(status, 200, "{meta}");
    let inputs: Vec<&str> = meta["inputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["name"].as_str().unwrap())
        .collect();
    assert_eq!(inputs, features, "{meta}");
    assert_eq!(meta["outputs"][0]["name"], "prediction", "{meta}");
    let matrix = &values[..5];
    let (status, doc) = s.send_json(
        "POST",
        &format!("/v2/models/{MODEL}/versions/candidate/infer"),
        None,
        &json!({"inputs": [{"name": "rows", "datatype": "FP64", "shape": [5, 10], "data": matrix}]}),
    );
    assert_eq!(status, 200, "{doc}");
    let oip: Vec<f64> = doc["outputs"][0]["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect();
    all_close(&oip, &want[..5], 1e-6);

    // Without a version, /v1 serves what /v2 serves (no `production` alias: the latest).
    let one = json!({ "rows": [raw[0].clone()] });
    let (status, doc) = s.send_json("POST", &format!("/v1/models/{MODEL}/predict"), None, &one);
    assert_eq!((status, doc["version"].as_u64()), (200, Some(1)), "{doc}");

    // A request that does not match the signature is refused, naming each column.
    let mut bad = raw[0].as_object().unwrap().clone();
    bad.remove("bmi");
    bad.insert("agee".into(), bad["age"].clone());
    bad.remove("age");
    bad.insert("progression".into(), json!(151.0));
    bad.insert("s1".into(), json!("157"));
    let (status, doc) = s.send_json(
        "POST",
        &format!("/v1/models/{MODEL}/candidate/predict"),
        None,
        &json!({ "rows": [bad] }),
    );
    assert_eq!(
        (status, doc["error"]["code"].as_str()),
        (400, Some("invalid_input")),
        "{doc}"
    );
    let message = doc["error"]["message"].as_str().unwrap();
    for part in [
        "missing column `bmi`",
        "unexpected column `agee` (did you mean `age`?)",
        "unexpected column `progression`",
        "column `s1` holds text; the model takes float64",
    ] {
        assert!(message.contains(part), "{part}: {message}");
    }
    drop(s);

    // A workflow step that predicts with the registered version runs the whole pipeline.
    let dir = k.home().join("score");
    std::fs::create_dir_all(dir.join("data")).unwrap();
    std::fs::copy(&file, dir.join("data/diabetes.csv")).unwrap();
    let score = dir.join("score.yaml");
    std::fs::write(
        &score,
        format!(
            "name: score\nsteps:\n  read:\n    uses: csv-reader@^0.1\n    with: {{ path: data/diabetes.csv }}\n    grants: {{ dirs: [data] }}\n  features:\n    uses: select-columns@^0.1\n    inputs: {{ table: read.table }}\n    with: {{ drop: progression }}\n  score:\n    uses: models:/{MODEL}@candidate\n    inputs: {{ features: features.table }}\n"
        ),
    )
    .unwrap();
    let scored = crate::serving::run(&k, &score);
    let doc: J =
        serde_json::from_str(&k.ok(&["runs", "get", &scored, "score.predictions"])).unwrap();
    let column: Vec<f64> = doc["columns"][0]["values"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect();
    all_close(&column, &want, 1e-6);

    // What was registered: the pipeline, its fitted scaler, the proof and the signature.
    let show = k.ok(&["model", "show", MODEL]);
    assert!(
        show.contains("pipeline   scale-test (standardize@0.2.1) → predict (linear-runner@0.1.2)"),
        "{show}"
    );
    assert!(
        show.contains("fitted     scale-test.scaler ← scale-train.scaler"),
        "{show}"
    );
    assert!(
        show.contains("proved     on 88 rows of split.test"),
        "{show}"
    );
    let doc = k.json(&["model", "show", MODEL]);
    let pipeline = &doc["versions"][0]["pipeline"];
    let columns: Vec<&str> = pipeline["columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(columns, features, "{pipeline}");
    assert_eq!(pipeline["proof"]["rows"], 88, "{pipeline}");
}

#[test]
fn a_fitted_value_changed_in_the_store_is_refused_at_load() {
    let k = Kiln::new();
    crate::serving::run(&k, &crate::serving::quickstart(&k, 42));
    let doc = k.json(&["model", "show", MODEL]);
    let scaler = doc["versions"][0]["pipeline"]["stages"][0]["fitted"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    // Rewrite the stored scaler in place, as a disk fault or a hand would: same digest,
    // other figures.
    {
        const OBJECTS: redb::TableDefinition<&str, &[u8]> = redb::TableDefinition::new("objects");
        let db = redb::Database::open(k.home().join("tracking.redb")).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let mut objects = txn.open_table(OBJECTS).unwrap();
            let mut bytes = objects
                .get(scaler.as_str())
                .unwrap()
                .unwrap()
                .value()
                .to_vec();
            let at = bytes
                .windows(6)
                .position(|w| w == b"\"mean\"")
                .expect("the scaler is stored inline, its JSON as text");
            bytes[at + 1..at + 5].copy_from_slice(b"maen");
            objects.insert(scaler.as_str(), bytes.as_slice()).unwrap();
        }
        txn.commit().unwrap();
    }
    let s = Server::start(&k, None);
    let (status, doc) = s.send_json(
        "POST",
        &format!("/v1/models/{MODEL}/candidate/predict"),
        None,
        &json!({"rows": [{"age": 59.0, "sex": 2.0, "bmi": 32.1, "bp": 101.0, "s1": 157.0, "s2": 93.2, "s3": 38.0, "s4": 4.0, "s5": 4.8598, "s6": 87.0}]}),
    );
    assert_eq!(status, 503, "{doc}");
    let message = doc["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("scale-test") && message.contains("is damaged"),
        "{message}"
    );
}

#[test]
fn kiln_model_serve_answers_mlflow_s_scoring_protocol_with_json_and_csv() {
    let k = Kiln::new();
    crate::serving::run(&k, &crate::serving::quickstart(&k, 42));
    let file = crate::data("diabetes.csv");
    let (names, rows) = read_csv(&file);
    let (features, rows, _) = features(&names, &rows[..6]);
    // The same rows as CSV, a header first, as `kiln model predict -i` and `text/csv` take.
    let mut csv = features
        .iter()
        .map(|f| f.as_str())
        .collect::<Vec<_>>()
        .join(",");
    for r in &rows {
        csv.push('\n');
        csv.push_str(&r.iter().map(f64::to_string).collect::<Vec<_>>().join(","));
    }
    csv.push('\n');
    let csv_file = k.home().join("rows.csv");
    std::fs::write(&csv_file, &csv).unwrap();

    // What Kiln's own route answers: the reference for every MLflow form below.
    let mut cmd = k.cmd();
    cmd.args([
        "model",
        "serve",
        &format!("{MODEL}@candidate"),
        "--addr",
        "127.0.0.1:0",
    ]);
    let s = Server::spawn(cmd);
    let records = records(&features, &rows);
    let want = served(&s, &records);
    let numbers = |doc: &J| -> Vec<f64> {
        doc["predictions"]
            .as_array()
            .unwrap_or_else(|| panic!("{doc}"))
            .iter()
            .map(|x| x.as_f64().unwrap())
            .collect()
    };

    for path in ["/ping", "/health"] {
        let (status, _) = s.call("GET", path, None, None);
        assert_eq!(status, 200, "{path}");
    }
    let (status, version) = s.call("GET", "/version", None, None);
    assert_eq!(status, 200);
    assert!(!version.is_empty());
    let columns: serde_json::Map<String, J> = features
        .iter()
        .enumerate()
        .map(|(j, f)| {
            (
                (*f).clone(),
                json!(rows.iter().map(|r| r[j]).collect::<Vec<_>>()),
            )
        })
        .collect();
    for body in [
        json!({"dataframe_split": {"columns": features, "data": rows}}),
        json!({"dataframe_records": records}),
        json!({"instances": records}),
        json!({"instances": rows}),
        json!({"inputs": columns}),
    ] {
        let (status, doc) = s.send_json("POST", "/invocations", None, &body);
        assert_eq!(status, 200, "{body}: {doc}");
        all_close(&numbers(&doc), &want, 1e-12);
    }
    let csv_post = |body: &str| -> (u16, J) {
        let (status, _, bytes) = s.send(
            "POST",
            "/invocations",
            &[("Content-Type", "text/csv")],
            Some(body.as_bytes().to_vec()),
        );
        (status, serde_json::from_slice(&bytes).unwrap())
    };
    let (status, doc) = csv_post(&csv);
    assert_eq!(status, 200, "{doc}");
    all_close(&numbers(&doc), &want, 1e-12);
    // Without a column: refused as MLflow refuses, naming it.
    let short: String = csv
        .lines()
        .map(|l| l.split_once(',').unwrap().1.to_string() + "\n")
        .collect();
    let (status, doc) = csv_post(&short);
    assert_eq!(
        (status, doc["error_code"].as_str()),
        (400, Some("BAD_REQUEST")),
        "{doc}"
    );
    assert!(
        doc["message"]
            .as_str()
            .unwrap()
            .contains("missing column `age`"),
        "{doc}"
    );
    drop(s);

    // The CLI reads the CSV file as the version's one input.
    let doc = k.json(&[
        "model",
        "predict",
        &format!("{MODEL}@candidate"),
        "-i",
        csv_file.to_str().unwrap(),
    ]);
    let got: Vec<f64> = doc["outputs"]["predictions"]["columns"][0]["values"]
        .as_array()
        .unwrap_or_else(|| panic!("{doc}"))
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect();
    all_close(&got, &want, 1e-12);
    // So does `kiln plugin run`, for a table input.
    let doc = k.json(&[
        "plugin",
        "run",
        kiln_test_artifacts::SELECT_COLUMNS,
        "-i",
        &format!("table={}", csv_file.to_str().unwrap()),
        "-c",
        "columns=bmi,age",
    ]);
    let table = crate::output(&doc, "table");
    assert_eq!(table["columns"][0]["name"], "bmi", "{doc}");
    assert_eq!(
        table["columns"][1]["values"][0].as_f64(),
        Some(59.0),
        "{doc}"
    );
}

/// The iris copy's rows as JSON records without the label: an empty cell is null, `site`
/// text, every other column a number.
fn iris_records(path: &Path) -> (Vec<J>, Vec<String>) {
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines = text.lines();
    let names: Vec<&str> = lines.next().unwrap().split(',').collect();
    let mut records = Vec::new();
    let mut labels = Vec::new();
    for line in lines.filter(|l| !l.is_empty()) {
        let mut record = serde_json::Map::new();
        for (name, cell) in names.iter().zip(line.split(',')) {
            match *name {
                "species" => labels.push(cell.to_string()),
                "site" => drop(record.insert(name.to_string(), json!(cell))),
                _ if cell.is_empty() => drop(record.insert(name.to_string(), J::Null)),
                _ => drop(record.insert(name.to_string(), json!(cell.parse::<f64>().unwrap()))),
            }
        }
        records.push(J::Object(record));
    }
    (records, labels)
}

#[test]
fn an_iris_classification_pipeline_serves_raw_rows_as_scikit_learn_does() {
    let k = Kiln::new();
    // The workflow and the data in a scratch directory (a run writes the lock beside it).
    let dir = k.home().join("iris");
    std::fs::create_dir_all(dir.join("data")).unwrap();
    let file = dir.join("data/iris-mixed.csv");
    std::fs::copy(pipelines_dir().join("iris-mixed.csv"), &file).unwrap();
    let workflow = dir.join("iris.yaml");
    std::fs::copy(pipelines_dir().join("iris.yaml"), &workflow).unwrap();
    let run = crate::serving::run(&k, &workflow);

    // scikit-learn's impute + standardize + onehot + logistic regression, fitted on the
    // training rows Kiln's split made, asked about every row of the file, and about its
    // first row again from a site the training rows never saw (encoded as zeros by both).
    let train_csv = training_rows(&k, &run);
    let text = std::fs::read_to_string(&file).unwrap();
    let first = text.lines().nth(1).unwrap().replace(",north,", ",nowhere,");
    assert!(first.contains("nowhere"), "{first}");
    let rows_csv = k.home().join("iris-rows.csv");
    std::fs::write(&rows_csv, format!("{text}{first}\n")).unwrap();
    let want = reference(
        "classification",
        &train_csv,
        rows_csv.to_str().unwrap(),
        "species",
    );

    let (records, truth) = iris_records(&rows_csv);
    assert_eq!(records.len(), 151);
    assert!(
        records
            .iter()
            .any(|r| r.as_object().unwrap().values().any(J::is_null)),
        "the copy has missing measurements"
    );
    let s = Server::start(&k, None);
    let (status, doc) = s.send_json(
        "POST",
        "/v1/models/iris-species/candidate/predict",
        None,
        &json!({ "rows": records }),
    );
    assert_eq!(status, 200, "{doc}");
    let rows = doc["outputs"]["predictions"].as_array().unwrap();
    let labels: Vec<&str> = rows
        .iter()
        .map(|r| r["prediction"].as_str().unwrap())
        .collect();
    let want_labels: Vec<&str> = want["labels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap())
        .collect();
    assert_eq!(labels, want_labels);
    for (j, class) in want["classes"].as_array().unwrap().iter().enumerate() {
        let got: Vec<f64> = rows
            .iter()
            .map(|r| {
                r[format!("proba:{}", class.as_str().unwrap())]
                    .as_f64()
                    .unwrap()
            })
            .collect();
        let expected: Vec<f64> = want["proba"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p[j].as_f64().unwrap())
            .collect();
        all_close(&got, &expected, 1e-6);
    }
    let right = labels.iter().zip(&truth).filter(|(l, t)| *l == t).count();
    assert!(right >= 135, "{right} of 151 right");

    // The signature is the raw columns, the label left out; /v2 names them in file order.
    let (status, meta) = s.json("GET", "/v2/models/iris-species", None, None);
    assert_eq!(status, 200, "{meta}");
    let inputs: Vec<(&str, &str)> = meta["inputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| (i["name"].as_str().unwrap(), i["datatype"].as_str().unwrap()))
        .collect();
    assert_eq!(
        inputs.iter().map(|i| i.0).collect::<Vec<_>>(),
        [
            "sepal_length_cm",
            "sepal_width_cm",
            "petal_length_cm",
            "petal_width_cm",
            "site"
        ],
        "{meta}"
    );
    drop(s);
    let show = k.ok(&["model", "show", "iris-species"]);
    assert!(
        show.contains(
            "impute-test (impute@0.2.0) → scale-test (standardize@0.2.1) → encode-test (onehot@0.1.0) → predict (linear-runner@0.1.2)"
        ),
        "{show}"
    );
}

#[test]
fn a_version_keeps_serving_the_plugins_it_pinned_after_a_new_one_is_published() {
    let k = Kiln::new();
    crate::serving::run(&k, &crate::serving::quickstart(&k, 42));
    let file = crate::data("diabetes.csv");
    let (names, rows) = read_csv(&file);
    let (features, values, _) = features(&names, &rows[..8]);
    let raw = records(&features, &values);
    let before = served(&Server::start(&k, None), &raw);

    // A newer standardize is published (a different component: impute's, under the name)
    // and the registered one is yanked: a new run would resolve ^0.2 to the newer one, the
    // registered version not.
    k.ok(&["key", "generate"]);
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let text = std::fs::read_to_string(root.join("plugins/standardize/kiln.toml")).unwrap();
    let pinned = kiln::registry::Manifest::parse(&text)
        .unwrap()
        .plugin
        .version;
    let mut newer = semver::Version::parse(&pinned).unwrap();
    newer.patch += 100;
    let text: String = text
        .replace(
            &format!("version = \"{pinned}\""),
            &format!("version = \"{newer}\""),
        )
        .lines()
        .filter(|l| !l.starts_with("component"))
        .map(|l| format!("{l}\n"))
        .collect();
    let manifest = k.home().join("standardize.toml");
    std::fs::write(&manifest, text).unwrap();
    k.ok(&[
        "publish",
        kiln_test_artifacts::IMPUTE,
        "--manifest",
        manifest.to_str().unwrap(),
    ]);
    k.ok(&["yank", &format!("standardize@{pinned}")]);
    let info = k.ok(&["info", "standardize@^0.2"]);
    assert!(info.contains(&newer.to_string()), "{info}");

    let after = served(&Server::start(&k, None), &raw);
    assert_eq!(
        after, before,
        "the same digests answer the same, bit for bit"
    );
    let show = k.ok(&["model", "show", MODEL]);
    assert!(
        show.contains(&format!("scale-test (standardize@{pinned})")),
        "{show}"
    );
}

#[test]
fn mlflow_s_scoring_client_gets_from_kiln_model_serve_what_mlflow_models_serve_answers() {
    let k = Kiln::new();
    let run = crate::serving::run(&k, &crate::serving::quickstart(&k, 42));
    let train_csv = training_rows(&k, &run);

    let mut cmd = k.cmd();
    cmd.args([
        "model",
        "serve",
        &format!("{MODEL}@candidate"),
        "--addr",
        "127.0.0.1:0",
    ]);
    let s = Server::spawn(cmd);
    // The same training rows fitted by scikit-learn, saved by mlflow.sklearn and served by
    // `mlflow models serve`; both servers asked by MLflow's ScoringServerClient and by CSV.
    let out = Command::new(crate::mlflow::mlflow_python())
        .arg(pipelines_dir().join("mlflow_scoring.py"))
        .args([
            train_csv.to_str().unwrap(),
            &crate::data("diabetes.csv"),
            "progression",
            &s.url,
            k.home().to_str().unwrap(),
        ])
        .output()
        .expect("running the MLflow scoring client");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: J = serde_json::from_slice(&out.stdout).unwrap();
    let series = |key: &str| -> Vec<f64> { serde_json::from_value(doc[key].clone()).unwrap() };
    let mlflow = series("mlflow");
    assert_eq!(mlflow.len(), 442);
    all_close(&series("kiln"), &mlflow, 1e-6);
    all_close(&series("kiln_csv"), &series("mlflow_csv"), 1e-6);
    all_close(&series("mlflow_csv"), &mlflow, 1e-12);
}
