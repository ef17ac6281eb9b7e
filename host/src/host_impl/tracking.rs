//! `kiln:plugin/tracking`: metrics, params and tags a plugin records for the current run.
//!
//! Until a tracking store is attached, events stay with the invocation's result, in order,
//! for the caller (the CLI prints them; the workflow runner files them under its run).

use super::{MAX_RECORDS, clip};
use crate::plugin::PluginState;

/// One thing a plugin tracked.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum TrackingEvent {
    Metric {
        key: String,
        value: f64,
        step: u64,
        timestamp_ms: u64,
    },
    Param {
        key: String,
        value: String,
    },
    Tag {
        key: String,
        value: String,
    },
}

impl PluginState {
    fn track(&mut self, event: TrackingEvent) {
        if self.tracking.len() < MAX_RECORDS {
            self.tracking.push(event);
        } else {
            self.tracking_dropped += 1;
        }
    }
}

impl crate::bindings::tracking::Host for PluginState {
    fn log_metric(&mut self, key: String, value: f64, step: u64) {
        self.track(TrackingEvent::Metric {
            key: clip(key),
            value,
            step,
            timestamp_ms: if self.deterministic {
                0
            } else {
                crate::now_ms()
            },
        });
    }

    fn log_param(&mut self, key: String, value: String) {
        self.track(TrackingEvent::Param {
            key: clip(key),
            value: clip(value),
        });
    }

    fn set_tag(&mut self, key: String, value: String) {
        self.track(TrackingEvent::Tag {
            key: clip(key),
            value: clip(value),
        });
    }
}
