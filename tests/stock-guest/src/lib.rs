//! A test-only plugin written as a stock `wasi:http` guest: it sends its requests with `wstd`'s
//! client through `wasi:http/outgoing-handler`, never through Apiary's `http` interface, so
//! the tests can check that the host gives such requests the same policies.
//!
//! Operation `flood`, input `{"url": "http://127.0.0.1:PORT/", "count": 300}`: starts `count`
//! requests with the raw `outgoing-handler.handle` and never reads a response, as a hostile
//! guest would; emits how many `handle` took and how the last one ended.
//!
//! Operation `get`, input `{"url": "...", "method": "GET", "headers": {"name": "value"},
//! "body": "..."}`: sends one request and
//! emits `{"status": 200, "body": "<the body as text>"}`, or fails with the `wasi:http` error.

#![allow(unsafe_code, missing_docs, unused_qualifications, missing_debug_implementations)]

wit_bindgen::generate!({
    path: "../../wit",
    world: "stock-plugin",
});

use apiary::plugin::output;
use apiary::plugin::types::OperationInfo;
use wstd::http::{Body, Client, Method, Request};

struct Stock;

impl Guest for Stock {
    fn describe() -> PluginInfo {
        PluginInfo {
            name: "stock".into(),
            version: "0.1.0".into(),
            operations: vec![OperationInfo {
                name: "get".into(),
                summary: "One request through wasi:http".into(),
            }],
        }
    }

    fn run(operation: String, input: String) -> Result<RunSummary, RunError> {
        let input: serde_json::Value =
            serde_json::from_str(&input).map_err(|e| RunError::InvalidInput(e.to_string()))?;
        if operation == "flood" {
            return flood(&input);
        }
        if operation != "get" {
            return Err(RunError::UnknownOperation(operation));
        }
        let url = input["url"]
            .as_str()
            .ok_or_else(|| RunError::InvalidInput("`url` is required".into()))?
            .to_string();
        let method = input["method"].as_str().unwrap_or("GET").to_string();
        let body = input["body"].as_str().map(str::to_string);
        let headers: Vec<(String, String)> = input["headers"]
            .as_object()
            .map(|h| {
                h.iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                    .collect()
            })
            .unwrap_or_default();
        wstd::runtime::block_on(send(url, method, headers, body))
    }
}

async fn send(
    url: String,
    method: String,
    headers: Vec<(String, String)>,
    body: Option<String>,
) -> Result<RunSummary, RunError> {
    let method = Method::from_bytes(method.as_bytes()).map_err(|e| RunError::InvalidInput(e.to_string()))?;
    let mut request = Request::builder().method(method).uri(url);
    for (name, value) in headers {
        request = request.header(name, value);
    }
    let request = request
        .body(body.map_or_else(Body::empty, Body::from))
        .map_err(|e| RunError::InvalidInput(e.to_string()))?;
    let response = Client::new()
        .send(request)
        .await
        .map_err(|e| RunError::Failed(format!("wasi:http: {e:?}")))?;
    let status = response.status().as_u16();
    let mut body = response.into_body();
    let text = body
        .str_contents()
        .await
        .map_err(|e| RunError::Failed(format!("reading the body: {e:?}")))?
        .to_string();
    let record = serde_json::json!({"status": status, "body": text});
    output::emit(&record.to_string()).map_err(|e| RunError::Failed(format!("{e:?}")))?;
    Ok(RunSummary {
        pages: 1,
        message: None,
    })
}

fn flood(input: &serde_json::Value) -> Result<RunSummary, RunError> {
    use wasip2::http::outgoing_handler;
    use wasip2::http::types::{Fields, OutgoingRequest, Scheme};

    let url = input["url"].as_str().unwrap_or_default();
    let authority = url.trim_start_matches("http://").trim_end_matches('/');
    let count = input["count"].as_u64().unwrap_or(1);
    // Kept alive to the end: the responses are never read.
    let mut started = Vec::new();
    let mut refused: Option<String> = None;
    for _ in 0..count {
        let request = OutgoingRequest::new(Fields::new());
        let _ = request.set_scheme(Some(&Scheme::Http));
        let _ = request.set_authority(Some(authority));
        let _ = request.set_path_with_query(Some("/"));
        match outgoing_handler::handle(request, None) {
            Ok(future) => started.push(future),
            Err(code) => {
                refused.get_or_insert_with(|| format!("{code:?}"));
            }
        }
    }
    // `handle` hands back a future for every request; a refusal is that future's outcome.
    // Wait for the last one's.
    let last = started.last().map(|future| {
        future.subscribe().block();
        match future.get() {
            Some(Ok(Ok(_))) => "ok".to_string(),
            Some(Ok(Err(code))) => format!("{code:?}"),
            other => format!("{other:?}"),
        }
    });
    let record = serde_json::json!({"started": started.len(), "refused": refused, "last": last});
    output::emit(&record.to_string()).map_err(|e| RunError::Failed(format!("{e:?}")))?;
    Ok(RunSummary {
        pages: 0,
        message: None,
    })
}

export!(Stock);
