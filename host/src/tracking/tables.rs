//! The tracking store's redb tables. Records are JSON so they can grow fields without a
//! migration.

use redb::TableDefinition;

/// sha256 hex → encoded value (objects up to the inline size; larger ones are files).
pub const OBJECTS: TableDefinition<&str, &[u8]> = TableDefinition::new("objects");
/// Step cache key → [`CacheEntry`](super::CacheEntry).
pub const CACHE: TableDefinition<&str, &[u8]> = TableDefinition::new("step_cache");
/// Run id (time-ordered) → [`RunRecord`](super::RunRecord).
pub const RUNS: TableDefinition<&str, &[u8]> = TableDefinition::new("runs");
/// Model name → [`ModelRecord`](super::ModelRecord).
pub const MODELS: TableDefinition<&str, &[u8]> = TableDefinition::new("models");
/// (model name, version) → [`ModelVersion`](super::ModelVersion).
pub const MODEL_VERSIONS: TableDefinition<(&str, u64), &[u8]> =
    TableDefinition::new("model_versions");

/// Experiment id → [`Experiment`](super::Experiment).
pub const EXPERIMENTS: TableDefinition<u64, &[u8]> = TableDefinition::new("experiments");
/// Experiment name → id.
pub const EXPERIMENT_NAMES: TableDefinition<&str, u64> = TableDefinition::new("experiment_names");
/// Tracking run id → [`TrackedRun`](super::TrackedRun): its info, params, tags, inputs and
/// the latest value of each metric.
pub const TRACKED_RUNS: TableDefinition<&str, &[u8]> = TableDefinition::new("tracked_runs");
/// (run id, metric key, chunk number) → points, packed: each point is value (f64),
/// timestamp (i64, ms) and step (i64), little-endian, 24 bytes. One chunk per logged batch,
/// so logging never rewrites what is stored and the history reads in order.
pub const METRIC_CHUNKS: TableDefinition<(&str, &str, u64), &[u8]> =
    TableDefinition::new("metric_chunks");

/// Artifact path (`<experiment>/<run>/artifacts/<file>`) → (sha256 of its bytes, size);
/// the bytes are an object file.
pub const ARTIFACTS: TableDefinition<&str, (&str, u64)> = TableDefinition::new("artifacts");

/// (model name, sequence number) → [`AliasEvent`](super::models::AliasEvent): every
/// alias change, appended, never rewritten.
pub const ALIAS_EVENTS: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("alias_events");

/// (destination, run id) → the digest of the run as the destination acknowledged it
/// (`kiln sync`, on the device).
pub const SYNC_SENT: TableDefinition<(&str, &str), &str> = TableDefinition::new("sync_sent");

/// Sequence number → [`PredictionRecord`](super::predictions::PredictionRecord), on the
/// machine that served.
pub const PREDICTIONS: TableDefinition<u64, &[u8]> = TableDefinition::new("predictions");
/// (device, its sequence number) → record, on the server devices sync to.
pub const SYNCED_PREDICTIONS: TableDefinition<(&str, u64), &[u8]> =
    TableDefinition::new("synced_predictions");
/// Destination → the last prediction sequence number it acknowledged.
pub const PREDICTION_SYNC_CURSORS: TableDefinition<&str, u64> =
    TableDefinition::new("prediction_sync_cursors");

/// The schema this build reads and writes.
pub const SCHEMA_VERSION: u32 = 1;
