//! What a loaded plugin holds of its secrets, and the per-run redactor that learns every value
//! the run has used.

use std::sync::{Arc, RwLock};

use secrecy::{ExposeSecret, SecretString};

use super::{CachedSecret, Placement, Redactor};
use crate::clock::Clock;
use crate::grant::{Destinations, ResolvedSecret};
use crate::manifest::Attach;

/// One granted secret of a loaded plugin: where it goes, where it may be sent, and its cached source.
#[derive(Debug)]
pub struct HeldSecret {
    /// The declared placement.
    pub placement: Placement,
    /// Where it may be sent.
    pub destinations: Destinations,
    /// Whether a run cannot start without it.
    pub required: bool,
    /// When the host attaches it.
    pub attach: Attach,
    /// The value, re-read from the source after its TTL.
    pub value: CachedSecret,
}

impl HeldSecret {
    /// Holds the resolved secret `name`, caching its value on `clock`.
    pub fn new(name: &str, resolved: ResolvedSecret, clock: Arc<dyn Clock>) -> Self {
        Self {
            placement: resolved.placement,
            destinations: resolved.destinations,
            required: resolved.required,
            attach: resolved.attach,
            value: CachedSecret::new(name, resolved.grant.source, resolved.grant.ttl, clock),
        }
    }
}

/// One run's redactor: every value the run has held, in every form, scrubbed from everything
/// that reaches the plugin or the operator's logs.
#[derive(Debug, Default)]
pub struct RunRedactor {
    inner: RwLock<Redactor>,
}

impl RunRedactor {
    /// Learns `value` (a rotated value is added; earlier ones stay scrubbed).
    pub fn add(&self, value: &SecretString) {
        let bytes = value.expose_secret().as_bytes();
        let known = self.read().knows(bytes);
        if !known {
            self.inner.write().unwrap_or_else(|e| e.into_inner()).add(bytes);
        }
    }

    /// Whether the run holds no secret (nothing to scrub).
    pub fn is_empty(&self) -> bool {
        self.read().is_empty()
    }

    /// Scrubs a response's headers in place and returns its body scrubbed (the same `Bytes`
    /// when it holds no secret).
    pub fn scrub_response(&self, headers: &mut http::HeaderMap, body: bytes::Bytes) -> bytes::Bytes {
        let redactor = self.read();
        redactor.scrub_headers(headers);
        redactor.scrub_body(body)
    }

    /// `text` with every secret scrubbed; borrowed, not copied, when it holds none (every
    /// record and log line of a run passes through here).
    pub fn scrub<'a>(&self, text: &'a str) -> std::borrow::Cow<'a, str> {
        self.read().scrub_str(text)
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Redactor> {
        self.inner.read().unwrap_or_else(|e| e.into_inner())
    }
}
