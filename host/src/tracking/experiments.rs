//! Experiment tracking in the store: experiments, tracked runs with their params, tags and
//! latest metrics, and every metric's full history, with MLflow's rules (immutable params,
//! key and value lengths, batch sizes) so its REST API can sit on top unchanged.

use std::collections::BTreeMap;

use redb::{ReadableDatabase, ReadableTable};
use serde::{Deserialize, Serialize};

use super::{Store, tables::*};

/// MLflow's limits, enforced here so every way in shares them.
pub const MAX_KEY_LEN: usize = 250;
pub const MAX_PARAM_VALUE_LEN: usize = 6000;
pub const MAX_TAG_VALUE_LEN: usize = 8000;
/// The longest experiment or registered model name (MLflow's column).
pub const MAX_NAME_LEN: usize = 256;
/// The longest run name (MLflow's column).
pub const MAX_RUN_NAME_LEN: usize = 250;
/// The longest description of a registered model or model version (MLflow's column).
pub const MAX_DESCRIPTION_LEN: usize = 5000;

/// `text` as an error message may echo it: at most 64 characters, with `…` when cut.
pub(crate) fn shown(text: &str) -> String {
    match text.char_indices().nth(64) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_string(),
    }
}

/// Refuses `text` longer than `max` bytes, saying what it is but not echoing it.
pub(crate) fn check_len(what: &str, text: &str, max: usize) -> Result<()> {
    if text.len() > max {
        return Err(TrackingError::Invalid(format!(
            "{what} may be at most {max} characters; this one has {}",
            text.len()
        )));
    }
    Ok(())
}
pub const MAX_BATCH_METRICS: usize = 1000;
pub const MAX_BATCH_PARAMS: usize = 100;
pub const MAX_BATCH_TAGS: usize = 100;
pub const MAX_BATCH_TOTAL: usize = 1000;

/// The experiment every run without one goes to, as in MLflow.
pub const DEFAULT_EXPERIMENT: &str = "Default";

/// What can go wrong in tracking, in the terms MLflow's API answers with.
#[derive(Debug, thiserror::Error)]
pub enum TrackingError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    AlreadyExists(String),
    #[error("{0}")]
    Invalid(String),
    /// A body or upload past its limit.
    #[error("{0}")]
    TooLarge(String),
    #[error("tracking store: {0}")]
    Storage(String),
}

impl TrackingError {
    /// MLflow's `error_code` for this error.
    pub fn mlflow_code(&self) -> &'static str {
        match self {
            TrackingError::NotFound(_) => "RESOURCE_DOES_NOT_EXIST",
            TrackingError::AlreadyExists(_) => "RESOURCE_ALREADY_EXISTS",
            TrackingError::Invalid(_) => "INVALID_PARAMETER_VALUE",
            TrackingError::TooLarge(_) => "RESOURCE_EXHAUSTED",
            TrackingError::Storage(_) => "INTERNAL_ERROR",
        }
    }
}

macro_rules! storage_errors {
    ($($t:ty),*) => {$(
        impl From<$t> for TrackingError {
            fn from(e: $t) -> Self {
                TrackingError::Storage(e.to_string())
            }
        }
    )*};
}
storage_errors!(
    redb::Error,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError,
    serde_json::Error
);

type Result<T, E = TrackingError> = std::result::Result<T, E>;

/// An experiment: a named group of runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Experiment {
    pub experiment_id: String,
    pub name: String,
    pub artifact_location: String,
    /// `active` or `deleted`.
    pub lifecycle_stage: String,
    pub tags: BTreeMap<String, String>,
    pub creation_time: i64,
    pub last_update_time: i64,
}

/// A run's identity and state, as MLflow's `RunInfo`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunInfo {
    pub run_id: String,
    pub run_name: String,
    pub experiment_id: String,
    pub user_id: String,
    /// RUNNING, SCHEDULED, FINISHED, FAILED or KILLED.
    pub status: String,
    pub start_time: i64,
    pub end_time: Option<i64>,
    pub artifact_uri: String,
    pub lifecycle_stage: String,
}

/// One metric point.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Metric {
    #[serde(with = "json_f64")]
    pub value: f64,
    pub timestamp: i64,
    pub step: i64,
}

/// A tracked run: its info, params, tags and the latest point of each metric.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrackedRun {
    pub info: RunInfo,
    pub params: BTreeMap<String, String>,
    pub tags: BTreeMap<String, String>,
    pub metrics: BTreeMap<String, Metric>,
    /// The datasets the run read, each once per (name, digest).
    #[serde(default)]
    pub inputs: Vec<DatasetInput>,
}

/// A dataset a run read, as MLflow describes one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatasetInput {
    pub name: String,
    pub digest: String,
    pub source_type: String,
    pub source: String,
    #[serde(default)]
    pub schema: String,
    #[serde(default)]
    pub profile: String,
    /// The input's tags (e.g. `mlflow.data.context`: train, test).
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
}

/// f64 in JSON as protobuf's JSON mapping writes it: a number when finite, else the
/// string `NaN`, `Infinity` or `-Infinity` (JSON has no such numbers).
pub mod json_f64 {
    use serde::{Deserialize, Deserializer, Serializer, de::Error as _};

    pub fn serialize<S: Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
        if v.is_finite() {
            s.serialize_f64(*v)
        } else if v.is_nan() {
            s.serialize_str("NaN")
        } else if *v > 0.0 {
            s.serialize_str("Infinity")
        } else {
            s.serialize_str("-Infinity")
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum F {
            Number(f64),
            Text(String),
        }
        match F::deserialize(d)? {
            F::Number(v) => Ok(v),
            F::Text(t) => match t.as_str() {
                "NaN" => Ok(f64::NAN),
                "Infinity" => Ok(f64::INFINITY),
                "-Infinity" => Ok(f64::NEG_INFINITY),
                other => other
                    .parse()
                    .map_err(|_| D::Error::custom(format!("`{other}` is not a number"))),
            },
        }
    }

    /// The same, for an optional value.
    pub mod option {
        use serde::{Deserialize, Deserializer, Serializer};

        pub fn serialize<S: Serializer>(v: &Option<f64>, s: S) -> Result<S::Ok, S::Error> {
            match v {
                Some(v) => super::serialize(v, s),
                None => s.serialize_none(),
            }
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
            #[derive(Deserialize)]
            struct W(#[serde(with = "super")] f64);
            Ok(Option::<W>::deserialize(d)?.map(|w| w.0))
        }
    }
}

const POINT: usize = 24;

pub(super) fn pack(points: &[Metric]) -> Vec<u8> {
    let mut out = Vec::with_capacity(points.len() * POINT);
    for p in points {
        out.extend_from_slice(&p.value.to_le_bytes());
        out.extend_from_slice(&p.timestamp.to_le_bytes());
        out.extend_from_slice(&p.step.to_le_bytes());
    }
    out
}

fn unpack(bytes: &[u8], out: &mut Vec<Metric>) {
    for p in bytes.chunks_exact(POINT) {
        let word = |i: usize| <[u8; 8]>::try_from(&p[i * 8..i * 8 + 8]).expect("8 bytes");
        out.push(Metric {
            value: f64::from_le_bytes(word(0)),
            timestamp: i64::from_le_bytes(word(1)),
            step: i64::from_le_bytes(word(2)),
        });
    }
}

fn check_key(what: &str, key: &str) -> Result<()> {
    if key.is_empty() || key.len() > MAX_KEY_LEN {
        return Err(TrackingError::Invalid(format!(
            "{what} key `{}` must be 1 to {MAX_KEY_LEN} characters",
            key.chars().take(40).collect::<String>()
        )));
    }
    if key.starts_with('/') || key.contains("..") {
        return Err(TrackingError::Invalid(format!(
            "{what} key `{key}` may not start with `/` or contain `..`"
        )));
    }
    Ok(())
}

fn check_value(what: &str, key: &str, value: &str, max: usize) -> Result<()> {
    if value.len() > max {
        return Err(TrackingError::Invalid(format!(
            "{what} `{key}` has a value of {} characters; the limit is {max}",
            value.len()
        )));
    }
    Ok(())
}

/// Whether point `a` supersedes `b` as a metric's latest: MLflow orders by step, then
/// timestamp, then value.
fn later(a: &Metric, b: &Metric) -> bool {
    a.step
        .cmp(&b.step)
        .then(a.timestamp.cmp(&b.timestamp))
        .then(a.value.total_cmp(&b.value))
        .is_gt()
}

/// Checks a batch against MLflow's limits (the batch sizes only when `limits`).
fn check_batch(
    metrics: &[(String, Metric)],
    params: &[(String, String)],
    tags: &[(String, String)],
    limits: bool,
) -> Result<()> {
    if limits {
        let too_many = |what: &str, n: usize, max: usize| {
            (n > max).then(|| {
                TrackingError::Invalid(format!(
                    "a batch may hold at most {max} {what}; this one has {n}"
                ))
            })
        };
        let total = metrics.len() + params.len() + tags.len();
        if let Some(e) = too_many("metrics", metrics.len(), MAX_BATCH_METRICS)
            .or_else(|| too_many("params", params.len(), MAX_BATCH_PARAMS))
            .or_else(|| too_many("tags", tags.len(), MAX_BATCH_TAGS))
            .or_else(|| too_many("entries in all", total, MAX_BATCH_TOTAL))
        {
            return Err(e);
        }
    }
    for (k, _) in metrics {
        check_key("metric", k)?;
    }
    for (k, v) in params {
        check_key("param", k)?;
        check_value("param", k, v, MAX_PARAM_VALUE_LEN)?;
    }
    for (k, v) in tags {
        check_key("tag", k)?;
        check_value("tag", k, v, MAX_TAG_VALUE_LEN)?;
    }
    Ok(())
}

/// Applies a checked batch to a run read in `txn`.
fn change_batch(
    run: &mut TrackedRun,
    txn: &redb::WriteTransaction,
    run_id: &str,
    metrics: &[(String, Metric)],
    params: &[(String, String)],
    tags: &[(String, String)],
    finish: Option<(&str, Option<i64>)>,
) -> Result<()> {
    if run.info.lifecycle_stage != "active" {
        return Err(TrackingError::Invalid(format!("run `{run_id}` is deleted")));
    }
    if let Some((status, end)) = finish {
        run.info.status = status.to_string();
        run.info.end_time = end;
    }
    let mut seen: BTreeMap<&str, &str> = BTreeMap::new();
    for (k, v) in params {
        let old = run
            .params
            .get(k)
            .map(String::as_str)
            .or(seen.get(k.as_str()).copied());
        if let Some(old) = old
            && old != v
        {
            return Err(TrackingError::Invalid(format!(
                "param `{k}` of run `{run_id}` is `{old}`; a param cannot change (to `{v}`)"
            )));
        }
        seen.insert(k, v);
    }
    for (k, v) in params {
        run.params.insert(k.clone(), v.clone());
    }
    for (k, v) in tags {
        if k == "mlflow.runName" {
            run.info.run_name = v.clone();
        }
        run.tags.insert(k.clone(), v.clone());
    }
    append_points(run, txn, run_id, metrics)
}

/// A tracked run as its table holds it, or NotFound.
fn decode_run(got: Option<redb::AccessGuard<'_, &[u8]>>, run_id: &str) -> Result<TrackedRun> {
    match got {
        Some(v) => Ok(serde_json::from_slice(v.value())?),
        None => Err(no_run(run_id)),
    }
}

fn no_run(run_id: &str) -> TrackingError {
    TrackingError::NotFound(format!("no run with id `{run_id}`"))
}

/// Reads, changes and writes back one run inside `txn`.
fn modify_run_in(
    txn: &redb::WriteTransaction,
    run_id: &str,
    change: impl FnOnce(&mut TrackedRun, &redb::WriteTransaction) -> Result<()>,
) -> Result<TrackedRun> {
    let mut table = txn.open_table(TRACKED_RUNS)?;
    let mut run = decode_run(table.get(run_id)?, run_id)?;
    change(&mut run, txn)?;
    table.insert(run_id, serde_json::to_vec(&run)?.as_slice())?;
    Ok(run)
}

/// Appends points to their metrics' histories (one chunk per key, in the order given)
/// and updates the run's latest values; the caller writes the run back.
fn append_points(
    run: &mut TrackedRun,
    txn: &redb::WriteTransaction,
    run_id: &str,
    metrics: &[(String, Metric)],
) -> Result<()> {
    let mut by_key: BTreeMap<&str, Vec<Metric>> = BTreeMap::new();
    for (k, m) in metrics {
        by_key.entry(k.as_str()).or_default().push(*m);
    }
    let mut chunks = txn.open_table(METRIC_CHUNKS)?;
    for (key, points) in by_key {
        let next = chunks
            .range((run_id, key, 0)..=(run_id, key, u64::MAX))?
            .next_back()
            .transpose()?
            .map_or(0, |(k, _)| k.value().2 + 1);
        chunks.insert((run_id, key, next), pack(&points).as_slice())?;
        let latest = points
            .iter()
            .copied()
            .reduce(|a, b| if later(&b, &a) { b } else { a })
            .expect("a key has points");
        match run.metrics.get(key) {
            Some(old) if !later(&latest, old) => {}
            _ => {
                run.metrics.insert(key.to_string(), latest);
            }
        }
    }
    Ok(())
}

/// Logs metric points into a run inside a transaction the caller commits (the workflow
/// writer's group commit).
pub(super) fn log_points_in(
    txn: &redb::WriteTransaction,
    run_id: &str,
    metrics: &[(String, Metric)],
) -> Result<()> {
    modify_run_in(txn, run_id, |run, txn| {
        append_points(run, txn, run_id, metrics)
    })
    .map(drop)
}

/// Stores a new run inside `txn`; an id already taken is refused.
pub(super) fn insert_run_in(txn: &redb::WriteTransaction, run: &TrackedRun) -> Result<()> {
    let mut table = txn.open_table(TRACKED_RUNS)?;
    let id = run.info.run_id.as_str();
    if table.get(id)?.is_some() {
        return Err(TrackingError::AlreadyExists(format!("run `{id}` exists")));
    }
    table.insert(id, serde_json::to_vec(run)?.as_slice())?;
    Ok(())
}

/// How a workflow's tracked run ends: its last params, tags, metrics and datasets, and its
/// status, written with the run record's last write.
#[derive(Debug, Clone)]
pub struct RunEnd {
    pub run_id: String,
    pub metrics: Vec<(String, Metric)>,
    pub params: Vec<(String, String)>,
    pub tags: Vec<(String, String)>,
    pub inputs: Vec<DatasetInput>,
    pub status: String,
    pub end_time: Option<i64>,
}

pub(super) fn end_run_in(txn: &redb::WriteTransaction, end: &RunEnd) -> Result<()> {
    check_batch(&end.metrics, &end.params, &end.tags, false)?;
    modify_run_in(txn, &end.run_id, |run, txn| {
        change_batch(
            run,
            txn,
            &end.run_id,
            &end.metrics,
            &end.params,
            &end.tags,
            Some((end.status.as_str(), end.end_time)),
        )?;
        merge_inputs(run, end.inputs.clone());
        Ok(())
    })
    .map(drop)
}

/// Adds datasets to a run; the same (name, digest) again only updates its tags.
fn merge_inputs(run: &mut TrackedRun, inputs: Vec<DatasetInput>) {
    for d in inputs {
        match run
            .inputs
            .iter_mut()
            .find(|x| x.name == d.name && x.digest == d.digest)
        {
            Some(x) => x.tags.extend(d.tags),
            None => run.inputs.push(d),
        }
    }
}

impl Store {
    fn experiment_in(&self, txn: &redb::ReadTransaction, id: &str) -> Result<Option<Experiment>> {
        let Ok(n) = id.parse::<u64>() else {
            return Ok(None);
        };
        let table = txn.open_table(EXPERIMENTS)?;
        Ok(match table.get(n)? {
            Some(v) => Some(serde_json::from_slice(v.value())?),
            None => None,
        })
    }

    /// Creates an experiment; its name must be new (a deleted experiment keeps its name).
    pub fn create_experiment(
        &self,
        name: &str,
        artifact_location: Option<&str>,
        tags: &BTreeMap<String, String>,
    ) -> Result<String> {
        if name.trim().is_empty() {
            return Err(TrackingError::Invalid("an experiment needs a name".into()));
        }
        check_len("an experiment name", name, MAX_NAME_LEN)?;
        for (k, v) in tags {
            check_key("tag", k)?;
            check_value("tag", k, v, MAX_TAG_VALUE_LEN)?;
        }
        let txn = self.db.begin_write()?;
        let id = {
            let mut names = txn.open_table(EXPERIMENT_NAMES)?;
            if names.get(name)?.is_some() {
                return Err(TrackingError::AlreadyExists(format!(
                    "an experiment named `{name}` already exists"
                )));
            }
            let mut table = txn.open_table(EXPERIMENTS)?;
            // Experiment 0 is the default one; others count up from 1.
            let id = if name == DEFAULT_EXPERIMENT && table.get(0)?.is_none() {
                0
            } else {
                table.last()?.map_or(1, |(k, _)| k.value() + 1).max(1)
            };
            let now = crate::now_ms() as i64;
            let e = Experiment {
                experiment_id: id.to_string(),
                name: name.to_string(),
                artifact_location: artifact_location
                    .map_or_else(|| format!("mlflow-artifacts:/{id}"), str::to_string),
                lifecycle_stage: "active".into(),
                tags: tags.clone(),
                creation_time: now,
                last_update_time: now,
            };
            table.insert(id, serde_json::to_vec(&e)?.as_slice())?;
            names.insert(name, id)?;
            id
        };
        txn.commit()?;
        Ok(id.to_string())
    }

    /// An experiment by id.
    pub fn experiment(&self, id: &str) -> Result<Experiment> {
        let txn = self.db.begin_read()?;
        self.experiment_in(&txn, id)?
            .ok_or_else(|| TrackingError::NotFound(format!("no experiment with id `{id}`")))
    }

    /// An experiment by name.
    pub fn experiment_by_name(&self, name: &str) -> Result<Experiment> {
        let txn = self.db.begin_read()?;
        let id = txn
            .open_table(EXPERIMENT_NAMES)?
            .get(name)?
            .map(|v| v.value());
        match id {
            Some(id) => self.experiment_in(&txn, &id.to_string())?.ok_or_else(|| {
                TrackingError::Storage(format!("experiment `{name}` lost its record"))
            }),
            None => Err(TrackingError::NotFound(format!(
                "no experiment named `{}`",
                shown(name)
            ))),
        }
    }

    /// The experiment named `name`, created if absent.
    pub fn ensure_experiment(&self, name: &str) -> Result<Experiment> {
        match self.experiment_by_name(name) {
            Err(TrackingError::NotFound(_)) => {
                match self.create_experiment(name, None, &BTreeMap::new()) {
                    Ok(id) => self.experiment(&id),
                    // Another writer created it meanwhile.
                    Err(TrackingError::AlreadyExists(_)) => self.experiment_by_name(name),
                    Err(e) => Err(e),
                }
            }
            other => other,
        }
    }

    /// Every experiment, by id.
    pub fn experiments(&self) -> Result<Vec<Experiment>> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(EXPERIMENTS)?;
        let mut out = Vec::new();
        for row in table.iter()? {
            out.push(serde_json::from_slice(row?.1.value())?);
        }
        Ok(out)
    }

    /// Starts a run in an experiment.
    pub fn create_run(
        &self,
        experiment_id: &str,
        run_name: Option<&str>,
        start_time: Option<i64>,
        tags: &BTreeMap<String, String>,
    ) -> Result<TrackedRun> {
        let run_id = uuid::Uuid::now_v7().simple().to_string();
        self.create_run_as(&run_id, experiment_id, run_name, start_time, tags)
    }

    /// Starts a run with a given id (a workflow run's, so both records share it).
    pub fn create_run_as(
        &self,
        run_id: &str,
        experiment_id: &str,
        run_name: Option<&str>,
        start_time: Option<i64>,
        tags: &BTreeMap<String, String>,
    ) -> Result<TrackedRun> {
        let run = self.new_run(run_id, experiment_id, run_name, start_time, tags)?;
        let txn = self.db.begin_write()?;
        insert_run_in(&txn, &run)?;
        txn.commit()?;
        Ok(run)
    }

    /// A new run, checked, for [`insert_run_in`] to store (the workflow writer does, in
    /// its group commit).
    pub fn new_run(
        &self,
        run_id: &str,
        experiment_id: &str,
        run_name: Option<&str>,
        start_time: Option<i64>,
        tags: &BTreeMap<String, String>,
    ) -> Result<TrackedRun> {
        let experiment = self.experiment(experiment_id)?;
        if experiment.lifecycle_stage != "active" {
            return Err(TrackingError::Invalid(format!(
                "experiment `{}` is deleted",
                experiment.name
            )));
        }
        for (k, v) in tags {
            check_key("tag", k)?;
            check_value("tag", k, v, MAX_TAG_VALUE_LEN)?;
        }
        if let Some(n) = run_name {
            check_len("a run name", n, MAX_RUN_NAME_LEN)?;
        }
        let run_id = run_id.to_string();
        let name = run_name
            .map(str::to_string)
            .or_else(|| tags.get("mlflow.runName").cloned())
            .unwrap_or_else(|| format!("run-{}", &run_id[run_id.len() - 8..]));
        let mut tags = tags.clone();
        tags.insert("mlflow.runName".into(), name.clone());
        let run = TrackedRun {
            info: RunInfo {
                run_id: run_id.clone(),
                run_name: name,
                experiment_id: experiment.experiment_id.clone(),
                user_id: tags.get("mlflow.user").cloned().unwrap_or_default(),
                status: "RUNNING".into(),
                start_time: start_time.unwrap_or(crate::now_ms() as i64),
                end_time: None,
                artifact_uri: format!("{}/{run_id}/artifacts", experiment.artifact_location),
                lifecycle_stage: "active".into(),
            },
            params: BTreeMap::new(),
            tags,
            metrics: BTreeMap::new(),
            inputs: Vec::new(),
        };
        Ok(run)
    }

    /// A tracked run by id.
    pub fn tracked_run(&self, run_id: &str) -> Result<TrackedRun> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(TRACKED_RUNS)?;
        decode_run(table.get(run_id)?, run_id)
    }

    /// Reads, changes and writes back one experiment.
    pub fn modify_experiment(
        &self,
        id: &str,
        change: impl FnOnce(&mut Experiment) -> Result<()>,
    ) -> Result<Experiment> {
        let n: u64 = id
            .parse()
            .map_err(|_| TrackingError::NotFound(format!("no experiment with id `{id}`")))?;
        let txn = self.db.begin_write()?;
        let e = {
            let mut table = txn.open_table(EXPERIMENTS)?;
            let mut e: Experiment = match table.get(n)? {
                Some(v) => serde_json::from_slice(v.value())?,
                None => {
                    return Err(TrackingError::NotFound(format!(
                        "no experiment with id `{id}`"
                    )));
                }
            };
            let old_name = e.name.clone();
            change(&mut e)?;
            for (k, v) in &e.tags {
                check_key("tag", k)?;
                check_value("tag", k, v, MAX_TAG_VALUE_LEN)?;
            }
            e.last_update_time = crate::now_ms() as i64;
            if e.name != old_name {
                let mut names = txn.open_table(EXPERIMENT_NAMES)?;
                if e.name.trim().is_empty() {
                    return Err(TrackingError::Invalid("an experiment needs a name".into()));
                }
                check_len("an experiment name", &e.name, MAX_NAME_LEN)?;
                if names.get(e.name.as_str())?.is_some() {
                    return Err(TrackingError::AlreadyExists(format!(
                        "an experiment named `{}` already exists",
                        e.name
                    )));
                }
                names.remove(old_name.as_str())?;
                names.insert(e.name.as_str(), n)?;
            }
            table.insert(n, serde_json::to_vec(&e)?.as_slice())?;
            e
        };
        txn.commit()?;
        Ok(e)
    }

    /// Marks a run deleted or active again.
    pub fn set_run_lifecycle(&self, run_id: &str, stage: &str) -> Result<()> {
        self.modify_run(run_id, |run, _| {
            run.info.lifecycle_stage = stage.to_string();
            Ok(())
        })
        .map(drop)
    }

    /// Removes a tag from a run.
    pub fn delete_run_tag(&self, run_id: &str, key: &str) -> Result<()> {
        self.modify_run(run_id, |run, _| {
            run.tags.remove(key).map(drop).ok_or_else(|| {
                TrackingError::NotFound(format!("run `{run_id}` has no tag `{key}`"))
            })
        })
        .map(drop)
    }

    /// Every tracked run of the given experiments, newest first.
    pub fn tracked_runs(&self, experiment_ids: &[String]) -> Result<Vec<TrackedRun>> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(TRACKED_RUNS)?;
        let mut out = Vec::new();
        for row in table.iter()?.rev() {
            let run: TrackedRun = serde_json::from_slice(row?.1.value())?;
            if experiment_ids.is_empty() || experiment_ids.contains(&run.info.experiment_id) {
                out.push(run);
            }
        }
        Ok(out)
    }

    /// Changes a run's status, end time or name.
    pub fn update_run(
        &self,
        run_id: &str,
        status: Option<&str>,
        end_time: Option<i64>,
        run_name: Option<&str>,
    ) -> Result<RunInfo> {
        if let Some(s) = status
            && !["RUNNING", "SCHEDULED", "FINISHED", "FAILED", "KILLED"].contains(&s)
        {
            return Err(TrackingError::Invalid(format!(
                "`{}` is not a run status (RUNNING, SCHEDULED, FINISHED, FAILED, KILLED)",
                shown(s)
            )));
        }
        if let Some(n) = run_name {
            check_len("a run name", n, MAX_RUN_NAME_LEN)?;
        }
        self.modify_run(run_id, |run, _| {
            if let Some(s) = status {
                run.info.status = s.to_string();
            }
            if end_time.is_some() {
                run.info.end_time = end_time;
            }
            if let Some(n) = run_name {
                run.info.run_name = n.to_string();
                run.tags.insert("mlflow.runName".into(), n.to_string());
            }
            Ok(())
        })
        .map(|run| run.info)
    }

    /// Reads, changes and writes back one run in one transaction.
    fn modify_run(
        &self,
        run_id: &str,
        change: impl FnOnce(&mut TrackedRun, &redb::WriteTransaction) -> Result<()>,
    ) -> Result<TrackedRun> {
        let txn = self.db.begin_write()?;
        let run = modify_run_in(&txn, run_id, change)?;
        txn.commit()?;
        Ok(run)
    }

    /// Logs metrics, params and tags to a run in one transaction: all of them or none.
    /// A param, once logged, keeps its value: logging another value for it is an error.
    pub fn log_batch(
        &self,
        run_id: &str,
        metrics: &[(String, Metric)],
        params: &[(String, String)],
        tags: &[(String, String)],
    ) -> Result<()> {
        self.log_batch_limited(run_id, metrics, params, tags, true, None)
    }

    /// As [`log_batch`](Self::log_batch); `limits` off lifts the batch-size limits (for
    /// plugins logging in-process, whose events arrive in one batch per step), and
    /// `finish` sets the run's final status and end time in the same transaction.
    pub fn log_batch_limited(
        &self,
        run_id: &str,
        metrics: &[(String, Metric)],
        params: &[(String, String)],
        tags: &[(String, String)],
        limits: bool,
        finish: Option<(&str, Option<i64>)>,
    ) -> Result<()> {
        check_batch(metrics, params, tags, limits)?;
        self.modify_run(run_id, |run, txn| {
            change_batch(run, txn, run_id, metrics, params, tags, finish)
        })
        .map(drop)
    }

    /// Records datasets a run read. The same (name, digest) again only updates its tags.
    pub fn log_inputs(&self, run_id: &str, inputs: Vec<DatasetInput>) -> Result<()> {
        for d in &inputs {
            if d.name.is_empty() || d.digest.is_empty() {
                return Err(TrackingError::Invalid(
                    "a dataset needs a name and a digest".into(),
                ));
            }
            check_value("dataset", &d.name, &d.source, MAX_PARAM_VALUE_LEN * 2)?;
        }
        self.modify_run(run_id, |run, _| {
            if run.info.lifecycle_stage != "active" {
                return Err(TrackingError::Invalid(format!("run `{run_id}` is deleted")));
            }
            merge_inputs(run, inputs);
            Ok(())
        })
        .map(drop)
    }

    /// Every point of a run's metric, in the order logged.
    pub fn metric_history(&self, run_id: &str, key: &str) -> Result<Vec<Metric>> {
        let txn = self.db.begin_read()?;
        if txn.open_table(TRACKED_RUNS)?.get(run_id)?.is_none() {
            return Err(no_run(run_id));
        }
        history_in(&txn.open_table(METRIC_CHUNKS)?, run_id, key)
    }
}

/// Every point of a run's metric from the chunks table, in the order logged.
pub(super) fn history_in(
    chunks: &redb::ReadOnlyTable<(&'static str, &'static str, u64), &'static [u8]>,
    run_id: &str,
    key: &str,
) -> Result<Vec<Metric>> {
    let mut out = Vec::new();
    for row in chunks.range((run_id, key, 0)..=(run_id, key, u64::MAX))? {
        unpack(row?.1.value(), &mut out);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        (dir, s)
    }

    fn m(value: f64, step: i64) -> Metric {
        Metric {
            value,
            timestamp: 1000 + step,
            step,
        }
    }

    #[test]
    fn experiments_have_unique_names_and_a_default() {
        let (_d, s) = store();
        let default = s.ensure_experiment(DEFAULT_EXPERIMENT).unwrap();
        assert_eq!(default.experiment_id, "0");
        let id = s.create_experiment("iris", None, &BTreeMap::new()).unwrap();
        assert_eq!(id, "1");
        assert!(matches!(
            s.create_experiment("iris", None, &BTreeMap::new()),
            Err(TrackingError::AlreadyExists(_))
        ));
        assert_eq!(
            s.experiment_by_name("iris").unwrap().artifact_location,
            "mlflow-artifacts:/1"
        );
        assert!(matches!(
            s.experiment("42"),
            Err(TrackingError::NotFound(_))
        ));
        assert_eq!(s.experiments().unwrap().len(), 2);
    }

    #[test]
    fn a_run_keeps_every_metric_point_and_immutable_params() {
        let (_d, s) = store();
        let e = s.ensure_experiment("train").unwrap();
        let run = s
            .create_run(&e.experiment_id, Some("first"), None, &BTreeMap::new())
            .unwrap();
        let id = run.info.run_id.as_str();
        let batch: Vec<(String, Metric)> = (0..998)
            .map(|i| ("loss".to_string(), m(1.0 / (i + 1) as f64, i)))
            .collect();
        s.log_batch(
            id,
            &batch,
            &[("lr".into(), "0.1".into())],
            &[("team".into(), "ml".into())],
        )
        .unwrap();
        s.log_batch(
            id,
            &[("loss".into(), m(f64::NAN, 998))],
            &[("lr".into(), "0.1".into())],
            &[],
        )
        .unwrap();
        let history = s.metric_history(id, "loss").unwrap();
        assert_eq!(history.len(), 999);
        assert_eq!(history[0], m(1.0, 0));
        assert!(history[998].value.is_nan());
        let run = s.tracked_run(id).unwrap();
        assert_eq!(run.params["lr"], "0.1");
        assert_eq!(run.tags["team"], "ml");
        assert_eq!(run.tags["mlflow.runName"], "first");
        assert_eq!(
            run.metrics["loss"].step, 998,
            "the latest point is the highest step"
        );
        // A param cannot change, and a failed batch stores nothing of itself.
        let err = s
            .log_batch(
                id,
                &[("acc".into(), m(0.5, 0))],
                &[("lr".into(), "0.2".into())],
                &[],
            )
            .unwrap_err();
        assert!(err.to_string().contains("cannot change"), "{err}");
        assert!(s.metric_history(id, "acc").unwrap().is_empty());
        // Limits, as MLflow's.
        let big: Vec<(String, Metric)> = (0..1001).map(|i| ("x".to_string(), m(0.0, i))).collect();
        assert!(matches!(
            s.log_batch(id, &big, &[], &[]),
            Err(TrackingError::Invalid(_))
        ));
        let long = "k".repeat(MAX_KEY_LEN + 1);
        assert!(matches!(
            s.log_batch(id, &[(long, m(0.0, 0))], &[], &[]),
            Err(TrackingError::Invalid(_))
        ));
        let info = s.update_run(id, Some("FINISHED"), Some(5), None).unwrap();
        assert_eq!((info.status.as_str(), info.end_time), ("FINISHED", Some(5)));
        assert!(matches!(
            s.update_run(id, Some("DONE"), None, None),
            Err(TrackingError::Invalid(_))
        ));
        assert!(matches!(
            s.metric_history("nope", "loss"),
            Err(TrackingError::NotFound(_))
        ));
    }

    #[test]
    fn non_finite_numbers_survive_json() {
        let c = crate::tracking::CheckRecord {
            name: "n".into(),
            passed: true,
            severity: "info".into(),
            observed: Some(f64::NEG_INFINITY),
            detail: String::new(),
        };
        let text = serde_json::to_string(&c).unwrap();
        assert!(text.contains("\"-Infinity\""), "{text}");
        let back: crate::tracking::CheckRecord = serde_json::from_str(&text).unwrap();
        assert_eq!(back.observed, Some(f64::NEG_INFINITY));
        let none: crate::tracking::CheckRecord = serde_json::from_str(
            r#"{"name":"n","passed":true,"severity":"info","observed":null,"detail":""}"#,
        )
        .unwrap();
        assert_eq!(none.observed, None);
        let m: Metric = serde_json::from_str(r#"{"value":"NaN","timestamp":1,"step":2}"#).unwrap();
        assert!(m.value.is_nan());
    }

    #[test]
    fn the_latest_point_orders_by_step_then_time() {
        let a = Metric {
            value: 1.0,
            timestamp: 5,
            step: 2,
        };
        let b = Metric {
            value: 0.0,
            timestamp: 9,
            step: 1,
        };
        assert!(later(&a, &b));
        assert!(!later(&b, &a));
        let c = Metric {
            value: 2.0,
            timestamp: 5,
            step: 2,
        };
        assert!(later(&c, &a));
    }
}
