//! The compiled-artifact cache: native code for a component, keyed by the component's
//! sha256 digest and the engine's compatibility fingerprint, so a second load of the
//! same component never compiles.
//!
//! Entries are files `<digest>-<engine>.cwasm`, written atomically (temp file + rename)
//! and loaded by mapping them, with no copy: a precompiled component is ready in about a
//! millisecond. They live in a plain directory, or in a [`CompiledStore`], which picks the
//! directory and keeps an account of its entries (the registry does, beside the
//! components the code came from). An entry that
//! no longer deserializes (another wasmtime build, a torn write) is recompiled and
//! replaced. Either home must be as trusted as the `kiln` binary: deserializing native
//! code is only sound for entries this cache wrote.
//!
//! A cache may also share a directory with other data directories on the machine
//! ([`ArtifactCache::with_shared`], the CLI's `KILN_CODE_CACHE`): a miss at home is looked
//! up there before compiling (and copied home), and what is compiled is written to both.
//! The shared directory must be as trusted as the binary too.

#[cfg(feature = "compiler")]
use std::hash::{DefaultHasher, Hash, Hasher};
use std::{
    fs,
    io::Write,
    path::{Path, PathBuf},
    sync::Arc,
};

use anyhow::{Context, Result};
use wasmtime::{Engine, component::Component};

/// Whether a load found its code in the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheOutcome {
    /// Deserialized from the cache: nothing was compiled.
    Hit,
    /// Compiled now (and stored, when the cache is writable).
    Compiled,
}

/// A home for compiled code kept by a store above the engine: it chooses the directory
/// and is told of every entry written or dropped.
pub trait CompiledStore: Send + Sync {
    /// The directory holding the entries' files.
    fn dir(&self) -> PathBuf;
    /// An entry of `size` bytes was written under `key`.
    fn recorded(&self, key: &str, size: u64) -> Result<()>;
    /// The entry under `key` was dropped (stale or damaged).
    fn forgotten(&self, key: &str) -> Result<()>;
}

#[derive(Clone)]
enum Home {
    None,
    Dir(PathBuf),
    Store(Arc<dyn CompiledStore>),
}

/// A cache of compiled components for one engine.
#[derive(Clone)]
pub struct ArtifactCache {
    home: Home,
    /// A directory of entries shared with other caches on this machine.
    shared: Option<PathBuf>,
    engine_key: String,
}

impl std::fmt::Debug for ArtifactCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let home = match &self.home {
            Home::None => "none".to_string(),
            Home::Dir(d) => d.display().to_string(),
            Home::Store(_) => "store".to_string(),
        };
        f.debug_struct("ArtifactCache")
            .field("home", &home)
            .field("shared", &self.shared)
            .field("engine_key", &self.engine_key)
            .finish()
    }
}

impl ArtifactCache {
    /// A cache in the directory `dir`.
    pub fn new(engine: &Engine, dir: impl Into<PathBuf>) -> Self {
        ArtifactCache {
            home: Home::Dir(dir.into()),
            shared: None,
            engine_key: engine_key(engine),
        }
    }

    /// A cache in a [`CompiledStore`].
    pub fn in_store(engine: &Engine, store: Arc<dyn CompiledStore>) -> Self {
        ArtifactCache {
            home: Home::Store(store),
            shared: None,
            engine_key: engine_key(engine),
        }
    }

    /// No cache: every load compiles.
    pub fn disabled(engine: &Engine) -> Self {
        ArtifactCache {
            home: Home::None,
            shared: None,
            engine_key: engine_key(engine),
        }
    }

    /// Also looks in `dir` before compiling, and writes what it compiles there: a
    /// directory of compiled code that several data directories on one machine share. An
    /// entry found there is copied home, so the next load needs only the home.
    pub fn with_shared(mut self, dir: impl Into<PathBuf>) -> Self {
        self.shared = Some(dir.into());
        self
    }

    /// The engine fingerprint entries are keyed by.
    pub fn engine_key(&self) -> &str {
        &self.engine_key
    }

    /// The key of a component's entry.
    pub fn key(&self, digest: &str) -> String {
        format!("{digest}-{}", self.engine_key)
    }

    /// The component for `bytes` (whose sha256 is `digest`), from the cache or compiled.
    pub fn load(
        &self,
        engine: &Engine,
        digest: &str,
        bytes: &[u8],
    ) -> Result<(Component, CacheOutcome)> {
        let key = self.key(digest);
        if let Some(component) = self.cached(engine, &key) {
            return Ok((component, CacheOutcome::Hit));
        }
        if let Some(component) = self.shared_entry(engine, &key) {
            return Ok((component, CacheOutcome::Hit));
        }
        let component = compile(engine, bytes)?;
        // A cache that cannot be written slows the next load; it must not fail this one.
        if self.dir().is_some() || self.shared.is_some() {
            match component.serialize() {
                Ok(serialized) => self.keep(digest, &key, &serialized),
                Err(e) => eprintln!("kiln: could not cache compiled plugin {digest}: {e:#}"),
            }
        }
        Ok((component, CacheOutcome::Compiled))
    }

    /// Writes a compiled entry home and to the shared directory, saying what failed.
    fn keep(&self, digest: &str, key: &str, serialized: &[u8]) {
        if let Err(e) = self.store(key, serialized) {
            eprintln!("kiln: could not cache compiled plugin {digest}: {e:#}");
        }
        if let Some(shared) = &self.shared
            && let Err(e) = write_atomically(&shared.join(format!("{key}.cwasm")), serialized)
        {
            eprintln!("kiln: could not share compiled plugin {digest}: {e:#}");
        }
    }

    /// The entry under `key` in the shared directory, copied home.
    fn shared_entry(&self, engine: &Engine, key: &str) -> Option<Component> {
        let path = self.shared.as_ref()?.join(format!("{key}.cwasm"));
        let bytes = fs::read(&path).ok()?;
        // SAFETY: the shared directory is as trusted as the binary (see the module's
        // documentation); wasmtime checks the entry's engine settings and refuses others.
        let component = unsafe { Component::deserialize(engine, &bytes) }.ok()?;
        if let Err(e) = self.store(key, &bytes) {
            eprintln!("kiln: could not cache compiled plugin {key}: {e:#}");
        }
        Some(component)
    }

    fn dir(&self) -> Option<PathBuf> {
        match &self.home {
            Home::None => None,
            Home::Dir(dir) => Some(dir.clone()),
            Home::Store(store) => Some(store.dir()),
        }
    }

    fn cached(&self, engine: &Engine, key: &str) -> Option<Component> {
        let path = self.dir()?.join(format!("{key}.cwasm"));
        if !path.exists() {
            return None;
        }
        // SAFETY: the entry was written by `store` from a component this engine
        // compiled; the cache's directory is as trusted as the binary.
        match unsafe { Component::deserialize_file(engine, &path) } {
            Ok(component) => Some(component),
            Err(_) => {
                // Stale or torn: drop it and recompile.
                let _ = fs::remove_file(&path);
                if let Home::Store(store) = &self.home {
                    let _ = store.forgotten(key);
                }
                None
            }
        }
    }

    fn store(&self, key: &str, bytes: &[u8]) -> Result<()> {
        let Some(dir) = self.dir() else { return Ok(()) };
        write_atomically(&dir.join(format!("{key}.cwasm")), bytes)?;
        if let Home::Store(store) = &self.home {
            store.recorded(key, bytes.len() as u64)?;
        }
        Ok(())
    }
}

#[cfg(feature = "compiler")]
fn compile(engine: &Engine, bytes: &[u8]) -> Result<Component> {
    Ok(Component::new(engine, bytes)?)
}

/// A runtime-only build has no compiler: code comes precompiled (a bundle) or not at all.
#[cfg(not(feature = "compiler"))]
fn compile(_: &Engine, _: &[u8]) -> Result<Component> {
    Err(NoCompiler.into())
}

/// Why a runtime-only build (no `compiler` feature) refuses to load a plugin it has no
/// compiled code for.
#[derive(Debug, thiserror::Error)]
#[error("this kiln is a runtime-only build: it cannot compile wasm")]
pub struct NoCompiler;

fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().context("cache entry has no parent")?;
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    // Unique per writer: threads of one process may keep the same entry at once.
    static WRITERS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let tmp = dir.join(format!(
        ".{}.{}.{}.tmp",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("entry"),
        std::process::id(),
        WRITERS.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ));
    let mut file = fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    file.write_all(bytes)?;
    file.sync_all()?;
    fs::rename(&tmp, path).with_context(|| format!("renaming into {}", path.display()))?;
    Ok(())
}

/// A short fingerprint of what an engine's compiled code is compatible with.
///
/// wasmtime computes it from the compiler's settings, so a runtime-only build (no
/// `compiler` feature) has none: there, every engine of this binary shares one key, and
/// wasmtime itself refuses code compiled for other settings when it is deserialized.
pub fn engine_key(engine: &Engine) -> String {
    compatibility_key(engine).unwrap_or_else(|| "runtime".to_string())
}

/// [`engine_key`] where wasmtime can compute it (builds with the `compiler` feature).
#[cfg(feature = "compiler")]
pub fn compatibility_key(engine: &Engine) -> Option<String> {
    let mut h = DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut h);
    Some(format!("{:016x}", h.finish()))
}

/// [`engine_key`] where wasmtime can compute it: not in a runtime-only build.
#[cfg(not(feature = "compiler"))]
pub fn compatibility_key(_: &Engine) -> Option<String> {
    None
}
