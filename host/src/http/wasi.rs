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

use bytes::Bytes;
use http::HeaderValue;
use http::header::{CONTENT_LENGTH, USER_AGENT};
use http_body_util::{BodyExt, Full, Limited};
use wasmtime_wasi_http::{ForbiddenHeaderFilter, WasiBody, WasiHttpHooks};

use super::bounds::{self, MAX_REQUEST_BODY_BYTES, RequestShape};
use super::glue::{DEFAULT_USER_AGENT, HttpCtx};
use super::{CallStats, Egress, EgressError, RequestOptions};

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
        Box::new(async move {
            let mut request = buffer(request).await?;
            ctx.attach_to(&mut request);
            send(egress, request).await
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

async fn send(
    egress: Egress,
    request: http::Request<Bytes>,
) -> Result<
    (
        http::Response<WasiBody>,
        Box<dyn Future<Output = Result<(), WasiHttpError>> + Send>,
    ),
    WasiHttpError,
> {
    let response = egress.send(request).await.map_err(to_error_code)?;
    let response = response.map(|body| Full::new(body).map_err(|never| match never {}).boxed_unsync());
    Ok((response, Box::new(async { Ok(()) })))
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
