//! An outage, as the fleet sees it: a destination that keeps failing opens its circuit breaker
//! (later calls fail at once, nothing is sent, then one probe finds it back), and a retry
//! budget keeps retries to a share of first attempts. Driven by real plugins, a real server
//! and the injected clock.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use apiary_tests::{TestServer, respond, test_guest};
use serde_json::{Value, json};

use super::{CapturedLogs, grant, run, runtime_with_clock};

/// The tests here take turns: `tracing` caches per call site whether anyone listens, and a
/// breaker event on another test's thread, with no subscriber, could be cached as unheard
/// while this file's log test listens.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[tokio::test]
async fn an_outage_opens_the_breaker_then_one_probe_finds_the_api_back() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let logs = CapturedLogs::default();
    let _guard = logs.install(tracing::Level::INFO);
    let down = Arc::new(AtomicBool::new(true));
    let server = {
        let down = down.clone();
        TestServer::start(move |_, _| {
            if down.load(Ordering::SeqCst) {
                respond(503, &[], "down")
            } else {
                respond(200, &[], "back")
            }
        })
        .await
    };
    let (runtime, clock) = runtime_with_clock();
    let manifest = grant(
        &server.url(),
        "[retry]\nmax_retries = 0\n[circuit_breaker]\nfailures = 3\nopen_for = \"30s\"\n",
    );
    let plugin = test_guest(&runtime, &manifest);
    let fetch = || json!({"url": server.url()});
    for i in 0..3 {
        let (result, records) = run(&runtime, &plugin, "fetch", fetch()).await;
        assert_eq!(records[0]["status"], 503);
        assert_eq!(
            result.unwrap().breaker_opens,
            u64::from(i == 2),
            "the third failure opens it"
        );
    }
    // Open: nothing is sent, the plugin gets a connection error that says why.
    let (_, records) = run(&runtime, &plugin, "fetch", fetch()).await;
    assert_eq!(records[0]["error"], "connection", "{}", records[0]);
    assert!(
        records[0]["detail"]
            .as_str()
            .unwrap()
            .contains("circuit breaker is open for 30s")
    );
    assert_eq!(server.received().len(), 3);
    // After `open_for`, one probe goes; the API is back, so the breaker closes.
    down.store(false, Ordering::SeqCst);
    clock.advance(Duration::from_secs(30));
    let (_, records) = run(&runtime, &plugin, "fetch", fetch()).await;
    assert_eq!(records[0]["body"], "back");
    let (_, records) = run(&runtime, &plugin, "fetch", fetch()).await;
    assert_eq!(records[0]["body"], "back");
    assert_eq!(server.received().len(), 5);
    let changes: Vec<String> = logs
        .events()
        .iter()
        .filter(|e| e["fields"]["message"] == "circuit breaker")
        .map(|e| e["fields"]["state"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(changes, ["open", "half-open", "closed"]);
}

#[tokio::test]
async fn a_tenants_outage_does_not_open_another_tenants_breaker() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let server = TestServer::start(|_, _| respond(503, &[], "down")).await;
    let (runtime, _clock) = runtime_with_clock();
    let manifest = grant(
        &server.url(),
        "[retry]\nmax_retries = 0\n[circuit_breaker]\nfailures = 1\n",
    );
    let plugin = test_guest(&runtime, &manifest);
    let (_, records) = run(&runtime, &plugin, "fetch", json!({"url": server.url()})).await;
    assert_eq!(records[0]["status"], 503);
    let sink = apiary_host::MemorySink::default();
    let request = apiary_host::RunRequest::new("fetch", Arc::new(sink.clone()))
        .input(json!({"url": server.url()}).to_string())
        .tenant(apiary_host::TenantId::new("other"));
    runtime.run(&plugin, request).await.unwrap();
    assert_eq!(sink.records()[0]["status"], 503, "the other tenant's request was sent");
    assert_eq!(server.received().len(), 2);
}

#[tokio::test]
async fn the_retry_budget_keeps_retries_to_its_share_of_first_attempts() {
    let server = TestServer::start(|_, _| respond(503, &[], "down")).await;
    let (runtime, _clock) = runtime_with_clock();
    let manifest = grant(
        &server.url(),
        "[retry]\nmax_retries = 5\nbase_delay = \"100ms\"\nbudget = { ratio = 0.0, min_retries = 2 }\n\
         [circuit_breaker]\nfailures = 0\n",
    );
    let plugin = test_guest(&runtime, &manifest);
    // The first call may retry twice, then the budget is spent.
    let (result, records) = run(&runtime, &plugin, "fetch", json!({"url": server.url()})).await;
    assert_eq!(records[0]["error"], "retries-exhausted", "{}", records[0]);
    assert_eq!(records[0]["detail"]["attempts"], 3);
    let report = result.unwrap();
    assert_eq!((report.retries, report.retries_denied), (2, 1));
    // The next call gets no retry at all: its first answer stands.
    let (result, records): (_, Vec<Value>) = run(&runtime, &plugin, "fetch", json!({"url": server.url()})).await;
    assert_eq!(records[0]["status"], 503);
    assert_eq!(records[0]["attempts"], 1);
    assert_eq!(result.unwrap().retries_denied, 1);
    assert_eq!(server.received().len(), 4);
}
