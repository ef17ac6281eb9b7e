//! Which runs are in progress, across processes, so that a run whose process stopped
//! before it finished (a crash, `kill -9`, a drain that ran out) is not left `running`.
//!
//! While a run executes, its process holds an exclusive lock on the file `live/ID` beside
//! the store; the file goes once the run's last record is committed. A file that nobody
//! holds locked was left by a process that stopped: [`Store::recover_interrupted`] marks
//! its run [`Status::Interrupted`] (MLflow: `FAILED`) and removes the file. A lock is
//! released by the kernel when its process dies, however it dies.

use std::{
    fs::{File, TryLockError},
    path::PathBuf,
};

use anyhow::{Context, Result};

use super::{Status, Store, Write, experiments::RunEnd};

/// The lock a running run holds. Dropped without [`LiveRun::finish`] (an error ended the
/// run early), the file stays unlocked, and the next recovery marks the run interrupted.
pub struct LiveRun {
    _lock: File,
    path: PathBuf,
}

impl LiveRun {
    /// The run's last record is committed: it is no longer live.
    pub fn finish(self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

impl Store {
    fn live_dir(&self) -> PathBuf {
        self.path.with_file_name("live")
    }

    /// Marks run `id` live in this process until the guard is finished or dropped. The file
    /// is locked before it takes its name, so a recovery never sees it unlocked.
    pub fn hold_live(&self, id: &str) -> Result<LiveRun> {
        let dir = self.live_dir();
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let path = dir.join(id);
        let tmp = dir.join(format!(".{id}.{}", std::process::id()));
        let file = File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
        file.lock()
            .with_context(|| format!("locking {}", tmp.display()))?;
        std::fs::rename(&tmp, &path).with_context(|| format!("creating {}", path.display()))?;
        Ok(LiveRun { _lock: file, path })
    }

    /// Marks every run whose process stopped before it finished as interrupted; returns
    /// their ids. Runs live in this process or another are left alone.
    pub fn recover_interrupted(&self) -> Result<Vec<String>> {
        let dir = self.live_dir();
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e).with_context(|| format!("reading {}", dir.display())),
        };
        let mut recovered = Vec::new();
        for entry in entries {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let path = entry.path();
            let Ok(file) = File::open(&path) else {
                continue;
            };
            match file.try_lock() {
                Ok(()) => {}
                Err(TryLockError::WouldBlock) => continue,
                Err(TryLockError::Error(e)) => {
                    return Err(e).with_context(|| format!("locking {}", path.display()));
                }
            }
            // A name being given (`.ID.PID`) by a process that died before the rename.
            if name.starts_with('.') {
                let _ = std::fs::remove_file(&path);
                continue;
            }
            if self.interrupt(&name)? {
                recovered.push(name);
            }
            let _ = std::fs::remove_file(&path);
        }
        recovered.sort();
        Ok(recovered)
    }

    /// Marks run `id` interrupted if its record still says it is running.
    fn interrupt(&self, id: &str) -> Result<bool> {
        let mut run = match self.run(id) {
            Ok(run) if run.status == Status::Running => run,
            _ => return Ok(false),
        };
        run.status = Status::Interrupted;
        let mut writes = vec![Write::Run(Box::new(run))];
        if self.tracked_run(id).is_ok() {
            writes.push(Write::TrackEnd(Box::new(RunEnd {
                run_id: id.to_string(),
                metrics: Vec::new(),
                params: Vec::new(),
                tags: vec![("kiln.interrupted".into(), "true".into())],
                inputs: Vec::new(),
                status: "FAILED".into(),
                end_time: None,
            })));
        }
        self.apply(&writes)?;
        Ok(true)
    }
}
