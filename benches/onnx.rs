//! ONNX inference, side by side in one run, on the same models and batch sizes:
//! (a) the onnx-runner plugin (tract compiled to wasm32-wasip2 with SIMD128, in the
//! sandbox, inputs and outputs copied across the component boundary);
//! (b) its native twin (the same onnx-core code, tract in the host: the baseline);
//! (c) onnxruntime through its Python API (`bench/onnx_ort.py`, one thread).
//!
//! Run with `cargo bench --bench onnx`. The models come from `scripts/onnx-models.sh`
//! (scikit-learn + skl2onnx, an onnx CNN, a dense layer); the figures are printed as a
//! Markdown table with each path's ratio to native tract. Before timing a point, the
//! sandbox's outputs are checked against the native twin's. `KILN_BENCH_SECONDS` sets the
//! time per point.
//!
//! For profiling and A/B runs: `KILN_BENCH_ONLY=digits-cnn:64` (or just a model) measures
//! only that point; `KILN_BENCH_RUNNER=path.wasm` loads another onnx-runner component (an
//! unstripped build, or a candidate against the default); `KILN_BENCH_CACHE=dir` keeps the
//! compiled code there (an ELF: `objdump -d` it); `KILN_BENCH_ORT=0` skips onnxruntime.
//! With `KILN_PERFMAP=1 perf record -D <ms past the compile>`, `perf report --sort dso,sym`
//! names the plugin's functions under `[JIT]`.

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::Instant,
};

use kiln::{
    bindings::{Dtype, NamedValue, Tensor, Value},
    engine::{ArtifactCache, EngineOptions, KilnEngine},
    plugin::{CallOptions, PluginHost},
    serving::native,
    value::tensor_elements,
};
use serde_json::Value as J;

const BATCHES: [usize; 3] = [1, 8, 64];

/// (file stem, input name, one row's shape).
const MODELS: [(&str, &str, &[usize]); 3] = [
    ("iris-pipeline", "features", &[4]),
    ("digits-cnn", "image", &[1, 8, 8]),
    // One 256×256 layer: matrix-product work alone.
    ("dense", "x", &[256]),
];

struct Figures {
    p50: f64,
    p99: f64,
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Calls `a` and `b` in turns (a few calls of one, then of the other) for about `seconds`
/// after a warm-up, so both see the same machine: a busy neighbour or a clock change lands
/// on both, not on whichever ran second. p50 and p99 in µs, of each.
fn measure_pair(seconds: f64, mut a: impl FnMut(), mut b: impl FnMut()) -> (Figures, Figures) {
    const TURN: usize = 16;
    let warm = Instant::now();
    while warm.elapsed().as_secs_f64() < seconds / 10.0 {
        a();
        b();
    }
    let (mut ta, mut tb) = (Vec::new(), Vec::new());
    let start = Instant::now();
    while start.elapsed().as_secs_f64() < seconds || ta.len() < 64 {
        for (f, times) in [(&mut a as &mut dyn FnMut(), &mut ta), (&mut b, &mut tb)] {
            for _ in 0..TURN {
                let t = Instant::now();
                f();
                times.push(t.elapsed());
            }
        }
    }
    (figures(ta), figures(tb))
}

fn figures(mut times: Vec<std::time::Duration>) -> Figures {
    times.sort();
    let at = |p: f64| {
        let i = ((times.len() as f64 - 1.0) * p).round() as usize;
        times[i].as_secs_f64() * 1e6
    };
    Figures {
        p50: at(0.5),
        p99: at(0.99),
    }
}

/// A seeded float32 tensor of `batch` rows, values in [0, 1).
fn input(name: &str, batch: usize, row: &[usize]) -> Vec<NamedValue> {
    let mut shape = vec![batch as u64];
    shape.extend(row.iter().map(|&d| d as u64));
    let count = batch * row.iter().product::<usize>();
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut data = Vec::with_capacity(count * 4);
    for _ in 0..count {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        let x = (state >> 40) as f32 / (1u64 << 24) as f32;
        data.extend_from_slice(&x.to_le_bytes());
    }
    vec![NamedValue {
        name: name.into(),
        value: Value::Tensor(Tensor {
            dtype: Dtype::Float32,
            shape,
            data,
        }),
    }]
}

/// The sandbox's outputs equal the native twin's: the same names, types and shapes, and
/// float32 values within 1e-4 relative and 1e-6 absolute, as the ONNX tests compare with
/// onnxruntime (the two sum products in different orders).
fn agree(wasm: &[NamedValue], native: &[NamedValue], model: &str) {
    assert_eq!(wasm.len(), native.len(), "{model}: outputs");
    for (a, b) in wasm.iter().zip(native) {
        let (Value::Tensor(x), Value::Tensor(y)) = (&a.value, &b.value) else {
            panic!("{model}: {} is not a tensor", a.name);
        };
        assert_eq!(
            (&a.name, x.dtype, &x.shape),
            (&b.name, y.dtype, &y.shape),
            "{model}"
        );
        let (xs, ys) = (tensor_elements(x), tensor_elements(y));
        if x.dtype != Dtype::Float32 {
            assert_eq!(xs, ys, "{model}: {}", a.name);
            continue;
        }
        for (i, (p, q)) in xs.iter().zip(&ys).enumerate() {
            let (p, q) = (p.as_f64().unwrap(), q.as_f64().unwrap());
            assert!(
                (p - q).abs() <= 1e-4 * q.abs() + 1e-6,
                "{model}: {}[{i}] {p} in the sandbox, {q} natively",
                a.name
            );
        }
    }
}

fn onnxruntime(dir: &Path, seconds: f64) -> Option<J> {
    let python = root().join("target/toolchains/onnx-venv/bin/python");
    let batches: Vec<String> = BATCHES.iter().map(usize::to_string).collect();
    let out = Command::new(python)
        .arg(root().join("bench/onnx_ort.py"))
        .arg(dir)
        .args(["--batches", &batches.join(",")])
        .args(["--seconds", &seconds.to_string()])
        .output()
        .ok()?;
    if !out.status.success() {
        eprintln!(
            "onnxruntime bench failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        return None;
    }
    serde_json::from_slice(&out.stdout).ok()
}

fn main() {
    let seconds: f64 = std::env::var("KILN_BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2.0);
    let made = Command::new(root().join("scripts/onnx-models.sh"))
        .output()
        .expect("running scripts/onnx-models.sh");
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let dir = PathBuf::from(String::from_utf8_lossy(&made.stdout).trim());

    let only = std::env::var("KILN_BENCH_ONLY").ok();
    let measured = |model: &str, batch: usize| match &only {
        None => true,
        Some(o) => o == model || *o == format!("{model}:{batch}"),
    };
    let temp = tempfile::tempdir().expect("temp dir");
    let cache = std::env::var_os("KILN_BENCH_CACHE").map_or(temp.path().into(), PathBuf::from);
    let engine = KilnEngine::new(&EngineOptions::default()).expect("engine");
    let host =
        PluginHost::new(engine.clone(), ArtifactCache::new(engine.engine(), &cache)).expect("host");
    let component = std::env::var_os("KILN_BENCH_RUNNER").map_or(
        PathBuf::from(kiln_test_artifacts::ONNX_RUNNER),
        PathBuf::from,
    );
    let runner = host.load_file(&component, None).expect("onnx-runner");
    let size = std::fs::metadata(&component).map(|m| m.len()).unwrap_or(0);
    let opts = CallOptions::default();

    let ort = match std::env::var("KILN_BENCH_ORT").as_deref() {
        Ok("0") => None,
        _ => onnxruntime(&dir, seconds),
    };
    let ort_p50 = |model: &str, batch: usize| -> Option<f64> {
        ort.as_ref()?["results"]
            .as_array()?
            .iter()
            .find(|r| r["model"] == model && r["batch"] == batch)?["p50_us"]
            .as_f64()
    };

    println!(
        "onnx-runner component: {:.1} MB (tract, wasm32-wasip2 + SIMD128); onnxruntime {}",
        size as f64 / 1e6,
        ort.as_ref()
            .and_then(|o| o["onnxruntime"].as_str())
            .unwrap_or("not measured")
    );
    println!();
    println!(
        "| model | batch | wasm p50 µs (p99) | native tract p50 µs (p99) | onnxruntime p50 µs | wasm ÷ native | onnxruntime ÷ native |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for (model, port, row) in MODELS {
        if !BATCHES.iter().any(|&b| measured(model, b)) {
            continue;
        }
        let bytes = std::fs::read(dir.join(format!("{model}.onnx"))).expect("model file");
        let mut wasm = runner
            .load_model(&bytes, &Vec::new(), &opts)
            .expect("the plugin loads the model");
        let twin = native::load("onnx-runner", &bytes).expect("the twin loads the model");
        for batch in BATCHES.into_iter().filter(|&b| measured(model, b)) {
            let inputs = input(port, batch, row);
            // Both answer alike before either is timed.
            let a = wasm.predict(&inputs).expect("wasm predict").value;
            let b = twin.predict(&inputs).expect("native predict");
            agree(&a, &b, model);
            let (w, n) = measure_pair(
                seconds,
                || {
                    wasm.predict(&inputs).expect("wasm predict");
                },
                || {
                    twin.predict(&inputs).expect("native predict");
                },
            );
            let o = ort_p50(model, batch);
            println!(
                "| {model} | {batch} | {:.1} ({:.1}) | {:.1} ({:.1}) | {} | {:.2}× | {} |",
                w.p50,
                w.p99,
                n.p50,
                n.p99,
                o.map_or("-".into(), |o| format!("{o:.1}")),
                w.p50 / n.p50,
                o.map_or("-".into(), |o| format!("{:.2}×", o / n.p50)),
            );
        }
    }
}
