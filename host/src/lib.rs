//! Apiary: a host for WebAssembly component plugins that automate third-party APIs.
//!
//! A plugin holds only per-API logic (endpoints, pagination, record mapping); the host does
//! the hard, dangerous parts. Two parties decide what a plugin may do: its author *asks* in
//! `plugin.toml`, and the operator *grants* in `apiary.toml` (or, for local use, with
//! `apiary run` flags). A run goes like this:
//!
//! 1. [`Manifest::load`] reads `plugin.toml`: the component, the hosts and secrets it asks for
//!    (each secret with its placement), its limits, retry policy and rate limits.
//! 2. A [`Grant`] says what the operator allows: hosts, secrets and where each value comes from
//!    ([`SecretSource`]: `env:`, `dotenv:`, `cmd:`), caps on limits, extra rate limits, the
//!    plugin's id and its component's pin. [`resolve`] intersects the two.
//! 3. [`Runtime::load`] checks the pin, compiles the component (or reuses the on-disk cache),
//!    pre-instantiates it against the `apiary:plugin` world, and resolves the grant.
//! 4. [`Runtime::run`] refuses a plugin whose required secret is not granted, reads every
//!    granted secret from its source (a failing source stops it here), then gives the run a fresh
//!    store with a memory limit and a deadline and calls the plugin's `run` export. WASI is
//!    linked with nothing granted.
//! 5. Every request the plugin sends goes through the one [`Egress`] pipeline: allowlist,
//!    secret attachment at the declared placement (audited, and every secret of the run scrubbed
//!    from every response), retry, rate limit, and a pooled client with a per-attempt timeout.
//! 6. Records go to a [`RecordSink`]; the [`RunReport`] counts requests, retries, waits and
//!    records. Everything the plugin writes is scrubbed of its secrets and escaped.
//!
//! ```no_run
//! use apiary_host::{Grant, Manifest, NdjsonSink, RunRequest, Runtime, RuntimeConfig, SecretGrant};
//! use std::{path::Path, sync::Arc};
//!
//! # async fn demo() -> anyhow::Result<()> {
//! let runtime = Runtime::new(RuntimeConfig::default())?;
//! let manifest = Manifest::load(Path::new("plugins/github"))?;
//! // The operator's decision: the hosts the plugin asks for, and its token from `pass`.
//! let token = SecretGrant::from_spec("github_token", "cmd:pass show apiary/github".parse()?);
//! let grant = Grant::local(&manifest.manifest).secret("github_token", token);
//! let plugin = runtime.load(manifest, grant)?;
//! let sink = Arc::new(NdjsonSink::new(std::io::stdout()));
//! let request = RunRequest::new("issues", sink).input(r#"{"owner":"rust-lang","repo":"rust"}"#);
//! eprintln!("{}", runtime.run(&plugin, request).await?);
//! # Ok(()) }
//! ```

#![deny(missing_docs)]

pub mod authoring;
mod bindings;
mod breaker;
pub mod cli;
mod clock;
mod config;
pub mod demo;
mod engine;
mod grant;
mod guest_text;
mod http;
mod log;
mod manifest;
mod operator;
mod output;
mod ratelimit;
mod retry;
mod secrets;
mod state;
mod tenant;
mod toml_file;

pub use breaker::{
    Admission, BreakerConfig, BreakerLayer, BreakerState, Breakers, CircuitBreaker, DEFAULT_BREAKER_FAILURES,
    DEFAULT_BREAKER_OPEN_FOR, MAX_BREAKER_OPEN_FOR,
};
pub use clock::{Clock, ManualClock, Sleep, SystemClock};
pub use config::ConfigCtx;
pub use engine::{
    AdmissionConfig, Busy, DEFAULT_MAX_CONCURRENT_RUNS, DEFAULT_MAX_RUNS_PER_TENANT, DEFAULT_QUEUE_TIMEOUT, EPOCH_TICK,
    EngineError, GUEST_STDERR_BYTES, LoadError, MAX_CORE_INSTANCES_PER_RUN, MAX_MEMORIES_PER_RUN,
    MAX_QUEUED_PER_TENANT, MAX_TABLES_PER_RUN, MemoryLimitExceeded, Plugin, PluginDescription, RunError, RunReport,
    RunRequest, Runtime, RuntimeConfig, cache_key, default_cache_dir,
};
pub use grant::{
    Destinations, Grant, GrantError, GrantOrigin, GrantReport, LimitCaps, Resolved, ResolvedSecret, SecretGrant,
    resolve,
};
pub use guest_text::escape_guest_text;
pub use http::{
    AddressKind, AllowlistLayer, BucketCounters, CallStats, Cidr, CidrError, Egress, EgressContext, EgressError,
    EgressFuture, EgressLayer, EgressParts, EgressPolicy, EgressRequest, EgressResponse, EgressService,
    ForbiddenAddress, HostPattern, HostPatternError, MAX_ATTACHMENTS, MAX_BATCH_REQUESTS, MAX_REQUEST_BODY_BYTES,
    MAX_REQUEST_HEADER_BYTES, MAX_REQUEST_HEADERS, MAX_URL_BYTES, NetPolicy, POOL_IDLE_TIMEOUT, POOL_MAX_IDLE_PER_HOST,
    PooledClient, RequestOptions, Resolve, RunStats, StaticResolver, SystemResolver, TimeoutLayer, destination, stage,
};
pub use log::{LOG_EVENTS_BURST, LOG_EVENTS_PER_SECOND, MAX_LOG_FIELD_BYTES, MAX_LOG_FIELDS, MAX_LOG_MESSAGE_BYTES};
pub use manifest::{
    Attach, ComponentBytes, DEFAULT_DEADLINE, DEFAULT_MAX_CONCURRENCY, DEFAULT_MAX_RESPONSE_BYTES, DEFAULT_MEMORY_MIB,
    DEFAULT_REQUEST_TIMEOUT, Limits, LoadedManifest, MANIFEST_FILE, MAX_DEADLINE, MAX_MEMORY_MIB, MAX_REQUEST_TIMEOUT,
    Manifest, Permissions, Pin, SecretRequest,
};
pub use operator::{OPERATOR_FILE_VAR, OperatorConfig, PluginInstall, SecretSourceConfig};
pub use output::{MAX_RECORD_BYTES, MAX_RECORDS_PER_CALL, MemorySink, NdjsonSink, RecordSink};
pub use ratelimit::{
    BucketKey, CredentialId, DEFAULT_MAX_WAIT, Gcra, LearnedFrom, LearnedPause, LearnedQuota, MAX_LEARNED_PAUSE,
    MAX_RATE_PERIOD, MAX_RATE_WAIT, MAX_TRACKED, PauseKey, PauseScope, Quota, RateDecision, RateLimitConfig,
    RateLimitLayer, RateLimiter, is_rate_limited_403, learned_pause, learned_quotas,
};
pub use retry::{
    AttemptOutcome, BUDGET_WINDOW, BudgetConfig, DEFAULT_BASE_DELAY, DEFAULT_BUDGET_MIN_RETRIES, DEFAULT_BUDGET_RATIO,
    DEFAULT_MAX_DELAY, DEFAULT_MAX_RETRIES, DEFAULT_MAX_RETRY_AFTER, DEFAULT_RETRY_STATUSES, MAX_RETRY_DELAY,
    MIN_SERVER_WAIT, RETRY_AFTER_STATUSES, RetryBudget, RetryBudgets, RetryConfig, RetryDecision, RetryLayer,
    RetryPolicy, parse_retry_after, retry_after,
};
/// A DER-encoded X.509 certificate, for [`PooledClient::with_extra_roots`].
pub use rustls::pki_types::CertificateDer;
pub use secrets::{
    CachedSecret, CommandSource, DEFAULT_COMMAND_TIMEOUT, DEFAULT_SECRET_TTL, DotenvSource, EnvSource, HeldSecret,
    MAX_SECRET_BYTES, MIN_FRAGMENT_BYTES, MIN_SECRET_BYTES, Placement, REDACTED, Redactor, RunRedactor,
    SecretAttachment, SecretError, SecretLayer, SecretSource, SourceError, SourceSpec, SourceSpecError, StaticSource,
};
pub use state::{
    FileStateStore, MAX_STATE_KEYS, MAX_STATE_SCOPE_BYTES, MAX_STATE_VALUE_BYTES, MemoryStateStore, StateError,
    StateQuota, StateScope, StateStore,
};
pub use tenant::TenantId;
pub use toml_file::ConfigError;
