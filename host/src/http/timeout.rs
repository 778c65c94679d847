//! The timeout egress layer: bounds each attempt (connect, send, and reading the whole body).

use tower::ServiceExt;

use super::{EgressContext, EgressError, EgressFuture, EgressLayer, EgressRequest, EgressService};

/// Fails an attempt with [`EgressError::Timeout`] when it outlasts the request's `timeout`
/// option, or the manifest's `limits.request_timeout`.
///
/// It uses tokio's real timer, not the injected clock: it guards against a real peer stalling,
/// and a manual clock that never moves on its own would make it fire never or at once.
#[derive(Debug, Clone, Default)]
pub struct TimeoutLayer;

impl EgressLayer for TimeoutLayer {
    fn call(self, request: EgressRequest, next: EgressService) -> EgressFuture {
        Box::pin(async move {
            let ctx = EgressContext::of(&request)?;
            let timeout = ctx.options.timeout.unwrap_or(ctx.policy.limits.request_timeout);
            match tokio::time::timeout(timeout, next.oneshot(request)).await {
                Ok(result) => result,
                Err(_) => Err(EgressError::Timeout(timeout)),
            }
        })
    }
}
