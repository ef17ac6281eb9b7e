//! Prediction logging: each prediction a server answers becomes a record in the tracking
//! store (see `tracking::predictions`). The request only hands the record to a channel;
//! one thread commits whatever has queued, at most every [`COMMIT_EVERY`], so logging
//! costs a request no disk write. Dropping the logger commits what is left.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use crossbeam_channel::{Receiver, Sender, TrySendError};

use crate::tracking::{Store, predictions::PredictionRecord};

/// How long a record may wait for the commit that writes it.
pub const COMMIT_EVERY: Duration = Duration::from_millis(50);
/// Records waiting at most; beyond that a record is dropped (and counted) rather than
/// slowing the answer down.
const QUEUE: usize = 1 << 16;
const BATCH: usize = 4096;

pub struct PredictionLog {
    tx: Option<Sender<PredictionRecord>>,
    thread: Option<JoinHandle<()>>,
    /// Records dropped because the queue was full.
    pub dropped: AtomicU64,
}

impl PredictionLog {
    pub fn start(store: Arc<Store>) -> std::io::Result<PredictionLog> {
        let (tx, rx) = crossbeam_channel::bounded(QUEUE);
        let thread = std::thread::Builder::new()
            .name("kiln-prediction-log".into())
            .spawn(move || commit_loop(&store, &rx))?;
        Ok(PredictionLog {
            tx: Some(tx),
            thread: Some(thread),
            dropped: AtomicU64::new(0),
        })
    }

    pub fn record(&self, record: PredictionRecord) {
        if let Some(tx) = &self.tx
            && let Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) = tx.try_send(record)
        {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl Drop for PredictionLog {
    fn drop(&mut self) {
        self.tx = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn commit_loop(store: &Store, rx: &Receiver<PredictionRecord>) {
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        let deadline = Instant::now() + COMMIT_EVERY;
        while batch.len() < BATCH {
            match rx.recv_deadline(deadline) {
                Ok(r) => batch.push(r),
                Err(_) => break,
            }
        }
        if let Err(e) = store.log_predictions(&batch) {
            eprintln!("kiln: could not log {} predictions: {e}", batch.len());
        }
    }
}
