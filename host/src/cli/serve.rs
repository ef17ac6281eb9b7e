//! `kiln serve`: the HTTP API on one address, until interrupted (in-flight requests finish).

use std::{path::PathBuf, process::ExitCode, sync::Arc};

use anyhow::{Context as _, Result};
use clap::Args;

use super::{Ctx, emit};
use crate::{
    api::{self, AppState, ServerConfig},
    plugin::PluginHost,
};

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The address to listen on (port 0 picks a free port; the address is printed).
    #[arg(long, default_value = "127.0.0.1:8480")]
    pub(crate) addr: String,
    /// The server config: tokens and their scopes (kiln-server.toml).
    #[arg(long)]
    pub(crate) config: Option<PathBuf>,
}

pub fn serve(ctx: &Ctx, args: ServeArgs) -> Result<ExitCode> {
    serve_with(ctx, args, Arc::new(ctx.plugin_host()?), false, None)
}

/// Serves the API with `/invocations` answering for `model` (`kiln model serve`).
pub(crate) fn serve_model(ctx: &Ctx, args: ServeArgs, model: String) -> Result<ExitCode> {
    serve_with(ctx, args, Arc::new(ctx.plugin_host()?), false, Some(model))
}

/// Serves the API with `host` (a bundle's, holding its precompiled plugins), logging
/// predictions unless the config says otherwise when `log_predictions`; `invocations`
/// names the model MLflow's scoring protocol serves, over the config's choice.
pub(crate) fn serve_with(
    ctx: &Ctx,
    args: ServeArgs,
    host: Arc<PluginHost>,
    log_predictions: bool,
    invocations: Option<String>,
) -> Result<ExitCode> {
    let mut config = match &args.config {
        Some(path) => ServerConfig::parse(
            &std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?,
        )
        .with_context(|| format!("in {}", path.display()))?,
        None => ServerConfig::default(),
    };
    config
        .serving
        .log_predictions
        .get_or_insert(log_predictions);
    if invocations.is_some() {
        config.serving.invocations = invocations;
    }
    let state = AppState::new(ctx.registry()?, host, ctx.store()?, config);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(state.config.http_threads)
        .enable_all()
        .build()?;
    let served = runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(&args.addr)
            .await
            .with_context(|| format!("listening on {}", args.addr))?;
        emit(&format!("listening on http://{}\n", listener.local_addr()?))?;
        let (draining, runs) = (state.draining.clone(), state.runs.clone());
        let stopping = runs.clone();
        let limits = state.config.listen_limits();
        api::listen::serve(listener, api::router(state), limits, async move {
            shutdown().await;
            draining.store(true, std::sync::atomic::Ordering::Relaxed);
            // Workflow runs stop too; their event streams end with them.
            stopping.cancel_all();
        })
        .await;
        if !runs.wait_idle(std::time::Duration::from_secs(30)).await {
            eprintln!("kiln: workflow runs did not stop within 30 s; leaving them");
        }
        Ok(ExitCode::SUCCESS)
    });
    // A run that did not stop is left, not waited for.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    served
}

async fn shutdown() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => return std::mem::drop(interrupt.await),
            };
        tokio::select! {
            _ = interrupt => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = interrupt.await;
}
