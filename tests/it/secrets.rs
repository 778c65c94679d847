//! Sealed secrets: attached by the host, bound to destinations, never visible to the plugin.

use apiary_host::{RunError, TenantId};
use apiary_tests::{TestServer, json as json_response, test_guest};
use secrecy::SecretString;
use serde_json::{Value, json};

use super::{grant, run, runtime_with_clock};

/// Echoes the request's headers and path back in the body, as a hostile or careless API might.
async fn echo_server() -> TestServer {
    TestServer::start(|request, _| {
        let headers: serde_json::Map<String, Value> = request
            .headers
            .iter()
            .map(|(k, v)| {
                (
                    k.to_string(),
                    Value::String(String::from_utf8_lossy(v.as_bytes()).into()),
                )
            })
            .collect();
        let mut response = json_response(&json!({"headers": headers, "path": request.path}));
        if let Some(auth) = request.headers.get("authorization") {
            response.headers_mut().insert("x-echo-authorization", auth.clone());
        }
        response
    })
    .await
}

fn secret_manifest(url: &str) -> String {
    grant(
        url,
        "[permissions.secrets.tok]\nenv = \"APIARY_TEST_UNUSED\"\nhosts = [\"http://127.0.0.1:*\"]\n",
    )
}

#[tokio::test]
async fn the_bearer_secret_reaches_the_server_but_never_the_guest() {
    const TOKEN: &str = "s3cr3t-bearer-value-0123456789";
    let server = echo_server().await;
    let (runtime, _clock) = runtime_with_clock();
    runtime
        .secrets()
        .insert(&TenantId::default(), "tok", SecretString::from(TOKEN));
    let plugin = test_guest(&runtime, &secret_manifest(&server.url()));
    let input = json!({"url": format!("{}/echo", server.url()), "secrets": [{"name": "tok", "placement": "bearer"}]});
    let (result, records) = run(&runtime, &plugin, "fetch", input).await;
    result.unwrap();

    let received = server.received();
    assert_eq!(received[0].headers["authorization"], format!("Bearer {TOKEN}").as_str());

    let record = &records[0];
    assert_eq!(record["ok"], true, "{record}");
    let everything = record.to_string();
    assert!(!everything.contains(TOKEN), "the guest saw the secret: {everything}");
    let body: Value = serde_json::from_str(record["body"].as_str().unwrap()).unwrap();
    assert_eq!(body["headers"]["authorization"], "Bearer [REDACTED]");
    let echoed = record["headers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h[0] == "x-echo-authorization")
        .unwrap();
    assert_eq!(echoed[1], "Bearer [REDACTED]");
}

#[tokio::test]
async fn query_basic_and_header_placements_are_scrubbed_in_every_encoding() {
    const VALUE: &str = "p@ss/wörd+1";
    let server = echo_server().await;
    let (runtime, _clock) = runtime_with_clock();
    runtime
        .secrets()
        .insert(&TenantId::default(), "tok", SecretString::from(VALUE));
    let plugin = test_guest(&runtime, &secret_manifest(&server.url()));
    for placement in [
        json!({"query": "api_key"}),
        json!({"basic": "me"}),
        json!({"header": "X-Api-Key"}),
    ] {
        let input =
            json!({"url": format!("{}/q?a=1", server.url()), "secrets": [{"name": "tok", "placement": placement}]});
        let (result, records) = run(&runtime, &plugin, "fetch", input).await;
        result.unwrap();
        let everything = records[0].to_string();
        assert_eq!(records[0]["ok"], true, "{everything}");
        assert!(everything.contains("[REDACTED]"), "{placement}: {everything}");
        for form in [
            VALUE.to_string(),
            url::form_urlencoded::byte_serialize(VALUE.as_bytes()).collect::<String>(),
        ] {
            assert!(!everything.contains(&form), "{placement} leaked {form}: {everything}");
        }
    }
    let last = server.received().pop().unwrap();
    assert_eq!(last.headers["x-api-key"].as_bytes(), VALUE.as_bytes());
}

#[tokio::test]
async fn a_secret_is_not_sent_where_it_is_not_bound() {
    let server = echo_server().await;
    let (runtime, _clock) = runtime_with_clock();
    runtime
        .secrets()
        .insert(&TenantId::default(), "tok", SecretString::from("bound-elsewhere"));
    // The host is granted, but the secret is bound to another destination.
    let body = grant(
        &server.url(),
        "[permissions.secrets.tok]\nhosts = [\"http://127.0.0.1:1\"]\n",
    );
    let plugin = test_guest(&runtime, &body);
    let input = json!({"url": server.url(), "secrets": [{"name": "tok", "placement": "bearer"}]});
    let (_, records) = run(&runtime, &plugin, "fetch", input).await;
    assert_eq!(records[0]["error"], "secret", "{}", records[0]);
    assert_eq!(records[0]["detail"]["kind"], "not-bound");
    // An undeclared secret is unknown.
    let input = json!({"url": server.url(), "secrets": [{"name": "other", "placement": "bearer"}]});
    let (_, records) = run(&runtime, &plugin, "fetch", input).await;
    assert_eq!(records[0]["detail"]["kind"], "unknown");
    assert!(
        server.received().is_empty(),
        "nothing may be sent when a secret is refused"
    );
}

#[tokio::test]
async fn a_missing_secret_stops_the_run_before_the_plugin_starts() {
    let server = echo_server().await;
    let (runtime, _clock) = runtime_with_clock();
    let plugin = test_guest(&runtime, &secret_manifest(&server.url()));
    let (result, records) = run(&runtime, &plugin, "emit-many", json!({"count": 1})).await;
    let err = result.unwrap_err();
    assert!(matches!(err, RunError::MissingSecret(_)), "{err:?}");
    assert!(
        err.to_string()
            .starts_with("secret `tok` is not set: define APIARY_TEST_UNUSED"),
        "{err}"
    );
    assert!(records.is_empty(), "the plugin must not have started");
}

#[tokio::test]
async fn secrets_are_scoped_by_tenant() {
    let server = echo_server().await;
    let (runtime, _clock) = runtime_with_clock();
    runtime
        .secrets()
        .insert(&TenantId::new("acme"), "tok", SecretString::from("acme-only"));
    let plugin = test_guest(&runtime, &secret_manifest(&server.url()));
    let (result, _) = run(&runtime, &plugin, "noop", json!({})).await;
    assert!(
        matches!(result, Err(RunError::MissingSecret(_))),
        "the default tenant has no value"
    );
}

/// Collects everything a `tracing` subscriber writes, for asserting on log output.
#[derive(Clone, Default)]
struct CapturedLogs(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for CapturedLogs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn each_call_is_one_structured_log_event_without_the_secret() {
    const VALUE: &str = "query-secret-value-42";
    let logs = CapturedLogs::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .with_max_level(tracing::Level::INFO)
        .with_writer(move || writer.clone())
        .finish();
    // The test runtime is single-threaded, so every event of the run reaches this subscriber.
    let _guard = tracing::subscriber::set_default(subscriber);

    let server = TestServer::start(|request, i| {
        if i == 0 {
            apiary_tests::respond(503, &[], request.path.clone())
        } else {
            json_response(&json!({"path": request.path}))
        }
    })
    .await;
    let (runtime, _clock) = runtime_with_clock();
    runtime
        .secrets()
        .insert(&TenantId::default(), "tok", SecretString::from(VALUE));
    let plugin = test_guest(&runtime, &secret_manifest(&server.url()));
    let input = json!({"url": format!("{}/items?page=2", server.url()), "secrets": [{"name": "tok", "placement": {"query": "key"}}]});
    let (result, records) = run(&runtime, &plugin, "fetch", input).await;
    result.unwrap();
    assert_eq!(records[0]["ok"], true);
    assert!(
        server.received()[1].path.ends_with(&format!("key={VALUE}")),
        "the server got the secret"
    );

    let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(!text.contains(VALUE), "a log line carries the secret: {text}");
    let events: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let calls: Vec<&Value> = events.iter().filter(|e| e["fields"]["message"] == "request").collect();
    assert_eq!(calls.len(), 1, "one event per call: {text}");
    let fields = &calls[0]["fields"];
    assert_eq!(fields["method"], "GET");
    assert_eq!(fields["url"], format!("{}/items?page=2", server.url()));
    assert_eq!(fields["status"], 200);
    assert_eq!(fields["attempts"], 2);
    assert_eq!(fields["plugin"], "test-guest");
    assert_eq!(fields["tenant"], "default");
    assert!(
        fields["duration_ms"].is_u64() && fields["waited_ms"].as_u64().unwrap() >= 1000,
        "{fields}"
    );
    assert!(
        events.iter().any(|e| e["fields"]["message"] == "retrying"),
        "the retry is logged too"
    );
}
