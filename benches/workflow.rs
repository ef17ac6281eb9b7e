//! Workflow benchmarks. Run with `cargo bench --bench workflow`.
//!
//! - **Scheduling overhead**: a 1,000-step DAG of trivial steps (each after one or two
//!   earlier steps), executed with the cache off, against the same 1,000 plugin calls made
//!   directly in a loop in the same run. The difference, per step, is what the executor
//!   adds: scheduling, cache keys, lineage, the tracking store's writes.
//! - **Fully cached re-run of the demo**: `kiln run examples/quickstart.yaml` as a user
//!   types it, process start included, after a first run filled the cache.

use std::{
    path::Path,
    process::Command,
    sync::Arc,
    time::{Duration, Instant},
};

use kiln::{
    bindings::NamedValue,
    engine::{ArtifactCache, EngineOptions, KilnEngine},
    plugin::{CallOptions, PluginHost},
    tracking::{Status, Store},
    workflow::{ExecOptions, Resolver, execute, prepare},
};

const STEPS: usize = 1000;

fn dag_yaml(guest: &Path) -> String {
    let mut y = String::from("name: bench-dag\nsteps:\n");
    for i in 0..STEPS {
        y.push_str(&format!("  s{i}:\n    uses: {}\n", guest.display()));
        if i > 0 {
            let a = (i - 1) / 2;
            let b = i - 1;
            if a == b {
                y.push_str(&format!("    after: [s{a}]\n"));
            } else {
                y.push_str(&format!("    after: [s{a}, s{b}]\n"));
            }
        }
    }
    y
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let scratch = tempfile::tempdir().expect("temp dir");
    let data = scratch.path().join("home");
    let engine = KilnEngine::new(&EngineOptions::default()).expect("engine");
    let cache = ArtifactCache::new(engine.engine(), data.join("compiled"));
    let host = PluginHost::new(engine, cache).expect("host");
    let guest = Path::new(kiln_test_artifacts::ECHO_STEP);
    let file = scratch.path().join("dag.yaml");
    std::fs::write(&file, dag_yaml(guest)).expect("write dag");
    let no_registry = || anyhow::bail!("the benchmark uses no registry");
    let resolver = Resolver {
        host: &host,
        registry: &no_registry,
        update: false,
        models: None,
        bundle: None,
    };
    let t = Instant::now();
    let prepared = prepare(&file, &resolver, false).expect("a valid DAG");
    let validate_ms = t.elapsed().as_secs_f64() * 1e3;
    let store = Arc::new(Store::open(&data).expect("store"));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");

    let run_dag = |jobs: usize, use_cache: bool| -> f64 {
        let opts = ExecOptions {
            jobs,
            use_cache,
            ..ExecOptions::default()
        };
        let plan = Arc::new(prepared.plan.clone());
        let plugins = prepared.plugins.clone();
        let store = store.clone();
        let t = Instant::now();
        let run = runtime
            .block_on(execute(plan, plugins, store, opts, Arc::new(|_: &_| {})))
            .expect("run");
        let s = t.elapsed().as_secs_f64();
        assert_eq!(run.status, Status::Succeeded);
        s
    };
    // The baseline: the same calls, directly, one after another.
    let plugin = &prepared.plugins.steps[0];
    let bare = || {
        let opts = CallOptions::default();
        let t = Instant::now();
        for _ in 0..STEPS {
            plugin
                .run_step::<NamedValue>(&[], &Vec::new(), &opts)
                .expect("call");
        }
        t.elapsed().as_secs_f64()
    };
    bare();
    run_dag(1, false);
    let reps = 7;
    let bare_s = median((0..reps).map(|_| bare()).collect());
    let dag1_s = median((0..reps).map(|_| run_dag(1, false)).collect());
    let dag2_s = median((0..reps).map(|_| run_dag(2, false)).collect());
    let cached_s = median((0..reps).map(|_| run_dag(2, true)).collect());
    let per = |s: f64| s / STEPS as f64 * 1e6;
    println!("| measure (1,000 trivial steps) | per step | total |");
    println!("|---|---|---|");
    println!(
        "| bare plugin calls in a loop (baseline) | {:.1} µs | {:.1} ms |",
        per(bare_s),
        bare_s * 1e3
    );
    println!(
        "| workflow, `--jobs 1`, every step executed (`--no-cache`) | {:.1} µs | {:.1} ms |",
        per(dag1_s),
        dag1_s * 1e3
    );
    println!(
        "| **scheduling overhead** (workflow − baseline) | **{:.1} µs** | {:.1} ms |",
        per(dag1_s - bare_s),
        (dag1_s - bare_s) * 1e3
    );
    println!(
        "| workflow, `--jobs 2`, every step executed | {:.1} µs | {:.1} ms |",
        per(dag2_s),
        dag2_s * 1e3
    );
    println!(
        "| workflow, every step cached | {:.1} µs | {:.1} ms |",
        per(cached_s),
        cached_s * 1e3
    );
    println!(
        "| validation (parse, resolve, describe, check) | {:.1} µs | {validate_ms:.1} ms |",
        validate_ms * 1e3 / STEPS as f64
    );

    // The demo, re-run from a fresh process with everything cached.
    let kiln = env!("CARGO_BIN_EXE_kiln");
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let home = scratch.path().join("demo-home");
    let workdir = scratch.path().join("demo");
    std::fs::create_dir_all(&workdir).expect("demo dir");
    std::fs::copy(
        repo.join("examples/quickstart.yaml"),
        workdir.join("quickstart.yaml"),
    )
    .expect("copy workflow");
    std::os::unix::fs::symlink(
        std::fs::canonicalize(repo.join("examples/data")).expect("data"),
        workdir.join("data"),
    )
    .expect("link data");
    let run = || {
        let t = Instant::now();
        let out = Command::new(kiln)
            .args(["run", "quickstart.yaml"])
            .current_dir(&workdir)
            .env("KILN_HOME", &home)
            .env("KILN_SEED", repo.join("registry-data"))
            .output()
            .expect("kiln run");
        let elapsed = t.elapsed();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        (elapsed, String::from_utf8_lossy(&out.stdout).into_owned())
    };
    let (first, _) = run();
    let mut times: Vec<Duration> = Vec::new();
    for _ in 0..15 {
        let (t, out) = run();
        assert!(out.contains("0 ran, 8 cached"), "{out}");
        times.push(t);
    }
    times.sort();
    println!();
    println!(
        "| the demo workflow (`kiln run examples/quickstart.yaml`, process start included) | wall |"
    );
    println!("|---|---|");
    println!(
        "| first run (every step executed; plugins compiled) | {:.1} ms |",
        first.as_secs_f64() * 1e3
    );
    println!(
        "| fully cached re-run, median of 15 | **{:.1} ms** |",
        times[times.len() / 2].as_secs_f64() * 1e3
    );
    println!(
        "| fully cached re-run, slowest of 15 | {:.1} ms |",
        times[times.len() - 1].as_secs_f64() * 1e3
    );
}
