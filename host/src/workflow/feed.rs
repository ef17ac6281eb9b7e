//! Delivering a run's events to its tracker plugins: one thread per tracker, batches in
//! the order they happened, so a slow tracker never holds up the steps.
//!
//! A tracker that fails (an error, a trap, a deadline) receives nothing more; the run
//! itself goes on, and the failure is kept in the run record.

use std::{
    sync::{Arc, mpsc},
    thread::JoinHandle,
    time::Duration,
};

use super::plan::PlanStep;
use crate::{
    bindings::{Event, Metric},
    engine::Limits,
    host_impl::{LogSink, level_name},
    plugin::{CallOptions, Plugin},
    tracking::{OutputRef, TRACKER_LOG_LINES, TrackerRecord},
};

/// The trackers of one run.
pub struct Feed {
    senders: Vec<mpsc::Sender<Arc<Vec<Event>>>>,
    threads: Vec<JoinHandle<TrackerRecord>>,
}

impl Feed {
    /// Starts one delivery thread per tracker.
    pub fn start(
        run_id: &str,
        trackers: &[PlanStep],
        plugins: &[Arc<Plugin>],
    ) -> std::io::Result<Feed> {
        let mut feed = Feed {
            senders: Vec::new(),
            threads: Vec::new(),
        };
        for (t, plugin) in trackers.iter().zip(plugins) {
            let (tx, rx) = mpsc::channel::<Arc<Vec<Event>>>();
            let (t, plugin, run_id) = (t.clone(), plugin.clone(), run_id.to_string());
            let thread = std::thread::Builder::new()
                .name(format!("kiln-tracker-{}", t.id))
                .spawn(move || deliver(&run_id, &t, &plugin, rx))?;
            feed.senders.push(tx);
            feed.threads.push(thread);
        }
        Ok(feed)
    }

    /// Whether any tracker listens (events need not be built otherwise).
    pub fn active(&self) -> bool {
        !self.senders.is_empty()
    }

    pub fn send(&self, events: Vec<Event>) {
        if events.is_empty() || !self.active() {
            return;
        }
        let events = Arc::new(events);
        for tx in &self.senders {
            // A tracker thread only ends when its sender is dropped.
            let _ = tx.send(events.clone());
        }
    }

    /// Waits for every tracker to take in what was sent.
    pub fn finish(self) -> Vec<TrackerRecord> {
        drop(self.senders);
        self.threads
            .into_iter()
            .filter_map(|t| t.join().ok())
            .collect()
    }
}

fn deliver(
    run_id: &str,
    t: &PlanStep,
    plugin: &Plugin,
    rx: mpsc::Receiver<Arc<Vec<Event>>>,
) -> TrackerRecord {
    let mut record = TrackerRecord {
        id: t.id.clone(),
        plugin: t.plugin.clone(),
        batches: 0,
        events: 0,
        error: None,
        logs: Vec::new(),
    };
    let opts = CallOptions {
        limits: Limits {
            memory: t.memory,
            timeout: Duration::from_millis(t.timeout_ms),
            ..Limits::default()
        },
        grants: t.grants.clone(),
        log: LogSink::Collect,
        deterministic: None,
        cancel: None,
    };
    for batch in rx {
        if record.error.is_some() {
            continue;
        }
        let keep_logs = |record: &mut TrackerRecord, logs: Vec<crate::host_impl::LogLine>| {
            for l in logs {
                if record.logs.len() < TRACKER_LOG_LINES {
                    record
                        .logs
                        .push(format!("{}: {}", level_name(l.level), l.message));
                }
            }
        };
        match plugin.send_events(run_id, &batch, &t.config, &opts) {
            Ok(outcome) => {
                record.batches += 1;
                record.events += batch.len() as u64;
                keep_logs(&mut record, outcome.logs);
            }
            Err(e) => record.error = Some(e.to_string()),
        }
    }
    record
}

/// The events of a finished step: its config as params, its metric points (keyed
/// `step.key` already), what it tracked as tags, each output as an artifact
/// (`step.output sha256:DIGEST`), and its status as the tag `step.status`.
pub fn step_events(
    step: &str,
    status: &str,
    config: &[(String, String)],
    metrics: Vec<Metric>,
    tags: &[(String, String)],
    outputs: &[OutputRef],
) -> Vec<Event> {
    let mut events = Vec::with_capacity(config.len() + metrics.len() + tags.len() + 8);
    for (k, v) in config {
        events.push(Event::Param((format!("{step}.{k}"), v.clone())));
    }
    events.extend(metrics.into_iter().map(Event::Metric));
    for (k, v) in tags {
        events.push(Event::Tag((format!("{step}.{k}"), v.clone())));
    }
    for o in outputs {
        events.push(Event::Artifact(format!(
            "{step}.{} sha256:{}",
            o.name, o.digest
        )));
    }
    events.push(Event::Tag((format!("{step}.status"), status.to_string())));
    events
}
