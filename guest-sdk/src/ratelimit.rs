//! Rate-limit buckets as the host sees them: how many requests a bucket admits now, and
//! waiting for capacity before sending a batch instead of sending into a limit.
//!
//! Quotas are counted per credential, so name the secret the requests will carry.
//!
//! ```no_run
//! use std::time::Duration;
//! use apiary_sdk::ratelimit;
//!
//! # fn main() -> Result<(), apiary_sdk::RunError> {
//! let state = ratelimit::state("api.github.com", Some("github_token"));
//! if state.remaining.is_some_and(|left| left < 10) {
//!     ratelimit::wait("api.github.com", Some("github_token"), Duration::from_secs(60))
//!         .map_err(|wait| apiary_sdk::RunError::Failed(format!("the quota is back in {wait:?}")))?;
//! }
//! # Ok(())
//! # }
//! ```

use std::time::Duration;

use crate::bindings::apiary::plugin::ratelimit as wire;

/// What a bucket admits now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BucketState {
    /// Requests it admits at once now, by its tightest declared limit; `None` when no limit
    /// is declared for it.
    pub remaining: Option<u32>,
    /// How long until it admits the next request (declared limits and any pause the API
    /// announced); zero when it admits one now.
    pub wait: Duration,
}

/// The state of `bucket` (a host such as `api.github.com`, or a bucket a request names) for
/// requests carrying the secret `secret`, if any.
pub fn state(bucket: &str, secret: Option<&str>) -> BucketState {
    let state = wire::state(bucket, secret);
    BucketState {
        remaining: state.remaining,
        wait: Duration::from_millis(state.wait_ms),
    }
}

/// Waits until `bucket` admits a request, at most `max` (and never past the run's deadline).
/// Waiting books nothing: the request itself still takes its slot.
///
/// # Errors
/// The wait that would have been needed, when it is longer than `max` (nothing is waited).
pub fn wait(bucket: &str, secret: Option<&str>, max: Duration) -> Result<Duration, Duration> {
    let max_ms = u64::try_from(max.as_millis()).unwrap_or(u64::MAX);
    wire::wait(bucket, secret, max_ms)
        .map(Duration::from_millis)
        .map_err(Duration::from_millis)
}
