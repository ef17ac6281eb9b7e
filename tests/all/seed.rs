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

/// Languages whose toolchains snapshot a heap at build time, so two builds of the same
/// sources differ in a few bytes: the seed records the digest of their sources instead.
const SNAPSHOTTING: &[&str] = &["python", "js"];

/// The sha256 of everything a plugin in `lang` is built from: its project directory, the
/// SDK files staged beside it, and the contract.
fn sources_digest(dir: &Path, lang: &str) -> String {
    fn walk(dir: &Path, base: &Path, skip: &[&str], out: &mut Vec<(String, Vec<u8>)>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let path = e.path();
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') || skip.contains(&name.as_str()) {
                continue;
            }
            if path.is_dir() {
                walk(&path, base, skip, out);
            } else {
                let rel = path
                    .strip_prefix(base)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned();
                out.push((rel, std::fs::read(&path).unwrap()));
            }
        }
    }
    let mut files = Vec::new();
    walk(dir, dir, &["target", "__pycache__"], &mut files);
    let sdk = root().join("sdk").join(lang);
    walk(
        &sdk,
        &root(),
        &["templates", "test", "README.md", "__pycache__"],
        &mut files,
    );
    walk(&root().join("wit"), &root(), &[], &mut files);
    files.sort();
    let mut all = Vec::new();
    for (rel, bytes) in files {
        all.extend_from_slice(rel.as_bytes());
        all.push(0);
        all.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
        all.extend_from_slice(&bytes);
    }
    kiln::digest::sha256_hex(&all)
}

/// The seed this checkout builds: every plugin directory with a kiln.toml, whatever its
/// language (so this test needs the plugin toolchains, as the polyglot tests do). A
/// snapshotting language's shipped component stands while its sources are unchanged.
fn expected(shipped: &SeedIndex) -> (SeedIndex, Vec<(String, Vec<u8>)>) {
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
        let file = format!("plugins/{name}-{version}.wasm");
        let lang = manifest.build.as_ref().map_or("rust", |b| b.lang.as_str());
        let sources = SNAPSHOTTING
            .contains(&lang)
            .then(|| sources_digest(&dir, lang));
        // Rust plugins come from the guest build; the others from `kiln plugin build`.
        let built = match lang {
            "rust" => kiln_test_artifacts::ALL
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, path)| PathBuf::from(path))
                .unwrap_or_else(|| panic!("plugin `{name}` is not built by kiln-test-artifacts")),
            _ => crate::polyglot::built(&name),
        };
        let unchanged = sources.is_some()
            && shipped
                .plugins
                .iter()
                .any(|p| p.name == name && p.version == version && p.sources == sources);
        let bytes = if unchanged {
            std::fs::read(root().join("registry-data").join(&file)).unwrap_or_default()
        } else {
            std::fs::read(built).unwrap()
        };
        plugins.push(SeedEntry {
            name,
            version,
            digest: kiln::digest::sha256_hex(&bytes),
            file: file.clone(),
            manifest,
            sources,
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
    let dir = root().join("registry-data");
    let shipped = read_index(&dir)
        .map(|(index, _)| index)
        .unwrap_or(SeedIndex {
            format: FORMAT.into(),
            plugins: Vec::new(),
        });
    let (want, files) = expected(&shipped);
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
