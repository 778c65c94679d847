//! The `apiary` command-line interface: one clap struct per subcommand, each with an
//! `execute` that calls the library. Errors are reported as one line with a non-zero exit.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand, ValueEnum};

use crate::demo::{DEMO_REPOSITORY, DemoApi, DemoApiConfig};
use crate::{
    Cidr, FileStateStore, Grant, Manifest, MemoryStateStore, NdjsonSink, OperatorConfig, Plugin, RunRequest, Runtime,
    RuntimeConfig, SecretGrant, SourceSpec, StateStore, StaticSource, TenantId,
};

/// Runs WebAssembly plugins that automate third-party APIs.
#[derive(Debug, Parser)]
#[command(name = "apiary", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
    /// Log filter (tracing's `EnvFilter` syntax); `RUST_LOG` overrides it.
    #[arg(long, global = true, default_value = "info")]
    pub log: String,
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Don't cache compiled components on disk.
    #[arg(long, global = true)]
    pub no_cache: bool,
    /// The operator file (`apiary.toml`) that installs plugins and grants them hosts and
    /// secrets; defaults to `$APIARY_OPERATOR`. Without one, `run` grants a plugin directory
    /// the hosts it asks for and only the secrets given with --secret or --env-file.
    #[arg(long, global = true, value_name = "FILE")]
    pub operator: Option<PathBuf>,
    /// Worker threads of the async runtime (default: one per core).
    #[arg(long, global = true, value_name = "N")]
    pub threads: Option<usize>,
}

/// How logs are written to stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per event.
    Json,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run an operation of a plugin; records go to stdout as NDJSON, a summary to stderr.
    Run(RunCommand),
    /// Print a plugin's manifest and its `describe()`.
    Inspect(InspectCommand),
    /// Start the bundled example API on 127.0.0.1 and run the github plugin against it.
    Demo(DemoCommand),
    /// Write a new plugin skeleton (manifest, code) in Rust, Python or JavaScript.
    New(NewCommand),
    /// Build a plugin directory (Rust, Python or JavaScript) into the component its manifest names.
    Build(BuildCommand),
}

/// `apiary new`.
#[derive(Debug, clap::Args)]
pub struct NewCommand {
    /// The plugin's name (lower case, digits and `-`); also its directory unless --dir is given.
    pub name: String,
    /// The language to write it in: rust, python or js.
    #[arg(long, default_value = "rust")]
    pub lang: crate::authoring::Language,
    /// The directory to create (default: ./NAME).
    #[arg(long)]
    pub dir: Option<PathBuf>,
}

/// `apiary build`.
#[derive(Debug, clap::Args)]
pub struct BuildCommand {
    /// The plugin directory (holding plugin.toml).
    #[arg(default_value = ".")]
    pub dir: PathBuf,
    /// Where the pinned componentize tools are cached (default: $APIARY_TOOLS_DIR, else the
    /// user cache directory).
    #[arg(long, value_name = "DIR")]
    pub tools_dir: Option<PathBuf>,
}

impl NewCommand {
    /// Writes the skeleton and says how to build and run it.
    ///
    /// # Errors
    /// The directory exists, the name is not usable, or a file cannot be written.
    pub fn execute(self) -> anyhow::Result<()> {
        let dir = self.dir.unwrap_or_else(|| PathBuf::from(&self.name));
        crate::authoring::new_plugin(&dir, &self.name, self.lang)?;
        eprintln!(
            "apiary new: wrote a {} plugin in {d}\n  build it: apiary build {d}\n  run it:   apiary run {d} list --config base_url=http://127.0.0.1:8080",
            self.lang,
            d = dir.display()
        );
        Ok(())
    }
}

impl BuildCommand {
    /// Builds the plugin and prints the component's path.
    ///
    /// # Errors
    /// See [`crate::authoring::BuildError`].
    pub fn execute(self) -> anyhow::Result<()> {
        let mut options = crate::authoring::BuildOptions::default();
        if let Some(tools_dir) = self.tools_dir {
            options.tools_dir = tools_dir;
        }
        let started = std::time::Instant::now();
        let built = crate::authoring::build(&self.dir, &options)?;
        eprintln!(
            "apiary build: built the {} plugin into {} in {:.1?}",
            built.language,
            built.component.display(),
            started.elapsed()
        );
        Ok(())
    }
}

/// Secrets granted on the command line (for local use; an operator file grants them too).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct SecretFlags {
    /// Grants the secret NAME from SOURCE: env:VAR, dotenv:FILE[#KEY] or cmd:PROGRAM ARGS...
    /// (run without a shell), e.g. `github_token=cmd:pass show apiary/github` (repeatable).
    #[arg(long = "secret", value_name = "NAME=SOURCE", value_parser = parse_secret_flag)]
    pub secrets: Vec<(String, SourceSpec)>,
    /// A .env file whose keys are secret names (`github_token=...`): grants each secret the
    /// plugin asks for that the file holds.
    #[arg(long, value_name = "FILE")]
    pub env_file: Option<PathBuf>,
}

/// Which plugin a command is about, and what the command line grants it.
#[derive(Debug, clap::Args)]
pub struct PluginArgs {
    /// The plugin: its id in the operator file, or its directory or plugin.toml.
    pub plugin: String,
    /// Secrets granted on the command line.
    #[command(flatten)]
    pub grants: SecretFlags,
    /// Lets the plugin connect to addresses in CIDR (e.g. 127.0.0.0/8, 10.1.2.3, ::1/128), which
    /// are otherwise refused when they are loopback, private, link-local or otherwise special,
    /// whatever name resolves to them (repeatable).
    #[arg(long = "allow-net", value_name = "CIDR")]
    pub allow_net: Vec<Cidr>,
    /// Use this component instead of the manifest's (or the operator file's) `component`.
    #[arg(long)]
    pub component: Option<PathBuf>,
}

/// `apiary run`.
#[derive(Debug, clap::Args)]
pub struct RunCommand {
    /// The plugin, its grants and its component.
    #[command(flatten)]
    pub target: PluginArgs,
    /// The operation to run.
    pub operation: String,
    /// The operation's input as JSON, or `@FILE` to read it from a file.
    #[arg(long, default_value = "{}")]
    pub input: String,
    /// A configuration value, overriding the manifest's `[config]` (repeatable).
    #[arg(long = "config", value_name = "KEY=VALUE", value_parser = parse_key_value)]
    pub config: Vec<(String, String)>,
    /// The tenant the run belongs to.
    #[arg(long, default_value = TenantId::DEFAULT_NAME)]
    pub tenant: String,
    /// Keep checkpoint state in this directory (otherwise state lasts for this run only).
    #[arg(long)]
    pub state_dir: Option<PathBuf>,
}

/// `apiary inspect`.
#[derive(Debug, clap::Args)]
pub struct InspectCommand {
    /// The plugin, and what the command line grants it (as `run` would).
    #[command(flatten)]
    pub target: PluginArgs,
}

/// `apiary demo`.
#[derive(Debug, clap::Args)]
pub struct DemoCommand {
    /// The github plugin's directory (found next to the working directory or the sources by default).
    #[arg(long)]
    pub plugin: Option<PathBuf>,
    /// Use this component instead of the manifest's `component`.
    #[arg(long)]
    pub component: Option<PathBuf>,
    /// Items in the example repository.
    #[arg(long, default_value_t = 45)]
    pub items: u32,
    /// Page size asked of the example API.
    #[arg(long, default_value_t = 10)]
    pub per_page: u32,
    /// Don't inject the 429 and the 503.
    #[arg(long)]
    pub no_faults: bool,
}

fn parse_key_value(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_string(), value.to_string())),
        _ => Err(format!("`{text}` is not KEY=VALUE")),
    }
}

fn parse_secret_flag(text: &str) -> Result<(String, SourceSpec), String> {
    let (name, source) = parse_key_value(text).map_err(|_| {
        format!("`{text}` is not NAME=SOURCE, e.g. github_token=env:GITHUB_TOKEN or github_token=cmd:pass show apiary/github")
    })?;
    let source = source.parse::<SourceSpec>().map_err(|e| e.to_string())?;
    Ok((name, source))
}

/// Entry point of the `apiary` binary: parses the arguments, runs the command, and prints any
/// error as one line.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let logs = init_logging(&cli.log, cli.log_format);
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Some(threads) = cli.threads {
        builder.worker_threads(threads.max(1));
    }
    let runtime = match builder.enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => return fail(anyhow::Error::new(error).context("failed to start the async runtime")),
    };
    let result = runtime.block_on(cli.execute());
    drop(runtime);
    // Every log line is written before the closing error line.
    drop(logs);
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => fail(error),
    }
}

fn fail(error: anyhow::Error) -> ExitCode {
    eprintln!("error: {error:#}");
    ExitCode::FAILURE
}

/// Logs go to stderr through a writer thread: a request never waits for the terminal or a log
/// file. The writer is not lossy (audit events must not be dropped): when it falls far behind,
/// logging waits. Dropping the guard flushes it.
fn init_logging(filter: &str, format: LogFormat) -> tracing_appender::non_blocking::WorkerGuard {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(filter))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(false)
        .finish(std::io::stderr());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(writer);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.with_ansi(std::io::stderr().is_terminal()).compact().init(),
    }
    guard
}

impl Cli {
    /// Runs the chosen subcommand.
    ///
    /// # Errors
    /// Any failure, with context saying what was being done.
    pub async fn execute(self) -> anyhow::Result<()> {
        let Cli {
            command,
            no_cache,
            operator,
            ..
        } = self;
        // Authoring needs neither a runtime nor an operator file.
        let run_setup = || -> anyhow::Result<(RuntimeConfig, Option<OperatorConfig>)> {
            let config = RuntimeConfig {
                cache_dir: if no_cache { None } else { crate::default_cache_dir() },
                ..RuntimeConfig::default()
            };
            let operator = OperatorConfig::discover(operator.as_deref()).context("failed to load the operator file")?;
            Ok((config, operator))
        };
        match command {
            Command::New(command) => command.execute(),
            Command::Build(command) => command.execute(),
            Command::Run(command) => {
                let (config, operator) = run_setup()?;
                command.execute(config, operator.as_ref()).await
            }
            Command::Inspect(command) => {
                let (config, operator) = run_setup()?;
                command.execute(config, operator.as_ref()).await
            }
            Command::Demo(command) => command.execute(run_setup()?.0).await,
        }
    }
}

impl PluginArgs {
    /// The plugin these arguments name (an installed id, or a directory when there is no
    /// operator file), loaded with its grant: the operator file's or the command line's, plus
    /// the secret flags.
    fn load(&self, runtime: &Runtime, operator: Option<&OperatorConfig>) -> anyhow::Result<Plugin> {
        let (manifest, mut grant, installed_component) = match operator {
            Some(operator) => {
                let (id, install) = operator.find(&self.plugin)?;
                let manifest = Manifest::load(&install.path)?;
                (manifest, operator.grant(id), install.component.clone())
            }
            None => {
                let manifest = Manifest::load(Path::new(&self.plugin))?;
                let grant = Grant::local(&manifest.manifest);
                (manifest, grant, None)
            }
        };
        self.grants.grant(&manifest.manifest, &mut grant)?;
        grant.networks.extend(self.allow_net.iter().copied());
        let path = self
            .component
            .clone()
            .or(installed_component)
            .unwrap_or_else(|| manifest.component_path());
        ensure_component(&path)?;
        // Compiling takes seconds of CPU: off the async threads (the CLI's runtime is multi-threaded).
        Ok(tokio::task::block_in_place(|| {
            runtime.load_component(manifest, grant, &path)
        })?)
    }
}

/// Fails with a build hint when the component at `path` does not exist.
fn ensure_component(path: &Path) -> anyhow::Result<()> {
    if !path.exists() {
        let hint = match std::env::var_os("CARGO_TARGET_DIR") {
            Some(dir) => format!(
                "; CARGO_TARGET_DIR is set, so cargo put it under {}: pass --component",
                dir.to_string_lossy()
            ),
            None => String::new(),
        };
        bail!(
            "component {} not found: build it with `cargo build --release --target wasm32-wasip2` (see README.md), or pass --component{hint}",
            path.display()
        );
    }
    Ok(())
}

impl SecretFlags {
    /// Adds the secrets these flags grant to `grant`. Every flag must name a secret the plugin
    /// asks for; `--env-file` grants the ones the file holds, by secret name.
    fn grant(&self, manifest: &Manifest, grant: &mut Grant) -> anyhow::Result<()> {
        let asked = &manifest.permissions.secrets;
        let names = || asked.keys().map(String::as_str).collect::<Vec<_>>().join(", ");
        if let Some(file) = &self.env_file {
            let keys = env_file_keys(file)?;
            for name in asked.keys() {
                if keys.contains(name) {
                    let spec = SourceSpec::Dotenv {
                        path: file.clone(),
                        key: Some(name.clone()),
                    };
                    grant.secrets.insert(name.clone(), SecretGrant::from_spec(name, spec));
                } else if keys.contains(&name.to_ascii_uppercase()) && !grant.secrets.contains_key(name) {
                    bail!(
                        "{}: the key `{}` is an environment-variable name; the keys of --env-file are secret names: write `{name}=...`",
                        file.display(),
                        name.to_ascii_uppercase()
                    );
                }
            }
        }
        for (name, spec) in &self.secrets {
            if !asked.contains_key(name) {
                bail!(
                    "--secret {name}: plugin `{}` does not ask for a secret named `{name}` (it asks for: {})",
                    manifest.name,
                    if asked.is_empty() { "none".to_string() } else { names() }
                );
            }
            grant
                .secrets
                .insert(name.clone(), SecretGrant::from_spec(name, spec.clone()));
        }
        Ok(())
    }
}

/// The keys of a `.env` file (never its values).
fn env_file_keys(file: &Path) -> anyhow::Result<std::collections::BTreeSet<String>> {
    let error = || format!("failed to read env file {}", file.display());
    let mut keys = std::collections::BTreeSet::new();
    for item in dotenvy::from_path_iter(file).with_context(error)? {
        let (key, _value) = item.with_context(error)?;
        keys.insert(key);
    }
    Ok(keys)
}

impl RunCommand {
    /// Runs the operation, writing records to stdout and the summary to stderr.
    ///
    /// # Errors
    /// A bad manifest, input, grant or secret source, or a failed run.
    pub async fn execute(self, mut config: RuntimeConfig, operator: Option<&OperatorConfig>) -> anyhow::Result<()> {
        let input = read_input(&self.input)?;
        let tenant = TenantId::new(self.tenant.as_str());
        config.state = match &self.state_dir {
            Some(dir) => Arc::new(FileStateStore::new(dir)) as Arc<dyn StateStore>,
            None => Arc::new(MemoryStateStore::default()),
        };
        let runtime = Runtime::new(config)?;
        let plugin = self.target.load(&runtime, operator)?;
        let sink = Arc::new(NdjsonSink::new(std::io::stdout()));
        let request = RunRequest {
            tenant,
            operation: self.operation.clone(),
            input,
            config: self.config.into_iter().collect::<BTreeMap<_, _>>(),
            sink,
        };
        let report = runtime.run(&plugin, request).await?;
        eprintln!("apiary: {} {}: {report}", plugin.id(), self.operation);
        Ok(())
    }
}

fn read_input(input: &str) -> anyhow::Result<String> {
    let (text, origin) = match input.strip_prefix('@') {
        Some(path) => (
            std::fs::read_to_string(path).with_context(|| format!("failed to read --input file {path}"))?,
            path.to_string(),
        ),
        None => (input.to_string(), "--input".to_string()),
    };
    serde_json::from_str::<serde_json::Value>(&text).with_context(|| format!("{origin} is not valid JSON"))?;
    Ok(text)
}

impl InspectCommand {
    /// Prints what the plugin asks for beside what it is granted, and its own description.
    ///
    /// # Errors
    /// A bad manifest or component, a required secret that is not granted, or a plugin that
    /// fails to describe itself.
    pub async fn execute(self, config: RuntimeConfig, operator: Option<&OperatorConfig>) -> anyhow::Result<()> {
        let runtime = Runtime::new(config)?;
        let plugin = self.target.load(&runtime, operator)?;
        let description = runtime.describe(&plugin).await?;
        let manifest = plugin.manifest();
        println!("name:        {} {}", manifest.manifest.name, manifest.manifest.version);
        if let Some(description) = &manifest.manifest.description {
            println!("description: {}", crate::escape_guest_text(description));
        }
        println!("manifest:    {}", manifest.path.display());
        print!("{}", plugin.grant_report());
        println!("\ndescribe:    {} {}", description.name, description.version);
        for (name, summary) in &description.operations {
            println!("  {name:<12} {summary}");
        }
        Ok(())
    }
}

impl DemoCommand {
    /// Starts the example API, runs the github plugin against it and reports what happened.
    ///
    /// # Errors
    /// A missing plugin build, or a failed run.
    pub async fn execute(self, config: RuntimeConfig) -> anyhow::Result<()> {
        let plugin_dir = match self.plugin {
            Some(dir) => dir,
            None => default_github_plugin_dir()?,
        };
        let manifest = Manifest::load(&plugin_dir)?;
        let token = format!("demo-{:016x}", fastrand::u64(..));
        let api = DemoApi::start(DemoApiConfig {
            token: token.clone(),
            items: self.items,
            inject_faults: !self.no_faults,
            ..DemoApiConfig::default()
        })
        .await
        .context("failed to start the example API")?;
        eprintln!(
            "apiary demo: example API listening on {} (bearer token required)",
            api.base_url()
        );
        let runtime = Runtime::new(config)?;
        let tenant = TenantId::default();
        // The demo is its own operator: it grants the plugin the token its example API expects.
        let flags = SecretFlags::default();
        let mut grant = Grant::local(&manifest.manifest);
        flags.grant(&manifest.manifest, &mut grant)?;
        // Its example API listens on loopback, which a plugin may reach only when granted.
        let grant = grant
            .secret("github_token", SecretGrant::new(StaticSource::new(token.into())))
            .network(DEMO_NETWORK.parse().expect("a valid network"));
        let path = self.component.clone().unwrap_or_else(|| manifest.component_path());
        ensure_component(&path)?;
        let plugin = tokio::task::block_in_place(|| runtime.load_component(manifest, grant, &path))?;
        let (owner, repo) = DEMO_REPOSITORY;
        let input = serde_json::json!({"owner": owner, "repo": repo, "per_page": self.per_page}).to_string();
        let sink = Arc::new(NdjsonSink::new(std::io::stdout()));
        let request = RunRequest::new("issues", sink)
            .input(input)
            .config("base_url", api.base_url())
            .tenant(tenant);
        let report = runtime.run(&plugin, request).await?;
        let seen = api.requests();
        let authorized = seen.iter().filter(|r| r.authorized).count();
        let faults = seen.iter().filter(|r| r.status == 429 || r.status == 503).count();
        eprintln!("apiary demo: {report}");
        eprintln!(
            "apiary demo: the API saw {} requests, {authorized} carrying the token the plugin never saw; {faults} got an injected 429/503 and were retried",
            seen.len()
        );
        Ok(())
    }
}

/// The network the demo's example API listens in, granted to the plugin.
const DEMO_NETWORK: &str = "127.0.0.0/8";

/// `plugins/github` under the working directory, else next to this crate's sources.
fn default_github_plugin_dir() -> anyhow::Result<PathBuf> {
    let candidates = [
        PathBuf::from("plugins/github"),
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugins/github"),
    ];
    candidates
        .into_iter()
        .find(|dir| dir.join(crate::MANIFEST_FILE).is_file())
        .context("cannot find plugins/github: run from the repository root or pass --plugin")
}
