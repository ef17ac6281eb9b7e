//! Registry benchmarks: resolution among 10,000 plugins × 20 versions, and publishing.
//!
//! Run with `cargo bench --bench registry`. Resolution is compared with the floor it
//! cannot beat: semver matching over the same 20 versions already parsed in memory.

use std::{
    fmt::Write as _,
    sync::Arc,
    time::{Duration, Instant},
};

use kiln::engine::{ArtifactCache, CacheOutcome, EngineOptions, KilnEngine};
use kiln::registry::{
    Manifest, Registry,
    manifest::{Capabilities, PluginSection},
    resolve::{Candidate, resolve},
    sign,
};
use semver::{Version, VersionReq};

const PLUGINS: usize = 10_000;
const VERSIONS: usize = 20;

fn manifest(name: &str, version: &str) -> Manifest {
    Manifest {
        plugin: PluginSection {
            name: name.into(),
            version: version.into(),
            role: "step".into(),
            wit: kiln::bindings::WIT_PACKAGE.into(),
            description: format!("benchmark plugin {name}"),
            license: "Apache-2.0".into(),
            authors: vec![],
            keywords: vec!["bench".into()],
            component: None,
        },
        capabilities: Capabilities::default(),
        build: None,
    }
}

fn version(j: usize) -> String {
    format!("{}.{}.0", j / 5, j % 5) // 0.0.0 … 3.4.0: `^1` resolves to 1.4.0
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize].as_secs_f64() * 1e6
}

/// A component of about `target` bytes: one core module of many functions, instantiated.
fn big_component(target: usize) -> Vec<u8> {
    let mut wat = String::from("(component (core module $m\n");
    let mut i = 0;
    // Each function is a chain of arithmetic on its argument: ~2 KB of code.
    while wat.len() * 2 / 11 < target {
        write!(
            wat,
            "(func (export \"f{i}\") (param i32) (result i32) local.get 0"
        )
        .unwrap();
        for k in 0..300 {
            write!(
                wat,
                " i32.const {} i32.add i32.const {} i32.xor",
                k * 7 + i,
                k + 3
            )
            .unwrap();
        }
        wat.push_str(")\n");
        i += 1;
    }
    wat.push_str(") (core instance (instantiate $m)))");
    let bytes = wat::parse_str(&wat).expect("valid component");
    assert!(
        bytes.len() >= target * 8 / 10,
        "component of {} bytes",
        bytes.len()
    );
    bytes
}

fn main() {
    let dir = tempfile::tempdir().expect("temp dir");
    let registry = Registry::open(&dir.path().join("registry.redb")).expect("registry");
    let key = sign::generate().expect("key");
    registry
        .trust_key("bench", &hex::encode(key.verifying_key().as_bytes()))
        .expect("trust");

    // Fill: 200,000 versions, 2,000 per transaction.
    let started = Instant::now();
    let names: Vec<String> = (0..PLUGINS).map(|i| format!("plugin-{i:05}")).collect();
    for chunk in names.chunks(100) {
        let manifests: Vec<(Manifest, Vec<u8>)> = chunk
            .iter()
            .flat_map(|name| {
                (0..VERSIONS).map(move |j| {
                    (
                        manifest(name, &version(j)),
                        format!("{name}/{j}").into_bytes(),
                    )
                })
            })
            .collect();
        let items: Vec<(&Manifest, &[u8])> =
            manifests.iter().map(|(m, b)| (m, b.as_slice())).collect();
        registry.publish_batch(&items, &key).expect("publish batch");
    }
    let fill = started.elapsed();

    // Resolution of `name@^1`, names spread over the whole table.
    let req = VersionReq::parse("^1").unwrap();
    let n = 50_000;
    let mut times = Vec::with_capacity(n);
    for i in 0..n {
        let name = &names[(i * 7919) % PLUGINS];
        let t = Instant::now();
        let v = registry.resolve(name, &req).expect("resolve");
        times.push(t.elapsed());
        assert_eq!(v.version, "1.4.0");
    }
    times.sort();
    let candidates: Vec<Candidate> = (0..VERSIONS)
        .map(|j| Candidate {
            version: Version::parse(&version(j)).unwrap(),
            yanked: false,
        })
        .collect();
    let mut floor = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        std::hint::black_box(resolve(&req, std::hint::black_box(&candidates)));
        floor.push(t.elapsed());
    }
    floor.sort();

    // Publishing one version per transaction, as `kiln publish` does (durable commit each).
    let single = 200;
    let started = Instant::now();
    for i in 0..single {
        let name = format!("single-{i:04}");
        registry
            .publish(&manifest(&name, "1.0.0"), name.as_bytes(), &key)
            .expect("publish");
    }
    let singles = started.elapsed();

    // A 5 MB component: compile it, then load it precompiled from the registry, ready to
    // instantiate (an InstancePre), as a second `kiln` process would.
    let bytes = big_component(5 << 20);
    let digest = kiln::digest::sha256_hex(&bytes);
    let engine = KilnEngine::new(&EngineOptions::default()).expect("engine");
    let store: Arc<dyn kiln::engine::CompiledStore> = Arc::new(registry);
    // A fresh process would start with no compiled files mapped.
    let cache = ArtifactCache::in_store(engine.engine(), store);
    let linker: wasmtime::component::Linker<()> = wasmtime::component::Linker::new(engine.engine());
    let started = Instant::now();
    let (component, outcome) = cache
        .load(engine.engine(), &digest, &bytes)
        .expect("compile");
    let compile = started.elapsed();
    assert_eq!(outcome, CacheOutcome::Compiled);
    drop(component);
    let mut loads = Vec::new();
    for _ in 0..20 {
        let t = Instant::now();
        let (component, outcome) = cache.load(engine.engine(), &digest, &bytes).expect("load");
        let pre = linker
            .instantiate_pre(&component)
            .expect("ready to instantiate");
        loads.push(t.elapsed());
        assert_eq!(outcome, CacheOutcome::Hit);
        drop(pre);
    }
    loads.sort();
    let load_ms = loads[loads.len() / 2].as_secs_f64() * 1e3;

    println!("## registry ({PLUGINS} plugins × {VERSIONS} versions)\n");
    println!("| operation | figure | baseline | ratio |");
    println!("|---|---|---|---|");
    println!(
        "| resolve `name@^1` | p50 {:.1} µs, p99 {:.1} µs | in-memory semver match of the same 20 versions: p50 {:.2} µs | {:.0}× |",
        percentile(&times, 0.5),
        percentile(&times, 0.99),
        percentile(&floor, 0.5),
        percentile(&times, 0.5) / percentile(&floor, 0.5).max(0.01)
    );
    println!(
        "| load a precompiled {:.1} MB component from the registry, ready to instantiate | {load_ms:.2} ms (median of 20) | compiling it: {:.0} ms | {:.0}× faster |",
        bytes.len() as f64 / 1e6,
        compile.as_secs_f64() * 1e3,
        compile.as_secs_f64() * 1e3 / load_ms
    );
    let batch_rate = (PLUGINS * VERSIONS) as f64 / fill.as_secs_f64();
    let single_rate = single as f64 / singles.as_secs_f64();
    println!(
        "| publish, one version per transaction | {single_rate:.0} versions/s | batched, 2,000 per transaction: {batch_rate:.0} versions/s | {:.0}× slower |",
        batch_rate / single_rate
    );
}
