//! Workflow runs over HTTP against a real `kiln serve`: the quickstart posted as YAML and
//! as JSON runs to the end while its events stream as SSE; a finished run's events are
//! told again and resume from `Last-Event-ID`; invalid or overreaching workflows are
//! refused with the CLI's diagnostics; a run is cancelled mid-step, and by SIGTERM; runs beyond
//! `max_running` get 429; the `run` scope is required; `kiln run --server` runs a file there
//! and reports it as a local run.

use std::path::{Path, PathBuf};

use kiln_test_artifacts as g;
use serde_json::{Value as J, json};

use crate::{Kiln, Server};

const RUN: &str = "run-token-0123456789abc";
const READ: &str = "read-token-0123456789abc";

/// A data directory whose registry holds the seed, and a workflow root with the data.
fn seeded() -> (Kiln, PathBuf) {
    let k = Kiln::new();
    let seed = Path::new(env!("CARGO_MANIFEST_DIR")).join("../registry-data");
    let out = k
        .cmd()
        .env("KILN_SEED", seed)
        .args(["search", "csv"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let root = k.home().join("workflows");
    std::fs::create_dir_all(root.join("data")).unwrap();
    std::fs::copy(crate::data("diabetes.csv"), root.join("data/diabetes.csv")).unwrap();
    (k, root)
}

/// Publishes the hostile test step to `k`'s registry, signed with a key made for it.
fn publish_hostile(k: &Kiln) {
    k.ok(&["key", "generate"]);
    let manifest = k.home().join("hostile.toml");
    std::fs::write(
        &manifest,
        "[plugin]\nname = \"hostile\"\nversion = \"0.1.0\"\nrole = \"step\"\nwit = \"kiln:plugin@0.1.0\"\ndescription = \"Misbehaves on request\"\nlicense = \"Apache-2.0\"\n",
    )
    .unwrap();
    k.ok(&[
        "publish",
        g::HOSTILE,
        "--manifest",
        manifest.to_str().unwrap(),
    ]);
}

fn config(root: Option<&Path>, extra: &str) -> String {
    let mut c = format!(
        "[[tokens]]\ntoken = \"{RUN}\"\nscopes = [\"run\"]\n\n[[tokens]]\ntoken = \"{READ}\"\nscopes = [\"read\"]\n\n[workflows]\n{extra}\n"
    );
    if let Some(root) = root {
        c.push_str(&format!("root = \"{}\"\n", root.display()));
    }
    c
}

fn quickstart() -> String {
    std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/quickstart.yaml"),
    )
    .unwrap()
}

/// Posts a workflow's text; the status and answer.
fn post(s: &Server, text: &str, content_type: &str, query: &str) -> (u16, J) {
    let auth = format!("Bearer {RUN}");
    let (status, _, body) = s.send(
        "POST",
        &format!("/v1/runs{query}"),
        &[("Authorization", &auth), ("Content-Type", content_type)],
        Some(text.as_bytes().to_vec()),
    );
    (status, serde_json::from_slice(&body).unwrap())
}

/// One Server-Sent Event: its number, name and data.
#[derive(Debug)]
struct Sse {
    id: usize,
    event: String,
    data: J,
}

/// Reads a run's event stream to its end.
fn events(s: &Server, run: &str, last_id: Option<usize>) -> Vec<Sse> {
    let last = last_id.map(|n| n.to_string());
    let mut headers = vec![("Accept", "text/event-stream")];
    if let Some(l) = &last {
        headers.push(("Last-Event-ID", l.as_str()));
    }
    let (status, h, body) = s.send("GET", &format!("/v1/runs/{run}/events"), &headers, None);
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    assert_eq!(h["content-type"], "text/event-stream");
    String::from_utf8(body)
        .unwrap()
        .split("\n\n")
        .filter(|block| block.lines().any(|l| l.starts_with("event:")))
        .map(|block| {
            let field = |name: &str| {
                block
                    .lines()
                    .find_map(|l| l.strip_prefix(name))
                    .map(str::trim)
                    .unwrap_or_else(|| panic!("no {name} in {block}"))
                    .to_string()
            };
            Sse {
                id: field("id:").parse().unwrap(),
                event: field("event:"),
                data: serde_json::from_str(&field("data:")).unwrap(),
            }
        })
        .collect()
}

fn names(events: &[Sse]) -> Vec<&str> {
    events.iter().map(|e| e.event.as_str()).collect()
}

#[test]
fn a_posted_workflow_runs_while_its_events_stream_to_the_end() {
    let (k, root) = seeded();
    let s = Server::start(&k, Some(&config(Some(&root), "")));
    let text = quickstart();

    // The `run` scope is required.
    let (status, _) = s.call("POST", "/v1/runs", None, Some(text.clone().into_bytes()));
    assert_eq!(status, 401);
    let (status, body) = s.json("POST", "/v1/runs", Some(READ), Some(text.clone().into()));
    assert_eq!((status, &body["error"]["code"]), (403, &json!("forbidden")));

    let (status, started) = post(&s, &text, "application/yaml", "");
    assert_eq!(status, 202, "{started}");
    let id = started["run"].as_str().unwrap().to_string();
    assert_eq!(id.len(), 32);
    assert_eq!(started["links"]["events"], format!("/v1/runs/{id}/events"));

    let live = events(&s, &id, None);
    let steps = [
        "read",
        "check",
        "split",
        "scale-train",
        "scale-test",
        "train",
        "predict",
        "evaluate",
    ];
    assert_eq!(live.first().unwrap().event, "begun");
    assert_eq!(live[0].data["run"], id.as_str());
    let end = live.last().unwrap();
    assert_eq!(end.event, "end");
    assert_eq!(end.data["status"], "succeeded", "{:?}", end.data);
    assert_eq!(end.data["registered"]["model"], "diabetes-progression");
    // Numbered in order, every step started before it finished.
    for (i, e) in live.iter().enumerate() {
        assert_eq!(e.id, i);
    }
    for step in steps {
        let at = |name: &str| {
            live.iter()
                .position(|e| e.event == name && e.data["step"] == step)
                .unwrap_or_else(|| panic!("no {name} for {step}: {:?}", names(&live)))
        };
        assert!(at("started") < at("finished"), "{step}");
        assert_eq!(live[at("finished")].data["status"], "succeeded");
    }

    // The status, now from the store: the same run the CLI would show.
    let (status, record) = s.json("GET", &format!("/v1/runs/{id}"), None, None);
    assert_eq!(status, 200);
    assert_eq!(record["status"], "succeeded");
    assert_eq!(record["plan"]["file"], "request");
    assert_eq!(record["steps"].as_array().unwrap().len(), steps.len());
    let shown = k.json(&["runs", "show", &id]);
    assert_eq!(shown["id"], id.as_str());
    assert_eq!(shown["registered"], record["registered"]);

    // Told again from the record, and resumed after the third.
    let told = events(&s, &id, None);
    assert_eq!(told.first().unwrap().event, "begun");
    assert_eq!(told.last().unwrap().data["status"], "succeeded");
    assert_eq!(
        told.iter().filter(|e| e.event == "finished").count(),
        steps.len()
    );
    let resumed = events(&s, &id, Some(2));
    assert_eq!(resumed.first().unwrap().id, 3);
    assert_eq!(resumed.len(), told.len() - 3);

    // The first two steps as JSON: both come from the cache now.
    let doc = json!({
        "name": "read-and-check",
        "steps": {
            "read": {
                "uses": "csv-reader@^0.1",
                "with": {"path": "data/diabetes.csv"},
                "grants": {"dirs": ["data"]},
                "limits": {"memory": "64MiB", "timeout": "10s"},
            },
            "check": {
                "uses": "schema-validator@^0.1",
                "inputs": {"table": "read.table"},
                "with": {
                    "columns": ["age", "sex", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6", "progression"],
                    "ranges": "age:0..120,bmi:10..60,progression:0..400",
                    "max_null_fraction": 0,
                    "min_rows": 400,
                },
            },
        },
    });
    let (status, started) = post(&s, &doc.to_string(), "application/json", "");
    assert_eq!(status, 202, "{started}");
    let json_run = events(&s, started["run"].as_str().unwrap(), None);
    let finished: Vec<&J> = json_run
        .iter()
        .filter(|e| e.event == "finished")
        .map(|e| &e.data["status"])
        .collect();
    assert_eq!(finished, [&json!("cached"), &json!("cached")]);
    // Without the cache, they run.
    let (_, started) = post(&s, &doc.to_string(), "application/json", "?no_cache=true");
    let fresh = events(&s, started["run"].as_str().unwrap(), None);
    assert_eq!(fresh.last().unwrap().data["status"], "succeeded");
    assert_eq!(
        fresh
            .iter()
            .filter(|e| e.event == "finished" && e.data["status"] == "succeeded")
            .count(),
        2
    );

    let (_, _, metrics) = s.send("GET", "/metrics", &[], None);
    let metrics = String::from_utf8(metrics).unwrap();
    assert!(
        metrics.contains(
            "kiln_step_invocations_total{plugin=\"csv-reader@0.1.0\",status=\"succeeded\"} 2"
        ),
        "{metrics}"
    );
    assert!(
        metrics.contains(
            "kiln_step_invocations_total{plugin=\"csv-reader@0.1.0\",status=\"cached\"} 1"
        ),
        "{metrics}"
    );
    assert!(
        metrics.contains("kiln_workflow_runs_total{status=\"succeeded\"} 3"),
        "{metrics}"
    );
}

#[test]
fn invalid_or_overreaching_workflows_are_refused_with_the_clis_diagnostics() {
    let (k, root) = seeded();
    let s = Server::start(&k, Some(&config(Some(&root), "")));
    let refused = |text: &str| -> J {
        let (status, body) = post(&s, text, "application/yaml", "");
        assert_eq!(status, 422, "{body}");
        assert_eq!(body["error"]["code"], "invalid_workflow");
        body["diagnostics"].clone()
    };

    // The same diagnostics as `kiln validate --json`, naming the request as the file.
    let broken = "name: broken\nsteps:\n  read:\n    uses: no-such-plugin@^1\n  split:\n    uses: train-test-split@^0.1\n    inputs: { table: nowhere.table }\n";
    let got = refused(broken);
    let file = root.join("broken.yaml");
    std::fs::write(&file, broken).unwrap();
    let out = k.run(&["validate", file.to_str().unwrap(), "--json"]);
    assert_eq!(out.status.code(), Some(2));
    let mut want: J = serde_json::from_slice(&out.stdout).unwrap();
    for d in want.as_array_mut().unwrap() {
        d["file"] = json!("request");
    }
    assert_eq!(got, want);
    assert_eq!(got.as_array().unwrap().len(), 2, "{got}");

    let d = refused("name: x\nsteps:\n  a: [\n");
    assert_eq!(d[0]["file"], "request");
    assert!(d[0]["loc"]["line"].as_u64().is_some(), "{d}");

    // A posted workflow reaches registry plugins only, and the root's directories only.
    let d = refused(&format!(
        "name: x\nsteps:\n  a:\n    uses: {}\n",
        g::HOSTILE
    ));
    assert!(
        d[0]["message"]
            .as_str()
            .unwrap()
            .contains("uses registry plugins only"),
        "{d}"
    );
    for dir in ["/etc", "..", "data/../..", "missing"] {
        let d = refused(&format!(
            "name: x\nsteps:\n  read:\n    uses: csv-reader@^0.1\n    with: {{ path: data/diabetes.csv }}\n    grants: {{ dirs: [\"{dir}\"] }}\n"
        ));
        assert!(
            d[0]["message"]
                .as_str()
                .unwrap()
                .contains("is not a directory inside the server's workflow root"),
            "{dir}: {d}"
        );
    }

    // Bodies that are not a workflow at all.
    let (status, _, body) = s.send(
        "POST",
        "/v1/runs",
        &[("Authorization", &format!("Bearer {RUN}"))],
        Some(vec![0xff, 0xfe, 0x00]),
    );
    assert_eq!(status, 400, "{}", String::from_utf8_lossy(&body));
    let (status, body) = post(&s, &quickstart(), "application/yaml", "?jobs=lots");
    assert_eq!(
        (status, &body["error"]["code"]),
        (400, &json!("bad_request"))
    );
    // Nothing ran.
    let (_, runs) = s.json("GET", "/v1/runs", None, None);
    assert_eq!(runs["runs"], json!([]));

    // A server without a workflow root grants no directory at all.
    drop(s);
    let s = Server::start(&k, Some(&config(None, "")));
    let (status, body) = post(&s, &quickstart(), "application/yaml", "");
    assert_eq!(status, 422);
    assert!(
        body["diagnostics"][0]["message"]
            .as_str()
            .unwrap()
            .contains("grants no directories"),
        "{body}"
    );
}

#[test]
fn a_run_is_cancelled_mid_step_and_runs_beyond_the_limit_get_429() {
    let (k, _) = seeded();
    publish_hostile(&k);
    let s = Server::start(&k, Some(&config(None, "max_running = 1")));
    let spin = "name: spin\nsteps:\n  spin:\n    uses: hostile@^0.1\n    with: { mode: sleep }\n    limits: { timeout: 120s }\n  after:\n    uses: hostile@^0.1\n    inputs: { in: spin.out }\n";
    let (status, started) = post(&s, spin, "application/yaml", "");
    assert_eq!(status, 202, "{started}");
    let id = started["run"].as_str().unwrap().to_string();

    // Live status: the spinning step runs; the one after it waits.
    let t0 = std::time::Instant::now();
    loop {
        let (status, doc) = s.json("GET", &format!("/v1/runs/{}", &id[..12]), None, None);
        assert_eq!(status, 200);
        assert_eq!(doc["live"], true);
        assert_eq!(doc["status"], "running");
        if doc["steps"][0]["status"] == "running" {
            assert_eq!(doc["steps"][1]["status"], "pending");
            break;
        }
        assert!(t0.elapsed().as_secs() < 30, "the step never started: {doc}");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }

    // One run at a time.
    let (status, body) = post(&s, spin, "application/yaml", "");
    assert_eq!(
        (status, &body["error"]["code"]),
        (429, &json!("overloaded"))
    );

    // Cancelling takes the `run` scope; the spinning call is stopped at once.
    let path = format!("/v1/runs/{id}/cancel");
    assert_eq!(s.call("POST", &path, Some(READ), None).0, 403);
    let t0 = std::time::Instant::now();
    let (status, body) = s.json("POST", &path, Some(RUN), None);
    assert_eq!((status, &body["status"]), (202, &json!("cancelling")));
    let told = events(&s, &id, None);
    assert!(t0.elapsed().as_secs() < 10);
    let end = told.last().unwrap();
    assert_eq!(
        (end.event.as_str(), &end.data["status"]),
        ("end", &json!("cancelled"))
    );
    let finished = |step: &str| {
        told.iter()
            .find(|e| e.event == "finished" && e.data["step"] == step)
            .map(|e| e.data.clone())
            .unwrap_or_else(|| panic!("{step}: {:?}", names(&told)))
    };
    assert_eq!(finished("spin")["status"], "failed");
    assert!(
        finished("spin")["error"]
            .as_str()
            .unwrap()
            .contains("plugin `hostile@0.1.0` was cancelled"),
        "{:?}",
        finished("spin")
    );
    assert_eq!(finished("after")["status"], "skipped");

    let (_, record) = s.json("GET", &format!("/v1/runs/{id}"), None, None);
    assert_eq!(record["status"], "cancelled");
    assert!(record.get("live").is_none());
    // The MLflow view of it: killed.
    let (_, mlflow) = s.json(
        "GET",
        &format!("/api/2.0/mlflow/runs/get?run_id={id}"),
        None,
        None,
    );
    assert_eq!(mlflow["run"]["info"]["status"], "KILLED");
    let (status, body) = s.json("POST", &path, Some(RUN), None);
    assert_eq!(
        (status, &body["error"]["code"]),
        (409, &json!("not_running"))
    );
    let (status, _) = s.json("POST", "/v1/runs/ffffffff/cancel", Some(RUN), None);
    assert_eq!(status, 404);
    // The scheme's name is not case-sensitive; another scheme is no token.
    for (scheme, want) in [("bearer", 404), ("BEARER", 404), ("Basic", 401)] {
        let auth = format!("{scheme} {RUN}");
        let (status, _, _) = s.send(
            "POST",
            "/v1/runs/ffffffff/cancel",
            &[("Authorization", &auth)],
            None,
        );
        assert_eq!(status, want, "{scheme}");
    }

    // The slot is free again. On SIGTERM the server cancels what runs and waits for it.
    let (status, started) = post(&s, spin, "application/yaml", "");
    assert_eq!(status, 202);
    let id = started["run"].as_str().unwrap().to_string();
    std::thread::sleep(std::time::Duration::from_millis(200));
    let mut s = s;
    s.terminate();
    assert!(s.child.wait().unwrap().success());
    let record = k.json(&["runs", "show", &id]);
    assert_eq!(record["status"], "cancelled");

    // A server killed mid-run: the next start marks the run interrupted, in Kiln's record
    // and in MLflow's view, and says so.
    let mut s = Server::start(&k, Some(&config(None, "max_running = 1")));
    let (status, started) = post(&s, spin, "application/yaml", "");
    assert_eq!(status, 202);
    let id = started["run"].as_str().unwrap().to_string();
    let t0 = std::time::Instant::now();
    while s.json("GET", &format!("/v1/runs/{id}"), None, None).1["steps"][0]["status"] != "running"
    {
        assert!(t0.elapsed().as_secs() < 30, "the step never started");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    s.child.kill().unwrap();
    s.child.wait().unwrap();
    let s = Server::start(&k, Some(&config(None, "max_running = 1")));
    let (_, record) = s.json("GET", &format!("/v1/runs/{id}"), None, None);
    assert_eq!(record["status"], "interrupted", "{record}");
    let (_, mlflow) = s.json(
        "GET",
        &format!("/api/2.0/mlflow/runs/get?run_id={id}"),
        None,
        None,
    );
    assert_eq!(mlflow["run"]["info"]["status"], "FAILED", "{mlflow}");
    assert!(
        mlflow["run"]["data"]["tags"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["key"] == "kiln.interrupted"),
        "{mlflow}"
    );
    // A run live in the server is not taken for an interrupted one by another process.
    let (status, started) = post(&s, spin, "application/yaml", "");
    assert_eq!(status, 202);
    let live = started["run"].as_str().unwrap().to_string();
    std::thread::sleep(std::time::Duration::from_millis(200));
    let listed = k.json(&["runs", "list"]);
    let status_of = |id: &str| {
        listed
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["id"] == id)
            .map(|r| r["status"].clone())
    };
    assert_eq!(status_of(&live), Some(json!("running")), "{listed}");
    assert_eq!(status_of(&id), Some(json!("interrupted")), "{listed}");
}

/// `kiln run FILE --server URL`: the file runs on the server (its registry, its workflow
/// root, its records), the client shows its progress and record as a local run's, and an
/// invalid file's diagnostics point at the client's file.
#[test]
fn kiln_run_with_server_runs_there_and_reports_as_a_local_run() {
    let (k, root) = seeded();
    let s = Server::start(&k, Some(&config(Some(&root), "")));
    let client = Kiln::new();
    let file = client.home().join("quickstart.yaml");
    std::fs::write(&file, quickstart()).unwrap();
    let run = |file: &Path, extra: &[&str], token: Option<&str>| {
        let mut cmd = client.cmd();
        cmd.arg("run").arg(file).args(["--server", &s.url]);
        if let Some(t) = token {
            cmd.args(["--token", t]);
        }
        cmd.args(extra).output().unwrap()
    };
    let out = run(&file, &["--json"], Some(RUN));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let record: J = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(record["status"], "succeeded", "{record}");
    assert_eq!(record["registered"]["model"], "diabetes-progression");
    let id = record["id"].as_str().unwrap();
    // It ran on the server; the client's own data directory has no run.
    let (status, there) = s.json("GET", &format!("/v1/runs/{id}"), Some(READ), None);
    assert_eq!(status, 200, "{there}");
    assert_eq!(there["status"], "succeeded");
    assert!(!client.ok(&["runs", "list"]).contains(id));

    // Without --json: each step's progress on stderr, the summary on stdout; every step
    // now comes from the server's cache.
    let out = run(&file, &[], Some(RUN));
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    for step in ["read", "split", "train", "evaluate"] {
        assert!(
            stderr
                .lines()
                .any(|l| l.contains(step) && l.contains("cached")),
            "{step}: {stderr}"
        );
    }
    assert!(String::from_utf8_lossy(&out.stdout).contains("succeeded"));

    // An invalid file: the server's diagnostics, at the client's file and line.
    let broken = client.home().join("broken.yaml");
    std::fs::write(
        &broken,
        quickstart().replace("test_fraction: 0.2", "tset_fraction: 0.2"),
    )
    .unwrap();
    let out = run(&broken, &[], Some(RUN));
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let line = quickstart()
        .lines()
        .position(|l| l.contains("test_fraction: 0.2"))
        .unwrap()
        + 1;
    assert!(
        stderr.contains(&format!("{}:{line}:", broken.display()))
            && stderr.contains("tset_fraction"),
        "{stderr}"
    );

    // The server's refusals, said: no token, a token without the run scope.
    for (token, status) in [(None, "401"), (Some(READ), "403")] {
        let out = run(&file, &[], token);
        assert!(!out.status.success());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains(&format!("the server refused ({status}")),
            "{stderr}"
        );
    }
    // The lockfile is this machine's: a run on the server refuses to act on it.
    let out = run(&file, &["--locked"], Some(RUN));
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--locked and --update"));
}

/// Ctrl-C on `kiln run --server` cancels the run on the server, and the client reports it
/// ended cancelled.
#[test]
fn ctrl_c_on_kiln_run_with_server_cancels_the_run_there() {
    use std::io::{BufRead, BufReader, Read};

    let (k, _) = seeded();
    publish_hostile(&k);
    let s = Server::start(&k, Some(&config(None, "")));
    let client = Kiln::new();
    let file = client.home().join("spin.yaml");
    std::fs::write(
        &file,
        "name: spin\nsteps:\n  spin:\n    uses: hostile@^0.1\n    with: { mode: sleep }\n    limits: { timeout: 120s }\n",
    )
    .unwrap();
    let mut child = client
        .cmd()
        .arg("run")
        .arg(&file)
        .args(["--server", &s.url, "--token", RUN])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    stderr.read_line(&mut line).unwrap();
    let id = line
        .trim()
        .strip_prefix("run ")
        .unwrap_or_else(|| panic!("no run id: {line}"))
        .to_string();
    let t0 = std::time::Instant::now();
    loop {
        let (_, doc) = s.json("GET", &format!("/v1/runs/{id}"), None, None);
        if doc["steps"][0]["status"] == "running" {
            break;
        }
        assert!(t0.elapsed().as_secs() < 30, "the step never started: {doc}");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let sent = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    let t0 = std::time::Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(t0.elapsed().as_secs() < 20, "the client did not end");
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let mut rest = String::new();
    stderr.read_to_string(&mut rest).unwrap();
    assert!(!status.success(), "{rest}");
    assert!(rest.contains("cancelling the run on the server"), "{rest}");
    let (_, doc) = s.json("GET", &format!("/v1/runs/{id}"), None, None);
    assert_eq!(doc["status"], "cancelled", "{doc}");
}
