//! Bundles: one file that carries a registered model and its runner to a device, with the
//! runner's code precompiled for the device's target, so the device never compiles wasm.
//!
//! A bundle is a tar archive (uncompressed, so its entries can be read in place):
//! - `kiln-bundle.json`, the [`Manifest`]: the target triple and engine fingerprint the code
//!   was compiled for, the model (name, version, runner, artifact) and every plugin, each
//!   file with its sha256;
//! - `kiln-bundle.sig`, the [`Seal`]: an ed25519 signature over the manifest's exact bytes,
//!   with the signer's key id and public key;
//! - the files the manifest names: `model/<digest>`, `plugins/<name>-<version>.cwasm`, and
//!   for a model with an inference pipeline `fitted/<digest>`, its stages' fitted values.
//!
//! Opening a bundle checks, before any code is loaded: the format, every file's size and
//! digest, the signature against the keys the caller trusts, and that the code was compiled
//! for this binary's target and engine. A bundle that fails any of these is refused with
//! the reason.
//!
//! Targets: any triple wasmtime's Cranelift compiles for (x86_64 and aarch64 Linux are the
//! ones Kiln tests), or `pulley64`/`pulley32`, wasmtime's interpreter, for devices where no
//! JIT code may run; a Pulley bundle runs on any machine of that pointer width.

use std::{
    collections::HashMap,
    fs,
    io::{Read, Write},
    path::Path,
};

use anyhow::{Context, Result, bail, ensure};
use ed25519_dalek::SigningKey;
use serde::{Deserialize, Serialize};

use crate::{digest::sha256_hex, registry::sign};

/// The bundle format this build writes and reads.
pub const FORMAT: u32 = 1;

/// The target triple this binary was built for.
pub const HOST_TARGET: &str = env!("KILN_TARGET");

const MANIFEST: &str = "kiln-bundle.json";
const SEAL: &str = "kiln-bundle.sig";
/// Entries a bundle may hold, and bytes in all: a hostile file is refused before it
/// fills memory.
const MAX_ENTRIES: usize = 1024;
const MAX_BYTES: u64 = 4 << 30;

/// Whether code for `target` runs on this machine: code for its own triple, or for
/// Pulley, wasmtime's portable interpreter (of this machine's pointer width).
pub fn runs_here(target: &str) -> bool {
    target == HOST_TARGET || is_pulley(target)
}

/// Whether `target` is Pulley of this machine's pointer width and byte order.
pub fn is_pulley(target: &str) -> bool {
    let native = if cfg!(target_pointer_width = "64") {
        "pulley64"
    } else {
        "pulley32"
    };
    let native = if cfg!(target_endian = "big") {
        format!("{native}be")
    } else {
        native.to_string()
    };
    target == native
}

/// What a bundle holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: u32,
    /// The target triple the plugins' code was compiled for.
    pub target: String,
    /// The fingerprint of the engine configuration the code was compiled with.
    pub engine: String,
    /// A registered model and its runner (`kiln bundle model`) ...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<ModelEntry>,
    /// ... or a workflow (`kiln bundle workflow`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workflow: Option<WorkflowEntry>,
    pub plugins: Vec<PluginEntry>,
}

/// A workflow and the exact plugin each of its `uses` resolved to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkflowEntry {
    /// The workflow's file name where it was bundled (its runs are listed by its `name`).
    pub file: String,
    /// The workflow's text.
    pub spec: FileEntry,
    /// Its lockfile: each `uses` → the plugin (name, version, component digest) in `plugins`.
    pub lock: crate::workflow::lock::Lockfile,
}

/// A registered model version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelEntry {
    pub name: String,
    pub version: u64,
    /// The alias it was bundled by, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alias: Option<String>,
    /// The plugin (by name, in `plugins`) that serves it.
    pub runner: String,
    pub artifact: FileEntry,
    /// Its inference pipeline: the stages' plugins are in `plugins`, their fitted values in
    /// `fitted` (each file the stored value's encoding, named and checked by its digest).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pipeline: Option<crate::tracking::Pipeline>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fitted: Vec<FileEntry>,
}

/// A plugin, precompiled.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PluginEntry {
    pub name: String,
    /// The registry version, when it came from the registry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// sha256 of the component the code was compiled from, and its size.
    pub component: String,
    pub component_size: u64,
    pub code: FileEntry,
    /// Its registry manifest (what it may ask to be granted), when it came from the registry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manifest: Option<crate::registry::manifest::Manifest>,
}

/// One file of the archive.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FileEntry {
    pub path: String,
    pub sha256: String,
    pub size: u64,
}

/// Who signed the manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Seal {
    /// The key id (as `kiln key list` shows it).
    pub key: String,
    /// The ed25519 public key, hex.
    pub public: String,
    /// The signature over the manifest's bytes, hex.
    pub signature: String,
}

/// A bundle being made: files are added, then [`Builder::write`] seals it.
pub struct Builder {
    files: Vec<(String, Vec<u8>)>,
}

impl Builder {
    pub fn new() -> Builder {
        Builder { files: Vec::new() }
    }

    /// Adds a file; its entry, for the manifest.
    pub fn add(&mut self, path: String, bytes: Vec<u8>) -> FileEntry {
        let entry = FileEntry {
            sha256: sha256_hex(&bytes),
            size: bytes.len() as u64,
            path: path.clone(),
        };
        self.files.push((path, bytes));
        entry
    }

    /// Signs `manifest` with `key` and writes the archive to `out` (a temporary file,
    /// renamed into place, so a failed write leaves no half bundle).
    pub fn write(self, manifest: &Manifest, key: &SigningKey, out: &Path) -> Result<Seal> {
        let manifest_bytes = serde_json::to_vec_pretty(manifest)?;
        let public = key.verifying_key();
        let seal = Seal {
            key: sign::key_id(&public),
            public: hex::encode(public.as_bytes()),
            signature: sign::sign(key, &manifest_bytes),
        };
        let tmp = out.with_extension("kiln-partial");
        let file = fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
        let mut tar = tar::Builder::new(std::io::BufWriter::new(file));
        let mut put = |path: &str, bytes: &[u8]| -> Result<()> {
            let mut header = tar::Header::new_gnu();
            header.set_size(bytes.len() as u64);
            header.set_mode(0o644);
            header.set_cksum();
            tar.append_data(&mut header, path, bytes)
                .with_context(|| format!("writing {path} into the bundle"))
        };
        put(MANIFEST, &manifest_bytes)?;
        put(SEAL, &serde_json::to_vec_pretty(&seal)?)?;
        for (path, bytes) in &self.files {
            put(path, bytes)?;
        }
        let mut w = tar.into_inner()?;
        w.flush()?;
        w.get_ref().sync_all()?;
        drop(w);
        fs::rename(&tmp, out).with_context(|| format!("writing {}", out.display()))?;
        Ok(seal)
    }
}

impl Default for Builder {
    fn default() -> Self {
        Builder::new()
    }
}

/// A bundle read from its file, every file's digest checked, its signature not yet.
pub struct Bundle {
    pub manifest: Manifest,
    pub seal: Seal,
    manifest_bytes: Vec<u8>,
    files: HashMap<String, Vec<u8>>,
}

impl Bundle {
    /// Reads the bundle at `path` and checks its format and every file's size and digest.
    pub fn read(path: &Path) -> Result<Bundle> {
        let file = fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
        Bundle::from_reader(file)
            .with_context(|| format!("{} is not a usable bundle", path.display()))
    }

    fn from_reader(r: impl Read) -> Result<Bundle> {
        let mut archive = tar::Archive::new(r);
        let mut files = HashMap::new();
        let mut total = 0u64;
        for entry in archive.entries().context("not a bundle (a tar archive)")? {
            let mut entry = entry.context("the archive is damaged")?;
            ensure!(
                files.len() < MAX_ENTRIES,
                "it holds more than {MAX_ENTRIES} files"
            );
            let name = entry.path()?.to_string_lossy().into_owned();
            let size = entry.header().size()?;
            total += size;
            ensure!(total <= MAX_BYTES, "it is larger than {MAX_BYTES} bytes");
            let mut bytes = Vec::with_capacity(size as usize);
            entry
                .read_to_end(&mut bytes)
                .with_context(|| format!("reading {name}"))?;
            ensure!(
                files.insert(name.clone(), bytes).is_none(),
                "it holds {name} twice"
            );
        }
        let manifest_bytes = files
            .remove(MANIFEST)
            .with_context(|| format!("it has no {MANIFEST}"))?;
        let manifest: Manifest = serde_json::from_slice(&manifest_bytes)
            .with_context(|| format!("its {MANIFEST} cannot be read"))?;
        ensure!(
            manifest.format == FORMAT,
            "it is format {}; this kiln reads format {FORMAT}",
            manifest.format
        );
        ensure!(
            manifest.model.is_some() != manifest.workflow.is_some(),
            "its {MANIFEST} must name a model or a workflow, and not both"
        );
        let seal: Seal = serde_json::from_slice(
            &files
                .remove(SEAL)
                .with_context(|| format!("it is not signed (no {SEAL})"))?,
        )
        .with_context(|| format!("its {SEAL} cannot be read"))?;
        let bundle = Bundle {
            manifest,
            seal,
            manifest_bytes,
            files,
        };
        for entry in bundle.entries() {
            let bytes = bundle
                .files
                .get(&entry.path)
                .with_context(|| format!("{} is missing", entry.path))?;
            ensure!(
                bytes.len() as u64 == entry.size && sha256_hex(bytes) == entry.sha256,
                "{} does not match its digest: the bundle was altered or damaged",
                entry.path
            );
        }
        Ok(bundle)
    }

    fn entries(&self) -> impl Iterator<Item = &FileEntry> {
        let m = &self.manifest;
        m.model
            .iter()
            .map(|model| &model.artifact)
            .chain(m.workflow.iter().map(|w| &w.spec))
            .chain(m.plugins.iter().map(|p| &p.code))
    }

    /// Checks the signature: the signer must be one of `trusted` (key id → public key hex).
    pub fn verify_signature(&self, trusted: &dyn Fn(&str) -> Option<String>) -> Result<()> {
        let Some(public) = trusted(&self.seal.key) else {
            bail!(
                "it is signed by key {}, which is not trusted here (trust it with `kiln key trust {} --name NAME`)",
                self.seal.key,
                self.seal.public
            );
        };
        ensure!(
            public == self.seal.public,
            "its seal names key {} with another public key than the trusted one",
            self.seal.key
        );
        sign::verify(&public, &self.manifest_bytes, &self.seal.signature)
            .map_err(|e| anyhow::anyhow!("its signature does not verify: {e}"))
    }

    /// Checks that the code runs on this machine: compiled for its target (or Pulley), by
    /// an engine like this one (`engine_key`, where this build can compute it: a
    /// runtime-only build cannot, and wasmtime checks the code's settings as it loads it).
    pub fn check_engine(&self, engine_key: Option<&str>) -> Result<()> {
        let m = &self.manifest;
        self.check_target()?;
        if let Some(key) = engine_key {
            ensure!(
                m.engine == key,
                "its code was compiled for another engine configuration ({}; this one is {key}): bundle it again with this kiln",
                m.engine
            );
        }
        Ok(())
    }

    /// Checks that the code was compiled for this machine's target (or Pulley).
    pub fn check_target(&self) -> Result<()> {
        ensure!(
            runs_here(&self.manifest.target),
            "it was built for {}; this kiln runs {HOST_TARGET} or pulley (build one with `kiln bundle ... --target {HOST_TARGET}`)",
            self.manifest.target
        );
        Ok(())
    }

    /// A file's bytes.
    pub fn file(&self, entry: &FileEntry) -> &[u8] {
        self.files.get(&entry.path).map_or(&[], Vec::as_slice)
    }

    /// A fitted value of the model's pipeline, by the digest of its encoding (checked with
    /// every file when the bundle was read).
    pub fn fitted(&self, digest: &str) -> Result<crate::bindings::Value> {
        let entry = self
            .model()?
            .fitted
            .iter()
            .find(|f| f.sha256 == digest)
            .with_context(|| format!("the bundle carries no fitted value sha256:{digest}"))?;
        postcard::from_bytes(self.file(entry))
            .with_context(|| format!("decoding fitted value sha256:{digest}"))
    }

    /// The model it carries, or why it has none.
    pub fn model(&self) -> Result<&ModelEntry> {
        self.manifest
            .model
            .as_ref()
            .context("it holds a workflow, not a model: run it with `kiln bundle run`")
    }

    /// The workflow it carries, or why it has none.
    pub fn workflow(&self) -> Result<&WorkflowEntry> {
        self.manifest.workflow.as_ref().context(
            "it holds a model, not a workflow: use `kiln bundle predict` or `kiln bundle serve`",
        )
    }

    /// The plugin named `name`.
    pub fn plugin(&self, name: &str) -> Result<&PluginEntry> {
        self.manifest
            .plugins
            .iter()
            .find(|p| p.name == name)
            .with_context(|| format!("the bundle has no plugin `{name}`"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(artifact: FileEntry, code: FileEntry) -> Manifest {
        Manifest {
            format: FORMAT,
            target: HOST_TARGET.into(),
            engine: "e1".into(),
            model: Some(ModelEntry {
                name: "iris".into(),
                version: 1,
                alias: Some("production".into()),
                runner: "r".into(),
                artifact,
                pipeline: None,
                fitted: Vec::new(),
            }),
            workflow: None,
            plugins: vec![PluginEntry {
                name: "r".into(),
                version: Some("0.1.0".into()),
                component: "c".into(),
                component_size: 3,
                code,
                manifest: None,
            }],
        }
    }

    fn written(dir: &Path, key: &SigningKey) -> std::path::PathBuf {
        let mut b = Builder::new();
        let a = b.add("model/a".into(), b"weights".to_vec());
        let c = b.add("plugins/r-0.1.0.cwasm".into(), b"code".to_vec());
        let out = dir.join("app.kiln");
        b.write(&manifest(a, c), key, &out).unwrap();
        out
    }

    fn trust(key: &SigningKey) -> impl Fn(&str) -> Option<String> {
        let public = key.verifying_key();
        let (id, hex) = (sign::key_id(&public), hex::encode(public.as_bytes()));
        move |k: &str| (k == id).then(|| hex.clone())
    }

    #[test]
    fn a_written_bundle_reads_back_and_verifies() {
        let dir = tempfile::tempdir().unwrap();
        let key = sign::generate().unwrap();
        let out = written(dir.path(), &key);
        let b = Bundle::read(&out).unwrap();
        assert_eq!(b.model().unwrap().name, "iris");
        assert_eq!(b.file(&b.model().unwrap().artifact), b"weights");
        assert!(b.workflow().is_err());
        assert_eq!(b.file(&b.plugin("r").unwrap().code), b"code");
        b.verify_signature(&trust(&key)).unwrap();
        b.check_engine(Some("e1")).unwrap();
        let err = b.check_engine(Some("e2")).unwrap_err().to_string();
        assert!(err.contains("another engine configuration"), "{err}");
    }

    #[test]
    fn an_untrusted_signer_or_an_altered_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let key = sign::generate().unwrap();
        let out = written(dir.path(), &key);
        let other = sign::generate().unwrap();
        let err = Bundle::read(&out)
            .unwrap()
            .verify_signature(&trust(&other))
            .unwrap_err()
            .to_string();
        assert!(err.contains("not trusted here"), "{err}");
        // Flip a byte of the model's weights inside the archive.
        let mut bytes = fs::read(&out).unwrap();
        let at = bytes.windows(7).position(|w| w == b"weights").unwrap();
        bytes[at] = b'W';
        fs::write(&out, &bytes).unwrap();
        let err = format!("{:#}", Bundle::read(&out).err().unwrap());
        assert!(err.contains("model/a does not match its digest"), "{err}");
    }

    #[test]
    fn a_manifest_altered_after_signing_does_not_verify() {
        let dir = tempfile::tempdir().unwrap();
        let key = sign::generate().unwrap();
        let out = written(dir.path(), &key);
        let mut bytes = fs::read(&out).unwrap();
        let at = bytes.windows(6).position(|w| w == b"\"iris\"").unwrap();
        bytes[at + 1] = b'I';
        fs::write(&out, &bytes).unwrap();
        let b = Bundle::read(&out).unwrap();
        assert_eq!(b.model().unwrap().name, "Iris");
        let err = b.verify_signature(&trust(&key)).unwrap_err().to_string();
        assert!(err.contains("signature does not verify"), "{err}");
    }

    #[test]
    fn garbage_is_not_a_bundle() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("junk.kiln");
        fs::write(&path, vec![7u8; 4096]).unwrap();
        let err = format!("{:#}", Bundle::read(&path).err().unwrap());
        assert!(err.contains("is not a usable bundle"), "{err}");
    }
}
