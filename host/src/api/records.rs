//! Schemas of the stored records the API answers as they are: their types live in the
//! registry and the tracking store, which know nothing of HTTP. Each lists the fields the
//! record always has (extra fields are allowed: a record may grow); values too deep to
//! matter to a client (a run's plan, a version's pipeline) are plain objects.

#![allow(dead_code)] // Schemas only: never built.

use std::collections::BTreeMap;

use utoipa::ToSchema;

/// A plugin's manifest (`kiln.toml`).
#[derive(ToSchema)]
#[schema(as = Manifest)]
pub struct ManifestSchema {
    plugin: PluginSection,
    /// What the plugin asks to be allowed.
    capabilities: Option<serde_json::Map<String, serde_json::Value>>,
    /// How `kiln plugin build` builds it (`lang`).
    build: Option<serde_json::Map<String, serde_json::Value>>,
}

/// `[plugin]` of a manifest.
#[derive(ToSchema)]
pub struct PluginSection {
    name: String,
    version: String,
    /// `step`, `model-runner` or `tracker`.
    role: String,
    wit: Option<String>,
    description: Option<String>,
    license: Option<String>,
    authors: Option<Vec<String>>,
    keywords: Option<Vec<String>>,
    component: Option<String>,
}

/// One published version of a plugin.
#[derive(ToSchema)]
#[schema(as = VersionRecord)]
pub struct VersionRecordSchema {
    name: String,
    version: String,
    /// sha256 of the component, hex.
    digest: String,
    size: u64,
    manifest: ManifestSchema,
    /// The publisher's signature, hex.
    signature: String,
    key_id: String,
    yanked: bool,
    published_ms: u64,
}

/// A trusted publisher key.
#[derive(ToSchema)]
#[schema(as = KeyRecord)]
pub struct KeyRecordSchema {
    id: String,
    name: String,
    /// The ed25519 public key, hex.
    public: String,
    added_ms: u64,
}

/// A run's or a step's status.
#[derive(ToSchema)]
#[schema(as = Status, rename_all = "lowercase")]
pub enum StatusSchema {
    Pending,
    Running,
    Succeeded,
    Cached,
    Failed,
    Skipped,
    Cancelled,
    Interrupted,
}

/// A run as a list shows it.
#[derive(ToSchema)]
#[schema(as = RunSummary)]
pub struct RunSummarySchema {
    id: String,
    workflow: String,
    status: StatusSchema,
    started_ms: u64,
    ended_ms: Option<u64>,
    /// Its steps, and how many of them came from the cache.
    steps: u64,
    cached: u64,
    replay_of: Option<String>,
    /// The model version it registered.
    registered: Option<serde_json::Map<String, serde_json::Value>>,
}

/// A run: while it is live on this server, its status and each step's (`live` is true);
/// afterwards its stored record (with its plan, its steps' outputs and what it registered).
#[derive(ToSchema)]
#[schema(as = Run)]
pub struct RunSchema {
    id: String,
    workflow: String,
    status: StatusSchema,
    started_ms: u64,
    ended_ms: Option<u64>,
    steps: Vec<serde_json::Map<String, serde_json::Value>>,
    /// Only while live: the run is asked to stop.
    cancelling: Option<bool>,
    live: Option<bool>,
}

/// A registered model.
#[derive(ToSchema)]
#[schema(as = Model)]
pub struct ModelSchema {
    name: String,
    created_ms: u64,
    updated_ms: Option<u64>,
    /// The newest version number.
    latest: u64,
    /// Alias → version.
    aliases: BTreeMap<String, u64>,
    tags: Option<BTreeMap<String, String>>,
    description: Option<String>,
}

/// One version of a registered model.
#[derive(ToSchema)]
#[schema(as = ModelVersion)]
pub struct ModelVersionSchema {
    model: String,
    version: u64,
    created_ms: u64,
    /// The run that produced it (empty when unknown).
    run: String,
    step: Option<String>,
    /// The digest of the stored artifact.
    artifact: Option<String>,
    /// Where the model's files are, as MLflow names them.
    source: Option<String>,
    /// The model-runner plugin that serves it.
    runner: Option<serde_json::Map<String, serde_json::Value>>,
    metrics: Option<BTreeMap<String, f64>>,
    tags: Option<BTreeMap<String, String>>,
    description: Option<String>,
    signature: Option<serde_json::Map<String, serde_json::Value>>,
    pipeline: Option<serde_json::Map<String, serde_json::Value>>,
}

/// One move of an alias.
#[derive(ToSchema)]
#[schema(as = AliasEvent)]
pub struct AliasEventSchema {
    alias: String,
    /// The version it points at from then on; null once deleted.
    version: Option<u64>,
    previous: Option<u64>,
    at_ms: u64,
}

/// One prediction request as a device served it.
#[derive(ToSchema)]
#[schema(as = PredictionRecord)]
pub struct PredictionRecordSchema {
    time_ms: u64,
    model: String,
    version: u64,
    /// `wasm` or `native`.
    backend: String,
    rows: u64,
    latency_us: u64,
    /// The error code when it failed.
    error: Option<String>,
}

/// A prediction record and the device that synced it.
#[derive(ToSchema)]
#[schema(as = SyncedPrediction)]
pub struct SyncedPredictionSchema {
    device: String,
    seq: u64,
    time_ms: u64,
    model: String,
    version: u64,
    backend: String,
    rows: u64,
    latency_us: u64,
    error: Option<String>,
}

/// Raw bytes: a component, an artifact, a binary tensor.
pub struct Binary;

impl utoipa::PartialSchema for Binary {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, SchemaFormat, Type};
        ObjectBuilder::new()
            .schema_type(Type::String)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Binary)))
            .into()
    }
}

impl ToSchema for Binary {}
