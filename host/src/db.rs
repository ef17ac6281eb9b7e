//! Opening a Kiln redb file (the registry, the tracking store): multi-writer mode, a
//! `meta` table holding `schema_version`, and refusal — without writing — of a file that is
//! damaged, foreign, or of another schema. Only a new file is initialised: made whole under
//! another name, then linked into place.

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
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let making = format!(".{name}.creating-");
    remove_abandoned(dir, &making);
    let created = !path.exists() && create(path, &making, schema, init)?;
    let mut builder = Database::builder();
    builder.set_concurrency_mode(ConcurrencyMode::MultiWriter);
    let db = builder
        .open(path)
        .map_err(|e| OpenError::Unusable(e.to_string()))?;
    let (db, _) = checked(db, true, schema, |_| Ok(()))?;
    Ok((db, created))
}

/// Makes a new file whole under a name of this process's (`making` and its id), then links
/// it into place, so that a process stopped while making it (a crash, `kill -9`, a power
/// loss) leaves no half-made file at `path`, which every later open would refuse. If
/// another process made the file first, its file stands. Returns whether this process made
/// it.
fn create(
    path: &Path,
    making: &str,
    schema: u32,
    init: impl FnOnce(&WriteTransaction) -> Result<(), redb::Error>,
) -> Result<bool, OpenError> {
    let unusable = |e: &dyn std::fmt::Display| OpenError::Unusable(e.to_string());
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| unusable(&e))?;
    let made = dir.join(format!("{making}{}", std::process::id()));
    {
        let db = Database::builder()
            .create(&made)
            .map_err(|e| unusable(&e))?;
        checked(db, false, schema, init)?;
    }
    let linked = std::fs::hard_link(&made, path);
    let _ = std::fs::remove_file(&made);
    match linked {
        Ok(()) => {
            sync_dir(dir).map_err(|e| unusable(&e))?;
            Ok(true)
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(unusable(&format!(
            "placing the new {}: {e}",
            path.display()
        ))),
    }
}

/// Syncs directory `dir`, so that a rename or link into it survives a power loss.
pub(crate) fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

/// Removes the files named `prefix` and a process id that [`create`] was making in
/// processes that are gone (where the system says which processes run: Linux's /proc).
fn remove_abandoned(dir: &Path, prefix: &str) {
    if !Path::new("/proc/self").exists() {
        return;
    }
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let file = entry.file_name();
        let pid = file.to_str().and_then(|f| f.strip_prefix(prefix));
        if let Some(pid) = pid.filter(|p| p.bytes().all(|b| b.is_ascii_digit()))
            && !Path::new("/proc").join(pid).exists()
        {
            let _ = std::fs::remove_file(entry.path());
        }
    }
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
