//! Apiary: a host for WebAssembly component plugins that automate third-party APIs.
//!
//! A plugin holds only per-API logic (endpoints, pagination, record mapping); the host does
//! the hard, dangerous parts. A run goes like this:
//!
//! 1. [`Manifest::load`] reads `plugin.toml`: the component, the hosts and secrets it is
//!    granted, its limits, retry policy and rate limits. Nothing is granted by default.
//! 2. [`Runtime::load`] compiles the component (or reuses the on-disk cache) and
//!    pre-instantiates it against the `apiary:plugin` world, once per plugin.
//! 3. Secret values are loaded into the [`SecretStore`], scoped by [`TenantId`]; a declared
//!    secret without a value stops the run before the plugin starts.
//! 4. [`Runtime::run`] gives the run a fresh store with a memory limit and a deadline and calls
//!    the plugin's `run` export. WASI is linked with nothing granted.
//! 5. Every request the plugin sends goes through the one [`Egress`] pipeline: allowlist,
//!    secret attachment (with the values scrubbed from the response), retry, rate limit, and
//!    a pooled client with a per-attempt timeout.
//! 6. Records go to a [`RecordSink`]; the [`RunReport`] counts requests, retries, waits and
//!    records.
//!
//! ```no_run
//! use apiary_host::{Manifest, NdjsonSink, RunRequest, Runtime, RuntimeConfig, TenantId};
//! use secrecy::SecretString;
//! use std::{path::Path, sync::Arc};
//!
//! # async fn demo() -> anyhow::Result<()> {
//! let runtime = Runtime::new(RuntimeConfig::default())?;
//! let plugin = runtime.load(Manifest::load(Path::new("plugins/github"))?)?;
//! runtime.secrets().insert(&TenantId::default(), "github_token", SecretString::from("ghp_..."));
//! let sink = Arc::new(NdjsonSink::new(std::io::stdout()));
//! let request = RunRequest::new("issues", sink).input(r#"{"owner":"rust-lang","repo":"rust"}"#);
//! eprintln!("{}", runtime.run(&plugin, request).await?);
//! # Ok(()) }
//! ```

#![deny(missing_docs)]

mod bindings;
pub mod cli;
mod clock;
mod config;
pub mod demo;
mod engine;
mod http;
mod log;
mod manifest;
mod output;
mod ratelimit;
mod retry;
mod secrets;
mod state;
mod tenant;

pub use clock::{Clock, ManualClock, Sleep, SystemClock};
pub use config::ConfigCtx;
pub use engine::{
    DEFAULT_MAX_CONCURRENT_RUNS, EPOCH_TICK, EngineError, GUEST_STDERR_BYTES, LoadError, MemoryLimitExceeded, Plugin,
    PluginDescription, RunError, RunReport, RunRequest, Runtime, RuntimeConfig, cache_key, default_cache_dir,
};
pub use http::{
    AllowlistLayer, CONNECT_TIMEOUT, CallStats, Egress, EgressContext, EgressError, EgressFuture, EgressLayer,
    EgressParts, EgressPolicy, EgressRequest, EgressResponse, EgressService, HostPattern, HostPatternError,
    POOL_IDLE_TIMEOUT, POOL_MAX_IDLE_PER_HOST, PooledClient, RequestOptions, RunStats, TimeoutLayer, destination,
    is_allowed, stage,
};
pub use log::MAX_LOG_MESSAGE_BYTES;
pub use manifest::{
    DEFAULT_DEADLINE, DEFAULT_MAX_CONCURRENCY, DEFAULT_MAX_RESPONSE_BYTES, DEFAULT_MEMORY_MIB, DEFAULT_REQUEST_TIMEOUT,
    Limits, LoadedManifest, MANIFEST_FILE, MAX_MEMORY_MIB, Manifest, ManifestError, Permissions, SecretPermission,
};
pub use output::{MAX_RECORD_BYTES, MemorySink, NdjsonSink, RecordSink};
pub use ratelimit::{
    BucketKey, DEFAULT_MAX_WAIT, Gcra, Quota, RateDecision, RateLimitConfig, RateLimitLayer, RateLimiter,
};
pub use retry::{
    AttemptOutcome, DEFAULT_BASE_DELAY, DEFAULT_MAX_DELAY, DEFAULT_MAX_RETRIES, DEFAULT_MAX_RETRY_AFTER,
    DEFAULT_RETRY_STATUSES, RETRY_AFTER_STATUSES, RetryConfig, RetryDecision, RetryLayer, RetryPolicy,
    parse_retry_after, retry_after,
};
pub use secrets::{
    EnvFileError, EnvSecretSource, MissingSecret, Placement, REDACTED, Redactor, SecretAttachment, SecretError,
    SecretLayer, SecretStore, attach,
};
pub use state::{FileStateStore, MAX_STATE_VALUE_BYTES, MemoryStateStore, StateError, StateScope, StateStore};
pub use tenant::TenantId;
