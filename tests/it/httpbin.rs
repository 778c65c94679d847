//! The egress pipeline against a real peer nobody here wrote: httpbin (PyPI) under gunicorn on
//! 127.0.0.1, installed and started by [`Httpbin`]. Retries, learned pauses, timeouts, size
//! caps and content decoding, with the runtime's waits on a manual clock (the timeout alone
//! runs on the real timer).
//!
//! Skipped with a message when `python3` is missing, except under `CI`.

use std::io::Read;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use apiary_host::Grant;
use apiary_tests::{Httpbin, static_secret, test_guest, test_guest_granted};
use serde_json::{Value, json};

use super::{grant, run, runtime_with_clock};

/// The shared httpbin, installed under the target directory; `None` skips the test.
fn httpbin() -> Option<Arc<Httpbin>> {
    Httpbin::start(&Path::new(env!("CARGO_TARGET_TMPDIR")).join("httpbin"))
}

/// Runs `fetch` of `path` on httpbin with a guest whose manifest adds `extra` to the grant of
/// httpbin's host, and returns its one record and the clock's sleeps.
async fn fetch(httpbin: &Httpbin, extra: &str, input: Value) -> (Value, Vec<Duration>) {
    let (runtime, clock) = runtime_with_clock();
    let plugin = test_guest(&runtime, &grant(&httpbin.url(), extra));
    let (result, records) = run(&runtime, &plugin, "fetch", input).await;
    result.unwrap();
    assert_eq!(records.len(), 1, "{records:?}");
    (records.into_iter().next().unwrap(), clock.sleeps())
}

fn between(wait: Duration, low_ms: u64, high_ms: u64) -> bool {
    wait >= Duration::from_millis(low_ms) && wait <= Duration::from_millis(high_ms)
}

#[tokio::test]
async fn a_503_is_retried_as_the_manifest_says_then_exhausted() {
    let Some(httpbin) = httpbin() else { return };
    let retry = "[retry]\nmax_retries = 3\nbase_delay = \"1s\"\nmax_delay = \"3s\"\n";
    let url = format!("{}/status/503", httpbin.url());
    let (record, sleeps) = fetch(&httpbin, retry, json!({"url": url})).await;
    assert_eq!(record["error"], "retries-exhausted", "{record}");
    assert_eq!(record["detail"]["attempts"], 4);
    assert_eq!(record["detail"]["last_status"], 503);
    // Backoffs 1 s, 2 s and 4 s capped at 3 s, each jittered by a factor in [0.5, 1.5] and
    // never past the cap.
    assert_eq!(sleeps.len(), 3, "{sleeps:?}");
    assert!(between(sleeps[0], 500, 1500), "{sleeps:?}");
    assert!(between(sleeps[1], 1000, 3000), "{sleeps:?}");
    assert!(between(sleeps[2], 1500, 3000), "{sleeps:?}");
}

#[tokio::test]
async fn a_429_without_retry_after_backs_off_until_the_retries_run_out() {
    let Some(httpbin) = httpbin() else { return };
    let url = format!("{}/status/429", httpbin.url());
    let (record, sleeps) = fetch(&httpbin, "[retry]\nmax_retries = 2\n", json!({"url": url})).await;
    assert_eq!(record["error"], "retries-exhausted", "{record}");
    assert_eq!(record["detail"]["attempts"], 3);
    assert_eq!(record["detail"]["last_status"], 429);
    // httpbin sends no Retry-After with its 429: the default 2 s base, doubled, jittered.
    assert_eq!(sleeps.len(), 2, "{sleeps:?}");
    assert!(between(sleeps[0], 1000, 3000), "{sleeps:?}");
    assert!(between(sleeps[1], 2000, 6000), "{sleeps:?}");
}

#[tokio::test]
async fn a_retry_after_on_a_200_pauses_the_next_run() {
    let Some(httpbin) = httpbin() else { return };
    let (runtime, clock) = runtime_with_clock();
    let plugin = test_guest(&runtime, &grant(&httpbin.url(), ""));
    // httpbin answers 200 and echoes the query as headers: `Retry-After: 1` on a success.
    let url = format!("{}/response-headers?Retry-After=1", httpbin.url());
    let (first, records) = run(&runtime, &plugin, "fetch", json!({"url": url})).await;
    assert_eq!(records[0]["status"], 200, "{}", records[0]);
    assert_eq!(first.unwrap().learned_pauses, 1);
    assert!(clock.sleeps().is_empty(), "the first run does not wait");
    let (second, records) = run(
        &runtime,
        &plugin,
        "fetch",
        json!({"url": format!("{}/get", httpbin.url())}),
    )
    .await;
    assert_eq!(records[0]["status"], 200, "{}", records[0]);
    assert_eq!(clock.sleeps(), vec![Duration::from_secs(1)]);
    assert_eq!(second.unwrap().rate_limit_waits, 1);
}

#[tokio::test]
async fn a_slow_response_times_out_without_a_retry() {
    let Some(httpbin) = httpbin() else { return };
    let url = format!("{}/delay/3", httpbin.url());
    let started = Instant::now();
    let (record, sleeps) = fetch(&httpbin, "", json!({"url": url, "timeout_ms": 500, "max_retries": 0})).await;
    assert_eq!(record["error"], "timeout", "{record}");
    assert_eq!(record["detail"], 500);
    assert!(sleeps.is_empty(), "{sleeps:?}");
    // The timeout runs on the real timer: the run ended at 0.5 s, not when httpbin answered.
    assert!(
        started.elapsed() < Duration::from_millis(2500),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_body_over_max_response_bytes_is_refused_and_one_at_the_cap_is_not() {
    let Some(httpbin) = httpbin() else { return };
    let limits = "[limits]\nmax_response_bytes = 1024\n";
    let over = format!("{}/bytes/1025", httpbin.url());
    let (record, _) = fetch(&httpbin, limits, json!({"url": over})).await;
    assert_eq!(record["error"], "body-too-large", "{record}");
    assert_eq!(record["detail"], 1024);
    let at = format!("{}/bytes/1024", httpbin.url());
    let (record, _) = fetch(&httpbin, limits, json!({"url": at})).await;
    assert_eq!(record["status"], 200, "{record}");
    assert_eq!(header(&record, "content-length").as_deref(), Some("1024"));
}

#[tokio::test]
async fn gzip_is_decoded_in_a_run_holding_a_secret_and_passed_through_otherwise() {
    let Some(httpbin) = httpbin() else { return };
    let url = format!("{}/gzip", httpbin.url());

    // Without secrets the host leaves the body alone: the plugin gets httpbin's gzip bytes.
    let (record, _) = fetch(&httpbin, "", json!({"url": url})).await;
    assert_eq!(record["status"], 200, "{record}");
    assert_eq!(header(&record, "content-encoding").as_deref(), Some("gzip"));
    let mut decoded = String::new();
    flate2::read::GzDecoder::new(&body_seen(&record)[..])
        .read_to_string(&mut decoded)
        .expect("the plugin received gzip");
    let echoed: Value = serde_json::from_str(&decoded).unwrap();
    assert_eq!(echoed["gzipped"], true);

    // A run holding a secret decodes it to scan it: identity asked for, gzip sent anyway
    // (httpbin always compresses /gzip), decoded, and the echoed token scrubbed.
    const TOKEN: &str = "httpbin-secret-token-5f2c";
    let manifest = grant(
        &httpbin.url(),
        "[permissions.secrets.tok]\nplacement = \"bearer\"\nhosts = [\"http://127.0.0.1:*\"]\n",
    );
    let (runtime, _clock) = runtime_with_clock();
    let plugin = test_guest_granted(&runtime, &manifest, |m| {
        Grant::local(m).secret("tok", static_secret(TOKEN))
    });
    let input = json!({"url": url, "secrets": [{"name": "tok", "placement": "bearer"}]});
    let (result, records) = run(&runtime, &plugin, "fetch", input).await;
    result.unwrap();
    let record = &records[0];
    assert_eq!(record["status"], 200, "{record}");
    assert_eq!(header(record, "content-encoding"), None, "decoded: {record}");
    let body: Value = serde_json::from_str(record["body"].as_str().unwrap()).unwrap();
    assert_eq!(body["gzipped"], true);
    assert_eq!(body["headers"]["Accept-Encoding"], "identity");
    assert_eq!(body["headers"]["Authorization"], "Bearer [REDACTED]");
    assert!(!String::from_utf8_lossy(&body_seen(record)).contains(TOKEN));
}

/// The value of the response header `name` the plugin received.
fn header(record: &Value, name: &str) -> Option<String> {
    record["headers"]
        .as_array()?
        .iter()
        .find(|h| h[0].as_str().is_some_and(|n| n.eq_ignore_ascii_case(name)))
        .map(|h| h[1].as_str().unwrap().to_string())
}

/// The body bytes the plugin received, undoing the test guest's XOR (its `seen_xor` is the
/// headers as `name: value` lines, a blank line, then the body).
fn body_seen(record: &Value) -> Vec<u8> {
    let hex = record["seen_xor"].as_str().unwrap();
    let bytes: Vec<u8> = (0..hex.len() / 2)
        .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap() ^ 0x5a)
        .collect();
    let start = bytes.windows(2).position(|w| w == b"\n\n").expect("a blank line") + 2;
    bytes[start..].to_vec()
}

#[tokio::test]
async fn a_body_that_drips_times_out_between_its_pieces() {
    let Some(httpbin) = httpbin() else { return };
    // Headers at once, then four bytes a second apart.
    let url = format!("{}/drip?duration=4&numbytes=4&delay=0&code=200", httpbin.url());
    let started = Instant::now();
    let limits = "[limits]\nidle_timeout = \"500ms\"\n";
    let (record, sleeps) = fetch(&httpbin, limits, json!({"url": url, "max_retries": 0})).await;
    assert_eq!(record["error"], "timeout", "{record}");
    assert_eq!(record["detail"], 500);
    assert!(sleeps.is_empty(), "{sleeps:?}");
    assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());
}
