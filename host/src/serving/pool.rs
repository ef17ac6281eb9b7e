//! A pool of warm model-runner instances for one model version, each loaded once and
//! owned by its own worker thread. Requests wait in one bounded queue: when it is full the
//! request is refused at once ([`ServeError::Busy`]), so memory never grows with load.
//! With `max_batch > 1` a worker merges queued requests of the same shape into one
//! predict (dynamic batching) and splits the answer back by rows.
//!
//! A worker whose instance trapped (a poisoned store) builds a fresh one before its next
//! request. Dropping the last handle on a pool ends its workers once the queue is empty.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use crossbeam_channel::{Receiver, Sender, TrySendError};
use tokio::sync::oneshot;

use super::{native::NativeModel, pipeline::PipelineRunner};
use crate::{
    bindings::{Column, ColumnData, ModelMetadata, NamedValue, Table, Tensor, Value},
    plugin::{ModelInstance, PluginError},
};

/// How a pool runs.
#[derive(Debug, Clone, Copy)]
pub struct PoolOptions {
    pub instances: usize,
    pub queue: usize,
    pub max_batch: usize,
    pub max_delay: Duration,
}

/// A loaded model, in the sandbox or native.
pub enum Runner {
    Wasm(ModelInstance),
    Native(Box<dyn NativeModel>),
    /// A model behind its inference pipeline's stages.
    Pipeline(Box<PipelineRunner>),
}

impl Runner {
    pub fn metadata(&mut self) -> Result<ModelMetadata, ServeError> {
        match self {
            Runner::Wasm(m) => m.metadata().map_err(ServeError::Plugin),
            Runner::Native(m) => Ok(m.metadata()),
            Runner::Pipeline(p) => p.metadata(),
        }
    }

    pub fn predict(&mut self, inputs: &[NamedValue]) -> Result<Vec<NamedValue>, ServeError> {
        match self {
            Runner::Wasm(m) => m
                .predict(inputs)
                .map(|o| o.value)
                .map_err(ServeError::Plugin),
            Runner::Native(m) => m.predict(inputs).map_err(ServeError::Invalid),
            Runner::Pipeline(p) => p.predict(inputs),
        }
    }

    pub(super) fn usable(&self) -> bool {
        match self {
            Runner::Wasm(m) => m.usable(),
            Runner::Native(_) => true,
            Runner::Pipeline(p) => p.usable(),
        }
    }
}

/// Builds one more loaded instance of the pool's model.
pub type Factory = Arc<dyn Fn() -> Result<Runner, ServeError> + Send + Sync>;

/// Why a prediction has no answer.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("{0}")]
    NotFound(String),
    #[error("the model's queue is full; retry later")]
    Busy,
    #[error("{0}")]
    Unavailable(String),
    /// The version exists but cannot be served as it is registered (no model runner):
    /// the request, not the server, has to change.
    #[error("{0}")]
    NotServable(String),
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Plugin(PluginError),
}

impl ServeError {
    /// A short stable code, for logs.
    pub fn code(&self) -> &'static str {
        match self {
            ServeError::NotFound(_) => "not_found",
            ServeError::Busy => "overloaded",
            ServeError::Unavailable(_) => "model_unavailable",
            ServeError::NotServable(_) => "not_servable",
            ServeError::Invalid(_) => "invalid_input",
            ServeError::Plugin(e) => e.code(),
        }
    }
}

/// What a pool has done, for `/metrics`.
#[derive(Debug, Default)]
pub struct PoolStats {
    pub predictions: AtomicU64,
    pub failures: AtomicU64,
    pub rejected: AtomicU64,
    /// Predict calls made (fewer than predictions when batching merges requests).
    pub calls: AtomicU64,
    /// Instances rebuilt after a trap.
    pub rebuilt: AtomicU64,
}

struct Job {
    inputs: Vec<NamedValue>,
    reply: oneshot::Sender<Result<Vec<NamedValue>, ServeError>>,
}

/// Warm instances of one model version behind one bounded queue.
pub struct Pool {
    pub metadata: ModelMetadata,
    pub options: PoolOptions,
    pub stats: Arc<PoolStats>,
    queue: Sender<Job>,
}

impl Pool {
    /// Loads `options.instances` runners (on this thread; it blocks) and starts a worker
    /// for each. The first runner's metadata describes the pool.
    pub fn start(label: &str, make: Factory, options: PoolOptions) -> Result<Pool, ServeError> {
        let instances = options.instances.max(1);
        let mut runners = Vec::with_capacity(instances);
        for _ in 0..instances {
            runners.push(make()?);
        }
        let metadata = runners[0].metadata()?;
        let (tx, rx) = crossbeam_channel::bounded(options.queue.max(1));
        let stats = Arc::new(PoolStats::default());
        for (i, runner) in runners.into_iter().enumerate() {
            let worker = Worker {
                rx: rx.clone(),
                runner: Some(runner),
                make: make.clone(),
                options,
                stats: stats.clone(),
            };
            std::thread::Builder::new()
                .name(format!("kiln-serve-{label}-{i}"))
                .spawn(move || worker.run())
                .map_err(|e| ServeError::Unavailable(format!("starting a model worker: {e}")))?;
        }
        Ok(Pool {
            metadata,
            options,
            stats,
            queue: tx,
        })
    }

    /// Queues a prediction; refused at once when the queue is full.
    pub async fn predict(&self, inputs: Vec<NamedValue>) -> Result<Vec<NamedValue>, ServeError> {
        let (reply, answer) = oneshot::channel();
        match self.queue.try_send(Job { inputs, reply }) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                self.stats.rejected.fetch_add(1, Ordering::Relaxed);
                return Err(ServeError::Busy);
            }
            Err(TrySendError::Disconnected(_)) => {
                return Err(ServeError::Unavailable(
                    "the model's workers stopped".into(),
                ));
            }
        }
        answer
            .await
            .unwrap_or_else(|_| Err(ServeError::Unavailable("the model's worker stopped".into())))
    }

    /// Requests waiting for a worker.
    pub fn queued(&self) -> usize {
        self.queue.len()
    }
}

struct Worker {
    rx: Receiver<Job>,
    runner: Option<Runner>,
    make: Factory,
    options: PoolOptions,
    stats: Arc<PoolStats>,
}

impl Worker {
    fn run(mut self) {
        let mut batch = Vec::with_capacity(self.options.max_batch.max(1));
        while let Ok(first) = self.rx.recv() {
            batch.push(first);
            self.fill(&mut batch);
            // A client that went away (timeout, disconnect) needs no answer.
            batch.retain(|j| !j.reply.is_closed());
            if !batch.is_empty() {
                self.serve(&mut batch);
            }
            batch.clear();
        }
    }

    /// Takes what else is queued, up to the batch size, waiting at most `max_delay`.
    fn fill(&self, batch: &mut Vec<Job>) {
        let max = self.options.max_batch;
        if max <= 1 {
            return;
        }
        let deadline = Instant::now() + self.options.max_delay;
        while batch.len() < max {
            let next = match self.rx.try_recv() {
                Ok(job) => Some(job),
                Err(_) if self.options.max_delay.is_zero() => None,
                Err(_) => self.rx.recv_deadline(deadline).ok(),
            };
            match next {
                Some(job) => batch.push(job),
                None => break,
            }
        }
    }

    fn serve(&mut self, batch: &mut Vec<Job>) {
        if batch.len() > 1
            && let Some((merged, rows)) = merge(batch)
        {
            match self.call(&merged) {
                Ok(outputs) => {
                    if let Some(parts) = split(outputs, &rows) {
                        for (job, part) in batch.drain(..).zip(parts) {
                            self.answer(job, Ok(part));
                        }
                        return;
                    }
                }
                // A bad request spoils a merged batch: answer each on its own below.
                Err(ServeError::Invalid(_) | ServeError::Plugin(PluginError::Failed { .. })) => {}
                Err(e) => {
                    eprintln!("kiln serve: a merged batch failed: {e}");
                    let n = batch.len();
                    for job in batch.drain(..) {
                        let e = format!("the model failed on a merged batch of {n} requests");
                        self.answer(job, Err(ServeError::Unavailable(e)));
                    }
                    return;
                }
            }
        }
        for job in batch.drain(..) {
            let result = self.call(&job.inputs);
            self.answer(job, result);
        }
    }

    fn answer(&self, job: Job, result: Result<Vec<NamedValue>, ServeError>) {
        let counter = match result {
            Ok(_) => &self.stats.predictions,
            Err(_) => &self.stats.failures,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        let _ = job.reply.send(result);
    }

    fn call(&mut self, inputs: &[NamedValue]) -> Result<Vec<NamedValue>, ServeError> {
        let runner = match &mut self.runner {
            Some(r) if r.usable() => r,
            slot => {
                // The trapped instance goes before its replacement takes memory.
                *slot = None;
                let fresh = slot.insert((self.make)()?);
                self.stats.rebuilt.fetch_add(1, Ordering::Relaxed);
                fresh
            }
        };
        self.stats.calls.fetch_add(1, Ordering::Relaxed);
        runner.predict(inputs)
    }
}

/// The rows of a table or tensor value; `None` for other kinds.
pub fn rows(v: &Value) -> Option<usize> {
    match v {
        Value::Table(t) => Some(t.columns.first().map_or(0, Column::data_len)),
        Value::Tensor(t) => t.shape.first().map(|&r| r as usize),
        _ => None,
    }
}

/// Whether two values can be stacked by rows: tables with the same columns of the same
/// types, tensors of the same dtype and trailing shape.
fn stackable(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Table(a), Value::Table(b)) => {
            a.columns.len() == b.columns.len()
                && a.columns.iter().zip(&b.columns).all(|(x, y)| {
                    x.name == y.name
                        && std::mem::discriminant(&x.data) == std::mem::discriminant(&y.data)
                })
        }
        (Value::Tensor(a), Value::Tensor(b)) => {
            a.dtype == b.dtype && !a.shape.is_empty() && a.shape[1..] == b.shape[1..]
        }
        _ => false,
    }
}

/// The batch's inputs stacked by rows, and each request's row count; `None` when the
/// requests differ in shape (they are then served one by one).
fn merge(batch: &[Job]) -> Option<(Vec<NamedValue>, Vec<usize>)> {
    let first = &batch[0].inputs;
    let mut counts = Vec::with_capacity(batch.len());
    for job in batch {
        if job.inputs.len() != first.len() {
            return None;
        }
        let mut n = None;
        for (a, b) in first.iter().zip(&job.inputs) {
            if a.name != b.name || !stackable(&a.value, &b.value) {
                return None;
            }
            let r = rows(&b.value)?;
            if n.is_some_and(|n| n != r) {
                return None;
            }
            n = Some(r);
        }
        counts.push(n?);
    }
    let merged = first
        .iter()
        .enumerate()
        .map(|(i, nv)| NamedValue {
            name: nv.name.clone(),
            value: stack(batch.iter().map(|j| &j.inputs[i].value)),
        })
        .collect();
    Some((merged, counts))
}

fn stack<'a>(values: impl Iterator<Item = &'a Value> + Clone) -> Value {
    let mut all = values.clone();
    match all.next() {
        Some(Value::Tensor(t0)) => {
            let mut data = Vec::new();
            let mut rows = 0;
            for v in values {
                if let Value::Tensor(t) = v {
                    data.extend_from_slice(&t.data);
                    rows += t.shape[0];
                }
            }
            let mut shape = t0.shape.clone();
            shape[0] = rows;
            Value::Tensor(Tensor {
                dtype: t0.dtype,
                shape,
                data,
            })
        }
        Some(Value::Table(t0)) => {
            let mut columns = t0.columns.clone();
            let any_missing = |i: usize| {
                values
                    .clone()
                    .any(|v| matches!(v, Value::Table(t) if t.columns[i].valid.is_some()))
            };
            for (i, col) in columns.iter_mut().enumerate() {
                if any_missing(i) {
                    let mut valid = Vec::new();
                    for v in values.clone() {
                        if let Value::Table(t) = v {
                            let c = &t.columns[i];
                            match &c.valid {
                                Some(ok) => valid.extend_from_slice(ok),
                                None => valid.extend(std::iter::repeat_n(true, c.data_len())),
                            }
                        }
                    }
                    col.valid = Some(valid);
                }
                for v in values.clone().skip(1) {
                    if let Value::Table(t) = v {
                        append(&mut col.data, &t.columns[i].data);
                    }
                }
            }
            Value::Table(Table { columns })
        }
        _ => unreachable!("only tables and tensors are stacked"),
    }
}

fn append(into: &mut ColumnData, from: &ColumnData) {
    match (into, from) {
        (ColumnData::Float64(a), ColumnData::Float64(b)) => a.extend_from_slice(b),
        (ColumnData::Int64(a), ColumnData::Int64(b)) => a.extend_from_slice(b),
        (ColumnData::Text(a), ColumnData::Text(b)) => a.extend_from_slice(b),
        (ColumnData::Boolean(a), ColumnData::Boolean(b)) => a.extend_from_slice(b),
        _ => unreachable!("stackable columns share a type"),
    }
}

/// A merged answer cut back into one answer per request; `None` when an output's rows do
/// not add up to the requests' rows.
fn split(outputs: Vec<NamedValue>, counts: &[usize]) -> Option<Vec<Vec<NamedValue>>> {
    let total: usize = counts.iter().sum();
    let mut parts: Vec<Vec<NamedValue>> = counts.iter().map(|_| Vec::new()).collect();
    for out in outputs {
        if rows(&out.value) != Some(total) {
            return None;
        }
        let mut start = 0;
        for (part, &n) in parts.iter_mut().zip(counts) {
            part.push(NamedValue {
                name: out.name.clone(),
                value: slice(&out.value, start, n),
            });
            start += n;
        }
    }
    Some(parts)
}

fn slice(v: &Value, start: usize, n: usize) -> Value {
    match v {
        Value::Tensor(t) => {
            let row: usize = t.shape[1..].iter().map(|&d| d as usize).product::<usize>()
                * crate::value::dtype_size(t.dtype);
            let mut shape = t.shape.clone();
            shape[0] = n as u64;
            Value::Tensor(Tensor {
                dtype: t.dtype,
                shape,
                data: t.data[start * row..(start + n) * row].to_vec(),
            })
        }
        Value::Table(t) => Value::Table(Table {
            columns: t
                .columns
                .iter()
                .map(|c| Column {
                    name: c.name.clone(),
                    data: match &c.data {
                        ColumnData::Float64(v) => ColumnData::Float64(v[start..start + n].to_vec()),
                        ColumnData::Int64(v) => ColumnData::Int64(v[start..start + n].to_vec()),
                        ColumnData::Text(v) => ColumnData::Text(v[start..start + n].to_vec()),
                        ColumnData::Boolean(v) => ColumnData::Boolean(v[start..start + n].to_vec()),
                    },
                    valid: c.valid.as_ref().map(|v| v[start..start + n].to_vec()),
                })
                .collect(),
        }),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bindings::Dtype;

    fn job(inputs: Vec<NamedValue>) -> Job {
        Job {
            inputs,
            reply: oneshot::channel().0,
        }
    }

    fn table(xs: &[f64], valid: Option<Vec<bool>>) -> Vec<NamedValue> {
        vec![NamedValue {
            name: "features".into(),
            value: Value::Table(Table {
                columns: vec![Column {
                    name: "x".into(),
                    data: ColumnData::Float64(xs.to_vec()),
                    valid,
                }],
            }),
        }]
    }

    #[test]
    fn merged_tables_split_back_into_each_request_s_rows() {
        let batch = [
            job(table(&[1.0, 2.0], None)),
            job(table(&[3.0], Some(vec![false]))),
            job(table(&[4.0, 5.0, 6.0], None)),
        ];
        let (merged, counts) = merge(&batch).unwrap();
        assert_eq!(counts, [2, 1, 3]);
        let Value::Table(t) = &merged[0].value else {
            panic!()
        };
        assert_eq!(
            t.columns[0].data,
            ColumnData::Float64(vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
        );
        assert_eq!(
            t.columns[0].valid,
            Some(vec![true, true, false, true, true, true])
        );
        let parts = split(merged, &counts).unwrap();
        assert_eq!(parts[0], table(&[1.0, 2.0], Some(vec![true, true])));
        assert_eq!(parts[1], table(&[3.0], Some(vec![false])));
        assert_eq!(parts[2], table(&[4.0, 5.0, 6.0], Some(vec![true; 3])));
        // An answer whose rows do not add up cannot be split.
        assert!(split(table(&[1.0], None), &counts).is_none());
    }

    #[test]
    fn only_requests_of_one_shape_are_merged() {
        let tensor = |rows: u64, cols: u64| {
            vec![NamedValue {
                name: "features".into(),
                value: Value::Tensor(Tensor {
                    dtype: Dtype::Float32,
                    shape: vec![rows, cols],
                    data: (0..rows * cols * 4).map(|b| b as u8).collect(),
                }),
            }]
        };
        let (merged, counts) = merge(&[job(tensor(1, 2)), job(tensor(2, 2))]).unwrap();
        assert_eq!(counts, [1, 2]);
        let Value::Tensor(t) = &merged[0].value else {
            panic!()
        };
        assert_eq!(t.shape, [3, 2]);
        let parts = split(merged.clone(), &counts).unwrap();
        assert_eq!(parts[0], tensor(1, 2));
        assert_eq!(parts[1][0].value, {
            let Value::Tensor(t) = &tensor(2, 2)[0].value else {
                panic!()
            };
            Value::Tensor(t.clone())
        });
        assert!(merge(&[job(tensor(1, 2)), job(tensor(1, 3))]).is_none());
        assert!(merge(&[job(tensor(1, 2)), job(table(&[1.0], None))]).is_none());
        let mut renamed = table(&[1.0], None);
        renamed[0].name = "other".into();
        assert!(merge(&[job(table(&[1.0], None)), job(renamed)]).is_none());
    }
}
