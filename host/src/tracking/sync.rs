//! Offline first: a device records runs in its own store, and `kiln sync --to URL` later
//! pushes them to a central Kiln server (`POST /v1/sync`).
//!
//! The unit is one run, whole: its workflow record, its tracked run (params, tags, datasets,
//! latest metrics), its experiment's name and every point of every metric. The device
//! remembers, per destination, the digest of each run as that destination acknowledged
//! it; a sync sends exactly the runs whose digest changed since (new runs, runs that went
//! on), in batches, and records each batch once the server has committed it. So a re-sync
//! sends nothing, and an interrupted sync resumes with the first unacknowledged batch.
//! The server replaces its copy of each run it receives, so the one batch that can be
//! sent twice (committed there, its acknowledgement lost) changes nothing the second time.

use std::collections::BTreeMap;

use redb::{ReadableDatabase, ReadableTable};
use serde::{Deserialize, Serialize};

use super::{
    RunRecord, Store,
    experiments::{Metric, TrackedRun, TrackingError},
    tables::{METRIC_CHUNKS, RUNS, SYNC_SENT, TRACKED_RUNS},
};
use crate::digest::sha256_hex;

type Result<T, E = TrackingError> = std::result::Result<T, E>;

/// The tag a synced tracked run carries on the server: the device it came from.
pub const DEVICE_TAG: &str = "kiln.device";

/// One run, as a device sends it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SyncedRun {
    pub id: String,
    /// The workflow run record, for a workflow's run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record: Option<RunRecord>,
    /// The tracked run, and the name of its experiment (ids differ between stores).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tracked: Option<TrackedRun>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub experiment: Option<String>,
    /// Every point of every metric, in the order logged.
    #[serde(default)]
    pub metrics: BTreeMap<String, Vec<Metric>>,
}

impl SyncedRun {
    /// What the device compares with what it sent.
    pub fn digest(&self) -> Result<String> {
        Ok(sha256_hex(&serde_json::to_vec(self)?))
    }
}

impl Store {
    /// Every run here that `destination` has not acknowledged as it is now, oldest first,
    /// with its digest.
    pub fn unsent(&self, destination: &str) -> Result<Vec<(SyncedRun, String)>> {
        let txn = self.db.begin_read()?;
        let records = txn.open_table(RUNS)?;
        let tracked = txn.open_table(TRACKED_RUNS)?;
        let chunks = txn.open_table(METRIC_CHUNKS)?;
        let sent = txn.open_table(SYNC_SENT)?;
        let mut ids: Vec<String> = Vec::new();
        for row in records.iter()? {
            ids.push(row?.0.value().to_string());
        }
        for row in tracked.iter()? {
            ids.push(row?.0.value().to_string());
        }
        // Run ids are time-ordered (UUID v7): oldest first.
        ids.sort();
        ids.dedup();
        // Experiment id → name, read once per experiment.
        let mut names: BTreeMap<String, String> = BTreeMap::new();
        let mut out = Vec::new();
        for id in ids {
            let record: Option<RunRecord> = match records.get(id.as_str())? {
                Some(v) => Some(serde_json::from_slice(v.value())?),
                None => None,
            };
            let run: Option<TrackedRun> = match tracked.get(id.as_str())? {
                Some(v) => Some(serde_json::from_slice(v.value())?),
                None => None,
            };
            let mut metrics = BTreeMap::new();
            let mut experiment = None;
            if let Some(run) = &run {
                for key in run.metrics.keys() {
                    let points = super::experiments::history_in(&chunks, &id, key)?;
                    metrics.insert(key.clone(), points);
                }
                let eid = &run.info.experiment_id;
                if !names.contains_key(eid) {
                    names.insert(eid.clone(), self.experiment(eid)?.name);
                }
                experiment = Some(names[eid].clone());
            }
            let unit = SyncedRun {
                id: id.clone(),
                record,
                tracked: run,
                experiment,
                metrics,
            };
            let digest = unit.digest()?;
            let acknowledged = sent
                .get((destination, id.as_str()))?
                .is_some_and(|d| d.value() == digest);
            if !acknowledged {
                out.push((unit, digest));
            }
        }
        Ok(out)
    }

    /// Records that `destination` committed these runs (id, digest).
    pub fn mark_sent(&self, destination: &str, runs: &[(String, String)]) -> Result<()> {
        let txn = self.db.begin_write()?;
        {
            let mut sent = txn.open_table(SYNC_SENT)?;
            for (id, digest) in runs {
                sent.insert((destination, id.as_str()), digest.as_str())?;
            }
        }
        txn.commit()?;
        Ok(())
    }

    /// On the server: stores runs a device sent, each replacing any earlier copy of it, all
    /// in one transaction. Experiments are found (or created) by name.
    pub fn import_synced(&self, device: &str, runs: Vec<SyncedRun>) -> Result<usize> {
        let mut experiments = BTreeMap::new();
        for name in runs.iter().filter_map(|r| r.experiment.as_deref()) {
            if !experiments.contains_key(name) {
                let id = self.ensure_experiment(name)?.experiment_id;
                experiments.insert(name.to_string(), id);
            }
        }
        let txn = self.db.begin_write()?;
        let n = runs.len();
        {
            let mut records = txn.open_table(RUNS)?;
            let mut tracked = txn.open_table(TRACKED_RUNS)?;
            let mut chunks = txn.open_table(METRIC_CHUNKS)?;
            for unit in runs {
                let id = unit.id.as_str();
                if let Some(record) = &unit.record {
                    if record.id != unit.id {
                        return Err(TrackingError::Invalid(format!(
                            "run `{id}` carries the record of run `{}`",
                            record.id
                        )));
                    }
                    records.insert(id, serde_json::to_vec(record)?.as_slice())?;
                }
                let Some(mut run) = unit.tracked else {
                    continue;
                };
                if run.info.run_id != unit.id {
                    return Err(TrackingError::Invalid(format!(
                        "run `{id}` carries the tracked run `{}`",
                        run.info.run_id
                    )));
                }
                let experiment = unit.experiment.as_deref().ok_or_else(|| {
                    TrackingError::Invalid(format!("run `{id}` names no experiment"))
                })?;
                run.info.experiment_id = experiments[experiment].clone();
                run.tags.insert(DEVICE_TAG.into(), device.to_string());
                tracked.insert(id, serde_json::to_vec(&run)?.as_slice())?;
                for (key, points) in &unit.metrics {
                    let old: Vec<u64> = chunks
                        .range((id, key.as_str(), 0)..=(id, key.as_str(), u64::MAX))?
                        .map(|row| row.map(|(k, _)| k.value().2))
                        .collect::<Result<_, _>>()?;
                    for chunk in old {
                        chunks.remove((id, key.as_str(), chunk))?;
                    }
                    chunks.insert(
                        (id, key.as_str(), 0),
                        super::experiments::pack(points).as_slice(),
                    )?;
                }
            }
        }
        txn.commit()?;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        (dir, s)
    }

    fn point(value: f64, step: i64) -> (String, Metric) {
        (
            "loss".to_string(),
            Metric {
                value,
                timestamp: 1000 + step,
                step,
            },
        )
    }

    /// A device store with `n` tracked runs in experiment `train`, two points each.
    fn device(n: usize) -> (tempfile::TempDir, Store, Vec<String>) {
        let (dir, s) = store();
        let e = s.ensure_experiment("train").unwrap();
        let ids = (0..n)
            .map(|_| {
                let run = s
                    .create_run(&e.experiment_id, None, None, &BTreeMap::new())
                    .unwrap();
                let id = run.info.run_id;
                s.log_batch(&id, &[point(0.5, 0), point(0.25, 1)], &[], &[])
                    .unwrap();
                id
            })
            .collect();
        (dir, s, ids)
    }

    fn ack(s: &Store, to: &str, runs: &[(SyncedRun, String)]) {
        let done: Vec<_> = runs
            .iter()
            .map(|(r, d)| (r.id.clone(), d.clone()))
            .collect();
        s.mark_sent(to, &done).unwrap();
    }

    #[test]
    fn a_run_is_sent_until_acknowledged_and_again_once_it_changes() {
        let (_d, s, ids) = device(3);
        let to = "http://central";
        let pending = s.unsent(to).unwrap();
        assert_eq!(pending.len(), 3);
        assert_eq!(pending[0].0.metrics["loss"].len(), 2);
        assert_eq!(pending[0].0.experiment.as_deref(), Some("train"));
        // An interrupted sync: the first batch was acknowledged, the rest was not.
        ack(&s, to, &pending[..1]);
        let rest = s.unsent(to).unwrap();
        assert_eq!(
            rest.iter().map(|(r, _)| r.id.clone()).collect::<Vec<_>>(),
            ids[1..].to_vec()
        );
        ack(&s, to, &rest);
        assert!(s.unsent(to).unwrap().is_empty());
        // Another destination has had nothing.
        assert_eq!(s.unsent("http://other").unwrap().len(), 3);
        // A run that goes on is sent again, whole.
        s.log_batch(&ids[0], &[point(0.125, 2)], &[], &[]).unwrap();
        let changed = s.unsent(to).unwrap();
        assert_eq!(changed.len(), 1);
        assert_eq!(changed[0].0.metrics["loss"].len(), 3);
    }

    #[test]
    fn a_run_received_twice_is_stored_once() {
        let (_d, device_store, ids) = device(2);
        let units: Vec<SyncedRun> = device_store
            .unsent("c")
            .unwrap()
            .into_iter()
            .map(|(r, _)| r)
            .collect();
        let (_c, central) = store();
        central.ensure_experiment("other").unwrap();
        assert_eq!(central.import_synced("pi-7", units.clone()).unwrap(), 2);
        assert_eq!(central.import_synced("pi-7", units).unwrap(), 2);
        let run = central.tracked_run(&ids[0]).unwrap();
        assert_eq!(run.tags[DEVICE_TAG], "pi-7");
        let experiment = central.experiment(&run.info.experiment_id).unwrap();
        assert_eq!(experiment.name, "train");
        let history = central.metric_history(&ids[0], "loss").unwrap();
        assert_eq!(
            history.iter().map(|m| m.value).collect::<Vec<_>>(),
            vec![0.5, 0.25]
        );
        assert_eq!(run.metrics["loss"].value, 0.25);
    }

    #[test]
    fn a_unit_whose_parts_disagree_is_refused_whole() {
        let (_d, device_store, _) = device(1);
        let (good, _) = device_store.unsent("c").unwrap().remove(0);
        let mut bad = good.clone();
        bad.id = "0123456789abcdef0123456789abcdef".into();
        let (_c, central) = store();
        let err = central
            .import_synced("pi", vec![good.clone(), bad])
            .unwrap_err();
        assert!(err.to_string().contains("carries the tracked run"), "{err}");
        // The batch is one transaction: its good run was not stored either.
        assert!(central.tracked_run(&good.id).is_err());
    }
}
