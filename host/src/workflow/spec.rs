//! The workflow file, as written: YAML read through serde with unknown fields refused,
//! every value that a later check may complain about kept with its line and column.
//!
//! `examples/quickstart/workflow.yaml` is the annotated example of the format.

use std::time::Duration;

use indexmap::IndexMap;
use serde::Deserialize;
use serde_saphyr::Spanned;

use super::diag::{Diagnostic, Diagnostics, Loc};

/// A whole workflow file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkflowSpec {
    /// The workflow's name; runs are listed under it.
    pub name: Spanned<String>,
    #[serde(default)]
    pub description: String,
    /// Fix every step's random source and clocks (see `--deterministic`).
    #[serde(default)]
    pub deterministic: bool,
    /// The seed that deterministic mode derives each step's random source from.
    #[serde(default)]
    pub seed: u64,
    /// Steps by id, in the order written (the order ties are broken in).
    pub steps: IndexMap<Spanned<String>, StepSpec>,
    /// Tracker plugins by id: each receives every event of the run (`uses`, `with`,
    /// `grants`, `limits`; no inputs).
    #[serde(default)]
    pub trackers: IndexMap<Spanned<String>, StepSpec>,
    /// Record a trained model in the model registry when the run's metrics allow.
    #[serde(default)]
    pub register: Option<Spanned<RegisterSpec>>,
}

/// One step.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepSpec {
    /// `name@req` from the registry, or a path to a component (relative to the workflow file).
    pub uses: Spanned<String>,
    /// Config, key to value. Scalars are passed as text; lists are joined with commas.
    #[serde(default)]
    pub with: IndexMap<Spanned<String>, Spanned<serde_json::Value>>,
    /// Inputs, port to `step.output`.
    #[serde(default)]
    pub inputs: IndexMap<Spanned<String>, Spanned<String>>,
    /// Steps that must succeed first, beyond those the inputs name.
    #[serde(default)]
    pub after: Vec<Spanned<String>>,
    /// What the plugin may use beyond computation.
    #[serde(default)]
    pub grants: Option<Spanned<GrantsSpec>>,
    /// The memory cap and deadline of each attempt.
    #[serde(default)]
    pub limits: Option<Spanned<LimitsSpec>>,
    /// Extra attempts after a failure, waiting `backoff`, doubled each time.
    #[serde(default)]
    pub retries: u32,
    #[serde(default)]
    pub backoff: Option<Spanned<String>>,
    /// Whether the step's outputs may come from the cache (default true).
    #[serde(default)]
    pub cache: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrantsSpec {
    /// Directories, `PATH[:ro|:rw]`, relative to the workflow file. The plugin opens a
    /// directory by the path as written.
    #[serde(default)]
    pub dirs: Vec<Spanned<String>>,
    /// Environment variables, name to value.
    #[serde(default)]
    pub env: IndexMap<String, String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsSpec {
    /// e.g. `64MiB`.
    pub memory: Option<Spanned<String>>,
    /// e.g. `30s`.
    pub timeout: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegisterSpec {
    /// The registered model's name.
    pub model: Spanned<String>,
    /// The inference pipeline: the steps a request's rows go through, in order, from the
    /// raw input to the prediction; the last is the model runner. Their other inputs are
    /// fitted values, stored with the version.
    #[serde(default)]
    pub serve: Vec<Spanned<String>>,
    /// The step output that holds the model artifact: `step.output` (with `serve`, the
    /// runner step's `model` input).
    #[serde(default)]
    pub from: Option<Spanned<String>>,
    /// The model-runner plugin that serves it: `name@req` (with `serve`, the runner step's).
    #[serde(default)]
    pub runner: Option<Spanned<String>>,
    /// A condition on the run's metrics, e.g. `evaluate.test_r2 >= 0.4 and evaluate.test_mae < 50`.
    #[serde(default)]
    pub when: Option<Spanned<String>>,
    /// An alias to point at the new version.
    #[serde(default)]
    pub alias: Option<Spanned<String>>,
}

impl WorkflowSpec {
    /// Parses a workflow file's text. `file` names it in errors.
    pub fn parse(text: &str, file: &str) -> Result<WorkflowSpec, Diagnostics> {
        let file_name = file.to_string();
        serde_saphyr::from_str::<WorkflowSpec>(text).map_err(|e| {
            let loc = e.location().map(|l| Loc {
                line: l.line(),
                column: l.column(),
            });
            let message = plain_message(&e.without_snippet().to_string());
            Diagnostics(vec![Diagnostic {
                file: file_name.clone(),
                loc,
                step: None,
                message,
                source_line: loc.and_then(|l| source_line(text, l.line)),
            }])
        })
    }
}

/// The YAML error's message without its position, which the diagnostic gives itself.
fn plain_message(text: &str) -> String {
    let first = text.lines().next().unwrap_or_default();
    let first = first.strip_prefix("error: ").unwrap_or(first);
    let first = match first.split_once(": ") {
        Some((head, tail)) if head.starts_with("line ") => tail,
        _ => first,
    };
    match first.rfind(" at line ") {
        Some(at) => first[..at].to_string(),
        None => first.to_string(),
    }
}

/// The text of line `line` (1-based).
pub fn source_line(text: &str, line: u64) -> Option<String> {
    let index = usize::try_from(line.checked_sub(1)?).ok()?;
    text.lines().nth(index).map(str::to_string)
}

/// Where a spanned value was written.
pub fn loc<T>(s: &Spanned<T>) -> Option<Loc> {
    let l = s.referenced;
    (l.line() > 0).then(|| Loc {
        line: l.line(),
        column: l.column(),
    })
}

/// A config value as the text a plugin receives.
pub fn config_text(v: &serde_json::Value) -> Result<String, String> {
    use serde_json::Value as J;
    Ok(match v {
        J::String(s) => s.clone(),
        J::Number(n) => n.to_string(),
        J::Bool(b) => b.to_string(),
        J::Null => String::new(),
        J::Array(items) => items
            .iter()
            .map(|i| match i {
                J::Array(_) | J::Object(_) => {
                    Err("a list in config may hold only scalars".to_string())
                }
                other => config_text(other),
            })
            .collect::<Result<Vec<_>, _>>()?
            .join(","),
        J::Object(_) => {
            return Err("config values are scalars or lists of scalars, not mappings".into());
        }
    })
}

/// Parses a duration like `30s` or `250ms`.
pub fn duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("`{s}` is not a duration ({e}), e.g. 30s"))
}

/// Parses a size like `64MiB`.
pub fn size(s: &str) -> Result<u64, String> {
    s.parse::<bytesize::ByteSize>()
        .map(|b| b.as_u64())
        .map_err(|e| format!("`{s}` is not a size ({e}), e.g. 64MiB"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_steps_in_order_with_locations() {
        let text = "name: demo\nsteps:\n  read:\n    uses: csv-reader@^0.1\n    with:\n      path: data/x.csv\n      columns: [a, b]\n      seed: 42\n  split:\n    uses: train-test-split@^0.1\n    inputs:\n      table: read.table\n";
        let w = WorkflowSpec::parse(text, "w.yaml").unwrap();
        let ids: Vec<_> = w.steps.keys().map(|k| k.value.as_str()).collect();
        assert_eq!(ids, ["read", "split"]);
        let read = &w.steps[0];
        assert_eq!(loc(&read.uses).unwrap().line, 4);
        let cfg: Vec<String> = read
            .with
            .values()
            .map(|v| config_text(&v.value).unwrap())
            .collect();
        assert_eq!(cfg, ["data/x.csv", "a,b", "42"]);
    }

    #[test]
    fn unknown_fields_are_refused_with_their_line() {
        let text = "name: demo\nsteps:\n  read:\n    uses: csv-reader\n    wiht: {}\n";
        let e = WorkflowSpec::parse(text, "w.yaml").unwrap_err();
        let d = &e.0[0];
        assert_eq!(d.loc.unwrap().line, 5);
        assert!(d.message.contains("unknown field `wiht`"), "{}", d.message);
        assert!(e.to_string().starts_with("w.yaml:5:5: "), "{e}");
    }
}
