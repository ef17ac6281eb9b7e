//! The HTTP listener's limits against a real `kiln serve`, over raw TCP where a client
//! library would not misbehave: a half-sent request head is dropped at the header timeout,
//! connections beyond the limit are answered 503 and closed, shutdown drains within its
//! bound while a connection is still half open, and every error the framework makes itself
//! (405, 408, 413) has a JSON body.

use std::{
    io::{Read as _, Write as _},
    net::TcpStream,
    time::{Duration, Instant},
};

use serde_json::Value as J;

use crate::{Kiln, Server};

/// A connection to the server that has sent the start of a request head and no more.
fn half_open(s: &Server) -> TcpStream {
    let addr = s.url.trim_start_matches("http://");
    let mut stream = TcpStream::connect(addr).unwrap();
    write!(stream, "GET /healthz HTTP/1.1\r\nHost: {addr}\r\n").unwrap();
    stream
}

/// Everything the server sends until it closes the connection, or `None` if it still has
/// not closed it after `wait`.
fn until_closed(stream: &mut TcpStream, wait: Duration) -> Option<String> {
    stream.set_read_timeout(Some(wait)).unwrap();
    let mut answer = Vec::new();
    match stream.read_to_end(&mut answer) {
        Ok(_) => Some(String::from_utf8_lossy(&answer).into_owned()),
        Err(e) if matches!(e.kind(), std::io::ErrorKind::ConnectionReset) => {
            Some(String::from_utf8_lossy(&answer).into_owned())
        }
        Err(_) => None,
    }
}

/// The JSON body of a raw HTTP answer.
fn body(answer: &str) -> J {
    let (_, body) = answer
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no body: {answer}"));
    serde_json::from_str(body).unwrap_or_else(|_| panic!("not JSON: {answer}"))
}

#[test]
fn a_half_sent_head_is_dropped_and_framework_errors_are_json() {
    let k = Kiln::new();
    let s = Server::start(
        &k,
        Some("header_timeout_secs = 1\nrequest_timeout_secs = 1\nmax_predict_body_mib = 1\n"),
    );
    // A head that never ends: closed at the header timeout, not held for minutes.
    let mut slow = half_open(&s);
    let started = Instant::now();
    let closed = until_closed(&mut slow, Duration::from_secs(15));
    assert!(
        closed.is_some(),
        "still open {:?} after the head began",
        started.elapsed()
    );
    let (status, _) = s.call("GET", "/healthz", None, None);
    assert_eq!(status, 200);

    // 405: a method the route does not take.
    let (status, headers, bytes) = s.send("DELETE", "/healthz", &[], None);
    assert_eq!(status, 405);
    assert!(headers.get("allow").is_some(), "{headers:?}");
    let doc: J = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(doc["error"]["code"], "method_not_allowed", "{doc}");
    // On MLflow's routes, MLflow's error form.
    let (status, _, bytes) = s.send("PUT", "/api/2.0/mlflow/experiments/search", &[], None);
    assert_eq!(status, 405);
    let doc: J = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(doc["error_code"], "ENDPOINT_NOT_FOUND", "{doc}");

    // 408: a body announced and never sent.
    let answer = s.head_only("/v1/models/m/predict", 100);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert_eq!(
        body(&answer)["error"]["code"],
        "request_timeout",
        "{answer}"
    );

    // 413: a chunked body past the prediction limit (no length to refuse it up front).
    let addr = s.url.trim_start_matches("http://").to_string();
    let mut stream = TcpStream::connect(&addr).unwrap();
    write!(
        stream,
        "POST /v1/models/m/predict HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    .unwrap();
    let chunk = vec![b' '; 2 << 20];
    let _ = write!(stream, "{:x}\r\n", chunk.len());
    let _ = stream.write_all(&chunk);
    let _ = stream.write_all(b"\r\n0\r\n\r\n");
    let answer = until_closed(&mut stream, Duration::from_secs(10)).unwrap_or_default();
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert_eq!(
        body(&answer)["error"]["code"],
        "payload_too_large",
        "{answer}"
    );
}

#[test]
fn connections_past_the_limit_get_503_and_shutdown_drains_within_its_bound() {
    let k = Kiln::new();
    let mut s = Server::start(
        &k,
        Some("max_connections = 3\nheader_timeout_secs = 300\nshutdown_drain_secs = 1\n"),
    );
    let mut held: Vec<TcpStream> = (0..3).map(|_| half_open(&s)).collect();
    // Each held connection is being served (its head is being read) before the next.
    std::thread::sleep(Duration::from_millis(300));
    let addr = s.url.trim_start_matches("http://").to_string();
    let mut extra = TcpStream::connect(&addr).unwrap();
    let answer = until_closed(&mut extra, Duration::from_secs(10)).expect("closed");
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert_eq!(
        body(&answer)["error"]["code"],
        "too_many_connections",
        "{answer}"
    );

    // One closes: a new connection is served again.
    drop(held.pop());
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        // Until the server has seen the close, it may refuse this one with 503 and hang up
        // before the request is written: a broken pipe is a refusal too.
        let mut stream = TcpStream::connect(&addr).unwrap();
        let sent = write!(
            stream,
            "GET /healthz HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
        );
        let answer = match sent {
            Ok(()) => until_closed(&mut stream, Duration::from_secs(10)).unwrap_or_default(),
            Err(e) => e.to_string(),
        };
        if answer.starts_with("HTTP/1.1 200") {
            break;
        }
        assert!(Instant::now() < deadline, "never served again: {answer}");
        std::thread::sleep(Duration::from_millis(100));
    }

    // SIGTERM with two connections still half open: the server exits after its drain.
    s.terminate();
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = s.child.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "still running 20 s after SIGTERM with connections open"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(status.success(), "{status}");
    drop(held);
}
