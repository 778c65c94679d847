//! Circuit breakers: when a destination keeps failing, stop sending to it for a while instead
//! of retrying into an outage, then let one probe through to see whether it is back.
//!
//! [`CircuitBreaker`] is the pure state machine (closed → open → half-open → closed), driven
//! by the caller's clock reading; [`Breakers`] holds one per tenant and destination host, shared by
//! every run; [`BreakerLayer`] is the egress layer that consults it before each attempt and
//! reports each attempt's outcome. A tenant's failures open only its own breakers: one tenant
//! cannot cut another off from an API.

use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use tower::ServiceExt;

use crate::clock::Clock;
use crate::http::{
    EgressContext, EgressError, EgressFuture, EgressLayer, EgressRequest, EgressService, RunStats, destination,
};
use crate::tenant::{PerDestination, TenantId};

/// Consecutive failed attempts that open a breaker, unless the manifest says otherwise.
pub const DEFAULT_BREAKER_FAILURES: u32 = 5;
/// How long an opened breaker refuses requests before it lets a probe through.
pub const DEFAULT_BREAKER_OPEN_FOR: Duration = Duration::from_secs(30);
/// Longest `open_for` accepted.
pub const MAX_BREAKER_OPEN_FOR: Duration = Duration::from_secs(60 * 60);

/// The manifest's `[circuit_breaker]` table.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BreakerConfig {
    /// Consecutive failed attempts (connection errors, timeouts, 500, 502, 503, 504) that open
    /// the breaker; 0 turns it off.
    /// Example: `failures = 5`
    pub failures: u32,
    /// How long it stays open before one probe is let through.
    /// Example: `open_for = "30s"`
    #[serde(deserialize_with = "open_for")]
    pub open_for: Duration,
}

fn open_for<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    crate::toml_file::duration::at_most(d, MAX_BREAKER_OPEN_FOR)
}

impl Default for BreakerConfig {
    fn default() -> Self {
        Self {
            failures: DEFAULT_BREAKER_FAILURES,
            open_for: DEFAULT_BREAKER_OPEN_FOR,
        }
    }
}

/// A breaker's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    /// Requests go through; this many attempts in a row have failed.
    Closed {
        /// Consecutive failures so far.
        failures: u32,
    },
    /// Requests are refused until `until` (on the clock's monotonic scale).
    Open {
        /// When a probe may go.
        until: Duration,
    },
    /// One probe is in flight since `since`; everything else is refused until it reports, or
    /// until `open_for` has passed (a probe whose caller gave up never reports).
    HalfOpen {
        /// When the probe went.
        since: Duration,
    },
}

/// What the breaker says about an attempt about to be made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Send it.
    Allowed,
    /// Send it as the probe: its outcome closes or reopens the breaker.
    Probe,
    /// Do not send; the breaker is open for this much longer (zero while a probe is out).
    Refused(Duration),
}

/// One destination's breaker: a pure state machine over clock readings.
///
/// ```
/// use apiary_host::{Admission, BreakerConfig, CircuitBreaker};
/// use std::time::Duration;
///
/// let config = BreakerConfig { failures: 2, open_for: Duration::from_secs(30) };
/// let mut breaker = CircuitBreaker::default();
/// let t = Duration::from_secs(100);
/// breaker.record(false, t, &config);
/// breaker.record(false, t, &config); // opens
/// assert_eq!(breaker.admit(t, &config), Admission::Refused(Duration::from_secs(30)));
/// assert_eq!(breaker.admit(t + Duration::from_secs(30), &config), Admission::Probe);
/// breaker.record(true, t + Duration::from_secs(31), &config); // the probe succeeded
/// assert_eq!(breaker.admit(t + Duration::from_secs(31), &config), Admission::Allowed);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CircuitBreaker {
    state: BreakerState,
}

impl Default for CircuitBreaker {
    fn default() -> Self {
        Self {
            state: BreakerState::Closed { failures: 0 },
        }
    }
}

impl CircuitBreaker {
    /// The current state.
    pub fn state(&self) -> BreakerState {
        self.state
    }

    /// Whether an attempt may be made at `now`. An open breaker whose time is up lets exactly
    /// one probe through and refuses the rest until the probe reports.
    pub fn admit(&mut self, now: Duration, config: &BreakerConfig) -> Admission {
        match self.state {
            BreakerState::Closed { .. } => Admission::Allowed,
            BreakerState::Open { until } if now >= until => {
                self.state = BreakerState::HalfOpen { since: now };
                Admission::Probe
            }
            BreakerState::HalfOpen { since } if now >= since.saturating_add(config.open_for) => {
                self.state = BreakerState::HalfOpen { since: now };
                Admission::Probe
            }
            BreakerState::Open { until } => Admission::Refused(until - now),
            BreakerState::HalfOpen { .. } => Admission::Refused(Duration::ZERO),
        }
    }

    /// A probe that never reached the destination (refused further in, by a rate limit for
    /// example) tells nothing: the breaker is open again, and the next caller probes.
    pub fn abandon_probe(&mut self, now: Duration) {
        if matches!(self.state, BreakerState::HalfOpen { .. }) {
            self.state = BreakerState::Open { until: now };
        }
    }

    /// Records an attempt's outcome at `now`; returns the state it moved to, if it moved.
    pub fn record(&mut self, success: bool, now: Duration, config: &BreakerConfig) -> Option<BreakerState> {
        let next = match (self.state, success) {
            (_, _) if config.failures == 0 => BreakerState::Closed { failures: 0 },
            (_, true) => BreakerState::Closed { failures: 0 },
            (BreakerState::Closed { failures }, false) if failures + 1 >= config.failures => BreakerState::Open {
                until: now + config.open_for,
            },
            (BreakerState::Closed { failures }, false) => BreakerState::Closed { failures: failures + 1 },
            // The probe failed: open again for another period.
            (BreakerState::HalfOpen { .. }, false) => BreakerState::Open {
                until: now + config.open_for,
            },
            // An attempt admitted before the breaker opened, reporting late: already open.
            (open @ BreakerState::Open { .. }, false) => open,
        };
        let moved = std::mem::discriminant(&next) != std::mem::discriminant(&self.state);
        self.state = next;
        moved.then_some(next)
    }
}

/// Every breaker of the process, by tenant and destination host.
#[derive(Debug, Default)]
pub struct Breakers {
    breakers: PerDestination<CircuitBreaker>,
}

impl Breakers {
    /// No breakers yet (all closed).
    pub fn new() -> Self {
        Self::default()
    }

    /// A closed breaker with no failures holds nothing (see [`PerDestination`]).
    fn with<R>(&self, tenant: &TenantId, host: &str, f: impl FnOnce(&mut CircuitBreaker) -> R) -> R {
        let closed = BreakerState::Closed { failures: 0 };
        self.breakers.with(tenant, host, |b| b.state == closed, f)
    }
}

/// What an attempt's outcome says about its destination: `Some(false)` when it did not
/// answer or answered that it is failing, `Some(true)` when it answered (a 4xx is the
/// request's fault, a 429 a rate limit), `None` when the attempt never reached it (refused by
/// a rate limit, a caller's error): that says nothing either way.
fn healthy(result: &Result<crate::http::EgressResponse, EgressError>) -> Option<bool> {
    match result {
        Ok(response) => Some(!matches!(response.status().as_u16(), 500 | 502 | 503 | 504)),
        Err(EgressError::Connect(_) | EgressError::Connection(_) | EgressError::Timeout(_)) => Some(false),
        Err(_) => None,
    }
}

/// The breaker egress layer: below the retry layer, so every attempt asks and reports.
#[derive(Debug, Clone)]
pub struct BreakerLayer {
    breakers: Arc<Breakers>,
    clock: Arc<dyn Clock>,
}

impl BreakerLayer {
    /// A layer keeping its breakers in `breakers`, timed by `clock`.
    pub fn new(breakers: Arc<Breakers>, clock: Arc<dyn Clock>) -> Self {
        Self { breakers, clock }
    }
}

impl EgressLayer for BreakerLayer {
    fn call(self, request: EgressRequest, next: EgressService) -> EgressFuture {
        Box::pin(async move {
            let ctx = EgressContext::of(&request)?.clone();
            let config = ctx.policy.breaker.clone();
            if config.failures == 0 {
                return next.oneshot(request).await;
            }
            let Some(url) = ctx.url.as_ref() else {
                return next.oneshot(request).await;
            };
            let host = ctx.host();
            let admission = self
                .breakers
                .with(&ctx.tenant, host, |b| b.admit(self.clock.monotonic(), &config));
            if let Admission::Refused(retry_in) = admission {
                return Err(EgressError::CircuitOpen {
                    destination: destination(url),
                    retry_in,
                });
            }
            if admission == Admission::Probe {
                log_change(
                    &ctx,
                    &destination(url),
                    BreakerState::HalfOpen { since: Duration::ZERO },
                );
            }
            let result = next.oneshot(request).await;
            let now = self.clock.monotonic();
            let moved = self.breakers.with(&ctx.tenant, host, |b| match healthy(&result) {
                Some(healthy) => b.record(healthy, now, &config),
                None => {
                    if admission == Admission::Probe {
                        b.abandon_probe(now);
                    }
                    None
                }
            });
            if let Some(state) = moved {
                if matches!(state, BreakerState::Open { .. }) {
                    RunStats::add(&ctx.stats.breaker_opens, 1);
                    ctx.stats.bucket(host, |b| b.breaker_opens += 1);
                }
                log_change(&ctx, &destination(url), state);
            }
            result
        })
    }
}

/// One event per state change (target `apiary::egress`).
fn log_change(ctx: &EgressContext, destination: &str, state: BreakerState) {
    let state = match state {
        BreakerState::Closed { .. } => "closed",
        BreakerState::Open { .. } => "open",
        BreakerState::HalfOpen { .. } => "half-open",
    };
    tracing::warn!(
        target: "apiary::egress",
        tenant = %ctx.tenant,
        plugin = %ctx.policy.plugin,
        destination,
        state,
        "circuit breaker"
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ratelimit::MAX_TRACKED;

    const SECOND: Duration = Duration::from_secs(1);

    fn config(failures: u32) -> BreakerConfig {
        BreakerConfig {
            failures,
            open_for: 30 * SECOND,
        }
    }

    #[test]
    fn consecutive_failures_open_it_and_a_success_in_between_resets_the_count() {
        let config = config(3);
        let mut breaker = CircuitBreaker::default();
        let t = 10 * SECOND;
        assert_eq!(breaker.record(false, t, &config), None);
        assert_eq!(breaker.record(false, t, &config), None);
        assert_eq!(breaker.record(true, t, &config), None, "still closed, count reset");
        assert_eq!(breaker.record(false, t, &config), None);
        assert_eq!(breaker.record(false, t, &config), None);
        assert_eq!(
            breaker.record(false, t, &config),
            Some(BreakerState::Open { until: t + 30 * SECOND })
        );
        assert_eq!(breaker.admit(t + 10 * SECOND, &config), Admission::Refused(20 * SECOND));
    }

    #[test]
    fn after_its_time_one_probe_goes_and_its_outcome_decides() {
        let config = config(1);
        let mut breaker = CircuitBreaker::default();
        breaker.record(false, SECOND, &config);
        let later = 31 * SECOND;
        assert_eq!(breaker.admit(later, &config), Admission::Probe);
        // Everything else waits for the probe.
        assert_eq!(breaker.admit(later, &config), Admission::Refused(Duration::ZERO));
        // The probe fails: open for another period from now.
        assert_eq!(
            breaker.record(false, later, &config),
            Some(BreakerState::Open {
                until: later + 30 * SECOND
            })
        );
        assert_eq!(breaker.admit(later + 30 * SECOND, &config), Admission::Probe);
        assert_eq!(
            breaker.record(true, later + 30 * SECOND, &config),
            Some(BreakerState::Closed { failures: 0 })
        );
        assert_eq!(breaker.admit(later + 30 * SECOND, &config), Admission::Allowed);
    }

    /// A plugin granted a wildcard host must not grow the host's memory one host at a time.
    #[test]
    fn breakers_of_healthy_hosts_are_not_kept_and_failing_ones_are_bounded() {
        let breakers = Breakers::new();
        let tenant = TenantId::new("t");
        let config = config(3);
        for i in 0..1000 {
            breakers.with(&tenant, &format!("h{i}.example"), |b| b.record(true, SECOND, &config));
        }
        let count = |b: &Breakers| b.breakers.len(&tenant);
        assert_eq!(count(&breakers), 0, "a closed breaker with no failures is not stored");
        for i in 0..MAX_TRACKED + 10 {
            breakers.with(&tenant, &format!("h{i}.example"), |b| b.record(false, SECOND, &config));
        }
        assert_eq!(count(&breakers), MAX_TRACKED);
        // A host that was tracked still counts its failures.
        breakers.with(&tenant, "h0.example", |b| b.record(false, SECOND, &config));
        assert_eq!(
            breakers.with(&tenant, "h0.example", |b| b.state()),
            BreakerState::Closed { failures: 2 }
        );
    }

    /// Regression: a probe whose caller gave up (a dropped future) never reported, and the
    /// breaker refused everything until the host restarted.
    #[test]
    fn a_probe_that_never_reports_is_replaced_after_open_for() {
        let config = config(1);
        let mut breaker = CircuitBreaker::default();
        breaker.record(false, SECOND, &config);
        assert_eq!(breaker.admit(31 * SECOND, &config), Admission::Probe);
        assert_eq!(breaker.admit(40 * SECOND, &config), Admission::Refused(Duration::ZERO));
        assert_eq!(breaker.admit(61 * SECOND, &config), Admission::Probe, "a new probe");
        // A probe refused before it reached the destination gives the next caller the probe.
        breaker.abandon_probe(62 * SECOND);
        assert_eq!(breaker.admit(62 * SECOND, &config), Admission::Probe);
    }

    #[test]
    fn zero_failures_turns_it_off() {
        let config = config(0);
        let mut breaker = CircuitBreaker::default();
        for _ in 0..100 {
            breaker.record(false, SECOND, &config);
        }
        assert_eq!(breaker.admit(SECOND, &config), Admission::Allowed);
    }

    #[test]
    fn what_counts_as_a_failure() {
        let response = |status: u16| {
            Ok(http::Response::builder()
                .status(status)
                .body(bytes::Bytes::new())
                .unwrap())
        };
        assert_eq!(healthy(&response(503)), Some(false));
        assert_eq!(healthy(&response(500)), Some(false));
        assert_eq!(healthy(&response(429)), Some(true), "a rate limit is not an outage");
        assert_eq!(healthy(&response(404)), Some(true));
        assert_eq!(healthy(&response(200)), Some(true));
        assert_eq!(healthy(&Err(EgressError::Timeout(SECOND))), Some(false));
        assert_eq!(healthy(&Err(EgressError::Connect("refused".into()))), Some(false));
        assert_eq!(
            healthy(&Err(EgressError::RateLimited(SECOND))),
            None,
            "never reached it"
        );
        assert_eq!(healthy(&Err(EgressError::InvalidRequest("bad".into()))), None);
    }
}
