//! The innermost layer: one pooled hyper-util client per tenant (keep-alive, HTTP/1.1 and
//! HTTP/2, rustls), with a response size cap.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures::future::BoxFuture;
use http_body_util::{BodyExt, Full, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tower::Service;

use super::{EgressContext, EgressError, EgressRequest, EgressResponse, RunStats};
use crate::tenant::TenantId;

/// How long an idle pooled connection is kept: long enough to span a paginated run's pauses.
pub const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(90);
/// Idle connections kept per destination and tenant.
pub const POOL_MAX_IDLE_PER_HOST: usize = 32;
/// Time allowed to establish a TCP connection, inside the attempt's timeout.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

type HyperClient = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

/// Connection pools keyed by tenant, so tenants never share a connection.
#[derive(Debug, Clone, Default)]
pub struct PooledClient {
    pools: Arc<Mutex<HashMap<TenantId, HyperClient>>>,
}

impl PooledClient {
    /// An empty set of pools; each tenant's is built on first use.
    pub fn new() -> Self {
        Self::default()
    }

    fn client_for(&self, tenant: &TenantId) -> HyperClient {
        let mut pools = self.pools.lock().unwrap_or_else(|e| e.into_inner());
        pools.entry(tenant.clone()).or_insert_with(build_client).clone()
    }
}

fn build_client() -> HyperClient {
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_connect_timeout(Some(CONNECT_TIMEOUT));
    http.set_nodelay(true);
    http.set_keepalive(Some(Duration::from_secs(60)));
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_webpki_roots()
        .https_or_http()
        .enable_http1()
        .enable_http2()
        .wrap_connector(http);
    Client::builder(TokioExecutor::new())
        .pool_idle_timeout(POOL_IDLE_TIMEOUT)
        .pool_max_idle_per_host(POOL_MAX_IDLE_PER_HOST)
        .build(https)
}

impl Service<EgressRequest> for PooledClient {
    type Response = EgressResponse;
    type Error = EgressError;
    type Future = BoxFuture<'static, Result<EgressResponse, EgressError>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), EgressError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: EgressRequest) -> Self::Future {
        let this = self.clone();
        Box::pin(async move {
            let ctx = EgressContext::of(&request)?.clone();
            ctx.call.attempts.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            RunStats::add(&ctx.stats.attempts, 1);
            let client = this.client_for(&ctx.tenant);
            let response = send(client, request, ctx.policy.limits.max_response_bytes).await?;
            RunStats::add(&ctx.stats.bytes_received, response.body().len() as u64);
            Ok(response)
        })
    }
}

async fn send(client: HyperClient, request: EgressRequest, max_bytes: u64) -> Result<EgressResponse, EgressError> {
    let (parts, body) = request.into_parts();
    let request = http::Request::from_parts(parts, Full::new(body));
    let response = client.request(request).await.map_err(|e| {
        let message = error_chain(&e);
        if e.is_connect() {
            EgressError::Connect(message)
        } else {
            EgressError::Connection(message)
        }
    })?;
    let (parts, body) = response.into_parts();
    let limit = usize::try_from(max_bytes).unwrap_or(usize::MAX);
    let body = Limited::new(body, limit).collect().await.map_err(|e| {
        if e.downcast_ref::<http_body_util::LengthLimitError>().is_some() {
            EgressError::BodyTooLarge(max_bytes)
        } else {
            EgressError::Connection(error_chain(e.as_ref()))
        }
    })?;
    Ok(http::Response::from_parts(parts, body.to_bytes()))
}

/// An error and its sources in one line, e.g. `client error (Connect): tcp connect error: Connection refused`.
fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        source = cause.source();
    }
    message
}
