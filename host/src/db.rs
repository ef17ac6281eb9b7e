//! Opening a Kiln redb file (the registry, the tracking store): multi-writer mode, a
//! `meta` table holding `schema_version`, and refusal — without writing — of a file that is
//! damaged, foreign, or of another schema. Only a new, empty file is initialised.

use std::path::Path;

use redb::{
    ConcurrencyMode, Database, ReadableDatabase, StorageBackend, TableDefinition, WriteTransaction,
};

/// `schema_version` and other facts about the file.
pub const META: TableDefinition<&str, &str> = TableDefinition::new("meta");

/// Why a file could not be opened. Callers phrase these for their kind of file.
#[derive(Debug)]
pub enum OpenError {
    /// It cannot be read as redb, or a directory could not be made.
    Unusable(String),
    /// It has tables but no schema version: some other program's file.
    Foreign,
    /// Written by a newer Kiln.
    Newer(u32),
    /// Written by an older Kiln this one cannot read.
    Older(u32),
    /// The schema version is not a number.
    BadVersion(String),
    Storage(redb::Error),
}

impl<E: Into<redb::Error>> From<E> for OpenError {
    fn from(e: E) -> Self {
        OpenError::Storage(e.into())
    }
}

/// Opens (or creates) the file at `path` with schema `schema`. A new file gets the
/// schema version and whatever `init` writes, in one transaction. Returns the database and
/// whether it was created now.
pub fn open(
    path: &Path,
    schema: u32,
    init: impl FnOnce(&WriteTransaction) -> Result<(), redb::Error>,
) -> Result<(Database, bool), OpenError> {
    let mut builder = Database::builder();
    builder.set_concurrency_mode(ConcurrencyMode::MultiWriter);
    let existed = path.exists();
    if !existed && let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| OpenError::Unusable(e.to_string()))?;
    }
    let db = if existed {
        builder.open(path)
    } else {
        builder.create(path)
    }
    .map_err(|e| OpenError::Unusable(e.to_string()))?;
    checked(db, existed, schema, init)
}

/// As [`open`], on any redb storage backend instead of a file: an image in memory, or a
/// disk that fails or loses power when told (the crash tests'). One process only: the
/// backend needs no locks.
pub fn open_backend(
    backend: impl StorageBackend,
    schema: u32,
    init: impl FnOnce(&WriteTransaction) -> Result<(), redb::Error>,
) -> Result<(Database, bool), OpenError> {
    let existed = backend
        .len()
        .map_err(|e| OpenError::Unusable(e.to_string()))?
        > 0;
    let db = Database::builder()
        .create_with_backend(backend)
        .map_err(|e| OpenError::Unusable(e.to_string()))?;
    checked(db, existed, schema, init)
}

/// Checks an opened file's schema, or initialises it when new.
fn checked(
    db: Database,
    existed: bool,
    schema: u32,
    init: impl FnOnce(&WriteTransaction) -> Result<(), redb::Error>,
) -> Result<(Database, bool), OpenError> {
    // Read first, so that a refused file is never written to.
    let found = {
        let txn = db.begin_read()?;
        match txn.open_table(META) {
            Ok(meta) => meta.get("schema_version")?.map(|v| v.value().to_string()),
            Err(redb::TableError::TableDoesNotExist(_)) => None,
            Err(e) => return Err(e.into()),
        }
    };
    match found {
        Some(v) => {
            let found: u32 = v.parse().map_err(|_| OpenError::BadVersion(v))?;
            match found.cmp(&schema) {
                std::cmp::Ordering::Greater => Err(OpenError::Newer(found)),
                std::cmp::Ordering::Less => Err(OpenError::Older(found)),
                std::cmp::Ordering::Equal => Ok((db, false)),
            }
        }
        None => {
            if existed && db.begin_read()?.list_tables()?.next().is_some() {
                return Err(OpenError::Foreign);
            }
            let txn = db.begin_write()?;
            txn.open_table(META)?
                .insert("schema_version", schema.to_string().as_str())?;
            init(&txn)?;
            txn.commit()?;
            Ok((db, true))
        }
    }
}
