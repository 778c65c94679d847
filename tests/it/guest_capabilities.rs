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
        "paginate",
    ] {
        assert!(
            description.operations.iter().any(|(name, _)| name == op),
            "{op} missing"
        );
    }
}
