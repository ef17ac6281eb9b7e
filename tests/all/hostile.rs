//! The hostile-plugin battery: one host against guests in Rust, Python and JavaScript (steps)
//! and a Rust model runner, validator and tracker that loop, sleep, block in a read, eat memory, overflow their
//! stack, trap, exit (with status 3), return a 200 MiB output, and reach for files, the environment and the
//! network. Each is stopped or refused within its deadline + 100 ms with an error that says
//! what happened, nothing leaks out of its grant, and the host serves the next call.
//!
//! The Python and JavaScript guests are built from `tests/polyglot/` with `kiln plugin
//! build` (the toolchains of `scripts/toolchains.sh`).

use std::{
    net::TcpListener,
    path::{Path, PathBuf},
    sync::Arc,
    time::{Duration, Instant},
};

use kiln::{
    bindings::{Config, NamedValue, Value},
    engine::{ArtifactCache, EngineOptions, KilnEngine, Limits},
    plugin::{CallOptions, DirGrant, Plugin, PluginError, PluginHost, Role},
};
use kiln_test_artifacts as g;

const DEADLINE: Duration = Duration::from_millis(500);
const SLACK: Duration = Duration::from_millis(100);

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn host() -> PluginHost {
    let engine = KilnEngine::new(&EngineOptions::default()).expect("engine");
    let cache = ArtifactCache::new(engine.engine(), crate::shared_code());
    PluginHost::new(engine, cache).expect("host")
}

/// What a call must end in.
#[derive(Debug, Clone, Copy)]
enum Expect {
    Deadline,
    Memory,
    /// A wasm trap whose message holds this text.
    Trap(&'static str),
    /// The process exited with this status instead of returning (WASI 0.2's `exit` carries
    /// success or failure only: every failing status arrives as 1).
    Exit(i32),
    /// An error the guest returned (or a trap), holding this text.
    Refused(&'static str),
    /// A stack overflow: a trap, or the language's own recursion error.
    Stack,
    /// Success, with this text output (`None`: any).
    Ok(Option<&'static str>),
}

/// The directory granted as `/data`: a file, a FIFO nobody writes, and a symlink to a file
/// outside the grant; and that outside file.
struct Grant {
    _dir: tempfile::TempDir,
    inside: PathBuf,
    secret: &'static str,
}

impl Grant {
    fn new() -> Grant {
        let dir = tempfile::tempdir().unwrap();
        let inside = dir.path().join("inside");
        let outside = dir.path().join("outside");
        std::fs::create_dir_all(&inside).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(inside.join("ok.txt"), "inside the grant").unwrap();
        let secret = "a secret outside the grant";
        std::fs::write(outside.join("secret.txt"), secret).unwrap();
        std::os::unix::fs::symlink(outside.join("secret.txt"), inside.join("link")).unwrap();
        std::os::unix::fs::symlink("../outside", inside.join("dirlink")).unwrap();
        let made = std::process::Command::new("mkfifo")
            .arg(inside.join("fifo"))
            .status()
            .unwrap();
        assert!(made.success());
        Grant {
            _dir: dir,
            inside,
            secret,
        }
    }

    fn opts(&self, memory: u64) -> CallOptions {
        let mut opts = CallOptions {
            limits: Limits {
                timeout: DEADLINE,
                memory,
                ..Limits::default()
            },
            ..CallOptions::default()
        };
        opts.grants.dirs.push(DirGrant {
            host: self.inside.clone(),
            guest: "/data".into(),
            writable: false,
        });
        opts
    }
}

fn config(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Runs `call` on its own thread and fails the test if it has not returned in 30 s.
fn bounded<T: Send + 'static>(call: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(call());
    });
    rx.recv_timeout(Duration::from_secs(30))
        .expect("a hostile call never returned")
}

/// Checks one outcome against what was expected; a success must not hold the secret.
fn check(label: &str, expect: Expect, result: Result<Vec<NamedValue>, PluginError>, secret: &str) {
    let text = |values: &[NamedValue]| -> String {
        values
            .iter()
            .filter_map(|v| match &v.value {
                Value::Text(t) => Some(t.clone()),
                _ => None,
            })
            .collect::<Vec<_>>()
            .join("")
    };
    match (&expect, &result) {
        (Expect::Deadline, Err(PluginError::Deadline { .. }))
        | (Expect::Memory, Err(PluginError::Memory { .. })) => {}
        (Expect::Trap(what), Err(e @ PluginError::Trap { .. })) => {
            assert!(e.to_string().contains(what), "{label}: {e}")
        }
        (Expect::Exit(status), Err(e @ PluginError::Exited { .. })) => {
            assert!(
                e.to_string()
                    .contains(&format!("exited with status {status}")),
                "{label}: {e}"
            )
        }
        (
            Expect::Refused(what),
            Err(e @ (PluginError::Failed { .. } | PluginError::Trap { .. })),
        ) => {
            assert!(e.to_string().contains(what), "{label}: {e}")
        }
        (Expect::Stack, Err(e @ (PluginError::Failed { .. } | PluginError::Trap { .. }))) => {
            let message = e.to_string().to_lowercase();
            assert!(
                message.contains("stack") || message.contains("recursion"),
                "{label}: {e}"
            )
        }
        (Expect::Ok(want), Ok(values)) => {
            if let Some(want) = want {
                assert_eq!(text(values), *want, "{label}");
            }
        }
        _ => panic!("{label}: expected {expect:?}, got {result:?}"),
    }
    if let Ok(values) = &result {
        assert!(!text(values).contains(secret), "{label}: the secret leaked");
    }
}

/// The mode that does no harm to a guest of this role: what the host must still serve
/// after an attack.
fn harmless(role: Role) -> &'static str {
    match role {
        Role::Validator => "pass",
        Role::Tracker => "accept",
        Role::Step | Role::ModelRunner => "echo",
    }
}

/// Calls a guest as its role is called, with `config` and no inputs or events; what it
/// answered, as values whose texts the checks read (a validator's check details; a tracker
/// answers nothing). Model runners are attacked through their loaded models instead.
fn call(
    plugin: &Plugin,
    config: &Config,
    opts: &CallOptions,
) -> Result<Vec<NamedValue>, PluginError> {
    match plugin.role() {
        Role::Step => plugin
            .run_step::<NamedValue>(&[], config, opts)
            .map(|o| o.value),
        Role::Validator => plugin.validate::<NamedValue>(&[], config, opts).map(|o| {
            o.value
                .into_iter()
                .map(|check| NamedValue {
                    name: check.name,
                    value: Value::Text(check.detail),
                })
                .collect()
        }),
        Role::Tracker => plugin
            .send_events("hostile-run", &[], config, opts)
            .map(|_| Vec::new()),
        Role::ModelRunner => panic!("a model runner is attacked through a loaded model"),
    }
}

/// A guest under attack: the plugin, the grant it gets and its memory cap.
struct Target<'a> {
    plugin: Arc<Plugin>,
    grant: &'a Grant,
    memory: u64,
}

impl Target<'_> {
    /// Calls `mode` three times (timing the best) and checks each outcome, then that the
    /// host serves the next call.
    fn attack(&self, mode: &str, extra: &[(&str, &str)], expect: Expect) {
        let label = format!("{} {mode} {extra:?}", self.plugin.name());
        let mut best = Duration::MAX;
        for _ in 0..3 {
            let (plugin, opts) = (self.plugin.clone(), self.grant.opts(self.memory));
            let mut pairs = vec![("mode", mode)];
            pairs.extend_from_slice(extra);
            let cfg = config(&pairs);
            let started = Instant::now();
            let result = bounded(move || call(&plugin, &cfg, &opts));
            best = best.min(started.elapsed());
            check(&label, expect, result, self.grant.secret);
            if best <= DEADLINE + SLACK {
                break;
            }
        }
        assert!(best <= DEADLINE + SLACK, "{label}: took {best:?}");
        let calm = config(&[("mode", harmless(self.plugin.role()))]);
        if let Err(e) = call(&self.plugin, &calm, &self.grant.opts(self.memory)) {
            panic!("{label}: a harmless call after it failed: {e}");
        }
    }

    /// What a successful call that answered `text` looks like: a tracker answers nothing.
    fn answers(&self, text: &'static str) -> Expect {
        match self.plugin.role() {
            Role::Tracker => Expect::Ok(None),
            _ => Expect::Ok(Some(text)),
        }
    }

    /// The attacks every guest makes, whatever its language and role: `recurse` and `trap`
    /// end as the language ends them.
    fn common(&self, recurse: Expect, trap: Expect) {
        self.attack("loop", &[], Expect::Deadline);
        self.attack("bomb", &[], Expect::Memory);
        self.attack("recurse", &[], recurse);
        self.attack("trap", &[], trap);
        self.attack("env", &[], self.answers(""));
        // An output larger than the memory cap cannot be made; one within it passes whole.
        self.attack("huge", &[("mib", "200")], Expect::Memory);
        self.attack("huge", &[("mib", "4")], Expect::Ok(None));
        // Files: inside the grant, read; outside it, by path, `..` or a symlink: refused.
        self.attack(
            "read",
            &[("path", "/data/ok.txt")],
            self.answers("inside the grant"),
        );
        for path in [
            "/data/link",
            "/data/dirlink/secret.txt",
            "/data/../outside/secret.txt",
            "/etc/passwd",
        ] {
            self.attack("read", &[("path", path)], Expect::Refused(""));
        }
    }

    /// What a guest that can block and exit (Rust, Python; not JavaScript) also tries:
    /// sleeping, a read that never completes, exiting, and a TCP connection to a listener
    /// that must never see it.
    fn blocking_and_leaving(&self) {
        self.attack("sleep", &[], Expect::Deadline);
        self.attack("read", &[("path", "/data/fifo")], Expect::Deadline);
        self.attack("exit", &[], Expect::Exit(1));
        let (listener, addr) = listener();
        self.attack(
            "connect",
            &[("path", &addr)],
            Expect::Refused("Permission denied"),
        );
        no_connection(&listener, self.plugin.name());
    }
}

/// A listener the guests try to reach: it must never see a connection.
fn listener() -> (TcpListener, String) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    (listener, addr)
}

fn no_connection(listener: &TcpListener, label: &str) {
    match listener.accept() {
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
        other => panic!("{label}: the listener saw {other:?}"),
    }
}

#[test]
fn a_rust_step_and_model_runner_are_stopped_or_refused_in_time() {
    let host = host();
    let grant = Grant::new();
    let step = Target {
        plugin: host.load_file(Path::new(g::HOSTILE), None).unwrap(),
        grant: &grant,
        memory: 64 << 20,
    };
    step.common(Expect::Stack, Expect::Trap("deliberate panic"));
    step.blocking_and_leaving();

    // A warm model instance: each attack ends its instance, and a fresh one serves.
    let runner = host.load_file(Path::new(g::HOSTILE_RUNNER), None).unwrap();
    for (mode, expect) in [
        ("loop", Expect::Deadline),
        ("sleep", Expect::Deadline),
        ("bomb", Expect::Memory),
        ("recurse", Expect::Stack),
        ("trap", Expect::Trap("unreachable")),
        ("exit", Expect::Exit(1)),
    ] {
        let opts = grant.opts(step.memory);
        let mut model = runner.load_model(b"abc", &config(&[]), &opts).unwrap();
        let inputs = vec![
            NamedValue {
                name: "features".into(),
                value: Value::Scalar(1.0),
            },
            NamedValue {
                name: "mode".into(),
                value: Value::Text(mode.into()),
            },
        ];
        let started = Instant::now();
        let (result, model) = bounded(move || {
            let result = model.predict(&inputs).map(|o| o.value);
            (result, model)
        });
        let took = started.elapsed();
        check(
            &format!("hostile-runner {mode}"),
            expect,
            result,
            grant.secret,
        );
        assert!(
            took <= DEADLINE + SLACK,
            "hostile-runner {mode}: took {took:?}"
        );
        assert!(
            !model.usable(),
            "hostile-runner {mode}: the instance is still used"
        );
        let mut fresh = runner.load_model(b"abc", &config(&[]), &opts).unwrap();
        let features = NamedValue {
            name: "features".into(),
            value: Value::Scalar(1.0),
        };
        assert!(fresh.predict(&[features]).is_ok(), "after {mode}");
    }
}

/// The other two roles, in Rust: a validator and a tracker make every attack a step
/// makes, and are stopped or refused the same way.
#[test]
fn a_rust_validator_and_tracker_are_stopped_or_refused_in_time() {
    let host = host();
    let grant = Grant::new();
    for (wasm, role) in [
        (g::HOSTILE_VALIDATOR, Role::Validator),
        (g::HOSTILE_TRACKER, Role::Tracker),
    ] {
        let target = Target {
            plugin: host.load_file(Path::new(wasm), Some(role)).unwrap(),
            grant: &grant,
            memory: 64 << 20,
        };
        target.common(Expect::Stack, Expect::Trap("deliberate panic"));
        target.blocking_and_leaving();
    }
}

#[test]
fn a_python_step_is_stopped_or_refused_in_time() {
    let wasm =
        crate::polyglot::build_project("hostile-py", &repo().join("tests/polyglot/hostile-py"));
    let host = host();
    let grant = Grant::new();
    // CPython itself takes some 30 MiB. Its frames live on the heap: with its recursion
    // limit lifted, unbounded recursion is a memory bomb.
    let step = Target {
        plugin: host.load_file(&wasm, None).unwrap(),
        grant: &grant,
        memory: 128 << 20,
    };
    step.common(Expect::Memory, Expect::Refused("deliberate failure"));
    step.blocking_and_leaving();
}

#[test]
fn a_javascript_step_is_stopped_or_refused_in_time() {
    let wasm =
        crate::polyglot::build_project("hostile-js", &repo().join("tests/polyglot/hostile-js"));
    let host = host();
    let grant = Grant::new();
    let step = Target {
        plugin: host.load_file(&wasm, None).unwrap(),
        grant: &grant,
        memory: 128 << 20,
    };
    step.common(Expect::Stack, Expect::Refused("deliberate failure"));
}
