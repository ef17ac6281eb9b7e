//! The tracking store: a redb file in the data directory (`tracking.redb`) holding what
//! runs produced and recorded, with values kept by content.
//!
//! - **Objects**: every value a step produced, encoded (postcard) and keyed by the sha256
//!   of that encoding. Small ones live in the database; large ones are files under
//!   `objects/` beside it, named by digest and checked against it when read.
//! - **Step cache**: a step's cache key (plugin digest, config, input digests, grants) →
//!   the digests of the outputs it produced, its checks and metrics.
//! - **Runs**: each workflow run's lineage: per step, the plugin digest, config, input and
//!   output digests, status and timing.
//! - **Models**: registered models, their versions (source run, artifact, runner) and aliases.
//!
//! Writes from a running workflow go through one writer thread ([`Writer`]) that commits
//! whatever has queued up in one transaction, so a run of many small steps pays for few
//! commits while every finished step is durable soon after it finishes.

pub mod artifacts;
pub mod experiments;
mod live;
pub mod models;
pub mod predictions;
mod records;
pub mod search;
pub mod sync;
mod tables;

use std::{
    path::{Path, PathBuf},
    sync::{Arc, mpsc},
    thread::JoinHandle,
};

use anyhow::{Context, Result, ensure};
use redb::{Database, ReadableDatabase, ReadableTable, TableHandle};

pub use experiments::{DatasetInput, Experiment, Metric, RunInfo, TrackedRun, TrackingError};
pub use live::LiveRun;
pub use records::*;
use tables::*;

use crate::{bindings::Value, digest::sha256_hex};

/// Objects up to this size are stored inside the database.
const INLINE_MAX: usize = 256 * 1024;

/// An open tracking store.
pub struct Store {
    db: Database,
    objects: PathBuf,
    path: PathBuf,
    /// Bumped after every committed change of registered models, versions or aliases, so
    /// a reader holding a resolution (serving's alias cache) knows when to look again.
    models_generation: std::sync::atomic::AtomicU64,
}

fn create_tables(txn: &redb::WriteTransaction) -> Result<(), redb::TableError> {
    txn.open_table(OBJECTS)?;
    txn.open_table(CACHE)?;
    txn.open_table(RUNS)?;
    txn.open_table(MODELS)?;
    txn.open_table(MODEL_VERSIONS)?;
    txn.open_table(EXPERIMENTS)?;
    txn.open_table(EXPERIMENT_NAMES)?;
    txn.open_table(TRACKED_RUNS)?;
    txn.open_table(METRIC_CHUNKS)?;
    txn.open_table(ARTIFACTS)?;
    txn.open_table(ALIAS_EVENTS)?;
    txn.open_table(SYNC_SENT)?;
    txn.open_table(PREDICTIONS)?;
    txn.open_table(SYNCED_PREDICTIONS)?;
    txn.open_table(PREDICTION_SYNC_CURSORS)?;
    Ok(())
}

/// An encoded value and its digest.
#[derive(Debug, Clone)]
pub struct Object {
    pub digest: String,
    pub bytes: Arc<Vec<u8>>,
}

impl Object {
    /// Encodes a value.
    pub fn encode(value: &Value) -> Result<Object> {
        let bytes = postcard::to_stdvec(value).context("encoding a value")?;
        Ok(Object {
            digest: sha256_hex(&bytes),
            bytes: Arc::new(bytes),
        })
    }
}

impl Store {
    /// Opens (or creates) the store in `data_dir`. A file that is not a Kiln tracking
    /// store, or was written by a newer Kiln, is refused untouched.
    pub fn open(data_dir: &Path) -> Result<Store> {
        let path = data_dir.join("tracking.redb");
        let opened = crate::db::open(&path, SCHEMA_VERSION, |txn| Ok(create_tables(txn)?));
        Store::opened(data_dir, opened)
    }

    /// As [`open`](Self::open), with the store's file on a redb storage backend (its
    /// objects and artifacts stay in `data_dir`).
    pub fn open_backend(backend: impl redb::StorageBackend, data_dir: &Path) -> Result<Store> {
        let opened =
            crate::db::open_backend(backend, SCHEMA_VERSION, |txn| Ok(create_tables(txn)?));
        Store::opened(data_dir, opened)
    }

    fn opened(
        data_dir: &Path,
        opened: Result<(Database, bool), crate::db::OpenError>,
    ) -> Result<Store> {
        use crate::db::OpenError as E;
        let path = data_dir.join("tracking.redb");
        let shown = path.display().to_string();
        let (db, created) = opened.map_err(|e| match e {
            E::Unusable(e) => {
                anyhow::anyhow!("opening {shown} (is it a Kiln tracking store, and intact?): {e}")
            }
            E::Foreign => {
                anyhow::anyhow!("{shown} is not a Kiln tracking store (it has no schema version)")
            }
            E::Newer(v) | E::Older(v) => anyhow::anyhow!(
                "{shown} has tracking schema {v}; this Kiln reads schema {SCHEMA_VERSION}"
            ),
            E::BadVersion(v) => {
                anyhow::anyhow!("{shown} has tracking schema `{v}`, which is not a number")
            }
            E::Storage(e) => anyhow::Error::from(e).context(format!("opening {shown}")),
        })?;
        let store = Store {
            db,
            objects: data_dir.join("objects"),
            path,
            models_generation: std::sync::atomic::AtomicU64::new(0),
        };
        if !created {
            store.create_missing_tables()?;
        }
        Ok(store)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether the store answers a read.
    pub fn ping(&self) -> Result<()> {
        self.db.begin_read()?.open_table(RUNS)?;
        Ok(())
    }

    /// Creates the tables added within this schema version, on first open of an older file.
    fn create_missing_tables(&self) -> Result<()> {
        let added = [
            ALIAS_EVENTS.name(),
            SYNC_SENT.name(),
            PREDICTIONS.name(),
            SYNCED_PREDICTIONS.name(),
            PREDICTION_SYNC_CURSORS.name(),
        ];
        let present: Vec<String> = self
            .db
            .begin_read()?
            .list_tables()?
            .map(|t| t.name().to_string())
            .collect();
        let missing = added.iter().any(|name| !present.iter().any(|p| p == name));
        if missing {
            let txn = self.db.begin_write()?;
            create_tables(&txn)?;
            txn.commit()?;
        }
        Ok(())
    }

    fn object_file(&self, digest: &str) -> PathBuf {
        let (head, tail) = digest.split_at(2.min(digest.len()));
        self.objects.join(head).join(tail)
    }

    /// Whether an object is stored.
    pub fn has_object(&self, digest: &str) -> Result<bool> {
        let txn = self.db.begin_read()?;
        Ok(txn.open_table(OBJECTS)?.get(digest)?.is_some() || self.object_file(digest).is_file())
    }

    /// An object's bytes, checked against its digest.
    pub fn object(&self, digest: &str) -> Result<Vec<u8>> {
        let inline = {
            let txn = self.db.begin_read()?;
            txn.open_table(OBJECTS)?
                .get(digest)?
                .map(|v| v.value().to_vec())
        };
        let bytes = match inline {
            Some(b) => b,
            None => {
                let file = self.object_file(digest);
                std::fs::read(&file)
                    .with_context(|| format!("object sha256:{digest} is missing from the store"))?
            }
        };
        let actual = sha256_hex(&bytes);
        ensure!(
            actual == digest,
            "object sha256:{digest} is damaged (its content hashes to {actual})"
        );
        Ok(bytes)
    }

    /// A stored value.
    pub fn value(&self, digest: &str) -> Result<Value> {
        let bytes = self.object(digest)?;
        postcard::from_bytes(&bytes).with_context(|| format!("decoding object sha256:{digest}"))
    }

    /// A step's cached result.
    pub fn cached(&self, key: &str) -> Result<Option<CacheEntry>> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(CACHE)?;
        let Some(v) = table.get(key)? else {
            return Ok(None);
        };
        Ok(serde_json::from_slice(v.value()).ok())
    }

    /// Applies a batch of writes in one transaction. Large objects are written to their
    /// files first (atomically, by rename), so a record never points at a missing file.
    pub fn apply(&self, batch: &[Write]) -> Result<()> {
        for w in batch {
            if let Write::Object(o) = w
                && o.bytes.len() > INLINE_MAX
            {
                self.write_object_file(o)?;
            }
        }
        let txn = self.db.begin_write()?;
        {
            let mut objects = txn.open_table(OBJECTS)?;
            let mut cache = txn.open_table(CACHE)?;
            let mut runs = txn.open_table(RUNS)?;
            for w in batch {
                match w {
                    Write::Object(o) if o.bytes.len() <= INLINE_MAX => {
                        if objects.get(o.digest.as_str())?.is_none() {
                            objects.insert(o.digest.as_str(), o.bytes.as_slice())?;
                        }
                    }
                    Write::Object(_) => {}
                    Write::Cache(key, entry) => {
                        cache.insert(key.as_str(), serde_json::to_vec(entry)?.as_slice())?;
                    }
                    Write::Run(run) => {
                        runs.insert(run.id.as_str(), serde_json::to_vec(run)?.as_slice())?;
                    }
                    Write::TrackStart(_) | Write::TrackEnd(_) | Write::Metrics { .. } => {}
                }
            }
        }
        // Tracked runs, in the order sent: a run is created before points reach it.
        for w in batch {
            match w {
                Write::TrackStart(run) => experiments::insert_run_in(&txn, run)?,
                Write::Metrics { run, points } => experiments::log_points_in(&txn, run, points)?,
                Write::TrackEnd(end) => experiments::end_run_in(&txn, end)?,
                _ => {}
            }
        }
        txn.commit()?;
        Ok(())
    }

    fn write_object_file(&self, o: &Object) -> Result<()> {
        let file = self.object_file(&o.digest);
        if file.is_file() {
            return Ok(());
        }
        let dir = file.parent().unwrap_or(&self.objects);
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let tmp = dir.join(format!(".{}.tmp-{}", o.digest, std::process::id()));
        // The bytes are on disk before the name is, and the name before the record.
        std::fs::File::create(&tmp)
            .and_then(|mut f| {
                std::io::Write::write_all(&mut f, o.bytes.as_slice())?;
                f.sync_all()
            })
            .with_context(|| format!("writing {}", tmp.display()))?;
        std::fs::rename(&tmp, &file)
            .and_then(|()| crate::db::sync_dir(dir))
            .with_context(|| format!("writing {}", file.display()))
    }

    /// A run by id, or by a unique prefix of its id.
    pub fn run(&self, id: &str) -> Result<RunRecord, TrackingError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(RUNS)?;
        if let Some(v) = table.get(id)? {
            return Ok(serde_json::from_slice(v.value())?);
        }
        let mut found = Vec::new();
        if !id.is_empty() {
            for row in table.range(id..)? {
                let (k, v) = row?;
                if !k.value().starts_with(id) || found.len() > 1 {
                    break;
                }
                found.push(v.value().to_vec());
            }
        }
        match found.len() {
            1 => Ok(serde_json::from_slice(&found[0])?),
            0 => Err(TrackingError::NotFound(format!("no run `{id}`"))),
            _ => Err(TrackingError::Invalid(format!(
                "`{id}` is the start of several run ids; give more of it"
            ))),
        }
    }

    /// One output of a run (`id` as for [`run`](Self::run)), read from the store.
    pub fn run_output(&self, id: &str, step: &str, name: &str) -> Result<Value, TrackingError> {
        let run = self.run(id)?;
        let st = run.steps.iter().find(|x| x.id == step).ok_or_else(|| {
            TrackingError::NotFound(format!("run {} has no step `{step}`", run.id))
        })?;
        let out = st.outputs.iter().find(|o| o.name == name).ok_or_else(|| {
            let names: Vec<&str> = st.outputs.iter().map(|o| o.name.as_str()).collect();
            TrackingError::NotFound(format!(
                "step `{step}` of run {} has no output `{name}` (it has: {})",
                run.id,
                names.join(", ")
            ))
        })?;
        self.value(&out.digest)
            .map_err(|e| TrackingError::Storage(format!("{e:#}")))
    }

    /// Every run, oldest first.
    pub fn runs(&self) -> Result<Vec<RunRecord>> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(RUNS)?;
        let mut out = Vec::new();
        for row in table.iter()? {
            let (_, v) = row?;
            if let Ok(r) = serde_json::from_slice(v.value()) {
                out.push(r);
            }
        }
        Ok(out)
    }
}

/// How long the writer gathers writes into one commit: the longest a finished step's
/// outputs wait to become durable, beyond the commit itself.
const GATHER: std::time::Duration = std::time::Duration::from_millis(5);

/// One write for the [`Writer`].
#[derive(Debug, Clone)]
pub enum Write {
    Object(Object),
    Cache(String, CacheEntry),
    Run(Box<RunRecord>),
    /// The tracked run of a workflow run, created.
    TrackStart(Box<TrackedRun>),
    /// The tracked run of a workflow run, ended.
    TrackEnd(Box<experiments::RunEnd>),
    /// Metric points a step's plugin logged, for the tracked run of the same id.
    Metrics {
        run: String,
        points: Vec<(String, Metric)>,
    },
}

enum Message {
    Write(Write),
    Flush(Reply),
}

type Reply = mpsc::Sender<Result<(), String>>;

fn take(m: Message, batch: &mut Vec<Write>, flushes: &mut Vec<Reply>) {
    match m {
        Message::Write(w) => batch.push(w),
        Message::Flush(reply) => flushes.push(reply),
    }
}

/// A thread that applies writes in batches: each commit takes everything queued.
pub struct Writer {
    tx: Option<mpsc::Sender<Message>>,
    thread: Option<JoinHandle<()>>,
}

impl Writer {
    pub fn start(store: Arc<Store>) -> Writer {
        let (tx, rx) = mpsc::channel::<Message>();
        let thread = std::thread::Builder::new()
            .name("kiln-store-writer".into())
            .spawn(move || {
                let mut failed: Option<String> = None;
                while let Ok(first) = rx.recv() {
                    let mut batch = Vec::new();
                    let mut flushes = Vec::new();
                    take(first, &mut batch, &mut flushes);
                    // Group commit: gather what arrives in the next few milliseconds into
                    // the same transaction, unless someone is waiting for it.
                    let until = std::time::Instant::now() + GATHER;
                    while flushes.is_empty() {
                        let left = until.saturating_duration_since(std::time::Instant::now());
                        match rx.recv_timeout(left) {
                            Ok(m) => take(m, &mut batch, &mut flushes),
                            Err(_) => break,
                        }
                    }
                    while let Ok(m) = rx.try_recv() {
                        take(m, &mut batch, &mut flushes);
                    }
                    if !batch.is_empty()
                        && failed.is_none()
                        && let Err(e) = store.apply(&batch)
                    {
                        failed = Some(format!("{e:#}"));
                    }
                    for reply in flushes {
                        let _ = reply.send(failed.clone().map_or(Ok(()), Err));
                    }
                }
            })
            .expect("spawning the store writer thread");
        Writer {
            tx: Some(tx),
            thread: Some(thread),
        }
    }

    /// Queues a write.
    pub fn send(&self, w: Write) {
        if let Some(tx) = &self.tx {
            let _ = tx.send(Message::Write(w));
        }
    }

    /// Waits until everything queued so far is committed; reports the first failed commit.
    pub fn flush(&self) -> Result<()> {
        let (reply, done) = mpsc::channel();
        if let Some(tx) = &self.tx {
            tx.send(Message::Flush(reply))
                .map_err(|_| anyhow::anyhow!("the store writer stopped"))?;
        }
        done.recv()
            .map_err(|_| anyhow::anyhow!("the store writer stopped"))?
            .map_err(|e| anyhow::anyhow!("writing to the tracking store: {e}"))
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.tx.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
