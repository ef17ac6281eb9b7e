//! The HTTP listener's limits against a real `kiln serve`, over raw TCP where a client
//! library would not misbehave: a half-sent request head is dropped at the header timeout,
//! connections beyond the limit are answered 503 and closed, shutdown drains within its
//! bound while a connection is still half open, every error the framework makes itself
//! (400, 405, 408, 413, 414, 431) has a JSON body, a body that stops arriving is cut off
//! while a slow artifact upload that keeps arriving is not, and MLflow artifact uploads keep
//! their own limit and leave nothing behind when cut off.

use std::{
    io::{Read as _, Write as _},
    net::TcpStream,
    time::{Duration, Instant},
};

use serde_json::Value as J;

use crate::{Kiln, Server, tracking::create_run};

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

/// MLflow artifact uploads have their own limit (`max_artifact_mib`), checked from the
/// announced length before the body is read, with MLflow's error form; an upload cut off
/// by `kill -9` leaves a temporary file that the next start removes.
#[test]
fn artifact_uploads_have_their_own_limit_and_a_killed_one_leaves_nothing_behind() {
    let k = Kiln::new();
    let mut s = Server::start(&k, Some("max_artifact_mib = 1\n"));
    let run = create_run(&s, "0");
    let addr = s.url.trim_start_matches("http://").to_string();
    let put = |length: usize, sent: usize| {
        let mut stream = TcpStream::connect(&addr).unwrap();
        write!(
            stream,
            "PUT /api/2.0/mlflow-artifacts/artifacts/0/{run}/artifacts/big.bin HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {length}\r\n\r\n"
        )
        .unwrap();
        stream.write_all(&vec![7u8; sent]).unwrap();
        stream
    };

    // Past the limit: refused from its Content-Length, nothing of the body read.
    let mut refused = put(2 << 20, 0);
    let answer = until_closed(&mut refused, Duration::from_secs(10)).expect("answered");
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert_eq!(
        body(&answer)["error_code"],
        "RESOURCE_EXHAUSTED",
        "{answer}"
    );
    // Within it, past the API's own limit for other routes would not matter: stored.
    let (status, _, _) = s.send(
        "PUT",
        &format!("/api/2.0/mlflow-artifacts/artifacts/0/{run}/artifacts/small.bin"),
        &[],
        Some(vec![1u8; 512 << 10]),
    );
    assert_eq!(status, 200);

    // Half an upload, then the server is killed: its temporary file stays, until the next
    // start removes it.
    let _cut = put(1 << 20, 256 << 10);
    let tmp = k.home().join("objects/tmp");
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::fs::read_dir(&tmp).map_or(0, |d| d.count()) == 0 {
        assert!(
            Instant::now() < deadline,
            "the upload never reached the disk"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    s.child.kill().unwrap();
    s.child.wait().unwrap();
    assert_eq!(std::fs::read_dir(&tmp).unwrap().count(), 1);
    let s = Server::start(&k, Some("max_artifact_mib = 1\n"));
    assert_eq!(std::fs::read_dir(&tmp).unwrap().count(), 0);
    // What was stored before is still there.
    let (status, _, stored) = s.send(
        "GET",
        &format!("/api/2.0/mlflow-artifacts/artifacts/0/{run}/artifacts/small.bin"),
        &[],
        None,
    );
    assert_eq!((status, stored.len()), (200, 512 << 10));
}

/// What hyper answers by itself, before any route sees the request (a request that is not
/// HTTP, a URI past 64 KiB, more than 100 headers), has Kiln's JSON error body too.
#[test]
fn requests_the_parser_refuses_get_json_errors() {
    let k = Kiln::new();
    let s = Server::start(&k, None);
    let addr = s.url.trim_start_matches("http://").to_string();
    let raw = |head: String| {
        let mut stream = TcpStream::connect(&addr).unwrap();
        stream.write_all(head.as_bytes()).unwrap();
        until_closed(&mut stream, Duration::from_secs(10)).expect("closed after the answer")
    };
    let cases = [
        (
            "GET\x01 /healthz HTTP/1.1\r\nHost: x\r\n\r\n".to_string(),
            "400",
            "bad_request",
        ),
        (
            format!(
                "GET /healthz?{} HTTP/1.1\r\nHost: x\r\n\r\n",
                "q".repeat(70_000)
            ),
            "414",
            "uri_too_long",
        ),
        (
            format!(
                "GET /healthz HTTP/1.1\r\nHost: x\r\n{}\r\n",
                (0..101)
                    .map(|i| format!("x-h{i}: 1\r\n"))
                    .collect::<String>()
            ),
            "431",
            "headers_too_large",
        ),
    ];
    for (head, status, code) in cases {
        let answer = raw(head);
        assert!(
            answer.starts_with(&format!("HTTP/1.1 {status} ")),
            "{answer}"
        );
        assert!(
            answer
                .to_ascii_lowercase()
                .contains("content-type: application/json"),
            "{answer}"
        );
        assert_eq!(body(&answer)["error"]["code"], code, "{answer}");
    }
    // The server is unharmed, and its own answers are untouched.
    let (status, headers, bytes) = s.send("GET", "/no/such/route", &[], None);
    assert_eq!(status, 404, "{headers:?}");
    let doc: J = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(doc["error"]["code"], "not_found");
    assert_eq!(s.call("GET", "/healthz", None, None).0, 200);
}

/// A body that stops arriving is cut off at `body_timeout_secs` with 408, long before the
/// request's own deadline; an MLflow artifact upload that keeps arriving is not held to the
/// request deadline at all, only to that pace.
#[test]
fn a_stalled_body_is_cut_off_and_a_slow_upload_is_not() {
    let k = Kiln::new();
    let s = Server::start(
        &k,
        Some("body_timeout_secs = 1\nrequest_timeout_secs = 3\n"),
    );
    let addr = s.url.trim_start_matches("http://").to_string();
    let run = create_run(&s, "0");
    let upload = format!("/api/2.0/mlflow-artifacts/artifacts/0/{run}/artifacts");

    // A prediction and an MLflow upload whose bodies stop after 10 bytes: 408, in each API's
    // form, after about a second (the request deadline is 3 s; the upload has none).
    for (path, code) in [
        ("/v1/models/m/predict".to_string(), "request_timeout"),
        (format!("{upload}/stalled.bin"), "DEADLINE_EXCEEDED"),
    ] {
        let method = if path.starts_with("/v1") {
            "POST"
        } else {
            "PUT"
        };
        let mut stream = TcpStream::connect(&addr).unwrap();
        write!(
            stream,
            "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{}",
            " ".repeat(10)
        )
        .unwrap();
        let started = Instant::now();
        let answer = until_closed(&mut stream, Duration::from_secs(10)).expect("answered");
        let took = started.elapsed();
        assert!(answer.starts_with("HTTP/1.1 408"), "{path}: {answer}");
        let doc = body(&answer);
        let found = doc["error"]["code"].as_str().or(doc["error_code"].as_str());
        assert_eq!(found, Some(code), "{answer}");
        assert!(
            took >= Duration::from_millis(900) && took < Duration::from_millis(2500),
            "{path}: answered after {took:?}"
        );
    }
    let (status, listing) = s.json(
        "GET",
        &format!("/api/2.0/mlflow-artifacts/artifacts?path=0/{run}/artifacts"),
        None,
        None,
    );
    assert_eq!(status, 200, "{listing}");
    assert!(
        !listing.to_string().contains("stalled.bin"),
        "a cut-off upload was stored: {listing}"
    );

    // An upload sent in 10 pieces 0.4 s apart (4 s, past the 3 s request deadline, each
    // piece within the 1 s pace): stored whole.
    let mut stream = TcpStream::connect(&addr).unwrap();
    write!(
        stream,
        "PUT {upload}/slow.bin HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {}\r\n\r\n",
        10 * 1000
    )
    .unwrap();
    for _ in 0..10 {
        std::thread::sleep(Duration::from_millis(400));
        stream.write_all(&[5u8; 1000]).unwrap();
    }
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut answer = vec![0u8; 4096];
    let n = stream.read(&mut answer).unwrap();
    let answer = String::from_utf8_lossy(&answer[..n]);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let (status, _, stored) = s.send("GET", &format!("{upload}/slow.bin"), &[], None);
    assert_eq!((status, stored), (200, vec![5u8; 10_000]));
}

/// The server's peak resident memory so far (VmHWM), in bytes.
fn peak_memory(s: &Server) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", s.child.id())).unwrap();
    let line = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .expect("VmHWM in /proc/PID/status");
    let kib: u64 = line
        .split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap();
    kib << 10
}

/// A large artifact goes to disk and comes back whole without the server ever holding it:
/// its peak memory grows by far less than the artifact's size, up and down.
#[test]
fn a_large_artifact_streams_both_ways() {
    let k = Kiln::new();
    let s = Server::start(&k, None);
    let run = create_run(&s, "0");
    let path = format!("/api/2.0/mlflow-artifacts/artifacts/0/{run}/artifacts/big.bin");
    let size: usize = 192 << 20;
    let data: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
    let limit = 64 << 20;

    let start = peak_memory(&s);
    let (status, _, _) = s.send("PUT", &path, &[], Some(data.clone()));
    assert_eq!(status, 200);
    let uploaded = peak_memory(&s);
    assert!(
        uploaded - start < limit,
        "the upload raised the server's peak memory by {} MiB",
        (uploaded - start) >> 20
    );
    let (status, headers, got) = s.send("GET", &path, &[], None);
    assert_eq!(status, 200);
    assert_eq!(
        headers.get("content-length").unwrap().to_str().unwrap(),
        size.to_string()
    );
    assert!(got == data, "the artifact came back different");
    let downloaded = peak_memory(&s);
    assert!(
        downloaded - start < limit,
        "the download raised the server's peak memory by {} MiB",
        (downloaded - start) >> 20
    );
}

/// An MLflow integer past 64 bits (a metric's step of 2^70) is refused, not stored
/// saturated; a whole number written with an exponent is taken.
#[test]
fn mlflow_integers_past_64_bits_are_refused_not_saturated() {
    let k = Kiln::new();
    let s = Server::start(&k, None);
    let run = create_run(&s, "0");
    let log = |step: &str| {
        let text = format!(
            r#"{{"run_id": "{run}", "key": "loss", "value": 0.5, "timestamp": 1, "step": {step}}}"#
        );
        s.json(
            "POST",
            "/api/2.0/mlflow/runs/log-metric",
            None,
            Some(text.into_bytes()),
        )
    };
    let (status, answer) = log("1180591620717411303424");
    assert_eq!(status, 400, "{answer}");
    assert_eq!(answer["error_code"], "INVALID_PARAMETER_VALUE", "{answer}");
    assert!(
        answer["message"]
            .as_str()
            .unwrap()
            .contains("not a 64-bit integer"),
        "{answer}"
    );
    assert_eq!(log("2.5").0, 400);
    assert_eq!(log("1e3").0, 200);
    let (_, history) = s.json(
        "GET",
        &format!("/api/2.0/mlflow/metrics/get-history?run_id={run}&metric_key=loss"),
        None,
        None,
    );
    assert_eq!(history["metrics"][0]["step"], 1000, "{history}");
    assert_eq!(history["metrics"].as_array().unwrap().len(), 1, "{history}");
}

/// Text fields are held to MLflow's limits (names 256, run names 250, descriptions 5000,
/// tag values 8000), and an error about a long value never echoes it whole.
#[test]
fn mlflow_text_fields_are_bounded_and_errors_do_not_echo_them() {
    let k = Kiln::new();
    let s = Server::start(&k, None);
    let huge = "n".repeat(1 << 20);
    let refused = |path: &str, body: serde_json::Value| {
        let (status, answer) = s.send_json("POST", path, None, &body);
        assert_eq!(status, 400, "{path}: {answer}");
        assert_eq!(answer["error_code"], "INVALID_PARAMETER_VALUE", "{path}");
        let message = answer["message"].as_str().unwrap();
        assert!(
            message.len() < 300,
            "{path} echoes: {} bytes",
            message.len()
        );
    };
    refused(
        "/api/2.0/mlflow/experiments/create",
        serde_json::json!({ "name": "e".repeat(257) }),
    );
    refused(
        "/api/2.0/mlflow/experiments/create",
        serde_json::json!({ "name": huge }),
    );
    refused(
        "/api/2.0/mlflow/runs/create",
        serde_json::json!({ "experiment_id": "0", "run_name": huge }),
    );
    refused(
        "/api/2.0/mlflow/registered-models/create",
        serde_json::json!({ "name": huge }),
    );
    refused(
        "/api/2.0/mlflow/registered-models/create",
        serde_json::json!({ "name": "m", "description": "d".repeat(5001) }),
    );
    refused(
        "/api/2.0/mlflow/registered-models/create",
        serde_json::json!({ "name": "m", "tags": [{ "key": "k", "value": "v".repeat(8001) }] }),
    );
    // At the limits, accepted; a lookup of a long name does not echo it either.
    let (status, _) = s.send_json(
        "POST",
        "/api/2.0/mlflow/experiments/create",
        None,
        &serde_json::json!({ "name": "e".repeat(256) }),
    );
    assert_eq!(status, 200);
    let (status, answer) = s.json(
        "GET",
        &format!(
            "/api/2.0/mlflow/experiments/get-by-name?experiment_name={}",
            &huge[..20_000]
        ),
        None,
        None,
    );
    assert_eq!(status, 404, "{answer}");
    assert!(answer["message"].as_str().unwrap().len() < 300);
    let (status, answer) = s.send_json(
        "POST",
        "/api/2.0/mlflow/registered-models/create",
        None,
        &serde_json::json!({ "name": "m", "description": "d".repeat(5000) }),
    );
    assert_eq!(status, 200, "{answer}");
    let (status, answer) = s.send_json(
        "PATCH",
        "/api/2.0/mlflow/registered-models/update",
        None,
        &serde_json::json!({ "name": "m", "description": "d".repeat(5001) }),
    );
    assert_eq!(status, 400, "{answer}");
}
