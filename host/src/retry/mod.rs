//! The retry policy: whether an attempt's outcome is worth another try, and how long to wait.
//!
//! [`RetryPolicy`] is a pure value: [`RetryPolicy::decide`] is a function of the attempt's outcome,
//! the attempt number, the wall time and a seedable random source, so every decision is exact
//! in tests. [`RetryLayer`] is the thin I/O around it: the egress layer that sleeps and re-sends,
//! within the destination's [retry budget](budget).

mod budget;

pub use budget::{
    BUDGET_WINDOW, BudgetConfig, DEFAULT_BUDGET_MIN_RETRIES, DEFAULT_BUDGET_RATIO, RetryBudget, RetryBudgets,
};

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use http::{HeaderMap, StatusCode, header::RETRY_AFTER};
use serde::Deserialize;
use tower::ServiceExt;

use crate::clock::Clock;
use crate::http::{
    EgressContext, EgressError, EgressFuture, EgressLayer, EgressRequest, EgressResponse, EgressService, RunStats,
};
use crate::ratelimit::{is_rate_limited_403, learned_pause};

/// Default number of retries after the first attempt.
///
/// Five retries with a 2 s base wait up to 2+4+8+16+32 = 62 s in all before jitter: long enough
/// to ride out a brief outage or a rate-limit window, short enough to fail a run promptly.
pub const DEFAULT_MAX_RETRIES: u32 = 5;
/// Default wait before the first retry; each later retry doubles it.
pub const DEFAULT_BASE_DELAY: Duration = Duration::from_secs(2);
/// Default cap on one computed backoff wait (not on a server's `Retry-After`).
pub const DEFAULT_MAX_DELAY: Duration = Duration::from_secs(60);
/// Default cap on a server's `Retry-After`: six hours, as popular clients use. A longer value
/// is clamped; the run's deadline then decides whether waiting is still worth it.
pub const DEFAULT_MAX_RETRY_AFTER: Duration = Duration::from_secs(6 * 60 * 60);
/// Longest `base_delay`, `max_delay` or `max_retry_after` accepted: a wait longer than a day
/// outlives any run's deadline ([`MAX_DEADLINE`](crate::manifest::MAX_DEADLINE)), and the bound
/// keeps `now + wait` far from overflowing.
pub const MAX_RETRY_DELAY: Duration = Duration::from_secs(24 * 60 * 60);
/// Statuses retried by default: rate limited, and the transient server errors.
pub const DEFAULT_RETRY_STATUSES: [u16; 5] = [429, 500, 502, 503, 504];
/// Statuses whose `Retry-After` header is honoured (RFC 9110 §10.2.3 and common practice).
pub const RETRY_AFTER_STATUSES: [u16; 3] = [413, 429, 503];
/// The shortest wait a server's `Retry-After` (or spent quota) gets: `Retry-After: 0`, or a
/// reset already past, would otherwise retry at once, into the same limit.
pub const MIN_SERVER_WAIT: Duration = Duration::from_secs(1);

/// The manifest's `[retry]` table.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetryConfig {
    /// Retries after the first attempt; 0 disables retries.
    /// Example: `max_retries = 5`
    pub max_retries: u32,
    /// Wait before the first retry, doubled for each later one.
    /// Example: `base_delay = "2s"`
    #[serde(deserialize_with = "retry_delay")]
    pub base_delay: Duration,
    /// Cap on one computed wait.
    /// Example: `max_delay = "60s"`
    #[serde(deserialize_with = "retry_delay")]
    pub max_delay: Duration,
    /// Whether to multiply each computed wait by a random factor in [0.5, 1.5], so that many
    /// clients failing together do not retry together.
    /// Example: `jitter = true`
    pub jitter: bool,
    /// Response statuses that are retried.
    /// Example: `statuses = [429, 500, 502, 503, 504]`
    pub statuses: Vec<u16>,
    /// Cap on a server's `Retry-After`.
    /// Example: `max_retry_after = "6h"`
    #[serde(deserialize_with = "retry_delay")]
    pub max_retry_after: Duration,
    /// How many retries the tenant's calls to one destination may add over their first
    /// attempts, so an outage does not become a retry storm.
    /// Example: `budget = { ratio = 0.2, min_retries = 10 }`
    #[serde(deserialize_with = "budget")]
    pub budget: BudgetConfig,
}

fn budget<'de, D: serde::Deserializer<'de>>(d: D) -> Result<BudgetConfig, D::Error> {
    let budget = BudgetConfig::deserialize(d)?;
    if !(0.0..=10.0).contains(&budget.ratio) {
        return Err(serde::de::Error::custom(format!(
            "budget.ratio must be between 0 and 10 (a share of first attempts), not {}",
            budget.ratio
        )));
    }
    Ok(budget)
}

fn retry_delay<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    crate::toml_file::duration::at_most(d, MAX_RETRY_DELAY)
}

impl Default for RetryConfig {
    fn default() -> Self {
        Self {
            max_retries: DEFAULT_MAX_RETRIES,
            base_delay: DEFAULT_BASE_DELAY,
            max_delay: DEFAULT_MAX_DELAY,
            jitter: true,
            statuses: DEFAULT_RETRY_STATUSES.to_vec(),
            max_retry_after: DEFAULT_MAX_RETRY_AFTER,
            budget: BudgetConfig::default(),
        }
    }
}

/// What one attempt produced, as far as retrying is concerned.
#[derive(Debug, Clone, Copy)]
pub enum AttemptOutcome<'a> {
    /// The server answered.
    Response {
        /// The response status.
        status: StatusCode,
        /// The response headers (read for `Retry-After`).
        headers: &'a HeaderMap,
    },
    /// No connection could be made, so the server cannot have seen the request.
    ConnectFailed,
    /// The attempt timed out or the connection broke after the request may have been sent.
    Interrupted,
}

/// The policy's verdict on one attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryDecision {
    /// Done: the outcome is final (a success, or a status that is not retried).
    Accept,
    /// Try again after this wait.
    Retry {
        /// How long to wait before the next attempt.
        after: Duration,
        /// Whether the wait came from the server's `Retry-After`.
        server_asked: bool,
    },
    /// The outcome is retryable but no retries are left.
    Exhausted,
}

/// When and how often to retry: exponential backoff with jitter, `Retry-After` honoured,
/// idempotency-aware.
///
/// ```
/// use apiary_host::{RetryPolicy, RetryDecision, AttemptOutcome};
/// use http::{HeaderMap, StatusCode};
/// use std::time::{Duration, SystemTime};
///
/// let policy = RetryPolicy::default().without_jitter();
/// let headers = HeaderMap::new();
/// let outcome = AttemptOutcome::Response { status: StatusCode::SERVICE_UNAVAILABLE, headers: &headers };
/// let mut rng = fastrand::Rng::with_seed(7);
/// let decision = policy.decide(1, &outcome, true, SystemTime::now(), &mut rng);
/// assert_eq!(decision, RetryDecision::Retry { after: Duration::from_secs(2), server_asked: false });
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    config: RetryConfig,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self::new(RetryConfig::default())
    }
}

impl RetryPolicy {
    /// A policy from the manifest's `[retry]` table.
    pub fn new(config: RetryConfig) -> Self {
        Self { config }
    }

    /// The same policy with jitter turned off (waits are exactly the computed backoff).
    pub fn without_jitter(mut self) -> Self {
        self.config.jitter = false;
        self
    }

    /// The same policy allowing at most `max_retries` retries, never more than it already allows.
    pub fn narrowed_to(mut self, max_retries: u32) -> Self {
        self.config.max_retries = self.config.max_retries.min(max_retries);
        self
    }

    /// Retries allowed after the first attempt.
    pub fn max_retries(&self) -> u32 {
        self.config.max_retries
    }

    /// The retry budget's settings.
    pub fn budget(&self) -> &BudgetConfig {
        &self.config.budget
    }

    /// Decides what to do after attempt number `attempt` (1 for the first) ended in `outcome`.
    ///
    /// `idempotent` says whether repeating the request is safe; if not, only outcomes where the
    /// server cannot have acted (no connection, 429) are retried.
    pub fn decide(
        &self,
        attempt: u32,
        outcome: &AttemptOutcome<'_>,
        idempotent: bool,
        now: SystemTime,
        rng: &mut fastrand::Rng,
    ) -> RetryDecision {
        let retry_after = match *outcome {
            AttemptOutcome::Response { status, headers } => {
                // A 403 that says a quota is spent (GitHub's limits) is a rate limit, not a refusal.
                let rate_limited = status == StatusCode::TOO_MANY_REQUESTS
                    || status == StatusCode::FORBIDDEN && is_rate_limited_403(headers, now);
                let retried =
                    self.config.statuses.contains(&status.as_u16()) || rate_limited && self.retries_rate_limits();
                if !retried {
                    return RetryDecision::Accept;
                }
                // The server acted on neither: it refused the request before doing anything.
                if !idempotent && !rate_limited {
                    return RetryDecision::Accept;
                }
                if RETRY_AFTER_STATUSES.contains(&status.as_u16()) || rate_limited {
                    learned_pause(status, headers, now).map(|pause| pause.wait.max(MIN_SERVER_WAIT))
                } else {
                    None
                }
            }
            AttemptOutcome::ConnectFailed => None,
            AttemptOutcome::Interrupted if !idempotent => return RetryDecision::Exhausted,
            AttemptOutcome::Interrupted => None,
        };
        if attempt > self.config.max_retries {
            return RetryDecision::Exhausted;
        }
        match retry_after {
            Some(wait) => RetryDecision::Retry {
                after: wait.min(self.config.max_retry_after),
                server_asked: true,
            },
            None => RetryDecision::Retry {
                after: self.jittered(self.backoff(attempt), rng),
                server_asked: false,
            },
        }
    }

    /// The computed wait before retry number `retry` (1 for the first), before jitter:
    /// `base * 2^(retry-1)`, capped at `max_delay` without ever overflowing.
    pub fn backoff(&self, retry: u32) -> Duration {
        let cap = self.config.max_delay;
        let mut delay = self.config.base_delay.min(cap);
        for _ in 1..retry {
            if delay >= cap {
                break;
            }
            delay = delay.saturating_mul(2).min(cap);
        }
        delay
    }

    /// `delay` times a factor in [0.5, 1.5], drawn so that the cap never bunches waits: the
    /// range is cut at `max_delay` before drawing, not clamped after (clamping would put every
    /// draw above the cap on the cap itself, half of them once the backoff reaches it).
    fn jittered(&self, delay: Duration, rng: &mut fastrand::Rng) -> Duration {
        if !self.config.jitter {
            return delay;
        }
        let low = delay.mul_f64(0.5);
        let high = delay.mul_f64(1.5).min(self.config.max_delay).max(low);
        low + (high - low).mul_f64(rng.f64())
    }

    /// Whether 429s are retried at all (a manifest may take 429 out of `statuses`); a 403 that
    /// is a rate limit follows the same choice.
    fn retries_rate_limits(&self) -> bool {
        self.config.statuses.contains(&StatusCode::TOO_MANY_REQUESTS.as_u16())
    }
}

/// Reads the first `Retry-After` header as a wait from `now`; `None` when absent or malformed.
pub fn retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?;
    parse_retry_after(value, now)
}

/// Parses a `Retry-After` value (RFC 9110 §10.2.3): delay-seconds or an HTTP-date in any of
/// the three formats. A date in the past means no wait. Malformed values give `None`: they are
/// ignored, never guessed at.
///
/// ```
/// use apiary_host::parse_retry_after;
/// use std::time::{Duration, SystemTime};
///
/// assert_eq!(parse_retry_after("120", SystemTime::now()), Some(Duration::from_secs(120)));
/// assert_eq!(parse_retry_after("1.5", SystemTime::now()), None);
/// ```
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim_matches([' ', '\t']);
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        // Too many digits to fit is still a (very long) wait, clamped later by the policy.
        return Some(Duration::from_secs(value.parse().unwrap_or(u64::MAX)));
    }
    let date = httpdate::parse_http_date(value).ok()?;
    Some(date.duration_since(now).unwrap_or(Duration::ZERO))
}

/// The retry egress layer: sends, asks the [`RetryPolicy`] about the outcome, waits on the
/// injected [`Clock`], and sends again. Each attempt passes through the layers below it
/// (rate limit, timeout, client) again.
#[derive(Debug, Clone)]
pub struct RetryLayer {
    clock: Arc<dyn Clock>,
    rng: Arc<Mutex<fastrand::Rng>>,
    budgets: Arc<RetryBudgets>,
}

impl RetryLayer {
    /// A layer waiting on `clock` and drawing jitter from `rng`.
    pub fn new(clock: Arc<dyn Clock>, rng: Arc<Mutex<fastrand::Rng>>) -> Self {
        Self {
            clock,
            rng,
            budgets: Arc::default(),
        }
    }

    /// The same layer drawing retries from `budgets` (shared by the whole process).
    pub fn with_budgets(mut self, budgets: Arc<RetryBudgets>) -> Self {
        self.budgets = budgets;
        self
    }
}

impl EgressLayer for RetryLayer {
    fn call(self, request: EgressRequest, next: EgressService) -> EgressFuture {
        Box::pin(async move {
            let ctx = EgressContext::of(&request)?.clone();
            let mut policy = ctx.policy.retry.clone();
            if let Some(max) = ctx.options.max_retries {
                policy = policy.narrowed_to(max);
            }
            let idempotent = ctx.idempotent(request.method());
            let destination = ctx.host();
            self.budgets.deposit(&ctx.tenant, destination, self.clock.monotonic());
            let mut attempt = 1;
            loop {
                let result = next.clone().oneshot(clone_request(&request)).await;
                let outcome = match &result {
                    Ok(response) => AttemptOutcome::Response {
                        status: response.status(),
                        headers: response.headers(),
                    },
                    Err(EgressError::Connect(_)) => AttemptOutcome::ConnectFailed,
                    Err(EgressError::Timeout(_) | EgressError::Connection(_)) => AttemptOutcome::Interrupted,
                    Err(_) => return result,
                };
                let now = self.clock.now();
                let decision = {
                    let mut rng = self.rng.lock().unwrap_or_else(|e| e.into_inner());
                    policy.decide(attempt, &outcome, idempotent, now, &mut rng)
                };
                let (after, server_asked) = match decision {
                    RetryDecision::Accept => return result,
                    RetryDecision::Exhausted => return give_up(attempt, result),
                    RetryDecision::Retry { after, server_asked } => (after, server_asked),
                };
                let past_deadline = ctx
                    .deadline
                    .is_some_and(|d| self.clock.monotonic().saturating_add(after) > d);
                if past_deadline {
                    let rate_limited = matches!(&result, Ok(r) if r.status() == StatusCode::TOO_MANY_REQUESTS);
                    if server_asked && rate_limited {
                        return Err(EgressError::RateLimited(after));
                    }
                    return give_up(attempt, result);
                }
                let budgeted = self
                    .budgets
                    .withdraw(&ctx.tenant, destination, self.clock.monotonic(), policy.budget());
                if !budgeted {
                    RunStats::add(&ctx.stats.retries_denied, 1);
                    tracing::warn!(
                        target: "apiary::egress",
                        tenant = %ctx.tenant,
                        plugin = %ctx.policy.plugin,
                        %destination,
                        attempt,
                        outcome = %describe(&result),
                        "retry budget spent: not retrying"
                    );
                    return give_up(attempt, result);
                }
                tracing::info!(
                    target: "apiary::egress",
                    plugin = %ctx.policy.plugin,
                    destination = %request.uri().authority().map(|a| a.as_str()).unwrap_or(""),
                    attempt,
                    outcome = %describe(&result),
                    wait_ms = after.as_millis() as u64,
                    retry_after = server_asked,
                    "retrying"
                );
                RunStats::add(&ctx.stats.retries, 1);
                ctx.stats.bucket(ctx.host(), |b| b.retries += 1);
                ctx.stats.record_wait(&ctx.call, ctx.host(), after);
                self.clock.sleep(after).await;
                attempt += 1;
            }
        })
    }
}

/// The result to return when no retry is left: unchanged if nothing was retried, otherwise
/// `retries-exhausted` with the last status.
fn give_up(attempts: u32, result: Result<EgressResponse, EgressError>) -> Result<EgressResponse, EgressError> {
    if attempts <= 1 {
        return result;
    }
    Err(EgressError::RetriesExhausted {
        attempts,
        last_status: result.as_ref().ok().map(|r| r.status().as_u16()),
        message: describe(&result),
    })
}

fn describe(result: &Result<EgressResponse, EgressError>) -> String {
    match result {
        Ok(response) => format!("HTTP {}", response.status()),
        Err(error) => error.to_string(),
    }
}

/// A copy of a buffered request for another attempt (bodies are `Bytes`, so this is cheap).
fn clone_request(request: &EgressRequest) -> EgressRequest {
    let mut copy = http::Request::new(request.body().clone());
    *copy.method_mut() = request.method().clone();
    *copy.uri_mut() = request.uri().clone();
    *copy.version_mut() = request.version();
    *copy.headers_mut() = request.headers().clone();
    *copy.extensions_mut() = request.extensions().clone();
    copy
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    const VECTORS: &str = include_str!("../../../tests/vectors/retry_after.toml");

    fn vectors() -> toml::Table {
        toml::from_str(VECTORS).expect("retry_after.toml parses")
    }

    fn table<'a>(t: &'a toml::Table, key: &str) -> &'a toml::Table {
        t[key].as_table().unwrap()
    }

    #[test]
    fn delay_seconds_vectors() {
        let v = vectors();
        for case in table(&v, "delay_seconds")["cases"].as_array().unwrap() {
            let value = case["value"].as_str().unwrap();
            let seconds = case["seconds"].as_integer().unwrap() as u64;
            assert_eq!(
                parse_retry_after(value, SystemTime::now()),
                Some(Duration::from_secs(seconds)),
                "{value:?}"
            );
        }
        for value in table(&v, "delay_seconds_invalid")["values"].as_array().unwrap() {
            let value = value.as_str().unwrap();
            assert_eq!(parse_retry_after(value, SystemTime::now()), None, "{value:?}");
        }
    }

    #[test]
    fn http_date_vectors() {
        let v = vectors();
        let group = table(&v, "http_date");
        let now = httpdate::parse_http_date(group["now"].as_str().unwrap()).unwrap();
        for case in group["cases"].as_array().unwrap() {
            let value = case["value"].as_str().unwrap();
            let seconds = case["seconds"].as_integer().unwrap() as u64;
            assert_eq!(
                parse_retry_after(value, now),
                Some(Duration::from_secs(seconds)),
                "{value:?}"
            );
        }
        for value in group["invalid"].as_array().unwrap() {
            assert_eq!(parse_retry_after(value.as_str().unwrap(), now), None);
        }
    }

    #[test]
    fn backoff_vectors_double_and_cap_without_overflow() {
        let v = vectors();
        let b = table(&v, "backoff");
        let policy = RetryPolicy::new(RetryConfig {
            base_delay: Duration::from_secs_f64(b["base"].as_float().unwrap()),
            max_delay: Duration::from_secs_f64(b["cap"].as_float().unwrap()),
            ..RetryConfig::default()
        });
        for pair in b["expected"].as_array().unwrap() {
            let pair = pair.as_array().unwrap();
            let retry = pair[0].as_integer().unwrap() as u32;
            let expected = Duration::from_secs_f64(pair[1].as_float().unwrap());
            assert_eq!(policy.backoff(retry), expected, "retry {retry}");
        }
    }

    #[test]
    fn default_policy_waits_the_seed_total_without_jitter() {
        let v = vectors();
        let expected = table(&v, "backoff")["seed_total_without_jitter"].as_float().unwrap();
        let policy = RetryPolicy::default().without_jitter();
        let headers = HeaderMap::new();
        let outcome = AttemptOutcome::Response {
            status: StatusCode::BAD_GATEWAY,
            headers: &headers,
        };
        let mut rng = fastrand::Rng::with_seed(1);
        let mut total = Duration::ZERO;
        let mut attempt = 1;
        while let RetryDecision::Retry { after, .. } =
            policy.decide(attempt, &outcome, true, SystemTime::now(), &mut rng)
        {
            total += after;
            attempt += 1;
        }
        assert_eq!(total, Duration::from_secs_f64(expected));
        assert_eq!(attempt, DEFAULT_MAX_RETRIES + 1, "attempts made in all");
    }

    #[test]
    fn jitter_stays_within_half_to_one_and_a_half() {
        let policy = RetryPolicy::default();
        let mut rng = fastrand::Rng::with_seed(42);
        let (mut low, mut high) = (Duration::MAX, Duration::ZERO);
        for _ in 0..2000 {
            let wait = policy.jittered(Duration::from_secs(2), &mut rng);
            low = low.min(wait);
            high = high.max(wait);
        }
        assert!(
            low >= Duration::from_secs(1) && low < Duration::from_millis(1050),
            "{low:?}"
        );
        assert!(
            high <= Duration::from_secs(3) && high > Duration::from_millis(2950),
            "{high:?}"
        );
        // The same seed gives the same waits.
        let a = policy.jittered(Duration::from_secs(2), &mut fastrand::Rng::with_seed(9));
        let b = policy.jittered(Duration::from_secs(2), &mut fastrand::Rng::with_seed(9));
        assert_eq!(a, b);
    }

    fn decide_status(policy: &RetryPolicy, status: u16, headers: &HeaderMap, idempotent: bool) -> RetryDecision {
        let outcome = AttemptOutcome::Response {
            status: StatusCode::from_u16(status).unwrap(),
            headers,
        };
        let now = httpdate::parse_http_date("Mon, 03 Jun 2019 11:00:00 GMT").unwrap();
        policy.decide(1, &outcome, idempotent, now, &mut fastrand::Rng::with_seed(3))
    }

    #[test]
    fn retry_after_wins_over_backoff_for_the_statuses_that_honour_it() {
        let policy = RetryPolicy::default();
        let mut headers = HeaderMap::new();
        headers.insert(RETRY_AFTER, HeaderValue::from_static("7"));
        for status in [429, 503] {
            assert_eq!(
                decide_status(&policy, status, &headers, true),
                RetryDecision::Retry {
                    after: Duration::from_secs(7),
                    server_asked: true
                }
            );
        }
        // 500 is retried, but its Retry-After is not one of the honoured ones.
        assert!(matches!(
            decide_status(&policy, 500, &headers, true),
            RetryDecision::Retry {
                server_asked: false,
                ..
            }
        ));
        // 418 with Retry-After is not retried at all.
        assert_eq!(decide_status(&policy, 418, &headers, true), RetryDecision::Accept);
    }

    #[test]
    fn at_the_cap_jittered_waits_spread_below_it_instead_of_bunching_on_it() {
        let policy = RetryPolicy::default();
        let cap = DEFAULT_MAX_DELAY;
        let mut rng = fastrand::Rng::with_seed(5);
        let waits: Vec<Duration> = (0..2000).map(|_| policy.jittered(cap, &mut rng)).collect();
        let at_cap = waits.iter().filter(|w| **w == cap).count();
        assert!(at_cap <= 2, "{at_cap} of 2000 waits landed exactly on the cap");
        assert!(waits.iter().all(|w| *w >= cap / 2 && *w <= cap));
        let above_three_quarters = waits.iter().filter(|w| **w > cap * 3 / 4).count();
        assert!((800..1200).contains(&above_three_quarters), "{above_three_quarters}");
    }

    #[test]
    fn a_retry_after_of_zero_waits_the_floor() {
        let mut headers = HeaderMap::new();
        headers.insert(RETRY_AFTER, HeaderValue::from_static("0"));
        assert_eq!(
            decide_status(&RetryPolicy::default(), 429, &headers, true),
            RetryDecision::Retry {
                after: MIN_SERVER_WAIT,
                server_asked: true
            }
        );
    }

    #[test]
    fn a_rate_limit_403_is_retried_after_its_wait_and_a_plain_403_is_final() {
        let policy = RetryPolicy::default();
        // GitHub's secondary limit: a 403 with Retry-After; retried even when not idempotent,
        // since the server did nothing.
        let mut secondary = HeaderMap::new();
        secondary.insert(RETRY_AFTER, HeaderValue::from_static("60"));
        for idempotent in [true, false] {
            assert_eq!(
                decide_status(&policy, 403, &secondary, idempotent),
                RetryDecision::Retry {
                    after: Duration::from_secs(60),
                    server_asked: true
                }
            );
        }
        // The primary limit: no quota left until the reset (the clock reads 11:00:00, epoch
        // 1559559600); a second more.
        let mut primary = HeaderMap::new();
        primary.insert("x-ratelimit-remaining", HeaderValue::from_static("0"));
        primary.insert("x-ratelimit-reset", HeaderValue::from_static("1559559630"));
        assert_eq!(
            decide_status(&policy, 403, &primary, true),
            RetryDecision::Retry {
                after: Duration::from_secs(31),
                server_asked: true
            }
        );
        // A refusal: quota left, no Retry-After.
        let mut refusal = HeaderMap::new();
        refusal.insert("x-ratelimit-remaining", HeaderValue::from_static("4999"));
        assert_eq!(decide_status(&policy, 403, &refusal, true), RetryDecision::Accept);
        assert_eq!(
            decide_status(&policy, 403, &HeaderMap::new(), true),
            RetryDecision::Accept
        );
    }

    #[test]
    fn retry_after_is_clamped_to_the_cap() {
        let v = vectors();
        let cap = table(&v, "policy_facts")["cap_seconds_common_default"]
            .as_integer()
            .unwrap() as u64;
        assert_eq!(DEFAULT_MAX_RETRY_AFTER, Duration::from_secs(cap));
        let mut headers = HeaderMap::new();
        headers.insert(RETRY_AFTER, HeaderValue::from_static("999999"));
        assert_eq!(
            decide_status(&RetryPolicy::default(), 429, &headers, true),
            RetryDecision::Retry {
                after: DEFAULT_MAX_RETRY_AFTER,
                server_asked: true
            }
        );
    }

    #[test]
    fn non_idempotent_requests_retry_only_when_the_server_cannot_have_acted() {
        let policy = RetryPolicy::default().without_jitter();
        let headers = HeaderMap::new();
        assert_eq!(decide_status(&policy, 503, &headers, false), RetryDecision::Accept);
        assert!(matches!(
            decide_status(&policy, 429, &headers, false),
            RetryDecision::Retry { .. }
        ));
        let mut rng = fastrand::Rng::with_seed(1);
        let now = SystemTime::now();
        assert!(matches!(
            policy.decide(1, &AttemptOutcome::ConnectFailed, false, now, &mut rng),
            RetryDecision::Retry { .. }
        ));
        assert_eq!(
            policy.decide(1, &AttemptOutcome::Interrupted, false, now, &mut rng),
            RetryDecision::Exhausted
        );
        assert!(matches!(
            policy.decide(1, &AttemptOutcome::Interrupted, true, now, &mut rng),
            RetryDecision::Retry { .. }
        ));
    }

    #[test]
    fn narrowing_never_widens() {
        let policy = RetryPolicy::default();
        assert_eq!(policy.clone().narrowed_to(1).max_retries(), 1);
        assert_eq!(policy.narrowed_to(99).max_retries(), DEFAULT_MAX_RETRIES);
        let headers = HeaderMap::new();
        let none = RetryPolicy::default().narrowed_to(0);
        assert_eq!(decide_status(&none, 503, &headers, true), RetryDecision::Exhausted);
    }

    /// Sends one GET through a retry layer over a stub failing every attempt with `error`, and
    /// counts the attempts.
    async fn attempts_failing_with(error: EgressError) -> (u32, Result<EgressResponse, EgressError>) {
        use std::sync::atomic::{AtomicU32, Ordering};
        let calls = Arc::new(AtomicU32::new(0));
        let counted = calls.clone();
        let next = EgressService::new(tower::service_fn(move |_: EgressRequest| {
            counted.fetch_add(1, Ordering::Relaxed);
            std::future::ready(Err::<EgressResponse, _>(error.clone()))
        }));
        let clock: Arc<dyn Clock> = Arc::new(crate::ManualClock::new());
        let layer = RetryLayer::new(clock, Arc::new(Mutex::new(fastrand::Rng::with_seed(1))));
        let policy = Arc::new(crate::EgressPolicy::deny_all("p", crate::Limits::default()));
        let mut request = http::Request::get("http://api.test.invalid/")
            .body(bytes::Bytes::new())
            .unwrap();
        EgressContext::new(crate::TenantId::default(), policy).attach_to(&mut request);
        let result = layer.call(request, next).await;
        (calls.load(Ordering::Relaxed), result)
    }

    #[tokio::test]
    async fn a_refused_address_is_never_retried() {
        let (attempts, _) = attempts_failing_with(EgressError::Connect("refused".into())).await;
        assert_eq!(attempts, 1 + DEFAULT_MAX_RETRIES, "a connect failure is retried");
        let refused = crate::NetPolicy::default()
            .check(std::net::IpAddr::from([127, 0, 0, 1]))
            .unwrap_err();
        let error = EgressError::ForbiddenAddress {
            destination: "api.test.invalid".into(),
            plugin: "p".into(),
            refused,
        };
        let (attempts, result) = attempts_failing_with(error.clone()).await;
        assert_eq!(attempts, 1);
        assert_eq!(result.unwrap_err(), error, "returned as is, not as retries-exhausted");
    }
}
