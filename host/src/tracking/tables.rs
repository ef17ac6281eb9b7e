//! The tracking store's redb tables. Records are JSON so they can grow fields without a
//! migration.

use redb::TableDefinition;

/// `schema_version`.
pub const META: TableDefinition<&str, &str> = TableDefinition::new("meta");
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

/// The schema this build reads and writes.
pub const SCHEMA_VERSION: u32 = 1;
