//! The HTTP listener: hyper's HTTP/1 connections with the limits a server on an open network
//! needs and `axum::serve` does not set. A connection must send a whole request head within
//! `header_timeout_secs` (between requests too: an idle keep-alive connection is closed when
//! it sends nothing for as long), at most `max_connections` are open at once (one more is
//! answered 503 and closed, so a flood of half-open connections cannot take every file
//! descriptor), and on shutdown the connections get `shutdown_drain_secs` to finish what they
//! are answering before they are closed.

use std::{
    future::Future,
    io::IoSlice,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use axum::Router;
use hyper_util::{
    rt::{TokioIo, TokioTimer},
    server::graceful::GracefulShutdown,
    service::TowerToHyperService,
};
use tokio::{
    io::{AsyncRead, AsyncWrite, AsyncWriteExt as _, ReadBuf},
    net::{TcpListener, TcpStream},
    sync::Semaphore,
};

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
            TokioIo::new(JsonParseErrors::new(stream)),
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

/// A connection's stream that replaces hyper's own answers to unparsable requests (400, 414,
/// 431: a head with `content-length: 0` and no content type, which the router never writes,
/// since every error it makes is JSON) with the same status and a JSON body. Every other write
/// passes through after a look at its first bytes.
struct JsonParseErrors {
    stream: TcpStream,
    /// A replacement being written: its bytes, how many are written, and how many of
    /// hyper's bytes it stands for (reported written once all of it is).
    pending: Option<(Vec<u8>, usize, usize)>,
}

impl JsonParseErrors {
    fn new(stream: TcpStream) -> Self {
        JsonParseErrors {
            stream,
            pending: None,
        }
    }

    /// Writes what is pending; `Ready(Ok(n))` reports the `n` bytes of hyper's it replaced.
    fn drive(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<usize>> {
        while let Some((bytes, written, claimed)) = &mut self.pending {
            if *written == bytes.len() {
                let claimed = *claimed;
                self.pending = None;
                return Poll::Ready(Ok(claimed));
            }
            match Pin::new(&mut self.stream).poll_write(cx, &bytes[*written..]) {
                Poll::Ready(Ok(0)) => {
                    return Poll::Ready(Err(std::io::ErrorKind::WriteZero.into()));
                }
                Poll::Ready(Ok(n)) => *written += n,
                other => return other,
            }
        }
        Poll::Ready(Ok(0))
    }

    /// Starts replacing `buf` if it is one of hyper's own error heads.
    fn intercept(&mut self, buf: &[u8]) -> bool {
        match json_answer(buf) {
            Some(bytes) => {
                self.pending = Some((bytes, 0, buf.len()));
                true
            }
            None => false,
        }
    }
}

/// The JSON answer that replaces `head`, if `head` is hyper's own answer to a request it
/// could not parse.
fn json_answer(head: &[u8]) -> Option<Vec<u8>> {
    // hyper's heads for these are a status line, content-length and date: well under 256
    // bytes, written in one piece.
    if head.len() > 256 || !head.starts_with(b"HTTP/1.1 4") || !head.ends_with(b"\r\n\r\n") {
        return None;
    }
    let (status, code, message) = match &head[9..12] {
        b"400" => (
            "400 Bad Request",
            "bad_request",
            "the request is not valid HTTP/1.1",
        ),
        b"414" => (
            "414 URI Too Long",
            "uri_too_long",
            "the request's URI is longer than the server takes (64 KiB)",
        ),
        b"431" => (
            "431 Request Header Fields Too Large",
            "headers_too_large",
            "the request's head is larger than the server takes (400 KiB, 100 headers)",
        ),
        _ => return None,
    };
    let text = std::str::from_utf8(head).ok()?;
    let mut empty = false;
    for line in text.split("\r\n").skip(1) {
        let line = line.to_ascii_lowercase();
        if line.starts_with("content-type:") {
            return None;
        }
        empty |= line == "content-length: 0";
    }
    if !empty {
        return None;
    }
    let body = serde_json::json!({ "error": { "code": code, "message": message } }).to_string();
    Some(
        format!(
            "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        )
        .into_bytes(),
    )
}

impl AsyncRead for JsonParseErrors {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for JsonParseErrors {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        if self.pending.is_some() || self.intercept(buf) {
            return self.drive(cx);
        }
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        if self.pending.is_some() {
            return self.drive(cx);
        }
        if let Some(first) = bufs.iter().find(|b| !b.is_empty())
            && self.intercept(first)
        {
            return self.drive(cx);
        }
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::json_answer;

    #[test]
    fn only_hypers_own_empty_error_heads_are_replaced() {
        let hyper = b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\ndate: Mon, 07 Dec 2026 19:00:00 GMT\r\n\r\n";
        let answer = String::from_utf8(json_answer(hyper).unwrap()).unwrap();
        let (head, body) = answer.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 431 "), "{head}");
        assert!(
            head.contains(&format!("content-length: {}", body.len())),
            "{head}"
        );
        let doc: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(doc["error"]["code"], "headers_too_large");
        // The router's own errors carry a content type (and a body): untouched.
        let ours = b"HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: 0\r\n\r\n";
        assert!(json_answer(ours).is_none());
        // Another status, a head with a body, a response that is not an error: untouched.
        assert!(json_answer(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n").is_none());
        assert!(json_answer(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 5\r\n\r\n").is_none());
        assert!(json_answer(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n").is_none());
    }
}
