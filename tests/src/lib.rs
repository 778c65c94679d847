//! Shared parts of the workspace-level integration tests and benchmarks: the guest components
//! built by `build.rs`, a scriptable HTTP server on 127.0.0.1, httpbin (a real one), and plugin
//! fixtures.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use apiary_host::{Cidr, Grant, LoadedManifest, Manifest, Plugin, Runtime, RuntimeConfig, SecretGrant, StaticSource};
use bytes::Bytes;
use http::{HeaderMap, Method, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

mod httpbin;
mod pass_store;

pub use httpbin::Httpbin;
pub use pass_store::PassStore;

/// Paths of the components built from `plugins/` and `tests/guest/`.
pub mod components {
    include!(concat!(env!("OUT_DIR"), "/components.rs"));
}

/// A compile cache shared by every test of this build, so each component compiles once.
pub fn compile_cache_dir() -> PathBuf {
    PathBuf::from(concat!(env!("OUT_DIR"), "/compile-cache"))
}

/// A runtime config for tests: the shared compile cache and a small instance pool.
pub fn test_runtime_config() -> RuntimeConfig {
    RuntimeConfig {
        cache_dir: Some(compile_cache_dir()),
        max_concurrent_runs: 8,
        ..RuntimeConfig::default()
    }
}

/// A request the test server received.
#[derive(Debug, Clone)]
pub struct ReceivedRequest {
    /// The method.
    pub method: Method,
    /// Path and query.
    pub path: String,
    /// The headers.
    pub headers: HeaderMap,
    /// The body.
    pub body: Bytes,
}

type Handler = dyn Fn(&ReceivedRequest, usize) -> Response<Full<Bytes>> + Send + Sync;

/// An HTTP/1.1 and HTTP/2 server on 127.0.0.1 whose answers a test scripts with a closure of
/// (request, index of the request); it records every request and stops when dropped.
#[derive(Debug)]
pub struct TestServer {
    addr: SocketAddr,
    received: Arc<Mutex<Vec<ReceivedRequest>>>,
    connections: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl TestServer {
    /// Starts a server answering with `handler`.
    pub async fn start(
        handler: impl Fn(&ReceivedRequest, usize) -> Response<Full<Bytes>> + Send + Sync + 'static,
    ) -> Self {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await.expect("binding 127.0.0.1:0");
        let addr = listener.local_addr().unwrap();
        let received: Arc<Mutex<Vec<ReceivedRequest>>> = Arc::default();
        let handler: Arc<Handler> = Arc::new(handler);
        let log = received.clone();
        let connections: Arc<AtomicUsize> = Arc::default();
        let accepted = connections.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                accepted.fetch_add(1, Ordering::Relaxed);
                let (handler, log) = (handler.clone(), log.clone());
                tokio::spawn(async move {
                    let service = service_fn(move |request: http::Request<hyper::body::Incoming>| {
                        let (handler, log) = (handler.clone(), log.clone());
                        async move {
                            let (parts, body) = request.into_parts();
                            let body = body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
                            let path = parts.uri.path_and_query().map(|p| p.to_string()).unwrap_or_default();
                            let received = ReceivedRequest {
                                method: parts.method,
                                path,
                                headers: parts.headers,
                                body,
                            };
                            let index = {
                                let mut log = log.lock().unwrap();
                                log.push(received.clone());
                                log.len() - 1
                            };
                            Ok::<_, Infallible>(handler(&received, index))
                        }
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Self {
            addr,
            received,
            connections,
            task,
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The server's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Connections accepted so far (requests on a kept-alive connection don't add one).
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::Relaxed)
    }

    /// Every request received so far.
    pub fn received(&self) -> Vec<ReceivedRequest> {
        self.received.lock().unwrap().clone()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A response with `status`, the given headers and a text body.
pub fn respond(status: u16, headers: &[(&str, &str)], body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut builder = Response::builder().status(StatusCode::from_u16(status).unwrap());
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    builder.body(Full::new(body.into())).unwrap()
}

/// The number in a request path's last `=` (the `page` of `/items?page=3`), 1 when there is none.
pub fn page_of(path: &str) -> u32 {
    path.rsplit('=').next().and_then(|p| p.parse().ok()).unwrap_or(1)
}

/// A `200 application/json` response.
pub fn json(value: &serde_json::Value) -> Response<Full<Bytes>> {
    respond(200, &[("content-type", "application/json")], value.to_string())
}

/// Writes `plugin.toml` (the given text, with `component` pointing at `component`) into a
/// fresh directory and loads it.
pub fn manifest(dir: &Path, component: &str, body: &str) -> LoadedManifest {
    let text = format!("name = \"test-guest\"\nversion = \"0.1.0\"\ncomponent = {component:?}\n{body}");
    let path = dir.join("plugin.toml");
    std::fs::write(&path, text).unwrap();
    Manifest::load(&path).unwrap_or_else(|e| panic!("test manifest: {e}"))
}

/// The loopback networks, `127.0.0.0/8` and `::1/128`: the test servers listen there, and the
/// host refuses loopback addresses unless they are granted (`--allow-net`).
pub fn loopback() -> Vec<Cidr> {
    ["127.0.0.0/8", "::1/128"]
        .into_iter()
        .map(|net| net.parse().expect("a valid network"))
        .collect()
}

/// The test guest loaded with a manifest of `body` (permissions, limits, ...), granted what it
/// asks for except secrets, as `apiary run` on a plugin directory does, and [`loopback`].
pub fn test_guest(runtime: &Runtime, body: &str) -> Plugin {
    test_guest_granted(runtime, body, Grant::local)
}

/// The test guest loaded with a manifest of `body` and the grant `grant` makes of it, plus
/// [`loopback`] so that it can reach the test servers.
pub fn test_guest_granted(runtime: &Runtime, body: &str, grant: impl FnOnce(&Manifest) -> Grant) -> Plugin {
    test_guest_exactly(runtime, body, |manifest| {
        let mut grant = grant(manifest);
        grant.networks.extend(loopback());
        grant
    })
}

/// The test guest loaded with a manifest of `body` and exactly the grant `grant` makes of it
/// (no [`loopback`]), for tests of what is refused without a network grant.
pub fn test_guest_exactly(runtime: &Runtime, body: &str, grant: impl FnOnce(&Manifest) -> Grant) -> Plugin {
    load_exactly(runtime, components::TEST_GUEST, body, grant)
}

/// The component at `component` loaded with a manifest of `body` and exactly the grant `grant`
/// makes of it.
pub fn load_exactly(runtime: &Runtime, component: &str, body: &str, grant: impl FnOnce(&Manifest) -> Grant) -> Plugin {
    let dir = tempfile::tempdir().unwrap();
    let loaded = manifest(dir.path(), component, body);
    let grant = grant(&loaded.manifest);
    runtime
        .load(loaded, grant)
        .unwrap_or_else(|e| panic!("loading {component}: {e}"))
}

/// A secret granted with a fixed value, as an embedder or the demo grants one.
pub fn static_secret(value: &str) -> SecretGrant {
    SecretGrant::new(StaticSource::new(value.into()))
}

/// The example plugin `plugins/<name>` (a Python or JavaScript one), copied under `work` and
/// built there with `apiary build`'s library, installing the pinned tools into the user's
/// tools cache on first use. Returns its loaded manifest.
pub fn build_example_plugin(name: &str, work: &Path) -> LoadedManifest {
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugins").join(name);
    let plugin = work.join(name);
    std::fs::create_dir_all(&plugin).unwrap();
    for entry in std::fs::read_dir(&source).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() && path.extension().is_none_or(|e| e != "wasm") {
            std::fs::copy(&path, plugin.join(path.file_name().unwrap())).unwrap();
        }
    }
    apiary_host::authoring::build(&plugin, &apiary_host::authoring::BuildOptions::default())
        .unwrap_or_else(|e| panic!("building {name}: {e}"));
    Manifest::load(&plugin.join("plugin.toml")).unwrap()
}
