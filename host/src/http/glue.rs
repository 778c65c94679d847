//! The plugin's `http` interface: converts the plugin's records to `http` types, sends them
//! through the [`Egress`] pipeline, and converts back.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::FutureExt;
use futures::StreamExt;
use futures::future::BoxFuture;
use futures::stream::FuturesUnordered;
use http::header::{ACCEPT, HeaderValue, USER_AGENT};
use wasmtime::component::{HasSelf, Linker, Resource, ResourceTable};

use super::bounds::{self, MAX_BATCH_REQUESTS, RequestShape};
use super::{
    CallStats, Egress, EgressContext, EgressError, EgressPolicy, EgressRequest, EgressResponse, RequestOptions,
    RunStats,
};
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
    /// The run's streaming batches.
    pub(crate) batches: ResourceTable,
    /// What the run's `wasi:http` requests may hold at once (see `http::wasi`); made on the
    /// first such request, so runs that make none pay nothing for it.
    pub(crate) wasi: Option<super::wasi::WasiSlots>,
}

/// A streaming batch: requests not yet started, and the ones in flight. The in-flight ones are
/// polled in the run's own task whenever the plugin asks for the next result (no task per
/// request): each is handed to its pooled connection, whose own task does the I/O, so
/// responses arrive while the plugin works on earlier ones. At most `max_concurrency` are in
/// flight or finished-but-not-taken, which bounds what the host holds for it. Dropping the
/// batch drops what is still in flight.
pub struct StreamingBatch {
    pending: VecDeque<(u32, Result<EgressRequest, EgressError>, Arc<CallStats>)>,
    in_flight: FuturesUnordered<BoxFuture<'static, BatchResult>>,
    /// Finished while newly started requests were being set off, not yet taken.
    ready: VecDeque<BatchResult>,
    concurrency: usize,
    egress: Egress,
}

/// A batch request's index and result.
type BatchResult = (u32, Result<wit::Response, wit::Error>);

impl std::fmt::Debug for StreamingBatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamingBatch")
            .field("pending", &self.pending.len())
            .field("in_flight", &self.in_flight.len())
            .field("ready", &self.ready.len())
            .finish()
    }
}

impl StreamingBatch {
    /// Starts requests until `concurrency` are in flight or ready, and polls them once so the
    /// new ones are on their way before the plugin gets its result back.
    fn fill(&mut self) {
        while self.in_flight.len() + self.ready.len() < self.concurrency {
            let Some((index, request, call)) = self.pending.pop_front() else {
                break;
            };
            let egress = self.egress.clone();
            self.in_flight
                .push(Box::pin(async move { (index, finish(egress, request, call).await) }));
        }
        while let Some(Some(done)) = self.in_flight.next().now_or_never() {
            self.ready.push_back(done);
        }
    }

    /// The next finished request, waiting for one when none is ready.
    async fn take(&mut self) -> Option<BatchResult> {
        match self.ready.pop_front() {
            Some(done) => Some(done),
            None => self.in_flight.next().await,
        }
    }
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
        if requests.len() > MAX_BATCH_REQUESTS {
            // A limit the guest broke: the run ends with a message that names it.
            wasmtime::bail!(
                "send-batch of {} requests is over the limit of {MAX_BATCH_REQUESTS}",
                requests.len()
            );
        }
        let concurrency = self.policy.limits.max_concurrency as usize;
        // The responses of one batch are handed to the plugin together: their bodies may take
        // no more than half the run's memory limit (the plugin needs the rest to use them), so
        // a batch never holds more in the host than the plugin could ever hold itself.
        let mut budget = u64::from(self.policy.limits.memory_mib) * 1024 * 1024 / 2;
        let sends: Vec<_> = requests.into_iter().map(|r| self.send_one(r)).collect();
        let responses = futures::stream::iter(sends)
            .buffered(concurrency)
            .map(|result| match result {
                Ok(response) if response.body.len() as u64 > budget => Err(wit::Error::BodyTooLarge(budget)),
                Ok(response) => {
                    budget -= response.body.len() as u64;
                    Ok(response)
                }
                Err(error) => Err(error),
            })
            .collect()
            .await;
        Ok(responses)
    }
}

impl wit::HostBatch for HttpCtx {
    async fn new(&mut self, requests: Vec<wit::Request>) -> wasmtime::Result<Resource<StreamingBatch>> {
        if requests.len() > MAX_BATCH_REQUESTS {
            wasmtime::bail!(
                "a batch of {} requests is over the limit of {MAX_BATCH_REQUESTS}",
                requests.len()
            );
        }
        let pending = requests
            .into_iter()
            .zip(0u32..)
            .map(|(request, index)| {
                let call = Arc::new(CallStats::default());
                (index, self.to_egress(request, call.clone()), call)
            })
            .collect();
        let mut batch = StreamingBatch {
            pending,
            in_flight: FuturesUnordered::new(),
            ready: VecDeque::new(),
            concurrency: self.policy.limits.max_concurrency as usize,
            egress: self.egress.clone(),
        };
        batch.fill();
        Ok(self.batches.push(batch)?)
    }

    async fn next(
        &mut self,
        batch: Resource<StreamingBatch>,
    ) -> wasmtime::Result<Option<(u32, Result<wit::Response, wit::Error>)>> {
        let batch = self.batches.get_mut(&batch)?;
        let Some(done) = batch.take().await else {
            return Ok(None);
        };
        batch.fill();
        Ok(Some(done))
    }

    async fn drop(&mut self, batch: Resource<StreamingBatch>) -> wasmtime::Result<()> {
        self.batches.delete(batch)?;
        Ok(())
    }
}

impl HttpCtx {
    /// Converts `request` now and returns the future that sends it; the future holds no borrow
    /// of the context (the context's batch table is not `Sync`).
    fn send_one(
        &self,
        request: wit::Request,
    ) -> impl Future<Output = Result<wit::Response, wit::Error>> + Send + 'static {
        let call = Arc::new(CallStats::default());
        let request = self.to_egress(request, call.clone());
        finish(self.egress.clone(), request, call)
    }

    fn to_egress(&self, request: wit::Request, call: Arc<CallStats>) -> Result<http::Request<Bytes>, EgressError> {
        let invalid = EgressError::InvalidRequest;
        bounds::check(RequestShape::new(
            &request.url,
            request.headers.iter().map(|(n, v)| (n, v)),
            request.body.as_ref().map_or(0, Vec::len),
            request.secrets.len(),
        ))
        .map_err(invalid)?;
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
            let name = bounds::plugin_header_name(name).map_err(invalid)?;
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
        let ctx = self.context(
            // Parsed here once; every layer reads it from the context.
            url::Url::parse(&request.url).ok(),
            request.secrets.into_iter().map(from_wit_attachment).collect(),
            RequestOptions {
                timeout: options.timeout_ms.map(Duration::from_millis),
                idempotent: options.idempotent,
                max_retries: options.retry.as_ref().and_then(|r| r.max_retries),
                bucket: options.bucket.clone(),
            },
            call,
        );
        let mut request = builder
            .body(request.body.map(Bytes::from).unwrap_or_default())
            .map_err(|e| invalid(e.to_string()))?;
        ctx.attach_to(&mut request);
        Ok(request)
    }
}

impl HttpCtx {
    /// The context of one of this run's calls.
    pub(super) fn context(
        &self,
        url: Option<url::Url>,
        secrets: Vec<SecretAttachment>,
        options: RequestOptions,
        call: Arc<CallStats>,
    ) -> EgressContext {
        EgressContext {
            url,
            tenant: self.tenant.clone(),
            policy: self.policy.clone(),
            secrets,
            redactor: self.redactor.clone(),
            options,
            stats: self.stats.clone(),
            call,
            deadline: self.deadline,
        }
    }
}

/// Sends a converted request (or reports why it could not be converted) and converts back.
async fn finish(
    egress: Egress,
    request: Result<EgressRequest, EgressError>,
    call: Arc<CallStats>,
) -> Result<wit::Response, wit::Error> {
    let result = match request {
        Ok(request) => egress.send(request).await,
        Err(error) => Err(error),
    };
    let attempts = call.attempts.load(std::sync::atomic::Ordering::Relaxed);
    result.map(|r| to_wit_response(r, attempts)).map_err(to_wit_error)
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
        EgressError::CircuitOpen { .. } | EgressError::Unreachable(_) => wit::Error::Connection(error.to_string()),
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
