//! Fuzz targets for everything that parses bytes Kiln did not write: value documents, CSV
//! tables, workflow files, plugin manifests, bundles, components, and the bodies of the
//! predict, Open Inference Protocol and marketplace publish routes on a real `kiln serve`.
//!
//! A stable-toolchain harness in the test binary: each target mutates the seeds of its
//! committed corpus (`tests/fuzz/TARGET/`, or the repository files it names) with
//! proptest's generators — byte edits and splices, and for JSON, edits of the document's
//! tree that put extreme numbers, long strings, deep nesting and wrong types anywhere — and
//! checks that the target answers with a result and never panics, crashes or hangs, plus
//! what each target promises (documents survive a round trip, every HTTP error is JSON with
//! a code, never a 5xx). Each target runs for `KILN_FUZZ_SECS` seconds (by default two to six, some 35 in all) from a
//! random seed, or `KILN_FUZZ_SEED` to replay one; the figures (executions, seconds, seed)
//! go to stderr, past the test harness's capture, so they are in CI's log. A failing input
//! is written under the target directory and named in the failure.

use std::{
    io::Write as _,
    panic::{AssertUnwindSafe, catch_unwind},
    path::{Path, PathBuf},
    sync::Arc,
    time::{Duration, Instant},
};

use kiln::{
    bindings::Value,
    bundle::Bundle,
    engine::{ArtifactCache, EngineOptions, KilnEngine},
    plugin::{CallOptions, PluginHost},
    registry::{Manifest, Registry},
    value,
    workflow::{Origin, PrepareError, Resolver, prepare_text},
};
use kiln_test_artifacts as g;
use proptest::{
    collection::vec,
    prelude::*,
    sample::select,
    strategy::ValueTree,
    test_runner::{Config, RngAlgorithm, TestRng, TestRunner},
};
use serde_json::{Value as J, json};

use crate::{Kiln, Server};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The seeds of a corpus directory under `tests/fuzz/`.
fn corpus(name: &str) -> Vec<(String, Vec<u8>)> {
    files(&repo().join("tests/fuzz").join(name), |_| true)
}

/// The files of `dir` whose names `keep` accepts, sorted, with their names.
fn files(dir: &Path, keep: impl Fn(&str) -> bool) -> Vec<(String, Vec<u8>)> {
    let mut seeds: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .filter(|p| keep(&p.file_name().unwrap().to_string_lossy()))
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(&p).unwrap())
        })
        .collect();
    seeds.sort();
    assert!(!seeds.is_empty(), "no seeds in {}", dir.display());
    seeds
}

fn only(seeds: Vec<(String, Vec<u8>)>) -> Vec<Vec<u8>> {
    seeds.into_iter().map(|(_, b)| b).collect()
}

// ---- mutations ----

/// Bytes that parsers care about.
const SPECIAL: &[u8] = b"\0\x7f\xff\"'{}[](),:;-+.0123456789eE \n\r\t\\#&*!|>%@=`~$";

#[derive(Debug, Clone)]
enum Edit {
    Set(usize, u8),
    Insert(usize, u8),
    Remove(usize, usize),
    /// Repeats `len` bytes from `from` at `to`.
    Repeat(usize, usize, usize),
    /// Inserts `len` bytes of another seed (from `from`) at `to`.
    Splice(usize, usize, usize, usize),
    Truncate(usize),
}

fn byte() -> impl Strategy<Value = u8> {
    prop_oneof![any::<u8>(), select(SPECIAL)]
}

fn edit() -> impl Strategy<Value = Edit> {
    let at = any::<usize>;
    prop_oneof![
        4 => (at(), byte()).prop_map(|(a, b)| Edit::Set(a, b)),
        3 => (at(), byte()).prop_map(|(a, b)| Edit::Insert(a, b)),
        2 => (at(), 1..16usize).prop_map(|(a, n)| Edit::Remove(a, n)),
        1 => (at(), at(), 1..4096usize).prop_map(|(f, t, n)| Edit::Repeat(f, t, n)),
        1 => (at(), at(), at(), 1..256usize).prop_map(|(s, f, t, n)| Edit::Splice(s, f, t, n)),
        1 => at().prop_map(Edit::Truncate),
    ]
}

fn apply(b: &mut Vec<u8>, e: &Edit, seeds: &[Vec<u8>]) {
    let pos = |i: usize, len: usize| if len == 0 { 0 } else { i % (len + 1) };
    match *e {
        Edit::Set(a, x) if !b.is_empty() => {
            let i = a % b.len();
            b[i] = x;
        }
        Edit::Set(..) => b.push(0),
        Edit::Insert(a, x) => b.insert(pos(a, b.len()), x),
        Edit::Remove(a, n) => {
            let i = pos(a, b.len());
            b.drain(i..(i + n).min(b.len()));
        }
        Edit::Repeat(f, t, n) => {
            let f = pos(f, b.len());
            let run = b[f..(f + n).min(b.len())].to_vec();
            let t = pos(t, b.len());
            b.splice(t..t, run);
        }
        Edit::Splice(s, f, t, n) => {
            let other = &seeds[s % seeds.len()];
            let f = pos(f, other.len());
            let run = &other[f..(f + n).min(other.len())];
            let t = pos(t, b.len());
            b.splice(t..t, run.iter().copied());
        }
        Edit::Truncate(a) => b.truncate(pos(a, b.len())),
    }
}

/// A seed with one to eight byte edits.
fn byte_mutant(seeds: Arc<Vec<Vec<u8>>>) -> BoxedStrategy<(usize, Vec<u8>)> {
    (any::<usize>(), vec(edit(), 1..8))
        .prop_map(move |(i, edits)| {
            let mut b = seeds[i % seeds.len()].clone();
            for e in &edits {
                apply(&mut b, e, &seeds);
            }
            b.truncate(MAX_INPUT);
            (i % seeds.len(), b)
        })
        .boxed()
}

#[derive(Debug, Clone)]
enum TreeEdit {
    /// The `n`th node (pre-order) becomes this value.
    Replace(usize, J),
    /// The `n`th node leaves its array or object.
    Remove(usize),
    /// The `n`th node is wrapped in an array, `depth` times.
    Nest(usize, usize),
    /// The `n`th node is replaced by a copy of the `m`th.
    Graft(usize, usize),
    /// The `n`th node, if an array, is repeated to `len` elements.
    Grow(usize, usize),
}

/// Values that break assumptions: extreme and lossy numbers, odd and long strings, empty
/// and deep containers, wrong types.
fn odd_value() -> impl Strategy<Value = J> {
    prop_oneof![
        select(vec![
            J::Null,
            json!(true),
            json!(false),
            json!(0),
            json!(-1),
            json!(1),
            json!(0.5),
            json!(-0.0),
            json!(1e308),
            json!(-1e308),
            json!(3.5e38),
            json!(1e-320),
            json!(u64::MAX),
            json!(i64::MIN),
            json!(i64::MAX),
            json!(9007199254740993u64),
            json!(4294967296u64),
            json!(""),
            json!("NaN"),
            json!("inf"),
            json!("-1"),
            json!("FP32"),
            json!("BYTES"),
            json!("float64"),
            json!("table"),
            json!("tensor"),
            json!("value/1"),
            json!([]),
            json!({}),
            json!([[]]),
            json!({"$kiln": "value/1"}),
        ]),
        any::<i64>().prop_map(J::from),
        any::<f64>()
            .prop_filter("finite", |x| x.is_finite())
            .prop_map(J::from),
        ".{0,12}".prop_map(J::from),
        (0usize..300_000).prop_map(|n| J::String("x".repeat(n))),
        (0usize..100_000).prop_map(|n| json!(vec![1.5; n])),
    ]
}

fn tree_edit() -> impl Strategy<Value = TreeEdit> {
    let at = any::<usize>;
    prop_oneof![
        5 => (at(), odd_value()).prop_map(|(n, v)| TreeEdit::Replace(n, v)),
        2 => at().prop_map(TreeEdit::Remove),
        1 => (at(), 1..300usize).prop_map(|(n, d)| TreeEdit::Nest(n, d)),
        2 => (at(), at()).prop_map(|(n, m)| TreeEdit::Graft(n, m)),
        1 => (at(), 0..20_000usize).prop_map(|(n, l)| TreeEdit::Grow(n, l)),
    ]
}

fn count(j: &J) -> usize {
    1 + match j {
        J::Array(a) => a.iter().map(count).sum(),
        J::Object(o) => o.values().map(count).sum(),
        _ => 0,
    }
}

/// The `n`th node in pre-order (`n` < `count(j)`).
fn node_mut(j: &mut J, mut n: usize) -> &mut J {
    if n == 0 {
        return j;
    }
    n -= 1;
    let children: Vec<&mut J> = match j {
        J::Array(a) => a.iter_mut().collect(),
        J::Object(o) => o.values_mut().collect(),
        _ => unreachable!("n is within the tree"),
    };
    for child in children {
        let c = count(child);
        if n < c {
            return node_mut(child, n);
        }
        n -= c;
    }
    unreachable!("n is within the tree")
}

/// Removes the `n`th node (`n` ≥ 1) from its parent.
fn remove(j: &mut J, n: usize) {
    let mut left = n - 1;
    match j {
        J::Array(a) => {
            for i in 0..a.len() {
                let c = count(&a[i]);
                if left == 0 {
                    a.remove(i);
                    return;
                }
                if left < c {
                    return remove(&mut a[i], left);
                }
                left -= c;
            }
        }
        J::Object(o) => {
            let keys: Vec<String> = o.keys().cloned().collect();
            for k in keys {
                let c = count(&o[&k]);
                if left == 0 {
                    o.remove(&k);
                    return;
                }
                if left < c {
                    return remove(o.get_mut(&k).unwrap(), left);
                }
                left -= c;
            }
        }
        _ => {}
    }
}

fn apply_tree(j: &mut J, e: &TreeEdit) {
    let size = count(j);
    match e {
        TreeEdit::Replace(n, v) => *node_mut(j, n % size) = v.clone(),
        TreeEdit::Remove(n) if size > 1 => remove(j, 1 + n % (size - 1)),
        TreeEdit::Remove(_) => {}
        TreeEdit::Nest(n, depth) => {
            let node = node_mut(j, n % size);
            for _ in 0..*depth {
                *node = J::Array(vec![node.take()]);
            }
        }
        TreeEdit::Graft(n, m) => {
            let copy = node_mut(j, m % size).clone();
            *node_mut(j, n % size) = copy;
        }
        TreeEdit::Grow(n, len) => {
            if let J::Array(a) = node_mut(j, n % size)
                && let Some(first) = a.first().cloned()
                && serde_json::to_vec(&first).unwrap().len() * len <= MAX_INPUT
            {
                a.resize(*len, first);
            }
        }
    }
}

/// The largest input a target is given (libFuzzer's default is 4 KiB; Kiln's bodies are
/// larger, and what passes a route's size limit is refused before it is parsed).
const MAX_INPUT: usize = 4 << 20;

/// A JSON seed with one to four edits of its tree (an edit that would make it larger than
/// [`MAX_INPUT`] is skipped).
fn tree_mutant(docs: Arc<Vec<J>>) -> BoxedStrategy<(usize, Vec<u8>)> {
    (any::<usize>(), vec(tree_edit(), 1..4))
        .prop_map(move |(i, edits)| {
            let mut doc = docs[i % docs.len()].clone();
            let mut bytes = serde_json::to_vec(&doc).unwrap();
            for e in &edits {
                let mut next = doc.clone();
                apply_tree(&mut next, e);
                let next_bytes = serde_json::to_vec(&next).unwrap();
                if next_bytes.len() <= MAX_INPUT {
                    (doc, bytes) = (next, next_bytes);
                }
            }
            (i % docs.len(), bytes)
        })
        .boxed()
}

/// What a target's inputs look like, and so how they are mutated.
#[derive(Clone, Copy, PartialEq)]
enum Shape {
    Bytes,
    /// JSON documents: their trees are edited as well as their bytes.
    Json,
}

/// Inputs for a target: the seeds as they are, byte mutants, and for JSON tree mutants.
fn inputs(seeds: &[Vec<u8>], shape: Shape) -> BoxedStrategy<(usize, Vec<u8>)> {
    let seeds = Arc::new(seeds.to_vec());
    let plain = {
        let seeds = seeds.clone();
        any::<usize>()
            .prop_map(move |i| (i % seeds.len(), seeds[i % seeds.len()].clone()))
            .boxed()
    };
    match shape {
        Shape::Bytes => prop_oneof![1 => plain, 9 => byte_mutant(seeds)].boxed(),
        Shape::Json => {
            let docs = Arc::new(
                seeds
                    .iter()
                    .map(|s| serde_json::from_slice(s).expect("a JSON seed"))
                    .collect(),
            );
            prop_oneof![1 => plain, 3 => byte_mutant(seeds), 6 => tree_mutant(docs)].boxed()
        }
    }
}

/// How long each target runs: `KILN_FUZZ_SECS`, or `default` seconds.
fn budget(default: f64) -> Duration {
    let secs = std::env::var("KILN_FUZZ_SECS")
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .unwrap_or(default);
    Duration::from_secs_f64(secs)
}

/// What a target made of an input: accepted (`Ok(true)`: parsed and used), refused with
/// its own error (`Ok(false)`), or a broken promise (`Err`).
type Outcome = Result<bool, String>;

/// Runs `target` on inputs made from `seeds` for `time`: each input must be accepted or
/// refused, never end in a panic or a broken promise. Prints the figures; on a failure,
/// saves the input and fails naming it and the seed that replays it.
fn fuzz(
    name: &str,
    seeds: &[Vec<u8>],
    shape: Shape,
    time: Duration,
    mut target: impl FnMut(&[u8], usize) -> Outcome,
) {
    let seed: u64 = std::env::var("KILN_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand_seed);
    let mut key = [0u8; 32];
    key[..8].copy_from_slice(&seed.to_le_bytes());
    let mut runner = TestRunner::new_with_rng(
        Config::default(),
        TestRng::from_seed(RngAlgorithm::ChaCha, &key),
    );
    let strategy = inputs(seeds, shape);
    let started = Instant::now();
    let (mut executions, mut accepted, mut slowest) = (0u64, 0u64, Duration::ZERO);
    while executions == 0 || started.elapsed() < time {
        let (from, input) = strategy.new_tree(&mut runner).unwrap().current();
        let t = Instant::now();
        let outcome = catch_unwind(AssertUnwindSafe(|| target(&input, from)));
        slowest = slowest.max(t.elapsed());
        executions += 1;
        let failure = match outcome {
            Ok(Ok(took)) => {
                accepted += u64::from(took);
                continue;
            }
            Ok(Err(broken)) => broken,
            Err(panic) => format!(
                "panicked: {}",
                panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default()
            ),
        };
        let saved = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join("fuzz-failures")
            .join(format!("{name}-{seed}-{executions}"));
        std::fs::create_dir_all(saved.parent().unwrap()).unwrap();
        std::fs::write(&saved, &input).unwrap();
        panic!(
            "fuzz {name}: input {executions} (replay with KILN_FUZZ_SEED={seed}; saved as {}): {failure}\ninput starts: {:?}",
            saved.display(),
            String::from_utf8_lossy(&input[..input.len().min(300)])
        );
    }
    let _ = writeln!(
        std::io::stderr(),
        "fuzz {name}: {executions} executions ({accepted} accepted) in {:.1}s from {} seeds, slowest {} ms (KILN_FUZZ_SEED={seed})",
        started.elapsed().as_secs_f64(),
        seeds.len(),
        slowest.as_millis()
    );
    // The seeds themselves are accepted: a target that refuses everything tests nothing.
    assert!(accepted > 0, "fuzz {name}: no input was accepted");
}

fn rand_seed() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

// ---- targets in the library ----

#[test]
fn value_documents_are_read_or_refused_and_survive_a_round_trip() {
    let seeds = only(corpus("values"));
    fuzz("values", &seeds, Shape::Json, budget(3.0), |bytes, _| {
        let Ok(doc) = serde_json::from_slice::<J>(bytes) else {
            return Ok(false);
        };
        let Ok(v) = value::from_json(&doc) else {
            return Ok(false);
        };
        round_trip(&v).map(|()| true)
    });
}

/// A value's document is read back as the same value.
fn round_trip(v: &Value) -> Result<(), String> {
    let doc = value::to_json(v);
    let back = value::from_json(&doc).map_err(|e| format!("its own document is refused: {e:#}"))?;
    let again = value::to_json(&back);
    if again != doc {
        return Err(format!("the document changed: {doc} became {again}"));
    }
    Ok(())
}

#[test]
fn csv_tables_are_read_or_refused_whole() {
    let seeds = only(corpus("csv"));
    fuzz("csv", &seeds, Shape::Bytes, budget(2.0), |bytes, _| {
        let Ok(table) = value::table_from_csv(bytes) else {
            return Ok(false);
        };
        let rows = table.columns.first().map(|c| value::column_cells(c).len());
        for c in &table.columns {
            if Some(value::column_cells(c).len()) != rows
                || c.valid.as_ref().is_some_and(|v| Some(v.len()) != rows)
            {
                return Err(format!("column `{}` has another length", c.name));
            }
        }
        round_trip(&Value::Table(table)).map(|()| true)
    });
}

#[test]
fn plugin_manifests_are_read_or_refused_and_keep_their_signed_form() {
    let seeds: Vec<Vec<u8>> = std::fs::read_dir(repo().join("plugins"))
        .unwrap()
        .filter_map(|e| std::fs::read(e.unwrap().path().join("kiln.toml")).ok())
        .collect();
    fuzz(
        "manifests",
        &seeds,
        Shape::Bytes,
        budget(2.0),
        |bytes, _| {
            let Ok(text) = std::str::from_utf8(bytes) else {
                return Ok(false);
            };
            let Ok(m) = Manifest::parse(text) else {
                return Ok(false);
            };
            // What a registry stores and a publisher signs is the manifest as JSON: it reads
            // back equal, and signs the same.
            let back: Manifest = serde_json::from_slice(&serde_json::to_vec(&m).unwrap())
                .map_err(|e| format!("its JSON record is refused: {e}"))?;
            let payload = |m: &Manifest| {
                kiln::registry::sign::payload(&m.plugin.name, &m.plugin.version, "00", m)
            };
            if back != m || payload(&back) != payload(&m) {
                return Err("the manifest changed through its JSON record".into());
            }
            Ok(true)
        },
    );
}

/// A workflow is checked as the server checks one posted to it, against the shipped
/// plugins, in time linear in its size: no input takes more than two seconds once the seeds'
/// plugins are compiled.
#[test]
fn workflow_files_are_checked_or_refused_with_diagnostics() {
    let k = Kiln::seeded();
    k.ok(&["search", "scale"]);
    let registry = Arc::new(Registry::open(&k.home().join("registry.redb")).unwrap());
    let models = kiln::tracking::Store::open(k.home()).unwrap();
    let host = {
        let engine = KilnEngine::new(&EngineOptions::default()).unwrap();
        let cache = ArtifactCache::new(engine.engine(), crate::shared_code());
        PluginHost::new(engine, cache).unwrap()
    };
    let open = move || Ok(registry.clone());
    let resolver = Resolver {
        host: &host,
        registry: &open,
        update: false,
        models: Some(&models),
        bundle: None,
    };
    // Each mutant is checked as the file it was made from, in a directory that holds what
    // the seeds read as the workflow cases have it (tests/workflows/README.md): the
    // datasets, as `examples/data` and as `data`, the test guests, and a directory `out`.
    let scratch = tempfile::tempdir().unwrap();
    let data = repo().join("examples/data");
    std::os::unix::fs::symlink(repo().join("examples"), scratch.path().join("examples")).unwrap();
    std::os::unix::fs::symlink(&data, scratch.path().join("data")).unwrap();
    let guests = Path::new(g::ECHO_STEP).parent().unwrap();
    std::os::unix::fs::symlink(guests, scratch.path().join("guests")).unwrap();
    std::fs::create_dir(scratch.path().join("out")).unwrap();
    let mut paths = vec![(
        scratch.path().join("quickstart.yaml"),
        repo().join("examples/quickstart.yaml"),
    )];
    for case in std::fs::read_dir(repo().join("tests/workflows")).unwrap() {
        let case = case.unwrap().path();
        let file = case.join("workflow.yaml");
        if file.is_file() {
            let name = format!("{}.yaml", case.file_name().unwrap().to_string_lossy());
            paths.push((scratch.path().join(name), file));
        }
    }
    paths.sort();
    let seeds: Vec<Vec<u8>> = paths
        .iter()
        .map(|(_, p)| std::fs::read(p).unwrap())
        .collect();
    let paths: Vec<PathBuf> = paths.into_iter().map(|(at, _)| at).collect();
    let check = |path: &Path, text: &str| prepare_text(text, Origin::File(path), &resolver, false);
    // The seeds' plugins are compiled first, so that what is timed is the checking.
    for (path, seed) in paths.iter().zip(&seeds) {
        let _ = check(path, std::str::from_utf8(seed).unwrap());
    }
    fuzz(
        "workflows",
        &seeds,
        Shape::Bytes,
        budget(5.0),
        |bytes, from| {
            let Ok(text) = std::str::from_utf8(bytes) else {
                return Ok(false);
            };
            let t = Instant::now();
            let outcome = check(&paths[from], text);
            if t.elapsed() > Duration::from_secs(2) {
                return Err(format!("checking took {:?}", t.elapsed()));
            }
            match outcome {
                Err(PrepareError::Invalid(d)) if d.summary().trim().is_empty() => {
                    Err("refused without a diagnostic".into())
                }
                outcome => Ok(outcome.is_ok()),
            }
        },
    );
}

/// A bundle for each committed manifest: the files it names (each holding its own path,
/// which the seeds' digests describe), sealed with a key made here.
fn pack(manifest: &[u8], key: &ed25519_dalek::SigningKey) -> Vec<u8> {
    let mut names = Vec::new();
    if let Ok(doc) = serde_json::from_slice::<J>(manifest) {
        paths(&doc, &mut names);
    }
    let public = key.verifying_key();
    let seal = json!({
        "key": kiln::registry::sign::key_id(&public),
        "public": hex::encode(public.as_bytes()),
        "signature": kiln::registry::sign::sign(key, manifest),
    });
    let mut tar = tar::Builder::new(Vec::new());
    let mut add = |name: &str, bytes: &[u8]| {
        let mut h = tar::Header::new_gnu();
        h.set_size(bytes.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        let _ = tar.append_data(&mut h, name, bytes);
    };
    add("kiln-bundle.json", manifest);
    add("kiln-bundle.sig", seal.to_string().as_bytes());
    for name in names {
        add(&name, name.as_bytes());
    }
    tar.into_inner().unwrap()
}

/// Every `path` a manifest's file entries name.
fn paths(j: &J, out: &mut Vec<String>) {
    match j {
        J::Object(o) => {
            if let (Some(J::String(p)), true) = (o.get("path"), o.contains_key("sha256")) {
                out.push(p.clone());
            }
            o.values().for_each(|v| paths(v, out));
        }
        J::Array(a) => a.iter().for_each(|v| paths(v, out)),
        _ => {}
    }
}

/// Bundles: their manifests mutated (and packed with what they name) and their archives
/// mutated. Reading, the signature check and the lookups a device makes answer or refuse.
#[test]
fn bundles_are_read_or_refused() {
    let key = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
    let manifests = only(corpus("bundles"));
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("fuzz.kbundle");
    let trusted = kiln::registry::sign::key_id(&key.verifying_key());
    let public = hex::encode(key.verifying_key().as_bytes());
    let open = |archive: &[u8]| -> Outcome {
        std::fs::write(&file, archive).unwrap();
        let Ok(bundle) = Bundle::read(&file) else {
            return Ok(false);
        };
        let _ = bundle.verify_signature(&|id| (id == trusted).then(|| public.clone()));
        let _ = bundle.check_target();
        let _ = bundle.check_engine(None);
        if let Ok(model) = bundle.model() {
            let _ = bundle.plugin(&model.runner);
        }
        let _ = bundle.workflow();
        Ok(true)
    };
    fuzz(
        "bundle-manifests",
        &manifests,
        Shape::Json,
        budget(2.0),
        |m, _| open(&pack(m, &key)),
    );
    let archives: Vec<Vec<u8>> = manifests.iter().map(|m| pack(m, &key)).collect();
    fuzz(
        "bundle-archives",
        &archives,
        Shape::Bytes,
        budget(2.0),
        |a, _| open(a),
    );
}

/// Components: the smallest guests, mutated, are loaded (and, if they load, described
/// under a short deadline) or refused; the host keeps working.
#[test]
fn mutated_components_are_loaded_or_refused() {
    let seeds: Vec<Vec<u8>> = [g::ECHO_STEP, g::SELECT_COLUMNS, g::COUNTING_TRACKER]
        .iter()
        .map(|p| std::fs::read(p).unwrap())
        .collect();
    let engine = KilnEngine::new(&EngineOptions::default()).unwrap();
    let cache = ArtifactCache::disabled(engine.engine());
    let host = PluginHost::new(engine, cache).unwrap();
    let mut opts = CallOptions::default();
    opts.limits.timeout = Duration::from_millis(200);
    fuzz(
        "components",
        &seeds,
        Shape::Bytes,
        budget(6.0),
        |bytes, _| {
            let Ok(plugin) = host.load_bytes("fuzzed", bytes, None) else {
                return Ok(false);
            };
            let _ = plugin.describe(&opts);
            Ok(true)
        },
    );
    host.load_bytes("echo", &seeds[0], None)
        .expect("the host still loads a good component");
}

// ---- targets on a real server ----

const PUBLISH: &str = "publish-token-0123456789abc";

/// One request's answer: any status below 500, a JSON body, and a code on every error;
/// accepted if it succeeded.
fn answered(status: u16, body: &[u8]) -> Outcome {
    if status >= 500 {
        return Err(format!(
            "answered {status}: {}",
            String::from_utf8_lossy(body)
        ));
    }
    let doc: J = serde_json::from_slice(body).map_err(|_| {
        format!(
            "answered {status} with a body that is not JSON: {:?}",
            String::from_utf8_lossy(&body[..body.len().min(200)])
        )
    })?;
    if status >= 400 && !doc["error"]["code"].is_string() && !doc["error_code"].is_string() {
        return Err(format!("answered {status} without an error code: {doc}"));
    }
    Ok(status < 400)
}

/// The quickstart's model on a real server, fuzzed through every body the predict routes
/// read: JSON in each of its forms, CSV, a binary tensor with its headers, and OIP's
/// infer requests; then the server is still healthy and still predicts.
#[test]
fn predict_and_inference_bodies_are_answered_or_refused_as_json() {
    let k = Kiln::seeded();
    crate::serving::run(&k, &crate::serving::quickstart(&k, 42));
    let s = Server::start(&k, None);
    let seeds = corpus("predict");
    let group = |prefix: &str, ext: &str| -> Vec<Vec<u8>> {
        seeds
            .iter()
            .filter(|(n, _)| n.starts_with(prefix) && n.ends_with(ext))
            .map(|(_, b)| b.clone())
            .collect()
    };
    let predict = "/v1/models/diabetes-progression/candidate/predict";
    let post = |path: &str, headers: &[(&str, &str)], body: &[u8]| {
        let (status, _, bytes) = s.send("POST", path, headers, Some(body.to_vec()));
        answered(status, &bytes)
    };
    let json = [("Content-Type", "application/json")];
    fuzz(
        "predict-json",
        &group("v1-", ".json"),
        Shape::Json,
        budget(3.0),
        |b, _| post(predict, &json, b),
    );
    fuzz(
        "predict-csv",
        &group("v1-", ".csv"),
        Shape::Bytes,
        budget(2.0),
        |b, _| post(predict, &[("Content-Type", "text/csv")], b),
    );
    fuzz(
        "oip-infer",
        &group("oip-", ".json"),
        Shape::Json,
        budget(3.0),
        |b, _| post("/v2/models/diabetes-progression/infer", &json, b),
    );
    // A binary tensor: its first line is `kiln-shape`, its second `kiln-dtype`.
    fuzz(
        "predict-tensor",
        &group("v1-", ".bin"),
        Shape::Bytes,
        budget(2.0),
        |b, _| {
            let mut parts = b.splitn(3, |&c| c == b'\n');
            let (Some(shape), Some(dtype), Some(body)) = (parts.next(), parts.next(), parts.next())
            else {
                return Ok(false);
            };
            let header = |v: &[u8]| {
                std::str::from_utf8(v)
                    .ok()
                    .filter(|t| t.bytes().all(|c| (0x20..0x7f).contains(&c)))
                    .map(str::to_string)
            };
            let (Some(shape), Some(dtype)) = (header(shape), header(dtype)) else {
                return Ok(false);
            };
            post(
                predict,
                &[
                    ("Content-Type", "application/octet-stream"),
                    ("kiln-shape", &shape),
                    ("kiln-dtype", &dtype),
                ],
                body,
            )
        },
    );
    assert_eq!(s.call("GET", "/healthz", None, None).0, 200);
    let (status, answer) = s.json(
        "POST",
        predict,
        None,
        Some(seeds_named(&seeds, "v1-rows.json")),
    );
    assert_eq!(status, 200, "{answer}");
}

fn seeds_named(seeds: &[(String, Vec<u8>)], name: &str) -> Vec<u8> {
    seeds.iter().find(|(n, _)| n == name).unwrap().1.clone()
}

/// Publish requests to a real marketplace, made from a signed publish of a small plugin
/// and mutated: each is published or refused with a JSON error, and what was published
/// before is unchanged.
#[test]
fn publish_bodies_are_published_or_refused_as_json() {
    let k = Kiln::new();
    k.ok(&["key", "generate", "--name", "default"]);
    let s = Server::start(
        &k,
        Some(&format!(
            "[[tokens]]\ntoken = \"{PUBLISH}\"\nscopes = [\"publish\"]\n"
        )),
    );
    let seed = crate::serve::signed_body(k.home(), "select-columns", g::SELECT_COLUMNS);
    let (status, first) = s.json("POST", "/v1/plugins", Some(PUBLISH), Some(seed.clone()));
    assert_eq!(status, 201, "{first}");
    let (_, before) = s.json("GET", "/v1/plugins/select-columns", None, None);
    fuzz("publish", &[seed], Shape::Json, budget(3.0), |b, _| {
        let (status, bytes) = s.call("POST", "/v1/plugins", Some(PUBLISH), Some(b.to_vec()));
        answered(status, &bytes)
    });
    let (_, after) = s.json("GET", "/v1/plugins/select-columns", None, None);
    assert_eq!(
        before["versions"][0], after["versions"][0],
        "the published version changed"
    );
}
