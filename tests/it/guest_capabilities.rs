//! The plugin-facing capabilities besides HTTP: config, state, log, output and describe.

use std::sync::Arc;

use apiary_host::{FileStateStore, MemorySink, RunRequest, Runtime};
use apiary_tests::{test_guest, test_runtime_config};
use serde_json::json;

use super::{run, runtime_with_clock};

#[tokio::test]
async fn config_is_the_manifest_defaults_overridden_by_the_run() {
    let (runtime, _clock) = runtime_with_clock();
    let plugin = test_guest(
        &runtime,
        "[config]\nbase_url = \"https://example.test\"\nkeep = \"yes\"\n",
    );
    let sink = MemorySink::default();
    let request = RunRequest::new("config", Arc::new(sink.clone()))
        .config("base_url", "http://127.0.0.1:9")
        .config("extra", "1");
    runtime.run(&plugin, request).await.unwrap();
    assert_eq!(
        sink.records(),
        vec![json!({"config": {"base_url": "http://127.0.0.1:9", "extra": "1", "keep": "yes"}})]
    );
}

#[tokio::test]
async fn state_survives_across_runs_and_runtimes_in_a_file_store() {
    let dir = tempfile::tempdir().unwrap();
    let runtime_on = |dir: &std::path::Path| {
        let mut config = test_runtime_config();
        config.state = Arc::new(FileStateStore::new(dir));
        Runtime::new(config).unwrap()
    };
    let runtime = runtime_on(dir.path());
    let plugin = test_guest(&runtime, "");
    let (_, records) = run(&runtime, &plugin, "state", json!({"key": "cursor", "value": "page-2"})).await;
    assert_eq!(records, vec![json!({"old": null, "new": "page-2"})]);
    drop(runtime);
    let runtime = runtime_on(dir.path());
    let plugin = test_guest(&runtime, "");
    let (_, records) = run(&runtime, &plugin, "state", json!({"key": "cursor", "value": "page-3"})).await;
    assert_eq!(records, vec![json!({"old": "page-2", "new": "page-3"})]);
}

#[tokio::test]
async fn records_are_emitted_in_order_and_counted() {
    let (runtime, _clock) = runtime_with_clock();
    let plugin = test_guest(&runtime, "");
    let (result, records) = run(&runtime, &plugin, "emit-many", json!({"count": 250})).await;
    assert_eq!(result.unwrap().records, 250);
    assert_eq!(records.len(), 250);
    assert!(records.iter().enumerate().all(|(i, r)| r["i"] == i));
}

#[tokio::test]
async fn logging_and_describe_work() {
    let (runtime, _clock) = runtime_with_clock();
    let plugin = test_guest(&runtime, "");
    let (result, records) = run(&runtime, &plugin, "log", json!({})).await;
    result.unwrap();
    assert_eq!(records, vec![json!({"logged": true})]);
    let description = runtime.describe(&plugin).await.unwrap();
    assert_eq!(description.name, "test-guest");
    for op in [
        "noop",
        "spin",
        "alloc",
        "fetch",
        "batch",
        "config",
        "state",
        "log",
        "emit-many",
        "panic",
        "chatty",
        "paginate",
    ] {
        assert!(
            description.operations.iter().any(|(name, _)| name == op),
            "{op} missing"
        );
    }
}

#[tokio::test]
async fn the_sdk_follows_link_pages_and_stops_on_a_loop() {
    use apiary_tests::{TestServer, respond};
    let server = TestServer::start(|request, _| {
        let page: u32 = request
            .path
            .rsplit('=')
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or(1);
        let items = json!([page * 10, page * 10 + 1]).to_string();
        let next = match (request.path.starts_with("/loop"), page) {
            (true, _) => Some("</loop?page=1>; rel=\"next\"".to_string()),
            (false, 1 | 2) => Some(format!(
                "</list?page={}>; rel=\"next\", </list?page=3>; rel=\"last\"",
                page + 1
            )),
            (false, _) => None,
        };
        match next {
            Some(link) => respond(200, &[("link", &link)], items),
            None => respond(200, &[], items),
        }
    })
    .await;
    let (runtime, _clock) = runtime_with_clock();
    let plugin = test_guest(&runtime, &super::grant(&server.url(), ""));
    let (result, records) = run(
        &runtime,
        &plugin,
        "paginate",
        json!({"url": format!("{}/list?page=1", server.url())}),
    )
    .await;
    assert_eq!(result.unwrap().pages, 3);
    assert_eq!(
        records,
        vec![json!(10), json!(11), json!(20), json!(21), json!(30), json!(31)]
    );

    let (result, records) = run(
        &runtime,
        &plugin,
        "paginate",
        json!({"url": format!("{}/loop?page=1", server.url())}),
    )
    .await;
    let err = result.unwrap_err().to_string();
    assert!(
        err.contains("/loop?page=1"),
        "a repeated next link ends the walk with an error naming it: {err}"
    );
    assert_eq!(
        records.len(),
        2,
        "the first page's items were emitted before the loop was seen"
    );
}
