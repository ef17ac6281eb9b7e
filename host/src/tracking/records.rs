//! What the tracking store keeps, as serde records.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::workflow::plan::{Plan, PluginRef};

/// An output a step produced: its name, kind and the digest of its stored value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutputRef {
    pub name: String,
    pub kind: String,
    pub digest: String,
    pub size: u64,
}

/// A metric a step tracked.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricRecord {
    pub key: String,
    #[serde(with = "super::experiments::json_f64")]
    pub value: f64,
    pub step: u64,
    pub timestamp_ms: u64,
}

/// One check of a validator step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckRecord {
    pub name: String,
    pub passed: bool,
    pub severity: String,
    #[serde(default, with = "super::experiments::json_f64::option")]
    pub observed: Option<f64>,
    pub detail: String,
}

/// What a cached step produced, enough to skip running it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CacheEntry {
    pub outputs: Vec<OutputRef>,
    #[serde(default)]
    pub checks: Vec<CheckRecord>,
    #[serde(default)]
    pub metrics: Vec<MetricRecord>,
    #[serde(default)]
    pub params: Vec<(String, String)>,
    /// The run that computed it, and how long it took.
    pub run: String,
    pub elapsed_ms: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Pending,
    Running,
    Succeeded,
    Cached,
    Failed,
    /// Not run because a step it needs failed.
    Skipped,
    /// A run stopped on request (steps are never in this state).
    Cancelled,
    /// A run whose process stopped before it finished (a crash, a kill), found so at the
    /// next start (steps are never in this state).
    Interrupted,
}

impl Status {
    pub fn name(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Running => "running",
            Status::Succeeded => "ok",
            Status::Cached => "cached",
            Status::Failed => "failed",
            Status::Skipped => "skipped",
            Status::Cancelled => "cancelled",
            Status::Interrupted => "interrupted",
        }
    }

    /// The word JSON documents and metrics use (serde's name for it).
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Succeeded => "succeeded",
            other => other.name(),
        }
    }

    /// Whether the step finished with outputs.
    pub fn done(self) -> bool {
        matches!(self, Status::Succeeded | Status::Cached)
    }
}

/// An input as a step received it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputRef {
    pub port: String,
    /// `step.output`.
    pub from: String,
    pub digest: String,
}

/// The lineage of one step in one run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepRecord {
    pub id: String,
    pub plugin: PluginRef,
    pub config: Vec<(String, String)>,
    pub status: Status,
    pub cache_key: Option<String>,
    pub inputs: Vec<InputRef>,
    pub outputs: Vec<OutputRef>,
    #[serde(default)]
    pub checks: Vec<CheckRecord>,
    #[serde(default)]
    pub metrics: Vec<MetricRecord>,
    #[serde(default)]
    pub params: Vec<(String, String)>,
    pub attempts: u32,
    pub elapsed_ms: f64,
    pub error: Option<String>,
    /// The granted directories the step read, by content digest (as the cache key saw them).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub datasets: Vec<DatasetRef>,
}

/// A model version a run registered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Registered {
    pub model: String,
    pub version: u64,
    pub alias: Option<String>,
}

/// A directory a step was granted, and the digest of its content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatasetRef {
    /// The path as the workflow grants it.
    pub path: String,
    pub digest: String,
}

/// One run of a workflow: what ran, on what, producing what.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    /// 32 hex digits, time-ordered (UUID v7).
    pub id: String,
    pub workflow: String,
    pub status: Status,
    pub started_ms: u64,
    pub ended_ms: Option<u64>,
    /// The checked plan that ran: enough to run it again (`kiln replay`).
    pub plan: Plan,
    pub steps: Vec<StepRecord>,
    /// Why registration did or did not happen.
    pub register_note: Option<String>,
    pub registered: Option<Registered>,
    /// Set for a replay: the run it re-executed.
    pub replay_of: Option<String>,
    /// The commit of the git repository holding the workflow file, when it is in one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub git_commit: Option<String>,
    /// What each tracker plugin received.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub trackers: Vec<TrackerRecord>,
}

/// What one tracker plugin of a run received, and how it answered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrackerRecord {
    pub id: String,
    pub plugin: PluginRef,
    /// Batches and events delivered (a failed batch ends the tracker's deliveries).
    pub batches: u64,
    pub events: u64,
    pub error: Option<String>,
    /// What the tracker logged, at most [`TRACKER_LOG_LINES`] lines.
    #[serde(default)]
    pub logs: Vec<String>,
}

/// The most log lines kept per tracker.
pub const TRACKER_LOG_LINES: usize = 100;

/// What a list of runs shows of each.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RunSummary {
    pub id: String,
    pub workflow: String,
    pub status: Status,
    pub started_ms: u64,
    pub ended_ms: Option<u64>,
    pub steps: usize,
    pub cached: usize,
    pub replay_of: Option<String>,
    pub registered: Option<Registered>,
}

impl From<&RunRecord> for RunSummary {
    fn from(r: &RunRecord) -> Self {
        RunSummary {
            id: r.id.clone(),
            workflow: r.workflow.clone(),
            status: r.status,
            started_ms: r.started_ms,
            ended_ms: r.ended_ms,
            steps: r.steps.len(),
            cached: r
                .steps
                .iter()
                .filter(|s| s.status == Status::Cached)
                .count(),
            replay_of: r.replay_of.clone(),
            registered: r.registered.clone(),
        }
    }
}

/// A registered model.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ModelRecord {
    pub name: String,
    pub created_ms: u64,
    #[serde(default)]
    pub updated_ms: u64,
    /// The newest version number.
    pub latest: u64,
    pub aliases: BTreeMap<String, u64>,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    #[serde(default)]
    pub description: String,
}

/// A model's signature, as its runner reports it once the model is loaded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Signature {
    pub inputs: Vec<SignaturePort>,
    pub outputs: Vec<SignaturePort>,
    #[serde(default)]
    pub properties: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SignaturePort {
    pub name: String,
    /// tensor, table, scalar, text, bytes, json or any.
    pub kind: String,
    pub optional: bool,
}

impl From<crate::bindings::ModelMetadata> for Signature {
    fn from(m: crate::bindings::ModelMetadata) -> Self {
        let ports = |ports: Vec<crate::bindings::Port>| {
            ports
                .into_iter()
                .map(|p| SignaturePort {
                    name: p.name,
                    kind: crate::value::value_kind_name(p.kind).to_string(),
                    optional: p.optional,
                })
                .collect()
        };
        Signature {
            inputs: ports(m.inputs),
            outputs: ports(m.outputs),
            properties: m.properties.into_iter().collect(),
        }
    }
}

/// One version of a registered model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ModelVersion {
    pub model: String,
    pub version: u64,
    pub created_ms: u64,
    /// The run that produced it (empty when unknown).
    pub run: String,
    /// The workflow step that produced it, for a version a workflow registered.
    #[serde(default)]
    pub step: String,
    /// The digest of the stored artifact value (bytes), for a version a workflow registered.
    #[serde(default)]
    pub artifact: String,
    /// Where the model's files are, as MLflow names them (`runs:/...`, `mlflow-artifacts:/...`).
    #[serde(default)]
    pub source: String,
    /// The model-runner plugin that serves it.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub runner: Option<PluginRef>,
    /// The run's metrics when it was registered, `step.metric` → value.
    #[serde(default)]
    pub metrics: BTreeMap<String, f64>,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    #[serde(default)]
    pub description: String,
    /// The inputs and outputs the runner reports for the loaded model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<Signature>,
    /// The inference pipeline, for a version registered with `register.serve`: the steps a
    /// request's rows go through before the runner. Without it the runner takes the
    /// request as it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub pipeline: Option<Pipeline>,
}

/// A model version's inference pipeline: the workflow's serving steps, each pinned by
/// digest with its config and its fitted inputs bound to stored values, ending in the
/// model runner (the version's `runner` and `artifact`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pipeline {
    /// The steps before the runner, in the order rows go through them.
    pub stages: Vec<Stage>,
    /// The runner, as the workflow ran it (`output` is empty: its outputs are the answer).
    pub runner: Stage,
    /// The raw input's columns, in order, with their types: those of the rows the run
    /// used whose absence changes the answer (the target, say, does not), found when the
    /// version was registered. A request brings exactly these.
    pub columns: Vec<ColumnSpec>,
    /// What it answers: each output's name and kind, with a table's columns.
    pub outputs: Vec<OutputSpec>,
    /// The check made before the version was stored.
    pub proof: Proof,
}

/// An output of a pipeline's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutputSpec {
    pub name: String,
    /// tensor, table, scalar, text, bytes or json.
    pub kind: String,
    /// A table's columns.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub columns: Vec<ColumnSpec>,
}

/// A column of a pipeline's raw input.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ColumnSpec {
    pub name: String,
    /// float64, int64, text or boolean.
    #[serde(rename = "type")]
    pub kind: String,
}

/// One stage of a [`Pipeline`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stage {
    /// The workflow step it was captured from.
    pub step: String,
    pub plugin: PluginRef,
    pub config: Vec<(String, String)>,
    /// The port the rows enter at.
    pub input: String,
    /// The output the next stage reads.
    pub output: String,
    /// Its other inputs: values fitted in training (a scaler, categories), bound by the
    /// digest of the stored value.
    pub fitted: Vec<InputRef>,
}

/// What registration proved: the pipeline, run on the rows the workflow gave its first
/// serving step, answered exactly what the workflow's own steps answered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Proof {
    /// The rows it ran on: their digest, count and where the workflow read them from.
    pub input: String,
    pub rows: u64,
    pub from: String,
    /// The runner step's outputs, which the pipeline's equal digest for digest.
    pub outputs: Vec<OutputRef>,
}

impl Pipeline {
    /// Whether two pipelines run the same code on the same fitted values (their proofs
    /// aside).
    pub fn same_as(&self, other: &Pipeline) -> bool {
        self.stages == other.stages && self.runner == other.runner && self.columns == other.columns
    }

    /// The raw input: the first stage's port (the runner's without stages).
    pub fn input(&self) -> &str {
        self.stages.first().unwrap_or(&self.runner).input.as_str()
    }
}
