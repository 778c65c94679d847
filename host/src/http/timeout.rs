//! The timeout egress layer: bounds each attempt (connect, send, and reading the whole body).

use std::task::{Context, Poll};

use futures::future::BoxFuture;
use tower::{Service, ServiceExt};

use super::{EgressContext, EgressError, EgressRequest, EgressResponse};

/// Fails an attempt with [`EgressError::Timeout`] when it outlasts the request's `timeout`
/// option, or the manifest's `limits.request_timeout`.
///
/// It uses tokio's real timer, not the injected clock: it guards against a real peer stalling,
/// and a manual clock that never moves on its own would make it fire never or at once.
#[derive(Debug, Clone)]
pub struct TimeoutService<S> {
    inner: S,
}

impl<S> TimeoutService<S> {
    /// Wraps `inner`.
    pub fn new(inner: S) -> Self {
        Self { inner }
    }
}

impl<S> Service<EgressRequest> for TimeoutService<S>
where
    S: Service<EgressRequest, Response = EgressResponse, Error = EgressError> + Clone + Send + 'static,
    S::Future: Send,
{
    type Response = EgressResponse;
    type Error = EgressError;
    type Future = BoxFuture<'static, Result<EgressResponse, EgressError>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), EgressError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: EgressRequest) -> Self::Future {
        let inner = self.inner.clone();
        Box::pin(async move {
            let ctx = EgressContext::of(&request)?;
            let timeout = ctx.options.timeout.unwrap_or(ctx.policy.limits.request_timeout);
            match tokio::time::timeout(timeout, inner.oneshot(request)).await {
                Ok(result) => result,
                Err(_) => Err(EgressError::Timeout(timeout)),
            }
        })
    }
}
