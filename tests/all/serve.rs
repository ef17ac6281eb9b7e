//! The marketplace over HTTP, against a real `kiln serve` on 127.0.0.1:0: anonymous
//! paginated reads, downloads by digest, authenticated publish and yank, hostile requests
//! refused with JSON errors, and `kiln registry pull` into another installation.

use std::path::Path;

use base64::Engine as _;
use kiln_test_artifacts as g;
use serde_json::json;

use crate::{Kiln, Server};

const PUBLISH_TOKEN: &str = "publish-token-0123456789";
const READ_TOKEN: &str = "read-only-token-0123456789";

/// A `kiln serve` whose config grants a publish token and a read-only token.
fn start(k: &Kiln) -> Server {
    Server::start(
        k,
        Some(&format!(
            "[[tokens]]\ntoken = \"{PUBLISH_TOKEN}\"\nscopes = [\"publish\"]\n\n[[tokens]]\ntoken = \"{READ_TOKEN}\"\nscopes = [\"read\"]\n"
        )),
    )
}

fn manifest(plugin: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../plugins")
        .join(plugin)
        .join("kiln.toml")
        .display()
        .to_string()
}

/// A publish body for `plugin`'s component, signed with the key in `home`.
pub(crate) fn signed_body(home: &Path, plugin: &str, wasm: &str) -> Vec<u8> {
    let key = kiln::registry::sign::load(&home.join("keys/default.key")).unwrap();
    let mut m =
        kiln::registry::Manifest::parse(&std::fs::read_to_string(manifest(plugin)).unwrap())
            .unwrap();
    m.plugin.component = None;
    let bytes = std::fs::read(wasm).unwrap();
    let digest = kiln::digest::sha256_hex(&bytes);
    let payload = kiln::registry::sign::payload(&m.plugin.name, &m.plugin.version, &digest, &m);
    serde_json::to_vec(&json!({
        "manifest": m,
        "component": base64::engine::general_purpose::STANDARD.encode(&bytes),
        "signature": kiln::registry::sign::sign(&key, &payload),
        "key_id": kiln::registry::sign::key_id(&key.verifying_key()),
    }))
    .unwrap()
}

#[test]
fn reads_are_anonymous_paginated_and_downloads_match_their_digest() {
    let k = Kiln::new();
    k.ok(&["key", "generate"]);
    for (name, wasm) in [
        ("csv-reader", g::CSV_READER),
        ("impute", g::IMPUTE),
        ("standardize", g::STANDARDIZE),
    ] {
        k.ok(&["publish", wasm, "--manifest", &manifest(name)]);
    }
    let s = start(&k);
    assert_eq!(s.call("GET", "/healthz", None, None), (200, b"ok".to_vec()));
    let (status, page1) = s.json("GET", "/v1/plugins?per_page=2&page=1", None, None);
    assert_eq!(status, 200);
    assert_eq!(page1["total"], 3);
    assert_eq!(page1["items"].as_array().unwrap().len(), 2);
    let (_, page2) = s.json("GET", "/v1/plugins?per_page=2&page=2", None, None);
    assert_eq!(page2["items"].as_array().unwrap().len(), 1);
    let (_, found) = s.json("GET", "/v1/plugins?q=csv", None, None);
    assert_eq!(found["items"][0]["name"], "csv-reader");
    assert_eq!(found["total"], 1);

    let (status, plugin) = s.json("GET", "/v1/plugins/csv-reader", None, None);
    assert_eq!(status, 200);
    let digest = plugin["versions"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let (_, record) = s.json("GET", "/v1/plugins/csv-reader/0.1.0", None, None);
    assert_eq!(record["digest"], digest.as_str());
    let (status, bytes) = s.call("GET", &format!("/v1/blobs/{digest}"), None, None);
    assert_eq!(status, 200);
    assert_eq!(kiln::digest::sha256_hex(&bytes), digest);
    assert_eq!(bytes, std::fs::read(g::CSV_READER).unwrap());
}

#[test]
fn hostile_requests_are_refused_with_json_errors() {
    let k = Kiln::new();
    k.ok(&["key", "generate"]);
    let s = start(&k);
    for path in [
        "/v1/blobs/..%2F..%2F..%2Fetc%2Fpasswd",
        "/v1/blobs/../../etc/passwd",
        "/v1/plugins/..%2Fetc",
        "/nowhere",
    ] {
        let (status, body) = s.json("GET", path, None, None);
        assert!(status == 400 || status == 404, "{path}: {status}");
        assert!(body["error"]["code"].is_string(), "{path}: {body}");
        assert!(!body.to_string().contains("root:"), "{path} leaked a file");
    }
    let (status, body) = s.json("GET", "/v1/plugins?per_page=100000", None, None);
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("bad_request"))
    );

    let publish = signed_body(k.home(), "csv-reader", g::CSV_READER);
    let (status, body) = s.json("POST", "/v1/plugins", None, Some(publish.clone()));
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (401, Some("unauthorized"))
    );
    let (status, _) = s.json(
        "POST",
        "/v1/plugins",
        Some("not-a-real-token-at-all"),
        Some(publish.clone()),
    );
    assert_eq!(status, 401);
    let (status, body) = s.json("POST", "/v1/plugins", Some(READ_TOKEN), Some(publish));
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (403, Some("forbidden"))
    );

    // Refused from the announced length, before the body is read.
    let answer = s.head_only("/v1/plugins", kiln::api::MAX_BODY + 1024);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("payload_too_large"), "{answer}");
    let (status, body) = s.json(
        "POST",
        "/v1/plugins",
        Some(PUBLISH_TOKEN),
        Some(b"{not json".to_vec()),
    );
    assert!(status == 400 || status == 422, "{status}");
    assert!(body["error"]["code"].is_string());

    // A component that is not what its manifest declares is refused, and nothing is stored.
    let wrong = signed_body(k.home(), "linear-runner", g::SCHEMA_VALIDATOR);
    let (status, body) = s.json("POST", "/v1/plugins", Some(PUBLISH_TOKEN), Some(wrong));
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (422, Some("plugin_wrong_world")),
        "{body}"
    );
    let (_, listing) = s.json("GET", "/v1/plugins", None, None);
    assert_eq!(listing["total"], 0);
}

#[test]
fn publish_over_http_then_pull_into_another_installation() {
    let k = Kiln::new();
    k.ok(&["key", "generate"]);
    let s = start(&k);
    let (status, record) = s.json(
        "POST",
        "/v1/plugins",
        Some(PUBLISH_TOKEN),
        Some(signed_body(k.home(), "csv-reader", g::CSV_READER)),
    );
    assert_eq!(status, 201, "{record}");
    let (status, body) = s.json(
        "POST",
        "/v1/plugins",
        Some(PUBLISH_TOKEN),
        Some(signed_body(k.home(), "csv-reader", g::SELECT_COLUMNS)),
    );
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("version_exists"))
    );

    let other = Kiln::new();
    let err = other.fails(&["registry", "pull", "csv-reader@^0.1", "--from", &s.url]);
    assert!(
        err.contains("which this registry does not trust") && err.contains("kiln key trust"),
        "{err}"
    );
    let out = other.ok(&[
        "registry",
        "pull",
        "csv-reader@^0.1",
        "--from",
        &s.url,
        "--trust",
    ]);
    assert!(out.contains("pulled csv-reader@0.1.0"), "{out}");
    assert_eq!(
        other.json(&["info", "csv-reader"])["resolved"]["digest"],
        record["digest"]
    );
    assert_eq!(
        other.json(&["registry", "verify"])["problems"]
            .as_array()
            .unwrap()
            .len(),
        0
    );

    let (status, yanked) = s.json(
        "POST",
        "/v1/plugins/csv-reader/0.1.0/yank",
        Some(PUBLISH_TOKEN),
        None,
    );
    assert_eq!((status, yanked["yanked"].as_bool()), (200, Some(true)));
    let third = Kiln::new();
    let err = third.fails(&[
        "registry",
        "pull",
        "csv-reader@^0.1",
        "--from",
        &s.url,
        "--trust",
    ]);
    assert!(err.contains("no version of `csv-reader`"), "{err}");
    third.ok(&[
        "registry",
        "pull",
        "csv-reader@=0.1.0",
        "--from",
        &s.url,
        "--trust",
    ]);
}

/// `kiln --server URL publish` publishes on that server with the token's scope and says
/// where; without the scope it is refused; commands that work on the local data directory
/// refuse `--server` instead of ignoring it.
#[test]
fn kiln_publish_with_server_publishes_there_and_local_commands_refuse_server() {
    let home = Kiln::new();
    let s = start(&home);
    let publisher = Kiln::new();
    let shown = publisher.ok(&["key", "generate"]);
    let public = shown
        .lines()
        .find_map(|l| l.trim().strip_prefix("public"))
        .unwrap()
        .trim()
        .to_string();
    home.ok(&["key", "trust", &public, "--name", "publisher"]);

    let publish = |token: &str| {
        publisher
            .cmd()
            .args([
                "--server",
                &s.url,
                "--token",
                token,
                "publish",
                g::CSV_READER,
                "--manifest",
                &manifest("csv-reader"),
            ])
            .output()
            .unwrap()
    };
    let refused = publish(READ_TOKEN);
    assert!(!refused.status.success());
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(err.contains("403") && err.contains(&s.url), "{err}");
    let out = publish(PUBLISH_TOKEN);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains(&format!("published csv-reader@0.1.0 to {}", s.url)),
        "{text}"
    );
    // It is on the server, and not in the publisher's own registry.
    let (status, plugin) = s.json("GET", "/v1/plugins/csv-reader", None, None);
    assert_eq!(status, 200, "{plugin}");
    assert!(
        publisher
            .fails(&["info", "csv-reader"])
            .contains("csv-reader"),
    );

    for args in [
        &["plugin", "run", g::ECHO_STEP][..],
        &["search", "csv"],
        &["validate", "workflow.yaml"],
    ] {
        let mut all = vec!["--server", s.url.as_str()];
        all.extend_from_slice(args);
        let err = publisher.fails(&all);
        assert!(
            err.contains(&format!(
                "`kiln {}` works on the local data directory",
                args[0]
            )),
            "{args:?}: {err}"
        );
    }
}
