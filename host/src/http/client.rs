//! The innermost layer: one pooled hyper-util client per tenant and network policy
//! (keep-alive, HTTP/1.1 and HTTP/2, rustls), with a response size cap.
//!
//! TLS trusts the Mozilla roots (webpki-roots) and any extra roots the embedder adds with
//! [`PooledClient::with_extra_roots`]; HTTP/2 is offered by ALPN (`h2`, then `http/1.1`) on
//! every TLS connection, and plain-text connections speak HTTP/1.1.

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
use hyper_util::rt::{TokioExecutor, TokioTimer};
use rustls::pki_types::CertificateDer;
use rustls::{ClientConfig, RootCertStore};
use tower::Service;

use super::connect::{
    CheckedConnector, CheckedResolver, FreshConnection, Resolve, SystemResolver, forbidden_in, permanent_in,
};
use super::netpolicy::NetPolicy;
use super::{EgressContext, EgressError, EgressRequest, EgressResponse, RunStats};
use crate::tenant::TenantId;

/// How long an idle pooled connection is kept: long enough to span a paginated run's pauses.
pub const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(90);
/// Idle connections kept per destination and tenant: as many as the concurrency ever needed.
/// A cap below the concurrency closed and reopened connections whenever more requests than the
/// cap finished together (89 % of requests opened a connection at 300 in flight); idle ones
/// still go after [`POOL_IDLE_TIMEOUT`], driven by the pool's timer.
pub const POOL_MAX_IDLE_PER_HOST: usize = usize::MAX;

type HyperClient = Client<HttpsConnector<CheckedConnector>, Full<Bytes>>;
/// One pool per tenant, network policy and connect timeout (set on the pool's connector).
type Pools = HashMap<(TenantId, NetPolicy, Duration), Arc<HyperClient>>;

/// Connection pools keyed by tenant and network policy: tenants never share a connection, and
/// a plugin granted, say, loopback never shares one (or a resolver) with a plugin that was not.
#[derive(Debug, Clone)]
pub struct PooledClient {
    // Each pool behind an `Arc`: a request borrows it instead of cloning a client (and its
    // connector) per request.
    pools: Arc<Mutex<Pools>>,
    resolver: Arc<dyn Resolve>,
    /// Roots trusted besides the Mozilla ones.
    extra_roots: Arc<[CertificateDer<'static>]>,
    /// Built once and copied into each pool's connector (which sets the ALPN protocols).
    tls: Arc<ClientConfig>,
}

impl Default for PooledClient {
    fn default() -> Self {
        Self::with_resolver(Arc::new(SystemResolver))
    }
}

impl PooledClient {
    /// An empty set of pools resolving names with the system's resolver; each pool is built on
    /// first use.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty set of pools resolving names with `resolver` (every address it returns is
    /// still checked against the plugin's network policy).
    pub fn with_resolver(resolver: Arc<dyn Resolve>) -> Self {
        Self {
            pools: Arc::default(),
            resolver,
            extra_roots: Arc::new([]),
            tls: Arc::new(tls_config(RootCertStore::empty())),
        }
    }

    /// The same client also trusting the root certificates `roots` (DER), for servers whose
    /// certificates chain to a private CA: a company's internal CA, or a test's. The Mozilla
    /// roots, and roots added by an earlier call, stay trusted. Set it up before the first request, in
    /// [`EgressParts::client`](crate::EgressParts::client); the returned client starts with
    /// empty pools, so no connection made under the old roots is reused.
    ///
    /// ```no_run
    /// use apiary_host::{CertificateDer, PooledClient, RuntimeConfig};
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let ca = CertificateDer::from(std::fs::read("internal-ca.der")?);
    /// let mut config = RuntimeConfig::default();
    /// config.egress.client = PooledClient::new().with_extra_roots([ca])?;
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// A certificate that does not parse as an X.509 trust anchor.
    pub fn with_extra_roots(
        self,
        roots: impl IntoIterator<Item = CertificateDer<'static>>,
    ) -> Result<Self, rustls::Error> {
        let extra_roots: Arc<[CertificateDer<'static>]> = self.extra_roots.iter().cloned().chain(roots).collect();
        let mut store = RootCertStore::empty();
        for root in extra_roots.iter() {
            store.add(root.clone())?;
        }
        Ok(Self {
            pools: Arc::default(),
            resolver: self.resolver,
            extra_roots,
            tls: Arc::new(tls_config(store)),
        })
    }

    fn client_for(&self, tenant: &TenantId, policy: &NetPolicy, connect_timeout: Duration) -> Arc<HyperClient> {
        let mut pools = self.pools.lock().unwrap_or_else(|e| e.into_inner());
        pools
            .entry((tenant.clone(), policy.clone(), connect_timeout))
            .or_insert_with(|| Arc::new(build_client(policy, &self.resolver, &self.tls, connect_timeout)))
            .clone()
    }
}

/// rustls' defaults (its crypto provider, TLS 1.2 and 1.3) trusting the Mozilla roots and
/// `extra`, with no client certificate and no ALPN yet (the connector adds it).
fn tls_config(mut extra: RootCertStore) -> ClientConfig {
    extra.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    ClientConfig::builder()
        .with_root_certificates(extra)
        .with_no_client_auth()
}

fn build_client(
    policy: &NetPolicy,
    resolver: &Arc<dyn Resolve>,
    tls: &ClientConfig,
    connect_timeout: Duration,
) -> HyperClient {
    let resolver = CheckedResolver {
        policy: policy.clone(),
        inner: resolver.clone(),
    };
    let mut http = HttpConnector::new_with_resolver(resolver);
    http.enforce_http(false);
    http.set_connect_timeout(Some(connect_timeout));
    http.set_nodelay(true);
    http.set_keepalive(Some(Duration::from_secs(60)));
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls.clone())
        .https_or_http()
        .enable_http1()
        .enable_http2()
        .wrap_connector(CheckedConnector::new(policy.clone(), http));
    Client::builder(TokioExecutor::new())
        .pool_timer(TokioTimer::new())
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
            let client = this.client_for(&ctx.tenant, &ctx.policy.net, ctx.policy.limits.connect_timeout);
            let response = send(&client, request, &ctx).await?;
            if response
                .extensions()
                .get::<FreshConnection>()
                .is_some_and(FreshConnection::claim)
            {
                RunStats::add(&ctx.stats.connections_opened, 1);
            }
            RunStats::add(&ctx.stats.bytes_received, response.body().len() as u64);
            Ok(response)
        })
    }
}

async fn send(
    client: &HyperClient,
    request: EgressRequest,
    ctx: &EgressContext,
) -> Result<EgressResponse, EgressError> {
    let max_bytes = ctx.policy.limits.max_response_bytes;
    let (parts, body) = request.into_parts();
    let request = http::Request::from_parts(parts, Full::new(body));
    let limits = &ctx.policy.limits;
    // Phase by phase: the pool's connector holds the connect timeout; headers must arrive
    // within the first-byte timeout (connecting included), and each piece of the body within
    // the idle timeout of the last. The attempt's total is the timeout layer's.
    // One timer for every phase, reset as each begins: a timer per phase, or per body piece,
    // cost measurably at tens of thousands of requests a second.
    let phase = tokio::time::sleep(limits.first_byte_timeout);
    tokio::pin!(phase);
    let response = tokio::select! {
        biased;
        response = client.request(request) => response,
        () = &mut phase => return Err(EgressError::Timeout(limits.first_byte_timeout)),
    };
    let response = response.map_err(|e| {
        if let Some(refused) = forbidden_in(&e) {
            return EgressError::ForbiddenAddress {
                destination: ctx
                    .url
                    .as_ref()
                    .and_then(|url| url.host_str())
                    .unwrap_or_default()
                    .to_string(),
                plugin: ctx.policy.plugin.clone(),
                refused: refused.clone(),
            };
        }
        let message = error_chain(&e);
        if let Some(reason) = permanent_in(&e) {
            EgressError::Unreachable(reason)
        } else if e.is_connect() {
            EgressError::Connect(message)
        } else {
            EgressError::Connection(message)
        }
    })?;
    let (parts, body) = response.into_parts();
    let limit = usize::try_from(max_bytes).unwrap_or(usize::MAX);
    let mut body = Limited::new(body, limit);
    // Most bodies arrive in one piece, handed on as it is; later pieces are copied into one
    // buffer, so a server sending a byte per frame costs the bytes, not a handle per byte.
    let mut first: Option<Bytes> = None;
    let mut rest = bytes::BytesMut::new();
    loop {
        phase.as_mut().reset(tokio::time::Instant::now() + limits.idle_timeout);
        let frame = tokio::select! {
            biased;
            frame = body.frame() => frame,
            () = &mut phase => return Err(EgressError::Timeout(limits.idle_timeout)),
        };
        match frame {
            None => break,
            Some(Ok(frame)) => match frame.into_data() {
                Ok(data) if data.is_empty() => {}
                Ok(data) => match &first {
                    None => first = Some(data),
                    Some(head) => {
                        if rest.is_empty() {
                            rest.extend_from_slice(head);
                        }
                        rest.extend_from_slice(&data);
                    }
                },
                Err(_) => {}
            },
            Some(Err(e)) if e.downcast_ref::<http_body_util::LengthLimitError>().is_some() => {
                return Err(EgressError::BodyTooLarge(max_bytes));
            }
            Some(Err(e)) => return Err(EgressError::Connection(error_chain(e.as_ref()))),
        }
    }
    let body = if rest.is_empty() {
        first.unwrap_or_default()
    } else {
        rest.freeze()
    };
    Ok(http::Response::from_parts(parts, body))
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
