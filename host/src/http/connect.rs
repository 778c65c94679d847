//! Connecting by checked address: a resolver and a connector that refuse every address the
//! plugin's [`NetPolicy`] forbids, before any connection is attempted.
//!
//! hyper-util's `HttpConnector` connects to exactly the addresses its resolver returns, so
//! checking them there leaves no second lookup for a DNS rebinding to slip into. It skips the
//! resolver for IP literals (`http://127.0.0.1/`), so [`CheckedConnector`] checks those itself.

use std::collections::HashMap;
use std::error::Error;
use std::fmt;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use futures::future::BoxFuture;
use hyper_util::client::legacy::connect::dns::Name;
use hyper_util::client::legacy::connect::{Connected, Connection, HttpConnector};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tower::Service;

use super::netpolicy::{ForbiddenAddress, NetPolicy};

/// Looks up the addresses of a host name; the pooled client's resolver is pluggable so tests
/// can point names at their own servers.
///
/// ```
/// use apiary_host::Resolve;
/// use futures::future::BoxFuture;
/// use std::{io, net::IpAddr};
///
/// /// Every name is the documentation address 192.0.2.1.
/// #[derive(Debug)]
/// struct Everything;
///
/// impl Resolve for Everything {
///     fn resolve(&self, _host: &str) -> BoxFuture<'static, io::Result<Vec<IpAddr>>> {
///         Box::pin(async { Ok(vec![IpAddr::from([192, 0, 2, 1])]) })
///     }
/// }
/// ```
pub trait Resolve: Send + Sync + fmt::Debug {
    /// The addresses `host` (a name, never an IP literal) resolves to.
    fn resolve(&self, host: &str) -> BoxFuture<'static, io::Result<Vec<IpAddr>>>;
}

/// The operating system's resolver (`getaddrinfo`, through tokio), as hyper-util's default.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemResolver;

impl Resolve for SystemResolver {
    fn resolve(&self, host: &str) -> BoxFuture<'static, io::Result<Vec<IpAddr>>> {
        let host = host.to_string();
        Box::pin(async move {
            let addrs = tokio::net::lookup_host((host.as_str(), 0)).await.map_err(|error| {
                // getaddrinfo's EAI_NONAME and EAI_NODATA (glibc's wording): the name does not
                // exist, which no retry will change; EAI_AGAIN and the rest may heal.
                let text = error.to_string();
                if text.contains("Name or service not known") || text.contains("No address associated") {
                    io::Error::new(io::ErrorKind::NotFound, NameNotFound { host: host.clone() })
                } else {
                    error
                }
            })?;
            Ok(addrs.map(|addr| addr.ip()).collect())
        })
    }
}

/// A fixed table of names and their addresses, for tests: any other name fails to resolve.
///
/// ```
/// use apiary_host::StaticResolver;
/// use std::net::IpAddr;
///
/// let resolver = StaticResolver::default().with("api.test.invalid", [IpAddr::from([127, 0, 0, 1])]);
/// assert_eq!(resolver.0["api.test.invalid"].len(), 1);
/// ```
#[derive(Debug, Clone, Default)]
pub struct StaticResolver(pub HashMap<String, Vec<IpAddr>>);

impl StaticResolver {
    /// The same table with `host` resolving to `addresses`.
    pub fn with(mut self, host: &str, addresses: impl IntoIterator<Item = IpAddr>) -> Self {
        self.0
            .insert(host.to_ascii_lowercase(), addresses.into_iter().collect());
        self
    }
}

impl Resolve for StaticResolver {
    fn resolve(&self, host: &str) -> BoxFuture<'static, io::Result<Vec<IpAddr>>> {
        let result = self
            .0
            .get(&host.to_ascii_lowercase())
            .cloned()
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, NameNotFound { host: host.to_string() }));
        Box::pin(std::future::ready(result))
    }
}

/// hyper-util's resolver service: resolves with `inner`, then refuses the name if any address
/// is forbidden by `policy`.
#[derive(Debug, Clone)]
pub(crate) struct CheckedResolver {
    pub(crate) policy: NetPolicy,
    pub(crate) inner: Arc<dyn Resolve>,
}

impl Service<Name> for CheckedResolver {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = io::Error;
    type Future = BoxFuture<'static, io::Result<Self::Response>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: Name) -> Self::Future {
        let lookup = self.inner.resolve(name.as_str());
        let policy = self.policy.clone();
        Box::pin(async move {
            let addresses = lookup.await?;
            // One forbidden address refuses the whole name, even beside public ones: the
            // connector may try any of them, and a name mixing a public and a private address
            // is how a rebinding attack gets its second answer in.
            for ip in &addresses {
                policy.check(*ip).map_err(forbidden)?;
            }
            // The port is a placeholder: the connector sets the URL's port on each address.
            let addrs: Vec<SocketAddr> = addresses.into_iter().map(|ip| SocketAddr::new(ip, 0)).collect();
            Ok(addrs.into_iter())
        })
    }
}

/// `error` as an `io::Error`, the error type the connector passes through, so that
/// [`forbidden_in`] can find it again in the client's error chain.
fn forbidden(error: ForbiddenAddress) -> io::Error {
    io::Error::new(io::ErrorKind::PermissionDenied, error)
}

type BoxError = Box<dyn Error + Send + Sync>;

/// hyper-util's `HttpConnector` over a [`CheckedResolver`], checking IP-literal hosts (which
/// it would connect to without asking the resolver) against the same policy.
#[derive(Debug, Clone)]
pub(crate) struct CheckedConnector {
    policy: NetPolicy,
    http: HttpConnector<CheckedResolver>,
}

impl CheckedConnector {
    /// Connects through `http`, whose resolver must check against `policy` too.
    pub(crate) fn new(policy: NetPolicy, http: HttpConnector<CheckedResolver>) -> Self {
        Self { policy, http }
    }
}

impl Service<http::Uri> for CheckedConnector {
    type Response = CountedConnection;
    type Error = BoxError;
    type Future = BoxFuture<'static, Result<Self::Response, BoxError>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.http.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, uri: http::Uri) -> Self::Future {
        if let Some(ip) = uri.host().and_then(ip_literal)
            && let Err(error) = self.policy.check(ip)
        {
            return Box::pin(std::future::ready(Err(forbidden(error).into())));
        }
        let connecting = self.http.call(uri);
        Box::pin(async move {
            let io = connecting.await?;
            Ok(CountedConnection {
                io,
                fresh: FreshConnection::default(),
            })
        })
    }
}

/// Marks a connection until the first response on it is read: the run that reads it counts
/// one connection opened. (hyper-util copies a connection's extras into each response.)
#[derive(Debug, Clone)]
pub(crate) struct FreshConnection(Arc<AtomicBool>);

impl Default for FreshConnection {
    fn default() -> Self {
        Self(Arc::new(AtomicBool::new(true)))
    }
}

impl FreshConnection {
    /// True the first time it is asked, for the connection's first response.
    pub(crate) fn claim(&self) -> bool {
        self.0.swap(false, Ordering::Relaxed)
    }
}

/// A TCP connection that hands its [`FreshConnection`] marker to hyper-util as an extra.
#[derive(Debug)]
pub(crate) struct CountedConnection {
    io: TokioIo<TcpStream>,
    fresh: FreshConnection,
}

impl Connection for CountedConnection {
    fn connected(&self) -> Connected {
        self.io.connected().extra(self.fresh.clone())
    }
}

impl hyper::rt::Read for CountedConnection {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl hyper::rt::Write for CountedConnection {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }
}

/// The address of a host the connector treats as an IP literal, parsed as hyper-util parses
/// it (so exactly the hosts it would not resolve are checked here).
fn ip_literal(host: &str) -> Option<IpAddr> {
    let host = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
    host.parse().ok()
}

/// The [`ForbiddenAddress`] somewhere in `error`'s chain of sources, if a connection was
/// refused for one.
/// A name that does not exist (NXDOMAIN): a failure no retry will heal.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the name {host} does not exist")]
pub struct NameNotFound {
    /// The name looked up.
    pub host: String,
}

/// Why a failed connection will not heal by retrying, if it will not: the name does not exist,
/// or the server's certificate is not valid for it.
pub(crate) fn permanent_in(error: &(dyn Error + 'static)) -> Option<String> {
    let mut next = Some(error);
    while let Some(error) = next {
        if let Some(missing) = error.downcast_ref::<NameNotFound>() {
            return Some(missing.to_string());
        }
        if let Some(rustls::Error::InvalidCertificate(reason)) = error.downcast_ref::<rustls::Error>() {
            return Some(format!("the server's certificate is not valid: {reason:?}"));
        }
        // `io::Error::source` skips the error it wraps (it returns that error's source), and
        // wrappers nest: hyper-rustls wraps tokio-rustls' `io::Error` around the `rustls::Error`
        // in another `io::Error`. Step into each wrapper instead, whose sources follow.
        next = match error.downcast_ref::<io::Error>().and_then(io::Error::get_ref) {
            Some(inner) => Some(inner as &(dyn Error + 'static)),
            None => error.source(),
        };
    }
    None
}

pub(crate) fn forbidden_in<'a>(error: &'a (dyn Error + 'static)) -> Option<&'a ForbiddenAddress> {
    let mut next = Some(error);
    while let Some(error) = next {
        if let Some(found) = error.downcast_ref::<ForbiddenAddress>() {
            return Some(found);
        }
        // `io::Error::source` skips the error it wraps, so look inside it.
        let wrapped = error.downcast_ref::<io::Error>().and_then(io::Error::get_ref);
        if let Some(found) = wrapped.and_then(|inner| inner.downcast_ref::<ForbiddenAddress>()) {
            return Some(found);
        }
        next = error.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::netpolicy::Cidr;
    use tower::ServiceExt;

    fn resolver(policy: NetPolicy, table: &[(&str, &[&str])]) -> CheckedResolver {
        let mut inner = StaticResolver::default();
        for (host, addresses) in table {
            inner = inner.with(host, addresses.iter().map(|a| a.parse::<IpAddr>().unwrap()));
        }
        CheckedResolver {
            policy,
            inner: Arc::new(inner),
        }
    }

    /// Regression: a certificate error reaches the client as `io::Error(io::Error(rustls::Error))`
    /// (tokio-rustls wraps it, hyper-rustls wraps that), and `io::Error::source` skips each
    /// wrapped error, so the certificate error went unseen and was retried.
    #[test]
    fn a_certificate_error_inside_nested_io_errors_is_permanent() {
        let certificate = rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer);
        let nested = io::Error::other(io::Error::new(io::ErrorKind::InvalidData, certificate));
        assert_eq!(
            permanent_in(&nested).as_deref(),
            Some("the server's certificate is not valid: UnknownIssuer")
        );
        let reset = io::Error::other(io::Error::from(io::ErrorKind::ConnectionReset));
        assert_eq!(permanent_in(&reset), None, "a reset may heal");
    }

    async fn lookup(resolver: &CheckedResolver, host: &str) -> io::Result<Vec<SocketAddr>> {
        let name: Name = host.parse().unwrap();
        resolver.clone().oneshot(name).await.map(Iterator::collect)
    }

    #[tokio::test]
    async fn a_name_with_any_forbidden_address_is_refused() {
        let table: &[(&str, &[&str])] = &[
            ("public.test", &["93.184.215.14", "2606:2800::1"]),
            ("mixed.test", &["93.184.215.14", "10.0.0.7"]),
            ("metadata.test", &["169.254.169.254"]),
        ];
        let resolver = resolver(NetPolicy::default(), table);
        assert_eq!(lookup(&resolver, "public.test").await.unwrap().len(), 2);
        for host in ["mixed.test", "metadata.test"] {
            let err = lookup(&resolver, host).await.unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::PermissionDenied);
            assert!(forbidden_in(&err).is_some(), "{host}: {err}");
        }
        let err = lookup(&resolver, "unknown.test").await.unwrap_err();
        assert!(forbidden_in(&err).is_none(), "a failed lookup is not a refusal");
    }

    #[tokio::test]
    async fn a_granted_network_resolves() {
        let policy = NetPolicy::new(vec!["10.0.0.0/8".parse::<Cidr>().unwrap()]);
        let resolver = resolver(policy, &[("mixed.test", &["93.184.215.14", "10.0.0.7"])]);
        assert_eq!(lookup(&resolver, "mixed.test").await.unwrap().len(), 2);
    }

    #[test]
    fn literals_are_parsed_as_the_connector_parses_them() {
        assert_eq!(ip_literal("127.0.0.1"), Some(IpAddr::from([127, 0, 0, 1])));
        assert_eq!(ip_literal("[::ffff:127.0.0.1]"), "::ffff:127.0.0.1".parse().ok());
        assert_eq!(ip_literal("2130706433"), None, "a name: the resolver checks it");
        assert_eq!(ip_literal("api.example.com"), None);
    }

    #[test]
    fn the_refusal_is_found_however_deeply_it_is_wrapped() {
        #[derive(Debug, thiserror::Error)]
        #[error("client error")]
        struct Outer(#[source] BoxError);
        let refusal = NetPolicy::default().check(IpAddr::from([127, 0, 0, 1])).unwrap_err();
        let error = Outer(Box::new(forbidden(refusal.clone())));
        assert_eq!(forbidden_in(&error), Some(&refusal));
        let error = Outer(Box::new(io::Error::other("connection refused")));
        assert_eq!(forbidden_in(&error), None);
    }
}
