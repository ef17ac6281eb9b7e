//! The plugin registry: a redb file in the data directory.
//!
//! It keeps plugins and their versions (immutable: a `name@version` is bound to one
//! digest forever), component bytes by sha256, the publisher keys it trusts, and an
//! append-only event log (publish, yank, unyank) in which each entry hashes the one
//! before. Every change is one redb write transaction, so a crash leaves either all of a
//! publish or none of it. The file is opened in redb's multi-writer mode, so the CLI and
//! a server (or several publishers) can share it.
//!
//! This module is a store: it never loads or runs a plugin. Callers check that a
//! component implements its manifest's role before publishing it.

mod error;
pub mod manifest;
pub mod resolve;
pub mod seed;
pub mod sign;
pub mod tables;

use std::path::{Path, PathBuf};

use ed25519_dalek::SigningKey;
use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata};
use serde::{Deserialize, Serialize};

pub use error::RegistryError;
pub use manifest::Manifest;
use resolve::Candidate;
pub use sign::KeyRecord;
use tables::*;

use crate::digest::sha256_hex;

/// A plugin, across its versions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PluginRecord {
    pub name: String,
    pub description: String,
    pub keywords: Vec<String>,
    pub role: String,
    pub created_ms: u64,
}

/// One published version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct VersionRecord {
    pub name: String,
    pub version: String,
    /// sha256 of the component, hex.
    pub digest: String,
    pub size: u64,
    pub manifest: Manifest,
    /// The publisher's signature over [`sign::payload`], hex.
    pub signature: String,
    pub key_id: String,
    pub yanked: bool,
    pub published_ms: u64,
}

impl VersionRecord {
    /// `name@version`.
    pub fn spec(&self) -> String {
        format!("{}@{}", self.name, self.version)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    Publish,
    Yank,
    Unyank,
}

/// One entry of the event log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogEntry {
    pub seq: u64,
    pub kind: EventKind,
    pub name: String,
    pub version: String,
    pub digest: String,
    pub at_ms: u64,
    /// The previous entry's hash (64 zeros for the first).
    pub prev: String,
    /// sha256 of this entry's other fields and `prev`.
    pub hash: String,
}

impl LogEntry {
    fn compute_hash(&self) -> String {
        let doc = serde_json::json!([
            self.seq,
            self.kind,
            self.name,
            self.version,
            self.digest,
            self.at_ms,
            self.prev
        ]);
        sha256_hex(doc.to_string().as_bytes())
    }
}

const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// What `verify` found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct VerifyReport {
    pub events: u64,
    pub versions: u64,
    pub blobs: u64,
    pub problems: Vec<String>,
}

/// An open registry.
pub struct Registry {
    db: Database,
    path: PathBuf,
}

use crate::now_ms;

fn version_key(name: &str, version: &str) -> String {
    format!("{name}@{version}")
}

impl Registry {
    /// Opens the registry at `path`, creating it when absent. A file that is not a Kiln
    /// registry, is damaged, or was written by a newer Kiln is refused, untouched.
    pub fn open(path: &Path) -> Result<Registry, RegistryError> {
        Registry::opened(path, crate::db::open(path, SCHEMA_VERSION, Registry::init))
    }

    /// As [`open`](Self::open), on a redb storage backend instead of the file at `path`
    /// (which still names it in errors and places its compiled code).
    pub fn open_backend(
        backend: impl redb::StorageBackend,
        path: &Path,
    ) -> Result<Registry, RegistryError> {
        let opened = crate::db::open_backend(backend, SCHEMA_VERSION, Registry::init);
        Registry::opened(path, opened)
    }

    /// What a new registry file starts with.
    fn init(txn: &redb::WriteTransaction) -> Result<(), redb::Error> {
        txn.open_table(META)?
            .insert("created_ms", now_ms().to_string().as_str())?;
        Ok(for_each_table(txn)?)
    }

    fn opened(
        path: &Path,
        opened: Result<(Database, bool), crate::db::OpenError>,
    ) -> Result<Registry, RegistryError> {
        use crate::db::OpenError as E;
        let unusable = |reason: String| RegistryError::Unusable {
            path: path.display().to_string(),
            reason,
        };
        let (db, created) = opened.map_err(|e| match e {
            E::Unusable(e) => unusable(format!("{e} (is it a Kiln registry file, and intact?)")),
            E::Foreign => unusable("it has no Kiln schema version: not a Kiln registry".into()),
            E::Newer(found) => RegistryError::NewerSchema {
                path: path.display().to_string(),
                found,
                supported: SCHEMA_VERSION,
            },
            E::Older(found) => unusable(format!("schema {found} is older than this Kiln can read")),
            E::BadVersion(v) => unusable(format!("schema version `{v}` is not a number")),
            E::Storage(e) => e.into(),
        })?;
        let registry = Registry {
            db,
            path: path.to_path_buf(),
        };
        if !created {
            registry.ensure_index()?;
        }
        Ok(registry)
    }

    /// Builds the resolution index if this (valid) file predates it.
    fn ensure_index(&self) -> Result<(), RegistryError> {
        let present = {
            let txn = self.db.begin_read()?;
            match txn.open_table(RESOLVE) {
                Ok(_) => true,
                Err(redb::TableError::TableDoesNotExist(_)) => false,
                Err(e) => return Err(e.into()),
            }
        };
        if !present {
            let txn = self.db.begin_write()?;
            rebuild_index(&txn)?;
            txn.commit()?;
        }
        Ok(())
    }

    /// A fact stored in the meta table.
    pub fn meta(&self, key: &str) -> Result<Option<String>, RegistryError> {
        let txn = self.db.begin_read()?;
        let meta = txn.open_table(META)?;
        Ok(meta.get(key)?.map(|v| v.value().to_string()))
    }

    /// Stores a fact in the meta table (`schema_version` is not writable this way).
    pub fn set_meta(&self, key: &str, value: &str) -> Result<(), RegistryError> {
        if key == "schema_version" {
            return Err(RegistryError::Storage(
                "the schema version is not set by hand".into(),
            ));
        }
        let txn = self.db.begin_write()?;
        txn.open_table(META)?.insert(key, value)?;
        txn.commit()?;
        Ok(())
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Trusts a publisher key. Trusting a key twice is a no-op.
    pub fn trust_key(&self, name: &str, public_hex: &str) -> Result<KeyRecord, RegistryError> {
        let public = sign::public_from_hex(public_hex)?;
        let record = KeyRecord {
            id: sign::key_id(&public),
            name: name.to_string(),
            public: hex::encode(public.as_bytes()),
            added_ms: now_ms(),
        };
        let txn = self.db.begin_write()?;
        {
            let mut keys = txn.open_table(KEYS)?;
            if let Some(existing) = keys.get(record.id.as_str())? {
                return Ok(serde_json::from_slice(existing.value())?);
            }
            keys.insert(record.id.as_str(), serde_json::to_vec(&record)?.as_slice())?;
        }
        txn.commit()?;
        Ok(record)
    }

    /// The trusted keys.
    pub fn keys(&self) -> Result<Vec<KeyRecord>, RegistryError> {
        let txn = self.db.begin_read()?;
        let keys = txn.open_table(KEYS)?;
        keys.iter()?
            .map(|row| Ok(serde_json::from_slice(row?.1.value())?))
            .collect()
    }

    /// A trusted key by id.
    pub fn trusted_key(&self, id: &str) -> Result<Option<KeyRecord>, RegistryError> {
        let txn = self.db.begin_read()?;
        let keys = txn.open_table(KEYS)?;
        Ok(match keys.get(id)? {
            Some(v) => Some(serde_json::from_slice(v.value())?),
            None => None,
        })
    }

    /// Publishes a component under its manifest, signed by `key`, which the registry must
    /// trust. Publishing the same bytes again is a no-op; other bytes under a published
    /// version are refused.
    pub fn publish(
        &self,
        manifest: &Manifest,
        bytes: &[u8],
        key: &SigningKey,
    ) -> Result<VersionRecord, RegistryError> {
        let mut published = self.publish_batch(&[(manifest, bytes)], key)?;
        Ok(published.remove(0))
    }

    /// Publishes several versions in one transaction: all of them, or (on any refusal)
    /// none. Each is checked and signed as [`publish`](Self::publish) does.
    pub fn publish_batch(
        &self,
        items: &[(&Manifest, &[u8])],
        key: &SigningKey,
    ) -> Result<Vec<VersionRecord>, RegistryError> {
        let public = key.verifying_key();
        let key_id = sign::key_id(&public);
        if self.trusted_key(&key_id)?.is_none() {
            return Err(RegistryError::Key(format!(
                "key {key_id} is not trusted by this registry (trust it with `kiln key trust {}`)",
                hex::encode(public.as_bytes())
            )));
        }
        let mut records = Vec::with_capacity(items.len());
        for (manifest, bytes) in items {
            manifest.check()?;
            let sign::SignedVersion {
                manifest,
                digest,
                signature,
            } = sign::sign_version(key, manifest, bytes);
            let name = manifest.plugin.name.clone();
            let version = manifest.version().to_string();
            records.push(VersionRecord {
                name,
                version,
                digest,
                size: bytes.len() as u64,
                manifest,
                signature,
                key_id: key_id.clone(),
                yanked: false,
                published_ms: now_ms(),
            });
        }
        let txn = self.db.begin_write()?;
        let mut out = Vec::with_capacity(records.len());
        for (record, (_, bytes)) in records.into_iter().zip(items) {
            out.push(store_version(&txn, record, bytes)?);
        }
        txn.commit()?;
        Ok(out)
    }

    /// Publishes a version signed elsewhere (by a remote publisher, or pulled from another
    /// registry): the signature must verify against a key this registry trusts.
    pub fn publish_signed(
        &self,
        manifest: &Manifest,
        bytes: &[u8],
        signature: &str,
        key_id: &str,
    ) -> Result<VersionRecord, RegistryError> {
        manifest.check()?;
        let mut manifest = manifest.clone();
        manifest.plugin.component = None;
        let record = VersionRecord {
            name: manifest.plugin.name.clone(),
            version: manifest.version().to_string(),
            digest: sha256_hex(bytes),
            size: bytes.len() as u64,
            manifest,
            signature: signature.to_string(),
            key_id: key_id.to_string(),
            yanked: false,
            published_ms: now_ms(),
        };
        self.check_signature(&record)?;
        let txn = self.db.begin_write()?;
        let stored = store_version(&txn, record, bytes)?;
        txn.commit()?;
        Ok(stored)
    }

    /// A component by its digest, if stored (unchecked: callers holding a record use
    /// [`fetch`](Self::fetch)).
    pub fn blob(&self, digest: &str) -> Result<Option<Vec<u8>>, RegistryError> {
        let txn = self.db.begin_read()?;
        let blobs = txn.open_table(BLOBS)?;
        Ok(blobs.get(digest)?.map(|v| v.value().to_vec()))
    }

    /// Yanks (or un-yanks) a version: resolution skips it unless pinned with `=`.
    pub fn set_yanked(
        &self,
        name: &str,
        version: &str,
        yanked: bool,
    ) -> Result<VersionRecord, RegistryError> {
        let version = semver::Version::parse(version)
            .map_err(|e| RegistryError::Manifest(format!("`{version}` is not a version: {e}")))?
            .to_string();
        let txn = self.db.begin_write()?;
        let record = {
            let mut versions = txn.open_table(VERSIONS)?;
            let vkey = version_key(name, &version);
            let mut record: VersionRecord = match versions.get(vkey.as_str())? {
                Some(v) => serde_json::from_slice(v.value())?,
                None => {
                    return Err(RegistryError::UnknownVersion {
                        name: name.into(),
                        version,
                    });
                }
            };
            if record.yanked != yanked {
                record.yanked = yanked;
                versions.insert(vkey.as_str(), serde_json::to_vec(&record)?.as_slice())?;
                update_index(&txn, name, &version, Some(yanked))?;
                let kind = if yanked {
                    EventKind::Yank
                } else {
                    EventKind::Unyank
                };
                append_event(&txn, kind, name, &version, &record.digest)?;
            }
            record
        };
        txn.commit()?;
        Ok(record)
    }

    /// Every version of a plugin, oldest first.
    pub fn versions(&self, name: &str) -> Result<Vec<VersionRecord>, RegistryError> {
        let txn = self.db.begin_read()?;
        let versions = txn.open_table(VERSIONS)?;
        // Names hold no `@`, and `A` follows `@`: this range is exactly `name@*`.
        let (lo, hi) = (format!("{name}@"), format!("{name}A"));
        let mut out: Vec<VersionRecord> = versions
            .range(lo.as_str()..hi.as_str())?
            .map(|row| Ok(serde_json::from_slice(row?.1.value())?))
            .collect::<Result<_, RegistryError>>()?;
        out.sort_by_cached_key(|v| semver::Version::parse(&v.version).ok());
        Ok(out)
    }

    /// The version of `name` that `req` resolves to. Reads the compact index, then the
    /// one chosen record.
    pub fn resolve(
        &self,
        name: &str,
        req: &semver::VersionReq,
    ) -> Result<VersionRecord, RegistryError> {
        let txn = self.db.begin_read()?;
        let index = txn.open_table(RESOLVE)?;
        let entries: Vec<(String, bool)> = match index.get(name)? {
            Some(v) => serde_json::from_slice(v.value())?,
            None => return Err(RegistryError::UnknownPlugin(name.to_string())),
        };
        let candidates: Vec<Candidate> = entries
            .iter()
            .filter_map(|(v, yanked)| {
                Some(Candidate {
                    version: semver::Version::parse(v).ok()?,
                    yanked: *yanked,
                })
            })
            .collect();
        let Some(chosen) = resolve::resolve(req, &candidates) else {
            let mut sorted = candidates.clone();
            sorted.sort_by(|a, b| a.version.cmp(&b.version));
            return Err(RegistryError::NoMatch {
                name: name.to_string(),
                req: req.to_string(),
                available: sorted
                    .iter()
                    .map(|c| {
                        if c.yanked {
                            format!("{} (yanked)", c.version)
                        } else {
                            c.version.to_string()
                        }
                    })
                    .collect(),
            });
        };
        let versions = txn.open_table(VERSIONS)?;
        let key = version_key(name, &chosen.version.to_string());
        let record = versions
            .get(key.as_str())?
            .ok_or_else(|| RegistryError::Corrupt {
                name: name.to_string(),
                version: chosen.version.to_string(),
                reason: "the resolution index lists it but no record exists".into(),
            })?;
        Ok(serde_json::from_slice(record.value())?)
    }

    /// The component of a version, after checking its digest and its signature against
    /// a trusted key. A tampered blob, manifest or record is refused.
    pub fn fetch(&self, record: &VersionRecord) -> Result<Vec<u8>, RegistryError> {
        let corrupt = |reason: String| RegistryError::Corrupt {
            name: record.name.clone(),
            version: record.version.clone(),
            reason,
        };
        let bytes = {
            let txn = self.db.begin_read()?;
            let blobs = txn.open_table(BLOBS)?;
            let blob = blobs
                .get(record.digest.as_str())?
                .ok_or_else(|| corrupt("its component is missing".into()))?;
            blob.value().to_vec()
        };
        let actual = sha256_hex(&bytes);
        if actual != record.digest {
            return Err(corrupt(format!(
                "its component's digest is {actual}, the record says {}",
                record.digest
            )));
        }
        self.check_signature(record)?;
        Ok(bytes)
    }

    fn check_signature(&self, record: &VersionRecord) -> Result<(), RegistryError> {
        let fail = |reason: String| RegistryError::Signature {
            name: record.name.clone(),
            version: record.version.clone(),
            reason,
        };
        let key = self.trusted_key(&record.key_id)?.ok_or_else(|| {
            fail(format!(
                "signed by key {}, which this registry does not trust",
                record.key_id
            ))
        })?;
        let payload = sign::payload(
            &record.name,
            &record.version,
            &record.digest,
            &record.manifest,
        );
        sign::verify(&key.public, &payload, &record.signature).map_err(fail)
    }

    /// Plugins whose name, description or keywords contain every word (case-insensitive).
    pub fn search(&self, words: &[String]) -> Result<Vec<PluginRecord>, RegistryError> {
        let words: Vec<String> = words.iter().map(|w| w.to_lowercase()).collect();
        let txn = self.db.begin_read()?;
        let plugins = txn.open_table(PLUGINS)?;
        let mut out = Vec::new();
        for row in plugins.iter()? {
            let p: PluginRecord = serde_json::from_slice(row?.1.value())?;
            let text =
                format!("{} {} {}", p.name, p.description, p.keywords.join(" ")).to_lowercase();
            if words.iter().all(|w| text.contains(w.as_str())) {
                out.push(p);
            }
        }
        Ok(out)
    }

    /// The event log, in order.
    pub fn events(&self) -> Result<Vec<LogEntry>, RegistryError> {
        let txn = self.db.begin_read()?;
        let events = txn.open_table(EVENTS)?;
        events
            .iter()?
            .map(|row| Ok(serde_json::from_slice(row?.1.value())?))
            .collect()
    }

    /// Replays the event log and rechecks every digest and signature.
    pub fn verify(&self) -> Result<VerifyReport, RegistryError> {
        let mut report = VerifyReport::default();
        let mut prev = GENESIS.to_string();
        let mut state: std::collections::BTreeMap<String, (String, bool)> = Default::default();
        for (i, e) in self.events()?.into_iter().enumerate() {
            report.events += 1;
            if e.seq != i as u64 {
                report
                    .problems
                    .push(format!("event {i} has sequence number {}", e.seq));
            }
            if e.prev != prev {
                report.problems.push(format!(
                    "event {} does not follow the one before it (chain broken)",
                    e.seq
                ));
            }
            if e.compute_hash() != e.hash {
                report.problems.push(format!(
                    "event {} has been altered (its hash does not match)",
                    e.seq
                ));
            }
            prev = e.hash.clone();
            let key = version_key(&e.name, &e.version);
            match e.kind {
                EventKind::Publish => {
                    if state
                        .insert(key.clone(), (e.digest.clone(), false))
                        .is_some()
                    {
                        report
                            .problems
                            .push(format!("{key} is published twice in the log"));
                    }
                }
                EventKind::Yank | EventKind::Unyank => match state.get_mut(&key) {
                    Some(s) => s.1 = e.kind == EventKind::Yank,
                    None => report.problems.push(format!(
                        "event {} yanks {key}, which was never published",
                        e.seq
                    )),
                },
            }
        }
        let txn = self.db.begin_read()?;
        let versions = txn.open_table(VERSIONS)?;
        report.blobs = txn.open_table(BLOBS)?.len()?;
        let mut seen = 0usize;
        for row in versions.iter()? {
            let record: VersionRecord = serde_json::from_slice(row?.1.value())?;
            report.versions += 1;
            let spec = record.spec();
            match state.get(&spec) {
                None => report
                    .problems
                    .push(format!("{spec} is stored but the log never published it")),
                Some((digest, yanked)) => {
                    seen += 1;
                    if *digest != record.digest {
                        report.problems.push(format!(
                            "{spec}: the log published digest {digest}, the record says {}",
                            record.digest
                        ));
                    }
                    if *yanked != record.yanked {
                        report.problems.push(format!(
                            "{spec}: yanked is {}, the log says {yanked}",
                            record.yanked
                        ));
                    }
                }
            }
            if let Err(e) = self.fetch(&record) {
                report.problems.push(e.to_string());
            }
        }
        let index = txn.open_table(RESOLVE)?;
        for (spec, (_, yanked)) in &state {
            let (name, version) = spec.split_once('@').unwrap_or((spec, ""));
            let listed: Vec<(String, bool)> = match index.get(name)? {
                Some(v) => serde_json::from_slice(v.value())?,
                None => Vec::new(),
            };
            if !listed.iter().any(|(v, y)| v == version && y == yanked) {
                report.problems.push(format!(
                    "{spec} is missing from the resolution index, or its yanked flag there is wrong"
                ));
            }
        }
        if seen != state.len() {
            report.problems.push(format!(
                "the log publishes {} versions, {seen} are stored",
                state.len()
            ));
        }
        Ok(report)
    }
}

/// Compiled code lives beside the components it came from: files in `compiled/` next to
/// the registry file, accounted for in the `compiled` table.
impl crate::engine::CompiledStore for Registry {
    fn dir(&self) -> PathBuf {
        self.path
            .parent()
            .unwrap_or(Path::new("."))
            .join("compiled")
    }

    fn recorded(&self, key: &str, size: u64) -> anyhow::Result<()> {
        let txn = self.db.begin_write()?;
        txn.open_table(COMPILED)?.insert(key, size)?;
        txn.commit()?;
        Ok(())
    }

    fn forgotten(&self, key: &str) -> anyhow::Result<()> {
        let txn = self.db.begin_write()?;
        txn.open_table(COMPILED)?.remove(key)?;
        txn.commit()?;
        Ok(())
    }
}

/// Opens every table so a read transaction never meets a missing one.
fn for_each_table(txn: &redb::WriteTransaction) -> Result<(), redb::TableError> {
    txn.open_table(PLUGINS)?;
    txn.open_table(VERSIONS)?;
    txn.open_table(RESOLVE)?;
    txn.open_table(BLOBS)?;
    txn.open_table(COMPILED)?;
    txn.open_table(KEYS)?;
    txn.open_table(EVENTS)?;
    Ok(())
}

/// Stores one signed version in `txn`: the record, the index entry, the blob, the plugin
/// record and the log entry. Returns the existing record when the same bytes are already
/// published under this version.
fn store_version(
    txn: &redb::WriteTransaction,
    record: VersionRecord,
    bytes: &[u8],
) -> Result<VersionRecord, RegistryError> {
    let (name, version, digest, manifest) = (
        record.name.clone(),
        record.version.clone(),
        record.digest.clone(),
        record.manifest.clone(),
    );
    let mut versions = txn.open_table(VERSIONS)?;
    let vkey = version_key(&name, &version);
    if let Some(existing) = versions.get(vkey.as_str())? {
        let existing: VersionRecord = serde_json::from_slice(existing.value())?;
        if existing.digest == digest {
            return Ok(existing);
        }
        return Err(RegistryError::Immutable {
            name,
            version,
            existing: existing.digest,
        });
    }
    versions.insert(vkey.as_str(), serde_json::to_vec(&record)?.as_slice())?;
    update_index(txn, &name, &version, Some(false))?;
    let mut blobs = txn.open_table(BLOBS)?;
    if blobs.get(digest.as_str())?.is_none() {
        blobs.insert(digest.as_str(), bytes)?;
    }
    let mut plugins = txn.open_table(PLUGINS)?;
    let created_ms = match plugins.get(name.as_str())? {
        Some(p) => serde_json::from_slice::<PluginRecord>(p.value())?.created_ms,
        None => record.published_ms,
    };
    let plugin = PluginRecord {
        name: name.clone(),
        description: manifest.plugin.description.clone(),
        keywords: manifest.plugin.keywords.clone(),
        role: manifest.plugin.role.clone(),
        created_ms,
    };
    plugins.insert(name.as_str(), serde_json::to_vec(&plugin)?.as_slice())?;
    append_event(txn, EventKind::Publish, &name, &version, &digest)?;

    Ok(record)
}

/// Records `version` of `name` in the resolution index with its yanked flag.
fn update_index(
    txn: &redb::WriteTransaction,
    name: &str,
    version: &str,
    yanked: Option<bool>,
) -> Result<(), RegistryError> {
    let mut index = txn.open_table(RESOLVE)?;
    let mut entries: Vec<(String, bool)> = match index.get(name)? {
        Some(v) => serde_json::from_slice(v.value())?,
        None => Vec::new(),
    };
    match (entries.iter_mut().find(|(v, _)| v == version), yanked) {
        (Some(entry), Some(y)) => entry.1 = y,
        (None, Some(y)) => entries.push((version.to_string(), y)),
        (_, None) => {}
    }
    index.insert(name, serde_json::to_vec(&entries)?.as_slice())?;
    Ok(())
}

/// Builds the resolution index from the version records, for a file written before the
/// index existed.
fn rebuild_index(txn: &redb::WriteTransaction) -> Result<(), RegistryError> {
    let records: Vec<VersionRecord> = {
        let versions = txn.open_table(VERSIONS)?;
        versions
            .iter()?
            .map(|row| Ok(serde_json::from_slice(row?.1.value())?))
            .collect::<Result<_, RegistryError>>()?
    };
    for r in records {
        update_index(txn, &r.name, &r.version, Some(r.yanked))?;
    }
    Ok(())
}

fn append_event(
    txn: &redb::WriteTransaction,
    kind: EventKind,
    name: &str,
    version: &str,
    digest: &str,
) -> Result<(), RegistryError> {
    let mut events = txn.open_table(EVENTS)?;
    let (seq, prev) = match events.last()? {
        Some((k, v)) => (
            k.value() + 1,
            serde_json::from_slice::<LogEntry>(v.value())?.hash,
        ),
        None => (0, GENESIS.to_string()),
    };
    let mut entry = LogEntry {
        seq,
        kind,
        name: name.into(),
        version: version.into(),
        digest: digest.into(),
        at_ms: now_ms(),
        prev,
        hash: String::new(),
    };
    entry.hash = entry.compute_hash();
    events.insert(seq, serde_json::to_vec(&entry)?.as_slice())?;
    Ok(())
}
