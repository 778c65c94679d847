//! The egress pipeline: every outbound request of every plugin goes through this one stack.
//!
//! ```text
//! allowlist -> secrets -> retry -> rate limit -> timeout -> pooled client
//! ```
//!
//! The rate limit sits inside the retry layer so that every attempt, retries included, takes a
//! slot: a retry storm can never exceed a declared rate.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tower::{ServiceBuilder, ServiceExt};

use super::{
    AllowlistLayer, EgressContext, EgressError, EgressRequest, EgressResponse, EgressService, PooledClient, RunStats,
    TimeoutLayer, stage,
};
use crate::breaker::{BreakerLayer, Breakers};
use crate::clock::{Clock, SystemClock};
use crate::ratelimit::{RateLimitLayer, RateLimiter};
use crate::retry::RetryBudgets;
use crate::retry::RetryLayer;
use crate::secrets::SecretLayer;

/// The app-wide parts the pipeline is built from; each is shared by every run.
#[derive(Debug, Clone)]
pub struct EgressParts {
    /// Rate-limit buckets, by tenant, plugin and bucket.
    pub limiter: Arc<RateLimiter>,
    /// Time, for waits and `Retry-After` dates.
    pub clock: Arc<dyn Clock>,
    /// Seed of the jitter source; `None` seeds from the OS.
    pub rng_seed: Option<u64>,
    /// Connection pools, by tenant.
    pub client: PooledClient,
    /// Circuit breakers, by tenant and destination.
    pub breakers: Arc<Breakers>,
    /// Retry budgets, by tenant and destination.
    pub budgets: Arc<RetryBudgets>,
}

impl Default for EgressParts {
    fn default() -> Self {
        Self {
            limiter: Arc::default(),
            clock: Arc::new(SystemClock::new()),
            rng_seed: None,
            client: PooledClient::new(),
            breakers: Arc::default(),
            budgets: Arc::default(),
        }
    }
}

/// The egress pipeline, built once and shared by every run.
#[derive(Debug, Clone)]
pub struct Egress {
    service: EgressService,
}

impl Egress {
    /// Builds the layer stack over `parts`.
    pub fn new(parts: EgressParts) -> Self {
        let rng = match parts.rng_seed {
            Some(seed) => fastrand::Rng::with_seed(seed),
            None => fastrand::Rng::new(),
        };
        let rng = Arc::new(Mutex::new(rng));
        let EgressParts {
            limiter,
            clock,
            client,
            breakers,
            budgets,
            ..
        } = parts;
        let service = ServiceBuilder::new()
            .layer(stage(AllowlistLayer))
            .layer(stage(SecretLayer))
            .layer(stage(RetryLayer::new(clock.clone(), rng).with_budgets(budgets)))
            .layer(stage(BreakerLayer::new(breakers, clock.clone())))
            .layer(stage(RateLimitLayer::new(limiter, clock.clone())))
            .layer(stage(TimeoutLayer::new(clock)))
            .service(EgressService::new(client));
        Self { service }
    }

    /// Sends `request` through the pipeline. Its extensions must hold an [`EgressContext`].
    ///
    /// Emits one `tracing` event per call (target `apiary::egress`) with the method, the URL as
    /// the plugin wrote it (secrets are attached further in, so none appear), the status, the
    /// duration, the attempts and the time spent waiting.
    ///
    /// # Errors
    /// [`EgressError`], one case per way a call can fail.
    pub async fn send(&self, request: EgressRequest) -> Result<EgressResponse, EgressError> {
        let ctx = EgressContext::of(&request)?.clone();
        let method = request.method().clone();
        // Kept as a `Uri` (cheap to clone), formatted only if the event is written.
        let url = request.uri().clone();
        let started = Instant::now();
        RunStats::add(&ctx.stats.requests, 1);
        ctx.stats.bucket(ctx.host(), |b| b.requests += 1);
        let result = self.service.clone().oneshot(request).await;
        let attempts = ctx.call.attempts.load(Ordering::Relaxed);
        let waited_ms = ctx.call.waited_ms.load(Ordering::Relaxed);
        let duration_ms = started.elapsed().as_millis() as u64;
        match &result {
            Ok(response) => tracing::info!(
                target: "apiary::egress",
                tenant = %ctx.tenant,
                plugin = %ctx.policy.plugin,
                %method,
                %url,
                status = response.status().as_u16(),
                duration_ms,
                attempts,
                waited_ms,
                "request"
            ),
            Err(error) => {
                RunStats::add(&ctx.stats.failures, 1);
                tracing::warn!(
                    target: "apiary::egress",
                    tenant = %ctx.tenant,
                    plugin = %ctx.policy.plugin,
                    %method,
                    %url,
                    %error,
                    duration_ms,
                    attempts,
                    waited_ms,
                    "request failed"
                );
            }
        }
        result
    }
}
