//! The registry seed: `registry-data/` holds every standard plugin's built component and an
//! index (`index.json`: name, version, digest, manifest). A registry imports it on first use,
//! so a fresh clone works offline with no extra command.
//!
//! Trust: the index is part of the checkout, so the checkout is the anchor. Each component's
//! sha256 is checked against the index before import; the imported versions are then signed
//! with this installation's own `seed` key (made on first import, trusted by this registry),
//! so every stored version, seeded or published, passes the same signature check on fetch.
//!
//! The index is re-read when it changes (new plugins appear). A seeded version already
//! present with other bytes keeps the registry's bytes: versions are immutable.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{Manifest, Registry, RegistryError, sign};
use crate::digest::sha256_hex;

/// The index's format tag.
pub const FORMAT: &str = "kiln-seed/1";

/// `registry-data/index.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeedIndex {
    pub format: String,
    pub plugins: Vec<SeedEntry>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeedEntry {
    pub name: String,
    pub version: String,
    pub digest: String,
    /// The component's file, relative to the seed directory.
    pub file: String,
    pub manifest: Manifest,
    /// For a plugin whose toolchain does not build reproducibly (componentize-py and
    /// componentize-js snapshot a heap): the sha256 of the sources the component was built
    /// from, so a checkout can tell that the shipped component is still its build.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sources: Option<String>,
}

/// Where the seed is: `KILN_SEED` if set (`off` for none), else the `registry-data/` of
/// the checkout this binary was built from, if it is still there.
pub fn default_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("KILN_SEED") {
        return (dir != "off").then(|| PathBuf::from(dir));
    }
    let built = Path::new(env!("CARGO_MANIFEST_DIR")).join("../registry-data");
    built.join("index.json").exists().then_some(built)
}

/// Reads and checks an index.
pub fn read_index(dir: &Path) -> Result<(SeedIndex, String), RegistryError> {
    let path = dir.join("index.json");
    let bytes = std::fs::read(&path)
        .map_err(|e| RegistryError::Manifest(format!("{}: {e}", path.display())))?;
    let index: SeedIndex = serde_json::from_slice(&bytes)
        .map_err(|e| RegistryError::Manifest(format!("{}: {e}", path.display())))?;
    if index.format != FORMAT {
        return Err(RegistryError::Manifest(format!(
            "{}: format `{}`, expected `{FORMAT}`",
            path.display(),
            index.format
        )));
    }
    for e in &index.plugins {
        e.manifest.check()?;
        if e.manifest.plugin.name != e.name || e.manifest.plugin.version != e.version {
            return Err(RegistryError::Manifest(format!(
                "seed entry {}@{} disagrees with its manifest",
                e.name, e.version
            )));
        }
        if e.file.contains("..") || e.file.starts_with('/') {
            return Err(RegistryError::Manifest(format!(
                "seed entry {}: file `{}` leaves the seed directory",
                e.name, e.file
            )));
        }
    }
    Ok((index, sha256_hex(&bytes)))
}

/// What an import did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Imported {
    pub added: Vec<String>,
    pub kept: Vec<String>,
}

/// Imports the seed in `dir` unless this exact index was imported before. `key_path` is where
/// this installation's seed key lives (made and trusted on first use).
pub fn import(registry: &Registry, dir: &Path, key_path: &Path) -> Result<Imported, RegistryError> {
    let (index, index_digest) = read_index(dir)?;
    if registry.meta("seed_index")?.as_deref() == Some(index_digest.as_str()) {
        return Ok(Imported::default());
    }
    let key = if key_path.exists() {
        sign::load(key_path)?
    } else {
        let key = sign::generate()?;
        sign::save(&key, key_path)?;
        key
    };
    registry.trust_key("seed", &hex::encode(key.verifying_key().as_bytes()))?;
    let mut done = Imported::default();
    for e in &index.plugins {
        let path = dir.join(&e.file);
        let bytes = std::fs::read(&path)
            .map_err(|err| RegistryError::Manifest(format!("{}: {err}", path.display())))?;
        let digest = sha256_hex(&bytes);
        if digest != e.digest {
            return Err(RegistryError::Corrupt {
                name: e.name.clone(),
                version: e.version.clone(),
                reason: format!(
                    "seed file {} has digest {digest}, the index says {}",
                    path.display(),
                    e.digest
                ),
            });
        }
        match registry.publish(&e.manifest, &bytes, &key) {
            Ok(_) => done.added.push(format!("{}@{}", e.name, e.version)),
            Err(RegistryError::Immutable { .. }) => {
                done.kept.push(format!("{}@{}", e.name, e.version))
            }
            Err(err) => return Err(err),
        }
    }
    registry.set_meta("seed_index", &index_digest)?;
    Ok(done)
}
