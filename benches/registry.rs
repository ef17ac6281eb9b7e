//! Registry benchmarks: resolution among 10,000 plugins × 20 versions, and publishing.
//!
//! Run with `cargo bench --bench registry`. Resolution is compared with the floor it
//! cannot beat: semver matching over the same 20 versions already parsed in memory.

use std::time::{Duration, Instant};

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
    }
}

fn version(j: usize) -> String {
    format!("{}.{}.0", j / 5, j % 5) // 0.0.0 … 3.4.0: `^1` resolves to 1.4.0
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize].as_secs_f64() * 1e6
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
    let batch_rate = (PLUGINS * VERSIONS) as f64 / fill.as_secs_f64();
    let single_rate = single as f64 / singles.as_secs_f64();
    println!(
        "| publish, one version per transaction | {single_rate:.0} versions/s | batched, 2,000 per transaction: {batch_rate:.0} versions/s | {:.0}× slower |",
        batch_rate / single_rate
    );
}
