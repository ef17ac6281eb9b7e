//! The compiled-artifact cache: native code for a component, keyed by the component's
//! sha256 digest and the engine's compatibility fingerprint, so a second load of the
//! same component never compiles.
//!
//! Entries are files `<digest>-<engine>.cwasm` written atomically (temp file + rename).
//! An entry that no longer deserializes (another wasmtime build, a torn write) is
//! recompiled and replaced. The directory must be as trusted as the `kiln` binary:
//! deserializing native code is only sound for files this cache wrote.

use std::{
    fs,
    hash::{DefaultHasher, Hash, Hasher},
    io::Write,
    path::{Path, PathBuf},
};

use anyhow::{Context, Result};
use wasmtime::{Engine, component::Component};

/// Whether a load found its code in the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheOutcome {
    /// Deserialized from disk: nothing was compiled.
    Hit,
    /// Compiled now (and stored, when the cache is writable).
    Compiled,
}

/// A directory of compiled components.
#[derive(Debug, Clone)]
pub struct ArtifactCache {
    dir: Option<PathBuf>,
    engine_key: String,
}

impl ArtifactCache {
    /// A cache in `dir` for components compiled by `engine`.
    pub fn new(engine: &Engine, dir: impl Into<PathBuf>) -> Self {
        ArtifactCache {
            dir: Some(dir.into()),
            engine_key: engine_key(engine),
        }
    }

    /// No cache: every load compiles.
    pub fn disabled(engine: &Engine) -> Self {
        ArtifactCache {
            dir: None,
            engine_key: engine_key(engine),
        }
    }

    /// The engine fingerprint entries are keyed by.
    pub fn engine_key(&self) -> &str {
        &self.engine_key
    }

    fn entry(&self, digest: &str) -> Option<PathBuf> {
        let dir = self.dir.as_ref()?;
        Some(dir.join(format!("{digest}-{}.cwasm", self.engine_key)))
    }

    /// The component for `bytes` (whose sha256 is `digest`), from the cache or compiled.
    pub fn load(
        &self,
        engine: &Engine,
        digest: &str,
        bytes: &[u8],
    ) -> Result<(Component, CacheOutcome)> {
        if let Some(path) = self.entry(digest)
            && path.exists()
        {
            // SAFETY: the entry was written by `store` below from a component this
            // engine compiled; the cache directory is as trusted as the binary.
            match unsafe { Component::deserialize_file(engine, &path) } {
                Ok(component) => return Ok((component, CacheOutcome::Hit)),
                Err(_) => {
                    // Stale or torn: fall through, recompile and overwrite.
                    let _ = fs::remove_file(&path);
                }
            }
        }
        let component = Component::new(engine, bytes)?;
        if let Some(path) = self.entry(digest) {
            // A cache that cannot be written slows the next load; it must not fail this one.
            if let Err(e) = store(&component, &path) {
                eprintln!(
                    "kiln: could not cache compiled plugin at {}: {e:#}",
                    path.display()
                );
            }
        }
        Ok((component, CacheOutcome::Compiled))
    }
}

fn store(component: &Component, path: &Path) -> Result<()> {
    let dir = path.parent().context("cache entry has no parent")?;
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let bytes = component.serialize()?;
    let tmp = dir.join(format!(
        ".{}.{}.tmp",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("entry"),
        std::process::id()
    ));
    let mut file = fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    file.write_all(&bytes)?;
    file.sync_all()?;
    fs::rename(&tmp, path).with_context(|| format!("renaming into {}", path.display()))?;
    Ok(())
}

fn engine_key(engine: &Engine) -> String {
    let mut h = DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut h);
    format!("{:016x}", h.finish())
}
