//! The plugin host as a library: one host surviving many hostile calls, warm model
//! instances, trackers, capped records, and the allocator fallback.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use kiln::{
    bindings::{Dtype, Event, Metric, NamedValue, Tensor, Value},
    engine::{Allocator, ArtifactCache, EngineOptions, KilnEngine, Limits},
    host_impl::MAX_RECORDS,
    plugin::{CallOptions, Plugin, PluginError, PluginHost},
};
use kiln_test_artifacts as g;

fn host(options: &EngineOptions) -> PluginHost {
    let engine = KilnEngine::new(options).expect("engine");
    let cache = ArtifactCache::disabled(engine.engine());
    PluginHost::new(engine, cache).expect("host")
}

fn load(host: &PluginHost, path: &str) -> Arc<Plugin> {
    host.load_file(std::path::Path::new(path), None)
        .expect("load")
}

fn config(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn quick() -> CallOptions {
    CallOptions {
        limits: Limits {
            timeout: Duration::from_millis(200),
            memory: 32 << 20,
            ..Limits::default()
        },
        ..CallOptions::default()
    }
}

#[test]
fn one_host_survives_every_kind_of_failure() {
    let host = host(&EngineOptions::default());
    let hostile = load(&host, g::HOSTILE);
    let opts = quick();
    for _ in 0..5 {
        for (mode, check) in [
            (
                "loop",
                (|e: &PluginError| matches!(e, PluginError::Deadline { .. }))
                    as fn(&PluginError) -> bool,
            ),
            ("sleep", |e| matches!(e, PluginError::Deadline { .. })),
            ("bomb", |e| matches!(e, PluginError::Memory { .. })),
            ("trap", |e| matches!(e, PluginError::Trap { .. })),
            ("fail", |e| matches!(e, PluginError::Failed { .. })),
        ] {
            let err = hostile
                .run_step::<NamedValue>(&[], &config(&[("mode", mode)]), &opts)
                .expect_err(mode);
            assert!(check(&err), "{mode}: {err}");
            assert_eq!(err.plugin(), "hostile");
        }
    }
    let echo = hostile
        .run_step(
            &[NamedValue {
                name: "x".into(),
                value: Value::Scalar(2.5),
            }],
            &config(&[("mode", "echo")]),
            &opts,
        )
        .expect("the host still works");
    assert_eq!(
        echo.value,
        vec![NamedValue {
            name: "x".into(),
            value: Value::Scalar(2.5)
        }]
    );
}

#[test]
fn every_kind_of_value_passes_through_unchanged() {
    use kiln::bindings::{Column, ColumnData, Table};
    let host = host(&EngineOptions::default());
    let echo = load(&host, g::ECHO_STEP);
    let data: Vec<u8> = (0..1 << 20).map(|i| (i * 7 % 251) as u8).collect();
    let table = Table {
        columns: vec![
            Column {
                name: "x".into(),
                data: ColumnData::Float64(vec![1.5, 0.0]),
                valid: Some(vec![true, false]),
            },
            Column {
                name: "s".into(),
                data: ColumnData::Text(vec!["a".into(), "é".into()]),
                valid: None,
            },
            Column {
                name: "i".into(),
                data: ColumnData::Int64(vec![-3, i64::MAX]),
                valid: None,
            },
            Column {
                name: "b".into(),
                data: ColumnData::Boolean(vec![true, false]),
                valid: None,
            },
        ],
    };
    let values = [
        Value::Tensor(Tensor {
            dtype: Dtype::Uint8,
            shape: vec![1024, 1024],
            data,
        }),
        Value::Table(table),
        Value::Scalar(-0.25),
        Value::Text("naïve".into()),
        Value::Bytes(vec![0, 255, 7]),
        Value::Json(r#"{"a": [1, 2]}"#.into()),
    ];
    let inputs: Vec<NamedValue> = values
        .iter()
        .enumerate()
        .map(|(i, v)| NamedValue {
            name: format!("v{i}"),
            value: v.clone(),
        })
        .collect();
    let out = echo
        .run_step(&inputs, &config(&[]), &CallOptions::default())
        .unwrap();
    assert_eq!(out.value, inputs);
}

#[test]
fn records_of_a_flooding_plugin_are_capped() {
    let host = host(&EngineOptions::default());
    let hostile = load(&host, g::HOSTILE);
    let out = hostile
        .run_step::<NamedValue>(&[], &config(&[("mode", "spam")]), &CallOptions::default())
        .unwrap();
    assert_eq!(out.logs.len(), MAX_RECORDS);
    // The kept events, then one tag saying how many were left out.
    assert_eq!(out.tracking.len(), MAX_RECORDS + 1);
    assert_eq!(
        out.tracking[MAX_RECORDS],
        kiln::host_impl::TrackingEvent::Tag {
            key: "kiln.tracking.dropped".into(),
            value: "200000".into()
        }
    );
}

#[test]
fn a_model_instance_stays_warm_across_predictions() {
    let host = host(&EngineOptions::default());
    let runner = load(&host, g::LINEAR_RUNNER);
    let artifact =
        br#"{"format": "kiln-linear-model/1", "kind": "linear", "features": ["x"], "target": "y",
        "coefficients": [[2.0]], "intercepts": [1.0]}"#;
    let mut model = runner
        .load_model(artifact, &config(&[]), &CallOptions::default())
        .unwrap();
    let meta = model.metadata().unwrap();
    assert_eq!(meta.inputs[0].name, "features");
    assert!(
        meta.properties
            .contains(&("kind".to_string(), "linear".to_string()))
    );
    for i in 0..50 {
        let table = kiln::bindings::Table {
            columns: vec![kiln::bindings::Column {
                name: "x".into(),
                data: kiln::bindings::ColumnData::Float64(vec![i as f64]),
                valid: None,
            }],
        };
        let out = model
            .predict(&[NamedValue {
                name: "features".into(),
                value: Value::Table(table),
            }])
            .unwrap();
        let Value::Table(t) = &out.value[0].value else {
            panic!("not a table")
        };
        assert_eq!(
            t.columns[0].data,
            kiln::bindings::ColumnData::Float64(vec![1.0 + 2.0 * i as f64])
        );
    }
    let err = model.predict(&[]).unwrap_err();
    assert!(matches!(err, PluginError::Failed { .. }), "{err}");
    assert!(
        model.predict(&[]).is_err(),
        "a guest error does not poison the instance, it just fails again"
    );
}

#[test]
fn a_tracker_receives_and_checks_events() {
    let host = host(&EngineOptions::default());
    let tracker = load(&host, g::COUNTING_TRACKER);
    let metric = |v: f64| {
        Event::Metric(Metric {
            key: "loss".into(),
            value: v,
            step: 1,
            timestamp_ms: 0,
        })
    };
    let events = vec![
        Event::RunStarted("r1".into()),
        metric(0.5),
        Event::Param(("lr".into(), "0.1".into())),
        metric(0.25),
    ];
    let out = tracker
        .send_events("r1", &events, &config(&[]), &CallOptions::default())
        .unwrap();
    assert_eq!(out.logs[0].message, "run r1: 2 metrics, 2 other events");
    let err = tracker
        .send_events(
            "r1",
            &[metric(f64::NAN)],
            &config(&[]),
            &CallOptions::default(),
        )
        .unwrap_err();
    assert!(
        err.to_string().contains("metric `loss` is not finite"),
        "{err}"
    );
}

#[test]
fn a_plugin_of_another_role_cannot_be_called_as_this_one() {
    let host = host(&EngineOptions::default());
    let validator = load(&host, g::SCHEMA_VALIDATOR);
    let err = validator
        .run_step::<NamedValue>(&[], &config(&[]), &CallOptions::default())
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("it is a validator plugin, not a step plugin"),
        "{err}"
    );
}

#[test]
fn the_engine_falls_back_when_the_pool_cannot_be_reserved() {
    // Far more slots than any address space holds: the pool's reservation must fail.
    let options = EngineOptions {
        pool_instances: 1 << 26,
        ..EngineOptions::default()
    };
    let host = host(&options);
    assert_eq!(host.engine().allocator(), Allocator::OnDemand);
    let hostile = load(&host, g::HOSTILE);
    hostile
        .run_step::<NamedValue>(&[], &config(&[]), &CallOptions::default())
        .expect("runs on demand");

    let pooled = self::host(&EngineOptions::default());
    assert_eq!(pooled.engine().allocator(), Allocator::Pooling);
}

/// Runs `call` on its own thread and gives its result, failing (instead of hanging) if it
/// has not returned within a minute.
fn bounded<T: Send + 'static>(call: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || tx.send(call()));
    rx.recv_timeout(Duration::from_secs(60))
        .expect("the call did not return within a minute")
}

/// The shortest of three timings of `attempt`, which returns how long its call took, and
/// when its stop was due: a loaded machine may delay one attempt, not all three.
fn best_of_three(mut attempt: impl FnMut() -> (Duration, Duration)) -> (Duration, Duration) {
    (0..3)
        .map(|_| attempt())
        .min_by_key(|(took, due)| took.saturating_sub(*due))
        .unwrap()
}

/// A plugin waiting in a host call (a sleep, a read that never completes) is stopped at
/// its deadline, or within a tick of its cancel, as one computing is: the ends the issue of
/// plugins blocked in WASI asked for.
#[test]
fn a_plugin_waiting_in_a_host_call_is_stopped_at_its_deadline_or_on_cancel() {
    let host = Arc::new(host(&EngineOptions::default()));
    let hostile = load(&host, g::HOSTILE);
    let deadline = Duration::from_millis(300);
    let opts = CallOptions {
        limits: Limits {
            timeout: deadline,
            ..Limits::default()
        },
        ..CallOptions::default()
    };

    // A sleep, and a read of a FIFO nobody writes (its open never returns).
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fifo");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    let mut read_opts = opts.clone();
    read_opts.grants.dirs.push(kiln::plugin::DirGrant {
        host: dir.path().to_path_buf(),
        guest: "/data".into(),
        writable: false,
    });
    for (mode, opts) in [("sleep", &opts), ("read", &read_opts)] {
        let (took, due) = best_of_three(|| {
            let (hostile, opts) = (hostile.clone(), opts.clone());
            let cfg = config(&[("mode", mode), ("path", "/data/fifo")]);
            let start = Instant::now();
            let err = bounded(move || {
                hostile
                    .run_step::<NamedValue>(&[], &cfg, &opts)
                    .expect_err("stopped")
            });
            assert!(matches!(err, PluginError::Deadline { .. }), "{mode}: {err}");
            (start.elapsed(), deadline)
        });
        assert!(
            took >= due && took <= due + Duration::from_millis(100),
            "{mode}: stopped after {took:?}, due at {due:?}"
        );
    }

    // Cancelled while sleeping and while computing: within 100 ms of the flag.
    for mode in ["sleep", "loop"] {
        let (late, _) = best_of_three(|| {
            let flag = Arc::new(AtomicBool::new(false));
            let opts = CallOptions {
                cancel: Some(flag.clone()),
                limits: Limits {
                    timeout: Duration::from_secs(3600),
                    ..Limits::default()
                },
                ..CallOptions::default()
            };
            let hostile = hostile.clone();
            let call = std::thread::spawn(move || {
                let err = hostile
                    .run_step::<NamedValue>(&[], &config(&[("mode", mode)]), &opts)
                    .expect_err("cancelled");
                (err, Instant::now())
            });
            std::thread::sleep(Duration::from_millis(200));
            let raised = Instant::now();
            flag.store(true, Ordering::Relaxed);
            let (err, ended) = bounded(move || call.join().unwrap());
            assert!(
                matches!(err, PluginError::Cancelled { .. }),
                "{mode}: {err}"
            );
            (ended - raised, Duration::ZERO)
        });
        assert!(
            late <= Duration::from_millis(100),
            "{mode}: stopped {late:?} after the cancel"
        );
    }

    // A warm model instance sleeping in a prediction: stopped at its deadline, then
    // refused as trapped; a fresh instance serves.
    let runner = load(&host, g::HOSTILE_RUNNER);
    let mut model = runner.load_model(b"abc", &config(&[]), &opts).unwrap();
    let features = NamedValue {
        name: "features".into(),
        value: Value::Scalar(1.0),
    };
    let sleep = NamedValue {
        name: "mode".into(),
        value: Value::Text("sleep".into()),
    };
    let start = Instant::now();
    let (err, mut model) = bounded(move || {
        let err = model
            .predict(&[features.clone(), sleep])
            .expect_err("stopped");
        (err, model)
    });
    assert!(matches!(err, PluginError::Deadline { .. }), "{err}");
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );
    assert!(!model.usable());
    let features = NamedValue {
        name: "features".into(),
        value: Value::Scalar(1.0),
    };
    assert!(model.predict(std::slice::from_ref(&features)).is_err());
    let mut fresh = runner.load_model(b"abc", &config(&[]), &opts).unwrap();
    let out = fresh.predict(&[features]).unwrap();
    assert_eq!(out.value[0].name, "predictions");

    // The host is healthy after all of it.
    let echo = hostile
        .run_step::<NamedValue>(&[], &config(&[("mode", "echo")]), &opts)
        .unwrap();
    assert!(echo.value.is_empty());
}
