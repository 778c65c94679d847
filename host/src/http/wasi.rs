//! The standard `wasi:http/outgoing-handler` as a second entry point to the same egress
//! pipeline: a stock component (JavaScript `fetch`, Rust `wstd`, Python's `poll_loop`) gets the
//! allowlist, secrets, retries, rate limits, timeouts, caps, pooled client, logs and counters
//! that the `apiary:plugin/http` interface gets, through [`WasiHttpHooks::send_request`].
//!
//! Differences a stock guest sees, all because it cannot speak Apiary's interface:
//! - it cannot name a secret, so only secrets declared `attach = "auto"` reach its requests;
//! - request bodies are buffered (up to [`MAX_REQUEST_BODY_BYTES`]) so a retry can replay them,
//!   and responses come back whole, as one body chunk;
//! - a pipeline error becomes the closest `wasi:http` `error-code`; its full text is in the
//!   host's request log (target `apiary::egress`), not in the code.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use bytes::Bytes;
use http::HeaderValue;
use http::header::{CONTENT_LENGTH, USER_AGENT};
use http_body_util::{BodyExt, Full, Limited};
use wasmtime_wasi_http::{ForbiddenHeaderFilter, WasiBody, WasiHttpHooks};

use super::bounds::{self, MAX_BATCH_REQUESTS, MAX_REQUEST_BODY_BYTES, RequestShape};
use super::glue::{DEFAULT_USER_AGENT, HttpCtx};
use super::{CallStats, EgressError, RequestOptions};

/// The error type `wasi:http` hooks return; converted to the guest's `error-code`.
type WasiHttpError = wasmtime_wasi_http::Error;

/// What [`WasiHttpHooks::send_request`] returns: the response, and a future for errors found
/// after it (none here: the body is already whole).
type SendRequestFuture = Box<
    dyn Future<
            Output = Result<
                (
                    http::Response<WasiBody>,
                    Box<dyn Future<Output = Result<(), WasiHttpError>> + Send>,
                ),
                WasiHttpError,
            >,
        > + Send,
>;

/// What one run's `wasi:http` requests may hold at once. A guest calls `handle` without
/// waiting and may never read a response, so each request takes a slot (at most
/// [`MAX_BATCH_REQUESTS`]) until its response body is dropped, at most `max_concurrency` are
/// on the network at once, and unread response bodies may take half the run's memory limit
/// together, as with `send-batch`.
#[derive(Debug, Clone)]
pub(crate) struct WasiSlots {
    pending: Arc<Semaphore>,
    in_flight: Arc<Semaphore>,
    held_bytes: Arc<AtomicU64>,
    budget: u64,
}

impl WasiSlots {
    /// Slots for a run allowed `max_concurrency` requests in flight and `memory_mib` of memory.
    pub(crate) fn new(max_concurrency: u32, memory_mib: u32) -> Self {
        Self {
            pending: Arc::new(Semaphore::new(MAX_BATCH_REQUESTS)),
            in_flight: Arc::new(Semaphore::new(max_concurrency.max(1) as usize)),
            held_bytes: Arc::default(),
            budget: u64::from(memory_mib) * 1024 * 1024 / 2,
        }
    }
}

/// A response body's claim on its run's slots, given back when the guest drops the body.
struct Held {
    _pending: OwnedSemaphorePermit,
    bytes: u64,
    held_bytes: Arc<AtomicU64>,
}

impl Drop for Held {
    fn drop(&mut self) {
        self.held_bytes.fetch_sub(self.bytes, Ordering::Relaxed);
    }
}

impl WasiHttpHooks for HttpCtx {
    /// The guest may not set what the host owns (routing and framing headers): `wasi:http`
    /// refuses them with `header-error.forbidden` when they are set. `content-length` stays
    /// allowed (stock clients set it); the host recomputes it from the buffered body.
    fn forbidden_header_filter(&mut self) -> ForbiddenHeaderFilter {
        Arc::new(|name| {
            wasmtime_wasi_http::DEFAULT_FORBIDDEN_HEADERS.contains(name)
                || (name != CONTENT_LENGTH && bounds::is_host_owned(name.as_str()))
        })
    }

    /// hyper derives `host` from the URL; a guest-chosen one could pick another virtual host.
    fn set_host_header(&mut self) -> bool {
        false
    }

    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<wasmtime_wasi_http::RequestOptions>,
        _response_errors: Box<dyn Future<Output = Result<(), WasiHttpError>> + Send>,
    ) -> SendRequestFuture {
        let call = Arc::new(CallStats::default());
        let options = RequestOptions {
            // Bodies are buffered, so the first-byte timeout bounds the whole attempt.
            timeout: options.and_then(|o| o.first_byte_timeout),
            ..RequestOptions::default()
        };
        let ctx = self.context(None, Vec::new(), options, call);
        let egress = self.egress.clone();
        let limits = &self.policy.limits;
        let slots = self
            .wasi
            .get_or_insert_with(|| WasiSlots::new(limits.max_concurrency, limits.memory_mib))
            .clone();
        let Ok(pending) = slots.pending.clone().try_acquire_owned() else {
            return Box::new(async { Err(WasiHttpError::ConnectionLimitReached) });
        };
        Box::new(async move {
            let in_flight = slots
                .in_flight
                .acquire()
                .await
                .map_err(|_| WasiHttpError::ConnectionLimitReached)?;
            let mut request = buffer(request).await?;
            ctx.attach_to(&mut request);
            let response = egress.send(request).await.map_err(to_error_code);
            drop(in_flight);
            let response = response?;
            let bytes = response.body().len() as u64;
            let total = slots.held_bytes.fetch_add(bytes, Ordering::Relaxed) + bytes;
            let held = Held {
                _pending: pending,
                bytes,
                held_bytes: slots.held_bytes.clone(),
            };
            if total > slots.budget && bytes > 0 {
                // Dropping `held` gives the bytes back.
                return Err(WasiHttpError::HttpResponseBodySize(Some(slots.budget)));
            }
            let response = response.map(|body| {
                Full::new(body)
                    .map_err(move |never| {
                        // The claim lives as long as the body the guest holds.
                        let _ = &held;
                        match never {}
                    })
                    .boxed_unsync()
            });
            Ok((
                response,
                Box::new(async { Ok(()) }) as Box<dyn Future<Output = _> + Send>,
            ))
        })
    }
}

/// The guest's request with its body read, within the caps.
async fn buffer(request: http::Request<WasiBody>) -> Result<http::Request<Bytes>, WasiHttpError> {
    let (mut parts, body) = request.into_parts();
    let url = parts.uri.to_string();
    bounds::check(RequestShape::new(&url, parts.headers.iter(), 0, 0))
        .map_err(|message| WasiHttpError::InternalError(Some(format!("invalid request: {message}"))))?;
    let body = Limited::new(body, MAX_REQUEST_BODY_BYTES)
        .collect()
        .await
        .map_err(|_| WasiHttpError::HttpRequestBodySize(Some(MAX_REQUEST_BODY_BYTES as u64)))?
        .to_bytes();
    parts.headers.remove(CONTENT_LENGTH);
    parts
        .headers
        .entry(USER_AGENT)
        .or_insert(HeaderValue::from_static(DEFAULT_USER_AGENT));
    Ok(http::Request::from_parts(parts, body))
}

/// The closest `wasi:http` error code for a pipeline error. Codes that carry text keep it.
fn to_error_code(error: EgressError) -> WasiHttpError {
    match error {
        EgressError::Denied { .. } | EgressError::ForbiddenAddress { .. } => WasiHttpError::HttpRequestDenied,
        EgressError::Timeout(_) => WasiHttpError::HttpResponseTimeout,
        EgressError::BodyTooLarge(limit) => WasiHttpError::HttpResponseBodySize(Some(limit)),
        EgressError::Connect(_) => WasiHttpError::ConnectionRefused,
        EgressError::Connection(_) => WasiHttpError::ConnectionTerminated,
        other => WasiHttpError::InternalError(Some(other.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pipeline_errors_map_to_the_closest_code() {
        let denied = EgressError::Denied {
            destination: "https://evil.example".into(),
            plugin: "p".into(),
        };
        assert!(matches!(to_error_code(denied), WasiHttpError::HttpRequestDenied));
        assert!(matches!(
            to_error_code(EgressError::BodyTooLarge(10)),
            WasiHttpError::HttpResponseBodySize(Some(10))
        ));
        let exhausted = EgressError::RetriesExhausted {
            attempts: 3,
            last_status: Some(503),
            message: "503 Service Unavailable".into(),
        };
        match to_error_code(exhausted) {
            WasiHttpError::InternalError(Some(text)) => assert!(text.contains("gave up after 3 attempts"), "{text}"),
            other => panic!("{other:?}"),
        }
    }
}
