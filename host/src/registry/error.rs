//! What the registry can refuse, as an enum callers match on.

/// A registry operation failed. Nothing stored is changed by a failed operation.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RegistryError {
    #[error("the registry at {path} is not usable: {reason}")]
    Unusable { path: String, reason: String },
    #[error(
        "the registry at {path} was written by a newer Kiln (schema {found}); this Kiln reads schema {supported}"
    )]
    NewerSchema {
        path: String,
        found: u32,
        supported: u32,
    },
    #[error("no plugin named `{0}`")]
    UnknownPlugin(String),
    #[error("no version of `{name}` matches `{req}`{}", if .available.is_empty() { String::new() } else { format!(" (available: {})", .available.join(", ")) })]
    NoMatch {
        name: String,
        req: String,
        available: Vec<String>,
    },
    #[error(
        "`{name}@{version}` is already published with other bytes (digest {existing}); versions are immutable: publish a new version"
    )]
    Immutable {
        name: String,
        version: String,
        existing: String,
    },
    #[error("`{name}@{version}` is not published")]
    UnknownVersion { name: String, version: String },
    #[error("invalid manifest: {0}")]
    Manifest(String),
    #[error("signature check failed for `{name}@{version}`: {reason}")]
    Signature {
        name: String,
        version: String,
        reason: String,
    },
    #[error("`{name}@{version}` is corrupt: {reason}")]
    Corrupt {
        name: String,
        version: String,
        reason: String,
    },
    #[error("key: {0}")]
    Key(String),
    #[error("registry storage: {0}")]
    Storage(String),
}

macro_rules! storage_from {
    ($($t:ty),*) => {$(
        impl From<$t> for RegistryError {
            fn from(e: $t) -> Self {
                RegistryError::Storage(e.to_string())
            }
        }
    )*};
}

storage_from!(
    redb::Error,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError,
    serde_json::Error
);
