//! The types every egress layer shares: the request and response, the per-call context, the
//! typed error, and the counters a run keeps.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use url::Url;

use std::collections::BTreeMap;

use super::{ForbiddenAddress, NetPolicy};
use crate::breaker::BreakerConfig;
use crate::clock::Clock;
use crate::grant::{Destinations, Resolved};
use crate::manifest::{Limits, Manifest};
use crate::ratelimit::RateLimitConfig;
use crate::retry::RetryPolicy;
use crate::secrets::{HeldSecret, RunRedactor, SecretAttachment, SecretError};
use crate::tenant::TenantId;

/// A request entering the egress pipeline: standard `http` types with a buffered body, so any
/// entry point (the plugin's `http` interface, later `wasi:http`) can feed the same pipeline.
/// It must carry an [`EgressContext`] ([`EgressContext::attach_to`]).
pub type EgressRequest = http::Request<Bytes>;
/// A response leaving the egress pipeline, body buffered.
pub type EgressResponse = http::Response<Bytes>;

/// What a plugin's requests may do: its request intersected with its grant, resolved once per
/// loaded plugin.
#[derive(Debug, Clone)]
pub struct EgressPolicy {
    /// The plugin's id (its install name; keys buckets and logs).
    pub plugin: String,
    /// Destinations the plugin may reach.
    pub hosts: Destinations,
    /// Special-purpose networks (loopback, private, ...) its connections may reach.
    pub net: NetPolicy,
    /// Secrets granted, with their placement, destinations and cached source.
    pub secrets: BTreeMap<String, Arc<HeldSecret>>,
    /// The retry policy.
    pub retry: RetryPolicy,
    /// Rate limits: the plugin's and the operator's.
    pub ratelimits: Vec<RateLimitConfig>,
    /// Timeouts and size caps.
    pub limits: Limits,
    /// When to stop sending to a failing destination.
    pub breaker: BreakerConfig,
}

impl EgressPolicy {
    /// The policy of a plugin whose manifest is `manifest`, with the permissions `resolved`;
    /// secret values are cached on `clock`.
    pub fn new(manifest: &Manifest, resolved: Resolved, clock: &Arc<dyn Clock>) -> Self {
        let secrets = resolved
            .secrets
            .into_iter()
            .map(|(name, secret)| {
                let held = HeldSecret::new(&name, secret, clock.clone());
                (name, Arc::new(held))
            })
            .collect();
        Self {
            plugin: resolved.plugin_id,
            hosts: resolved.hosts,
            net: resolved.net,
            secrets,
            retry: RetryPolicy::new(manifest.retry.clone()),
            breaker: manifest.circuit_breaker.clone(),
            ratelimits: resolved.ratelimits,
            limits: resolved.limits,
        }
    }

    /// A policy that allows nothing, for `describe()`, which must not make requests.
    pub fn deny_all(plugin: &str, limits: Limits) -> Self {
        Self {
            plugin: plugin.to_string(),
            hosts: Destinations::new(Vec::new()),
            net: NetPolicy::default(),
            secrets: BTreeMap::new(),
            retry: RetryPolicy::new(crate::retry::RetryConfig::default()),
            breaker: BreakerConfig::default(),
            ratelimits: Vec::new(),
            limits,
        }
    }
}

/// The extension [`EgressContext::attach_to`] inserts: private, so a context can only be put on
/// a request the one way the layers read it.
#[derive(Debug, Clone)]
struct SharedContext(Arc<EgressContext>);

/// Per-request options a plugin may set; each falls back to the policy's defaults.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestOptions {
    /// Timeout of each attempt.
    pub timeout: Option<Duration>,
    /// Whether repeating the request is safe; `None` derives it from the method.
    pub idempotent: Option<bool>,
    /// At most this many retries (never more than the policy allows).
    pub max_retries: Option<u32>,
    /// The rate-limit bucket; defaults to the destination host.
    pub bucket: Option<String>,
}

/// Everything the layers need to know about one call, carried in the request's extensions.
#[derive(Debug, Clone)]
pub struct EgressContext {
    /// The tenant the run belongs to.
    pub tenant: TenantId,
    /// The calling plugin's policy.
    pub policy: Arc<EgressPolicy>,
    /// The request's URL, parsed (and normalised: host case, IP spellings) once, when the
    /// context is attached; every layer reads this instead of parsing the URI again.
    pub url: Option<Url>,
    /// Secrets to attach.
    pub secrets: Vec<SecretAttachment>,
    /// The run's redactor: every secret the run holds, scrubbed from every response.
    pub redactor: Arc<RunRedactor>,
    /// The request's options.
    pub options: RequestOptions,
    /// The run's counters.
    pub stats: Arc<RunStats>,
    /// Counters of this one call, read for its log event.
    pub call: Arc<CallStats>,
    /// The run's deadline on the clock's monotonic scale; waits past it are not started.
    pub deadline: Option<Duration>,
}

impl EgressContext {
    /// The destination host, normalised: what per-host counters are keyed by.
    pub fn host(&self) -> &str {
        self.url.as_ref().and_then(|url| url.host_str()).unwrap_or_default()
    }

    /// A context with no secrets, default options, fresh counters and no deadline.
    pub fn new(tenant: TenantId, policy: Arc<EgressPolicy>) -> Self {
        Self {
            tenant,
            policy,
            url: None,
            secrets: Vec::new(),
            redactor: Arc::default(),
            options: RequestOptions::default(),
            stats: Arc::default(),
            call: Arc::default(),
            deadline: None,
        }
    }

    /// Puts this context on `request`, where every layer of the pipeline reads it. It is shared
    /// (behind an `Arc`), so layers and retries clone a pointer, not the context.
    pub fn attach_to<B>(mut self, request: &mut http::Request<B>) {
        if self.url.is_none() {
            self.url = Url::parse(&request.uri().to_string()).ok();
        }
        request.extensions_mut().insert(SharedContext(Arc::new(self)));
    }

    /// Reads the context of a request that entered the pipeline.
    ///
    /// # Errors
    /// [`EgressError::InvalidRequest`] if the entry point forgot to attach one (a host bug,
    /// reported rather than panicking).
    pub fn of(request: &EgressRequest) -> Result<&Arc<EgressContext>, EgressError> {
        request
            .extensions()
            .get::<SharedContext>()
            .map(|shared| &shared.0)
            .ok_or_else(|| EgressError::InvalidRequest("request carries no egress context".into()))
    }

    /// Whether the request may be repeated: the explicit option, else the method's semantics.
    pub fn idempotent(&self, method: &http::Method) -> bool {
        self.options.idempotent.unwrap_or_else(|| method.is_idempotent())
    }
}

/// Counters of one call through the pipeline.
#[derive(Debug, Default)]
pub struct CallStats {
    /// Attempts sent to the server.
    pub attempts: AtomicU32,
    /// Total time spent waiting (backoff and rate limits), in milliseconds.
    pub waited_ms: AtomicU64,
}

/// Counters of a whole run, shared by its calls; the CLI prints them as the run's summary.
#[derive(Debug, Default)]
pub struct RunStats {
    /// Calls made by the plugin (one per `send`, one per batch item).
    pub requests: AtomicU64,
    /// Attempts sent to servers (requests plus retries).
    pub attempts: AtomicU64,
    /// Retries made.
    pub retries: AtomicU64,
    /// Connections whose first response went to this run (a reused pooled connection adds none).
    pub connections_opened: AtomicU64,
    /// Times a request waited for a rate-limit slot.
    pub rate_limit_waits: AtomicU64,
    /// Responses that announced a spent quota, pausing their bucket.
    pub learned_pauses: AtomicU64,
    /// Circuit breakers this run's attempts opened.
    pub breaker_opens: AtomicU64,
    /// Retries the retry budget refused.
    pub retries_denied: AtomicU64,
    /// Total time spent waiting (backoff and rate limits), in milliseconds.
    pub waited_ms: AtomicU64,
    /// Calls that ended in an error.
    pub failures: AtomicU64,
    /// Response body bytes received.
    pub bytes_received: AtomicU64,
    /// Records the plugin emitted.
    pub records: AtomicU64,
    /// The same counts per destination host, for the run report and its log events.
    pub buckets: std::sync::Mutex<BTreeMap<String, BucketCounters>>,
}

/// What a run did with one destination host.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct BucketCounters {
    /// Calls to it.
    pub requests: u64,
    /// Retries to it.
    pub retries: u64,
    /// Attempts it answered with 429.
    pub rate_limited: u64,
    /// Circuit breakers its failures opened.
    pub breaker_opens: u64,
    /// Time spent waiting to send to it (rate limits, pauses, backoff), in milliseconds.
    pub waited_ms: u64,
}

impl RunStats {
    /// Adds `n` to a counter.
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// Reads a counter.
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }

    /// Records a wait of `wait` before a call to `host`, in the call's, the run's and the
    /// host's counters.
    pub fn record_wait(&self, call: &CallStats, host: &str, wait: Duration) {
        let ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX);
        call.waited_ms.fetch_add(ms, Ordering::Relaxed);
        Self::add(&self.waited_ms, ms);
        self.bucket(host, |b| b.waited_ms += ms);
    }

    /// Updates the counters of `host` (its bucket).
    pub fn bucket(&self, host: &str, update: impl FnOnce(&mut BucketCounters)) {
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        match buckets.get_mut(host) {
            Some(counters) => update(counters),
            None => update(buckets.entry(host.to_string()).or_default()),
        }
    }

    /// The per-host counters.
    pub fn buckets(&self) -> BTreeMap<String, BucketCounters> {
        self.buckets.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// Why a call through the pipeline failed. Each case maps to a case of the WIT `http.error`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EgressError {
    /// The destination is not allowed.
    #[error("{destination} is not an allowed destination for plugin `{plugin}`")]
    Denied {
        /// The destination, as `scheme://host:port`.
        destination: String,
        /// The plugin that asked.
        plugin: String,
    },
    /// The destination resolved to (or is) an address the plugin may not connect to; no
    /// connection was attempted, and none is retried.
    #[error("plugin `{plugin}` may not connect to {destination}: {refused}")]
    ForbiddenAddress {
        /// The host of the URL.
        destination: String,
        /// The plugin that asked.
        plugin: String,
        /// The address refused, its kind, and the grant that would allow it.
        refused: ForbiddenAddress,
    },
    /// The request is malformed.
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// An attempt timed out and was not retried.
    #[error("timed out after {}", humantime::format_duration(*.0))]
    Timeout(Duration),
    /// The rate limit (or the server's `Retry-After`) asks for a longer wait than allowed.
    #[error("rate limited: the next slot is {} away", humantime::format_duration(*.0))]
    RateLimited(Duration),
    /// Every allowed attempt failed.
    #[error("gave up after {attempts} attempts: {message}")]
    RetriesExhausted {
        /// Attempts made.
        attempts: u32,
        /// The last response's status, if the last attempt got one.
        last_status: Option<u16>,
        /// The last failure.
        message: String,
    },
    /// The response body is larger than allowed.
    #[error("response body exceeds the limit of {0} bytes")]
    BodyTooLarge(u64),
    /// No connection could be made: the server cannot have seen the request.
    #[error("could not connect: {0}")]
    Connect(String),
    /// No connection can be made, and retrying will not change that (the name does not exist,
    /// the certificate is invalid): never retried.
    #[error("could not connect, and retrying will not help: {0}")]
    Unreachable(String),
    /// The connection failed after the request may have been sent.
    #[error("connection failed: {0}")]
    Connection(String),
    /// A secret could not be attached.
    #[error(transparent)]
    Secret(#[from] SecretError),
    /// The destination's circuit breaker is open after repeated failures: nothing was sent.
    #[error("{destination} is failing: its circuit breaker is open for {}", humantime::format_duration(*retry_in))]
    CircuitOpen {
        /// The destination, as `scheme://host:port`.
        destination: String,
        /// How long until a probe may go (zero while one is in flight).
        retry_in: Duration,
    },
}
