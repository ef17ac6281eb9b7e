//! The lockfile beside a workflow (`<name>.lock`): the exact plugin every `uses` resolved
//! to, by version and digest. A run uses what the lockfile says while the requirement
//! still matches it; `kiln run --update` re-resolves; `--locked` refuses any change.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

const HEADER: &str = "# Written by kiln: the exact plugin each `uses` of the workflow resolved to.\n# Commit it with the workflow; `kiln run --update` re-resolves.\n";

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Lockfile {
    pub version: u32,
    #[serde(default, rename = "plugin")]
    pub plugins: Vec<LockEntry>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LockEntry {
    /// The `uses` text as written in the workflow.
    pub uses: String,
    pub name: String,
    /// The registry version, or absent for a component file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// `sha256:<hex>` of the component.
    pub digest: String,
}

impl Lockfile {
    /// Where the lockfile of `workflow` lives: beside it, `<stem>.lock`.
    pub fn path_for(workflow: &Path) -> PathBuf {
        let stem = workflow
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "workflow".into());
        workflow.with_file_name(format!("{stem}.lock"))
    }

    /// Reads a lockfile; an absent file is an empty lock.
    pub fn read(path: &Path) -> Result<Lockfile> {
        match std::fs::read_to_string(path) {
            Ok(text) => {
                let lock: Lockfile = toml::from_str(&text)
                    .with_context(|| format!("reading lockfile {}", path.display()))?;
                anyhow::ensure!(
                    lock.version == 1,
                    "lockfile {} has format version {}; this kiln writes version 1",
                    path.display(),
                    lock.version
                );
                Ok(lock)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Lockfile {
                version: 1,
                plugins: Vec::new(),
            }),
            Err(e) => Err(e).with_context(|| format!("reading lockfile {}", path.display())),
        }
    }

    /// The registry plugins this lockfile holds back: for each, the version it pins and the
    /// newest in `registry` that its `uses` requirement also matches. (A run keeps to the
    /// pin; `kiln run --update` moves to the newer one.)
    pub fn held_back(&self, registry: &crate::registry::Registry) -> Vec<(&LockEntry, String)> {
        self.plugins
            .iter()
            .filter_map(|e| {
                let pinned = semver::Version::parse(e.version.as_deref()?).ok()?;
                let (name, req) = crate::registry::resolve::parse_spec(&e.uses).ok()?;
                let newest = registry.resolve(name, &req).ok()?;
                let newer = semver::Version::parse(&newest.version).ok()? > pinned;
                newer.then_some((e, newest.version))
            })
            .collect()
    }

    /// The entry for a `uses` text.
    pub fn get(&self, uses: &str) -> Option<&LockEntry> {
        self.plugins.iter().find(|e| e.uses == uses)
    }

    /// Writes the lockfile atomically.
    pub fn write(&self, path: &Path) -> Result<()> {
        let mut sorted = self.clone();
        sorted.plugins.sort_by(|a, b| a.uses.cmp(&b.uses));
        sorted.plugins.dedup_by(|a, b| a.uses == b.uses);
        let text = format!("{HEADER}{}", toml::to_string(&sorted)?);
        let tmp = path.with_extension("lock.tmp");
        std::fs::write(&tmp, text).with_context(|| format!("writing {}", tmp.display()))?;
        std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_sorted() {
        let dir = tempfile::tempdir().unwrap();
        let path = Lockfile::path_for(&dir.path().join("train.yaml"));
        assert!(path.ends_with("train.lock"));
        assert_eq!(Lockfile::read(&path).unwrap().plugins.len(), 0);
        let lock = Lockfile {
            version: 1,
            plugins: vec![
                LockEntry {
                    uses: "z@^1".into(),
                    name: "z".into(),
                    version: Some("1.2.0".into()),
                    digest: "sha256:00".into(),
                },
                LockEntry {
                    uses: "a.wasm".into(),
                    name: "a".into(),
                    version: None,
                    digest: "sha256:11".into(),
                },
            ],
        };
        lock.write(&path).unwrap();
        let back = Lockfile::read(&path).unwrap();
        assert_eq!(back.plugins[0].uses, "a.wasm");
        assert_eq!(back.get("z@^1").unwrap().version.as_deref(), Some("1.2.0"));
    }
}
