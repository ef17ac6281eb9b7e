//! Tracking over HTTP against a real `kiln serve`: the CLI through the native /v1 API,
//! many concurrent writers, and a `kill -9` in the middle of ingest.

use std::path::Path;

use serde_json::{Value as J, json};

use crate::{Kiln, Server};

const TOKEN: &str = "publish-token-0123456789";

fn seed() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("registry-data")
}

#[test]
fn the_cli_reads_runs_and_moves_aliases_through_the_v1_api() {
    let k = Kiln::new();
    let demo = k
        .cmd()
        .env("KILN_SEED", seed())
        .arg("demo")
        .output()
        .unwrap();
    assert!(
        demo.status.success(),
        "{}",
        String::from_utf8_lossy(&demo.stderr)
    );
    let server = Server::start(
        &k,
        Some(&format!(
            "[[tokens]]\ntoken = \"{TOKEN}\"\nscopes = [\"publish\"]\n"
        )),
    );
    // The same command, against the data directory and against the server.
    let both = |args: &[&str]| -> (J, J) {
        let local = k.json(args);
        let mut remote = args.to_vec();
        remote.extend(["--server", &server.url]);
        (local, k.json(&remote))
    };

    let (local, remote) = both(&["runs", "list"]);
    assert_eq!(local, remote);
    assert_eq!(remote[0]["workflow"], "diabetes-progression");
    assert_eq!(remote[0]["steps"], 8);
    let id = remote[0]["id"].as_str().unwrap().to_string();
    let (local, remote) = both(&["runs", "show", &id[..8]]);
    assert_eq!(local, remote);
    assert_eq!(remote["id"], id.as_str());
    let (local, remote) = both(&["model", "show", "diabetes-progression"]);
    assert_eq!(local, remote);
    assert_eq!(remote["versions"][0]["runner"]["name"], "linear-runner");
    // The pipeline ran before it was registered: its signature is the raw rows its first
    // stage reads (the ten measurements, not the target), and the runner's outputs.
    let signature = &remote["versions"][0]["signature"];
    assert_eq!(signature["inputs"][0]["name"], "table", "{signature}");
    assert_eq!(signature["inputs"][0]["kind"], "table", "{signature}");
    assert_eq!(
        signature["properties"]["input.table"],
        "age float64, sex float64, bmi float64, bp float64, s1 float64, s2 float64, s3 float64, s4 float64, s5 float64, s6 float64",
        "{signature}"
    );
    assert_eq!(
        signature["outputs"][0]["name"], "predictions",
        "{signature}"
    );
    let (local, remote) = both(&["model", "list"]);
    assert_eq!(local, remote);
    let value = k.ok(&[
        "runs",
        "get",
        &id,
        "evaluate.metrics",
        "--server",
        &server.url,
    ]);
    assert_eq!(value, k.ok(&["runs", "get", &id, "evaluate.metrics"]));

    // Errors come back as the server's message.
    let err = k.fails(&["runs", "show", "feedbeef", "--server", &server.url]);
    assert!(
        err.contains("404") && err.contains("no run `feedbeef`"),
        "{err}"
    );
    let err = k.fails(&["model", "show", "nope", "--server", &server.url]);
    assert!(err.contains("404"), "{err}");

    // Moving an alias takes the publish scope.
    let m = "diabetes-progression";
    let set = ["model", "alias", "set", m, "production", "1"];
    let err = k.fails(&[&set[..], &["--server", &server.url]].concat());
    assert!(err.contains("401"), "{err}");
    let remote =
        |args: &[&str]| k.ok(&[args, &["--server", &server.url, "--token", TOKEN]].concat());
    let out = remote(&set);
    assert!(out.contains("production → version 1"), "{out}");
    let err = k.fails(&[
        "model",
        "alias",
        "set",
        m,
        "production",
        "9",
        "--server",
        &server.url,
        "--token",
        TOKEN,
    ]);
    assert!(err.contains("has no version 9"), "{err}");
    remote(&["model", "alias", "delete", m, "production"]);
    let out = remote(&["model", "alias", "rollback", m, "production"]);
    assert!(out.contains("rolled back to version 1"), "{out}");
    let (local, remote) = both(&["model", "alias", "history", m, "production"]);
    assert_eq!(local, remote);
    let versions: Vec<&J> = remote
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["version"])
        .collect();
    assert_eq!(versions, [&json!(1), &J::Null, &json!(1)]);
    // The whole model's history includes the demo's `candidate`.
    let (_, all) = both(&["model", "alias", "history", m]);
    assert_eq!(all.as_array().unwrap().len(), 4, "{all}");
}

/// MLflow's API: a POST, expecting success.
fn post(server: &Server, path: &str, body: J) -> J {
    let (status, answer) =
        server.send_json("POST", &format!("/api/2.0/mlflow/{path}"), None, &body);
    assert_eq!(status, 200, "{path}: {answer}");
    answer
}

/// A new MLflow run in `experiment`: its id.
pub(crate) fn create_run(server: &Server, experiment: &str) -> String {
    let run = post(
        server,
        "runs/create",
        json!({"experiment_id": experiment, "start_time": 1}),
    );
    run["run"]["info"]["run_id"].as_str().unwrap().to_string()
}

/// `n` points of `key` at steps `first..first + n`, as a log-batch body.
fn batch(run: &str, key: &str, first: u64, n: u64) -> J {
    let metrics: Vec<J> = (first..first + n)
        .map(|s| json!({"key": key, "value": s as f64 * 0.5, "timestamp": 1000 + s, "step": s}))
        .collect();
    json!({"run_id": run, "metrics": metrics})
}

fn history_steps(server: &Server, run: &str, key: &str) -> Vec<u64> {
    let (status, h) = server.json(
        "GET",
        &format!(
            "/api/2.0/mlflow/metrics/get-history?run_id={run}&metric_key={key}&max_results=100000"
        ),
        None,
        None,
    );
    assert_eq!(status, 200, "{h}");
    let mut steps: Vec<u64> = h["metrics"]
        .as_array()
        .map(|m| m.iter().map(|p| p["step"].as_u64().unwrap()).collect())
        .unwrap_or_default();
    steps.sort_unstable();
    steps
}

#[test]
fn many_concurrent_writers_lose_nothing() {
    let k = Kiln::new();
    let server = Server::start(&k, None);
    const CLIENTS: u64 = 16;
    const BATCHES: u64 = 20;
    const POINTS: u64 = 250;
    let shared = create_run(&server, "0");
    std::thread::scope(|scope| {
        for c in 0..CLIENTS {
            let (server, shared) = (&server, &shared);
            scope.spawn(move || {
                let own = create_run(server, "0");
                for b in 0..BATCHES {
                    // Each client's own run, and one run every client writes to at once:
                    // its own key, and a key all of them share (disjoint steps).
                    post(
                        server,
                        "runs/log-batch",
                        batch(&own, "loss", b * POINTS, POINTS),
                    );
                    post(
                        server,
                        "runs/log-batch",
                        batch(shared, &format!("c{c}"), b * POINTS, POINTS),
                    );
                    let first = (c * BATCHES + b) * POINTS;
                    post(
                        server,
                        "runs/log-batch",
                        batch(shared, "all", first, POINTS),
                    );
                    post(
                        server,
                        "runs/log-parameter",
                        json!({"run_id": shared, "key": format!("p{c}.{b}"), "value": "v"}),
                    );
                }
                let steps = history_steps(server, &own, "loss");
                assert_eq!(steps, (0..BATCHES * POINTS).collect::<Vec<_>>());
            });
        }
        // Creating one experiment name from many clients at once: exactly one wins.
        let created: Vec<u16> = std::thread::scope(|inner| {
            let handles: Vec<_> = (0..8)
                .map(|_| {
                    inner.spawn(|| {
                        server
                            .json(
                                "POST",
                                "/api/2.0/mlflow/experiments/create",
                                None,
                                Some(br#"{"name": "contended"}"#.to_vec()),
                            )
                            .0
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert_eq!(
            created.iter().filter(|s| **s == 200).count(),
            1,
            "{created:?}"
        );
    });
    for c in 0..CLIENTS {
        let steps = history_steps(&server, &shared, &format!("c{c}"));
        assert_eq!(
            steps,
            (0..BATCHES * POINTS).collect::<Vec<_>>(),
            "client {c}"
        );
    }
    let all = history_steps(&server, &shared, "all");
    assert_eq!(all, (0..CLIENTS * BATCHES * POINTS).collect::<Vec<_>>());
    let run = server.json(
        "GET",
        &format!("/api/2.0/mlflow/runs/get?run_id={shared}"),
        None,
        None,
    );
    assert_eq!(
        run.1["run"]["data"]["params"].as_array().unwrap().len() as u64,
        CLIENTS * BATCHES
    );
}

#[test]
fn a_kill_9_mid_ingest_loses_no_acknowledged_write() {
    use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
    const POINTS: u64 = 1000;
    let k = Kiln::new();
    let mut server = Server::start(&k, None);
    let run = create_run(&server, "0");
    // Per writer: how many of its batches the server has acknowledged (answered 200).
    let acks = [AtomicU64::new(0), AtomicU64::new(0)];
    std::thread::scope(|scope| {
        for (w, acked) in acks.iter().enumerate() {
            let (url, run) = (server.url.clone(), &run);
            scope.spawn(move || {
                let agent: ureq::Agent = ureq::Agent::config_builder()
                    .http_status_as_error(false)
                    .build()
                    .into();
                for b in 0.. {
                    let body = batch(run, &format!("w{w}"), b * POINTS, POINTS);
                    let answer = agent
                        .post(format!("{url}/api/2.0/mlflow/runs/log-batch"))
                        .header("Content-Type", "application/json")
                        .send(body.to_string().as_bytes());
                    match answer {
                        Ok(r) if r.status() == 200 => acked.store(b + 1, SeqCst),
                        // The server is gone.
                        _ => break,
                    }
                }
            });
        }
        // Let ingest get going, then kill the server without warning.
        while acks.iter().any(|a| a.load(SeqCst) < 20) {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        server.child.kill().unwrap();
        server.child.wait().unwrap();
    });
    let restarted = Server::start(&k, None);
    for (w, acked) in acks.iter().enumerate() {
        let acked = acked.load(SeqCst);
        let steps = history_steps(&restarted, &run, &format!("w{w}"));
        // Every acknowledged batch is there; the one in flight may be too, but only whole
        // (a batch is one transaction).
        assert!(
            steps.len() as u64 >= acked * POINTS,
            "writer {w}: {} points kept, {acked} batches acknowledged",
            steps.len()
        );
        assert_eq!(steps, (0..steps.len() as u64).collect::<Vec<_>>());
        assert_eq!(steps.len() as u64 % POINTS, 0);
    }
    // The store still takes writes after the crash.
    post(&restarted, "runs/log-batch", batch(&run, "after", 0, 10));
    assert_eq!(history_steps(&restarted, &run, "after").len(), 10);
}

#[test]
fn tracker_plugins_receive_every_event_and_plugin_metrics_reach_the_tracked_run() {
    use kiln_test_artifacts as g;
    let k = Kiln::new();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("spam.yaml");
    // The hostile guest's `spam` mode logs 300,000 points, of which an invocation keeps
    // the first 100,000.
    std::fs::write(
        &file,
        format!(
            "name: spam\nsteps:\n  spam:\n    uses: {}\n    with: {{ mode: spam }}\ntrackers:\n  count:\n    uses: {}\n",
            g::HOSTILE,
            g::COUNTING_TRACKER
        ),
    )
    .unwrap();
    let run = k.json(&["run", file.to_str().unwrap()]);
    assert_eq!(run["status"], "succeeded", "{run}");
    let tracker = &run["trackers"][0];
    assert_eq!(tracker["error"], J::Null, "{tracker}");
    // run-started; the step's 100,000 points, its mode param, the tag saying how many
    // points were left out, its status tag; run-finished.
    assert_eq!(tracker["events"], 100_005, "{tracker}");
    assert_eq!(tracker["batches"], 3, "{tracker}");
    let logs: Vec<&str> = tracker["logs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap())
        .collect();
    let id = run["id"].as_str().unwrap();
    assert!(
        logs.contains(&format!("info: run {id}: 100000 metrics, 3 other events").as_str()),
        "{logs:?}"
    );
    // The run record keeps each key's latest point; the tracked run every point.
    let step = &run["steps"][0];
    assert_eq!(step["metrics"].as_array().unwrap().len(), 1);
    assert_eq!(step["metrics"][0]["step"], 99_999);
    let store = kiln::tracking::Store::open(k.home()).unwrap();
    let history = store.metric_history(id, "spam.spam").unwrap();
    assert_eq!(history.len(), 100_000);
    assert!(history.iter().enumerate().all(|(i, p)| p.step == i as i64));
    assert_eq!(
        store.tracked_run(id).unwrap().metrics["spam.spam"].step,
        99_999
    );
}

#[test]
fn a_workflow_run_records_its_git_commit_and_the_datasets_it_read() {
    use kiln_test_artifacts as g;
    let k = Kiln::new();
    let repo = tempfile::tempdir().unwrap();
    let git = |args: &[&str]| {
        let out = std::process::Command::new("git")
            .current_dir(repo.path())
            .args(["-c", "user.name=kiln", "-c", "user.email=kiln@example.org"])
            .args(args)
            .output()
            .expect("git");
        assert!(out.status.success(), "git {args:?}: {out:?}");
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    };
    std::fs::create_dir(repo.path().join("data")).unwrap();
    std::fs::write(repo.path().join("data/rows.txt"), "1,2,3\n").unwrap();
    let file = repo.path().join("read.yaml");
    std::fs::write(
        &file,
        format!(
            "name: reader\nsteps:\n  read:\n    uses: {}\n    with: {{ mode: read, path: data/rows.txt }}\n    grants: {{ dirs: [data] }}\n",
            g::HOSTILE
        ),
    )
    .unwrap();
    git(&["init", "-q"]);
    git(&["add", "."]);
    git(&["commit", "-qm", "data"]);
    let head = git(&["rev-parse", "HEAD"]);

    let first = k.json(&["run", file.to_str().unwrap()]);
    assert_eq!(first["git_commit"], head.as_str(), "{first}");
    let dataset = &first["steps"][0]["datasets"][0];
    assert_eq!(dataset["path"], "data");
    // The data changes: the next run reads another digest.
    std::fs::write(repo.path().join("data/rows.txt"), "4,5,6\n").unwrap();
    let second = k.json(&["run", file.to_str().unwrap()]);
    assert_ne!(
        second["steps"][0]["datasets"][0]["digest"],
        dataset["digest"]
    );

    let store = kiln::tracking::Store::open(k.home()).unwrap();
    for run in [&first, &second] {
        let tracked = store.tracked_run(run["id"].as_str().unwrap()).unwrap();
        assert_eq!(tracked.tags["mlflow.source.git.commit"], head);
        assert_eq!(tracked.inputs.len(), 1);
        assert_eq!(tracked.inputs[0].name, "data");
        assert_eq!(
            tracked.inputs[0].digest,
            run["steps"][0]["datasets"][0]["digest"].as_str().unwrap()
        );
        assert_eq!(tracked.inputs[0].tags["kiln.step"], "read");
    }
    drop(store);
    let shown = k.ok(&["runs", "show", first["id"].as_str().unwrap()]);
    assert!(shown.contains(&format!("commit  {head}")), "{shown}");
    assert!(shown.contains("dataset  data sha256:"), "{shown}");
}
