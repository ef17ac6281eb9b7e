//! Runtime benchmarks: instantiate+call of a trivial step, and tensors through a step.
//!
//! Run with `cargo bench --bench runtime`. Figures are printed as a Markdown table, each
//! with its ratio to a baseline measured in the same run:
//! - instantiate+call with the pooling allocator against the on-demand allocator, both
//!   loading the component from a warm compiled-artifact cache;
//! - a tensor round trip (host → plugin → host) against a native copy of the same bytes
//!   in and out between resident buffers (two `memcpy`s, the least a round trip must do);
//! - a serving pipeline's stage: one row of the quickstart's ten features through a warm
//!   `standardize` instance applying a fitted scaler, against the same inputs through a
//!   warm echo step (the crossing alone: lowering the table and the scaler, lifting them
//!   back).

use std::{
    path::Path,
    sync::Arc,
    time::{Duration, Instant},
};

use kiln::{
    bindings::{Column, ColumnData, Dtype, NamedValue, Table, Tensor, Value},
    engine::{ArtifactCache, CacheOutcome, EngineOptions, KilnEngine},
    plugin::{CallOptions, Plugin, PluginHost},
};

fn host(pooling: bool, cache_dir: &Path) -> PluginHost {
    let engine = KilnEngine::new(&EngineOptions {
        pooling,
        ..EngineOptions::default()
    })
    .expect("engine");
    let cache = ArtifactCache::new(engine.engine(), cache_dir);
    PluginHost::new(engine, cache).expect("host")
}

/// Loads the trivial step from a warm cache (the first load in this process fills it).
fn warm_plugin(pooling: bool, cache_dir: &Path) -> (PluginHost, Arc<Plugin>) {
    let path = Path::new(kiln_test_artifacts::ECHO_STEP);
    host(pooling, cache_dir)
        .load_file(path, None)
        .expect("load");
    let h = host(pooling, cache_dir);
    let p = h.load_file(path, None).expect("load");
    assert_eq!(
        p.cache_outcome(),
        CacheOutcome::Hit,
        "the second load must come from the cache"
    );
    (h, p)
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1e6
}

/// p50 and p99 of instantiate+call, in µs.
fn instantiate_call(plugin: &Plugin, iterations: usize) -> (f64, f64) {
    let opts = CallOptions::default();
    let config = Vec::new();
    for _ in 0..iterations / 10 {
        plugin
            .run_step::<NamedValue>(&[], &config, &opts)
            .expect("warm-up call");
    }
    let mut times = Vec::with_capacity(iterations);
    for _ in 0..iterations {
        let t = Instant::now();
        plugin
            .run_step::<NamedValue>(&[], &config, &opts)
            .expect("call");
        times.push(t.elapsed());
    }
    times.sort();
    (percentile(&times, 0.50), percentile(&times, 0.99))
}

/// Median seconds of one tensor round trip through the echo step.
fn tensor_round_trip(plugin: &Plugin, bytes: usize, iterations: usize) -> f64 {
    let opts = CallOptions::default();
    let config = Vec::new();
    let tensor = Tensor {
        dtype: Dtype::Uint8,
        shape: vec![bytes as u64],
        data: vec![7u8; bytes],
    };
    let inputs = vec![NamedValue {
        name: "t".into(),
        value: Value::Tensor(tensor),
    }];
    let mut times = Vec::with_capacity(iterations);
    for i in 0..iterations + 3 {
        let t = Instant::now();
        let out = plugin.run_step(&inputs, &config, &opts).expect("call");
        let elapsed = t.elapsed();
        assert!(matches!(&out.value[0].value, Value::Tensor(t) if t.data.len() == bytes));
        if i >= 3 {
            times.push(elapsed);
        }
    }
    times.sort();
    times[times.len() / 2].as_secs_f64()
}

/// Median seconds of the native baseline: copy the bytes in and out again, into buffers
/// that are already allocated and resident (the least any round trip must do).
fn native_copy(bytes: usize, iterations: usize) -> f64 {
    let src = vec![7u8; bytes];
    let mut inside = vec![0u8; bytes];
    let mut back = vec![0u8; bytes];
    let mut times = Vec::with_capacity(iterations);
    for _ in 0..iterations + 3 {
        let t = Instant::now();
        inside.copy_from_slice(std::hint::black_box(&src));
        back.copy_from_slice(std::hint::black_box(&inside));
        std::hint::black_box(&back);
        times.push(t.elapsed());
    }
    times.sort();
    times[times.len() / 2].as_secs_f64()
}

/// p50 and p99 in µs of one call of a warm instance of `plugin` on `inputs`.
fn warm_calls(h: &PluginHost, path: &str, inputs: &[NamedValue], n: usize) -> (f64, f64) {
    let plugin = h.load_file(Path::new(path), None).expect("load");
    let mut instance = plugin
        .step_instance(&CallOptions::default())
        .expect("instance");
    let config = Vec::new();
    let mut times = Vec::with_capacity(n);
    for i in 0..n + n / 10 {
        let t = Instant::now();
        let out = instance.run(inputs, &config).expect("call");
        let elapsed = t.elapsed();
        assert!(!out.is_empty());
        if i >= n / 10 {
            times.push(elapsed);
        }
    }
    times.sort();
    (percentile(&times, 0.50), percentile(&times, 0.99))
}

/// A serving stage's inputs: one row of ten float64 features and the scaler fitted on them.
fn stage_inputs() -> Vec<NamedValue> {
    let names = [
        "age", "sex", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6",
    ];
    let row = [59.0, 2.0, 32.1, 101.0, 157.0, 93.2, 38.0, 4.0, 4.8598, 87.0];
    let columns = names
        .iter()
        .zip(row)
        .map(|(n, x)| Column {
            name: (*n).into(),
            data: ColumnData::Float64(vec![x]),
            valid: None,
        })
        .collect();
    let scaler: serde_json::Map<String, serde_json::Value> = names
        .iter()
        .zip(row)
        .map(|(n, x)| {
            (
                (*n).into(),
                serde_json::json!({"mean": x * 0.9, "scale": x / 7.0}),
            )
        })
        .collect();
    vec![
        NamedValue {
            name: "table".into(),
            value: Value::Table(Table { columns }),
        },
        NamedValue {
            name: "scaler".into(),
            value: Value::Json(serde_json::Value::Object(scaler).to_string()),
        },
    ]
}

fn main() {
    let cache = tempfile::tempdir().expect("temp dir");
    // Each configuration is measured with no other engine alive: an engine's pool
    // reserves a large address range, and the kernel's page walks slow with more of them.
    let pooled = || warm_plugin(true, cache.path());
    // `cargo bench --bench runtime -- instantiate` loops on the pooled instantiate+call
    // only, for a profiler to look at.
    // `-- stage` measures the serving stage only.
    if std::env::args().any(|a| a == "stage") {
        let (h, _) = pooled();
        return stage(&h);
    }
    if std::env::args().any(|a| a == "instantiate") {
        let (_host, plugin) = pooled();
        let (p50, p99) = instantiate_call(&plugin, 200_000);
        println!("pooling: p50 {p50:.1} µs, p99 {p99:.1} µs");
        return;
    }

    let n = 20_000;
    let (p50, p99) = {
        let (_host, plugin) = pooled();
        instantiate_call(&plugin, n)
    };
    let (b50, b99) = {
        let (_host, plugin) = warm_plugin(false, cache.path());
        instantiate_call(&plugin, n)
    };
    println!("## instantiate + call of a trivial step ({n} calls, warm compiled-artifact cache)\n");
    println!("| allocator | p50 µs | p99 µs | p50 vs baseline |");
    println!("|---|---|---|---|");
    println!(
        "| pooling (Kiln's default) | {p50:.1} | {p99:.1} | {:.2}× faster |",
        b50 / p50
    );
    println!("| on-demand (baseline) | {b50:.1} | {b99:.1} | 1.00× |");

    println!("\n## a tensor into a step and back (pooling allocator)\n");
    println!(
        "| tensor | Kiln round trip | GB/s (tensor bytes / round-trip time) | native copy in+out | Kiln / native time |"
    );
    println!("|---|---|---|---|---|");
    let (_host, plugin) = pooled();
    for (label, bytes, iters) in [
        ("4 B", 4, 5_000),
        ("64 KiB", 64 << 10, 2_000),
        ("16 MiB", 16 << 20, 40),
    ] {
        let t = tensor_round_trip(&plugin, bytes, iters);
        let base = native_copy(bytes, iters);
        println!(
            "| {label} | {:.1} µs | {:.2} | {:.1} µs | {:.1}× |",
            t * 1e6,
            bytes as f64 / t / 1e9,
            base * 1e6,
            t / base
        );
    }
    drop((_host, plugin));
    let (h, _) = pooled();
    stage(&h);
}

fn stage(h: &PluginHost) {
    let n = 20_000;
    let inputs = stage_inputs();
    let (e50, e99) = warm_calls(h, kiln_test_artifacts::ECHO_STEP, &inputs, n);
    let (s50, s99) = warm_calls(h, kiln_test_artifacts::STANDARDIZE, &inputs, n);
    println!(
        "\n## a serving stage: one row of ten features and a fitted scaler, warm instance ({n} calls)\n"
    );
    println!("| step | p50 µs | p99 µs | p50 vs echo |");
    println!("|---|---|---|---|");
    println!(
        "| standardize, applying the scaler | {s50:.1} | {s99:.1} | {:.2}× |",
        s50 / e50
    );
    println!("| echo (the crossing alone, baseline) | {e50:.1} | {e99:.1} | 1.00× |");
}
