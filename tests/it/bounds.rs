//! Sandbox bounds, tried as an attacker would: every host entry point is capped, a cap is an
//! error value or a trap that names it, never a panic, and the host goes on serving an honest
//! run at the same time.

use std::sync::Arc;

use apiary_host::{
    Grant, LOG_EVENTS_BURST, MAX_BATCH_REQUESTS, MAX_STATE_KEYS, MemorySink, RunError, RunRequest, Runtime,
    RuntimeConfig,
};
use apiary_tests::{TestServer, respond, static_secret, test_guest, test_guest_granted, test_runtime_config};
use serde_json::{Value, json};

use super::{CapturedLogs, grant, run, runtime_with_clock};

/// Runs `attack` and, at the same time, an honest run of the same plugin; the honest one must
/// finish normally whatever the attack did to its own run.
async fn attack_beside_an_honest_run(
    runtime: &Runtime,
    plugin: &apiary_host::Plugin,
    attack: Value,
) -> (Result<apiary_host::RunReport, RunError>, Vec<Value>) {
    let honest = run(runtime, plugin, "emit-many", json!({"count": 3}));
    let hostile = run(runtime, plugin, "attack", attack);
    let ((honest_result, honest_records), hostile) = tokio::join!(honest, hostile);
    honest_result.expect("the honest run finishes normally");
    assert_eq!(honest_records.len(), 3);
    hostile
}

/// Regression: one request with 40,000 header names panicked the host process before the
/// allowlist was consulted, with no permissions granted.
#[tokio::test]
async fn forty_thousand_headers_are_an_invalid_request_not_a_crash() {
    let (runtime, _clock) = runtime_with_clock();
    let plugin = test_guest(&runtime, "");
    let attack = json!({"attack": "headers", "count": 40_000, "url": "https://api.example.com/"});
    let (result, records) = attack_beside_an_honest_run(&runtime, &plugin, attack).await;
    result.unwrap();
    assert_eq!(records[0]["error"], "invalid-request", "{}", records[0]);
    assert_eq!(records[0]["detail"], "40000 headers, over the limit of 64");
}

/// Regression: a guest-set `Host` header selected any virtual host behind an allowed address.
#[tokio::test]
async fn headers_the_host_owns_are_refused() {
    let server = TestServer::start(|_, _| respond(200, &[], "")).await;
    let (runtime, _clock) = runtime_with_clock();
    let plugin = test_guest(&runtime, &grant(&server.url(), ""));
    for name in [
        "host",
        "Transfer-Encoding",
        "connection",
        "proxy-authorization",
        "content-length",
        "te",
        "upgrade",
    ] {
        let input = json!({"url": server.url(), "headers": [[name, "evil.example"]]});
        let (_, records) = run(&runtime, &plugin, "fetch", input).await;
        assert_eq!(records[0]["error"], "invalid-request", "{name}: {}", records[0]);
        assert!(
            records[0]["detail"].as_str().unwrap().contains("is set by the host"),
            "{}",
            records[0]
        );
    }
    assert!(server.received().is_empty());
}

/// Regression: 1,000,000 copies of one secret attachment took 777 MiB and 1.4 s of host time.
#[tokio::test]
async fn a_million_attachments_are_refused_before_any_is_made() {
    let server = TestServer::start(|_, _| respond(200, &[], "")).await;
    let (runtime, _clock) = runtime_with_clock();
    let body = grant(
        &server.url(),
        "[permissions.secrets.tok]\nplacement = \"bearer\"\nhosts = [\"http://127.0.0.1:*\"]\n",
    );
    let plugin = test_guest_granted(&runtime, &body, |m| {
        Grant::local(m).secret("tok", static_secret("t0ken-value-1"))
    });
    let attack = json!({"attack": "attachments", "count": 1_000_000, "url": server.url(), "name": "tok"});
    let (result, records) = run(&runtime, &plugin, "attack", attack).await;
    result.unwrap();
    assert_eq!(records[0]["error"], "invalid-request", "{}", records[0]);
    assert_eq!(records[0]["detail"], "1000000 secret attachments, over the limit of 8");
    assert!(server.received().is_empty());
}

/// Regression: a `send-batch` of 600,000 denied URLs never yielded, overran its deadline and
/// wrote 600,001 warning lines.
#[tokio::test]
async fn a_batch_over_the_cap_ends_the_run_with_a_message_naming_it() {
    let (runtime, _clock) = runtime_with_clock();
    let plugin = test_guest(&runtime, "");
    let count = MAX_BATCH_REQUESTS + 1;
    let attack = json!({"attack": "batch", "count": count, "url": "https://denied.example/"});
    let (result, records) = attack_beside_an_honest_run(&runtime, &plugin, attack).await;
    let err = result.unwrap_err().to_string();
    assert!(
        err.contains(&format!(
            "send-batch of {count} requests is over the limit of {MAX_BATCH_REQUESTS}"
        )),
        "{err}"
    );
    assert!(records.is_empty());
}

/// Regression: a `send-batch` of 48 requests answered with 15 MiB each held 916 MiB in the host
/// before the guest's limit applied.
#[tokio::test]
async fn a_batch_holds_no_more_response_bytes_than_the_run_may_have() {
    let body: Arc<[u8]> = vec![b'x'; 1024 * 1024].into();
    let server = TestServer::start(move |_, _| respond(200, &[], body.to_vec())).await;
    let (runtime, _clock) = runtime_with_clock();
    // A 24 MiB run may hold 12 MiB of one batch's bodies: twelve of 1 MiB fit, the rest are refused.
    let plugin = test_guest(&runtime, &grant(&server.url(), "[limits]\nmemory_mib = 24\n"));
    let attack = json!({"attack": "batch", "count": 16, "url": server.url()});
    let (result, records) = run(&runtime, &plugin, "attack", attack).await;
    result.unwrap();
    let ok = records.iter().filter(|r| r["ok"] == true).count();
    assert_eq!(ok, 12, "{records:?}");
    assert!(records[12..].iter().all(|r| r["error"] == "body-too-large"));
    assert_eq!(records[12]["detail"], 0, "nothing of the batch's budget is left");
}

/// Regression: a 1 MiB string passed as 100 log fields copied 100 MiB, and nothing bounded how
/// many lines a plugin could write.
#[tokio::test]
async fn a_log_flood_is_cut_to_the_rate_and_summarised_in_one_line() {
    let logs = CapturedLogs::default();
    let _guard = logs.install(tracing::Level::INFO);
    let (runtime, _clock) = runtime_with_clock();
    let plugin = test_guest(&runtime, "");
    let attack = json!({"attack": "log", "count": 300, "bytes": 4096});
    let (result, records) = run(&runtime, &plugin, "attack", attack).await;
    result.unwrap();
    assert_eq!(records[0]["logged"], 300);
    let events = logs.events();
    let lines: Vec<&Value> = events.iter().filter(|e| e["target"] == "apiary::guest").collect();
    // The manual clock does not move: the burst is all the run may write, then one summary.
    assert_eq!(lines.len(), LOG_EVENTS_BURST as usize + 1);
    let summary = lines.last().unwrap();
    assert_eq!(summary["fields"]["dropped"], 300 - u64::from(LOG_EVENTS_BURST));
    let fields = lines[0]["fields"]["fields"].as_str().unwrap();
    let fields: serde_json::Map<String, Value> = serde_json::from_str(fields).unwrap();
    assert_eq!(fields.len(), 32, "fields past the cap are dropped");
    assert!(
        fields.values().all(|v| v.as_str().unwrap().len() == 1024),
        "values are cut to 1 KiB"
    );
}

/// Regression: 600 state keys of 1 MiB each were all accepted.
#[tokio::test]
async fn state_is_held_to_its_quota() {
    let (runtime, _clock) = runtime_with_clock();
    let plugin = test_guest(&runtime, "");
    let attack = json!({"attack": "state", "count": 600, "bytes": 16});
    let (result, records) = attack_beside_an_honest_run(&runtime, &plugin, attack).await;
    result.unwrap();
    assert_eq!(records[0]["stored"], MAX_STATE_KEYS);
    assert!(records[0]["error"].as_str().unwrap().contains("256"), "{}", records[0]);
    let attack = json!({"attack": "state", "count": 600, "bytes": 1024 * 1024 - 16});
    let plugin = test_guest_granted(&runtime, "", |m| {
        let mut grant = Grant::local(m);
        grant.plugin_id = "big-values".into();
        grant
    });
    let (_, records) = run(&runtime, &plugin, "attack", attack).await;
    assert_eq!(
        records[0]["stored"], 4,
        "4 MiB per scope: four values just under 1 MiB fit"
    );
}

/// A listener that accepts connections and never answers; it notifies at each accept.
struct SilentServer {
    port: u16,
    accepted: Arc<tokio::sync::Notify>,
    _task: tokio::task::JoinHandle<()>,
}

async fn silent_server() -> SilentServer {
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = silent.local_addr().unwrap().port();
    let accepted = Arc::new(tokio::sync::Notify::new());
    let notify = accepted.clone();
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = silent.accept().await {
            held.push(stream);
            notify.notify_one();
        }
    });
    SilentServer {
        port,
        accepted,
        _task: task,
    }
}

/// Regression: a guest's per-request timeout could exceed the manifest's without bound.
#[tokio::test]
async fn a_request_may_not_wait_longer_than_the_manifest_or_the_run_allows() {
    let silent = silent_server().await;
    let url = format!("http://127.0.0.1:{}/", silent.port);
    let (runtime, _clock) = runtime_with_clock();
    let capped = test_guest(
        &runtime,
        &grant(
            &url,
            "[limits]\nrequest_timeout = \"200ms\"\n[retry]\nmax_retries = 0\n",
        ),
    );
    let (_, records) = run(&runtime, &capped, "fetch", json!({"url": url, "timeout_ms": 3_600_000})).await;
    assert_eq!(records[0]["error"], "timeout", "{}", records[0]);
    assert_eq!(records[0]["detail"], 200);
}

#[tokio::test]
async fn an_attempt_never_outlives_the_run() {
    let silent = silent_server().await;
    let url = format!("http://127.0.0.1:{}/", silent.port);
    // The real clock: the run's deadline is 300 ms of real time.
    let runtime = Runtime::new(test_runtime_config()).unwrap();
    let plugin = test_guest(
        &runtime,
        &grant(&url, "[limits]\ndeadline = \"300ms\"\n[retry]\nmax_retries = 0\n"),
    );
    let (result, records) = run(&runtime, &plugin, "fetch", json!({"url": url})).await;
    // The attempt was cut to the time left (less the plugin's reserve), so the plugin saw a
    // timeout and reported it before the run's deadline; a 30 s attempt would have been
    // ended by the deadline instead.
    let report = result.unwrap_or_else(|err| panic!("the run should have ended on its own: {err}"));
    assert_eq!(report.records, 1);
    assert_eq!(records[0]["error"], "timeout", "{}", records[0]);
    assert!(records[0]["detail"].as_u64().unwrap() <= 270, "{}", records[0]);
}

/// Regression: run 65 failed as "crashed": the pool's slot count was the only limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_beyond_the_slots_waits_then_is_refused_as_busy() {
    let silent = silent_server().await;
    let url = format!("http://127.0.0.1:{}/", silent.port);
    let clock = apiary_host::ManualClock::new();
    let mut config: RuntimeConfig = test_runtime_config();
    config.max_concurrent_runs = 1;
    config.egress.clock = Arc::new(clock.clone());
    let runtime = Arc::new(Runtime::new(config).unwrap());
    let plugin = Arc::new(test_guest(&runtime, &grant(&url, "[retry]\nmax_retries = 0\n")));
    // The first run holds the only slot, waiting on a server that never answers.
    let first = tokio::spawn({
        let (runtime, plugin, url) = (runtime.clone(), plugin.clone(), url.clone());
        async move {
            let request = RunRequest::new("fetch", Arc::new(MemorySink::default()))
                .input(json!({"url": url, "timeout_ms": 2000}).to_string());
            runtime.run(&plugin, request).await
        }
    });
    // Once the server has the first run's connection, the first run holds the slot.
    silent.accepted.notified().await;
    // The manual clock lets the queue timeout pass at once: the second run is refused, cleanly.
    let (result, records) = run(&runtime, &plugin, "noop", json!({})).await;
    let err = result.unwrap_err();
    assert!(matches!(err, RunError::Busy { .. }), "{err:?}");
    assert!(
        err.to_string()
            .contains("the host is busy: tenant default's 1 run slots are taken"),
        "{err}"
    );
    assert!(records.is_empty());
    first.await.unwrap().unwrap();
    // The slot is free again.
    run(&runtime, &plugin, "noop", json!({})).await.0.unwrap();
}

/// Regression: a made-up `bucket` name, `LOCALHOST` or a decimal spelling of an IP escaped the
/// declared rate limit.
#[tokio::test]
async fn another_spelling_or_bucket_name_does_not_escape_the_hosts_limit() {
    let server = TestServer::start(|_, _| respond(200, &[], "")).await;
    let (runtime, _clock) = runtime_with_clock();
    let limits = "[[ratelimit]]\nbucket = \"127.0.0.1\"\nrate = 1\nper = \"1h\"\nmax_wait = \"1s\"\n";
    let plugin = test_guest(&runtime, &grant(&server.url(), limits));
    let port = server.addr().port();
    let (_, first) = run(&runtime, &plugin, "fetch", json!({"url": server.url()})).await;
    assert_eq!(first[0]["ok"], true);
    for input in [
        json!({"url": format!("http://2130706433:{port}/")}),
        json!({"url": format!("http://0x7f.0.0.1:{port}/")}),
        json!({"url": server.url(), "bucket": "made-up"}),
    ] {
        let (_, records) = run(&runtime, &plugin, "fetch", input.clone()).await;
        assert_eq!(records[0]["error"], "rate-limited", "{input}: {}", records[0]);
    }
    assert_eq!(server.received().len(), 1);
}

#[tokio::test]
async fn describe_runs_with_no_capabilities() {
    let (runtime, _clock) = runtime_with_clock();
    let body = grant(
        "http://127.0.0.1:9",
        "[permissions.secrets.tok]\nplacement = \"bearer\"\nhosts = [\"http://127.0.0.1:*\"]\n",
    );
    let plugin = test_guest_granted(&runtime, &body, |m| {
        Grant::local(m).secret("tok", static_secret("t0ken-value-1"))
    });
    let description = runtime.describe(&plugin).await.unwrap();
    let (_, probe) = description
        .operations
        .iter()
        .find(|(name, _)| name == "describe-probe")
        .unwrap();
    assert!(
        probe.contains("state: ") && !probe.contains("state: allowed"),
        "{probe}"
    );
    assert!(probe.contains("not an allowed destination"), "{probe}");
    assert!(probe.ends_with("secret available: false"), "{probe}");
}
