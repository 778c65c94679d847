//! HTTPS through the real client: a TLS server on 127.0.0.1 with a certificate for `localhost`
//! signed by a test CA, HTTP/2 negotiated by ALPN, and a certificate the runtime does not trust
//! refused.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use apiary_host::{CertificateDer, ManualClock, PooledClient, Runtime};
use apiary_tests::{respond, test_guest, test_runtime_config};
use http::Version;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use serde_json::json;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

use super::{grant, run};

/// A certificate authority made for one test.
struct TestCa {
    cert: CertificateDer<'static>,
    issuer: Issuer<'static, KeyPair>,
}

impl TestCa {
    fn new(name: &str) -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap().der().clone();
        Self {
            cert,
            issuer: Issuer::new(params, key),
        }
    }

    /// A server certificate for `localhost` and 127.0.0.1, and its key.
    fn server_cert(&self) -> (CertificateDer<'static>, PrivateKeyDer<'static>) {
        let mut params = CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
        params.distinguished_name.push(DnType::CommonName, "localhost");
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap().der().clone();
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        (cert, key)
    }
}

/// What the server saw of one request.
#[derive(Debug, Clone)]
struct Seen {
    version: Version,
    alpn: Option<Vec<u8>>,
    path: String,
}

/// An HTTPS server on 127.0.0.1 offering `alpn` and answering every request with its HTTP
/// version; it records each request, counts handshakes that failed, and stops when dropped.
struct TlsServer {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    failed_handshakes: Arc<Mutex<Vec<String>>>,
    task: JoinHandle<()>,
}

impl TlsServer {
    async fn start(ca: &TestCa, alpn: &[&[u8]]) -> Self {
        let (cert, key) = ca.server_cert();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![cert, ca.cert.clone()], key)
            .unwrap();
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        let acceptor = TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind(("127.0.0.1", 0)).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let failed_handshakes: Arc<Mutex<Vec<String>>> = Arc::default();
        let (log, failures) = (seen.clone(), failed_handshakes.clone());
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (acceptor, log, failures) = (acceptor.clone(), log.clone(), failures.clone());
                tokio::spawn(async move {
                    let tls = match acceptor.accept(stream).await {
                        Ok(tls) => tls,
                        Err(error) => {
                            failures.lock().unwrap().push(error.to_string());
                            return;
                        }
                    };
                    let alpn = tls.get_ref().1.alpn_protocol().map(<[u8]>::to_vec);
                    let service = service_fn(move |request: http::Request<hyper::body::Incoming>| {
                        let seen = Seen {
                            version: request.version(),
                            alpn: alpn.clone(),
                            path: request.uri().path().to_string(),
                        };
                        let body = format!("hello over {:?}", seen.version);
                        log.lock().unwrap().push(seen);
                        async move { Ok::<_, Infallible>(respond(200, &[("content-type", "text/plain")], body)) }
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(tls), service)
                        .await;
                });
            }
        });
        Self {
            addr,
            seen,
            failed_handshakes,
            task,
        }
    }

    /// `https://localhost:PORT`.
    fn url(&self) -> String {
        format!("https://localhost:{}", self.addr.port())
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    fn failed_handshakes(&self) -> Vec<String> {
        self.failed_handshakes.lock().unwrap().clone()
    }

    /// The failed handshakes, once there are `count` of them (or after 5 s).
    async fn wait_for_failed_handshakes(&self, count: usize) -> Vec<String> {
        for _ in 0..500 {
            if self.failed_handshakes().len() >= count {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        self.failed_handshakes()
    }
}

impl Drop for TlsServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A runtime with a manual clock whose client also trusts `roots`.
fn runtime_trusting(roots: Vec<CertificateDer<'static>>) -> (Runtime, ManualClock) {
    let clock = ManualClock::new();
    let mut config = test_runtime_config();
    config.egress.clock = Arc::new(clock.clone());
    config.egress.rng_seed = Some(7);
    config.egress.client = PooledClient::new()
        .with_extra_roots(roots)
        .expect("the test CA is a valid trust anchor");
    (Runtime::new(config).expect("runtime"), clock)
}

#[tokio::test]
async fn https_to_a_server_chaining_to_an_added_root_negotiates_http2() {
    let ca = TestCa::new("Apiary test CA");
    let server = TlsServer::start(&ca, &[b"h2", b"http/1.1"]).await;
    let (runtime, clock) = runtime_trusting(vec![ca.cert.clone()]);
    let plugin = test_guest(&runtime, &grant(&server.url(), ""));
    for path in ["/first", "/second"] {
        let (result, records) = run(
            &runtime,
            &plugin,
            "fetch",
            json!({"url": format!("{}{path}", server.url())}),
        )
        .await;
        result.unwrap();
        assert_eq!(records[0]["status"], 200, "{}", records[0]);
        assert_eq!(records[0]["body"], "hello over HTTP/2.0");
        assert_eq!(records[0]["attempts"], 1);
    }
    let seen = server.seen();
    assert_eq!(seen.len(), 2, "{seen:?}");
    for request in &seen {
        assert_eq!(request.version, Version::HTTP_2, "{request:?}");
        assert_eq!(request.alpn.as_deref(), Some(&b"h2"[..]), "{request:?}");
    }
    assert_eq!(seen[0].path, "/first");
    assert!(
        server.failed_handshakes().is_empty(),
        "{:?}",
        server.failed_handshakes()
    );
    assert!(clock.sleeps().is_empty());
}

#[tokio::test]
async fn a_server_offering_only_http1_over_tls_is_spoken_to_in_http1() {
    let ca = TestCa::new("Apiary test CA");
    let server = TlsServer::start(&ca, &[b"http/1.1"]).await;
    let (runtime, _) = runtime_trusting(vec![ca.cert.clone()]);
    let plugin = test_guest(&runtime, &grant(&server.url(), ""));
    let (result, records) = run(&runtime, &plugin, "fetch", json!({"url": server.url()})).await;
    result.unwrap();
    assert_eq!(records[0]["body"], "hello over HTTP/1.1", "{}", records[0]);
    let seen = server.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].version, Version::HTTP_11);
    assert_eq!(seen[0].alpn.as_deref(), Some(&b"http/1.1"[..]));
}

/// The same server, its certificate signed by a CA the runtime does not trust (whether it
/// trusts another test CA or only the Mozilla roots): the handshake fails, no request reaches
/// the server, and the plugin gets a connection error naming the certificate problem at once.
/// A certificate error is permanent: retrying would only delay the same failure.
#[tokio::test]
async fn a_certificate_from_an_untrusted_ca_fails_the_connection_without_a_retry() {
    let untrusted = TestCa::new("Untrusted test CA");
    let server = TlsServer::start(&untrusted, &[b"h2", b"http/1.1"]).await;
    let trusted = TestCa::new("Apiary test CA");
    for (roots, handshakes) in [(vec![trusted.cert.clone()], 1), (Vec::new(), 2)] {
        let (runtime, clock) = runtime_trusting(roots);
        let plugin = test_guest(&runtime, &grant(&server.url(), "[retry]\nmax_retries = 2\n"));
        let (result, records) = run(&runtime, &plugin, "fetch", json!({"url": server.url()})).await;
        result.unwrap();
        let record = &records[0];
        assert_eq!(record["error"], "connection", "{record}");
        let detail = record["detail"].as_str().unwrap();
        assert!(
            detail.contains("retrying will not help") && detail.contains("certificate is not valid: UnknownIssuer"),
            "{detail}"
        );
        assert!(
            clock.sleeps().is_empty(),
            "no retry was waited for: {:?}",
            clock.sleeps()
        );
        // One refused handshake per run, counted over both (the server logs the client's
        // alert a moment after the client gave up: wait for it, then make sure none follows).
        let failed = server.wait_for_failed_handshakes(handshakes).await;
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        let failed_after = server.failed_handshakes();
        assert_eq!(failed_after.len(), handshakes, "{failed_after:?}");
        assert!(failed.iter().all(|f| f.contains("UnknownCA")), "{failed:?}");
    }
    assert!(server.seen().is_empty(), "no request got through: {:?}", server.seen());
}
