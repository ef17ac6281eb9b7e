//! The HTTP listener: hyper's HTTP/1 connections with the limits a server on an open network
//! needs and `axum::serve` does not set. A connection must send a whole request head within
//! `header_timeout_secs` (between requests too: an idle keep-alive connection is closed when
//! it sends nothing for as long), at most `max_connections` are open at once (one more is
//! answered 503 and closed, so a flood of half-open connections cannot take every file
//! descriptor), and on shutdown the connections get `shutdown_drain_secs` to finish what they
//! are answering before they are closed.

use std::{future::Future, sync::Arc, time::Duration};

use axum::Router;
use hyper_util::{
    rt::{TokioIo, TokioTimer},
    server::graceful::GracefulShutdown,
    service::TowerToHyperService,
};
use tokio::{io::AsyncWriteExt as _, net::TcpListener, sync::Semaphore};

/// The listener's limits (`kiln-server.toml`).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub header_timeout: Duration,
    pub max_connections: usize,
    pub drain: Duration,
}

/// Serves `router` on `listener` until `shutdown` completes, then drains.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
) {
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let graceful = GracefulShutdown::new();
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
    tokio::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                // Out of file descriptors, or a connection reset before it was accepted:
                // wait a moment instead of spinning on the error.
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            tokio::spawn(refuse(stream, limits.max_connections));
            continue;
        };
        let _ = stream.set_nodelay(true);
        let connection = graceful.watch(builder.serve_connection(
            TokioIo::new(stream),
            TowerToHyperService::new(router.clone()),
        ));
        tokio::spawn(async move {
            let _ = connection.await;
            drop(permit);
        });
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(limits.drain) => {
            eprintln!(
                "kiln: closing the connections still open {} s after shutdown began",
                limits.drain.as_secs()
            );
        }
    }
}

/// Answers a connection beyond the limit with 503 and closes it.
async fn refuse(mut stream: tokio::net::TcpStream, limit: usize) {
    let body = serde_json::json!({"error": {
        "code": "too_many_connections",
        "message": format!("the server has its limit of {limit} connections open; try again later"),
    }})
    .to_string();
    let response = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\ncontent-length: {}\r\nretry-after: 1\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        stream.write_all(response.as_bytes()).await?;
        stream.shutdown().await
    })
    .await;
}
