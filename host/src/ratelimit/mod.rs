//! Rate limits: a GCRA token bucket per tenant, plugin and bucket key, declared in the manifest.
//!
//! [`Gcra`] is the pure decision (checked against the shared vectors); [`RateLimiter`] holds the
//! buckets, shared by every run of the process, and turns a decision into a wait.
//!
//! Besides the declared limits, every response is read for a limit the server announces
//! ([`learned_pause`]): a bucket whose quota is spent is paused, for every run that draws from
//! it, until the server says more is available. Pauses are keyed by what the API counts: the
//! credential the request carried (two plugins granted one token share its pause), else the
//! tenant and plugin; and the destination host.

mod glue;
mod learned;

pub(crate) use glue::{RateLimitCtx, add_to_linker};

pub use learned::{
    LearnedFrom, LearnedPause, LearnedQuota, MAX_LEARNED_PAUSE, is_rate_limited_403, learned_pause, learned_quotas,
};

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Deserialize;
use tower::ServiceExt;

use crate::clock::Clock;
use crate::http::{EgressContext, EgressError, EgressFuture, EgressLayer, EgressRequest, EgressService, RunStats};
use crate::tenant::TenantId;

/// Default longest wait for a rate-limit slot before the request fails with `rate-limited`.
///
/// A minute keeps a run moving through ordinary per-second and per-minute quotas, while a quota
/// exhausted for an hour surfaces to the plugin instead of stalling the run silently.
pub const DEFAULT_MAX_WAIT: Duration = Duration::from_secs(60);

/// Longest `per` accepted: a yearly quota is the longest any API publishes, and the bound
/// keeps every theoretical arrival time the bucket computes far from overflowing.
pub const MAX_RATE_PERIOD: Duration = Duration::from_secs(365 * 24 * 60 * 60);
/// Longest `max_wait` accepted: no run outlives [`MAX_DEADLINE`](crate::manifest::MAX_DEADLINE).
pub const MAX_RATE_WAIT: Duration = Duration::from_secs(24 * 60 * 60);

/// One `[[ratelimit]]` entry of a manifest.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitConfig {
    /// The bucket this entry governs: a destination host name, or a bucket key a request names.
    /// Example: `bucket = "api.github.com"`
    pub bucket: String,
    /// Requests allowed per `per`.
    /// Example: `rate = 5000`
    pub rate: NonZeroU32,
    /// The period of `rate`.
    /// Example: `per = "1h"`
    #[serde(deserialize_with = "rate_period")]
    pub per: Duration,
    /// Requests that may go at once after an idle period (at least 1).
    /// Example: `burst = 10`
    #[serde(default = "one")]
    pub burst: NonZeroU32,
    /// Longest wait for a slot before failing with `rate-limited`.
    /// Example: `max_wait = "60s"`
    #[serde(deserialize_with = "rate_wait", default = "default_max_wait")]
    pub max_wait: Duration,
}

fn rate_period<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    crate::toml_file::duration::at_most(d, MAX_RATE_PERIOD)
}

fn rate_wait<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    crate::toml_file::duration::at_most(d, MAX_RATE_WAIT)
}

fn one() -> NonZeroU32 {
    NonZeroU32::MIN
}

fn default_max_wait() -> Duration {
    DEFAULT_MAX_WAIT
}

/// A quota: `rate` cells per `period`, with `capacity` cells available at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    /// Time that one cell takes to replenish (the GCRA's T).
    emission_interval: Duration,
    /// Cells that may be taken at once after an idle period.
    capacity: u32,
}

impl Quota {
    /// `rate` cells per `period`, at most `capacity` at once.
    pub fn new(rate: NonZeroU32, period: Duration, capacity: NonZeroU32) -> Self {
        Self {
            emission_interval: period / rate.get(),
            capacity: capacity.get(),
        }
    }

    /// The GCRA's delay variation tolerance: how far ahead of now the bucket may be booked.
    fn tolerance(&self) -> Duration {
        self.emission_interval.saturating_mul(self.capacity)
    }
}

impl From<&RateLimitConfig> for Quota {
    fn from(config: &RateLimitConfig) -> Self {
        Quota::new(config.rate, config.per, config.burst)
    }
}

/// The outcome of a [`Gcra::check`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateDecision {
    /// Whether the request must not go now.
    pub limited: bool,
    /// Cells left after this decision.
    pub remaining: u32,
    /// Time until the bucket is full again.
    pub reset_after: Duration,
    /// When limited, the wait before the same request would be allowed; `None` when it never
    /// will be (more cells than the capacity) or when not limited.
    pub retry_after: Option<Duration>,
}

/// A generic cell rate algorithm bucket: one timestamp (the theoretical arrival time) per bucket.
///
/// ```
/// use apiary_host::{Gcra, Quota};
/// use std::num::NonZeroU32;
/// use std::time::Duration;
///
/// let quota = Quota::new(NonZeroU32::new(1).unwrap(), Duration::from_secs(1), NonZeroU32::new(2).unwrap());
/// let mut bucket = Gcra::default();
/// assert!(!bucket.check(&quota, Duration::ZERO, 1).limited);
/// assert!(!bucket.check(&quota, Duration::ZERO, 1).limited);
/// let third = bucket.check(&quota, Duration::ZERO, 1);
/// assert_eq!(third.retry_after, Some(Duration::from_secs(1)));
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Gcra {
    /// Theoretical arrival time of the next cell, on the clock's monotonic scale.
    tat: Option<Duration>,
}

impl Gcra {
    /// Asks for `volume` cells at time `now`, taking them if allowed (volume 0 only peeks).
    pub fn check(&mut self, quota: &Quota, now: Duration, volume: u32) -> RateDecision {
        let tolerance = quota.tolerance();
        let tat = self.tat.unwrap_or(now).max(now);
        let increment = quota.emission_interval.saturating_mul(volume);
        let new_tat = tat.saturating_add(increment);
        let allow_at = new_tat.saturating_sub(tolerance);
        if now < allow_at || increment > tolerance {
            let retry_after = (increment <= tolerance).then(|| allow_at - now);
            return RateDecision {
                limited: true,
                remaining: remaining(quota, tat - now),
                reset_after: tat - now,
                retry_after,
            };
        }
        self.tat = Some(new_tat);
        RateDecision {
            limited: false,
            remaining: remaining(quota, new_tat - now),
            reset_after: new_tat - now,
            retry_after: None,
        }
    }

    /// Books one cell at `now` even if it is only available later, and returns how long the
    /// caller must wait for it. Booking ahead keeps waiters in arrival order (fair, FIFO).
    /// Nothing is booked when the wait would exceed `max_wait`; the wait is returned as `Err`.
    pub fn reserve(&mut self, quota: &Quota, now: Duration, max_wait: Duration) -> Result<Duration, Duration> {
        let tat = self.tat.unwrap_or(now).max(now);
        let new_tat = tat.saturating_add(quota.emission_interval);
        let wait = new_tat.saturating_sub(quota.tolerance()).saturating_sub(now);
        if wait > max_wait {
            return Err(wait);
        }
        self.tat = Some(new_tat);
        Ok(wait)
    }
}

fn remaining(quota: &Quota, booked_ahead: Duration) -> u32 {
    let free = quota.tolerance().saturating_sub(booked_ahead);
    (free.as_nanos() / quota.emission_interval.as_nanos().max(1)) as u32
}

/// Most entries each of the host's shared maps keeps (rate-limit buckets, learned pauses and
/// quotas, circuit breakers, retry budgets). A plugin granted a wildcard host could otherwise
/// grow them without bound, one destination at a time. Past it, entries that hold nothing
/// (an idle bucket, an expired pause, a closed breaker, an empty window) are dropped; when
/// none does, a new destination goes untracked rather than growing the map.
pub const MAX_TRACKED: usize = 65_536;

/// Which bucket a request draws from: the quota of the credential it carries, which every
/// plugin and tenant sending that credential shares (the API counts by key); without one,
/// the tenant's and plugin's own.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BucketKey {
    /// Whose quota.
    pub scope: PauseScope,
    /// The request's bucket option, or its destination host.
    pub bucket: String,
}

/// Whose quota a learned pause belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PauseScope {
    /// A credential, by a keyed hash of its value (see [`CredentialId`]): every plugin and
    /// tenant sending it shares the server's quota for it.
    Credential(CredentialId),
    /// Requests that carried no credential: the server counts them by address, which the
    /// host shares, but a tenant's or plugin's anonymous requests stay apart.
    Anonymous {
        /// The tenant.
        tenant: TenantId,
        /// The plugin.
        plugin: String,
    },
}

/// A learned pause's bucket: whose quota, at which host.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PauseKey {
    /// Whose quota.
    pub scope: PauseScope,
    /// The destination host (normalised).
    pub host: String,
}

/// Names a credential without holding it: a hash of the value under a key drawn at random for
/// each process, put on a request by the secret layer. Equal values give equal ids within
/// one process; an id says nothing about the value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CredentialId(u64);

impl CredentialId {
    /// The id of a credential `value`.
    pub fn of(value: &[u8]) -> Self {
        use std::hash::BuildHasher;
        static KEY: std::sync::OnceLock<std::collections::hash_map::RandomState> = std::sync::OnceLock::new();
        Self(KEY.get_or_init(Default::default).hash_one(value))
    }
}

/// Every rate-limit bucket of the process, shared by all runs.
#[derive(Debug, Default)]
pub struct RateLimiter {
    /// Declared limits' buckets: their keys come from the manifests and grants (rule, tenant,
    /// plugin, credential), which a plugin cannot multiply, so they are never dropped.
    buckets: Mutex<HashMap<BucketKey, Gcra>>,
    /// Learned quotas' buckets: keyed by destinations a server named, so bounded by
    /// [`MAX_TRACKED`] (a full map leaves a new one untracked; declared limits never are).
    learned_buckets: Mutex<HashMap<BucketKey, Gcra>>,
    /// Until when (on the clock's monotonic scale) each paused bucket is paused.
    pauses: Mutex<HashMap<PauseKey, Duration>>,
    /// The quotas each server last announced (`RateLimit-Policy`), by name.
    quotas: Mutex<HashMap<PauseKey, Vec<(String, Quota)>>>,
    /// Whether any pause or quota was ever learned: until then, requests skip both locks.
    learned_any: std::sync::atomic::AtomicBool,
}

impl RateLimiter {
    /// An empty set of buckets.
    pub fn new() -> Self {
        Self::default()
    }

    /// Books a slot in `key`'s bucket at `now`; `Ok(wait)` to wait before sending, or
    /// `Err(wait)` when the wait would exceed `max_wait`.
    pub fn reserve(
        &self,
        key: &BucketKey,
        quota: &Quota,
        now: Duration,
        max_wait: Duration,
    ) -> Result<Duration, Duration> {
        book(&self.buckets, usize::MAX, key, quota, now, max_wait)
    }

    /// [`RateLimiter::reserve`] for a quota a server announced.
    pub fn reserve_learned(
        &self,
        key: &BucketKey,
        quota: &Quota,
        now: Duration,
        max_wait: Duration,
    ) -> Result<Duration, Duration> {
        book(&self.learned_buckets, MAX_TRACKED, key, quota, now, max_wait)
    }

    /// Every bucket a request carrying `pause_key`'s scope to its host (and to the bucket
    /// `named`) draws from, in the order they are booked: the quotas the server announced,
    /// then each declared limit for the plugin's own calls (tenant and plugin: switching
    /// credentials does not escape it) and, with a credential, for every call sending it
    /// (plugins sharing a token share its quota). Several limits may name one bucket (per
    /// second and per hour): all apply.
    pub(crate) fn draws(
        &self,
        policy: &crate::http::EgressPolicy,
        tenant: &TenantId,
        pause_key: &PauseKey,
        named: Option<&str>,
    ) -> Vec<Draw> {
        let mut draws: Vec<Draw> = self
            .learned_quotas(pause_key)
            .into_iter()
            .map(|(name, quota)| Draw {
                key: learned_key(pause_key, &name),
                quota,
                max_wait: DEFAULT_MAX_WAIT,
                learned: true,
            })
            .collect();
        let own = PauseScope::Anonymous {
            tenant: tenant.clone(),
            plugin: policy.plugin.clone(),
        };
        let credential = matches!(pause_key.scope, PauseScope::Credential(_)).then(|| pause_key.scope.clone());
        for bucket in buckets_for(&pause_key.host, named) {
            for rule in policy
                .ratelimits
                .iter()
                .filter(|r| r.bucket.eq_ignore_ascii_case(&bucket))
            {
                for scope in std::iter::once(own.clone()).chain(credential.clone()) {
                    draws.push(Draw {
                        key: BucketKey {
                            scope,
                            bucket: bucket_name(rule),
                        },
                        quota: Quota::from(rule),
                        max_wait: rule.max_wait,
                        learned: false,
                    });
                }
            }
        }
        draws
    }

    /// Books `draw`'s slot (see [`RateLimiter::reserve`]).
    pub(crate) fn book(&self, draw: &Draw, now: Duration, max_wait: Duration) -> Result<Duration, Duration> {
        match draw.learned {
            true => self.reserve_learned(&draw.key, &draw.quota, now, max_wait),
            false => self.reserve(&draw.key, &draw.quota, now, max_wait),
        }
    }

    /// What `key`'s bucket admits at `now`, without booking: the requests it would take at
    /// once, and the wait before it takes the next one.
    pub fn peek(&self, key: &BucketKey, quota: &Quota, now: Duration) -> (u32, Duration) {
        let copy =
            |map: &Mutex<HashMap<BucketKey, Gcra>>| map.lock().unwrap_or_else(|e| e.into_inner()).get(key).copied();
        let mut copy = copy(&self.buckets)
            .or_else(|| copy(&self.learned_buckets))
            .unwrap_or_default();
        let decision = copy.check(quota, now, 1);
        match decision.retry_after {
            _ if !decision.limited => (decision.remaining + 1, Duration::ZERO),
            Some(wait) => (0, wait),
            None => (0, Duration::MAX),
        }
    }

    /// Holds requests under `key` to the quotas a server announced, replacing the ones it
    /// announced before; returns those that are new (the caller books the request that
    /// taught them, which the server counted).
    pub fn learn_quotas(&self, key: &PauseKey, quotas: &[LearnedQuota]) -> Vec<(String, Quota)> {
        let learned: Vec<(String, Quota)> = quotas
            .iter()
            .filter_map(|q| {
                let rate = NonZeroU32::new(q.quota)?;
                Some((q.name.clone(), Quota::new(rate, q.window, rate)))
            })
            .collect();
        self.learned_any.store(true, std::sync::atomic::Ordering::Relaxed);
        let mut all = self.quotas.lock().unwrap_or_else(|e| e.into_inner());
        if all.len() >= MAX_TRACKED && !all.contains_key(key) {
            return Vec::new();
        }
        let known = all.get(key).cloned().unwrap_or_default();
        let new = learned.iter().filter(|q| !known.contains(q)).cloned().collect();
        if known != learned {
            all.insert(key.clone(), learned);
        }
        new
    }

    /// Whether any pause or quota was ever learned (until then there is nothing to look up).
    pub(crate) fn learned_any(&self) -> bool {
        self.learned_any.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The quotas learned for `key`.
    pub fn learned_quotas(&self, key: &PauseKey) -> Vec<(String, Quota)> {
        if !self.learned_any.load(std::sync::atomic::Ordering::Relaxed) {
            return Vec::new();
        }
        let all = self.quotas.lock().unwrap_or_else(|e| e.into_inner());
        all.get(key).cloned().unwrap_or_default()
    }

    /// Pauses `key` until `until` (monotonic; `now` is the time on the same scale), unless it
    /// is already paused for longer.
    pub fn pause(&self, key: PauseKey, until: Duration, now: Duration) {
        self.learned_any.store(true, std::sync::atomic::Ordering::Relaxed);
        let mut pauses = self.pauses.lock().unwrap_or_else(|e| e.into_inner());
        if pauses.len() >= MAX_TRACKED && !pauses.contains_key(&key) {
            pauses.retain(|_, until| *until > now);
            if pauses.len() >= MAX_TRACKED {
                return;
            }
        }
        let entry = pauses.entry(key).or_insert(until);
        *entry = (*entry).max(until);
    }

    /// How long `key` stays paused after `now`; zero when it is not (an expired pause is
    /// forgotten).
    pub fn paused_for(&self, key: &PauseKey, now: Duration) -> Duration {
        if !self.learned_any.load(std::sync::atomic::Ordering::Relaxed) {
            return Duration::ZERO;
        }
        let mut pauses = self.pauses.lock().unwrap_or_else(|e| e.into_inner());
        match pauses.get(key) {
            Some(until) if *until > now => *until - now,
            Some(_) => {
                pauses.remove(key);
                Duration::ZERO
            }
            None => Duration::ZERO,
        }
    }
}

/// The rate-limit egress layer: books a slot in the request's bucket (the `bucket` option, or
/// the destination host) when the manifest declares a limit for it, and waits for the slot on
/// the injected [`Clock`]. Every attempt, retries included, takes a slot.
#[derive(Debug, Clone)]
pub struct RateLimitLayer {
    limiter: Arc<RateLimiter>,
    clock: Arc<dyn Clock>,
}

impl RateLimitLayer {
    /// A layer booking in `limiter` and waiting on `clock`.
    pub fn new(limiter: Arc<RateLimiter>, clock: Arc<dyn Clock>) -> Self {
        Self { limiter, clock }
    }
}

/// One bucket a request draws from (see [`RateLimiter::draws`]).
#[derive(Debug, Clone)]
pub(crate) struct Draw {
    pub(crate) key: BucketKey,
    pub(crate) quota: Quota,
    /// The longest wait for a slot, before the run's deadline cuts it.
    pub(crate) max_wait: Duration,
    /// Whether a server announced it (kept in the bounded map).
    pub(crate) learned: bool,
}

/// Books a slot in `key`'s bucket of `map`, which keeps at most `bound` buckets: past it,
/// idle buckets (their arrival time passed: full again, the same as none) make room, and
/// when none is idle the new bucket goes untracked.
fn book(
    map: &Mutex<HashMap<BucketKey, Gcra>>,
    bound: usize,
    key: &BucketKey,
    quota: &Quota,
    now: Duration,
    max_wait: Duration,
) -> Result<Duration, Duration> {
    let mut buckets = map.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(bucket) = buckets.get_mut(key) {
        return bucket.reserve(quota, now, max_wait);
    }
    let mut bucket = Gcra::default();
    let result = bucket.reserve(quota, now, max_wait);
    if buckets.len() >= bound {
        buckets.retain(|_, bucket| bucket.tat.is_some_and(|tat| tat > now));
    }
    if buckets.len() < bound {
        buckets.insert(key.clone(), bucket);
    }
    result
}

/// The bucket of the quota named `name` that `pause_key`'s server announced.
fn learned_key(pause_key: &PauseKey, name: &str) -> BucketKey {
    BucketKey {
        scope: pause_key.scope.clone(),
        bucket: format!("{}#{name}", pause_key.host),
    }
}

/// A host as buckets and pauses are keyed: lower case, without a trailing dot.
pub(crate) fn normalized_host(host: &str) -> String {
    host.trim_end_matches('.').to_ascii_lowercase()
}

/// The key of a declared limit's bucket: its name, rate and period, so a per-second and a
/// per-hour limit on one bucket keep apart, and two plugins declaring different rates for one
/// shared credential do not move each other's arrival times.
fn bucket_name(rule: &RateLimitConfig) -> String {
    format!(
        "{}/{}/{}",
        rule.bucket.to_ascii_lowercase(),
        rule.rate,
        rule.per.as_millis()
    )
}

/// The buckets a request to `host` with the `bucket` option draws from: the host's, always
/// (normalised, so `LOCALHOST` or a decimal IP is the same host), and the named one too. A
/// made-up bucket name adds a limit; it never escapes the host's.
pub(crate) fn buckets_for(host: &str, named: Option<&str>) -> Vec<String> {
    let host = normalized_host(host);
    match named {
        Some(named) if !named.eq_ignore_ascii_case(&host) => vec![host, named.to_string()],
        _ => vec![host],
    }
}

impl EgressLayer for RateLimitLayer {
    fn call(self, request: EgressRequest, next: EgressService) -> EgressFuture {
        Box::pin(async move {
            let ctx = EgressContext::of(&request)?.clone();
            let credential = request.extensions().get::<CredentialId>().copied();
            let make_pause_key = || PauseKey {
                scope: match credential {
                    Some(credential) => PauseScope::Credential(credential),
                    None => PauseScope::Anonymous {
                        tenant: ctx.tenant.clone(),
                        plugin: ctx.policy.plugin.clone(),
                    },
                },
                // The context's URL is normalised (IPv4 spellings such as 2130706433).
                host: normalized_host(ctx.host()),
            };
            let now = self.clock.monotonic();
            let mut wait = Duration::ZERO;
            // Most requests have nothing to draw from: no declared limit, nothing learned yet.
            let pause_key = (self.limiter.learned_any() || !ctx.policy.ratelimits.is_empty()).then(make_pause_key);
            if let Some(pause_key) = &pause_key {
                let deadline_left = ctx.deadline.map(|deadline| deadline.saturating_sub(now));
                wait = self.limiter.paused_for(pause_key, now);
                if !wait.is_zero() {
                    let max_wait = deadline_left.map_or(DEFAULT_MAX_WAIT, |left| DEFAULT_MAX_WAIT.min(left));
                    if wait > max_wait {
                        return Err(EgressError::RateLimited(wait));
                    }
                }
                // Every bucket that applies must admit the request; the wait is the longest. A
                // refusal by a later bucket leaves the earlier bookings in place, which errs on
                // the side of sending less.
                for draw in self
                    .limiter
                    .draws(&ctx.policy, &ctx.tenant, pause_key, ctx.options.bucket.as_deref())
                {
                    let max_wait = deadline_left.map_or(draw.max_wait, |left| draw.max_wait.min(left));
                    let booked = self
                        .limiter
                        .book(&draw, now, max_wait)
                        .map_err(EgressError::RateLimited)?;
                    wait = wait.max(booked);
                }
            }
            if !wait.is_zero() {
                RunStats::add(&ctx.stats.rate_limit_waits, 1);
                ctx.stats.record_wait(&ctx.call, ctx.host(), wait);
                tracing::debug!(target: "apiary::egress", plugin = %ctx.policy.plugin, wait_ms = wait.as_millis() as u64, "waiting for a rate-limit slot");
                self.clock.sleep(wait).await;
            }
            let response = next.oneshot(request).await?;
            if response.status() == http::StatusCode::TOO_MANY_REQUESTS {
                ctx.stats.bucket(ctx.host(), |b| b.rate_limited += 1);
            }
            let quotas = learned_quotas(response.headers());
            let pause = learned_pause(response.status(), response.headers(), self.clock.now());
            if quotas.is_empty() && pause.is_none() {
                return Ok(response);
            }
            let pause_key = pause_key.unwrap_or_else(make_pause_key);
            if !quotas.is_empty() {
                for (name, quota) in self.limiter.learn_quotas(&pause_key, &quotas) {
                    // The request that taught the quota counted against it.
                    let _ = self
                        .limiter
                        .reserve_learned(&learned_key(&pause_key, &name), &quota, now, Duration::MAX);
                }
            }
            if let Some(pause) = pause {
                let now = self.clock.monotonic();
                self.limiter.pause(pause_key.clone(), now + pause.wait, now);
                RunStats::add(&ctx.stats.learned_pauses, 1);
                tracing::info!(
                    target: "apiary::egress",
                    tenant = %ctx.tenant,
                    plugin = %ctx.policy.plugin,
                    host = %pause_key.host,
                    status = response.status().as_u16(),
                    from = pause.from.as_str(),
                    pause_ms = pause.wait.as_millis() as u64,
                    "learned a rate limit"
                );
            }
            Ok(response)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const VECTORS: &str = include_str!("../../../tests/vectors/gcra.toml");

    fn secs(s: f64) -> Duration {
        Duration::from_secs_f64(s)
    }

    fn nz(n: u32) -> NonZeroU32 {
        NonZeroU32::new(n).unwrap()
    }

    /// Regression: a quota whose period was `u64::MAX` seconds (accepted from a manifest before
    /// periods were bounded) overflowed `tat + emission_interval` and panicked on the first booking.
    #[test]
    fn an_enormous_period_saturates_instead_of_panicking() {
        let quota = Quota::new(nz(1), Duration::MAX, nz(1));
        let mut bucket = Gcra::default();
        let now = Duration::from_secs(1);
        assert_eq!(
            bucket.reserve(&quota, now, DEFAULT_MAX_WAIT),
            Ok(Duration::ZERO),
            "the first cell is free"
        );
        // Past that the arithmetic saturates: no panic, though the answers mean little at this
        // scale, which is why manifests are held to MAX_RATE_PERIOD.
        let _ = bucket.reserve(&quota, now, DEFAULT_MAX_WAIT);
        let _ = bucket.check(&quota, now, u32::MAX);
    }

    #[test]
    fn gcra_vectors() {
        let v: toml::Table = toml::from_str(VECTORS).unwrap();
        let rate = v["rate_per_second"].as_integer().unwrap() as u32;
        let burst = v["burst"].as_integer().unwrap() as u32;
        // The vectors' burst counts the cells beyond the first.
        let quota = Quota::new(nz(rate), Duration::from_secs(1), nz(burst + 1));
        let mut bucket = Gcra::default();
        for (i, case) in v["cases"].as_array().unwrap().iter().enumerate() {
            let t = case["t"].as_float().unwrap();
            let volume = case["volume"].as_integer().unwrap() as u32;
            let got = bucket.check(&quota, secs(t), volume);
            let retry_after = case["retry_after"].as_float().unwrap();
            let expected = RateDecision {
                limited: case["limited"].as_bool().unwrap(),
                remaining: case["remaining"].as_integer().unwrap() as u32,
                reset_after: secs(case["reset_after"].as_float().unwrap()),
                retry_after: (retry_after >= 0.0).then(|| secs(retry_after)),
            };
            // Float seconds in the vectors: compare durations to the microsecond.
            let close = |a: Duration, b: Duration| a.abs_diff(b) < Duration::from_micros(1);
            assert_eq!(got.limited, expected.limited, "case {i}: {case:?}");
            assert_eq!(got.remaining, expected.remaining, "case {i}: {case:?}");
            assert!(close(got.reset_after, expected.reset_after), "case {i}: {got:?}");
            match (got.retry_after, expected.retry_after) {
                (Some(a), Some(b)) => assert!(close(a, b), "case {i}: {got:?}"),
                (a, b) => assert_eq!(a, b, "case {i}"),
            }
        }
    }

    #[test]
    fn an_idle_bucket_never_bursts_past_its_capacity() {
        let quota = Quota::new(nz(5), Duration::from_secs(1), nz(5));
        let mut bucket = Gcra::default();
        for _ in 0..5 {
            assert!(!bucket.check(&quota, secs(0.0), 1).limited);
        }
        assert!(bucket.check(&quota, secs(0.0), 1).limited);
        for _ in 0..5 {
            assert!(!bucket.check(&quota, secs(2.0), 1).limited);
        }
        assert!(bucket.check(&quota, secs(2.0), 1).limited);
    }

    #[test]
    fn reservations_queue_in_order_and_refuse_past_max_wait() {
        let quota = Quota::new(nz(2), Duration::from_secs(1), nz(1));
        let limiter = RateLimiter::new();
        let key = BucketKey {
            scope: PauseScope::Anonymous {
                tenant: TenantId::default(),
                plugin: "p".into(),
            },
            bucket: "h".into(),
        };
        let max = Duration::from_secs(1);
        assert_eq!(limiter.reserve(&key, &quota, secs(0.0), max), Ok(secs(0.0)));
        assert_eq!(limiter.reserve(&key, &quota, secs(0.0), max), Ok(secs(0.5)));
        assert_eq!(limiter.reserve(&key, &quota, secs(0.0), max), Ok(secs(1.0)));
        // The next would wait 1.5 s: refused, and nothing is booked.
        assert_eq!(limiter.reserve(&key, &quota, secs(0.0), max), Err(secs(1.5)));
        assert_eq!(limiter.reserve(&key, &quota, secs(1.0), max), Ok(secs(0.5)));
        // Another tenant's bucket is untouched.
        let other = BucketKey {
            scope: PauseScope::Anonymous {
                tenant: TenantId::new("acme"),
                plugin: "p".into(),
            },
            ..key
        };
        assert_eq!(limiter.reserve(&other, &quota, secs(1.0), max), Ok(secs(0.0)));
    }

    #[test]
    fn learned_buckets_are_bounded_and_idle_ones_make_room() {
        let quota = Quota::new(nz(1), Duration::from_secs(1), nz(1));
        let limiter = RateLimiter::new();
        let key = |i: usize| BucketKey {
            scope: PauseScope::Anonymous {
                tenant: TenantId::default(),
                plugin: "p".into(),
            },
            bucket: format!("h{i}"),
        };
        for i in 0..MAX_TRACKED {
            limiter.reserve_learned(&key(i), &quota, secs(0.0), secs(1.0)).unwrap();
        }
        // All busy: a new bucket goes untracked instead of growing the map.
        limiter
            .reserve_learned(&key(MAX_TRACKED), &quota, secs(0.5), secs(1.0))
            .unwrap();
        assert_eq!(limiter.learned_buckets.lock().unwrap().len(), MAX_TRACKED);
        // Later all are idle again: they make room for the new one.
        limiter
            .reserve_learned(&key(MAX_TRACKED + 1), &quota, secs(10.0), secs(1.0))
            .unwrap();
        assert_eq!(limiter.learned_buckets.lock().unwrap().len(), 1);
        // Pauses are bounded the same way.
        let pause = |i: usize| PauseKey {
            scope: PauseScope::Anonymous {
                tenant: TenantId::default(),
                plugin: "p".into(),
            },
            host: format!("h{i}"),
        };
        for i in 0..=MAX_TRACKED {
            limiter.pause(pause(i), secs(5.0), secs(0.0));
        }
        assert_eq!(limiter.pauses.lock().unwrap().len(), MAX_TRACKED);
        limiter.pause(pause(MAX_TRACKED + 1), secs(20.0), secs(10.0));
        assert_eq!(limiter.pauses.lock().unwrap().len(), 1, "expired pauses made room");
    }

    /// Regression: a made-up `bucket` name, `LOCALHOST` or a decimal spelling of an IP escaped
    /// the declared rate limit.
    #[test]
    fn the_host_bucket_always_applies_and_a_named_one_adds() {
        assert_eq!(buckets_for("API.example.com.", None), vec!["api.example.com"]);
        assert_eq!(
            buckets_for("api.example.com", Some("search")),
            vec!["api.example.com", "search"]
        );
        assert_eq!(
            buckets_for("api.example.com", Some("API.example.com")),
            vec!["api.example.com"]
        );
        let decimal = url::Url::parse("http://2130706433:8080/").unwrap();
        assert_eq!(buckets_for(decimal.host_str().unwrap(), None), vec!["127.0.0.1"]);
        let upper = url::Url::parse("http://LOCALHOST/").unwrap();
        assert_eq!(buckets_for(upper.host_str().unwrap(), None), vec!["localhost"]);
    }
}
