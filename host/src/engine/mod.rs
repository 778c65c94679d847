//! The runtime: one wasmtime engine (async, pooling allocator, epoch interruption), one
//! compiled component and pre-instantiated handle per plugin, and a fresh store per run with
//! its own memory limit and deadline.

mod admission;
mod cache;
mod guest_output;
mod limits;

pub use admission::{AdmissionConfig, Busy, DEFAULT_QUEUE_TIMEOUT, MAX_QUEUED_PER_TENANT};
pub use cache::{cache_key, default_cache_dir};
pub use limits::{
    EPOCH_TICK, MAX_CORE_INSTANCES_PER_RUN, MAX_MEMORIES_PER_RUN, MAX_TABLES_PER_RUN, MemoryLimitExceeded,
};

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use wasmtime::component::{Linker, ResourceTable};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use crate::bindings::{self, Plugin as PluginBindings, PluginPre};
use crate::clock::Clock;
use crate::config::ConfigCtx;
use crate::grant::{Grant, GrantError, GrantReport, is_valid_plugin_id, resolve};
use crate::guest_text::escape_guest_text;
use crate::http::{BucketCounters, Egress, EgressParts, EgressPolicy, HttpCtx, RunStats};
use crate::log::LogCtx;
use crate::manifest::{LoadedManifest, MAX_MEMORY_MIB};
use crate::output::{OutputCtx, RecordSink};
use crate::ratelimit::{RateLimitCtx, RateLimiter};
use crate::secrets::{RunRedactor, SecretsCtx, SourceError};
use crate::state::{MemoryStateStore, StateCtx, StateScope, StateStore};
use crate::tenant::TenantId;
use crate::toml_file::ConfigError;
use admission::{Admission, Admitted};
use guest_output::{GuestOutput, GuestStream};
use limits::{EpochTicker, RunLimiter};

/// Default number of runs that may be live at once (the pooling allocator's slot count).
pub const DEFAULT_MAX_CONCURRENT_RUNS: u32 = 64;
/// Default number of runs one tenant may have live at once: three quarters of the slots, so
/// one tenant's burst leaves room for the others.
pub const DEFAULT_MAX_RUNS_PER_TENANT: u32 = DEFAULT_MAX_CONCURRENT_RUNS / 4 * 3;
/// Bytes of each freed linear-memory slot kept resident and reset with `memset` for the next run.
pub const KEEP_RESIDENT_MEMORY_BYTES: usize = 2 * 1024 * 1024;
/// Bytes of each freed table slot kept resident.
pub const KEEP_RESIDENT_TABLE_BYTES: usize = 1024 * 1024;
/// How much of a guest's stderr (and stdout) is kept: the last bytes, to explain a trap (a Rust
/// panic message, usually, which comes last).
pub const GUEST_STDERR_BYTES: usize = 16 * 1024;

/// How to build a [`Runtime`].
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    /// Where compiled components are cached; `None` compiles on every load.
    pub cache_dir: Option<PathBuf>,
    /// Runs that may be live at once; more wait in a queue.
    pub max_concurrent_runs: u32,
    /// Runs one tenant may have live at once.
    pub max_runs_per_tenant: u32,
    /// How long a run waits for a slot before it fails with [`RunError::Busy`].
    pub queue_timeout: Duration,
    /// The egress pipeline's shared parts (buckets, clock, pool).
    pub egress: EgressParts,
    /// Where checkpoint state lives.
    pub state: Arc<dyn StateStore>,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        Self {
            cache_dir: default_cache_dir(),
            max_concurrent_runs: DEFAULT_MAX_CONCURRENT_RUNS,
            max_runs_per_tenant: DEFAULT_MAX_RUNS_PER_TENANT,
            queue_timeout: DEFAULT_QUEUE_TIMEOUT,
            egress: EgressParts::default(),
            state: Arc::new(MemoryStateStore::default()),
        }
    }
}

/// Why a plugin could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The manifest, or the component it names, could not be read, or fails its pin.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The grant names the plugin with an id that cannot key its state and buckets.
    #[error(transparent)]
    Grant(#[from] GrantError),
    /// The component did not compile or does not fit the `apiary:plugin` world.
    #[error("failed to load component {path}: {message}")]
    Component {
        /// The component's path.
        path: PathBuf,
        /// The compiler's or linker's explanation.
        message: String,
    },
}

/// The runtime could not be built (an engine configuration the platform refuses).
#[derive(Debug, thiserror::Error)]
#[error("failed to start the wasm engine: {0}")]
pub struct EngineError(String);

/// Why a run failed. Guest-reported failures and host-enforced limits are told apart.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The plugin has no such operation.
    #[error("plugin `{plugin}` has no operation `{operation}`")]
    UnknownOperation {
        /// The plugin.
        plugin: String,
        /// The operation asked for.
        operation: String,
    },
    /// The plugin rejected the input.
    #[error("plugin `{plugin}` rejected the input: {message}")]
    InvalidInput {
        /// The plugin.
        plugin: String,
        /// The plugin's explanation.
        message: String,
    },
    /// The plugin reported a failure.
    #[error("plugin `{plugin}` failed: {message}")]
    Failed {
        /// The plugin.
        plugin: String,
        /// The plugin's explanation.
        message: String,
    },
    /// The run went past its wall-clock deadline and was stopped.
    #[error("plugin `{plugin}` was stopped: it exceeded its deadline of {}", humantime::format_duration(*.deadline))]
    DeadlineExceeded {
        /// The plugin.
        plugin: String,
        /// The deadline.
        deadline: Duration,
    },
    /// The run asked for more memory than its limit and was stopped.
    #[error("plugin `{plugin}` was stopped: {source}")]
    MemoryExceeded {
        /// The plugin.
        plugin: String,
        /// The limit and the request.
        source: MemoryLimitExceeded,
    },
    /// The guest trapped (a panic, an abort, a host-side failure such as a closed output).
    #[error("plugin `{plugin}` crashed: {message}")]
    Trap {
        /// The plugin.
        plugin: String,
        /// The trap and, when the guest printed one, its last stderr lines.
        message: String,
    },
    /// The grant does not let the plugin run: a secret it requires is not granted.
    #[error(transparent)]
    NotGranted(#[from] GrantError),
    /// A required secret's source failed before the plugin started.
    #[error(transparent)]
    SecretUnavailable(#[from] SourceError),
    /// No run slot freed up within the queue timeout.
    #[error("plugin `{plugin}` did not start: {source}")]
    Busy {
        /// The plugin.
        plugin: String,
        /// The limit that stayed full.
        source: Busy,
    },
}

/// A plugin's self-description, from its `describe` export.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginDescription {
    /// The plugin's name.
    pub name: String,
    /// The plugin's version.
    pub version: String,
    /// Its operations, as (name, one-line summary).
    pub operations: Vec<(String, String)>,
}

/// A plugin ready to run: its manifest, its grant, the policy they resolve to, and its
/// pre-instantiated component.
pub struct Plugin {
    manifest: LoadedManifest,
    grant: Grant,
    /// What runs may do, or why the grant does not let the plugin run (reported by `run`, so
    /// that `inspect` can still show what is missing).
    policy: Result<Arc<EgressPolicy>, GrantError>,
    pre: PluginPre<RunState>,
}

impl fmt::Debug for Plugin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Plugin")
            .field("manifest", &self.manifest)
            .finish_non_exhaustive()
    }
}

impl Plugin {
    /// The plugin's manifest.
    pub fn manifest(&self) -> &LoadedManifest {
        &self.manifest
    }

    /// The plugin's name, as its manifest gives it.
    pub fn name(&self) -> &str {
        &self.manifest.manifest.name
    }

    /// The plugin's id: the name it is installed under, keying its state, buckets and logs.
    pub fn id(&self) -> &str {
        &self.grant.plugin_id
    }

    /// What the plugin asks for beside what it is granted, for `apiary inspect`.
    pub fn grant_report(&self) -> GrantReport<'_> {
        GrantReport {
            manifest: &self.manifest.manifest,
            grant: &self.grant,
        }
    }
}

/// What to run: an operation, its input, and the run's tenant, configuration and output.
#[derive(Debug, Clone)]
pub struct RunRequest {
    /// The tenant the run belongs to.
    pub tenant: TenantId,
    /// The operation to run.
    pub operation: String,
    /// The input, a JSON document.
    pub input: String,
    /// Configuration overriding the manifest's `[config]`.
    pub config: BTreeMap<String, String>,
    /// Where records go.
    pub sink: Arc<dyn RecordSink>,
}

impl RunRequest {
    /// A run of `operation` for the default tenant with input `{}` and no configuration.
    pub fn new(operation: impl Into<String>, sink: Arc<dyn RecordSink>) -> Self {
        Self {
            tenant: TenantId::default(),
            operation: operation.into(),
            input: "{}".into(),
            config: BTreeMap::new(),
            sink,
        }
    }

    /// The same run with `input`.
    pub fn input(mut self, input: impl Into<String>) -> Self {
        self.input = input.into();
        self
    }

    /// The same run with `key` set to `value`.
    pub fn config(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.config.insert(key.into(), value.into());
        self
    }

    /// The same run for `tenant`.
    pub fn tenant(mut self, tenant: TenantId) -> Self {
        self.tenant = tenant;
        self
    }
}

/// What a finished run did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunReport {
    /// Pages the plugin says it read.
    pub pages: u32,
    /// The plugin's closing message.
    pub message: Option<String>,
    /// Requests the plugin made.
    pub requests: u64,
    /// Attempts sent to servers.
    pub attempts: u64,
    /// Retries made.
    pub retries: u64,
    /// Connections opened (a request on a kept-alive pooled connection opens none).
    pub connections_opened: u64,
    /// Waits for a rate-limit slot.
    pub rate_limit_waits: u64,
    /// Responses that announced a spent quota (`Retry-After`, `RateLimit`, `X-RateLimit-*`),
    /// pausing their bucket for every run.
    pub learned_pauses: u64,
    /// Circuit breakers the run's attempts opened.
    pub breaker_opens: u64,
    /// Retries the retry budget refused.
    pub retries_denied: u64,
    /// The counts per destination host.
    pub buckets: BTreeMap<String, BucketCounters>,
    /// Time spent waiting for retries and rate limits.
    pub waited: Duration,
    /// Requests that failed.
    pub failures: u64,
    /// Records emitted.
    pub records: u64,
    /// Response bytes received.
    pub bytes_received: u64,
    /// Wall-clock duration of the run.
    pub duration: Duration,
}

impl fmt::Display for RunReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} records, {} pages, {} requests ({} retries, {} rate-limit waits, {} failed), waited {}, took {}",
            self.records,
            self.pages,
            self.requests,
            self.retries,
            self.rate_limit_waits,
            self.failures,
            humantime::format_duration(Duration::from_millis(self.waited.as_millis() as u64)),
            humantime::format_duration(Duration::from_millis(self.duration.as_millis() as u64)),
        )?;
        // What only an unusual run has: said when it happened.
        for (count, what) in [
            (self.learned_pauses, "rate-limit pauses learned from responses"),
            (self.breaker_opens, "circuit breakers opened"),
            (self.retries_denied, "retries the retry budget refused"),
        ] {
            if count > 0 {
                write!(f, "; {what}: {count}")?;
            }
        }
        if let Some(message) = &self.message {
            write!(f, "; {message}")?;
        }
        Ok(())
    }
}

/// A store's data: WASI (granting nothing) plus one context per Apiary capability.
pub(crate) struct RunState {
    wasi: WasiCtx,
    /// `wasi:http`'s own state (field limits); its requests go through `http`'s hooks.
    wasi_http: WasiHttpCtx,
    table: ResourceTable,
    stderr: GuestOutput,
    limiter: RunLimiter,
    http: HttpCtx,
    secrets: SecretsCtx,
    log: LogCtx,
    config: ConfigCtx,
    state: StateCtx,
    output: OutputCtx,
    ratelimit: RateLimitCtx,
    /// Every secret the run holds, for scrubbing its failure text and stderr.
    redactor: Arc<RunRedactor>,
}

/// A stock `wasi:http` guest's requests are sent by the run's [`HttpCtx`], the same pipeline
/// the `apiary:plugin/http` interface uses.
impl WasiHttpView for RunState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.wasi_http,
            table: &mut self.table,
            hooks: &mut self.http,
        }
    }
}

impl WasiView for RunState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// Runs plugins: owns the engine, the linker and the app-wide egress pipeline.
///
/// ```no_run
/// use apiary_host::{Grant, Manifest, MemorySink, RunRequest, Runtime, RuntimeConfig, SecretGrant};
/// use std::{path::Path, sync::Arc};
///
/// # async fn demo() -> anyhow::Result<()> {
/// let runtime = Runtime::new(RuntimeConfig::default())?;
/// let manifest = Manifest::load(Path::new("plugins/github"))?;
/// let token = SecretGrant::from_spec("github_token", "env:GITHUB_TOKEN".parse()?);
/// let grant = Grant::local(&manifest.manifest).secret("github_token", token);
/// let plugin = runtime.load(manifest, grant)?;
/// let sink = MemorySink::default();
/// let request = RunRequest::new("issues", Arc::new(sink.clone())).input(r#"{"owner":"o","repo":"r"}"#);
/// let report = runtime.run(&plugin, request).await?;
/// println!("{report}");
/// # Ok(()) }
/// ```
pub struct Runtime {
    engine: Engine,
    linker: Linker<RunState>,
    egress: Egress,
    /// The egress pipeline's buckets, read by the plugin's `ratelimit` interface.
    limiter: Arc<RateLimiter>,
    admission: Admission,
    clock: Arc<dyn Clock>,
    state: Arc<dyn StateStore>,
    cache_dir: Option<PathBuf>,
    _ticker: EpochTicker,
}

impl fmt::Debug for Runtime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Runtime")
            .field("cache_dir", &self.cache_dir)
            .finish_non_exhaustive()
    }
}

impl Runtime {
    /// Builds the engine, links every capability and starts the epoch ticker.
    ///
    /// # Errors
    /// [`EngineError`] when the platform refuses the engine configuration.
    pub fn new(config: RuntimeConfig) -> Result<Self, EngineError> {
        let engine = Engine::new(&engine_config(config.max_concurrent_runs)).map_err(|e| EngineError(e.to_string()))?;
        let linker = build_linker(&engine).map_err(|e| EngineError(e.to_string()))?;
        let clock = config.egress.clock.clone();
        let limiter = config.egress.limiter.clone();
        Ok(Self {
            limiter,
            _ticker: EpochTicker::start(engine.clone()),
            egress: Egress::new(config.egress),
            admission: Admission::new(
                AdmissionConfig {
                    max_runs: config.max_concurrent_runs,
                    max_runs_per_tenant: config.max_runs_per_tenant.min(config.max_concurrent_runs),
                    queue_timeout: config.queue_timeout,
                },
                clock.clone(),
            ),
            engine,
            linker,
            clock,
            state: config.state,
            cache_dir: config.cache_dir,
        })
    }

    /// Loads the plugin a manifest describes under `grant`, compiling its component (or reusing
    /// the cache). What its runs may do is what the manifest asks for and the grant allows; a
    /// grant that lacks a required secret is reported when a run is asked for.
    ///
    /// Compiling blocks for up to seconds (a cache hit takes milliseconds): from async code,
    /// call it through `tokio::task::spawn_blocking` or `block_in_place`.
    ///
    /// # Errors
    /// [`LoadError`] when the plugin id is invalid, or the component is missing, fails a pin,
    /// or does not fit the world.
    pub fn load(&self, manifest: LoadedManifest, grant: Grant) -> Result<Plugin, LoadError> {
        let path = manifest.component_path();
        self.load_component(manifest, grant, &path)
    }

    /// Like [`Runtime::load`], with the component read from `component` instead of the
    /// manifest's path (for builds that put components elsewhere).
    ///
    /// # Errors
    /// As [`Runtime::load`].
    pub fn load_component(
        &self,
        manifest: LoadedManifest,
        grant: Grant,
        component: &Path,
    ) -> Result<Plugin, LoadError> {
        if !is_valid_plugin_id(&grant.plugin_id) {
            return Err(GrantError::InvalidPluginId(grant.plugin_id.clone()).into());
        }
        let bytes = manifest.read_component(component, grant.pin.as_ref())?;
        let error = |e: wasmtime::Error| LoadError::Component {
            path: component.to_path_buf(),
            message: format!("{e:#}"),
        };
        let compiled = cache::load_or_compile(&self.engine, self.cache_dir.as_deref(), &bytes).map_err(error)?;
        let instance_pre = self.linker.instantiate_pre(&compiled).map_err(error)?;
        let pre = PluginPre::new(instance_pre).map_err(error)?;
        let policy = resolve(&manifest.manifest, &grant)
            .map(|resolved| Arc::new(EgressPolicy::new(&manifest.manifest, resolved, &self.clock)));
        Ok(Plugin {
            manifest,
            grant,
            policy,
            pre,
        })
    }

    /// Calls the plugin's `describe` export. It runs with nothing granted: describing itself
    /// is no reason for a plugin to reach the network, hold a secret or touch its state. The text it returns is
    /// the plugin's, escaped for printing.
    ///
    /// # Errors
    /// [`RunError`] when the plugin traps or overruns its limits.
    pub async fn describe(&self, plugin: &Plugin) -> Result<PluginDescription, RunError> {
        let request = RunRequest::new("describe", Arc::new(crate::output::MemorySink::default()));
        let _slot = self.admit(plugin, &request).await?;
        let limits = plugin.grant.limits.apply(&plugin.manifest.manifest.limits);
        let policy = Arc::new(EgressPolicy::deny_all(plugin.id(), limits));
        let (mut store, deadline) = self.new_store(plugin, &request, policy, RunSecrets::default(), None);
        let info = self
            .call(
                plugin,
                &mut store,
                deadline,
                async |instance: PluginBindings, store: &mut Store<RunState>| instance.call_describe(store).await,
            )
            .await?;
        let text = |s: String| escape_guest_text(&s).into_owned();
        Ok(PluginDescription {
            name: text(info.name),
            version: text(info.version),
            operations: info
                .operations
                .into_iter()
                .map(|o| (text(o.name), text(o.summary)))
                .collect(),
        })
    }

    /// Runs one operation of `plugin` to completion, within its memory limit and deadline.
    ///
    /// # Errors
    /// [`RunError`]: a required secret that is not granted or whose source fails (before the
    /// plugin starts), a failure the plugin reports, or a limit the host enforced. Text the
    /// plugin wrote is scrubbed of the run's secrets and escaped.
    pub async fn run(&self, plugin: &Plugin, request: RunRequest) -> Result<RunReport, RunError> {
        let started = Instant::now();
        let policy = plugin.policy.clone()?;
        let _slot = self.admit(plugin, &request).await?;
        let secrets = RunSecrets::fetch(&policy).await?;
        let redactor = secrets.redactor.clone();
        let (mut store, deadline) = self.new_store(plugin, &request, policy, secrets, Some(self.state.clone()));
        let (operation, input) = (request.operation.clone(), request.input.clone());
        let result = self
            .call(
                plugin,
                &mut store,
                deadline,
                async move |instance: PluginBindings, store: &mut Store<RunState>| {
                    instance.call_run(store, &operation, &input).await
                },
            )
            .await;
        // What the run did per destination, whether it succeeded or not (an outage is when
        // these counts matter most).
        let http = &store.data().http;
        for (host, counts) in http.stats.buckets() {
            tracing::info!(
                target: "apiary::egress",
                tenant = %http.tenant,
                plugin = %plugin.id(),
                host = %host,
                requests = counts.requests,
                retries = counts.retries,
                rate_limited = counts.rate_limited,
                breaker_opens = counts.breaker_opens,
                waited_ms = counts.waited_ms,
                "run totals for a destination"
            );
        }
        let result = result?;
        let name = plugin.id().to_string();
        let guest = |text: &str| escape_guest_text(&redactor.scrub(text)).into_owned();
        let summary = result.map_err(|error| match error {
            bindings::types::RunError::UnknownOperation(operation) => RunError::UnknownOperation {
                plugin: name.clone(),
                operation: guest(&operation),
            },
            bindings::types::RunError::InvalidInput(message) => RunError::InvalidInput {
                plugin: name.clone(),
                message: guest(&message),
            },
            bindings::types::RunError::Http(error) => RunError::Failed {
                plugin: name.clone(),
                message: guest(&describe_http_error(&error)),
            },
            bindings::types::RunError::Failed(message) => RunError::Failed {
                plugin: name.clone(),
                message: guest(&message),
            },
        })?;
        let stats = &store.data().http.stats;
        let get = |c: &std::sync::atomic::AtomicU64| RunStats::get(c);
        Ok(RunReport {
            pages: summary.pages,
            message: summary.message.as_deref().map(guest),
            requests: get(&stats.requests),
            attempts: get(&stats.attempts),
            retries: get(&stats.retries),
            connections_opened: get(&stats.connections_opened),
            rate_limit_waits: get(&stats.rate_limit_waits),
            learned_pauses: get(&stats.learned_pauses),
            breaker_opens: get(&stats.breaker_opens),
            retries_denied: get(&stats.retries_denied),
            buckets: stats.buckets(),
            waited: Duration::from_millis(get(&stats.waited_ms)),
            failures: get(&stats.failures),
            records: get(&stats.records),
            bytes_received: get(&stats.bytes_received),
            duration: started.elapsed(),
        })
    }

    /// A run slot for `request`'s tenant, or [`RunError::Busy`].
    async fn admit(&self, plugin: &Plugin, request: &RunRequest) -> Result<Admitted, RunError> {
        self.admission
            .admit(&request.tenant)
            .await
            .map_err(|source| RunError::Busy {
                plugin: plugin.id().to_string(),
                source,
            })
    }

    fn new_store(
        &self,
        plugin: &Plugin,
        request: &RunRequest,
        policy: Arc<EgressPolicy>,
        secrets: RunSecrets,
        state: Option<Arc<dyn StateStore>>,
    ) -> (Store<RunState>, Duration) {
        let manifest = &plugin.manifest.manifest;
        let deadline = policy.limits.deadline;
        let stats = Arc::new(RunStats::default());
        let output = |stream| {
            GuestOutput::new(GUEST_STDERR_BYTES).forward_lines(
                stream,
                request.tenant.clone(),
                policy.plugin.clone(),
                secrets.redactor.clone(),
            )
        };
        let stderr = output(GuestStream::Stderr);
        // Nothing is granted: no preopened directories, environment, arguments or sockets.
        let wasi = WasiCtx::builder()
            .stdout(output(GuestStream::Stdout))
            .stderr(stderr.clone())
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .build();
        let state = RunState {
            wasi,
            wasi_http: WasiHttpCtx::new(),
            table: ResourceTable::new(),
            stderr,
            limiter: RunLimiter::new(policy.limits.memory_mib),
            http: HttpCtx {
                egress: self.egress.clone(),
                tenant: request.tenant.clone(),
                policy: policy.clone(),
                stats: stats.clone(),
                // Saturating: `Limits` is public, so an embedder can pass a deadline no manifest could.
                deadline: Some(self.clock.monotonic().saturating_add(deadline)),
                redactor: secrets.redactor.clone(),
                batches: ResourceTable::new(),
                wasi: None,
            },
            secrets: SecretsCtx {
                available: secrets.available,
            },
            log: LogCtx::new(
                request.tenant.clone(),
                policy.plugin.clone(),
                secrets.redactor.clone(),
                self.clock.clone(),
            ),
            config: ConfigCtx::new(&manifest.config, &request.config),
            state: StateCtx {
                store: state,
                records: request.sink.clone(),
                scope: StateScope {
                    tenant: request.tenant.clone(),
                    plugin: policy.plugin.clone(),
                },
            },
            output: OutputCtx {
                sink: request.sink.clone(),
                stats,
                redactor: secrets.redactor.clone(),
            },
            ratelimit: RateLimitCtx {
                limiter: self.limiter.clone(),
                clock: self.clock.clone(),
                tenant: request.tenant.clone(),
                policy: policy.clone(),
                deadline: Some(self.clock.monotonic().saturating_add(deadline)),
            },
            redactor: secrets.redactor,
        };
        let mut store = Store::new(&self.engine, state);
        store.limiter(|state| &mut state.limiter);
        // Yield to the executor at every epoch tick, so the deadline below can fire even while
        // the guest spins without calling the host.
        store.epoch_deadline_async_yield_and_update(1);
        (store, deadline)
    }

    /// Instantiates the plugin in `store` and runs `call` on it, within the deadline, turning
    /// traps into [`RunError`]s that say which limit was hit.
    async fn call<R>(
        &self,
        plugin: &Plugin,
        store: &mut Store<RunState>,
        deadline: Duration,
        call: impl AsyncFnOnce(PluginBindings, &mut Store<RunState>) -> wasmtime::Result<R>,
    ) -> Result<R, RunError> {
        let name = plugin.name().to_string();
        let work = async {
            let instance = plugin.pre.instantiate_async(&mut *store).await?;
            call(instance, &mut *store).await
        };
        let outcome = tokio::time::timeout(deadline, work).await;
        store.data().log.report_dropped();
        // Records are buffered; whatever the outcome, what the plugin emitted is written out.
        if let Err(error) = store.data().output.sink.flush() {
            return Err(RunError::Trap {
                plugin: name,
                message: format!("failed to write its records: {error}"),
            });
        }
        match outcome {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(trap)) => Err(classify_trap(&name, trap, store.data())),
            Err(_) => Err(RunError::DeadlineExceeded { plugin: name, deadline }),
        }
    }
}

fn classify_trap(plugin: &str, trap: wasmtime::Error, state: &RunState) -> RunError {
    let plugin = plugin.to_string();
    let trap = match trap.downcast::<MemoryLimitExceeded>() {
        Ok(source) => return RunError::MemoryExceeded { plugin, source },
        Err(trap) => trap,
    };
    let mut message = match trap.downcast_ref::<wasmtime::Trap>() {
        Some(code) => code.to_string(),
        None => format!("{trap:#}"),
    };
    if state.limiter.exceeded {
        message.push_str(" (after its memory limit was reached)");
    }
    let stderr = state.stderr.contents();
    let stderr = String::from_utf8_lossy(&stderr);
    let stderr = state.redactor.scrub(&stderr);
    let stderr = stderr.trim();
    if !stderr.is_empty() {
        let tail: Vec<&str> = stderr.lines().rev().take(5).collect();
        let tail: Vec<String> = tail
            .into_iter()
            .rev()
            .map(|l| escape_guest_text(l).into_owned())
            .collect();
        message.push_str("; guest stderr: ");
        message.push_str(&tail.join(" | "));
    }
    RunError::Trap {
        plugin,
        message: state.redactor.scrub(&message).into_owned(),
    }
}

/// The secrets of one run: fetched from their sources before the plugin starts, so a failing
/// source stops the run early, and so every value is known to the redactor from the start.
#[derive(Debug, Default)]
struct RunSecrets {
    redactor: Arc<RunRedactor>,
    available: BTreeSet<String>,
}

impl RunSecrets {
    async fn fetch(policy: &EgressPolicy) -> Result<Self, SourceError> {
        let mut secrets = Self::default();
        for (name, held) in &policy.secrets {
            match held.value.get().await {
                Ok(value) => {
                    secrets.redactor.add(&value);
                    secrets.available.insert(name.clone());
                }
                Err(error) if held.required => return Err(error),
                Err(error) => {
                    tracing::warn!(target: "apiary::secrets", plugin = %policy.plugin, secret = %name, %error, "optional secret unavailable");
                }
            }
        }
        Ok(secrets)
    }
}

fn describe_http_error(error: &bindings::http::Error) -> String {
    use bindings::http::Error as E;
    match error {
        E::Denied(m) | E::InvalidRequest(m) | E::Connection(m) => m.clone(),
        E::Timeout(ms) => format!("request timed out after {ms} ms"),
        E::RateLimited(ms) => format!("rate limited for {ms} ms"),
        E::RetriesExhausted(r) => format!("gave up after {} attempts: {}", r.attempts, r.message),
        E::BodyTooLarge(limit) => format!("response body exceeds {limit} bytes"),
        E::Secret(e) => format!("secret: {e:?}"),
    }
}

fn engine_config(max_runs: u32) -> Config {
    let mut config = Config::new();
    config.wasm_component_model(true);
    config.epoch_interruption(true);
    // Every pool is sized as runs × what one run may take, so admitted runs never find the pool
    // empty and no run can take another's share.
    let mut pool = PoolingAllocationConfig::default();
    pool.total_component_instances(max_runs);
    pool.max_core_instances_per_component(MAX_CORE_INSTANCES_PER_RUN);
    pool.max_memories_per_component(MAX_MEMORIES_PER_RUN);
    pool.max_tables_per_component(MAX_TABLES_PER_RUN);
    pool.total_core_instances(max_runs * MAX_CORE_INSTANCES_PER_RUN);
    pool.total_memories(max_runs * MAX_MEMORIES_PER_RUN);
    pool.total_tables(max_runs * MAX_TABLES_PER_RUN);
    pool.total_stacks(max_runs);
    pool.max_memory_size(MAX_MEMORY_MIB as usize * 1024 * 1024);
    // Reset a freed slot by zeroing what the run touched, not by returning pages to the kernel
    // and faulting them back in: instantiation is then mostly user-space work. The cost is up
    // to this much resident memory per warm slot (see the README's limits).
    pool.linear_memory_keep_resident(KEEP_RESIDENT_MEMORY_BYTES);
    pool.table_keep_resident(KEEP_RESIDENT_TABLE_BYTES);
    // Where the kernel supports it (Linux 6.7+), zero only the pages a run dirtied.
    pool.pagemap_scan(wasmtime::Enabled::Auto);
    config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    config
}

fn build_linker(engine: &Engine) -> wasmtime::Result<Linker<RunState>> {
    let mut linker = Linker::<RunState>::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)?;
    crate::http::add_to_linker(&mut linker, |s| &mut s.http)?;
    crate::secrets::add_to_linker(&mut linker, |s| &mut s.secrets)?;
    crate::log::add_to_linker(&mut linker, |s| &mut s.log)?;
    crate::config::add_to_linker(&mut linker, |s| &mut s.config)?;
    crate::state::add_to_linker(&mut linker, |s| &mut s.state)?;
    crate::output::add_to_linker(&mut linker, |s| &mut s.output)?;
    crate::ratelimit::add_to_linker(&mut linker, |s| &mut s.ratelimit)?;
    Ok(linker)
}
