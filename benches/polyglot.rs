//! Cold start per language: one plugin in each of Rust, Python, JavaScript, C and Go.
//!
//! Run with `cargo bench --bench polyglot` (it builds the non-Rust plugins from source
//! with `kiln plugin build`, installing the toolchains with scripts/toolchains.sh). For each
//! it prints a Markdown row:
//! - the component's size;
//! - the first load: compiling it with Cranelift into an empty compiled-artifact cache;
//! - the cached load: a new host loading it from the filled cache (the ratio first/cached
//!   is the figure the cache exists for);
//! - instantiate: a fresh instance in a fresh store, as every call gets (p50 and p99);
//! - call: instantiate plus one real call of its role on a small table (p50).

use std::{
    path::{Path, PathBuf},
    process::Command,
    sync::Arc,
    time::{Duration, Instant},
};

use kiln::{
    bindings::{Column, ColumnData, Event, Metric, NamedValue, Table, Value},
    engine::{ArtifactCache, CacheOutcome, EngineOptions, KilnEngine},
    plugin::{CallOptions, DirGrant, Grants, Plugin, PluginHost, Role},
};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn host(cache_dir: &Path) -> PluginHost {
    let engine = KilnEngine::new(&EngineOptions::default()).expect("engine");
    let cache = ArtifactCache::new(engine.engine(), cache_dir);
    PluginHost::new(engine, cache).expect("host")
}

/// PATH with the toolchains in front.
fn toolchain_path() -> String {
    let out = Command::new(root().join("scripts/toolchains.sh"))
        .output()
        .expect("scripts/toolchains.sh");
    assert!(
        out.status.success(),
        "toolchains: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut dirs: Vec<PathBuf> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(PathBuf::from)
        .collect();
    dirs.extend(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    ));
    std::env::join_paths(dirs)
        .unwrap()
        .to_string_lossy()
        .into_owned()
}

fn build(name: &str, path: &str, home: &Path) -> PathBuf {
    let out = root().join("target/polyglot").join(format!("{name}.wasm"));
    let status = Command::new(env!("CARGO_BIN_EXE_kiln"))
        .env("KILN_HOME", home)
        .env("KILN_SEED", "off")
        .env("PATH", path)
        .args(["plugin", "build"])
        .arg(root().join("plugins").join(name))
        .arg("-o")
        .arg(&out)
        .stdout(std::process::Stdio::null())
        .status()
        .expect("kiln plugin build");
    assert!(status.success(), "building {name}");
    out
}

/// A plugin measured: its language, its name and the config of the measured call. Rust's
/// comes from the guest build, the others are built from plugins/ here.
struct Measured {
    lang: &'static str,
    name: &'static str,
    config: &'static [(&'static str, &'static str)],
}

const PLUGINS: [Measured; 5] = [
    Measured {
        lang: "Rust",
        name: "standardize",
        config: &[],
    },
    Measured {
        lang: "Python",
        name: "onehot",
        config: &[("columns", "species")],
    },
    Measured {
        lang: "JavaScript",
        name: "jsonl-report",
        config: &[],
    },
    Measured {
        lang: "C",
        name: "quantile-bin",
        config: &[],
    },
    Measured {
        lang: "Go",
        name: "class-balance",
        config: &[("target", "species")],
    },
];

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> String {
    let ms = d.as_secs_f64() * 1e3;
    if ms >= 100.0 {
        format!("{ms:.0} ms")
    } else if ms >= 1.0 {
        format!("{ms:.1} ms")
    } else {
        format!("{:.0} µs", ms * 1e3)
    }
}

fn size(bytes: usize) -> String {
    if bytes >= 1_000_000 {
        format!("{:.1} MB", bytes as f64 / 1e6)
    } else {
        format!("{} KB", bytes / 1000)
    }
}

fn flowers() -> NamedValue {
    let f = |name: &str, v: &[f64]| Column {
        name: name.into(),
        data: ColumnData::Float64(v.to_vec()),
        valid: None,
    };
    let species = ["setosa", "versicolor", "virginica"];
    NamedValue {
        name: "table".into(),
        value: Value::Table(Table {
            columns: vec![
                f("sepal_length", &[5.1, 4.9, 6.3, 5.8, 7.1, 6.5, 5.0, 6.7]),
                f("petal_length", &[1.4, 1.4, 6.0, 5.1, 5.9, 4.6, 1.6, 4.4]),
                Column {
                    name: "species".into(),
                    data: ColumnData::Text((0..8).map(|i| species[i % 3].to_string()).collect()),
                    valid: None,
                },
            ],
        }),
    }
}

/// One real call of the plugin's role.
fn call(plugin: &Plugin, opts: &CallOptions, config: &[(String, String)], out: &Path) {
    let inputs = [flowers()];
    match plugin.role() {
        Role::Step => {
            plugin
                .run_step(&inputs, &config.to_vec(), opts)
                .expect("run");
        }
        Role::Validator => {
            plugin
                .validate(&inputs, &config.to_vec(), opts)
                .expect("validate");
        }
        Role::Tracker => {
            let events = [Event::Metric(Metric {
                key: "loss".into(),
                value: 0.5,
                step: 1,
                timestamp_ms: 1,
            })];
            let config = vec![("dir".to_string(), out.display().to_string())];
            plugin
                .send_events("bench", &events, &config, opts)
                .expect("events");
        }
        Role::ModelRunner => unreachable!("no model runner in this benchmark"),
    }
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo test --benches` lists; nothing to list
    }
    let path = toolchain_path();
    let home = tempfile::tempdir().unwrap();
    let report_dir = tempfile::tempdir().unwrap();
    let opts = CallOptions {
        grants: Grants {
            dirs: vec![DirGrant {
                host: report_dir.path().to_path_buf(),
                guest: report_dir.path().display().to_string(),
                writable: true,
            }],
            env: vec![],
        },
        ..CallOptions::default()
    };
    println!(
        "| Language | Plugin | Component | First load | Cached load | First ÷ cached | Instantiate p50 / p99 | Call p50 |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    // `KILN_BENCH_ONLY=Python` (a language) measures that one alone.
    let only = std::env::var("KILN_BENCH_ONLY").ok();
    for Measured { lang, name, config } in PLUGINS {
        if only
            .as_deref()
            .is_some_and(|o| !o.eq_ignore_ascii_case(lang))
        {
            continue;
        }
        let file = match lang {
            "Rust" => PathBuf::from(kiln_test_artifacts::STANDARDIZE),
            _ => build(name, &path, home.path()),
        };
        let config: Vec<(String, String)> = config
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let bytes = std::fs::read(&file).expect("component");
        // First loads: each into an empty cache.
        let mut first = Vec::new();
        let mut cached = Vec::new();
        let mut plugin: Option<Arc<Plugin>> = None;
        for _ in 0..3 {
            let cache = tempfile::tempdir().unwrap();
            let t = Instant::now();
            let p = host(cache.path())
                .load_bytes(name, &bytes, None)
                .expect("load");
            first.push(t.elapsed());
            assert_eq!(p.cache_outcome(), CacheOutcome::Compiled);
            for _ in 0..5 {
                let t = Instant::now();
                let p = host(cache.path())
                    .load_bytes(name, &bytes, None)
                    .expect("load");
                cached.push(t.elapsed());
                assert_eq!(p.cache_outcome(), CacheOutcome::Hit);
                plugin = Some(p);
            }
        }
        let plugin = plugin.expect("loaded");
        let (first, cached) = (median(first), median(cached));

        for _ in 0..20 {
            plugin.instantiate(&opts).expect("instantiate");
        }
        let mut inst: Vec<Duration> = (0..300)
            .map(|_| {
                let t = Instant::now();
                plugin.instantiate(&opts).expect("instantiate");
                t.elapsed()
            })
            .collect();
        inst.sort();
        let p99 = inst[(inst.len() as f64 * 0.99) as usize - 1];
        let calls: Vec<Duration> = (0..50)
            .map(|_| {
                let t = Instant::now();
                call(&plugin, &opts, &config, report_dir.path());
                t.elapsed()
            })
            .collect();
        println!(
            "| {lang} | {name} | {} | {} | {} | {:.0}× | {} / {} | {} |",
            size(bytes.len()),
            ms(first),
            ms(cached),
            first.as_secs_f64() / cached.as_secs_f64(),
            ms(median(inst.clone())),
            ms(p99),
            ms(median(calls)),
        );
    }
}
