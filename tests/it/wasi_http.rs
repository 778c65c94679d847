//! Stock `wasi:http` guests: a component that sends its requests with `wstd`'s client through
//! `wasi:http/outgoing-handler` gets the egress pipeline's allowlist, retries, caps and
//! secrets exactly as one using Apiary's `http` interface does.

use apiary_host::{Grant, Plugin, Runtime};
use apiary_tests::{TestServer, components, json as json_response, load_exactly, loopback, respond, static_secret};
use serde_json::{Value, json};

use super::{grant, run, runtime_with_clock};

const SECRET: &str = "stock-s3cret-value-0123";

/// The stock guest with a manifest of `body`, granted what it asks (with `tok` = [`SECRET`]
/// when asked) and loopback.
fn stock_guest(runtime: &Runtime, body: &str) -> Plugin {
    load_exactly(runtime, components::STOCK_GUEST, body, |manifest| {
        let mut grant = Grant::local(manifest);
        if manifest.permissions.secrets.contains_key("tok") {
            grant = grant.secret("tok", static_secret(SECRET));
        }
        grant.networks.extend(loopback());
        grant
    })
}

/// Answers with the `authorization` header it received (or `none`).
async fn echo_authorization() -> TestServer {
    TestServer::start(|request, _| {
        let seen = request.headers.get("authorization").map_or("none".to_string(), |v| {
            String::from_utf8_lossy(v.as_bytes()).into_owned()
        });
        json_response(&json!({ "authorization": seen }))
    })
    .await
}

fn body_of(record: &Value) -> Value {
    serde_json::from_str(record["body"].as_str().expect("a body")).expect("a JSON body")
}

#[tokio::test]
async fn a_stock_request_is_retried_and_counted_like_any_other() {
    let server = TestServer::start(|_, i| {
        if i == 0 {
            respond(503, &[], "busy")
        } else {
            respond(200, &[], "ok")
        }
    })
    .await;
    let (runtime, clock) = runtime_with_clock();
    let plugin = stock_guest(&runtime, &grant(&server.url(), ""));
    let (result, records) = run(&runtime, &plugin, "get", json!({"url": server.url()})).await;
    let report = result.unwrap();
    assert_eq!(records, vec![json!({"status": 200, "body": "ok"})]);
    assert_eq!((report.requests, report.attempts, report.retries), (1, 2, 1));
    assert_eq!(clock.sleeps().len(), 1);
    assert_eq!(server.received().len(), 2);
}

#[tokio::test]
async fn a_stock_guest_cannot_reach_a_host_it_was_not_granted() {
    let server = echo_authorization().await;
    let (runtime, _) = runtime_with_clock();
    let plugin = stock_guest(&runtime, &grant(&server.url(), ""));
    // Same server, but named `localhost`: not the granted `127.0.0.1`.
    let url = format!("http://localhost:{}/", server.addr().port());
    let (result, records) = run(&runtime, &plugin, "get", json!({"url": url})).await;
    let error = result.unwrap_err().to_string();
    assert!(error.contains("HttpRequestDenied"), "{error}");
    assert!(records.is_empty());
    assert!(server.received().is_empty());
}

#[tokio::test]
async fn a_stock_guest_cannot_set_a_header_the_host_owns() {
    let server = echo_authorization().await;
    let (runtime, _) = runtime_with_clock();
    let plugin = stock_guest(&runtime, &grant(&server.url(), ""));
    for header in ["proxy-authorization", "transfer-encoding", "host"] {
        let input = json!({"url": server.url(), "headers": {header: "x"}});
        let (result, _) = run(&runtime, &plugin, "get", input).await;
        let error = result.unwrap_err().to_string();
        assert!(error.to_lowercase().contains("forbidden"), "{header}: {error}");
    }
    assert!(server.received().is_empty());
}

#[tokio::test]
async fn an_automatic_secret_is_attached_where_bound_and_never_reaches_the_guest() {
    let server = echo_authorization().await;
    let (runtime, _) = runtime_with_clock();
    let secret =
        "[permissions.secrets.tok]\nplacement = \"bearer\"\nattach = \"auto\"\nhosts = [\"http://127.0.0.1:*\"]\n";
    let plugin = stock_guest(&runtime, &grant(&server.url(), secret));
    let (result, records) = run(&runtime, &plugin, "get", json!({"url": server.url()})).await;
    result.unwrap();
    let received = server.received();
    assert_eq!(
        received[0].headers["authorization"],
        format!("Bearer {SECRET}").as_str(),
        "the host attached it"
    );
    let echoed = body_of(&records[0]);
    let echoed = echoed["authorization"].as_str().unwrap();
    assert!(!echoed.contains(SECRET), "the guest saw the value: {echoed}");
    assert!(echoed.starts_with("Bearer "), "{echoed}");
}

#[tokio::test]
async fn a_secret_not_declared_automatic_never_reaches_a_stock_guests_requests() {
    let server = echo_authorization().await;
    let (runtime, _) = runtime_with_clock();
    let secret = "[permissions.secrets.tok]\nplacement = \"bearer\"\nhosts = [\"http://127.0.0.1:*\"]\n";
    let plugin = stock_guest(&runtime, &grant(&server.url(), secret));
    let (result, records) = run(&runtime, &plugin, "get", json!({"url": server.url()})).await;
    result.unwrap();
    assert_eq!(body_of(&records[0]), json!({"authorization": "none"}));
    assert!(server.received()[0].headers.get("authorization").is_none());
}

#[tokio::test]
async fn an_automatic_secret_stays_off_requests_to_hosts_it_is_not_bound_to() {
    let server = echo_authorization().await;
    let (runtime, _) = runtime_with_clock();
    // Both names are granted; the secret is bound to `localhost` only, and the request goes to
    // 127.0.0.1.
    let manifest = "[permissions]\nhosts = [\"http://127.0.0.1:*\", \"http://localhost:*\"]\n\
                    [permissions.secrets.tok]\nplacement = \"bearer\"\nattach = \"auto\"\nhosts = [\"http://localhost:*\"]\n";
    let plugin = stock_guest(&runtime, manifest);
    let (result, records) = run(&runtime, &plugin, "get", json!({"url": server.url()})).await;
    result.unwrap();
    assert_eq!(body_of(&records[0]), json!({"authorization": "none"}));
    assert!(server.received()[0].headers.get("authorization").is_none());
}

/// A hostile guest starts requests and never reads them: the host holds at most a bounded
/// number for it (a response is held until the guest drops it) and refuses the rest with
/// `connection-limit-reached`, unsent.
#[tokio::test]
async fn a_guest_that_starts_requests_and_never_reads_them_is_bounded() {
    let server = echo_authorization().await;
    let (runtime, _) = runtime_with_clock();
    let plugin = stock_guest(&runtime, &grant(&server.url(), ""));
    let (result, records) = run(&runtime, &plugin, "flood", json!({"url": server.url(), "count": 300})).await;
    result.unwrap();
    assert_eq!(records[0]["started"], 300, "{}", records[0]);
    assert_eq!(
        records[0]["last"], "ErrorCode::ConnectionLimitReached",
        "{}",
        records[0]
    );
    assert!(server.received().len() <= apiary_host::MAX_BATCH_REQUESTS);
}

/// A server on 127.0.0.1 that answers every request after 50 ms and records the most it had
/// open at once.
async fn counting_server(most: std::sync::Arc<std::sync::atomic::AtomicUsize>) -> String {
    use std::sync::atomic::Ordering;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://127.0.0.1:{}/", listener.local_addr().unwrap().port());
    let open = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let (open, most) = (open.clone(), most.clone());
            tokio::spawn(async move {
                let mut request = [0u8; 4096];
                while let Ok(n) = socket.read(&mut request).await {
                    if n == 0 {
                        break;
                    }
                    let now = open.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(now, Ordering::SeqCst);
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    open.fetch_sub(1, Ordering::SeqCst);
                    let _ = socket
                        .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                        .await;
                }
            });
        }
    });
    url
}

#[tokio::test]
async fn a_stock_guest_has_at_most_max_concurrency_requests_on_the_network() {
    let most = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let url = counting_server(most.clone()).await;
    let (runtime, _) = runtime_with_clock();
    let plugin = stock_guest(&runtime, &grant(&url, "[limits]\nmax_concurrency = 4\n"));
    let (result, records) = run(&runtime, &plugin, "flood", json!({"url": url, "count": 40})).await;
    result.unwrap();
    assert_eq!(records[0]["last"], "ok", "{}", records[0]);
    let most = most.load(std::sync::atomic::Ordering::SeqCst);
    assert!((2..=4).contains(&most), "{most} requests were open at once");
}
