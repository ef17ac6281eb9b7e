//! `kiln sync --to URL`: pushes the runs this data directory recorded (on a device, offline)
//! to a central Kiln server, in batches, sending only what the server has not acknowledged
//! (see `tracking::sync`), then its prediction log from the last record the server
//! acknowledged. Interrupted, it resumes where it stopped.

use std::process::ExitCode;

use anyhow::{Context as _, Result};
use clap::Args;
use serde_json::{Value as J, json};

use super::{Ctx, emit, emit_json, remote::Remote};

/// Prediction log records per request.
const PREDICTIONS_PER_REQUEST: usize = 5000;

#[derive(Debug, Args)]
pub struct SyncArgs {
    /// The central server, e.g. http://gateway:8480 (its token: --token or KILN_TOKEN, with
    /// the `run` scope).
    #[arg(long)]
    to: String,
    /// How this device is named there (default: one made for this data directory on its
    /// first sync, kept in DATA_DIR/device).
    #[arg(long)]
    device: Option<String>,
    /// Runs per request.
    #[arg(long, default_value_t = 16)]
    batch: usize,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

pub fn sync(ctx: &Ctx, args: SyncArgs) -> Result<ExitCode> {
    let to = args.to.trim_end_matches('/').to_string();
    let device = match args.device {
        Some(d) => d,
        None => device_name(ctx)?,
    };
    let store = ctx.store()?;
    let pending = store.unsent(&to)?;
    let total = pending.len();
    let remote = Remote::new(to.clone(), ctx.token.clone());
    let mut sent = 0;
    for batch in pending.chunks(args.batch.max(1)) {
        let runs: Vec<_> = batch.iter().map(|(run, _)| run).collect();
        let answer: J = remote
            .call(
                "POST",
                "/v1/sync",
                Some(json!({ "device": device, "runs": runs })),
            )
            .with_context(|| {
                format!(
                    "{sent} of {total} runs are on {to}; `kiln sync --to {to}` again sends the rest"
                )
            })?;
        anyhow::ensure!(
            answer["stored"].as_u64() == Some(batch.len() as u64),
            "{to} answered {answer} for a batch of {}",
            batch.len()
        );
        let done: Vec<(String, String)> = batch
            .iter()
            .map(|(run, digest)| (run.id.clone(), digest.clone()))
            .collect();
        store.mark_sent(&to, &done)?;
        sent += batch.len();
    }
    // Then the prediction log, in order, from where the server last acknowledged.
    let mut logged = 0;
    let mut after = store.predictions_sent(&to)?;
    loop {
        let records = store.predictions(after, PREDICTIONS_PER_REQUEST)?;
        let Some(&(last, _)) = records.last() else {
            break;
        };
        let _: J = remote
            .call(
                "POST",
                "/v1/sync",
                Some(json!({ "device": device, "predictions": records })),
            )
            .with_context(|| {
                format!(
                    "the runs and {logged} more predictions are on {to}; `kiln sync --to {to}` again sends the rest"
                )
            })?;
        store.mark_predictions_sent(&to, last)?;
        after = last;
        logged += records.len();
    }
    if args.json {
        emit_json(&json!({ "to": to, "device": device, "sent": sent, "predictions": logged }))?;
    } else if sent == 0 && logged == 0 {
        emit(&format!(
            "{to} has every run and prediction of this data directory\n"
        ))?;
    } else {
        emit(&format!(
            "sent {sent} runs and {logged} predictions to {to} as device `{device}`\n"
        ))?;
    }
    Ok(ExitCode::SUCCESS)
}

/// This data directory's device name, made on first use.
fn device_name(ctx: &Ctx) -> Result<String> {
    let path = ctx.data_dir.join("device");
    match std::fs::read_to_string(&path) {
        Ok(name) if !name.trim().is_empty() => Ok(name.trim().to_string()),
        _ => {
            let name = format!(
                "device-{}",
                &uuid::Uuid::now_v7().simple().to_string()[20..]
            );
            std::fs::create_dir_all(&ctx.data_dir)?;
            std::fs::write(&path, format!("{name}\n"))
                .with_context(|| format!("writing {}", path.display()))?;
            Ok(name)
        }
    }
}
