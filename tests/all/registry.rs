//! The registry through the real binary: publishing, resolution, yanking, immutability,
//! signatures, tampering, damaged files, and concurrent or interrupted publishers.

use std::{ops::Not, path::Path, process::Stdio};

use kiln::registry::{Registry, tables};
use kiln_test_artifacts as g;
use redb::{ReadableDatabase, ReadableTable};

use crate::Kiln;

fn root() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

fn manifest(plugin: &str) -> String {
    root()
        .join("plugins")
        .join(plugin)
        .join("kiln.toml")
        .display()
        .to_string()
}

/// A kiln with a signing key, and `plugin`'s component published under its manifest.
fn with_published(plugins: &[(&str, &str)]) -> Kiln {
    let k = Kiln::new();
    k.ok(&["key", "generate"]);
    for (name, wasm) in plugins {
        k.ok(&["publish", wasm, "--manifest", &manifest(name)]);
    }
    k
}

#[test]
fn every_standard_plugin_has_a_valid_manifest_naming_its_directory() {
    for entry in std::fs::read_dir(root().join("plugins")).unwrap().flatten() {
        let dir = entry.path();
        if !dir.join("src/lib.rs").exists()
            || std::fs::read_to_string(dir.join("Cargo.toml"))
                .unwrap()
                .contains("cdylib")
                .not()
        {
            continue; // a support library such as ml-core
        }
        let text = std::fs::read_to_string(dir.join("kiln.toml"))
            .unwrap_or_else(|_| panic!("{} has no kiln.toml", dir.display()));
        let m = kiln::registry::Manifest::parse(&text)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        assert_eq!(
            m.plugin.name,
            entry.file_name().to_string_lossy(),
            "{}",
            dir.display()
        );
    }
}

#[test]
fn publish_resolve_run_yank_and_unyank() {
    let k = with_published(&[("csv-reader", g::CSV_READER)]);
    let info = k.json(&["info", "csv-reader@^0.1"]);
    assert_eq!(info["resolved"]["version"], "0.1.0");
    assert_eq!(
        info["resolved"]["manifest"]["capabilities"]["filesystem"],
        "read"
    );
    let found = k.json(&["search", "CSV", "table"]);
    assert_eq!(found[0]["name"], "csv-reader");
    assert_eq!(
        k.json(&["search", "nothing-like-this"])
            .as_array()
            .unwrap()
            .len(),
        0
    );

    let data = crate::data_dir();
    let iris = crate::data("iris.csv");
    let run = |spec: &str| {
        k.run(&[
            "plugin",
            "run",
            spec,
            "--grant-dir",
            &data,
            "-c",
            &format!("path={iris}"),
            "--json",
        ])
    };
    assert!(run("csv-reader").status.success());
    assert!(run("csv-reader@^0.1").status.success());

    k.ok(&["yank", "csv-reader@0.1.0"]);
    let out = run("csv-reader@^0.1");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("available: 0.1.0 (yanked)"));
    assert!(
        run("csv-reader@=0.1.0").status.success(),
        "an exact pin still gets a yanked version"
    );
    k.ok(&["unyank", "csv-reader@0.1.0"]);
    assert!(run("csv-reader@^0.1").status.success());

    let events = Registry::open(&k.home().join("registry.redb"))
        .unwrap()
        .events()
        .unwrap();
    let kinds: Vec<String> = events.iter().map(|e| format!("{:?}", e.kind)).collect();
    assert_eq!(kinds, ["Publish", "Yank", "Unyank"]);
    let report = k.json(&["registry", "verify"]);
    assert_eq!(report["problems"].as_array().unwrap().len(), 0, "{report}");
}

#[test]
fn versions_are_immutable_and_checked_against_their_manifest() {
    let k = with_published(&[("csv-reader", g::CSV_READER)]);
    // The same bytes again: a no-op.
    k.ok(&[
        "publish",
        g::CSV_READER,
        "--manifest",
        &manifest("csv-reader"),
    ]);
    // Other bytes under the same name and version: refused.
    let err = k.fails(&[
        "publish",
        g::SELECT_COLUMNS,
        "--manifest",
        &manifest("csv-reader"),
    ]);
    assert!(
        err.contains("csv-reader@0.1.0` is already published with other bytes"),
        "{err}"
    );
    // A component that does not implement the declared role: refused before storing.
    let err = k.fails(&[
        "publish",
        g::SCHEMA_VALIDATOR,
        "--manifest",
        &manifest("linear-runner"),
    ]);
    assert!(err.contains("not a model-runner plugin"), "{err}");
    assert!(
        k.fails(&["info", "linear-runner"])
            .contains("no plugin named `linear-runner`")
    );
    // A manifest with a malformed capability: refused.
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("kiln.toml");
    std::fs::write(
        &bad,
        std::fs::read_to_string(manifest("csv-reader"))
            .unwrap()
            .replace("\"read\"", "\"everything\""),
    )
    .unwrap();
    let err = k.fails(&[
        "publish",
        g::CSV_READER,
        "--manifest",
        bad.to_str().unwrap(),
    ]);
    assert!(
        err.contains("capabilities.filesystem `everything`"),
        "{err}"
    );
    let report = k.json(&["registry", "verify"]);
    assert_eq!(report["versions"], 1);
    assert_eq!(report["problems"].as_array().unwrap().len(), 0);
}

#[test]
fn publishing_needs_a_trusted_key() {
    let k = Kiln::new();
    let err = k.fails(&[
        "publish",
        g::CSV_READER,
        "--manifest",
        &manifest("csv-reader"),
    ]);
    assert!(err.contains("kiln key generate"), "{err}");
    // A key made elsewhere, not trusted here.
    let other = Kiln::new();
    other.ok(&["key", "generate", "--name", "stranger"]);
    std::fs::create_dir_all(k.home().join("keys")).unwrap();
    std::fs::copy(
        other.home().join("keys/stranger.key"),
        k.home().join("keys/stranger.key"),
    )
    .unwrap();
    let err = k.fails(&[
        "publish",
        g::CSV_READER,
        "--manifest",
        &manifest("csv-reader"),
        "--key",
        "stranger",
    ]);
    assert!(err.contains("is not trusted by this registry"), "{err}");
}

#[test]
fn tampered_blobs_and_records_are_refused() {
    let k = with_published(&[
        ("csv-reader", g::CSV_READER),
        ("select-columns", g::SELECT_COLUMNS),
    ]);
    let path = k.home().join("registry.redb");
    {
        let reg = Registry::open(&path).unwrap();
        let csv = reg
            .resolve("csv-reader", &semver::VersionReq::STAR)
            .unwrap();
        let sel = reg
            .resolve("select-columns", &semver::VersionReq::STAR)
            .unwrap();
        drop(reg);
        let db = redb::Database::open(&path).unwrap();
        let txn = db.begin_write().unwrap();
        {
            // Flip one byte of csv-reader's component.
            let mut blobs = txn.open_table(tables::BLOBS).unwrap();
            let mut bytes = blobs
                .get(csv.digest.as_str())
                .unwrap()
                .unwrap()
                .value()
                .to_vec();
            let last = bytes.len() - 1;
            bytes[last] ^= 0xff;
            blobs.insert(csv.digest.as_str(), bytes.as_slice()).unwrap();
            // Change select-columns' manifest after it was signed.
            let mut versions = txn.open_table(tables::VERSIONS).unwrap();
            let mut record = sel.clone();
            record.manifest.plugin.description = "something else".into();
            versions
                .insert(
                    "select-columns@0.1.0",
                    serde_json::to_vec(&record).unwrap().as_slice(),
                )
                .unwrap();
        }
        txn.commit().unwrap();
    }
    let err = k.fails(&["plugin", "inspect", "csv-reader"]);
    assert!(
        err.contains("csv-reader@0.1.0` is corrupt") && err.contains("digest"),
        "{err}"
    );
    let err = k.fails(&["plugin", "inspect", "select-columns"]);
    assert!(
        err.contains("signature check failed for `select-columns@0.1.0`"),
        "{err}"
    );
    let out = k.run(&["registry", "verify"]);
    assert!(!out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("PROBLEMS FOUND") && text.contains("corrupt") && text.contains("signature"),
        "{text}"
    );
}

#[test]
fn a_file_without_the_resolution_index_gets_it_rebuilt() {
    let k = with_published(&[("csv-reader", g::CSV_READER)]);
    k.ok(&["yank", "csv-reader@0.1.0"]);
    let path = k.home().join("registry.redb");
    {
        let db = redb::Database::open(&path).unwrap();
        let txn = db.begin_write().unwrap();
        assert!(txn.delete_table(tables::RESOLVE).unwrap());
        txn.commit().unwrap();
    }
    let info = k.json(&["info", "csv-reader@=0.1.0"]);
    assert_eq!(info["resolved"]["yanked"], true);
    assert!(
        k.fails(&["info", "csv-reader@^0.1"])
            .contains("0.1.0 (yanked)")
    );
    let report = k.json(&["registry", "verify"]);
    assert_eq!(report["problems"].as_array().unwrap().len(), 0, "{report}");
}

#[test]
fn damaged_and_newer_registry_files_are_refused_untouched() {
    let k = Kiln::new();
    let path = k.home().join("registry.redb");
    std::fs::write(&path, b"this is not a database").unwrap();
    let err = k.fails(&["search", "x"]);
    assert!(err.contains("is not usable"), "{err}");
    assert!(
        std::fs::read(&path).unwrap() == b"this is not a database",
        "the damaged file is left as it was"
    );

    std::fs::remove_file(&path).unwrap();
    k.ok(&["search", "x"]);
    {
        let db = redb::Database::open(&path).unwrap();
        let txn = db.begin_write().unwrap();
        txn.open_table(tables::META)
            .unwrap()
            .insert("schema_version", "99")
            .unwrap();
        txn.commit().unwrap();
    }
    let err = k.fails(&["search", "x"]);
    assert!(err.contains("written by a newer Kiln (schema 99)"), "{err}");
    {
        let db = redb::Database::open(&path).unwrap();
        let txn = db.begin_read().unwrap();
        let meta = txn.open_table(tables::META).unwrap();
        assert_eq!(
            meta.get("schema_version").unwrap().unwrap().value(),
            "99",
            "the refused file is left as it was"
        );
    }

    // A redb file that is not a Kiln registry.
    let foreign = k.home().join("foreign.redb");
    {
        let db = redb::Database::create(&foreign).unwrap();
        let txn = db.begin_write().unwrap();
        txn.open_table(redb::TableDefinition::<&str, &str>::new("other"))
            .unwrap()
            .insert("a", "b")
            .unwrap();
        txn.commit().unwrap();
    }
    let err = Registry::open(&foreign).err().expect("refused").to_string();
    assert!(err.contains("not a Kiln registry"), "{err}");
}

#[test]
fn concurrent_publishers_lose_nothing() {
    let plugins = [
        ("csv-reader", g::CSV_READER),
        ("select-columns", g::SELECT_COLUMNS),
        ("impute", g::IMPUTE),
        ("standardize", g::STANDARDIZE),
        ("evaluator", g::EVALUATOR),
        ("linear-runner", g::LINEAR_RUNNER),
    ];
    let k = Kiln::new();
    k.ok(&["key", "generate"]);
    // Several processes at once.
    let children: Vec<_> = plugins[..3]
        .iter()
        .map(|(name, wasm)| {
            k.cmd()
                .args(["publish", wasm, "--manifest", &manifest(name)])
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // Several threads of one process, sharing one registry handle.
    let registry = std::sync::Arc::new(Registry::open(&k.home().join("registry.redb")).unwrap());
    let key = kiln::registry::sign::load(&k.home().join("keys/default.key")).unwrap();
    std::thread::scope(|s| {
        for (name, wasm) in &plugins[3..] {
            let (registry, key) = (registry.clone(), key.clone());
            s.spawn(move || {
                let m = kiln::registry::Manifest::parse(
                    &std::fs::read_to_string(manifest(name)).unwrap(),
                )
                .unwrap();
                registry
                    .publish(&m, &std::fs::read(wasm).unwrap(), &key)
                    .unwrap();
            });
        }
    });
    drop(registry);
    let report = k.json(&["registry", "verify"]);
    assert_eq!(report["versions"], plugins.len());
    assert_eq!(report["events"], plugins.len());
    assert_eq!(report["problems"].as_array().unwrap().len(), 0, "{report}");
}

#[test]
fn a_publisher_killed_mid_publish_leaves_a_registry_that_verifies() {
    let args = ["publish", g::LOGISTIC_REGRESSION, "--manifest"];
    let manifest = manifest("logistic-regression");
    // How long a whole publish takes here, with a warm compiled-artifact cache.
    let k = Kiln::new();
    k.ok(&["key", "generate"]);
    k.ok(&["plugin", "inspect", g::LOGISTIC_REGRESSION]);
    let started = std::time::Instant::now();
    let probe = Kiln::new();
    probe.ok(&["key", "generate"]);
    std::fs::create_dir_all(probe.home().join("cache")).unwrap();
    k.cmd()
        .args(args)
        .arg(&manifest)
        .env("KILN_HOME", probe.home())
        .output()
        .unwrap();
    let whole = started.elapsed();
    // Kill at points spread over that time, so some land inside the write transaction.
    let mut outcomes = [0usize; 2];
    for i in 0..16u32 {
        let mut child = k
            .cmd()
            .args(args)
            .arg(&manifest)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(whole.mul_f64(0.4 + 0.05 * f64::from(i)));
        let _ = child.kill(); // SIGKILL
        let _ = child.wait();
        let report = k.json(&["registry", "verify"]);
        assert_eq!(
            report["problems"].as_array().unwrap().len(),
            0,
            "after a kill at step {i}: {report}"
        );
        let versions = report["versions"].as_u64().unwrap();
        assert!(versions <= 1);
        outcomes[versions as usize] += 1;
        if versions == 1 {
            break; // published whole; later kills could only hit the no-op path
        }
    }
    k.ok(&["publish", g::LOGISTIC_REGRESSION, "--manifest", &manifest]);
    assert_eq!(
        k.json(&["info", "logistic-regression"])["resolved"]["version"],
        "0.1.0"
    );
    assert_eq!(
        k.json(&["registry", "verify"])["events"],
        1,
        "one publish, whatever was killed: {outcomes:?}"
    );
}
