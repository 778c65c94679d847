//! The bundled example API: a GitHub-like paginated issues endpoint on 127.0.0.1 that requires
//! a bearer token, sends rate-limit headers and injects a 429 (with `Retry-After`) and a 503,
//! so `apiary demo` shows pagination, retries and secret injection working offline.

use std::collections::HashSet;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// The repository the demo API serves, as `owner/repo`.
pub const DEMO_REPOSITORY: (&str, &str) = ("apiary", "demo");

/// How the demo API behaves.
#[derive(Debug, Clone)]
pub struct DemoApiConfig {
    /// The bearer token every request must carry.
    pub token: String,
    /// Items in the repository; every tenth is a pull request, as on GitHub.
    pub items: u32,
    /// Whether the first request for page 2 gets a 429 and the first for page 3 a 503.
    pub inject_faults: bool,
    /// The `Retry-After` of the injected 429, in seconds.
    pub retry_after_secs: u64,
}

impl Default for DemoApiConfig {
    fn default() -> Self {
        Self {
            token: "demo-token".into(),
            items: 45,
            inject_faults: true,
            retry_after_secs: 1,
        }
    }
}

/// A request the demo API received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DemoRequest {
    /// Path and query.
    pub path: String,
    /// The status it answered.
    pub status: u16,
    /// Whether the request carried the expected bearer token.
    pub authorized: bool,
}

#[derive(Debug)]
struct DemoState {
    config: DemoApiConfig,
    items: Vec<Value>,
    seen: Mutex<Vec<DemoRequest>>,
    faults_sent: Mutex<HashSet<u32>>,
}

/// The running demo API; stops when dropped.
#[derive(Debug)]
pub struct DemoApi {
    addr: SocketAddr,
    state: Arc<DemoState>,
    task: JoinHandle<()>,
}

impl DemoApi {
    /// Starts the API on `127.0.0.1` at a free port.
    ///
    /// # Errors
    /// The I/O error when no port can be bound.
    pub async fn start(config: DemoApiConfig) -> std::io::Result<Self> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let items = (1..=config.items).map(demo_item).collect();
        let state = Arc::new(DemoState {
            config,
            items,
            seen: Mutex::default(),
            faults_sent: Mutex::default(),
        });
        let served = state.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let state = served.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |request| {
                        let state = state.clone();
                        async move { Ok::<_, Infallible>(handle(&state, addr, request)) }
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Ok(Self { addr, state, task })
    }

    /// The base URL to configure the github plugin with, e.g. `http://127.0.0.1:41234`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every request received so far, in order.
    pub fn requests(&self) -> Vec<DemoRequest> {
        self.state.seen.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Every item of the repository (issues and pull requests), in page order.
    pub fn items(&self) -> &[Value] {
        &self.state.items
    }
}

impl Drop for DemoApi {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn demo_item(number: u32) -> Value {
    let mut item = json!({
        "number": number,
        "title": format!("Demo issue #{number}"),
        "state": "open",
        "user": {"login": format!("user{}", number % 7)},
        "labels": [{"name": if number.is_multiple_of(3) { "bug" } else { "enhancement" }}],
        "comments": number % 5,
        "created_at": format!("2026-01-{:02}T10:00:00Z", 1 + number % 28),
        "updated_at": format!("2026-02-{:02}T10:00:00Z", 1 + number % 28),
        "closed_at": null,
        "html_url": format!("https://github.com/apiary/demo/issues/{number}"),
    });
    if number.is_multiple_of(10) {
        item["pull_request"] = json!({"url": format!("https://github.com/apiary/demo/pull/{number}")});
    }
    item
}

fn query_param<'a>(query: &'a str, name: &str) -> Option<&'a str> {
    query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

fn handle(state: &DemoState, addr: SocketAddr, request: Request<Incoming>) -> Response<Full<Bytes>> {
    let path = request
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_default();
    let expected = format!("Bearer {}", state.config.token);
    let authorized = request
        .headers()
        .get(http::header::AUTHORIZATION)
        .is_some_and(|v| v.as_bytes() == expected.as_bytes());
    let response = respond(state, addr, &request, authorized);
    let seen = DemoRequest {
        path,
        status: response.status().as_u16(),
        authorized,
    };
    state.seen.lock().unwrap_or_else(|e| e.into_inner()).push(seen);
    response
}

fn json_response(status: StatusCode) -> http::response::Builder {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
}

fn respond(
    state: &DemoState,
    addr: SocketAddr,
    request: &Request<Incoming>,
    authorized: bool,
) -> Response<Full<Bytes>> {
    let (owner, repo) = DEMO_REPOSITORY;
    let finish = |builder: http::response::Builder, body: Value| {
        builder
            .body(Full::new(Bytes::from(body.to_string())))
            .expect("valid response")
    };
    if request.uri().path() != format!("/repos/{owner}/{repo}/issues") {
        let body = json!({"message": "Not Found"});
        return finish(json_response(StatusCode::NOT_FOUND), body);
    }
    if !authorized {
        let body = json!({"message": "Bad credentials"});
        return finish(json_response(StatusCode::UNAUTHORIZED), body);
    }
    let query = request.uri().query().unwrap_or("");
    let per_page: usize = query_param(query, "per_page")
        .and_then(|v| v.parse().ok())
        .unwrap_or(30)
        .clamp(1, 100);
    let page: u32 = query_param(query, "page")
        .and_then(|v| v.parse().ok())
        .unwrap_or(1)
        .max(1);
    if state.config.inject_faults
        && (page == 2 || page == 3)
        && state.faults_sent.lock().unwrap_or_else(|e| e.into_inner()).insert(page)
    {
        let body = json!({"message": "injected fault"});
        return if page == 2 {
            let builder = json_response(StatusCode::TOO_MANY_REQUESTS)
                .header("retry-after", state.config.retry_after_secs.to_string());
            finish(builder, body)
        } else {
            finish(json_response(StatusCode::SERVICE_UNAVAILABLE), body)
        };
    }
    let pages = state.items.len().div_ceil(per_page).max(1) as u32;
    let start = (page as usize - 1) * per_page;
    let items: Vec<Value> = state.items.iter().skip(start).take(per_page).cloned().collect();
    let link = |p: u32, rel: &str| {
        format!("<http://{addr}/repos/{owner}/{repo}/issues?per_page={per_page}&page={p}>; rel=\"{rel}\"")
    };
    let mut links = Vec::new();
    if page < pages {
        links.push(link(page + 1, "next"));
        links.push(link(pages, "last"));
    }
    if page > 1 {
        links.push(link(1, "first"));
        links.push(link(page - 1, "prev"));
    }
    let body = Value::Array(items);
    let mut builder = json_response(StatusCode::OK)
        .header("x-ratelimit-limit", "5000")
        .header("x-ratelimit-remaining", (5000 - page).to_string())
        .header("x-ratelimit-used", page.to_string())
        .header("x-ratelimit-resource", "core");
    if !links.is_empty() {
        builder = builder.header("link", links.join(", "));
    }
    finish(builder, body)
}
