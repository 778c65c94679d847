//! Retries, backoff, `Retry-After`, timeouts and rate limits, with an injected clock.

use std::time::Duration;

use apiary_tests::{TestServer, respond, test_guest};
use serde_json::json;

use super::{grant, run, runtime_with_clock};

#[tokio::test]
async fn a_503_then_200_succeeds_with_one_retry() {
    let server = TestServer::start(|_, i| {
        if i == 0 {
            respond(503, &[], "busy")
        } else {
            respond(200, &[], "ok")
        }
    })
    .await;
    let (runtime, clock) = runtime_with_clock();
    let plugin = test_guest(&runtime, &grant(&server.url(), ""));
    let (result, records) = run(&runtime, &plugin, "fetch", json!({"url": server.url()})).await;
    let report = result.unwrap();
    assert_eq!(records[0]["status"], 200);
    assert_eq!(records[0]["body"], "ok");
    assert_eq!(records[0]["attempts"], 2);
    assert_eq!((report.requests, report.attempts, report.retries), (1, 2, 1));
    let sleeps = clock.sleeps();
    assert_eq!(sleeps.len(), 1);
    // The default 2 s base, jittered by a factor in [0.5, 1.5].
    assert!(
        sleeps[0] >= Duration::from_secs(1) && sleeps[0] <= Duration::from_secs(3),
        "{sleeps:?}"
    );
    assert_eq!(server.received().len(), 2);
}

#[tokio::test]
async fn a_429_waits_exactly_as_retry_after_says_in_seconds_and_as_a_date() {
    let server = TestServer::start(|request, _| {
        if request.path.starts_with("/seconds") && !request.path.contains("again") {
            respond(429, &[("retry-after", "7")], "slow down")
        } else if request.path.starts_with("/date") && !request.path.contains("again") {
            // The manual clock starts at 2019-06-03 11:00:00 UTC.
            respond(429, &[("retry-after", "Mon, 03 Jun 2019 11:30:12 GMT")], "slow down")
        } else {
            respond(200, &[], "ok")
        }
    })
    .await;
    let manifest = grant(&server.url(), "[retry]\nmax_retries = 1\n[limits]\ndeadline = \"1h\"\n");
    // The server answers 429 to every request for these paths, so the single retry fails too.
    for (path, wait) in [("/seconds", 7), ("/date", 1812)] {
        let (runtime, clock) = runtime_with_clock();
        let plugin = test_guest(&runtime, &manifest);
        let (_, records) = run(
            &runtime,
            &plugin,
            "fetch",
            json!({"url": format!("{}{path}", server.url())}),
        )
        .await;
        assert_eq!(records[0]["error"], "retries-exhausted", "{}", records[0]);
        assert_eq!(records[0]["detail"]["attempts"], 2);
        assert_eq!(records[0]["detail"]["last_status"], 429);
        assert_eq!(clock.sleeps(), vec![Duration::from_secs(wait)], "{path}");
    }
}

#[tokio::test]
async fn a_retry_after_past_the_run_deadline_is_reported_not_waited_for() {
    let server = TestServer::start(|_, _| respond(429, &[("retry-after", "3600")], "come back in an hour")).await;
    let (runtime, clock) = runtime_with_clock();
    let plugin = test_guest(&runtime, &grant(&server.url(), "[limits]\ndeadline = \"10m\"\n"));
    let (result, records) = run(&runtime, &plugin, "fetch", json!({"url": server.url()})).await;
    result.unwrap();
    assert_eq!(records[0]["error"], "rate-limited", "{}", records[0]);
    assert_eq!(records[0]["detail"], 3_600_000);
    assert!(clock.sleeps().is_empty());
    assert_eq!(server.received().len(), 1);
}

#[tokio::test]
async fn retries_give_up_after_the_default_five_with_the_last_status() {
    let server = TestServer::start(|_, _| respond(502, &[], "bad gateway")).await;
    let (runtime, clock) = runtime_with_clock();
    let plugin = test_guest(&runtime, &grant(&server.url(), "[retry]\njitter = false\n"));
    let (result, records) = run(&runtime, &plugin, "fetch", json!({"url": server.url()})).await;
    let report = result.unwrap();
    assert_eq!(records[0]["error"], "retries-exhausted");
    assert_eq!(records[0]["detail"]["attempts"], 6);
    assert_eq!(records[0]["detail"]["last_status"], 502);
    let secs: Vec<u64> = clock.sleeps().iter().map(Duration::as_secs).collect();
    assert_eq!(secs, vec![2, 4, 8, 16, 32]);
    assert_eq!(report.waited, Duration::from_secs(62));
    assert_eq!(server.received().len(), 6);
}

#[tokio::test]
async fn a_post_is_not_retried_on_503_unless_marked_idempotent() {
    let server = TestServer::start(|_, _| respond(503, &[], "busy")).await;
    let (runtime, _clock) = runtime_with_clock();
    let plugin = test_guest(&runtime, &grant(&server.url(), "[retry]\nmax_retries = 2\n"));
    let (_, records) = run(
        &runtime,
        &plugin,
        "fetch",
        json!({"url": server.url(), "method": "POST", "body": "{}"}),
    )
    .await;
    assert_eq!(
        records[0]["status"], 503,
        "a non-idempotent request gets the response as is"
    );
    assert_eq!(server.received().len(), 1);
    let (_, records) = run(
        &runtime,
        &plugin,
        "fetch",
        json!({"url": server.url(), "method": "POST", "idempotent": true}),
    )
    .await;
    assert_eq!(records[0]["detail"]["attempts"], 3);
    assert_eq!(server.received().len(), 4);
}

#[tokio::test]
async fn a_request_may_narrow_but_not_widen_retries() {
    let server = TestServer::start(|_, _| respond(500, &[], "")).await;
    let (runtime, _clock) = runtime_with_clock();
    let plugin = test_guest(&runtime, &grant(&server.url(), "[retry]\nmax_retries = 1\n"));
    let (_, records) = run(
        &runtime,
        &plugin,
        "fetch",
        json!({"url": server.url(), "max_retries": 0}),
    )
    .await;
    assert_eq!(records[0]["status"], 500);
    let (_, records) = run(
        &runtime,
        &plugin,
        "fetch",
        json!({"url": server.url(), "max_retries": 10}),
    )
    .await;
    assert_eq!(records[0]["detail"]["attempts"], 2);
    assert_eq!(server.received().len(), 3);
}

#[tokio::test]
async fn a_refused_connection_is_retried_then_reported() {
    // Bind and drop a listener so the port is (very likely) closed.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let (runtime, clock) = runtime_with_clock();
    let plugin = test_guest(
        &runtime,
        "[permissions]\nhosts = [\"http://127.0.0.1:*\"]\n[retry]\nmax_retries = 2\n",
    );
    let (_, records) = run(
        &runtime,
        &plugin,
        "fetch",
        json!({"url": format!("http://127.0.0.1:{port}/")}),
    )
    .await;
    assert_eq!(records[0]["error"], "retries-exhausted", "{}", records[0]);
    assert!(records[0]["detail"]["last_status"].is_null());
    assert!(
        records[0]["detail"]["message"].as_str().unwrap().contains("connect"),
        "{}",
        records[0]
    );
    assert_eq!(clock.sleeps().len(), 2);
}

#[tokio::test]
async fn a_slow_server_times_out_per_attempt() {
    let server = TestServer::start(|_, _| respond(200, &[], "")).await;
    // A listener that accepts but never answers.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = silent.local_addr().unwrap().port();
    let _keep = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = silent.accept().await {
            held.push(stream);
        }
    });
    let (runtime, _clock) = runtime_with_clock();
    let plugin = test_guest(&runtime, &grant(&server.url(), "[retry]\nmax_retries = 0\n"));
    let (_, records) = run(
        &runtime,
        &plugin,
        "fetch",
        json!({"url": format!("http://127.0.0.1:{port}/"), "timeout_ms": 150}),
    )
    .await;
    assert_eq!(records[0]["error"], "timeout", "{}", records[0]);
    assert_eq!(records[0]["detail"], 150);
}

#[tokio::test]
async fn declared_rate_limits_pace_every_request_and_batches_keep_order() {
    let server = TestServer::start(|request, _| respond(200, &[], request.path.clone())).await;
    let (runtime, clock) = runtime_with_clock();
    let limits = "[[ratelimit]]\nbucket = \"127.0.0.1\"\nrate = 2\nper = \"1s\"\nburst = 1\n";
    let plugin = test_guest(&runtime, &grant(&server.url(), limits));
    let urls: Vec<String> = (0..4).map(|i| format!("{}/item/{i}", server.url())).collect();
    let (result, records) = run(&runtime, &plugin, "batch", json!({"urls": urls})).await;
    let report = result.unwrap();
    let bodies: Vec<&str> = records.iter().map(|r| r["body"].as_str().unwrap()).collect();
    assert_eq!(bodies, vec!["/item/0", "/item/1", "/item/2", "/item/3"]);
    // 2 per second, one at a time: the first goes at once, each of the others waits for the
    // next half-second slot (the manual clock moves on as each wait ends).
    assert_eq!(report.rate_limit_waits, 3);
    assert_eq!(clock.sleeps(), vec![Duration::from_millis(500); 3]);
    assert_eq!(server.received().len(), 4);
}

#[tokio::test]
async fn a_rate_limit_wait_longer_than_allowed_is_a_rate_limited_value() {
    let server = TestServer::start(|_, _| respond(200, &[], "")).await;
    let (runtime, _clock) = runtime_with_clock();
    let limits = "[[ratelimit]]\nbucket = \"slow\"\nrate = 1\nper = \"1h\"\nmax_wait = \"1m\"\n";
    let plugin = test_guest(&runtime, &grant(&server.url(), limits));
    let input = json!({"url": server.url(), "bucket": "slow"});
    let (_, first) = run(&runtime, &plugin, "fetch", input.clone()).await;
    assert_eq!(first[0]["ok"], true);
    let (_, second) = run(&runtime, &plugin, "fetch", input).await;
    assert_eq!(second[0]["error"], "rate-limited");
    assert_eq!(second[0]["detail"], 3_600_000);
    assert_eq!(server.received().len(), 1);
}

#[tokio::test]
async fn a_name_that_does_not_exist_is_not_retried() {
    let clock = apiary_host::ManualClock::new();
    let mut config = apiary_tests::test_runtime_config();
    config.egress.clock = std::sync::Arc::new(clock.clone());
    config.egress.client =
        apiary_host::PooledClient::with_resolver(std::sync::Arc::new(apiary_host::StaticResolver::default()));
    let runtime = apiary_host::Runtime::new(config).unwrap();
    let plugin = test_guest(&runtime, "[permissions]\nhosts = [\"http://missing.test.invalid\"]\n");
    let (_, records) = run(
        &runtime,
        &plugin,
        "fetch",
        json!({"url": "http://missing.test.invalid/x"}),
    )
    .await;
    assert_eq!(records[0]["error"], "connection", "{}", records[0]);
    let detail = records[0]["detail"].as_str().unwrap();
    assert!(
        detail.contains("retrying will not help") && detail.contains("missing.test.invalid does not exist"),
        "{detail}"
    );
    assert!(
        clock.sleeps().is_empty(),
        "no retry was waited for: {:?}",
        clock.sleeps()
    );
}

#[tokio::test]
async fn the_report_counts_requests_retries_429s_and_waits_per_destination() {
    let server = TestServer::start(|_, i| {
        if i == 0 {
            respond(429, &[("retry-after", "3")], "slow down")
        } else {
            respond(200, &[], "ok")
        }
    })
    .await;
    let (runtime, _clock) = runtime_with_clock();
    let plugin = test_guest(&runtime, &grant(&server.url(), ""));
    let (result, _) = run(&runtime, &plugin, "fetch", json!({"url": server.url()})).await;
    let report = result.unwrap();
    let counts = report.buckets["127.0.0.1"];
    assert_eq!(
        (
            counts.requests,
            counts.retries,
            counts.rate_limited,
            counts.breaker_opens,
            counts.waited_ms
        ),
        (1, 1, 1, 0, 3000)
    );
}

/// A server on 127.0.0.1 that reads a request and then writes `head` and `body`, pausing 2 s
/// first when `stall_headers`, or between the two halves of the body otherwise.
async fn stalling_server(stall_headers: bool) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://127.0.0.1:{}/", listener.local_addr().unwrap().port());
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut request = [0u8; 4096];
                let _ = socket.read(&mut request).await;
                let stall = || tokio::time::sleep(Duration::from_secs(2));
                if stall_headers {
                    stall().await;
                }
                let _ = socket
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nhello")
                    .await;
                if !stall_headers {
                    stall().await;
                }
                let _ = socket.write_all(b"world").await;
            });
        }
    });
    url
}

#[tokio::test]
async fn slow_headers_and_a_stalled_body_time_out_in_their_own_phase() {
    for (stall_headers, limits) in [
        (true, "first_byte_timeout = \"300ms\""),
        (false, "idle_timeout = \"300ms\""),
    ] {
        let url = stalling_server(stall_headers).await;
        let runtime = apiary_host::Runtime::new(apiary_tests::test_runtime_config()).unwrap();
        let manifest = grant(&url, &format!("[retry]\nmax_retries = 0\n[limits]\n{limits}\n"));
        let plugin = test_guest(&runtime, &manifest);
        let started = std::time::Instant::now();
        let (_, records) = run(&runtime, &plugin, "fetch", json!({"url": url})).await;
        assert_eq!(records[0]["error"], "timeout", "{limits}: {}", records[0]);
        assert_eq!(records[0]["detail"], 300, "{limits}");
        assert!(
            started.elapsed() < Duration::from_millis(1800),
            "{limits}: {:?}",
            started.elapsed()
        );
    }
}
