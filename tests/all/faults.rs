//! Storage faults and power loss, beyond `kill -9`: the registry and the tracking store run
//! on a simulated disk (a redb storage backend) that fails every write and sync from a
//! chosen I/O operation on, and then loses its power, keeping what was synced plus any
//! subset of the writes since, the last of them possibly torn. For every failure point of a
//! workload, each operation either succeeds or returns an error (never a panic), and the
//! store opened again from what survived, through Kiln's own open and redb's repair, holds
//! every operation that had succeeded — and in the registry, a log whose hash chain and
//! digests verify.

use std::{
    collections::BTreeMap,
    io,
    panic::{AssertUnwindSafe, catch_unwind},
    path::Path,
    sync::{Arc, Mutex, MutexGuard},
};

use crate::Kiln;
use kiln::{
    registry::{Manifest, Registry},
    tracking::{Metric, Store},
};
use rand::{RngExt, SeedableRng, rngs::StdRng};
use redb::StorageBackend;

/// One change to the disk since its last sync.
#[derive(Debug, Clone)]
enum Change {
    Write(u64, Vec<u8>),
    Resize(u64),
}

#[derive(Debug, Default)]
struct Platters {
    /// What survives a power loss: the bytes as of the last successful sync.
    durable: Vec<u8>,
    /// What the running process reads.
    live: Vec<u8>,
    /// The changes since the last sync, in order.
    unsynced: Vec<Change>,
    /// Writes, resizes and syncs that succeed before every one fails; `None`: all do.
    left: Option<u64>,
    /// Writes, resizes and syncs attempted.
    operations: u64,
}

/// A disk in memory that fails on cue and loses its power.
#[derive(Debug, Clone, Default)]
struct Disk(Arc<Mutex<Platters>>);

impl Disk {
    /// A disk holding `image`, already synced.
    fn holding(image: Vec<u8>) -> Disk {
        Disk(Arc::new(Mutex::new(Platters {
            durable: image.clone(),
            live: image,
            ..Platters::default()
        })))
    }

    fn platters(&self) -> MutexGuard<'_, Platters> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Fails every write, resize and sync after `n` more.
    fn fail_after(&self, n: u64) {
        self.platters().left = Some(n);
    }

    fn operations(&self) -> u64 {
        self.platters().operations
    }

    /// The image a power loss leaves: the synced bytes, then each change made since
    /// kept or lost at random, in order, the last one kept possibly cut short at a
    /// 512-byte sector.
    fn power_loss(&self, rng: &mut StdRng) -> Vec<u8> {
        let p = self.platters();
        let mut image = p.durable.clone();
        let kept: Vec<&Change> = p.unsynced.iter().filter(|_| rng.random_bool(0.5)).collect();
        for (i, change) in kept.iter().enumerate() {
            match change {
                Change::Resize(len) => image.resize(*len as usize, 0),
                Change::Write(offset, data) => {
                    let torn = i + 1 == kept.len() && rng.random_bool(0.5);
                    let len = if torn {
                        (rng.random_range(0..=data.len()) / 512 * 512).min(data.len())
                    } else {
                        data.len()
                    };
                    put(&mut image, *offset, &data[..len]);
                }
            }
        }
        image
    }
}

fn put(image: &mut Vec<u8>, offset: u64, data: &[u8]) {
    let end = offset as usize + data.len();
    if image.len() < end {
        image.resize(end, 0);
    }
    image[offset as usize..end].copy_from_slice(data);
}

impl Platters {
    /// Counts an operation; an error once the disk has failed.
    fn spend(&mut self) -> io::Result<()> {
        self.operations += 1;
        match self.left {
            Some(0) => Err(io::Error::other("injected disk failure")),
            Some(n) => {
                self.left = Some(n - 1);
                Ok(())
            }
            None => Ok(()),
        }
    }
}

impl StorageBackend for Disk {
    fn len(&self) -> io::Result<u64> {
        Ok(self.platters().live.len() as u64)
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> io::Result<()> {
        let p = self.platters();
        let start = offset as usize;
        let bytes = p
            .live
            .get(start..start + out.len())
            .ok_or_else(|| io::Error::new(io::ErrorKind::UnexpectedEof, "read past the end"))?;
        out.copy_from_slice(bytes);
        Ok(())
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        let mut p = self.platters();
        p.spend()?;
        p.live.resize(len as usize, 0);
        p.unsynced.push(Change::Resize(len));
        Ok(())
    }

    fn sync_data(&self) -> io::Result<()> {
        let mut p = self.platters();
        p.spend()?;
        p.durable = p.live.clone();
        p.unsynced.clear();
        Ok(())
    }

    fn write(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        let mut p = self.platters();
        p.spend()?;
        put(&mut p.live, offset, data);
        p.unsynced.push(Change::Write(offset, data.to_vec()));
        Ok(())
    }
}

/// Runs `workload` on a fresh store on a disk that fails after `fail_after` operations
/// (`None`: never), stopping at its first error as a server's request would; then cuts the
/// power. Returns what each succeeded step promised (a check of the store reopened), the
/// image left, and how many disk operations the workload attempted.
fn crash<S>(
    open: &dyn Fn(Disk) -> S,
    workload: &Workload<'_, S>,
    fail_after: Option<u64>,
    rng: &mut StdRng,
) -> (Vec<Promise<S>>, Vec<u8>, u64) {
    let disk = Disk::default();
    let store = open(disk.clone());
    let before = disk.operations();
    if let Some(n) = fail_after {
        disk.fail_after(n);
    }
    let mut promises = Vec::new();
    let outcome = catch_unwind(AssertUnwindSafe(|| workload(&store, &mut promises)));
    let image = disk.power_loss(rng);
    // The process is gone: nothing it does on the way out reaches the image.
    let dropped = catch_unwind(AssertUnwindSafe(|| drop(store)));
    assert!(
        outcome.is_ok() && dropped.is_ok(),
        "a store panicked on a failing disk (failure after {fail_after:?} operations)"
    );
    (promises, image, disk.operations() - before)
}

/// What one succeeded operation promises of the store it was made on.
type Promise<S> = Box<dyn Fn(&S) -> Result<(), String>>;

/// Operations on a store, each pushing its promise once it has succeeded.
type Workload<'a, S> = dyn Fn(&S, &mut Vec<Promise<S>>) -> Result<(), String> + 'a;

/// Crashes `workload` at every disk operation it makes, and at once more, and checks each
/// image: it opens (with Kiln's checks and redb's repair) and keeps every promise.
fn every_failure_point<S>(
    name: &str,
    open: &dyn Fn(Disk) -> S,
    workload: &Workload<'_, S>,
    extra: &dyn Fn(&S) -> Result<(), String>,
) {
    let mut rng = StdRng::seed_from_u64(7);
    let (promises, _, total) = crash(open, workload, None, &mut rng);
    assert!(
        total > 10,
        "{name}: the workload made only {total} disk operations"
    );
    let mut kept = 0;
    for point in 0..=total {
        let (promises, image, _) = crash(open, workload, Some(point), &mut rng);
        let reopened = catch_unwind(AssertUnwindSafe(|| open(Disk::holding(image))))
            .unwrap_or_else(|_| {
                panic!("{name}: the image left by a failure at operation {point} does not open")
            });
        for promise in &promises {
            promise(&reopened).unwrap_or_else(|e| {
                panic!("{name}: after a failure at operation {point} and a power loss: {e}")
            });
        }
        extra(&reopened).unwrap_or_else(|e| {
            panic!("{name}: after a failure at operation {point} and a power loss: {e}")
        });
        kept += promises.len();
    }
    assert!(!promises.is_empty());
    eprintln!("{name}: {} failure points, {kept} promises kept", total + 1);
}

fn manifest(version: &str) -> Manifest {
    Manifest::parse(&format!(
        "[plugin]\nname = \"faulty\"\nversion = \"{version}\"\nrole = \"step\"\nwit = \"{}\"\n",
        kiln::bindings::WIT_PACKAGE
    ))
    .unwrap()
}

#[test]
fn the_registry_keeps_every_acknowledged_publish_through_disk_failures_and_power_loss() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("registry.redb");
    let key = ed25519_dalek::SigningKey::from_bytes(&[3; 32]);
    let public = hex::encode(key.verifying_key().as_bytes());
    let open = |disk: Disk| Registry::open_backend(disk, &path).expect("the registry opens");
    let workload = |r: &Registry, promises: &mut Vec<Promise<Registry>>| {
        let err = |e: kiln::registry::RegistryError| e.to_string();
        r.trust_key("ci", &public).map_err(err)?;
        for i in 0..12u32 {
            let version = format!("1.0.{i}");
            // Components big enough to take several pages, each different.
            let bytes: Vec<u8> = (0..20_000u32).map(|b| (b * (i + 1)) as u8).collect();
            let record = r.publish(&manifest(&version), &bytes, &key).map_err(err)?;
            promises.push(Box::new(move |r: &Registry| {
                let found = r
                    .versions("faulty")
                    .map_err(|e| e.to_string())?
                    .into_iter()
                    .find(|v| v.version == version)
                    .ok_or(format!("published faulty@{version} is gone"))?;
                let fetched = r.fetch(&found).map_err(|e| e.to_string())?;
                (found.digest == record.digest && fetched == bytes)
                    .then_some(())
                    .ok_or(format!("faulty@{version} changed"))
            }));
            if i % 4 == 3 {
                r.set_yanked("faulty", &format!("1.0.{}", i - 1), true)
                    .map_err(err)?;
            }
        }
        Ok(())
    };
    let verified = |r: &Registry| {
        let report = r.verify().map_err(|e| e.to_string())?;
        report
            .problems
            .is_empty()
            .then_some(())
            .ok_or(format!("verify: {:?}", report.problems))
    };
    every_failure_point("registry", &open, &workload, &verified);
}

#[test]
fn the_tracking_store_keeps_every_acknowledged_write_through_disk_failures_and_power_loss() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_path_buf();
    let open = |disk: Disk| Store::open_backend(disk, &data).expect("the store opens");
    let workload = |s: &Store, promises: &mut Vec<Promise<Store>>| {
        let err = |e: kiln::tracking::TrackingError| e.to_string();
        let none = BTreeMap::new();
        let experiment = s.create_experiment("faults", None, &none).map_err(err)?;
        for r in 0..3 {
            let run = s
                .create_run(&experiment, Some(&format!("run-{r}")), None, &none)
                .map_err(err)?;
            let id = run.info.run_id.clone();
            promises.push(Box::new({
                let id = id.clone();
                move |s: &Store| s.tracked_run(&id).map(drop).map_err(|e| e.to_string())
            }));
            for batch in 0..6i64 {
                let metrics: Vec<(String, Metric)> = (0..50)
                    .map(|i| {
                        let step = batch * 50 + i;
                        let value = (step as f64).sin();
                        (
                            "loss".to_string(),
                            Metric {
                                value,
                                timestamp: step,
                                step,
                            },
                        )
                    })
                    .collect();
                let params = [(format!("p{batch}"), format!("{r}-{batch}"))];
                s.log_batch(&id, &metrics, &params, &[]).map_err(err)?;
                let id = id.clone();
                let logged = (batch as usize + 1) * 50;
                promises.push(Box::new(move |s: &Store| {
                    let history = s.metric_history(&id, "loss").map_err(|e| e.to_string())?;
                    let run = s.tracked_run(&id).map_err(|e| e.to_string())?;
                    let param = run.params.contains_key(&format!("p{batch}"));
                    let points_ok = history.len() >= logged
                        && history
                            .iter()
                            .all(|m| m.value == (m.step as f64).sin() && m.timestamp == m.step);
                    (points_ok && param).then_some(()).ok_or(format!(
                        "run {id}: {} of {logged} acknowledged points, param p{batch} {}",
                        history.len(),
                        if param { "kept" } else { "lost" }
                    ))
                }));
            }
        }
        Ok(())
    };
    every_failure_point("tracking", &open, &workload, &|s: &Store| {
        s.ping().map_err(|e| e.to_string())
    });
}

/// The registry file itself: what the crash tests' disk runs on is what Kiln writes.
#[test]
fn a_registry_on_the_simulated_disk_reads_as_the_same_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("registry.redb");
    let disk = Disk::default();
    {
        let r = Registry::open_backend(disk.clone(), &path).unwrap();
        r.set_meta("note", "written on the simulated disk").unwrap();
    }
    std::fs::write(&path, disk.platters().live.clone()).unwrap();
    let r = Registry::open(Path::new(&path)).unwrap();
    assert_eq!(
        r.meta("note").unwrap().as_deref(),
        Some("written on the simulated disk")
    );
}

/// A data directory whose first command is killed while it creates its stores: the next
/// command finds either no store or a whole one, never a half-made file it must refuse
/// (a new file is made under another name and linked into place). Files a killed process
/// was making are removed by the next one that creates.
#[test]
fn a_process_killed_while_creating_its_stores_leaves_none_half_made() {
    let mut rng = StdRng::seed_from_u64(11);
    for attempt in 0..100 {
        let k = Kiln::new();
        let mut child = k
            .cmd()
            .args(["search", "x"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_micros(
            rng.random_range(0..30_000),
        ));
        let _ = child.kill();
        let _ = child.wait();
        let out = k.run(&["search", "x"]);
        assert!(
            out.status.success(),
            "attempt {attempt}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let leftovers: Vec<String> = std::fs::read_dir(k.home())
            .unwrap()
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|n| n.contains(".creating-"))
            .collect();
        assert!(leftovers.is_empty(), "attempt {attempt}: {leftovers:?}");
    }
}
