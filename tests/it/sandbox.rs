//! The sandbox: destinations not granted, runaway CPU and memory, crashes, and a host that
//! stays usable after each.

use apiary_host::RunError;
use apiary_tests::{TestServer, respond, test_guest};
use serde_json::json;

use super::{grant, run, runtime_with_clock};

#[tokio::test]
async fn a_host_not_granted_is_a_denied_value_not_a_trap() {
    let server = TestServer::start(|_, _| respond(200, &[], "should not be reached")).await;
    let (runtime, _clock) = runtime_with_clock();
    // Only https://api.example.com is granted; the loopback server is not.
    let plugin = test_guest(&runtime, "[permissions]\nhosts = [\"https://api.example.com\"]\n");
    let (result, records) = run(
        &runtime,
        &plugin,
        "fetch",
        json!({"url": format!("{}/x", server.url())}),
    )
    .await;
    result.unwrap();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0]["ok"], false);
    assert_eq!(records[0]["error"], "denied");
    let detail = records[0]["detail"].as_str().unwrap();
    assert!(
        detail.contains(&format!("http://127.0.0.1:{}", server.addr().port())) && detail.contains("test-guest"),
        "{detail}"
    );
    assert!(server.received().is_empty(), "a denied request must not leave the host");
}

#[tokio::test]
async fn nothing_is_granted_by_default() {
    let server = TestServer::start(|_, _| respond(200, &[], "")).await;
    let (runtime, _clock) = runtime_with_clock();
    let plugin = test_guest(&runtime, "");
    let (_, records) = run(&runtime, &plugin, "fetch", json!({"url": server.url()})).await;
    assert_eq!(records[0]["error"], "denied");
    // Other schemes and embedded credentials are refused as invalid before any allowlist match.
    let plugin = test_guest(&runtime, &grant(&server.url(), ""));
    let (_, records) = run(
        &runtime,
        &plugin,
        "fetch",
        json!({"url": format!("http://user:pw@127.0.0.1:{}/", server.addr().port())}),
    )
    .await;
    assert_eq!(records[0]["error"], "invalid-request");
    assert!(server.received().is_empty());
}

#[tokio::test]
async fn an_infinite_loop_is_stopped_at_the_deadline_and_the_host_stays_usable() {
    let (runtime, _clock) = runtime_with_clock();
    let plugin = test_guest(&runtime, "[limits]\ndeadline = \"300ms\"\n");
    let (result, _) = run(&runtime, &plugin, "spin", json!({})).await;
    let err = result.unwrap_err();
    assert!(matches!(err, RunError::DeadlineExceeded { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        "plugin `test-guest` was stopped: it exceeded its deadline of 300ms"
    );
    let (result, _) = run(&runtime, &plugin, "noop", json!({})).await;
    result.expect("the same plugin runs again after a stopped run");
}

#[tokio::test]
async fn a_memory_bomb_is_stopped_at_the_limit_and_the_host_stays_usable() {
    let (runtime, _clock) = runtime_with_clock();
    let plugin = test_guest(&runtime, "[limits]\nmemory_mib = 32\n");
    let (result, _) = run(&runtime, &plugin, "alloc", json!({})).await;
    let err = result.unwrap_err();
    assert!(matches!(err, RunError::MemoryExceeded { .. }), "{err:?}");
    let message = err.to_string();
    assert!(
        message.starts_with("plugin `test-guest` was stopped: memory limit of 32 MiB exceeded"),
        "{message}"
    );
    let (result, records) = run(&runtime, &plugin, "emit-many", json!({"count": 3})).await;
    result.unwrap();
    assert_eq!(records.len(), 3);
}

#[tokio::test]
async fn a_panic_is_a_crash_that_quotes_the_guest() {
    let (runtime, _clock) = runtime_with_clock();
    let plugin = test_guest(&runtime, "");
    let (result, _) = run(&runtime, &plugin, "panic", json!({})).await;
    let err = result.unwrap_err();
    assert!(matches!(err, RunError::Trap { .. }), "{err:?}");
    assert!(err.to_string().contains("test-guest panicked on purpose"), "{err}");
}

/// Regression: guest stderr was a 16 KiB pipe that failed writes once full, so a guest that
/// printed more and then panicked died in `eprint!` instead, and its panic message was lost.
#[tokio::test]
async fn a_chatty_guest_that_panics_still_reports_its_last_words() {
    let (runtime, _clock) = runtime_with_clock();
    let plugin = test_guest(&runtime, "");
    let (result, _) = run(&runtime, &plugin, "chatty", json!({"bytes": 1024 * 1024})).await;
    let err = result.unwrap_err();
    assert!(matches!(err, RunError::Trap { .. }), "{err:?}");
    let message = err.to_string();
    assert!(message.contains("chatty guest: last words"), "{message}");
    assert!(!message.contains("failed printing to stderr"), "{message}");
}

#[tokio::test]
async fn an_unknown_operation_is_named() {
    let (runtime, _clock) = runtime_with_clock();
    let plugin = test_guest(&runtime, "");
    let (result, _) = run(&runtime, &plugin, "nope", json!({})).await;
    assert_eq!(
        result.unwrap_err().to_string(),
        "plugin `test-guest` has no operation `nope`"
    );
}

#[tokio::test]
async fn plain_wasi_grants_no_environment_files_or_sockets() {
    let server = TestServer::start(|_, _| respond(200, &[], "")).await;
    let (runtime, _clock) = runtime_with_clock();
    // Even with the server's host granted for `http`, a raw socket must not get through.
    let plugin = test_guest(&runtime, &grant(&server.url(), ""));
    let (result, records) = run(&runtime, &plugin, "wasi", json!({"tcp": server.addr().to_string()})).await;
    result.unwrap();
    assert_eq!(
        records,
        vec![json!({"env": 0, "args": 0, "filesystem": false, "tcp": false})]
    );
    assert!(server.received().is_empty());
}

#[tokio::test]
async fn a_redirect_is_handed_to_the_plugin_not_followed() {
    // Following it would let a granted server send the plugin to a host it was never granted.
    let server =
        TestServer::start(|_, _| respond(302, &[("location", "http://not-granted.invalid/internal")], "")).await;
    let (runtime, _clock) = runtime_with_clock();
    let plugin = test_guest(&runtime, &grant(&server.url(), ""));
    let (_, records) = run(&runtime, &plugin, "fetch", json!({"url": server.url()})).await;
    assert_eq!(records[0]["status"], 302);
    assert_eq!(records[0]["attempts"], 1);
    assert_eq!(server.received().len(), 1);
}
