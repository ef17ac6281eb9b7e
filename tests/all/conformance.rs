//! The conformance suite every plugin of a role passes, whatever its language: the host
//! calls each export with normal, empty and malformed inputs and checks that results are
//! well formed and that every refusal is a structured error, never a trap.

use std::sync::Arc;

use kiln::{
    bindings::{
        Check, Column, ColumnData, Descriptor, Dtype, Event, Metric, NamedValue, Table, Tensor,
        Value, ValueKind,
    },
    plugin::{CallOptions, Plugin, PluginError, Role},
};

/// A plugin under test with inputs and config it accepts.
pub struct Subject {
    pub plugin: Arc<Plugin>,
    pub inputs: Vec<NamedValue>,
    pub config: Vec<(String, String)>,
    /// For a model runner: an artifact it loads.
    pub artifact: Vec<u8>,
    pub opts: CallOptions,
}

/// One sample value of every kind.
fn samples() -> Vec<(ValueKind, Value)> {
    vec![
        (
            ValueKind::Tensor,
            Value::Tensor(Tensor {
                dtype: Dtype::Float64,
                shape: vec![2],
                data: [1.5f64, -2.0]
                    .iter()
                    .flat_map(|v| v.to_le_bytes())
                    .collect(),
            }),
        ),
        (
            ValueKind::Table,
            Value::Table(Table {
                columns: vec![Column {
                    name: "unrelated".into(),
                    data: ColumnData::Text(vec!["a".into(), "b".into()]),
                    valid: None,
                }],
            }),
        ),
        (ValueKind::Scalar, Value::Scalar(f64::NAN)),
        (ValueKind::Text, Value::Text("\u{0}not a value".into())),
        (ValueKind::Bytes, Value::Bytes(vec![0xff, 0x00, 0x13])),
        (
            ValueKind::Json,
            Value::Json("{\"not\": [\"what you want\"".into()),
        ),
    ]
}

/// A table with the same columns and no rows.
fn emptied(t: &Table) -> Table {
    Table {
        columns: t
            .columns
            .iter()
            .map(|c| Column {
                name: c.name.clone(),
                data: match c.data {
                    ColumnData::Float64(_) => ColumnData::Float64(vec![]),
                    ColumnData::Int64(_) => ColumnData::Int64(vec![]),
                    ColumnData::Text(_) => ColumnData::Text(vec![]),
                    ColumnData::Boolean(_) => ColumnData::Boolean(vec![]),
                },
                valid: c.valid.as_ref().map(|_| vec![]),
            })
            .collect(),
    }
}

/// What a call may end in when its input is odd: a result or a structured error.
fn tolerated<T>(case: &str, plugin: &str, r: Result<T, PluginError>) -> Option<T> {
    match r {
        Ok(v) => Some(v),
        Err(PluginError::Failed { message, .. }) => {
            assert!(
                !message.trim().is_empty(),
                "{plugin}, {case}: an error without a message"
            );
            None
        }
        Err(e) => panic!("{plugin}, {case}: not a structured error: {e}"),
    }
}

/// A call that must be refused with a structured error of one of `kinds`.
fn refused<T: std::fmt::Debug>(
    case: &str,
    plugin: &str,
    kinds: &[&str],
    r: Result<T, PluginError>,
) {
    match r {
        Err(PluginError::Failed { kind, message, .. }) => {
            assert!(
                kinds.contains(&kind),
                "{plugin}, {case}: refused as {kind}, expected one of {kinds:?}: {message}"
            );
            assert!(
                !message.trim().is_empty(),
                "{plugin}, {case}: empty message"
            );
        }
        Ok(v) => panic!("{plugin}, {case}: accepted, expected a refusal: {v:?}"),
        Err(e) => panic!("{plugin}, {case}: not a structured error: {e}"),
    }
}

fn check_descriptor(plugin: &str, d: &Descriptor) {
    assert!(!d.name.is_empty(), "{plugin}: describe() names nothing");
    for ports in [&d.inputs, &d.outputs] {
        let mut names: Vec<&str> = ports.iter().map(|p| p.name.as_str()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), ports.len(), "{plugin}: duplicate port names");
    }
}

fn check_checks(plugin: &str, checks: &[Check]) {
    for c in checks {
        assert!(!c.name.is_empty(), "{plugin}: a check without a name");
        if let Some(o) = c.observed {
            assert!(!o.is_nan(), "{plugin}: check `{}` observed NaN", c.name);
        }
    }
}

/// What the role's main export gave.
#[derive(Debug)]
enum Called {
    Outputs(Vec<NamedValue>),
    Checks(Vec<Check>),
}

fn call(
    s: &Subject,
    inputs: &[NamedValue],
    config: &[(String, String)],
) -> Result<Called, PluginError> {
    let config = config.to_vec();
    match s.plugin.role() {
        Role::Step => s
            .plugin
            .run_step(inputs, &config, &s.opts)
            .map(|o| Called::Outputs(o.value)),
        Role::Validator => s
            .plugin
            .validate(inputs, &config, &s.opts)
            .map(|o| Called::Checks(o.value)),
        Role::ModelRunner => {
            let mut model = s.plugin.load_model(&s.artifact, &config, &s.opts)?;
            model.predict(inputs).map(|o| Called::Outputs(o.value))
        }
        Role::Tracker => unreachable!("trackers take events"),
    }
}

/// Runs the whole suite for the subject's role; panics naming the case that failed.
pub fn run(s: &Subject) {
    let name = s.plugin.name().to_string();
    let name = name.as_str();
    let d = s.plugin.describe(&s.opts).expect("describe()");
    check_descriptor(name, &d);
    for (k, _) in &s.config {
        assert!(
            d.config.iter().any(|c| c.name == *k),
            "{name}: config key `{k}` is not declared"
        );
    }
    if s.plugin.role() == Role::Tracker {
        return tracker(s, name);
    }

    // Normal: a result, with every declared output.
    match call(s, &s.inputs, &s.config).unwrap_or_else(|e| panic!("{name}, normal inputs: {e}")) {
        Called::Outputs(outs) => {
            let declared: Vec<&str> = if s.plugin.role() == Role::ModelRunner {
                Vec::new()
            } else {
                d.outputs.iter().map(|p| p.name.as_str()).collect()
            };
            for p in d.outputs.iter().filter(|p| !p.optional) {
                assert!(
                    outs.iter().any(|o| o.name == p.name),
                    "{name}: output `{}` is declared but missing",
                    p.name
                );
            }
            if !declared.is_empty() {
                for o in &outs {
                    assert!(
                        declared.contains(&o.name.as_str()),
                        "{name}: output `{}` is not declared",
                        o.name
                    );
                }
            }
            assert!(!outs.is_empty(), "{name}: no outputs");
        }
        Called::Checks(checks) => {
            assert!(!checks.is_empty(), "{name}: no checks");
            check_checks(name, &checks);
        }
    }

    // No inputs at all: refused, when any input is required.
    let required: Vec<&str> = d
        .inputs
        .iter()
        .filter(|p| !p.optional)
        .map(|p| p.name.as_str())
        .collect();
    if !required.is_empty() || s.plugin.role() == Role::ModelRunner {
        refused(
            "no inputs",
            name,
            &["invalid-input"],
            call(s, &[], &s.config),
        );
    }

    // Each input of the wrong kind: refused.
    for (i, input) in s.inputs.iter().enumerate() {
        let declared = d
            .inputs
            .iter()
            .find(|p| p.name == input.name)
            .map(|p| p.kind);
        for (kind, sample) in samples() {
            if declared == Some(ValueKind::Any)
                || declared == Some(kind)
                || same_kind(&input.value, kind)
            {
                continue;
            }
            let mut inputs = s.inputs.clone();
            inputs[i].value = sample;
            let case = format!("input `{}` as a {kind:?}", input.name);
            refused(&case, name, &["invalid-input"], call(s, &inputs, &s.config));
        }
    }

    // Tables with no rows, and tables whose columns are not the expected ones.
    for (i, input) in s.inputs.iter().enumerate() {
        let Value::Table(t) = &input.value else {
            continue;
        };
        let mut inputs = s.inputs.clone();
        inputs[i].value = Value::Table(emptied(t));
        let case = format!("input `{}` with no rows", input.name);
        if let Some(Called::Checks(checks)) = tolerated(&case, name, call(s, &inputs, &s.config)) {
            check_checks(name, &checks);
        }
        inputs[i].value = Value::Table(Table { columns: vec![] });
        let case = format!("input `{}` with no columns", input.name);
        tolerated(&case, name, call(s, &inputs, &s.config));
        // Every column renamed: whatever the plugin looks for is missing.
        let mut renamed = t.clone();
        for c in &mut renamed.columns {
            c.name = format!("{}-renamed", c.name);
        }
        inputs[i].value = Value::Table(renamed);
        let case = format!("input `{}` with unknown columns", input.name);
        tolerated(&case, name, call(s, &inputs, &s.config));
    }

    // Every config key with a malformed value: a result or an invalid-config error.
    for key in &d.config {
        for bad in ["", "not-a-value,,", "-1e999", "\u{0}"] {
            let config = with_config(&s.config, &key.name, bad);
            let case = format!("config `{}` = {bad:?}", key.name);
            if let Err(PluginError::Failed { kind, .. }) = call(s, &s.inputs, &config)
                && !["invalid-config", "invalid-input"].contains(&kind)
            {
                panic!("{name}, {case}: refused as {kind}");
            }
            tolerated(&case, name, call(s, &s.inputs, &config));
        }
    }

    if s.plugin.role() == Role::ModelRunner {
        let garbage = s
            .plugin
            .load_model(b"\x00\xffnot a model", &s.config, &s.opts);
        refused(
            "a garbage artifact",
            name,
            &["invalid-input", "invalid-config", "unsupported"],
            garbage.map(|_| ()),
        );
        let mut model = s
            .plugin
            .load_model(&s.artifact, &s.config, &s.opts)
            .expect("load");
        let meta = model.metadata().expect("metadata()");
        assert!(
            !meta.outputs.is_empty(),
            "{name}: metadata declares no outputs"
        );
    }
}

fn same_kind(v: &Value, k: ValueKind) -> bool {
    matches!(
        (v, k),
        (Value::Tensor(_), ValueKind::Tensor)
            | (Value::Table(_), ValueKind::Table)
            | (Value::Scalar(_), ValueKind::Scalar)
            | (Value::Text(_), ValueKind::Text)
            | (Value::Bytes(_), ValueKind::Bytes)
            | (Value::Json(_), ValueKind::Json)
    )
}

/// A run's events, as a workflow sends them.
pub fn sample_events() -> Vec<Event> {
    vec![
        Event::RunStarted("conformance".into()),
        Event::Param(("train.alpha".into(), "0.5".into())),
        Event::Metric(Metric {
            key: "evaluate.test.r2".into(),
            value: 0.55,
            step: 0,
            timestamp_ms: 1_700_000_000_000,
        }),
        Event::Tag(("train.status".into(), "succeeded".into())),
        Event::Artifact("train.model sha256:00ff".into()),
        Event::RunFinished("succeeded".into()),
    ]
}

fn tracker(s: &Subject, name: &str) {
    let send = |events: &[Event]| s.plugin.send_events("run-0001", events, &s.config, &s.opts);
    send(&sample_events()).unwrap_or_else(|e| panic!("{name}, a normal batch: {e}"));
    tolerated("an empty batch", name, send(&[]));
    let odd = vec![
        Event::Metric(Metric {
            key: "loss".into(),
            value: f64::NAN,
            step: u64::MAX,
            timestamp_ms: 0,
        }),
        Event::Param(("ключ \"quoted\" <tag>".into(), "\u{0}\n".repeat(1000))),
        Event::Artifact(String::new()),
        Event::RunFinished("a status never seen".into()),
    ];
    tolerated("odd events", name, send(&odd));
    for key in &s.plugin.describe(&s.opts).expect("describe()").config {
        let config = with_config(&s.config, &key.name, "\u{0}/../..");
        let case = format!("config `{}` malformed", key.name);
        tolerated(
            &case,
            name,
            s.plugin
                .send_events("run-0001", &sample_events(), &config, &s.opts),
        );
    }
}

/// `config` with `key` set to `value`, in place of any value it had.
fn with_config(config: &[(String, String)], key: &str, value: &str) -> Vec<(String, String)> {
    let mut config: Vec<(String, String)> =
        config.iter().filter(|(k, _)| k != key).cloned().collect();
    config.push((key.to_string(), value.to_string()));
    config
}
