//! The command line: one file per subcommand. Parsing lives here; the work lives in the
//! library modules the subcommands call.

/// Appends a line to an output buffer.
macro_rules! out {
    ($buf:expr, $($arg:tt)*) => {{
        use std::fmt::Write as _;
        let _ = writeln!($buf, $($arg)*);
    }};
}

mod bundle;
mod key;
mod model;
mod plugin;
mod registry;
mod remote;
mod serve;
mod sync;
mod tracking;
mod workflow;

use std::{path::PathBuf, process::ExitCode};

use anyhow::{Context as _, Result};
use clap::{Parser, Subcommand};

use crate::{
    engine::{ArtifactCache, EngineOptions, KilnEngine},
    plugin::PluginHost,
};

/// Kiln: a WebAssembly plugin runtime for MLOps.
#[derive(Debug, Parser)]
#[command(name = "kiln", version, about, propagate_version = true, after_help = START)]
pub struct Cli {
    /// Where Kiln keeps its data (registry, runs, compiled-plugin cache).
    #[arg(long, global = true, env = "KILN_HOME", value_name = "DIR")]
    data_dir: Option<PathBuf>,

    /// Compile plugins with fuel metering, so `--fuel` budgets can be set.
    #[arg(long)]
    fuel_metering: bool,

    /// Use on-demand instance allocation instead of the pooling allocator.
    #[arg(long)]
    no_pooling: bool,

    /// For `kiln run`, `kiln publish`, `kiln runs` and `kiln model`: act on this Kiln server
    /// (its /v1 API) instead of the local data directory, e.g. http://127.0.0.1:8480. Other
    /// commands refuse it.
    #[arg(long, env = "KILN_SERVER", value_name = "URL")]
    server: Option<String>,

    /// The bearer token to send to `--server` (moving an alias takes the publish scope).
    #[arg(long, env = "KILN_TOKEN", hide_env_values = true)]
    token: Option<String>,

    #[command(subcommand)]
    command: Command,
}

/// Where `kiln --help` tells a new user to start.
const START: &str = "\
Start here:
  kiln demo                       the quickstart end to end: a real dataset read, validated,
                                  split, scaled, trained on, evaluated and registered
  kiln run FILE.yaml              run a workflow (`kiln validate FILE.yaml` checks it only)
  kiln serve                      serve models, workflows, tracking (MLflow's API too) and the
                                  plugin registry over HTTP
  kiln plugin new NAME --lang L --role R
                                  start a plugin in rust, python, js, c or go

`kiln COMMAND --help` says more about each.";

#[derive(Debug, Subcommand)]
enum Command {
    /// Inspect and run single plugins.
    #[command(subcommand)]
    Plugin(plugin::PluginCommand),
    /// Publish a plugin to the registry, signed.
    Publish(registry::PublishArgs),
    /// Search the registry's plugins by words in their name, description and keywords.
    Search {
        /// Words to look for (none: every plugin).
        words: Vec<String>,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Show a plugin and the version a requirement resolves to: NAME[@REQ].
    Info {
        /// The plugin: NAME or NAME@REQ.
        spec: String,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Yank a version: resolution skips it unless pinned with `=`.
    Yank {
        /// The version: NAME@VERSION.
        spec: String,
    },
    /// Undo a yank.
    Unyank {
        /// The version: NAME@VERSION.
        spec: String,
    },
    /// Registry maintenance.
    #[command(subcommand)]
    Registry(registry::RegistryCommand),
    /// Publisher keys.
    #[command(subcommand)]
    Key(key::KeyCommand),
    /// Serve everything over HTTP until stopped: registered models (Kiln's predict API, the
    /// Open Inference Protocol, MLflow's /invocations), workflow runs, tracking (MLflow's
    /// REST API too), the plugin registry, health, readiness and metrics.
    Serve(serve::ServeArgs),
    /// Run a workflow: check it, resolve its plugins (through its lockfile), execute it.
    /// With --server, it runs on that server (its registry, its data) and is followed here.
    Run(workflow::RunArgs),
    /// Check a workflow without running it.
    Validate {
        /// The workflow file.
        workflow: PathBuf,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Re-execute a recorded run without the cache and compare every output digest.
    Replay {
        /// The run id, or a unique start of it.
        id: String,
        /// The most steps to run at once (default: the number of CPUs).
        #[arg(long, short = 'j')]
        jobs: Option<usize>,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Recorded workflow runs and their lineage.
    #[command(subcommand)]
    Runs(tracking::RunsCommand),
    /// Registered models.
    #[command(subcommand)]
    Model(tracking::ModelCommand),
    /// Bundles for devices: `kiln bundle FILE.yaml` (a workflow) or `kiln bundle model
    /// NAME@ALIAS`, precompiled for the target and signed; and checking and running them.
    #[command(subcommand)]
    Bundle(bundle::BundleCommand),
    /// Push this data directory's runs (workflow records, tracked runs, every metric point)
    /// to a central Kiln server; what it already has is not sent again.
    Sync(sync::SyncArgs),
    /// Run the quickstart end to end: read, validate, split, train, evaluate, register.
    Demo {
        /// The most steps to run at once (default: the number of CPUs).
        #[arg(long, short = 'j')]
        jobs: Option<usize>,
    },
}

/// Parses the process arguments and runs the command.
pub fn main() -> Result<ExitCode> {
    use clap::{CommandFactory as _, FromArgMatches as _};
    let matches = flags_where_used(Cli::command()).get_matches();
    let mut cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    let server_given = cli.take_flags(&matches);
    // Given on the command line to a command that works on the local data directory only,
    // `--server` is refused rather than ignored (KILN_SERVER in the environment is a default
    // for the commands that use it).
    if server_given && let Some(name) = cli.command.local_only() {
        anyhow::bail!(
            "`kiln {name}` works on the local data directory, not on a server; --server applies to `kiln run`, `kiln publish`, `kiln runs` and `kiln model`"
        );
    }
    let ctx = Ctx::new(&cli);
    match cli.command {
        Command::Plugin(cmd) => plugin::run(&ctx, cmd),
        Command::Publish(args) => registry::publish(&ctx, args),
        Command::Search { words, json } => registry::search(&ctx, words, json),
        Command::Info { spec, json } => registry::info(&ctx, &spec, json),
        Command::Yank { spec } => registry::yank(&ctx, &spec, true),
        Command::Unyank { spec } => registry::yank(&ctx, &spec, false),
        Command::Registry(cmd) => registry::registry(&ctx, cmd),
        Command::Key(cmd) => key::run(&ctx, cmd),
        Command::Serve(args) => serve::serve(&ctx, args),
        Command::Run(args) => workflow::run(&ctx, args),
        Command::Validate { workflow, json } => workflow::validate(&ctx, &workflow, json),
        Command::Replay { id, jobs, json } => workflow::replay(&ctx, &id, jobs, json),
        Command::Runs(cmd) => tracking::runs(&ctx, cmd),
        Command::Model(cmd) => tracking::model(&ctx, cmd),
        Command::Bundle(cmd) => bundle::run(&ctx, cmd),
        Command::Sync(args) => sync::sync(&ctx, args),
        Command::Demo { jobs } => workflow::demo(&ctx, jobs),
    }
}

/// The flags besides `--data-dir` that every command takes, before or after its name: each
/// subcommand gets its own copy (clap's `global` would show all of them on every command),
/// shown in its help only where the command uses it.
const SHARED_FLAGS: [&str; 4] = ["fuel_metering", "no_pooling", "server", "token"];

/// `cli` with the shared flags copied into every subcommand, hidden where unused.
fn flags_where_used(cli: clap::Command) -> clap::Command {
    let flags: Vec<clap::Arg> = cli
        .get_arguments()
        .filter(|a| SHARED_FLAGS.contains(&a.get_id().as_str()))
        .cloned()
        .collect();
    each_subcommand(cli, |c| {
        // Running plugins: the engine's flags; acting on a server: its URL and token.
        let used: &[&str] = match c.get_name() {
            "publish" | "runs" => &["server", "token"],
            "model" | "run" => &SHARED_FLAGS,
            "sync" => &["token"],
            "plugin" | "serve" | "replay" | "demo" | "bundle" => &["fuel_metering", "no_pooling"],
            _ => &[],
        };
        with_flags(c, &flags, used)
    })
}

fn with_flags(mut command: clap::Command, flags: &[clap::Arg], used: &[&str]) -> clap::Command {
    // Making plugin projects runs no plugin.
    let used = if matches!(command.get_name(), "new" | "build") {
        &[]
    } else {
        used
    };
    for flag in flags {
        let hide = !used.contains(&flag.get_id().as_str());
        command = command.arg(flag.clone().hide(hide));
    }
    each_subcommand(command, |c| with_flags(c, flags, used))
}

/// `command` with `f` applied to each of its direct subcommands.
fn each_subcommand(
    mut command: clap::Command,
    f: impl Fn(clap::Command) -> clap::Command,
) -> clap::Command {
    let names: Vec<String> = command
        .get_subcommands()
        .map(|c| c.get_name().to_string())
        .collect();
    for name in names {
        command = command.mut_subcommand(name, &f);
    }
    command
}

impl Cli {
    /// Takes the shared flags from wherever on the command line they were given (the
    /// innermost wins); returns whether `--server` was given there (not by KILN_SERVER).
    fn take_flags(&mut self, matches: &clap::ArgMatches) -> bool {
        use clap::parser::ValueSource;
        let mut server_given = false;
        let mut level = Some(matches);
        while let Some(m) = level {
            let given = |id: &str| m.value_source(id) == Some(ValueSource::CommandLine);
            if given("server") {
                self.server = m.get_one::<String>("server").cloned();
                server_given = true;
            }
            if given("token") {
                self.token = m.get_one::<String>("token").cloned();
            }
            self.fuel_metering |= given("fuel_metering");
            self.no_pooling |= given("no_pooling");
            level = m.subcommand().map(|(_, sub)| sub);
        }
        server_given
    }
}

impl Command {
    /// The command's name when it cannot act on a server (`--server` is refused).
    fn local_only(&self) -> Option<&'static str> {
        Some(match self {
            Command::Publish(_)
            | Command::Runs(_)
            | Command::Model(_)
            | Command::Bundle(_)
            | Command::Run(_) => {
                return None;
            }
            Command::Plugin(_) => "plugin",
            Command::Search { .. } => "search",
            Command::Info { .. } => "info",
            Command::Yank { .. } => "yank",
            Command::Unyank { .. } => "unyank",
            Command::Registry(_) => "registry",
            Command::Key(_) => "key",
            Command::Serve(_) => "serve",
            Command::Validate { .. } => "validate",
            Command::Replay { .. } => "replay",
            Command::Sync(_) => "sync",
            Command::Demo { .. } => "demo",
        })
    }
}

/// What every subcommand may need, built on demand.
pub(crate) struct Ctx {
    data_dir: PathBuf,
    engine_options: EngineOptions,
    server: Option<(String, Option<String>)>,
    /// `--token` / `KILN_TOKEN`, for `--server` and for `kiln sync`.
    token: Option<String>,
    registry: std::sync::OnceLock<std::sync::Arc<crate::registry::Registry>>,
}

impl Ctx {
    fn new(cli: &Cli) -> Ctx {
        let data_dir = cli.data_dir.clone().unwrap_or_else(default_data_dir);
        Ctx {
            registry: std::sync::OnceLock::new(),
            data_dir,
            server: cli
                .server
                .as_ref()
                .map(|s| (s.trim_end_matches('/').to_string(), cli.token.clone())),
            token: cli.token.clone(),
            engine_options: {
                let default = EngineOptions::default();
                EngineOptions {
                    pooling: default.pooling && !cli.no_pooling,
                    fuel: cli.fuel_metering,
                    ..default
                }
            },
        }
    }

    /// The registry in the data directory, created on first use.
    ///
    /// The seed of standard plugins is imported on first use (see `registry::seed`).
    pub(crate) fn registry(&self) -> Result<std::sync::Arc<crate::registry::Registry>> {
        if let Some(registry) = self.registry.get() {
            return Ok(registry.clone());
        }
        let registry = crate::registry::Registry::open(&self.data_dir.join("registry.redb"))?;
        if let Some(seed) = crate::registry::seed::default_dir() {
            let imported = crate::registry::seed::import(&registry, &seed, &self.key_path("seed"))
                .with_context(|| format!("importing the plugin seed from {}", seed.display()))?;
            if !imported.added.is_empty() {
                eprintln!(
                    "kiln: imported {} standard plugins into {}",
                    imported.added.len(),
                    registry.path().display()
                );
            }
        }
        Ok(self
            .registry
            .get_or_init(|| std::sync::Arc::new(registry))
            .clone())
    }

    /// Where the signing key called `name` is kept.
    pub(crate) fn key_path(&self, name: &str) -> PathBuf {
        self.data_dir.join("keys").join(format!("{name}.key"))
    }

    /// Loads a plugin from a component file, or from the registry when `source` is
    /// `name[@req]` and no such file exists (its digest and signature are checked).
    pub(crate) fn load_plugin(
        &self,
        host: &PluginHost,
        source: &str,
        role: Option<crate::plugin::Role>,
    ) -> Result<std::sync::Arc<crate::plugin::Plugin>> {
        let path = std::path::Path::new(source);
        if path.exists() || source.ends_with(".wasm") {
            return Ok(host.load_file(path, role)?);
        }
        let (name, req) =
            crate::registry::resolve::parse_spec(source).map_err(anyhow::Error::msg)?;
        let registry = self.registry()?;
        let record = registry.resolve(name, &req)?;
        let bytes = registry.fetch(&record)?;
        Ok(host.load_bytes(&record.spec(), &bytes, role)?)
    }

    /// The plugin host, with its compiled-artifact cache in the registry.
    pub(crate) fn plugin_host(&self) -> Result<PluginHost> {
        let engine = KilnEngine::new(&self.engine_options)?;
        // Compiled code is kept in the registry file, beside the components, and in the
        // machine's shared directory of compiled code if one is set.
        let mut cache = ArtifactCache::in_store(engine.engine(), self.registry()?);
        if let Some(dir) = std::env::var_os("KILN_CODE_CACHE").filter(|d| !d.is_empty()) {
            cache = cache.with_shared(dir);
        }
        PluginHost::new(engine, cache).context("setting up the plugin host")
    }
}

/// Writes a command's output to stdout. A reader that went away (`kiln ... | head`) ends
/// the output quietly: that is not an error.
pub(crate) fn emit(text: &str) -> Result<()> {
    use std::io::Write as _;
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other.context("writing to stdout"),
    }
}

/// Writes a document to stdout as pretty JSON, one trailing newline.
pub(crate) fn emit_json<T: serde::Serialize + ?Sized>(doc: &T) -> Result<()> {
    emit(&format!("{}\n", serde_json::to_string_pretty(doc)?))
}

fn default_data_dir() -> PathBuf {
    std::env::home_dir()
        .map(|h| h.join(".kiln"))
        .unwrap_or_else(|| PathBuf::from(".kiln"))
}
