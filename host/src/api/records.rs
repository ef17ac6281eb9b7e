//! Schemas the API answers with that no one type holds: a run as `GET /v1/runs/{id}`
//! shows it (live, or its stored record), and raw bytes. The stored records themselves
//! (versions, manifests, keys, models, runs' summaries, alias events) describe themselves
//! where they are defined.

#![allow(dead_code)] // Schemas only: never built.

use utoipa::ToSchema;

/// A run: while it is live on this server, its status and each step's (`live` is true);
/// afterwards its stored record (with its plan, its steps' outputs and what it registered).
#[derive(ToSchema)]
#[schema(as = Run)]
pub struct RunSchema {
    id: String,
    workflow: String,
    status: crate::tracking::Status,
    started_ms: u64,
    ended_ms: Option<u64>,
    steps: Vec<serde_json::Map<String, serde_json::Value>>,
    /// Only while live: the run is asked to stop.
    cancelling: Option<bool>,
    live: Option<bool>,
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
