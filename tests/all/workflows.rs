//! Data-driven workflow cases: each directory of `tests/workflows/` holds a
//! `workflow.yaml` and a `case.toml` saying what `kiln run` must do with it (see
//! `tests/workflows/README.md`). Each case runs in a scratch copy of its directory, beside
//! `examples/` (the datasets) and `guests/` (the test guests), with the standard plugins
//! from the registry seed.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    sync::{
        Mutex,
        atomic::{AtomicUsize, Ordering},
    },
};

use serde::Deserialize;
use serde_json::Value as J;

use crate::Kiln;
use kiln_test_artifacts as g;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    /// Extra arguments for `kiln run`.
    #[serde(default)]
    args: Vec<String>,
    /// The exit code: 0 (succeeded), 1 (a step failed) or 2 (invalid; nothing ran).
    exit: i32,
    /// Texts that must appear in stderr (for an invalid workflow) or in the run's output.
    #[serde(default)]
    expect: Vec<String>,
    /// Each step's final status.
    #[serde(default)]
    steps: BTreeMap<String, String>,
    /// Metrics, `step.key` → value (to 1e-6).
    #[serde(default)]
    metrics: BTreeMap<String, f64>,
    /// Attempts per step (retries).
    #[serde(default)]
    attempts: BTreeMap<String, u32>,
    /// The registered model and version, as `name@version`.
    #[serde(default)]
    registered: Option<String>,
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the host crate sits in the repository")
        .to_path_buf()
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}

/// Runs one case; returns a description of what went wrong, if anything.
fn check_case(dir: &Path) -> Result<(), String> {
    let case: Case = toml::from_str(
        &std::fs::read_to_string(dir.join("case.toml")).map_err(|e| format!("case.toml: {e}"))?,
    )
    .map_err(|e| format!("case.toml: {e}"))?;
    let scratch = tempfile::tempdir().unwrap();
    let work = scratch.path().join("case");
    copy_dir(dir, &work);
    let guests = Path::new(g::HOSTILE).parent().unwrap();
    std::os::unix::fs::symlink(guests, work.join("guests")).unwrap();
    std::os::unix::fs::symlink(repo().join("examples"), work.join("examples")).unwrap();

    let k = Kiln::seeded();
    let kiln = |args: &[&str]| {
        k.cmd()
            .current_dir(&work)
            .args(args)
            .output()
            .expect("running kiln")
    };
    let mut args = vec!["run", "workflow.yaml"];
    args.extend(case.args.iter().map(String::as_str));
    let out = kiln(&args);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let context = || format!("\n--- stdout\n{stdout}\n--- stderr\n{stderr}");
    if out.status.code() != Some(case.exit) {
        return Err(format!(
            "exit {:?}, expected {}{}",
            out.status.code(),
            case.exit,
            context()
        ));
    }
    let all = format!("{stdout}\n{stderr}");
    for text in &case.expect {
        if !all.contains(text.as_str()) {
            return Err(format!("expected text not found: {text:?}{}", context()));
        }
    }
    if case.exit == 2 {
        let runs = kiln(&["runs", "list", "--json"]);
        let list: J = serde_json::from_slice(&runs.stdout).map_err(|e| e.to_string())?;
        return match list.as_array().map(Vec::len) {
            Some(0) => Ok(()),
            _ => Err(format!("an invalid workflow recorded a run: {list}")),
        };
    }
    let runs: J = serde_json::from_slice(&kiln(&["runs", "list", "--json"]).stdout)
        .map_err(|e| e.to_string())?;
    let id = runs[0]["id"].as_str().ok_or("no run recorded")?.to_string();
    let show = kiln(&["runs", "show", &id, "--json"]);
    let run: J = serde_json::from_slice(&show.stdout).map_err(|e| e.to_string())?;
    let step = |name: &str| {
        run["steps"]
            .as_array()
            .and_then(|s| s.iter().find(|s| s["id"] == name))
            .cloned()
            .ok_or_else(|| format!("no step `{name}` in the run"))
    };
    for (name, want) in &case.steps {
        let s = step(name)?;
        let got = s["status"].as_str().unwrap_or_default();
        let got = if got == "succeeded" { "ok" } else { got };
        if got != want {
            return Err(format!(
                "step `{name}` is {got}, expected {want}{}",
                context()
            ));
        }
    }
    for (name, want) in &case.attempts {
        let got = step(name)?["attempts"].as_u64().unwrap_or_default();
        if got != u64::from(*want) {
            return Err(format!(
                "step `{name}` made {got} attempts, expected {want}"
            ));
        }
    }
    for (key, want) in &case.metrics {
        let (name, metric) = key.split_once('.').ok_or("metric keys are step.key")?;
        let s = step(name)?;
        let got = s["metrics"]
            .as_array()
            .and_then(|m| m.iter().find(|m| m["key"] == metric))
            .and_then(|m| m["value"].as_f64())
            .ok_or_else(|| format!("no metric `{key}`"))?;
        if (got - want).abs() > 1e-6 {
            return Err(format!("metric `{key}` is {got}, expected {want}"));
        }
    }
    if let Some(want) = &case.registered {
        let r = &run["registered"];
        let got = format!("{}@{}", r["model"].as_str().unwrap_or("-"), r["version"]);
        if &got != want {
            return Err(format!("registered {got}, expected {want}"));
        }
    }
    // Expected outputs: `expected/<step>.<output>.json`, value documents.
    if let Ok(entries) = std::fs::read_dir(dir.join("expected")) {
        for e in entries {
            let e = e.unwrap();
            let file = e.file_name().to_string_lossy().into_owned();
            let output = file.trim_end_matches(".json");
            let want: J = serde_json::from_slice(&std::fs::read(e.path()).unwrap())
                .map_err(|e| e.to_string())?;
            let got = kiln(&["runs", "get", &id, output]);
            let got: J = serde_json::from_slice(&got.stdout)
                .map_err(|e| format!("{output}: {e}: {}", String::from_utf8_lossy(&got.stderr)))?;
            if got != want {
                return Err(format!("output {output} is\n{got}\nexpected\n{want}"));
            }
        }
    }
    // A succeeded run, run again, comes entirely from the cache.
    if case.exit == 0 {
        let again = kiln(&args);
        let text = String::from_utf8_lossy(&again.stdout);
        let n = run["steps"].as_array().map_or(0, Vec::len);
        if !again.status.success() || !text.contains(&format!("0 ran, {n} cached")) {
            return Err(format!("the re-run was not fully cached:\n{text}"));
        }
    }
    Ok(())
}

#[test]
fn every_workflow_case_behaves_as_its_case_file_says() {
    let root = repo().join("tests/workflows");
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("case.toml").exists())
        .collect();
    dirs.sort();
    assert!(dirs.len() >= 12, "cases went missing: {dirs:?}");
    // Four cases at a time: each is its own data directory and scratch copy, and most of a
    // case's time is spent waiting (a deadline, a retry's backoff, a subprocess).
    let next = AtomicUsize::new(0);
    let failures = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                while let Some(d) = dirs.get(next.fetch_add(1, Ordering::Relaxed)) {
                    if let Err(e) = check_case(d) {
                        let case = d.file_name().unwrap().to_string_lossy();
                        failures.lock().unwrap().push(format!("case {case}: {e}"));
                    }
                }
            });
        }
    });
    let mut failures = failures.into_inner().unwrap();
    failures.sort();
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// A scratch copy of a case directory, with `examples/` and `guests/` beside it, and a
/// `kiln` that runs there with the registry seed.
struct Scratch {
    _dir: tempfile::TempDir,
    work: PathBuf,
    kiln: Kiln,
}

impl Scratch {
    fn new(case: &str) -> Scratch {
        let dir = tempfile::tempdir().unwrap();
        let work = dir.path().join("case");
        copy_dir(&repo().join("tests/workflows").join(case), &work);
        std::os::unix::fs::symlink(Path::new(g::HOSTILE).parent().unwrap(), work.join("guests"))
            .unwrap();
        // A private copy of the datasets, so a test may change them.
        copy_dir(&repo().join("examples/data"), &work.join("examples/data"));
        Scratch {
            _dir: dir,
            work,
            kiln: Kiln::seeded(),
        }
    }

    fn run(&self, args: &[&str]) -> std::process::Output {
        self.kiln
            .cmd()
            .current_dir(&self.work)
            .args(args)
            .output()
            .expect("running kiln")
    }

    /// `kiln run workflow.yaml ARGS --json`: the run record.
    fn run_json(&self, args: &[&str]) -> (i32, J) {
        let mut all = vec!["run", "workflow.yaml", "--json"];
        all.extend(args);
        let out = self.run(&all);
        let doc = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
        (out.status.code().unwrap_or(-1), doc)
    }

    fn edit(&self, file: &str, from: &str, to: &str) {
        let path = self.work.join(file);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains(from), "{file} has no `{from}`");
        std::fs::write(&path, text.replacen(from, to, 1)).unwrap();
    }
}

fn statuses(run: &J) -> Vec<(String, String)> {
    run["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["id"].as_str().unwrap().to_string(),
                s["status"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn status_of(run: &J, step: &str) -> String {
    statuses(run)
        .into_iter()
        .find(|(id, _)| id == step)
        .map(|(_, s)| s)
        .unwrap_or_else(|| panic!("no step {step}"))
}

#[test]
fn changing_one_steps_config_reruns_only_what_depends_on_it() {
    let s = Scratch::new("regression");
    let (code, first) = s.run_json(&[]);
    assert_eq!(code, 0, "{first}");
    assert!(statuses(&first).iter().all(|(_, st)| st == "succeeded"));

    s.edit(
        "workflow.yaml",
        "with: { target: progression }",
        "with: { target: progression, fit_intercept: false }",
    );
    let (_, second) = s.run_json(&[]);
    for step in ["read", "check", "split"] {
        assert_eq!(status_of(&second, step), "cached", "{step}");
    }
    for step in ["train", "predict", "evaluate"] {
        assert_eq!(status_of(&second, step), "succeeded", "{step}");
    }

    // A changed dataset invalidates the step that reads it, and what follows.
    s.edit(
        "examples/data/diabetes.csv",
        "59.0,2.0,32.1",
        "59.0,2.0,32.2",
    );
    let (_, third) = s.run_json(&[]);
    assert_eq!(status_of(&third, "read"), "succeeded");
    assert_ne!(
        third["steps"][0]["outputs"][0]["digest"],
        first["steps"][0]["outputs"][0]["digest"]
    );

    // --no-cache runs every step.
    let (_, forced) = s.run_json(&["--no-cache"]);
    assert!(
        statuses(&forced).iter().all(|(_, st)| st == "succeeded"),
        "{forced}"
    );
}

#[test]
fn the_lockfile_pins_every_plugin_and_locked_refuses_a_change() {
    let s = Scratch::new("regression");
    let (code, _) = s.run_json(&[]);
    assert_eq!(code, 0);
    let lock = std::fs::read_to_string(s.work.join("workflow.lock")).unwrap();
    for p in [
        "csv-reader",
        "schema-validator",
        "train-test-split",
        "linear-regression",
        "linear-runner",
        "evaluator",
    ] {
        assert!(
            lock.contains(&format!("name = \"{p}\"")),
            "{p} missing:\n{lock}"
        );
    }
    assert_eq!(lock.matches("digest = \"sha256:").count(), 6, "{lock}");
    // Unchanged, --locked runs.
    let (code, _) = s.run_json(&["--locked"]);
    assert_eq!(code, 0);
    // A new requirement is a change the lockfile does not hold.
    s.edit(
        "workflow.yaml",
        "uses: train-test-split@^0.1",
        "uses: train-test-split@0.1",
    );
    let out = s.run(&["run", "workflow.yaml", "--locked"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("workflow.lock is missing plugins or would change (--locked)"),
        "{err}"
    );
    assert_eq!(
        std::fs::read_to_string(s.work.join("workflow.lock")).unwrap(),
        lock,
        "--locked must not write"
    );
    // A lockfile whose digest disagrees with the registry is refused, naming both.
    let tampered = lock.replacen("digest = \"sha256:", "digest = \"sha256:00", 1);
    std::fs::write(s.work.join("workflow.lock"), &tampered).unwrap();
    let out = s.run(&["run", "workflow.yaml"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("the lockfile pins"), "{err}");

    // A newer evaluator in the registry: the run keeps to the pin and says so, with the
    // command that moves to it; `--update` does, and then there is nothing to say.
    s.edit(
        "workflow.yaml",
        "uses: train-test-split@0.1",
        "uses: train-test-split@^0.1",
    );
    std::fs::write(s.work.join("workflow.lock"), &lock).unwrap();
    let manifest = std::fs::read_to_string(repo().join("plugins/evaluator/kiln.toml"))
        .unwrap()
        .replacen("version = \"0.1.0\"", "version = \"0.1.99\"", 1);
    assert!(manifest.contains("0.1.99"), "{manifest}");
    std::fs::write(s.work.join("evaluator.toml"), manifest).unwrap();
    assert!(s.run(&["key", "generate"]).status.success());
    let published = s.run(&["publish", g::EVALUATOR, "--manifest", "evaluator.toml"]);
    assert!(
        published.status.success(),
        "{}",
        String::from_utf8_lossy(&published.stderr)
    );
    let out = s.run(&["run", "workflow.yaml"]);
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("workflow.lock pins evaluator@0.1.0; the registry has 0.1.99"),
        "{err}"
    );
    assert!(err.contains("kiln run --update workflow.yaml"), "{err}");
    assert_eq!(
        std::fs::read_to_string(s.work.join("workflow.lock")).unwrap(),
        lock,
        "a run keeps to the pin"
    );
    let out = s.run(&["run", "workflow.yaml", "--update"]);
    assert!(out.status.success());
    assert!(
        std::fs::read_to_string(s.work.join("workflow.lock"))
            .unwrap()
            .contains("version = \"0.1.99\""),
        "--update moves the pin"
    );
    let out = s.run(&["run", "workflow.yaml"]);
    assert!(!String::from_utf8_lossy(&out.stderr).contains("pins evaluator"));
}

#[test]
fn replay_reports_step_by_step_whether_the_outputs_match() {
    let s = Scratch::new("regression");
    let (code, run) = s.run_json(&["--deterministic"]);
    assert_eq!(code, 0);
    let id = run["id"].as_str().unwrap();
    let out = s.run(&["replay", id]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(text.matches("match (").count(), 6, "{text}");
    assert!(text.contains("every output digest matches"), "{text}");
    // The recorded run is replayed from its record: changed data shows as a difference.
    s.edit(
        "examples/data/diabetes.csv",
        "59.0,2.0,32.1",
        "59.0,2.0,32.2",
    );
    let out = s.run(&["replay", &id[..12], "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let doc: J = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["reproduced"], false);
    let read = &doc["steps"][0]["result"];
    assert!(
        read.as_str().unwrap().starts_with("DIFFERS: table: "),
        "{doc}"
    );
    // Replays are runs too, marked as such.
    let runs: J = serde_json::from_slice(&s.run(&["runs", "list", "--json"]).stdout).unwrap();
    assert_eq!(runs.as_array().unwrap().len(), 3);
    assert_eq!(runs[1]["replay_of"], id);
}

#[test]
fn deterministic_mode_fixes_random_sources_and_clocks() {
    let s = Scratch::new("trap");
    s.edit("workflow.yaml", "mode: trap", "mode: entropy");
    let digest = |args: &[&str]| {
        let (code, run) = s.run_json(args);
        assert_eq!(code, 0, "{run}");
        run["steps"][0]["outputs"][0]["digest"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let a = digest(&["--no-cache", "--deterministic"]);
    let b = digest(&["--no-cache", "--deterministic"]);
    assert_eq!(a, b, "deterministic runs must agree");
    let c = digest(&["--no-cache"]);
    let d = digest(&["--no-cache"]);
    assert_ne!(c, d, "without deterministic mode the entropy differs");
    assert_ne!(a, c);
}

#[test]
fn kiln_demo_runs_the_quickstart_end_to_end_and_registers_the_model() {
    let k = Kiln::seeded();
    let demo = || k.cmd().arg("demo").output().expect("kiln demo");
    let out = demo();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("evaluate.test.r2 = 0.550964"), "{text}");
    assert!(
        text.contains("registered diabetes-progression version 1"),
        "{text}"
    );
    assert!(text.contains("8 ran, 0 cached"), "{text}");
    assert!(text.contains("where to look next"), "{text}");
    // The quickstart and its data were written where the user can see them.
    assert!(k.home().join("demo/quickstart.yaml").is_file());
    assert!(k.home().join("demo/quickstart.lock").is_file());
    let again = demo();
    let text = String::from_utf8_lossy(&again.stdout);
    assert!(text.contains("0 ran, 8 cached"), "{text}");
    assert!(text.contains("nothing new registered"), "{text}");
    // Each workflow run is also a tracked run, in the experiment named after the workflow.
    let store = kiln::tracking::Store::open(k.home()).unwrap();
    let experiment = store.experiment_by_name("diabetes-progression").unwrap();
    let tracked = store.tracked_runs(&[experiment.experiment_id]).unwrap();
    assert_eq!(tracked.len(), 2);
    let first = &tracked[1];
    assert_eq!(first.info.status, "FINISHED");
    assert_eq!(first.params["split.test_fraction"], "0.2");
    assert!((first.metrics["evaluate.test.r2"].value - 0.550964).abs() < 1e-6);
    assert_eq!(first.tags["kiln.registered"], "diabetes-progression/1");
    assert_eq!(
        store
            .metric_history(&first.info.run_id, "train.train.rmse")
            .unwrap()
            .len(),
        1
    );
    drop(store);
    let models: J = serde_json::from_slice(&k.run(&["model", "list", "--json"]).stdout).unwrap();
    assert_eq!(models[0]["name"], "diabetes-progression");
    assert_eq!(models[0]["latest"], 1);
    assert_eq!(models[0]["aliases"]["candidate"], 1);

    // Aliases from the CLI: set, trace, roll back; a missing version is refused.
    let m = "diabetes-progression";
    let out = k.ok(&["model", "alias", "set", m, "production", "1"]);
    assert!(out.contains("production → version 1"), "{out}");
    let err = k.fails(&["model", "alias", "set", m, "production", "7"]);
    assert!(err.contains("has no version 7"), "{err}");
    k.ok(&["model", "alias", "delete", m, "production"]);
    let history: J = serde_json::from_slice(
        &k.run(&["model", "alias", "history", m, "production", "--json"])
            .stdout,
    )
    .unwrap();
    assert_eq!(history.as_array().unwrap().len(), 2, "{history}");
    assert_eq!(history[1]["version"], J::Null);
    let out = k.ok(&["model", "alias", "rollback", m, "production"]);
    assert!(out.contains("rolled back to version 1"), "{out}");
    let text = k.ok(&["model", "alias", "history", m]);
    assert_eq!(text.lines().count(), 4, "{text}");
}
