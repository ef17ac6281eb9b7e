//! Tracking benchmarks. Run with `cargo bench --bench tracking`; `bench/tracking.sh` runs
//! it beside an `mlflow server` and the MLflow Python client.
//!
//! - **In-process**: a plugin step tracks 100,000 metric points (one host call each); the
//!   run is timed from start until every point is durable in the tracked run's history.
//! - **Native HTTP load client** (when `KILN_BENCH_SERVERS` names servers, as
//!   `name=URL name=URL`): MLflow's `runs/log-batch` with 1,000 points per request, the
//!   bodies prepared beforehand so the client costs next to nothing, over 1 and 4
//!   keep-alive connections. Every server gets the same requests; the points each kept are
//!   counted afterwards through `metrics/get-history`.

use std::{path::Path, sync::Arc, time::Instant};

use kiln::{
    engine::{ArtifactCache, EngineOptions, KilnEngine},
    plugin::PluginHost,
    tracking::{Status, Store},
    workflow::{ExecOptions, Resolver, execute, prepare},
};
use serde_json::{Value as J, json};

const BATCH: u64 = 1000;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn in_process() {
    const POINTS: u64 = 100_000;
    let scratch = tempfile::tempdir().expect("temp dir");
    let data = scratch.path().join("home");
    let engine = KilnEngine::new(&EngineOptions::default()).expect("engine");
    let cache = ArtifactCache::new(engine.engine(), data.join("compiled"));
    let host = PluginHost::new(engine, cache).expect("host");
    let file = scratch.path().join("metrics.yaml");
    std::fs::write(
        &file,
        format!(
            "name: metrics\nsteps:\n  log:\n    uses: {}\n    with: {{ mode: metrics, count: {POINTS} }}\n    cache: false\n",
            Path::new(kiln_test_artifacts::HOSTILE).display()
        ),
    )
    .expect("write workflow");
    let no_registry = || anyhow::bail!("the benchmark uses no registry");
    let resolver = Resolver {
        host: &host,
        registry: &no_registry,
        update: false,
        models: None,
        bundle: None,
    };
    let prepared = prepare(&file, &resolver, false).expect("a valid workflow");
    let store = Arc::new(Store::open(&data).expect("store"));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let once = || {
        let t = Instant::now();
        let run = runtime
            .block_on(execute(
                Arc::new(prepared.plan.clone()),
                prepared.plugins.clone(),
                store.clone(),
                ExecOptions::default(),
                Arc::new(|_: &_| {}),
            ))
            .expect("run");
        let s = t.elapsed().as_secs_f64();
        assert_eq!(run.status, Status::Succeeded);
        let kept = store.metric_history(&run.id, "log.loss").expect("history");
        assert_eq!(kept.len() as u64, POINTS);
        s
    };
    once();
    let s = median((0..7).map(|_| once()).collect());
    println!("| measure | points/s |");
    println!("|---|---|");
    println!(
        "| a plugin tracks {POINTS} points in-process, until durable ({:.1} ms) | **{:.0}** |",
        s * 1e3,
        POINTS as f64 / s
    );
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into()
}

fn call(agent: &ureq::Agent, url: &str, body: Option<&str>) -> J {
    let mut answer = match body {
        Some(b) => agent
            .post(url)
            .header("Content-Type", "application/json")
            .send(b)
            .expect("POST"),
        None => agent.get(url).call().expect("GET"),
    };
    let status = answer.status();
    let doc: J = answer
        .body_mut()
        .with_config()
        .limit(1 << 30)
        .read_json()
        .expect("a JSON answer");
    assert!(status.is_success(), "{url}: {status} {doc}");
    doc
}

/// Every point of a metric, page by page.
fn history_len(agent: &ureq::Agent, base: &str, run: &str, key: &str) -> u64 {
    let mut n = 0;
    let mut token = String::new();
    loop {
        let mut url = format!(
            "{base}/api/2.0/mlflow/metrics/get-history?run_id={run}&metric_key={key}&max_results=25000"
        );
        if !token.is_empty() {
            url.push_str(&format!("&page_token={token}"));
        }
        let doc = call(agent, &url, None);
        n += doc["metrics"].as_array().map_or(0, Vec::len) as u64;
        match doc["next_page_token"].as_str() {
            Some(t) if !t.is_empty() => token = t.to_string(),
            _ => return n,
        }
    }
}

/// Logs `points` points over `connections` connections; returns points/s.
fn load(base: &str, points: u64, connections: u64) -> f64 {
    let a = agent();
    let experiment = call(
        &a,
        &format!("{base}/api/2.0/mlflow/experiments/create"),
        Some(&json!({"name": format!("load-{}", uuid::Uuid::now_v7().simple())}).to_string()),
    )["experiment_id"]
        .as_str()
        .expect("an experiment id")
        .to_string();
    let run = call(
        &a,
        &format!("{base}/api/2.0/mlflow/runs/create"),
        Some(&json!({"experiment_id": experiment, "start_time": 1}).to_string()),
    )["run"]["info"]["run_id"]
        .as_str()
        .expect("a run id")
        .to_string();
    let batches = points / BATCH;
    // The bodies, prepared beforehand: what is timed is the server.
    let bodies: Vec<String> = (0..batches)
        .map(|b| {
            let metrics: Vec<J> = (b * BATCH..(b + 1) * BATCH)
                .map(|s| json!({"key": "loss", "value": 1.0 / (s + 1) as f64, "timestamp": 1_700_000_000_000u64 + s, "step": s}))
                .collect();
            json!({"run_id": run, "metrics": metrics}).to_string()
        })
        .collect();
    let url = format!("{base}/api/2.0/mlflow/runs/log-batch");
    let t = Instant::now();
    std::thread::scope(|scope| {
        for c in 0..connections {
            let (bodies, url) = (&bodies, &url);
            scope.spawn(move || {
                let a = agent();
                for body in bodies.iter().skip(c as usize).step_by(connections as usize) {
                    call(&a, url, Some(body));
                }
            });
        }
    });
    let s = t.elapsed().as_secs_f64();
    let kept = history_len(&a, base, &run, "loss");
    assert_eq!(kept, batches * BATCH, "{base} kept {kept} points");
    (batches * BATCH) as f64 / s
}

fn main() {
    in_process();
    let Ok(servers) = std::env::var("KILN_BENCH_SERVERS") else {
        return;
    };
    let points: u64 = std::env::var("KILN_BENCH_POINTS")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(200_000);
    println!();
    println!(
        "| native load client ({points} points, batches of {BATCH}) | connections | points/s |"
    );
    println!("|---|---|---|");
    for server in servers.split_whitespace() {
        let (name, base) = server.split_once('=').expect("name=URL");
        for connections in [1, 4] {
            let rate = load(base, points, connections);
            println!("| {name} | {connections} | {rate:.0} |");
        }
    }
}
