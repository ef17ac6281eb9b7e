//! Run artifacts: files under `<experiment>/<run>/artifacts/`, stored by content (the bytes
//! are an object file named by their sha256) and indexed by path.

use std::{
    io::Write as _,
    path::{Path, PathBuf},
};

use redb::ReadableDatabase;
use sha2::{Digest, Sha256};

use super::{Store, TrackingError, tables::ARTIFACTS};

/// One entry of a directory listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArtifactEntry {
    /// The name relative to the listed directory.
    pub name: String,
    pub is_dir: bool,
    pub size: Option<u64>,
}

/// Checks an artifact path: relative, `/`-separated, no empty, `.` or `..` segments.
pub fn check_path(path: &str) -> Result<(), TrackingError> {
    let bad = path.is_empty()
        || path.starts_with('/')
        || path.contains('\\')
        || path.contains('\0')
        || path
            .split('/')
            .any(|s| s.is_empty() || s == "." || s == "..");
    if bad {
        return Err(TrackingError::Invalid(format!(
            "`{path}` is not a valid artifact path"
        )));
    }
    Ok(())
}

/// What an upload past `limit` bytes is told.
pub fn too_large(limit: u64) -> String {
    format!(
        "an artifact may be at most {} (the server's max_artifact_mib)",
        bytesize::ByteSize(limit).display().iec()
    )
}

/// Receives an artifact's bytes into a temporary file under `objects/tmp`, hashing them
/// on the way. The file is locked while the upload lives, so that
/// [`Store::clean_uploads`] removes only what a stopped process left.
pub struct Upload {
    file: std::fs::File,
    tmp: PathBuf,
    hash: Sha256,
    size: u64,
    limit: u64,
}

impl Upload {
    /// Adds bytes; refuses to go past the size limit.
    pub fn write(&mut self, chunk: &[u8]) -> Result<(), TrackingError> {
        self.size += chunk.len() as u64;
        if self.size > self.limit {
            return Err(TrackingError::TooLarge(too_large(self.limit)));
        }
        self.hash.update(chunk);
        self.file
            .write_all(chunk)
            .map_err(|e| TrackingError::Storage(e.to_string()))
    }
}

impl Drop for Upload {
    fn drop(&mut self) {
        // Gone already when committed (renamed); otherwise an abandoned upload.
        let _ = std::fs::remove_file(&self.tmp);
    }
}

impl Store {
    /// Starts receiving an artifact of at most `limit` bytes.
    pub fn begin_upload(&self, limit: u64) -> Result<Upload, TrackingError> {
        let dir = self.objects.join("tmp");
        std::fs::create_dir_all(&dir).map_err(|e| TrackingError::Storage(e.to_string()))?;
        let tmp = dir.join(uuid::Uuid::now_v7().simple().to_string());
        let file =
            std::fs::File::create(&tmp).map_err(|e| TrackingError::Storage(e.to_string()))?;
        file.lock()
            .map_err(|e| TrackingError::Storage(e.to_string()))?;
        Ok(Upload {
            file,
            tmp,
            hash: Sha256::new(),
            size: 0,
            limit,
        })
    }

    /// Stores a received artifact at `path` (replacing what was there): the bytes are
    /// synced and moved to their object file before the index points at them.
    pub fn commit_upload(
        &self,
        path: &str,
        upload: Upload,
    ) -> Result<(String, u64), TrackingError> {
        check_path(path)?;
        let digest = hex::encode(upload.hash.clone().finalize());
        let size = upload.size;
        upload
            .file
            .sync_all()
            .map_err(|e| TrackingError::Storage(e.to_string()))?;
        let target = self.object_file(&digest);
        if !target.is_file() {
            if let Some(dir) = target.parent() {
                std::fs::create_dir_all(dir).map_err(|e| TrackingError::Storage(e.to_string()))?;
            }
            std::fs::rename(&upload.tmp, &target)
                .and_then(|()| crate::db::sync_dir(target.parent().unwrap_or(&self.objects)))
                .map_err(|e| TrackingError::Storage(e.to_string()))?;
        }
        let txn = self.db.begin_write()?;
        txn.open_table(ARTIFACTS)?
            .insert(path, (digest.as_str(), size))?;
        txn.commit()?;
        Ok((digest, size))
    }

    /// The object file holding the artifact at `path`, and its size.
    pub fn artifact(&self, path: &str) -> Result<(PathBuf, u64), TrackingError> {
        check_path(path)?;
        let txn = self.db.begin_read()?;
        let table = txn.open_table(ARTIFACTS)?;
        match table.get(path)? {
            Some(v) => {
                let (digest, size) = v.value();
                Ok((self.object_file(digest), size))
            }
            None => Err(TrackingError::NotFound(format!("no artifact `{path}`"))),
        }
    }

    /// The entries directly inside directory `dir` (a path prefix), sorted by name.
    pub fn list_artifacts(&self, dir: &str) -> Result<Vec<ArtifactEntry>, TrackingError> {
        let dir = dir.trim_end_matches('/');
        check_path(dir)?;
        let prefix = format!("{dir}/");
        let txn = self.db.begin_read()?;
        let table = txn.open_table(ARTIFACTS)?;
        let mut out: Vec<ArtifactEntry> = Vec::new();
        for row in table.range(prefix.as_str()..)? {
            let (k, v) = row?;
            let Some(rest) = k.value().strip_prefix(&prefix) else {
                break;
            };
            match rest.split_once('/') {
                Some((sub, _)) => {
                    if out.last().is_none_or(|e| e.name != sub) {
                        out.push(ArtifactEntry {
                            name: sub.to_string(),
                            is_dir: true,
                            size: None,
                        });
                    }
                }
                None => out.push(ArtifactEntry {
                    name: rest.to_string(),
                    is_dir: false,
                    size: Some(v.value().1),
                }),
            }
        }
        Ok(out)
    }

    /// Where object files live (for a reader that streams one).
    pub fn objects_dir(&self) -> &Path {
        &self.objects
    }

    /// Removes the temporary files of uploads whose process stopped before they finished
    /// (a crash, `kill -9`); uploads in progress, here or in another process, hold a lock
    /// on theirs and are left alone. Returns how many were removed.
    pub fn clean_uploads(&self) -> std::io::Result<usize> {
        let entries = match std::fs::read_dir(self.objects.join("tmp")) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(e),
        };
        let mut removed = 0;
        for entry in entries {
            let path = entry?.path();
            let Ok(file) = std::fs::File::open(&path) else {
                continue;
            };
            if file.try_lock().is_ok() && std::fs::remove_file(&path).is_ok() {
                removed += 1;
            }
        }
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn artifacts_are_stored_by_content_and_listed_by_directory() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        for (path, bytes) in [
            ("1/r/artifacts/model/model.json", &b"{}"[..]),
            ("1/r/artifacts/model/weights.bin", &b"\x00\x01"[..]),
            ("1/r/artifacts/notes.txt", &b"hello"[..]),
            ("1/r/artifacts/copy.txt", &b"hello"[..]),
        ] {
            let mut u = s.begin_upload(1 << 20).unwrap();
            u.write(bytes).unwrap();
            s.commit_upload(path, u).unwrap();
        }
        let top = s.list_artifacts("1/r/artifacts").unwrap();
        let names: Vec<(&str, bool)> = top.iter().map(|e| (e.name.as_str(), e.is_dir)).collect();
        assert_eq!(
            names,
            [("copy.txt", false), ("model", true), ("notes.txt", false)]
        );
        assert_eq!(s.list_artifacts("1/r/artifacts/model").unwrap().len(), 2);
        let (a, size) = s.artifact("1/r/artifacts/notes.txt").unwrap();
        let (b, _) = s.artifact("1/r/artifacts/copy.txt").unwrap();
        assert_eq!((a.clone(), size), (b, 5), "same bytes, one object");
        assert_eq!(std::fs::read(a).unwrap(), b"hello");
        for bad in ["../x", "/etc/passwd", "a//b", "a/./b", ""] {
            assert!(check_path(bad).is_err(), "{bad}");
        }
        let mut big = s.begin_upload(4).unwrap();
        assert!(big.write(b"12345").is_err());
        assert!(matches!(
            s.artifact("1/r/artifacts/none"),
            Err(TrackingError::NotFound(_))
        ));
    }
}
