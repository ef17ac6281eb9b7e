//! The registry seed in `registry-data/`: it matches what `plugins/` builds, a fresh data
//! directory imports it on first use, and a tampered seed is refused.
//!
//! `KILN_BLESS=1 cargo test --release --test all seed` rewrites the seed from this
//! checkout's build (then commit `registry-data/`).

use std::path::{Path, PathBuf};

use kiln::registry::{
    Manifest,
    seed::{FORMAT, SeedEntry, SeedIndex, read_index},
};

use crate::Kiln;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The seed this checkout builds: every plugin directory with a kiln.toml.
fn expected() -> (SeedIndex, Vec<(String, Vec<u8>)>) {
    let mut plugins = Vec::new();
    let mut files = Vec::new();
    let mut dirs: Vec<_> = std::fs::read_dir(root().join("plugins"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    dirs.sort();
    for dir in dirs {
        let Ok(text) = std::fs::read_to_string(dir.join("kiln.toml")) else {
            continue;
        };
        let mut manifest = Manifest::parse(&text).unwrap();
        manifest.plugin.component = None;
        let name = manifest.plugin.name.clone();
        let version = manifest.plugin.version.clone();
        let built = kiln_test_artifacts::ALL
            .iter()
            .find(|(n, _)| *n == name)
            .unwrap_or_else(|| panic!("plugin `{name}` is not built by kiln-test-artifacts"));
        let bytes = std::fs::read(built.1).unwrap();
        let file = format!("plugins/{name}-{version}.wasm");
        plugins.push(SeedEntry {
            name,
            version,
            digest: kiln::digest::sha256_hex(&bytes),
            file: file.clone(),
            manifest,
        });
        files.push((file, bytes));
    }
    (
        SeedIndex {
            format: FORMAT.into(),
            plugins,
        },
        files,
    )
}

#[test]
fn the_seed_matches_what_plugins_build() {
    let (want, files) = expected();
    let dir = root().join("registry-data");
    if std::env::var_os("KILN_BLESS").is_some() {
        let _ = std::fs::remove_dir_all(dir.join("plugins"));
        std::fs::create_dir_all(dir.join("plugins")).unwrap();
        for (file, bytes) in &files {
            std::fs::write(dir.join(file), bytes).unwrap();
        }
        std::fs::write(
            dir.join("index.json"),
            serde_json::to_string_pretty(&want).unwrap() + "\n",
        )
        .unwrap();
    }
    let refresh = "refresh it with `KILN_BLESS=1 cargo test --release --test all seed` and commit registry-data/";
    let (have, _) = read_index(&dir).unwrap_or_else(|e| panic!("{e}; {refresh}"));
    for (w, h) in want.plugins.iter().zip(&have.plugins) {
        assert_eq!(
            w, h,
            "the seed's entry for `{}` is stale; {refresh}",
            w.name
        );
    }
    assert_eq!(
        want.plugins.len(),
        have.plugins.len(),
        "the seed lists other plugins than plugins/ holds; {refresh}"
    );
    for (file, bytes) in &files {
        let shipped = std::fs::read(dir.join(file)).unwrap_or_default();
        assert!(
            shipped == *bytes,
            "registry-data/{file} differs from the build; {refresh}"
        );
    }
}

#[test]
fn a_fresh_data_directory_imports_the_seed_once_and_it_verifies() {
    let k = Kiln::new();
    let seed = root().join("registry-data");
    let run = |args: &[&str]| {
        let out = k.cmd().args(args).env("KILN_SEED", &seed).output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        (
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (found, note) = run(&["search", "--json"]);
    let found: serde_json::Value = serde_json::from_str(&found).unwrap();
    let (index, _) = read_index(&seed).unwrap();
    assert_eq!(found.as_array().unwrap().len(), index.plugins.len());
    assert!(
        note.contains(&format!(
            "imported {} standard plugins",
            index.plugins.len()
        )),
        "{note}"
    );

    let (_, note) = run(&["search", "csv"]);
    assert!(!note.contains("imported"), "imported only once: {note}");
    let (report, _) = run(&["registry", "verify", "--json"]);
    let report: serde_json::Value = serde_json::from_str(&report).unwrap();
    assert_eq!(report["problems"].as_array().unwrap().len(), 0, "{report}");
    assert_eq!(report["versions"], index.plugins.len());

    let data = crate::data_dir();
    let (out, _) = run(&[
        "plugin",
        "run",
        "csv-reader@^0.1",
        "--grant-dir",
        &data,
        "-c",
        &format!("path={}", crate::data("iris.csv")),
        "--json",
    ]);
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        crate::column(crate::output(&doc, "table"), "species")["values"]
            .as_array()
            .unwrap()
            .len(),
        150
    );
}

#[test]
fn a_tampered_seed_is_refused() {
    let seed = tempfile::tempdir().unwrap();
    let src = root().join("registry-data");
    std::fs::create_dir_all(seed.path().join("plugins")).unwrap();
    std::fs::copy(src.join("index.json"), seed.path().join("index.json")).unwrap();
    let (index, _) = read_index(&src).unwrap();
    for e in &index.plugins {
        std::fs::copy(src.join(&e.file), seed.path().join(&e.file)).unwrap();
    }
    let victim = seed.path().join(&index.plugins[0].file);
    let mut bytes = std::fs::read(&victim).unwrap();
    bytes[100] ^= 1;
    std::fs::write(&victim, bytes).unwrap();
    let k = Kiln::new();
    let out = k
        .cmd()
        .args(["search", "x"])
        .env("KILN_SEED", seed.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("importing the plugin seed") && err.contains("the index says"),
        "{err}"
    );
}
