//! The github plugin against the bundled GitHub-like API (`apiary_host::demo`).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use apiary_host::demo::{DEMO_REPOSITORY, DemoApi, DemoApiConfig};
use apiary_host::{Grant, Manifest, ManualClock, MemorySink, Plugin, RunRequest, Runtime};
use apiary_tests::{components, loopback, static_secret};
use serde_json::json;

use super::runtime_with_clock;

/// A runtime, and the github plugin loaded from `plugins/github/plugin.toml` with the component
/// the build made, granted its hosts, `token` as its `github_token`, and loopback (where the
/// demo API listens).
fn github_plugin(token: &str) -> (Runtime, ManualClock, Plugin) {
    let (runtime, clock) = runtime_with_clock();
    let manifest = Manifest::load(Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../plugins/github"))).unwrap();
    let mut grant = Grant::local(&manifest.manifest).secret("github_token", static_secret(token));
    grant.networks.extend(loopback());
    let plugin = runtime
        .load_component(manifest, grant, components::GITHUB_PLUGIN.as_ref())
        .unwrap();
    (runtime, clock, plugin)
}

#[tokio::test]
async fn issues_are_collected_across_all_pages_in_order_with_retries() {
    let api = DemoApi::start(DemoApiConfig {
        token: "tok-github-1".into(),
        items: 45,
        ..DemoApiConfig::default()
    })
    .await
    .unwrap();
    let (runtime, clock, plugin) = github_plugin("tok-github-1");
    let sink = MemorySink::default();
    let (owner, repo) = DEMO_REPOSITORY;
    let request = RunRequest::new("issues", Arc::new(sink.clone()))
        .input(json!({"owner": owner, "repo": repo, "per_page": 10}).to_string())
        .config("base_url", api.base_url());
    let report = runtime.run(&plugin, request).await.unwrap();

    // Every issue, in page order; the pull requests (every tenth item) are left out.
    let expected: Vec<u64> = api
        .items()
        .iter()
        .filter(|i| i.get("pull_request").is_none())
        .map(|i| i["number"].as_u64().unwrap())
        .collect();
    let records = sink.records();
    let numbers: Vec<u64> = records.iter().map(|r| r["number"].as_u64().unwrap()).collect();
    assert_eq!(numbers, expected);
    assert_eq!(records[0]["title"], "Demo issue #1");
    assert_eq!(records[0]["user"], "user1");
    assert_eq!(report.pages, 5);
    assert_eq!(report.records, expected.len() as u64);

    // Page 2 got a 429 with Retry-After: 1 and page 3 a 503: two retries, and the 429's wait
    // is exactly what the server asked for.
    assert_eq!(report.retries, 2);
    assert_eq!(report.requests, 5);
    let sleeps = clock.sleeps();
    assert_eq!(sleeps.len(), 2, "{sleeps:?}");
    assert_eq!(sleeps[0], Duration::from_secs(1));
    assert!(
        sleeps[1] >= Duration::from_secs(1) && sleeps[1] <= Duration::from_secs(3),
        "jittered 2 s backoff: {sleeps:?}"
    );

    // Every request carried the token, though the plugin never saw it.
    let seen = api.requests();
    assert_eq!(seen.len(), 7);
    assert!(seen.iter().all(|r| r.authorized));
    assert!(records.iter().all(|r| !r.to_string().contains("tok-github-1")));
}

#[tokio::test]
async fn a_wrong_token_surfaces_as_a_plugin_failure_naming_the_status() {
    let api = DemoApi::start(DemoApiConfig {
        token: "right".into(),
        items: 3,
        inject_faults: false,
        ..DemoApiConfig::default()
    })
    .await
    .unwrap();
    let (runtime, _clock, plugin) = github_plugin("wrong-token-value");
    let request = RunRequest::new("issues", Arc::new(MemorySink::default()))
        .input(r#"{"owner":"apiary","repo":"demo"}"#)
        .config("base_url", api.base_url());
    let err = runtime.run(&plugin, request).await.unwrap_err().to_string();
    assert!(
        err.starts_with("plugin `github` failed:") && err.contains("401"),
        "{err}"
    );
    assert!(
        !err.contains("wrong-token-value"),
        "the token must not leak into errors: {err}"
    );
}

#[tokio::test]
async fn missing_input_field_is_reported_by_name() {
    let (runtime, _clock, plugin) = github_plugin("t0ken-value");
    let request = RunRequest::new("issues", Arc::new(MemorySink::default())).input(r#"{"repo":"demo"}"#);
    let err = runtime.run(&plugin, request).await.unwrap_err().to_string();
    assert!(err.contains("rejected the input") && err.contains("owner"), "{err}");
}

#[tokio::test]
async fn describe_lists_the_issues_operation() {
    let (runtime, _clock, plugin) = github_plugin("unused-token");
    let description = runtime.describe(&plugin).await.unwrap();
    assert_eq!(description.name, "github");
    assert!(description.operations.iter().any(|(name, _)| name == "issues"));
}
