//! Prediction logs: one record per prediction a server answered (or failed), kept in the
//! tracking store where serving is told to log them (a device's `kiln bundle serve` is), and
//! pushed by `kiln sync` to a central server, which keeps them per device.

use redb::{ReadableDatabase, ReadableTable};
use serde::{Deserialize, Serialize};

use super::{
    Store,
    experiments::TrackingError,
    tables::{PREDICTION_SYNC_CURSORS, PREDICTIONS, SYNCED_PREDICTIONS},
};

type Result<T, E = TrackingError> = std::result::Result<T, E>;

/// One prediction request, as served.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PredictionRecord {
    pub time_ms: u64,
    pub model: String,
    pub version: u64,
    /// `wasm` or `native`.
    pub backend: String,
    /// Rows (or the first dimension of a tensor) in the request.
    pub rows: u64,
    pub latency_us: u64,
    /// The error code when it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A record and where it came from, as a server lists them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SyncedPrediction {
    pub device: String,
    pub seq: u64,
    #[serde(flatten)]
    pub record: PredictionRecord,
}

impl Store {
    /// Appends records, numbered after the last, in one transaction.
    pub fn log_predictions(&self, records: &[PredictionRecord]) -> Result<()> {
        let txn = self.db.begin_write()?;
        {
            let mut table = txn.open_table(PREDICTIONS)?;
            let next = table.last()?.map_or(1, |(k, _)| k.value() + 1);
            for (seq, r) in (next..).zip(records) {
                table.insert(seq, serde_json::to_vec(r)?.as_slice())?;
            }
        }
        txn.commit()?;
        Ok(())
    }

    /// Up to `limit` records after sequence number `after`, in order.
    pub fn predictions(&self, after: u64, limit: usize) -> Result<Vec<(u64, PredictionRecord)>> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(PREDICTIONS)?;
        let mut out = Vec::new();
        for row in table.range(after + 1..)?.take(limit) {
            let (k, v) = row?;
            out.push((k.value(), serde_json::from_slice(v.value())?));
        }
        Ok(out)
    }

    /// The last sequence number `destination` acknowledged (0: none).
    pub fn predictions_sent(&self, destination: &str) -> Result<u64> {
        let txn = self.db.begin_read()?;
        let cursors = txn.open_table(PREDICTION_SYNC_CURSORS)?;
        Ok(cursors.get(destination)?.map_or(0, |v| v.value()))
    }

    /// Records that `destination` committed every record through `seq`.
    pub fn mark_predictions_sent(&self, destination: &str, seq: u64) -> Result<()> {
        let txn = self.db.begin_write()?;
        txn.open_table(PREDICTION_SYNC_CURSORS)?
            .insert(destination, seq)?;
        txn.commit()?;
        Ok(())
    }

    /// On the server: stores a device's records by their sequence numbers (again is a no-op).
    pub fn import_predictions(
        &self,
        device: &str,
        records: &[(u64, PredictionRecord)],
    ) -> Result<usize> {
        let txn = self.db.begin_write()?;
        {
            let mut table = txn.open_table(SYNCED_PREDICTIONS)?;
            for (seq, r) in records {
                table.insert((device, *seq), serde_json::to_vec(r)?.as_slice())?;
            }
        }
        txn.commit()?;
        Ok(records.len())
    }

    /// On the server: the records devices synced (one device's, or all), in order.
    pub fn synced_predictions(&self, device: Option<&str>) -> Result<Vec<SyncedPrediction>> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(SYNCED_PREDICTIONS)?;
        let rows = match device {
            Some(d) => table.range((d, 0)..=(d, u64::MAX))?,
            None => table.range::<(&str, u64)>(..)?,
        };
        let mut out = Vec::new();
        for row in rows {
            let (k, v) = row?;
            let (device, seq) = k.value();
            out.push(SyncedPrediction {
                device: device.to_string(),
                seq,
                record: serde_json::from_slice(v.value())?,
            });
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(model: &str, rows: u64) -> PredictionRecord {
        PredictionRecord {
            time_ms: 1,
            model: model.into(),
            version: 1,
            backend: "wasm".into(),
            rows,
            latency_us: 40,
            error: None,
        }
    }

    #[test]
    fn records_are_numbered_and_synced_once_per_device_and_number() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        assert!(s.predictions(0, 10).unwrap().is_empty());
        s.log_predictions(&[record("a", 1), record("a", 2)])
            .unwrap();
        s.log_predictions(&[record("b", 3)]).unwrap();
        let all = s.predictions(0, 10).unwrap();
        assert_eq!(all.iter().map(|(k, _)| *k).collect::<Vec<_>>(), [1, 2, 3]);
        assert_eq!(s.predictions(2, 10).unwrap()[0].1.model, "b");
        assert_eq!(s.predictions(0, 2).unwrap().len(), 2);
        assert_eq!(s.predictions_sent("c").unwrap(), 0);
        s.mark_predictions_sent("c", 2).unwrap();
        assert_eq!(s.predictions_sent("c").unwrap(), 2);

        let central = tempfile::tempdir().unwrap();
        let c = Store::open(central.path()).unwrap();
        c.import_predictions("pi", &all).unwrap();
        c.import_predictions("pi", &all[1..]).unwrap();
        c.import_predictions("other", &all[..1]).unwrap();
        assert_eq!(c.synced_predictions(Some("pi")).unwrap().len(), 3);
        assert_eq!(c.synced_predictions(None).unwrap().len(), 4);
    }

    #[test]
    fn a_store_made_before_the_sync_tables_gets_them_when_opened() {
        use crate::tracking::tables::SYNC_SENT;
        let dir = tempfile::tempdir().unwrap();
        drop(Store::open(dir.path()).unwrap());
        {
            let db = redb::Database::open(dir.path().join("tracking.redb")).unwrap();
            let txn = db.begin_write().unwrap();
            assert!(txn.delete_table(SYNC_SENT).unwrap());
            assert!(txn.delete_table(PREDICTIONS).unwrap());
            assert!(txn.delete_table(SYNCED_PREDICTIONS).unwrap());
            assert!(txn.delete_table(PREDICTION_SYNC_CURSORS).unwrap());
            txn.commit().unwrap();
        }
        let s = Store::open(dir.path()).unwrap();
        assert!(s.unsent("c").unwrap().is_empty());
        assert!(s.predictions(0, 10).unwrap().is_empty());
        assert_eq!(s.predictions_sent("c").unwrap(), 0);
        assert!(s.synced_predictions(None).unwrap().is_empty());
        s.log_predictions(&[record("a", 1)]).unwrap();
        assert_eq!(s.predictions(0, 10).unwrap().len(), 1);
    }
}
