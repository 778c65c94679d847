//! The plugin's `http` interface: converts the plugin's records to `http` types, sends them
//! through the [`Egress`] pipeline, and converts back.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use http::header::{ACCEPT, HeaderName, HeaderValue, USER_AGENT};
use wasmtime::component::{HasSelf, Linker};

use super::{CallStats, Egress, EgressContext, EgressError, EgressPolicy, EgressResponse, RequestOptions, RunStats};
use crate::bindings::{http as wit, secrets as wit_secrets};
use crate::secrets::{Placement, RunRedactor, SecretAttachment, SecretError};
use crate::tenant::TenantId;

/// The `user-agent` sent when a plugin sets none.
pub const DEFAULT_USER_AGENT: &str = concat!("apiary/", env!("CARGO_PKG_VERSION"));

/// One run's view of outbound HTTP.
#[derive(Debug)]
pub(crate) struct HttpCtx {
    pub(crate) egress: Egress,
    pub(crate) tenant: TenantId,
    pub(crate) policy: Arc<EgressPolicy>,
    pub(crate) stats: Arc<RunStats>,
    pub(crate) deadline: Option<Duration>,
    pub(crate) redactor: Arc<RunRedactor>,
}

/// Links the `http` interface, reading each run's [`HttpCtx`] through `get`.
pub(crate) fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    get: fn(&mut T) -> &mut HttpCtx,
) -> wasmtime::Result<()> {
    wit::add_to_linker::<T, HasSelf<HttpCtx>>(linker, get)
}

impl wit::Host for HttpCtx {
    async fn send(&mut self, request: wit::Request) -> wasmtime::Result<Result<wit::Response, wit::Error>> {
        Ok(self.send_one(request).await)
    }

    async fn send_batch(
        &mut self,
        requests: Vec<wit::Request>,
    ) -> wasmtime::Result<Vec<Result<wit::Response, wit::Error>>> {
        let concurrency = self.policy.limits.max_concurrency as usize;
        let this = &*self;
        Ok(futures::stream::iter(requests)
            .map(|r| this.send_one(r))
            .buffered(concurrency)
            .collect()
            .await)
    }
}

impl HttpCtx {
    async fn send_one(&self, request: wit::Request) -> Result<wit::Response, wit::Error> {
        let call = Arc::new(CallStats::default());
        let result = match self.to_egress(request, call.clone()) {
            Ok(request) => self.egress.send(request).await,
            Err(error) => Err(error),
        };
        let attempts = call.attempts.load(std::sync::atomic::Ordering::Relaxed);
        result.map(|r| to_wit_response(r, attempts)).map_err(to_wit_error)
    }

    fn to_egress(&self, request: wit::Request, call: Arc<CallStats>) -> Result<http::Request<Bytes>, EgressError> {
        let invalid = EgressError::InvalidRequest;
        let method = match request.method {
            wit::Method::Get => http::Method::GET,
            wit::Method::Head => http::Method::HEAD,
            wit::Method::Post => http::Method::POST,
            wit::Method::Put => http::Method::PUT,
            wit::Method::Patch => http::Method::PATCH,
            wit::Method::Delete => http::Method::DELETE,
            wit::Method::Options => http::Method::OPTIONS,
            wit::Method::Other(m) => {
                http::Method::from_bytes(m.as_bytes()).map_err(|_| invalid(format!("`{m}` is not a valid method")))?
            }
        };
        let uri = http::Uri::try_from(request.url.as_str())
            .map_err(|e| invalid(format!("`{}` is not a valid URL: {e}", request.url)))?;
        let mut builder = http::Request::builder().method(method).uri(uri);
        let headers = builder.headers_mut().expect("a fresh builder has headers");
        for (name, value) in &request.headers {
            let name = HeaderName::try_from(name.as_str())
                .map_err(|_| invalid(format!("`{name}` is not a valid header name")))?;
            let value = HeaderValue::try_from(value.as_str())
                .map_err(|_| invalid(format!("the value of header `{name}` is not valid")))?;
            headers.append(name, value);
        }
        headers
            .entry(USER_AGENT)
            .or_insert(HeaderValue::from_static(DEFAULT_USER_AGENT));
        headers
            .entry(ACCEPT)
            .or_insert(HeaderValue::from_static("application/json"));
        let options = &request.options;
        let ctx = EgressContext {
            tenant: self.tenant.clone(),
            policy: self.policy.clone(),
            secrets: request.secrets.into_iter().map(from_wit_attachment).collect(),
            redactor: self.redactor.clone(),
            options: RequestOptions {
                timeout: options.timeout_ms.map(Duration::from_millis),
                idempotent: options.idempotent,
                max_retries: options.retry.as_ref().and_then(|r| r.max_retries),
                bucket: options.bucket.clone(),
            },
            stats: self.stats.clone(),
            call,
            deadline: self.deadline,
        };
        builder
            .extension(ctx)
            .body(request.body.map(Bytes::from).unwrap_or_default())
            .map_err(|e| invalid(e.to_string()))
    }
}

fn from_wit_attachment(attachment: wit_secrets::SecretAttachment) -> SecretAttachment {
    let placement = match attachment.placement {
        wit_secrets::Placement::Bearer => Placement::Bearer,
        wit_secrets::Placement::Basic(username) => Placement::Basic { username },
        wit_secrets::Placement::Header(name) => Placement::header(&name),
        wit_secrets::Placement::Query(name) => Placement::query(&name),
    };
    SecretAttachment {
        name: attachment.name,
        placement,
    }
}

fn to_wit_response(response: EgressResponse, attempts: u32) -> wit::Response {
    let (parts, body) = response.into_parts();
    let headers = parts
        .headers
        .iter()
        .map(|(name, value)| {
            (
                name.as_str().to_string(),
                String::from_utf8_lossy(value.as_bytes()).into_owned(),
            )
        })
        .collect();
    wit::Response {
        status: parts.status.as_u16(),
        headers,
        body: body.to_vec(),
        attempts,
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn to_wit_error(error: EgressError) -> wit::Error {
    match error {
        EgressError::Denied { .. } | EgressError::ForbiddenAddress { .. } => wit::Error::Denied(error.to_string()),
        EgressError::InvalidRequest(message) => wit::Error::InvalidRequest(message),
        EgressError::Timeout(after) => wit::Error::Timeout(millis(after)),
        EgressError::RateLimited(wait) => wit::Error::RateLimited(millis(wait)),
        EgressError::RetriesExhausted {
            attempts,
            last_status,
            message,
        } => wit::Error::RetriesExhausted(wit::RetriesExhausted {
            attempts,
            last_status,
            message,
        }),
        EgressError::BodyTooLarge(limit) => wit::Error::BodyTooLarge(limit),
        EgressError::Connect(message) | EgressError::Connection(message) => wit::Error::Connection(message),
        EgressError::Secret(error) => wit::Error::Secret(to_wit_secret_error(error)),
    }
}

fn to_wit_secret_error(error: SecretError) -> wit_secrets::Error {
    let message = error.to_string();
    match error {
        SecretError::Unknown(name) => wit_secrets::Error::Unknown(name),
        SecretError::NotBound { .. } => wit_secrets::Error::NotBound(message),
        SecretError::InvalidPlacement { .. } => wit_secrets::Error::InvalidPlacement(message),
        SecretError::Unavailable { .. } => wit_secrets::Error::Unavailable(message),
    }
}
