//! Plugins in Python, JavaScript, C and Go: each builds from source with
//! `kiln plugin build`, passes its role's conformance suite, and runs in a workflow; every
//! language's templates scaffold and build; a missing toolchain says what to install.
//!
//! The toolchains come from `scripts/toolchains.sh` (package registries only), run once per
//! test process; it is idempotent, so a machine that has them skips the installs.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    process::Command,
    sync::{Arc, Mutex, OnceLock},
};

use kiln::{
    bindings::{Column, ColumnData, NamedValue, Table, Value, ValueKind},
    engine::{ArtifactCache, EngineOptions, KilnEngine},
    plugin::{CallOptions, DirGrant, Grants, Plugin, PluginHost},
};
use serde_json::Value as J;

use crate::{Kiln, conformance};

/// The plugins in plugins/ that are not Rust, with their languages.
pub const POLYGLOT: &[(&str, &str)] = &[
    ("onehot", "python"),
    ("drift-check", "python"),
    ("jsonl-report", "js"),
    ("quantile-bin", "c"),
    ("class-balance", "go"),
];

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// PATH with the toolchains in front, installing them on first use.
pub fn toolchain_path() -> &'static str {
    static PATH: OnceLock<String> = OnceLock::new();
    PATH.get_or_init(|| {
        let out = Command::new(root().join("scripts/toolchains.sh"))
            .output()
            .expect("running scripts/toolchains.sh");
        assert!(
            out.status.success(),
            "the plugin toolchains (Python, JavaScript, C, Go) could not be installed by scripts/toolchains.sh; these tests need them:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut dirs: Vec<PathBuf> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(PathBuf::from)
            .collect();
        dirs.extend(std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()));
        std::env::join_paths(dirs)
            .expect("PATH")
            .to_string_lossy()
            .into_owned()
    })
}

/// `kiln plugin build` with the toolchains on PATH.
pub fn build_cmd(k: &Kiln, dir: &Path, out: &Path) -> Command {
    let mut c = k.cmd();
    c.env("PATH", toolchain_path())
        .args(["plugin", "build"])
        .arg(dir)
        .arg("-o")
        .arg(out)
        .arg("--json");
    c
}

/// Builds a project once per test process: a second caller waits for the first build of
/// the same project and shares it; different projects build side by side.
fn build_once(key: &str, dir: &Path) -> (PathBuf, J) {
    type Once = Arc<OnceLock<(PathBuf, J)>>;
    static BUILT: Mutex<BTreeMap<String, Once>> = Mutex::new(BTreeMap::new());
    let once = BUILT
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .entry(key.to_string())
        .or_default()
        .clone();
    once.get_or_init(|| {
        let out_dir = root().join("target/polyglot");
        std::fs::create_dir_all(&out_dir).unwrap();
        let out = out_dir.join(format!("{key}.wasm"));
        let k = Kiln::sharing_code();
        let run = build_cmd(&k, dir, &out)
            .output()
            .expect("kiln plugin build");
        assert!(
            run.status.success(),
            "kiln plugin build {} failed:\n{}",
            dir.display(),
            String::from_utf8_lossy(&run.stderr)
        );
        let report: J = serde_json::from_slice(&run.stdout).expect("build JSON");
        // The time reported is the whole build's: the toolchain's part, then the check.
        let (whole, toolchain) = (&report["build_ms"], &report["toolchain_ms"]);
        assert!(
            whole.as_u64().unwrap() >= toolchain.as_u64().unwrap(),
            "{report}"
        );
        (out, report)
    })
    .clone()
}

/// The component of the project in `dir` (a test guest), built once per test process.
pub fn build_project(key: &str, dir: &Path) -> PathBuf {
    build_once(key, dir).0
}

/// The component of plugins/NAME, built from source.
pub fn built(name: &str) -> PathBuf {
    build_once(name, &root().join("plugins").join(name)).0
}

/// An in-process host that shares the builds' compiled code (`plugin build` compiles what
/// it checks), so each component is compiled once per test run.
fn host() -> PluginHost {
    let engine = KilnEngine::new(&EngineOptions::default()).expect("engine");
    let cache = ArtifactCache::new(engine.engine(), crate::shared_code());
    PluginHost::new(engine, cache).expect("host")
}

fn load(host: &PluginHost, path: &Path) -> Arc<Plugin> {
    host.load_file(path, None).expect("load")
}

fn f64s(name: &str, v: &[f64]) -> Column {
    Column {
        name: name.into(),
        data: ColumnData::Float64(v.to_vec()),
        valid: None,
    }
}

fn texts(name: &str, v: &[&str]) -> Column {
    Column {
        name: name.into(),
        data: ColumnData::Text(v.iter().map(|s| s.to_string()).collect()),
        valid: None,
    }
}

fn table(name: &str, columns: Vec<Column>) -> NamedValue {
    NamedValue {
        name: name.into(),
        value: Value::Table(Table { columns }),
    }
}

fn config(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// A small iris-like table: two numeric columns and the class.
fn flowers() -> Vec<Column> {
    vec![
        f64s("sepal_length", &[5.1, 4.9, 6.3, 5.8, 7.1, 6.5, 5.0, 6.7]),
        f64s("petal_length", &[1.4, 1.4, 6.0, 5.1, 5.9, 4.6, 1.6, 4.4]),
        texts(
            "species",
            &[
                "setosa",
                "setosa",
                "virginica",
                "virginica",
                "virginica",
                "versicolor",
                "setosa",
                "versicolor",
            ],
        ),
    ]
}

/// The normal inputs and config of each polyglot plugin, for its conformance run.
fn subject(host: &PluginHost, name: &str, out_dir: &Path) -> conformance::Subject {
    let plugin = load(host, &built(name));
    let mut opts = CallOptions::default();
    let (inputs, cfg) = match name {
        "onehot" => (
            vec![table("table", flowers())],
            config(&[("columns", "species")]),
        ),
        "drift-check" => (
            vec![
                table("data", flowers()),
                table("reference", flowers()[..2].to_vec()),
            ],
            config(&[]),
        ),
        "quantile-bin" => (vec![table("table", flowers())], config(&[("bins", "3")])),
        "class-balance" => (
            vec![table("table", flowers())],
            config(&[("target", "species")]),
        ),
        "jsonl-report" => {
            let guest = out_dir.display().to_string();
            opts.grants = Grants {
                dirs: vec![DirGrant {
                    host: out_dir.to_path_buf(),
                    guest: guest.clone(),
                    writable: true,
                }],
                env: vec![],
            };
            (vec![], config(&[("dir", &guest)]))
        }
        other => panic!("no conformance inputs for `{other}`"),
    };
    conformance::Subject {
        plugin,
        inputs,
        config: cfg,
        artifact: Vec::new(),
        opts,
    }
}

fn conform(lang: &str) {
    let host = host();
    let out = tempfile::tempdir().unwrap();
    for (name, l) in POLYGLOT.iter().filter(|(_, l)| *l == lang) {
        let (_, report) = build_once(name, &root().join("plugins").join(name));
        assert_eq!(report["lang"], *l, "{report}");
        assert_eq!(report["describe"]["name"], *name, "{report}");
        conformance::run(&subject(&host, name, out.path()));
    }
}

#[test]
fn python_plugins_build_from_source_and_conform() {
    conform("python");
}

#[test]
fn js_plugins_build_from_source_and_conform() {
    conform("js");
}

#[test]
fn c_plugins_build_from_source_and_conform() {
    conform("c");
}

#[test]
fn go_plugins_build_from_source_and_conform() {
    conform("go");
}

/// The SDKs' own unit tests: the JavaScript SDK's in Node with the host stubbed, the Go
/// SDK's with `go test` in a built plugin's staging directory, beside the plugin's own.
#[test]
fn the_sdks_unit_tests_pass() {
    let mut node = Command::new("node");
    node.current_dir(root()).args([
        "--import",
        "./sdk/js/test/register.mjs",
        "--test",
        "sdk/js/test/kiln.test.mjs",
    ]);
    let text = passes(&mut node, "node --test (Node.js 20 or newer)");
    assert!(
        text.contains("# fail 0") && !text.contains("# pass 0"),
        "{text}"
    );

    let dir = root().join("plugins/class-balance");
    build_once("class-balance", &dir);
    let mut go = Command::new("go");
    go.current_dir(dir.join("target/kiln/src"))
        .env("PATH", toolchain_path())
        .envs([
            ("GOPROXY", "off"),
            ("GOFLAGS", "-mod=mod"),
            ("GOTOOLCHAIN", "local"),
            ("GOWORK", "off"),
        ])
        .args(["test", "./..."]);
    let text = passes(&mut go, "go test");
    assert!(
        text.contains("ok  \twit_component/kiln"),
        "the SDK's tests did not run:\n{text}"
    );
    assert!(
        text.contains("ok  \twit_component\t"),
        "the plugin's tests did not run:\n{text}"
    );
}

/// Runs `cmd`, asserting it succeeds; its standard output.
fn passes(cmd: &mut Command, what: &str) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{what}:\n{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

/// `kiln plugin new` for every language and role, then `kiln plugin build`: each template
/// builds, implements its role, and passes the conformance suite. The languages build side
/// by side (each its own toolchain), their roles one after another.
#[test]
fn every_template_scaffolds_builds_and_conforms() {
    let work = tempfile::tempdir().unwrap();
    let host = host();
    let k = Kiln::sharing_code();
    std::thread::scope(|s| {
        let langs: Vec<_> = ["python", "js", "c", "go", "rust"]
            .into_iter()
            .map(|lang| {
                let (work, host, k) = (work.path(), &host, &k);
                s.spawn(move || {
                    for role in ["step", "validator", "model-runner", "tracker"] {
                        template_conforms(work, host, k, lang, role);
                    }
                })
            })
            .collect();
        // Every language finishes; the first failure is the test's.
        let failures: Vec<_> = langs.into_iter().filter_map(|h| h.join().err()).collect();
        if let Some(first) = failures.into_iter().next() {
            std::panic::resume_unwind(first);
        }
    });
}

/// Scaffolds `my-LANG-ROLE` in `work`, builds it, and runs the conformance suite on it.
fn template_conforms(work: &Path, host: &PluginHost, k: &Kiln, lang: &str, role: &str) {
    let name = format!("my-{lang}-{role}");
    let dir = work.join(&name);
    let out = k
        .cmd()
        .args([
            "plugin", "new", &name, "--lang", lang, "--role", role, "--dir",
        ])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "kiln plugin new {name}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let manifest = std::fs::read_to_string(dir.join("kiln.toml")).unwrap();
    assert!(
        manifest.contains(&format!("lang = \"{lang}\"")),
        "{manifest}"
    );
    // Rust templates share one target directory: the SDK compiles once.
    let wasm = dir.join("target").join(format!("{name}.wasm"));
    let mut build = build_cmd(k, &dir, &wasm);
    build.env("CARGO_TARGET_DIR", work.join("rust-target"));
    let run = build.output().unwrap();
    assert!(
        run.status.success(),
        "kiln plugin build {name}:\n{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let report: J = serde_json::from_slice(&run.stdout).unwrap();
    assert_eq!(report["role"], role, "{report}");
    assert_eq!(report["describe"]["name"], name.as_str(), "{report}");
    let plugin = load(host, &wasm);
    conformance::run(&template_subject(plugin, lang, role));
}

/// Normal inputs for the templates: one value for each input they declare (in their
/// descriptor, or a model's metadata), a tensor or the flowers table by kind; and the
/// artifact the model runners read.
fn template_subject(plugin: Arc<Plugin>, lang: &str, role: &str) -> conformance::Subject {
    let opts = CallOptions::default();
    // The JavaScript runner is a linear model over named columns; the others predict a
    // constant read from the artifact.
    let artifact = match role {
        "model-runner" if lang == "js" => {
            br#"{"features": ["sepal_length", "petal_length"], "weights": [0.5, -1], "bias": 2}"#
                .to_vec()
        }
        "model-runner" => b"2.5".to_vec(),
        _ => vec![],
    };
    let ports = if role == "model-runner" {
        let mut model = plugin
            .load_model(&artifact, &Vec::new(), &opts)
            .expect("load");
        model.metadata().expect("metadata").inputs
    } else {
        plugin.describe(&opts).expect("describe").inputs
    };
    let inputs = ports
        .iter()
        .filter(|port| !port.optional)
        .map(|port| match port.kind {
            ValueKind::Tensor => NamedValue {
                name: port.name.clone(),
                value: Value::Tensor(kiln::bindings::Tensor {
                    dtype: kiln::bindings::Dtype::Float64,
                    shape: vec![3],
                    data: [1.0f64, 2.0, 3.0]
                        .iter()
                        .flat_map(|v| v.to_le_bytes())
                        .collect(),
                }),
            },
            ValueKind::Table => table(&port.name, flowers()),
            other => panic!("{lang} {role} template: no test value for a {other:?} input"),
        })
        .collect();
    conformance::Subject {
        plugin,
        inputs,
        config: vec![],
        artifact,
        opts,
    }
}

/// `scripts/toolchains.sh LANG` sets up one language's toolchain and prints only its
/// directories; Rust needs none (cargo and the target come from rust-toolchain.toml); an
/// unknown language is refused.
#[test]
fn the_toolchain_script_takes_one_language() {
    toolchain_path(); // everything installed once, as the other tests need it
    let script = root().join("scripts/toolchains.sh");
    let printed = |args: &[&str]| {
        let out = Command::new(&script).args(args).output().unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(PathBuf::from)
            .collect::<Vec<_>>()
    };
    let python = printed(&["--no-cargo", "python"]);
    assert_eq!(python.len(), 1, "{python:?}");
    assert!(python[0].join("componentize-py").exists(), "{python:?}");
    let js = printed(&["--no-cargo", "js"]);
    assert_eq!(js.len(), 1, "{js:?}");
    assert!(js[0].join("componentize-js").exists(), "{js:?}");
    let go = printed(&["--no-cargo", "go"]);
    assert!(go.iter().any(|d| d.join("go").exists()), "{go:?}");
    assert!(printed(&["rust"]).is_empty());
    let out = Command::new(&script).arg("cobol").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("python"));
}

/// Without its toolchain, a build names the package to install, and writes nothing.
#[test]
fn a_missing_toolchain_names_what_to_install() {
    let work = tempfile::tempdir().unwrap();
    let k = Kiln::new();
    for (lang, tool, install) in [
        ("python", "componentize-py", "pip install componentize-py=="),
        (
            "js",
            "componentize-js",
            "npm install -g @bytecodealliance/componentize-js@",
        ),
        ("c", "wit-bindgen", "cargo install wit-bindgen-cli@"),
        ("go", "wit-bindgen", "cargo install wit-bindgen-cli@"),
    ] {
        let dir = work.path().join(lang);
        k.ok(&[
            "plugin",
            "new",
            "probe",
            "--lang",
            lang,
            "--role",
            "step",
            "--dir",
            dir.to_str().unwrap(),
        ]);
        let out = k
            .cmd()
            .env("PATH", work.path().join("empty"))
            .args(["plugin", "build"])
            .arg(&dir)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{lang}: built without a toolchain");
        assert!(
            err.contains(&format!("`{tool}` is not on PATH")) && err.contains(install),
            "{lang}: {err}"
        );
        assert!(
            err.contains(&format!("`scripts/toolchains.sh {lang}`")),
            "{lang}: {err}"
        );
        assert!(
            !dir.join("target/probe.wasm").exists(),
            "{lang}: wrote a component"
        );
    }
}

/// A project whose code implements another role than its manifest says is refused, with
/// both roles named; so is a project without a language.
#[test]
fn a_build_is_checked_against_the_manifest() {
    let work = tempfile::tempdir().unwrap();
    let k = Kiln::new();
    let dir = work.path().join("liar");
    k.ok(&[
        "plugin",
        "new",
        "liar",
        "--lang",
        "c",
        "--role",
        "step",
        "--dir",
        dir.to_str().unwrap(),
    ]);
    let manifest = dir.join("kiln.toml");
    let text = std::fs::read_to_string(&manifest).unwrap();
    std::fs::write(
        &manifest,
        text.replace("role = \"step\"", "role = \"validator\""),
    )
    .unwrap();
    let out = build_cmd(&k, &dir, &dir.join("target/liar.wasm"))
        .output()
        .unwrap();
    assert!(!out.status.success(), "a step passed as a validator");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("validator"), "{err}");

    std::fs::write(&manifest, text.replace("[build]\nlang = \"c\"\n", "")).unwrap();
    let out = build_cmd(&k, &dir, &dir.join("target/liar.wasm"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("has no [build] section"), "{err}");
    assert!(
        !k.run(&[
            "plugin",
            "new",
            "liar",
            "--lang",
            "c",
            "--role",
            "step",
            "--dir",
            dir.to_str().unwrap()
        ])
        .status
        .success(),
        "scaffolded over an existing project"
    );
}

/// The five-language workflow (tests/workflows/polyglot), from the registry seed: the
/// JavaScript tracker's JSON-lines and HTML report hold the run as it happened.
#[test]
fn the_polyglot_workflow_runs_from_the_seed_and_reports() {
    let k = Kiln::seeded();
    let work = k.home().join("work");
    std::fs::create_dir_all(work.join("out")).unwrap();
    std::fs::copy(
        root().join("tests/workflows/polyglot/workflow.yaml"),
        work.join("workflow.yaml"),
    )
    .unwrap();
    std::os::unix::fs::symlink(root().join("examples"), work.join("examples")).unwrap();
    let out = k
        .cmd()
        .current_dir(&work)
        .args(["run", "workflow.yaml", "--json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let run: J = serde_json::from_slice(&out.stdout).unwrap();
    let id = run["id"].as_str().expect("run id");
    assert_eq!(run["status"], "succeeded");
    let evaluate = run["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == "evaluate")
        .expect("the evaluate step");
    let accuracy = evaluate["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["key"] == "test.accuracy")
        .and_then(|m| m["value"].as_f64())
        .unwrap_or_else(|| panic!("no accuracy in {evaluate}"));
    assert!(accuracy > 0.9, "accuracy {accuracy}");

    let lines = std::fs::read_to_string(work.join("out").join(format!("{id}.jsonl")))
        .expect("the tracker wrote out/RUN.jsonl");
    let events: Vec<J> = lines
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    assert!(
        events.iter().all(|e| e["run"] == id),
        "every line names the run"
    );
    assert_eq!(events.first().unwrap()["type"], "run-started");
    let last = events.last().unwrap();
    assert_eq!(last["type"], "run-finished", "{last}");
    assert_eq!(last["status"], "ok", "{last}");
    let metric = events
        .iter()
        .find(|e| e["type"] == "metric" && e["key"] == "evaluate.test.accuracy")
        .expect("the accuracy metric was reported");
    assert!((metric["value"].as_f64().unwrap() - accuracy).abs() < 1e-12);
    for step in ["balance", "drift", "bin-train", "encode-test", "train"] {
        assert!(
            events
                .iter()
                .any(|e| e["type"] == "tag" && e["key"] == format!("{step}.status")),
            "no status for {step}: {lines}"
        );
    }
    let html = std::fs::read_to_string(work.join("out").join(format!("{id}.html")))
        .expect("the tracker wrote out/RUN.html at the end of the run");
    assert!(html.contains("evaluate.test.accuracy"), "{html}");
    assert!(html.contains("class=\"status\">ok"), "{html}");
}

/// A Python plugin importing a module that is not there fails to build with
/// componentize-py's own words, not a stack trace, even under `RUST_BACKTRACE=1`.
#[test]
fn a_python_build_error_is_shown_as_the_toolchain_said_it() {
    let work = tempfile::tempdir().unwrap();
    let k = Kiln::new();
    let dir = work.path().join("broken");
    k.ok(&[
        "plugin",
        "new",
        "broken",
        "--lang",
        "python",
        "--role",
        "step",
        "--dir",
        dir.to_str().unwrap(),
    ]);
    let app = dir.join("app.py");
    let text = std::fs::read_to_string(&app).unwrap();
    std::fs::write(&app, format!("import no_such_module\n{text}")).unwrap();
    let out = build_cmd(&k, &dir, &work.path().join("broken.wasm"))
        .env("RUST_BACKTRACE", "1")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("ModuleNotFoundError: No module named 'no_such_module'"),
        "{err}"
    );
    assert!(
        !err.contains("stack backtrace") && !err.contains("Py_RunMain"),
        "{err}"
    );
}
