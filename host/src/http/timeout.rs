//! The timeout egress layer: bounds each attempt (connect, send, and reading the whole body).

use std::sync::Arc;
use std::time::Duration;

use tower::ServiceExt;

use super::{EgressContext, EgressError, EgressFuture, EgressLayer, EgressRequest, EgressService};
use crate::clock::Clock;

/// Fails an attempt with [`EgressError::Timeout`] when it outlasts the smallest of: the
/// request's `timeout` option, the manifest's `limits.request_timeout` (a plugin may shorten it,
/// never lengthen it), and the time left before the run's deadline.
///
/// It waits on tokio's real timer, not the injected clock: it guards against a real peer
/// stalling, and a manual clock that never moves on its own would make it fire never or at
/// once. The clock only says how much of the run's deadline is left.
#[derive(Debug, Clone)]
pub struct TimeoutLayer {
    clock: Arc<dyn Clock>,
}

impl TimeoutLayer {
    /// A layer reading the time left in a run from `clock`.
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        Self { clock }
    }
}

/// Most of the run's remaining time kept back from an attempt, so the plugin can still handle
/// the timeout (and report it) before the run's own deadline ends it.
const DEADLINE_RESERVE: Duration = Duration::from_secs(1);

/// The part of the run's remaining time an attempt may take: all but a tenth of it, keeping at
/// most [`DEADLINE_RESERVE`] back for the plugin.
fn usable(left: Duration) -> Duration {
    left - (left / 10).min(DEADLINE_RESERVE)
}

/// The timeout of one attempt: the request's wish, within the manifest's cap and the time left.
pub(crate) fn attempt_timeout(asked: Option<Duration>, cap: Duration, left: Option<Duration>) -> Duration {
    let timeout = asked.map_or(cap, |asked| asked.min(cap));
    left.map_or(timeout, |left| timeout.min(left))
}

impl EgressLayer for TimeoutLayer {
    fn call(self, request: EgressRequest, next: EgressService) -> EgressFuture {
        Box::pin(async move {
            let ctx = EgressContext::of(&request)?;
            let left = ctx.deadline.map(|d| usable(d.saturating_sub(self.clock.monotonic())));
            let timeout = attempt_timeout(ctx.options.timeout, ctx.policy.limits.request_timeout, left);
            if timeout.is_zero() {
                return Err(EgressError::Timeout(timeout));
            }
            match tokio::time::timeout(timeout, next.oneshot(request)).await {
                Ok(result) => result,
                Err(_) => Err(EgressError::Timeout(timeout)),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: fn(u64) -> Duration = Duration::from_secs;

    #[test]
    fn an_attempt_leaves_the_plugin_time_to_handle_its_timeout() {
        assert_eq!(usable(Duration::from_millis(300)), Duration::from_millis(270));
        assert_eq!(usable(S(600)), S(599), "at most a second is kept back");
        assert_eq!(usable(Duration::ZERO), Duration::ZERO);
    }

    /// Regression: a guest's per-request timeout could exceed the manifest's without bound.
    #[test]
    fn the_request_may_shorten_the_cap_never_lengthen_it_nor_outlive_the_run() {
        assert_eq!(attempt_timeout(None, S(30), None), S(30));
        assert_eq!(attempt_timeout(Some(S(5)), S(30), None), S(5));
        assert_eq!(attempt_timeout(Some(S(3600)), S(30), None), S(30));
        assert_eq!(attempt_timeout(Some(S(20)), S(30), Some(S(2))), S(2));
        assert_eq!(attempt_timeout(None, S(30), Some(Duration::ZERO)), Duration::ZERO);
    }
}
