//! Operator trust: the operator's grant decides, and the install's id (not the plugin's own
//! name) keys what a plugin keeps between requests and runs.

use apiary_host::{Grant, LimitCaps, OperatorConfig, RateLimitConfig};
use apiary_tests::{TestServer, respond, test_guest_granted};
use serde_json::json;
use std::time::Duration;

use super::{grant, run, runtime_with_clock};

/// Two installs of plugins that both call themselves `test-guest`.
fn install(id: &str) -> impl FnOnce(&apiary_host::Manifest) -> Grant {
    let id = id.to_string();
    move |manifest| {
        let mut grant = Grant::local(manifest);
        grant.plugin_id = id;
        grant
    }
}

#[tokio::test]
async fn two_installs_of_one_plugin_name_never_share_state() {
    let (runtime, _clock) = runtime_with_clock();
    let crm_a = test_guest_granted(&runtime, "", install("crm-a"));
    let crm_b = test_guest_granted(&runtime, "", install("crm-b"));
    let (_, records) = run(&runtime, &crm_a, "state", json!({"key": "cursor", "value": "a-1"})).await;
    assert_eq!(records[0]["old"], json!(null));
    let (_, records) = run(&runtime, &crm_b, "state", json!({"key": "cursor", "value": "b-1"})).await;
    assert_eq!(records[0]["old"], json!(null), "crm-b must not see crm-a's checkpoint");
    let (_, records) = run(&runtime, &crm_a, "state", json!({"key": "cursor", "value": "a-2"})).await;
    assert_eq!(records[0]["old"], "a-1");
}

#[tokio::test]
async fn two_installs_of_one_plugin_name_never_share_a_rate_limit() {
    let server = TestServer::start(|_, _| respond(200, &[], "")).await;
    let (runtime, _clock) = runtime_with_clock();
    let limits = "[[ratelimit]]\nbucket = \"slow\"\nrate = 1\nper = \"1h\"\nmax_wait = \"1m\"\n";
    let body = grant(&server.url(), limits);
    let crm_a = test_guest_granted(&runtime, &body, install("crm-a"));
    let crm_b = test_guest_granted(&runtime, &body, install("crm-b"));
    let input = json!({"url": server.url(), "bucket": "slow"});
    assert_eq!(run(&runtime, &crm_a, "fetch", input.clone()).await.1[0]["ok"], true);
    assert_eq!(
        run(&runtime, &crm_a, "fetch", input.clone()).await.1[0]["error"],
        "rate-limited"
    );
    assert_eq!(
        run(&runtime, &crm_b, "fetch", input).await.1[0]["ok"],
        true,
        "crm-b has a bucket of its own"
    );
}

#[tokio::test]
async fn the_operator_caps_limits_and_adds_rate_limits() {
    let server = TestServer::start(|_, _| respond(200, &[], "0123456789")).await;
    let (runtime, _clock) = runtime_with_clock();
    // The plugin asks for a 1 KiB body and no rate limit; the operator caps the body at 4 bytes
    // and allows one request an hour.
    let body = grant(&server.url(), "[limits]\nmax_response_bytes = 1024\n");
    let plugin = test_guest_granted(&runtime, &body, |m| {
        let mut grant = Grant::local(m);
        grant.limits = LimitCaps {
            max_response_bytes: Some(4),
            ..LimitCaps::default()
        };
        grant.ratelimits.push(RateLimitConfig {
            bucket: "127.0.0.1".into(),
            rate: 1.try_into().unwrap(),
            per: Duration::from_secs(3600),
            burst: 1.try_into().unwrap(),
            max_wait: Duration::from_secs(1),
        });
        grant
    });
    let (_, records) = run(&runtime, &plugin, "fetch", json!({"url": server.url()})).await;
    assert_eq!(records[0]["error"], "body-too-large", "{}", records[0]);
    assert_eq!(records[0]["detail"], 4);
    let (_, records) = run(&runtime, &plugin, "fetch", json!({"url": server.url()})).await;
    assert_eq!(records[0]["error"], "rate-limited", "{}", records[0]);
}

#[tokio::test]
async fn an_operator_file_grant_runs_the_plugin_with_its_secret() {
    let server = TestServer::start(|request, _| {
        let auth = request
            .headers
            .get("authorization")
            .map(|v| v.to_str().unwrap().to_string());
        respond(200, &[], auth.unwrap_or_default())
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("crm.env"), "CRM_KEY=operator-granted-key\n").unwrap();
    let operator = OperatorConfig::parse(
        "[plugins.crm]\npath = \"unused\"\nhosts = [\"http://127.0.0.1:*\"]\nallow_net = [\"127.0.0.0/8\"]\n\
         [plugins.crm.secrets.tok]\nsource = \"dotenv:crm.env#CRM_KEY\"\n",
        &dir.path().join("apiary.toml"),
    )
    .unwrap();
    let (runtime, _clock) = runtime_with_clock();
    let body = grant(
        &server.url(),
        "[permissions.secrets.tok]\nplacement = \"bearer\"\nhosts = [\"http://127.0.0.1:*\"]\n",
    );
    let plugin = test_guest_granted(&runtime, &body, |_| operator.grant("crm"));
    assert_eq!(plugin.id(), "crm");
    let input = json!({"url": server.url(), "secrets": [{"name": "tok", "placement": "bearer"}]});
    let (result, records) = run(&runtime, &plugin, "fetch", input).await;
    result.unwrap();
    assert_eq!(records[0]["body"], "Bearer [REDACTED]");
    assert_eq!(
        server.received()[0].headers["authorization"],
        "Bearer operator-granted-key"
    );
    // The same plugin under a grant without the secret: the operator decides, not the manifest.
    let plugin = test_guest_granted(&runtime, &body, |_| static_grant_without_secret());
    let err = run(&runtime, &plugin, "noop", json!({})).await.0.unwrap_err();
    assert!(
        err.to_string()
            .contains("requires the secret `tok`, which is not granted"),
        "{err}"
    );
}

fn static_grant_without_secret() -> Grant {
    Grant::new("crm").host("http://127.0.0.1:*".parse().unwrap())
}
