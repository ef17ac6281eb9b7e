//! The registry's redb tables, in one place. Records are JSON (serde) so they can grow
//! fields without a migration; keys are plain strings and integers.

use redb::TableDefinition;

/// `schema_version` and other facts about the file.
pub use crate::db::META;
/// Plugin name → [`PluginRecord`](super::PluginRecord).
pub const PLUGINS: TableDefinition<&str, &[u8]> = TableDefinition::new("plugins");
/// `name@version` → [`VersionRecord`](super::VersionRecord). Never overwritten.
pub const VERSIONS: TableDefinition<&str, &[u8]> = TableDefinition::new("versions");
/// Plugin name → its versions and yanked flags (JSON `[["1.2.3", false], ...]`): all that
/// resolution reads, kept beside the full records so resolving never parses manifests.
pub const RESOLVE: TableDefinition<&str, &[u8]> = TableDefinition::new("resolve");
/// sha256 hex → component bytes.
pub const BLOBS: TableDefinition<&str, &[u8]> = TableDefinition::new("blobs");
/// `<digest>-<engine fingerprint>` → size in bytes of the compiled native code, whose file
/// `<key>.cwasm` sits in the `compiled/` directory beside the registry file (loaded by
/// mapping it; see `engine::ArtifactCache`).
pub const COMPILED: TableDefinition<&str, u64> = TableDefinition::new("compiled");
/// Key id → [`KeyRecord`](super::sign::KeyRecord): the publisher keys this registry trusts.
pub const KEYS: TableDefinition<&str, &[u8]> = TableDefinition::new("keys");
/// Sequence number → [`LogEntry`](super::LogEntry): append-only, each entry hashing the previous.
pub const EVENTS: TableDefinition<u64, &[u8]> = TableDefinition::new("events");

/// The schema this build reads and writes.
pub const SCHEMA_VERSION: u32 = 1;
