//! The plugin's `ratelimit` interface: a bucket's state, and waiting for capacity, read from
//! the same buckets and learned pauses the egress pipeline uses.

use std::sync::Arc;
use std::time::Duration;

use wasmtime::component::{HasSelf, Linker};

use super::{CredentialId, PauseKey, PauseScope, RateLimiter, normalized_host};
use crate::bindings::ratelimit as wit;
use crate::clock::Clock;
use crate::http::EgressPolicy;
use crate::tenant::TenantId;

/// One run's view of the rate-limit buckets.
#[derive(Debug)]
pub(crate) struct RateLimitCtx {
    pub(crate) limiter: Arc<RateLimiter>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) tenant: TenantId,
    pub(crate) policy: Arc<EgressPolicy>,
    /// The run's deadline on the clock's monotonic scale.
    pub(crate) deadline: Option<Duration>,
}

/// Links the `ratelimit` interface, reading each run's [`RateLimitCtx`] through `get`.
pub(crate) fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    get: fn(&mut T) -> &mut RateLimitCtx,
) -> wasmtime::Result<()> {
    wit::add_to_linker::<T, HasSelf<RateLimitCtx>>(linker, get)
}

impl RateLimitCtx {
    /// Whose quota requests carrying `secret` draw from: the credential's when the secret is
    /// held and its source answers, else the run's own.
    async fn scope(&self, secret: Option<&str>) -> PauseScope {
        if let Some(held) = secret.and_then(|name| self.policy.secrets.get(name))
            && let Ok(value) = held.value.get().await
        {
            use secrecy::ExposeSecret;
            return PauseScope::Credential(CredentialId::of(value.expose_secret().as_bytes()));
        }
        PauseScope::Anonymous {
            tenant: self.tenant.clone(),
            plugin: self.policy.plugin.clone(),
        }
    }

    /// What `bucket` admits at `now`: the fewest requests any of its buckets admits (the
    /// ones a request to it would draw from), and the longest wait among them and any pause.
    fn state_at(&self, bucket: &str, scope: &PauseScope, now: Duration) -> (Option<u32>, Duration) {
        let pause_key = PauseKey {
            scope: scope.clone(),
            host: normalized_host(bucket),
        };
        let mut wait = self.limiter.paused_for(&pause_key, now);
        let mut remaining: Option<u32> = None;
        for draw in self.limiter.draws(&self.policy, &self.tenant, &pause_key, None) {
            let (admits, next) = self.limiter.peek(&draw.key, &draw.quota, now);
            remaining = Some(remaining.map_or(admits, |r| r.min(admits)));
            wait = wait.max(next);
        }
        (remaining, wait)
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl wit::Host for RateLimitCtx {
    async fn state(&mut self, bucket: String, secret: Option<String>) -> wasmtime::Result<wit::BucketState> {
        let scope = self.scope(secret.as_deref()).await;
        let (remaining, wait) = self.state_at(&bucket, &scope, self.clock.monotonic());
        Ok(wit::BucketState {
            remaining,
            wait_ms: millis(wait),
        })
    }

    async fn wait(
        &mut self,
        bucket: String,
        secret: Option<String>,
        max_ms: u64,
    ) -> wasmtime::Result<Result<u64, u64>> {
        let scope = self.scope(secret.as_deref()).await;
        let now = self.clock.monotonic();
        let (_, wait) = self.state_at(&bucket, &scope, now);
        let left = self.deadline.map_or(Duration::MAX, |d| d.saturating_sub(now));
        if wait > Duration::from_millis(max_ms).min(left) {
            return Ok(Err(millis(wait)));
        }
        if !wait.is_zero() {
            self.clock.sleep(wait).await;
        }
        Ok(Ok(millis(wait)))
    }
}
