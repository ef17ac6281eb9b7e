//! Every standard plugin, run through `kiln plugin run`, checked against closed-form
//! results and scikit-learn's figures for iris.csv and diabetes.csv.

use kiln_test_artifacts as g;
use serde_json::{Value as J, json};

use crate::{Kiln, close, column, data, data_dir, metric, output, write_json};

/// Reads a shipped dataset with csv-reader, writing its table to `dir`; returns the path.
fn read_dataset(k: &Kiln, dir: &std::path::Path, file: &str) -> String {
    let path = data(file);
    let grant = data_dir();
    let out = dir.join(file);
    let out = out.to_str().unwrap();
    k.ok(&[
        "plugin",
        "run",
        g::CSV_READER,
        "--grant-dir",
        &grant,
        "-c",
        &format!("path={path}"),
        "--out",
        out,
        "--log-level",
        "off",
    ]);
    format!("{out}/table.json")
}

/// Reads iris and standardizes its features, writing to `dir`; returns the table's path.
fn standardized_iris(k: &Kiln, dir: &std::path::Path) -> String {
    let table = read_dataset(k, dir, "iris.csv");
    let out = dir.join("std");
    k.ok(&[
        "plugin",
        "run",
        g::STANDARDIZE,
        "-i",
        &format!("table={table}"),
        "--out",
        out.to_str().unwrap(),
    ]);
    format!("{}/table.json", out.display())
}

fn table_doc(columns: J) -> J {
    json!({"$kiln": "value/1", "kind": "table", "columns": columns})
}

#[test]
fn csv_reader_infers_types_and_missing_values() {
    let k = Kiln::new();
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("t.csv");
    std::fs::write(&csv, "a,b,c,d\n1,2.5,x,true\n2,,y,false\nNA,4,,true\n").unwrap();
    let grant = dir.path().to_str().unwrap();
    let doc = k.json(&[
        "plugin",
        "run",
        g::CSV_READER,
        "--grant-dir",
        grant,
        "-c",
        &format!("path={}", csv.display()),
    ]);
    let t = output(&doc, "table");
    assert_eq!(column(t, "a")["type"], "int64");
    assert_eq!(column(t, "a")["values"], json!([1, 2, null]));
    assert_eq!(column(t, "b")["type"], "float64");
    assert_eq!(column(t, "b")["values"], json!([2.5, null, 4.0]));
    assert_eq!(column(t, "c")["type"], "text");
    assert_eq!(column(t, "c")["values"], json!(["x", "y", null]));
    assert_eq!(column(t, "d")["type"], "boolean");

    let doc = k.json(&[
        "plugin",
        "run",
        g::CSV_READER,
        "--grant-dir",
        grant,
        "-c",
        &format!("path={}", csv.display()),
        "-c",
        "types=a:float64,d:text",
    ]);
    let t = output(&doc, "table");
    assert_eq!(column(t, "a")["type"], "float64");
    assert_eq!(column(t, "d")["values"], json!(["true", "false", "true"]));

    let err = k.fails(&[
        "plugin",
        "run",
        g::CSV_READER,
        "--grant-dir",
        grant,
        "-c",
        &format!("path={}", csv.display()),
        "-c",
        "types=c:int64",
    ]);
    assert!(err.contains("`x` is not a int64"), "{err}");
}

#[test]
fn select_columns_keeps_in_order_and_drops() {
    let k = Kiln::new();
    let dir = tempfile::tempdir().unwrap();
    let table = read_dataset(&k, dir.path(), "iris.csv");
    let doc = k.json(&[
        "plugin",
        "run",
        g::SELECT_COLUMNS,
        "-i",
        &format!("table={table}"),
        "-c",
        "columns=species,sepal_length_cm",
    ]);
    let names: Vec<&J> = output(&doc, "table")["columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| &c["name"])
        .collect();
    assert_eq!(names, ["species", "sepal_length_cm"]);
    let doc = k.json(&[
        "plugin",
        "run",
        g::SELECT_COLUMNS,
        "-i",
        &format!("table={table}"),
        "-c",
        "drop=species",
    ]);
    assert_eq!(
        output(&doc, "table")["columns"].as_array().unwrap().len(),
        4
    );
    let err = k.fails(&[
        "plugin",
        "run",
        g::SELECT_COLUMNS,
        "-i",
        &format!("table={table}"),
        "-c",
        "columns=nope",
    ]);
    assert!(err.contains("no column `nope`"), "{err}");
}

#[test]
fn impute_fills_with_mean_median_and_most_frequent() {
    let k = Kiln::new();
    let dir = tempfile::tempdir().unwrap();
    let t = write_json(
        dir.path(),
        "t.json",
        &table_doc(json!([
            {"name": "x", "type": "float64", "values": [1.0, null, 3.0, 10.0]},
            {"name": "s", "type": "text", "values": ["a", "b", null, "b"]},
        ])),
    );
    let doc = k.json(&[
        "plugin",
        "run",
        g::IMPUTE,
        "-i",
        &format!("table={t}"),
        "-c",
        "columns=x",
    ]);
    assert_eq!(
        column(output(&doc, "table"), "x")["values"],
        json!([1.0, 14.0 / 3.0, 3.0, 10.0])
    );
    let doc = k.json(&[
        "plugin",
        "run",
        g::IMPUTE,
        "-i",
        &format!("table={t}"),
        "-c",
        "columns=x",
        "-c",
        "strategy=median",
    ]);
    assert_eq!(
        column(output(&doc, "table"), "x")["values"],
        json!([1.0, 3.0, 3.0, 10.0])
    );
    let doc = k.json(&[
        "plugin",
        "run",
        g::IMPUTE,
        "-i",
        &format!("table={t}"),
        "-c",
        "strategy=most_frequent",
    ]);
    assert_eq!(
        column(output(&doc, "table"), "s")["values"],
        json!(["a", "b", "b", "b"])
    );
    let err = k.fails(&[
        "plugin",
        "run",
        g::IMPUTE,
        "-i",
        &format!("table={t}"),
        "-c",
        "columns=s",
    ]);
    assert!(err.contains("column `s` is text"), "{err}");
}

#[test]
fn impute_applies_fitted_fills_instead_of_learning() {
    let k = Kiln::new();
    let dir = tempfile::tempdir().unwrap();
    let table = write_json(
        dir.path(),
        "t.json",
        &table_doc(json!([
            {"name": "x", "type": "float64", "values": [null, 2.0]},
            {"name": "n", "type": "int64", "values": [1, null]},
            {"name": "m", "type": "int64", "values": [null, 5]},
            {"name": "s", "type": "text", "values": [null, "b"]},
            {"name": "k", "type": "float64", "values": [null, 1.0]},
        ])),
    );
    // The fills a fit on other rows output: a float turns an int64 column float64 (a mean),
    // an integer keeps it int64 (a most frequent value); `k` is not named, so stays missing.
    let fills = write_json(
        dir.path(),
        "fills.json",
        &json!({"$kiln": "value/1", "kind": "json", "value": {"x": 7.5, "n": 2.5, "m": 4, "s": "a"}}),
    );
    let run = |fills: &str| {
        k.json(&[
            "plugin",
            "run",
            g::IMPUTE,
            "-i",
            &format!("table={table}"),
            "-i",
            &format!("fills={fills}"),
        ])
    };
    let doc = run(&fills);
    let t = output(&doc, "table");
    assert_eq!(column(t, "x")["values"], json!([7.5, 2.0]));
    assert_eq!(column(t, "n")["type"], "float64");
    assert_eq!(column(t, "n")["values"], json!([1.0, 2.5]));
    assert_eq!(column(t, "m")["type"], "int64");
    assert_eq!(column(t, "m")["values"], json!([4, 5]));
    assert_eq!(column(t, "s")["values"], json!(["a", "b"]));
    assert_eq!(column(t, "k")["values"], json!([null, 1.0]));
    assert_eq!(output(&doc, "fills")["value"]["m"], 4);

    for (value, message) in [
        (
            json!({"y": 1.0}),
            "`fills` fills column `y`, which the table does not have",
        ),
        (
            json!({"s": 1.0}),
            "`fills` holds 1.0 for column `s`, which is text",
        ),
    ] {
        let bad = write_json(
            dir.path(),
            "bad.json",
            &json!({"$kiln": "value/1", "kind": "json", "value": value}),
        );
        let err = k.fails(&[
            "plugin",
            "run",
            g::IMPUTE,
            "-i",
            &format!("table={table}"),
            "-i",
            &format!("fills={bad}"),
        ]);
        assert!(err.contains(message), "{err}");
    }
}

#[test]
fn plugin_run_refuses_a_config_key_the_plugin_does_not_declare() {
    let k = Kiln::new();
    let dir = tempfile::tempdir().unwrap();
    let table = read_dataset(&k, dir.path(), "diabetes.csv");
    let err = k.fails(&[
        "plugin",
        "run",
        g::STANDARDIZE,
        "-i",
        &format!("table={table}"),
        "-c",
        "exlude=progression",
    ]);
    assert!(
        err.contains("`standardize` has no config key `exlude` (its keys: columns, exclude)"),
        "{err}"
    );
    // The declared key runs.
    let doc = k.json(&[
        "plugin",
        "run",
        g::STANDARDIZE,
        "-i",
        &format!("table={table}"),
        "-c",
        "exclude=progression",
    ]);
    assert_eq!(
        column(output(&doc, "table"), "progression")["values"][0],
        151.0
    );
}

#[test]
fn standardize_applies_a_fitted_scaler_instead_of_fitting() {
    let k = Kiln::new();
    let dir = tempfile::tempdir().unwrap();
    let table = read_dataset(&k, dir.path(), "diabetes.csv");
    let scaler = crate::write_json(
        dir.path(),
        "scaler.json",
        &json!({"$kiln": "value/1", "kind": "json", "value": {"bmi": {"mean": 20.0, "scale": 2.0}}}),
    );
    let doc = k.json(&[
        "plugin",
        "run",
        g::STANDARDIZE,
        "-i",
        &format!("table={table}"),
        "-i",
        &format!("scaler={scaler}"),
    ]);
    let t = output(&doc, "table");
    // diabetes' first row has bmi 32.1 and age 59: bmi is scaled with the given figures,
    // age (absent from the scaler) is left alone.
    close(column(t, "bmi")["values"][0].as_f64().unwrap(), 6.05, 1e-12);
    assert_eq!(column(t, "age")["values"][0], 59.0);
    assert_eq!(output(&doc, "scaler")["value"]["bmi"]["scale"], 2.0);
}

#[test]
fn standardize_gives_mean_zero_and_unit_population_std() {
    let k = Kiln::new();
    let dir = tempfile::tempdir().unwrap();
    let table = read_dataset(&k, dir.path(), "diabetes.csv");
    let doc = k.json(&[
        "plugin",
        "run",
        g::STANDARDIZE,
        "-i",
        &format!("table={table}"),
        "-c",
        "exclude=progression",
    ]);
    let t = output(&doc, "table");
    for name in ["age", "bmi", "s5"] {
        let v: Vec<f64> = column(t, name)["values"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap())
            .collect();
        let n = v.len() as f64;
        let mean = v.iter().sum::<f64>() / n;
        let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n;
        close(mean, 0.0, 1e-12);
        close(var, 1.0, 1e-12);
    }
    assert_eq!(
        column(t, "progression")["values"][0],
        151.0,
        "excluded column is untouched"
    );
    let scaler: J = output(&doc, "scaler")["value"].clone();
    close(
        scaler["age"]["mean"].as_f64().unwrap(),
        48.518_099_547_511_31,
        1e-9,
    );
}

#[test]
fn train_test_split_is_seeded_and_stratified() {
    let k = Kiln::new();
    let dir = tempfile::tempdir().unwrap();
    let table = read_dataset(&k, dir.path(), "iris.csv");
    let split = |seed: &str| {
        k.json(&[
            "plugin",
            "run",
            g::TRAIN_TEST_SPLIT,
            "-i",
            &format!("table={table}"),
            "-c",
            &format!("seed={seed}"),
            "-c",
            "stratify=species",
            "-c",
            "test_fraction=0.2",
        ])
    };
    let a = split("7");
    let b = split("7");
    let c = split("8");
    assert_eq!(
        output(&a, "test"),
        output(&b, "test"),
        "same seed, same split"
    );
    assert_ne!(
        output(&a, "test"),
        output(&c, "test"),
        "another seed, another split"
    );
    let species = column(output(&a, "test"), "species")["values"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(species.len(), 30);
    for class in ["setosa", "versicolor", "virginica"] {
        assert_eq!(
            species.iter().filter(|s| *s == class).count(),
            10,
            "{class} keeps its share"
        );
    }
    assert_eq!(
        column(output(&a, "train"), "species")["values"]
            .as_array()
            .unwrap()
            .len(),
        120
    );
}

#[test]
fn linear_regression_matches_scikit_learn_on_diabetes() {
    let k = Kiln::new();
    let dir = tempfile::tempdir().unwrap();
    let table = read_dataset(&k, dir.path(), "diabetes.csv");
    let doc = k.json(&[
        "plugin",
        "run",
        g::LINEAR_REGRESSION,
        "-i",
        &format!("table={table}"),
        "-c",
        "target=progression",
    ]);
    // scikit-learn 1.9.1, LinearRegression on all 442 rows (examples/data/README.md).
    close(metric(&doc, "train.r2"), 0.517748, 1e-6);
    let coef = &output(&doc, "coefficients")["value"];
    close(coef["intercept"].as_f64().unwrap(), -334.567139, 1e-5);
    let want = [
        ("age", -0.036361),
        ("sex", -22.859648),
        ("bmi", 5.602962),
        ("bp", 1.116808),
        ("s1", -1.089996),
        ("s2", 0.746450),
        ("s3", 0.372005),
        ("s4", 6.533832),
        ("s5", 68.483125),
        ("s6", 0.280117),
    ];
    for (name, w) in want {
        close(coef["coefficients"][name].as_f64().unwrap(), w, 1e-5);
    }
}

#[test]
fn logistic_regression_matches_scikit_learn_on_iris() {
    let k = Kiln::new();
    let dir = tempfile::tempdir().unwrap();
    let scaled = standardized_iris(&k, dir.path());

    // Multinomial: scikit-learn's training accuracy 0.973333.
    let doc = k.json(&[
        "plugin",
        "run",
        g::LOGISTIC_REGRESSION,
        "-i",
        &format!("table={scaled}"),
        "-c",
        "target=species",
    ]);
    close(metric(&doc, "train.accuracy"), 0.973333, 1e-6);

    // Virginica against the rest. scikit-learn's lbfgs stops at a gradient tolerance of
    // 1e-4; Newton's method reaches the optimum, so the figures agree to about 1e-3.
    let doc = k.json(&[
        "plugin",
        "run",
        g::LOGISTIC_REGRESSION,
        "-i",
        &format!("table={scaled}"),
        "-c",
        "target=species",
        "-c",
        "positive=virginica",
    ]);
    close(metric(&doc, "train.accuracy"), 0.973333, 1e-6);
    let coef = &output(&doc, "coefficients")["value"];
    for (got, want) in coef["coefficients"][0]
        .as_array()
        .unwrap()
        .iter()
        .zip([0.140174, -0.514640, 2.480683, 3.140668])
    {
        close(got.as_f64().unwrap(), want, 1e-3);
    }
    close(coef["intercepts"][0].as_f64().unwrap(), -3.801860, 1e-3);
}

#[test]
fn runner_and_evaluator_score_a_trained_model() {
    let k = Kiln::new();
    let dir = tempfile::tempdir().unwrap();
    let scaled = standardized_iris(&k, dir.path());
    let model_dir = dir.path().join("model");
    k.ok(&[
        "plugin",
        "run",
        g::LOGISTIC_REGRESSION,
        "-i",
        &format!("table={scaled}"),
        "-c",
        "target=species",
        "--out",
        model_dir.to_str().unwrap(),
    ]);
    let model = format!("{}/model.bin", model_dir.display());
    let pred_dir = dir.path().join("pred");
    let doc = k.json(&[
        "plugin",
        "run",
        g::LINEAR_RUNNER,
        "--model",
        &model,
        "-i",
        &format!("features={scaled}"),
        "--out",
        pred_dir.to_str().unwrap(),
    ]);
    let preds = output(&doc, "predictions");
    assert_eq!(column(preds, "prediction")["values"][0], "setosa");
    let p0: f64 = ["setosa", "versicolor", "virginica"]
        .iter()
        .map(|c| {
            column(preds, &format!("proba:{c}"))["values"][0]
                .as_f64()
                .unwrap()
        })
        .sum();
    close(p0, 1.0, 1e-12);

    let preds = format!("{}/predictions.json", pred_dir.display());
    let doc = k.json(&[
        "plugin",
        "run",
        g::EVALUATOR,
        "-i",
        &format!("truth={scaled}"),
        "-i",
        &format!("predictions={preds}"),
        "-c",
        "target=species",
    ]);
    close(metric(&doc, "test.accuracy"), 0.973333, 1e-6);
    let m = &output(&doc, "metrics")["value"];
    assert!(m["f1"].as_f64().unwrap() > 0.97 && m["precision"].as_f64().unwrap() > 0.97);
}

#[test]
fn evaluator_regression_metrics_match_closed_form() {
    let k = Kiln::new();
    let dir = tempfile::tempdir().unwrap();
    let truth = write_json(
        dir.path(),
        "t.json",
        &table_doc(json!([{"name": "y", "type": "float64", "values": [1.0, 2.0, 3.0]}])),
    );
    let preds = write_json(
        dir.path(),
        "p.json",
        &table_doc(json!([{"name": "prediction", "type": "float64", "values": [1.0, 2.0, 5.0]}])),
    );
    let doc = k.json(&[
        "plugin",
        "run",
        g::EVALUATOR,
        "-i",
        &format!("truth={truth}"),
        "-i",
        &format!("predictions={preds}"),
        "-c",
        "target=y",
    ]);
    close(metric(&doc, "test.rmse"), (4.0f64 / 3.0).sqrt(), 1e-12);
    close(metric(&doc, "test.mae"), 2.0 / 3.0, 1e-12);
    close(metric(&doc, "test.r2"), -1.0, 1e-12);
}

#[test]
fn linear_runner_reports_metadata_and_refuses_bad_artifacts() {
    let k = Kiln::new();
    let dir = tempfile::tempdir().unwrap();
    let table = read_dataset(&k, dir.path(), "diabetes.csv");
    let model_dir = dir.path().join("m");
    k.ok(&[
        "plugin",
        "run",
        g::LINEAR_REGRESSION,
        "-i",
        &format!("table={table}"),
        "-c",
        "target=progression",
        "--out",
        model_dir.to_str().unwrap(),
    ]);
    let doc = k.json(&[
        "plugin",
        "run",
        g::LINEAR_RUNNER,
        "--model",
        &format!("{}/model.bin", model_dir.display()),
        "-i",
        &format!("features={table}"),
    ]);
    let first = column(output(&doc, "predictions"), "prediction")["values"][0]
        .as_f64()
        .unwrap();
    // The first row of diabetes.csv under the reference coefficients.
    let row = [59.0, 2.0, 32.1, 101.0, 157.0, 93.2, 38.0, 4.0, 4.8598, 87.0];
    let w = [
        -0.036361, -22.859648, 5.602962, 1.116808, -1.089996, 0.746450, 0.372005, 6.533832,
        68.483125, 0.280117,
    ];
    let want: f64 = -334.567139 + row.iter().zip(w).map(|(x, w)| x * w).sum::<f64>();
    close(first, want, 1e-2);

    let junk = dir.path().join("junk.bin");
    std::fs::write(&junk, b"{\"format\": \"other/9\"}").unwrap();
    let err = k.fails(&[
        "plugin",
        "run",
        g::LINEAR_RUNNER,
        "--model",
        junk.to_str().unwrap(),
        "-i",
        &format!("features={table}"),
    ]);
    assert!(
        err.contains("linear-runner") && err.contains("not a model artifact"),
        "{err}"
    );
}

#[test]
fn schema_validator_passes_good_data_and_blocks_bad() {
    let k = Kiln::new();
    let dir = tempfile::tempdir().unwrap();
    let table = read_dataset(&k, dir.path(), "iris.csv");
    let good = k.json(&[
        "plugin",
        "run",
        g::SCHEMA_VALIDATOR,
        "-i",
        &format!("table={table}"),
        "-c",
        "columns=species,petal_width_cm",
        "-c",
        "types=species:text",
        "-c",
        "ranges=petal_width_cm:0..3",
        "-c",
        "min_rows=150",
    ]);
    let checks = good["checks"].as_array().unwrap();
    assert!(checks.len() >= 9, "{checks:?}");
    assert!(checks.iter().all(|c| c["passed"] == true), "{checks:?}");

    let out = k.run(&[
        "plugin",
        "run",
        g::SCHEMA_VALIDATOR,
        "-i",
        &format!("table={table}"),
        "-c",
        "columns=label",
        "-c",
        "ranges=petal_width_cm:0..2",
        "--json",
    ]);
    assert!(
        !out.status.success(),
        "a failed blocking check must fail the command"
    );
    let doc: J = serde_json::from_slice(&out.stdout).unwrap();
    let range = doc["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "range:petal_width_cm")
        .unwrap();
    assert_eq!(range["passed"], false);
    assert_eq!(range["observed"], 23.0, "iris has 23 petal widths above 2");
    assert!(String::from_utf8_lossy(&out.stderr).contains("column:label"));
}

#[test]
fn perfmap_names_the_functions_of_a_loaded_plugin_for_perf() {
    let k = Kiln::new();
    let run = |perfmap: Option<&str>| {
        let mut cmd = k.cmd();
        cmd.args(["plugin", "inspect", "--json", g::CSV_READER]);
        if let Some(v) = perfmap {
            cmd.env("KILN_PERFMAP", v);
        }
        let child = cmd
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("running kiln");
        let map = std::path::PathBuf::from(format!("/tmp/perf-{}.map", child.id()));
        let out = child.wait_with_output().expect("kiln ends");
        assert!(out.status.success());
        let text = std::fs::read_to_string(&map).ok();
        let _ = std::fs::remove_file(&map);
        text
    };
    let text = run(Some("1")).expect("KILN_PERFMAP=1 writes /tmp/perf-PID.map");
    // Lines are `0xSTART SIZE NAME` (hex), one per compiled function and trampoline.
    let wasm: Vec<&str> = text.lines().filter(|l| l.contains("wasm[0]::")).collect();
    assert!(wasm.len() > 10, "{text}");
    for line in &wasm {
        let parts: Vec<&str> = line.splitn(3, ' ').collect();
        assert!(
            parts[0]
                .strip_prefix("0x")
                .is_some_and(|a| u64::from_str_radix(a, 16).is_ok())
                && u64::from_str_radix(parts[1], 16).is_ok(),
            "{line}"
        );
    }
    assert!(run(None).is_none(), "no map without KILN_PERFMAP");
}

#[test]
fn inspect_reports_role_contract_and_description() {
    let k = Kiln::new();
    for (file, role, name) in [
        (g::CSV_READER, "step", "csv-reader"),
        (g::SCHEMA_VALIDATOR, "validator", "schema-validator"),
        (g::LINEAR_RUNNER, "model-runner", "linear-runner"),
        (g::COUNTING_TRACKER, "tracker", "counting-tracker"),
    ] {
        let doc = k.json(&["plugin", "inspect", file]);
        assert_eq!(doc["role"], role);
        assert_eq!(doc["wit_package"], "kiln:plugin@0.1.0");
        assert_eq!(doc["describe"]["name"], name);
        assert!(doc["exports"].as_array().unwrap().iter().any(|e| {
            e.as_str()
                .unwrap()
                .starts_with(&format!("kiln:plugin/{role}@"))
        }));
        assert!(doc["digest"].as_str().unwrap().starts_with("sha256:"));
    }
    let text = k.ok(&["plugin", "inspect", g::CSV_READER]);
    assert!(
        text.contains("path (required)") && text.contains("role      step"),
        "{text}"
    );
}
