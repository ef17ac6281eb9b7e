//! Publisher keys and signatures (ed25519).
//!
//! A publisher signs [`payload`]: the plugin's name, version, component digest and
//! manifest, canonically serialized. The registry stores the signature with the key id
//! (the first 16 hex digits of the sha256 of the public key) and refuses to serve a
//! version whose signature does not verify against a key it trusts.

use std::{fs, path::Path};

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};

use super::{RegistryError, manifest::Manifest};
use crate::digest::sha256_hex;

/// A trusted publisher key as the registry stores it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct KeyRecord {
    pub id: String,
    pub name: String,
    /// The ed25519 public key, hex.
    pub public: String,
    pub added_ms: u64,
}

/// The id of a public key.
pub fn key_id(public: &VerifyingKey) -> String {
    sha256_hex(public.as_bytes())[..16].to_string()
}

/// The bytes a publisher signs for one version.
pub fn payload(name: &str, version: &str, digest: &str, manifest: &Manifest) -> Vec<u8> {
    // serde_json writes struct fields in declaration order: a stable, canonical form.
    let doc = serde_json::json!({
        "kiln-signature": 1,
        "name": name,
        "version": version,
        "digest": digest,
        "manifest": manifest,
    });
    serde_json::to_vec(&doc).unwrap_or_default()
}

/// A version as its publisher signs it.
pub struct SignedVersion {
    /// The manifest without its publish-time component path (not part of the version).
    pub manifest: Manifest,
    /// The component's sha256, hex.
    pub digest: String,
    /// The signature over [`payload`], hex.
    pub signature: String,
}

/// Signs the version `manifest` names, whose component is `bytes`.
pub fn sign_version(key: &SigningKey, manifest: &Manifest, bytes: &[u8]) -> SignedVersion {
    let mut manifest = manifest.clone();
    manifest.plugin.component = None;
    let digest = sha256_hex(bytes);
    let signature = sign(
        key,
        &payload(
            &manifest.plugin.name,
            &manifest.version().to_string(),
            &digest,
            &manifest,
        ),
    );
    SignedVersion {
        manifest,
        digest,
        signature,
    }
}

/// A fresh signing key from the operating system's random source.
pub fn generate() -> Result<SigningKey, RegistryError> {
    let mut secret = [0u8; 32];
    getrandom::fill(&mut secret).map_err(|e| RegistryError::Key(format!("no randomness: {e}")))?;
    Ok(SigningKey::from_bytes(&secret))
}

/// Writes a secret key as hex, readable by its owner only.
pub fn save(key: &SigningKey, path: &Path) -> Result<(), RegistryError> {
    let io = |e: std::io::Error| RegistryError::Key(format!("{}: {e}", path.display()));
    if path.exists() {
        return Err(RegistryError::Key(format!(
            "{} exists; not overwriting a key",
            path.display()
        )));
    }
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).map_err(io)?;
    }
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    use std::io::Write as _;
    let mut file = options.open(path).map_err(io)?;
    file.write_all(hex::encode(key.to_bytes()).as_bytes())
        .map_err(io)?;
    Ok(())
}

/// Reads a secret key written by [`save`].
pub fn load(path: &Path) -> Result<SigningKey, RegistryError> {
    let text = fs::read_to_string(path).map_err(|e| {
        RegistryError::Key(format!(
            "{}: {e} (make one with `kiln key generate`)",
            path.display()
        ))
    })?;
    let bytes: [u8; 32] = hex::decode(text.trim())
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| {
            RegistryError::Key(format!("{} is not a Kiln secret key", path.display()))
        })?;
    Ok(SigningKey::from_bytes(&bytes))
}

/// Signs a payload; the signature as hex.
pub fn sign(key: &SigningKey, payload: &[u8]) -> String {
    hex::encode(key.sign(payload).to_bytes())
}

/// Parses a public key from hex.
pub fn public_from_hex(public: &str) -> Result<VerifyingKey, RegistryError> {
    let bytes: [u8; 32] = hex::decode(public.trim())
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| {
            RegistryError::Key(format!("`{public}` is not an ed25519 public key in hex"))
        })?;
    VerifyingKey::from_bytes(&bytes).map_err(|e| RegistryError::Key(e.to_string()))
}

/// Verifies a hex signature over `payload` with a hex public key.
pub fn verify(public: &str, payload: &[u8], signature: &str) -> Result<(), String> {
    let key = public_from_hex(public).map_err(|e| e.to_string())?;
    let sig = hex::decode(signature)
        .ok()
        .and_then(|b| Signature::from_slice(&b).ok())
        .ok_or("the signature is not valid hex ed25519")?;
    key.verify_strict(payload, &sig)
        .map_err(|_| "the signature does not match".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signs_and_detects_tampering() {
        let key = generate().unwrap();
        let public = hex::encode(key.verifying_key().as_bytes());
        let sig = sign(&key, b"payload");
        assert!(verify(&public, b"payload", &sig).is_ok());
        assert!(verify(&public, b"payloae", &sig).is_err());
        let other = hex::encode(generate().unwrap().verifying_key().as_bytes());
        assert!(verify(&other, b"payload", &sig).is_err());
    }

    #[test]
    fn keys_round_trip_through_files_and_are_not_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys/me.key");
        let key = generate().unwrap();
        save(&key, &path).unwrap();
        assert_eq!(load(&path).unwrap().to_bytes(), key.to_bytes());
        assert!(save(&generate().unwrap(), &path).is_err());
    }
}
