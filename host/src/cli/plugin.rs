//! `kiln plugin inspect` and `kiln plugin run`: one plugin, no workflow.

use std::{
    path::{Path, PathBuf},
    process::ExitCode,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};
use clap::{Args, Subcommand};
use serde_json::{Value as J, json};

use super::{Ctx as Context, emit, emit_json};
#[cfg(feature = "compiler")]
use crate::polyglot::{self, Lang};
use crate::{
    bindings::{Check, Descriptor, NamedValue, Severity, Value, WIT_PACKAGE},
    engine::{CacheOutcome, Limits},
    host_impl::{LogLine, LogSink, TrackingEvent},
    plugin::{CallOptions, DirGrant, Grants, Plugin, Role},
    value,
};

/// Appends a line to an output buffer (written at once by [`emit`]).
macro_rules! out {
    ($buf:expr, $($arg:tt)*) => {{
        use std::fmt::Write as _;
        let _ = writeln!($buf, $($arg)*);
    }};
}

#[derive(Debug, Subcommand)]
pub enum PluginCommand {
    /// Show a plugin's role, contract version, imports, exports and describe() output.
    Inspect {
        /// The component file, or NAME[@REQ] from the registry.
        file: String,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
        /// Refuse the plugin unless it implements this role's world.
        #[arg(long, value_parser = parse_role)]
        role: Option<Role>,
    },
    /// Run one plugin on inputs from files and print its outputs.
    Run(RunArgs),
    #[cfg(feature = "compiler")]
    /// Create a plugin project: kiln.toml and a working template for the role, in the language.
    New {
        /// The plugin's name (lowercase letters, digits and dashes).
        name: String,
        /// The language: rust, python, js, c or go.
        #[arg(long, value_parser = parse_lang)]
        lang: Lang,
        /// The role: step, validator, model-runner or tracker.
        #[arg(long, value_parser = parse_role)]
        role: Role,
        /// Where to create it (default: ./NAME).
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    #[cfg(feature = "compiler")]
    /// Build a plugin project into a component with its language's toolchain, and check it
    /// implements its manifest's role.
    Build {
        /// The project directory (holding kiln.toml).
        #[arg(default_value = ".")]
        dir: PathBuf,
        /// Where to write the component (default: DIR/target/NAME.wasm).
        #[arg(long, short = 'o')]
        out: Option<PathBuf>,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// The component file, or NAME[@REQ] from the registry.
    file: String,
    /// Refuse the plugin unless it implements this role's world.
    #[arg(long, value_parser = parse_role)]
    role: Option<Role>,
    /// An input: NAME=PATH. A Kiln value document (JSON) is read as its value, a `.csv` file
    /// (a header row first) as a table, any other file as bytes.
    #[arg(long = "input", short = 'i', value_name = "NAME=PATH")]
    inputs: Vec<String>,
    /// A config entry: KEY=VALUE.
    #[arg(long = "config", short = 'c', value_name = "KEY=VALUE")]
    config: Vec<String>,
    /// Let the plugin use a directory, at the path as written: PATH[:ro|:rw] (read-only by default).
    #[arg(long = "grant-dir", value_name = "PATH[:ro|:rw]")]
    grant_dirs: Vec<String>,
    /// For a model runner: the model artifact to load before predicting.
    #[arg(long, value_name = "PATH")]
    model: Option<PathBuf>,
    /// The memory cap, e.g. 64MiB.
    #[arg(long, default_value = "256MiB")]
    memory: bytesize::ByteSize,
    /// The wall-clock deadline, e.g. 5s or 250ms.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    timeout: Duration,
    /// A fuel budget (needs --fuel-metering).
    #[arg(long)]
    fuel: Option<u64>,
    /// Write each output to DIR: bytes as NAME.bin, everything else as NAME.json value documents.
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
    /// The lowest level of plugin log lines shown on stderr (trace, debug, info, warn, error, off).
    #[arg(long, default_value = "info")]
    log_level: String,
}

pub fn run(ctx: &Context, cmd: PluginCommand) -> Result<ExitCode> {
    match cmd {
        PluginCommand::Inspect { file, json, role } => inspect(ctx, &file, json, role),
        PluginCommand::Run(args) => run_plugin(ctx, args),
        #[cfg(feature = "compiler")]
        PluginCommand::New {
            name,
            lang,
            role,
            dir,
        } => new_project(&name, lang, role, dir),
        #[cfg(feature = "compiler")]
        PluginCommand::Build { dir, out, json } => build_project(ctx, &dir, out, json),
    }
}

#[cfg(feature = "compiler")]
fn parse_lang(s: &str) -> Result<Lang, String> {
    Lang::parse(s).ok_or_else(|| format!("`{s}` is not a language: rust, python, js, c or go"))
}

#[cfg(feature = "compiler")]
fn new_project(name: &str, lang: Lang, role: Role, dir: Option<PathBuf>) -> Result<ExitCode> {
    let dir = dir.unwrap_or_else(|| PathBuf::from(name));
    let made = polyglot::new_project(&dir, name, lang, role)?;
    let mut o = String::new();
    out!(
        o,
        "created {lang} {role} plugin `{name}` in {}",
        dir.display()
    );
    for f in &made.files {
        out!(o, "  {}", f.display());
    }
    out!(o, "next: kiln plugin build {}", dir.display());
    emit(&o)?;
    Ok(ExitCode::SUCCESS)
}

#[cfg(feature = "compiler")]
fn build_project(
    ctx: &Context,
    dir: &Path,
    out: Option<PathBuf>,
    as_json: bool,
) -> Result<ExitCode> {
    // The time reported is the command's whole: the toolchain's build, then compiling the
    // component and calling describe() to check it (seconds for a 20 MB Python component).
    let started = Instant::now();
    let built = polyglot::build(dir, &polyglot::BuildOptions { out })
        .with_context(|| format!("building the plugin in {}", dir.display()))?;
    // The exports must be the manifest's role's world, and describe() must answer.
    let host = ctx.plugin_host()?;
    let spec = format!("{}@{}", built.name, built.version);
    let plugin = host
        .load_bytes(&spec, &built.bytes, Some(built.role))
        .with_context(|| {
            format!(
                "{} does not implement its manifest's role",
                built.path.display()
            )
        })?;
    let descriptor = plugin
        .describe(&CallOptions::default())
        .with_context(|| format!("calling describe() of {}", built.path.display()))?;
    let elapsed = started.elapsed();
    if as_json {
        emit_json(&json!({
            "name": built.name,
            "version": built.version,
            "lang": built.lang,
            "role": built.role,
            "path": built.path,
            "size": built.bytes.len(),
            "digest": format!("sha256:{}", plugin.digest()),
            "build_ms": elapsed.as_millis() as u64,
            "toolchain_ms": built.elapsed.as_millis() as u64,
            "exports": plugin.surface().exports,
            "describe": descriptor_json(&descriptor),
        }))?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut o = String::new();
    out!(
        o,
        "built {} {} ({} {}) in {:.1}s ({:.1}s in the toolchain, {:.1}s checking the component)",
        built.name,
        built.version,
        built.lang,
        built.role,
        elapsed.as_secs_f64(),
        built.elapsed.as_secs_f64(),
        elapsed.saturating_sub(built.elapsed).as_secs_f64()
    );
    out!(
        o,
        "  component {} ({} bytes)",
        built.path.display(),
        built.bytes.len()
    );
    out!(o, "  digest    sha256:{}", plugin.digest());
    out!(o, "  exports   {}", plugin.surface().exports.join(", "));
    out!(
        o,
        "  describe  {} — {}",
        descriptor.name,
        descriptor.description
    );
    emit(&o)?;
    Ok(ExitCode::SUCCESS)
}

fn parse_role(s: &str) -> Result<Role, String> {
    Role::parse(s)
        .ok_or_else(|| format!("`{s}` is not a role: step, validator, model-runner or tracker"))
}

fn inspect(ctx: &Context, file: &str, as_json: bool, role: Option<Role>) -> Result<ExitCode> {
    let host = ctx.plugin_host()?;
    let plugin = ctx.load_plugin(&host, file, role)?;
    let descriptor = plugin.describe(&CallOptions::default())?;
    if as_json {
        let doc = json!({
            "name": plugin.name(),
            "digest": format!("sha256:{}", plugin.digest()),
            "size": plugin.size(),
            "role": plugin.role(),
            "world": format!("{}/{}", WIT_PACKAGE.split('@').next().unwrap_or(WIT_PACKAGE), plugin.role().world()),
            "wit_package": WIT_PACKAGE,
            "imports": plugin.surface().imports,
            "exports": plugin.surface().exports,
            "describe": descriptor_json(&descriptor),
            "artifact_cache": cache_name(plugin.cache_outcome()),
        });
        emit_json(&doc)?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut o = String::new();
    out!(o, "{} — {}", descriptor.name, descriptor.description);
    out!(o, "  source    {} ({} bytes)", file, plugin.size());
    out!(o, "  digest    sha256:{}", plugin.digest());
    out!(
        o,
        "  role      {} (world {}, {WIT_PACKAGE})",
        plugin.role(),
        plugin.role().world()
    );
    out!(o, "  compiled  {}", cache_name(plugin.cache_outcome()));
    out!(o, "  imports   {}", plugin.surface().imports.join(", "));
    out!(o, "  exports   {}", plugin.surface().exports.join(", "));
    print_ports(&mut o, "inputs", &descriptor.inputs);
    print_ports(&mut o, "outputs", &descriptor.outputs);
    if !descriptor.config.is_empty() {
        out!(o, "  config");
        for k in &descriptor.config {
            let default = match (&k.default, k.required) {
                (_, true) => " (required)".to_string(),
                (Some(d), false) => format!(" (default {d})"),
                (None, false) => String::new(),
            };
            out!(o, "    {}{default}: {}", k.name, k.description);
        }
    }
    emit(&o)?;
    Ok(ExitCode::SUCCESS)
}

fn cache_name(c: CacheOutcome) -> &'static str {
    match c {
        CacheOutcome::Hit => "cache-hit",
        CacheOutcome::Compiled => "compiled",
    }
}

fn print_ports(o: &mut String, title: &str, ports: &[crate::bindings::Port]) {
    if ports.is_empty() {
        return;
    }
    out!(o, "  {title}");
    for p in ports {
        let opt = if p.optional { ", optional" } else { "" };
        out!(
            o,
            "    {} ({}{opt}): {}",
            p.name,
            crate::value::value_kind_name(p.kind),
            p.description
        );
    }
}

pub(crate) fn descriptor_json(d: &Descriptor) -> J {
    let ports = |ps: &[crate::bindings::Port]| {
        ps.iter()
            .map(|p| json!({"name": p.name, "kind": crate::value::value_kind_name(p.kind), "optional": p.optional, "description": p.description}))
            .collect::<Vec<_>>()
    };
    json!({
        "name": d.name,
        "description": d.description,
        "inputs": ports(&d.inputs),
        "outputs": ports(&d.outputs),
        "config": d.config.iter().map(|k| json!({"name": k.name, "required": k.required, "default": k.default, "description": k.description})).collect::<Vec<_>>(),
    })
}

pub(crate) fn split_pair<'a>(s: &'a str, what: &str) -> Result<(&'a str, &'a str)> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k, v)),
        _ => bail!("{what} `{s}` must look like NAME=VALUE"),
    }
}

/// Reads `--input NAME=PATH` arguments into named values (a `.csv` file is a table).
pub(crate) fn read_inputs(specs: &[String]) -> Result<Vec<NamedValue>> {
    specs
        .iter()
        .map(|s| {
            let (name, path) = split_pair(s, "--input")?;
            Ok(NamedValue {
                name: name.to_string(),
                value: read_input(Path::new(path))?,
            })
        })
        .collect()
}

/// Reads an input file: a Kiln value document becomes its value, a `.csv` file (with a
/// header row) a table, anything else bytes.
pub(crate) fn read_input(path: &Path) -> Result<Value> {
    let bytes = std::fs::read(path).with_context(|| format!("reading input {}", path.display()))?;
    if path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("csv"))
    {
        return value::table_from_csv(&bytes)
            .map(Value::Table)
            .with_context(|| format!("reading CSV {}", path.display()));
    }
    if let Ok(doc) = serde_json::from_slice::<J>(&bytes)
        && value::is_document(&doc)
    {
        return value::from_json(&doc)
            .with_context(|| format!("reading value document {}", path.display()));
    }
    Ok(Value::Bytes(bytes))
}

/// `-c` keys the plugin does not declare are refused, as a workflow's `with:` refuses them
/// (a plugin that declares no keys takes any, there too).
fn check_config_keys(plugin: &Plugin, config: &[(String, String)]) -> Result<()> {
    if config.is_empty() {
        return Ok(());
    }
    let d = plugin
        .describe(&CallOptions::default())
        .context("calling describe()")?;
    let unknown: Vec<String> = config
        .iter()
        .filter(|(k, _)| !d.config.is_empty() && !d.config.iter().any(|c| &c.name == k))
        .map(|(k, _)| format!("`{k}`"))
        .collect();
    if unknown.is_empty() {
        return Ok(());
    }
    let known: Vec<&str> = d.config.iter().map(|c| c.name.as_str()).collect();
    bail!(
        "`{}` has no config key {} (its keys: {})",
        d.name,
        unknown.join(", "),
        known.join(", ")
    )
}

fn log_sink(level: &str) -> Result<LogSink> {
    use crate::bindings::log::Level;
    Ok(match level {
        "trace" => LogSink::Stderr(Level::Trace),
        "debug" => LogSink::Stderr(Level::Debug),
        "info" => LogSink::Stderr(Level::Info),
        "warn" => LogSink::Stderr(Level::Warn),
        "error" => LogSink::Stderr(Level::Error),
        "off" => LogSink::Collect,
        other => bail!("unknown log level `{other}` (trace, debug, info, warn, error, off)"),
    })
}

/// What a run produced, whatever the role.
struct Produced {
    outputs: Vec<NamedValue>,
    checks: Vec<Check>,
    logs: Vec<LogLine>,
    tracking: Vec<TrackingEvent>,
}

fn run_plugin(ctx: &Context, args: RunArgs) -> Result<ExitCode> {
    let inputs = read_inputs(&args.inputs)?;
    let config = args
        .config
        .iter()
        .map(|s| split_pair(s, "--config").map(|(k, v)| (k.to_string(), v.to_string())))
        .collect::<Result<Vec<_>>>()?;
    let grants = Grants {
        dirs: args
            .grant_dirs
            .iter()
            .map(|g| DirGrant::parse(g))
            .collect::<Result<_>>()?,
        env: Vec::new(),
    };
    let opts = CallOptions {
        limits: Limits {
            memory: args.memory.as_u64(),
            timeout: args.timeout,
            fuel: args.fuel,
            ..Limits::default()
        },
        grants,
        log: log_sink(&args.log_level)?,
        deterministic: None,
        cancel: None,
    };
    let host = ctx.plugin_host()?;
    let plugin = ctx.load_plugin(&host, &args.file, args.role)?;
    check_config_keys(&plugin, &config)?;
    let started = Instant::now();
    let produced = call(&plugin, inputs, &config, args.model.as_deref(), &opts)?;
    let elapsed = started.elapsed();
    if let Some(dir) = &args.out {
        write_outputs(dir, &produced.outputs)?;
    }
    let blocking: Vec<&Check> = produced
        .checks
        .iter()
        .filter(|c| !c.passed && c.severity == Severity::Error)
        .collect();
    if args.json {
        print_json(&plugin, &produced, elapsed)?;
    } else {
        print_text(&plugin, &produced, elapsed)?;
    }
    if !blocking.is_empty() {
        eprintln!(
            "error: validation failed: {} blocking check(s) failed ({})",
            blocking.len(),
            blocking
                .iter()
                .map(|c| c.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

fn call(
    plugin: &std::sync::Arc<Plugin>,
    inputs: Vec<NamedValue>,
    config: &crate::bindings::Config,
    model: Option<&Path>,
    opts: &CallOptions,
) -> Result<Produced> {
    if model.is_some() && plugin.role() != Role::ModelRunner {
        bail!(
            "--model is for model runners; `{}` is a {} plugin",
            plugin.name(),
            plugin.role()
        );
    }
    let empty = |outputs, checks, logs, tracking| Produced {
        outputs,
        checks,
        logs,
        tracking,
    };
    Ok(match plugin.role() {
        Role::Step => {
            let o = plugin.run_step(&inputs, config, opts)?;
            empty(o.value, vec![], o.logs, o.tracking)
        }
        Role::Validator => {
            let o = plugin.validate(&inputs, config, opts)?;
            empty(vec![], o.value, o.logs, o.tracking)
        }
        Role::ModelRunner => {
            let path =
                model.context("a model runner needs the model to load: pass --model PATH")?;
            let artifact =
                std::fs::read(path).with_context(|| format!("reading model {}", path.display()))?;
            let mut instance = plugin.load_model(&artifact, config, opts)?;
            let o = instance.predict(&inputs)?;
            empty(o.value, vec![], o.logs, o.tracking)
        }
        Role::Tracker => bail!(
            "`{}` is a tracker: trackers receive the events of workflow runs and are not run on their own",
            plugin.name()
        ),
    })
}

pub(crate) fn write_outputs(dir: &Path, outputs: &[NamedValue]) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    for o in outputs {
        anyhow::ensure!(
            !o.name.is_empty()
                && o.name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'),
            "output name `{}` cannot be used as a file name",
            o.name
        );
        let (path, bytes) = match &o.value {
            Value::Bytes(b) => (dir.join(format!("{}.bin", o.name)), b.clone()),
            v => (
                dir.join(format!("{}.json", o.name)),
                serde_json::to_vec(&value::to_json(v))?,
            ),
        };
        std::fs::write(&path, bytes).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

fn severity_name(s: Severity) -> &'static str {
    match s {
        Severity::Info => "info",
        Severity::Warning => "warning",
        Severity::Error => "error",
    }
}

fn tracking_json(t: &[TrackingEvent]) -> J {
    serde_json::to_value(t).unwrap_or(J::Null)
}

fn print_json(plugin: &Plugin, p: &Produced, elapsed: Duration) -> Result<()> {
    let doc = json!({
        "plugin": plugin.name(),
        "digest": format!("sha256:{}", plugin.digest()),
        "role": plugin.role(),
        "elapsed_ms": elapsed.as_secs_f64() * 1e3,
        "outputs": p.outputs.iter().map(|o| json!({"name": o.name, "value": value::to_json(&o.value)})).collect::<Vec<_>>(),
        "checks": p.checks.iter().map(|c| json!({
            "name": c.name, "passed": c.passed, "severity": severity_name(c.severity),
            "observed": c.observed, "detail": c.detail,
        })).collect::<Vec<_>>(),
        "logs": p.logs.iter().map(|l| json!({"level": crate::host_impl::level_name(l.level), "message": l.message})).collect::<Vec<_>>(),
        "tracking": tracking_json(&p.tracking),
    });
    emit_json(&doc)
}

fn print_text(plugin: &Plugin, p: &Produced, elapsed: Duration) -> Result<()> {
    let mut o = String::new();
    out!(
        o,
        "{} ({}) finished in {:.1} ms",
        plugin.name(),
        plugin.role(),
        elapsed.as_secs_f64() * 1e3
    );
    for output in &p.outputs {
        out!(
            o,
            "\n{} ({}):",
            output.name,
            value::kind_name(&output.value)
        );
        for line in value::render(&output.value).lines() {
            out!(o, "  {line}");
        }
    }
    if !p.checks.is_empty() {
        out!(o, "\nchecks:");
        for c in &p.checks {
            let mark = if c.passed { "pass" } else { "FAIL" };
            let observed = c
                .observed
                .map(|x| format!(" observed {x}"))
                .unwrap_or_default();
            out!(
                o,
                "  {mark}  {} [{}]{observed} {}",
                c.name,
                severity_name(c.severity),
                c.detail
            );
        }
    }
    if !p.tracking.is_empty() {
        out!(o, "\ntracked:");
        for t in &p.tracking {
            match t {
                TrackingEvent::Metric {
                    key, value, step, ..
                } => out!(o, "  metric {key} = {value} (step {step})"),
                TrackingEvent::Param { key, value } => out!(o, "  param  {key} = {value}"),
                TrackingEvent::Tag { key, value } => out!(o, "  tag    {key} = {value}"),
            }
        }
    }
    emit(&o)
}
