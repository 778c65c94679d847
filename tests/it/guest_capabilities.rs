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
        "bench-loop",
        "bench-batch",
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
        let page = apiary_tests::page_of(&request.path);
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

/// A streaming batch hands over each response as it completes: the plugin gets the fast
/// request's result while the slow one is still held by the server, and only its own follow-up
/// request (sent after the first result) lets the slow one finish.
#[tokio::test(flavor = "multi_thread", worker_threads = 3)]
async fn a_streaming_batch_yields_each_response_as_it_completes() {
    let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
    let release_rx = std::sync::Mutex::new(release_rx);
    let server = apiary_tests::TestServer::start(move |request, _| {
        match request.path.as_str() {
            "/hold" => {
                // Held until the plugin asks for /release, which it does only after it got a
                // result from the batch. (A bounded wait, so a broken host fails the test.)
                // `block_in_place`: this worker blocks, so tokio hands its queued tasks (the other
                // request's connection among them) to another worker. A timeout answers 409,
                // which is not retried: the test then fails instead of passing late.
                let released = tokio::task::block_in_place(|| {
                    release_rx
                        .lock()
                        .unwrap()
                        .recv_timeout(std::time::Duration::from_secs(20))
                });
                apiary_tests::respond(if released.is_ok() { 200 } else { 409 }, &[], "")
            }
            "/release" => {
                release_tx.send(()).unwrap();
                apiary_tests::respond(204, &[], "")
            }
            _ => apiary_tests::respond(201, &[], ""),
        }
    })
    .await;
    let (runtime, _clock) = runtime_with_clock();
    let plugin = test_guest(&runtime, &super::grant(&server.url(), ""));
    let input = json!({
        "urls": [format!("{}/hold", server.url()), format!("{}/fast", server.url())],
        "release": format!("{}/release", server.url()),
    });
    let (result, records) = run(&runtime, &plugin, "stream", input).await;
    result.unwrap();
    assert_eq!(
        records,
        vec![json!({"index": 1, "status": 201}), json!({"index": 0, "status": 200})],
        "the fast request first, then the held one, released by the plugin"
    );
}

/// Records are written as the plugin gave them: key order and number precision kept, pretty
/// JSON put on one line, invalid JSON refused; many records go in one call.
#[tokio::test]
async fn records_keep_their_bytes_and_many_go_in_one_call() {
    let (runtime, _clock) = runtime_with_clock();
    let plugin = test_guest(&runtime, "");
    let sink = MemorySink::default();
    let raw = [
        r#"{"z":1,"a":12345678901234567890123,"f":1.50}"#,
        "{\n  \"b\": [1, 2]\n}",
    ];
    let request = RunRequest::new("emit-many", Arc::new(sink.clone())).input(json!({ "raw": raw }).to_string());
    runtime.run(&plugin, request).await.unwrap();
    assert_eq!(sink.lines(), vec![raw[0].to_string(), r#"{"b":[1,2]}"#.to_string()]);

    let (result, _) = run(&runtime, &plugin, "emit-many", json!({"raw": ["{not json"]})).await;
    assert!(result.unwrap_err().to_string().contains("not valid JSON"));

    let (result, records) = run(&runtime, &plugin, "emit-many", json!({"count": 5000, "at_once": true})).await;
    assert_eq!(result.unwrap().records, 5000);
    assert_eq!(records[4999], json!({"i": 4999}));
}

/// `bench-loop` (the load of `apiary-bench`'s runs mode) sends its count of GETs and emits nothing.
#[tokio::test]
async fn bench_loop_sends_its_count_of_requests() {
    let server = apiary_tests::TestServer::start(|_, _| apiary_tests::respond(200, &[], "{}")).await;
    let (runtime, _clock) = runtime_with_clock();
    let plugin = test_guest(&runtime, &super::grant(&server.url(), ""));
    let input = json!({"url": format!("{}/item", server.url()), "count": 3});
    let (result, records) = run(&runtime, &plugin, "bench-loop", input).await;
    assert_eq!(result.unwrap().requests, 3);
    assert!(records.is_empty());
    assert_eq!(server.received().len(), 3);
    // With `emit`, every body becomes a record.
    let input = json!({"url": format!("{}/item", server.url()), "count": 2, "emit": true});
    let (result, records) = run(&runtime, &plugin, "bench-loop", input).await;
    assert_eq!(result.unwrap().records, 2);
    assert_eq!(records, vec![json!({}), json!({})]);
}

/// `bench-batch` (the load of `apiary-bench`'s batch mode) splits its count into batches of
/// `width`, the last one short, and fails on an error status instead of counting it.
#[tokio::test]
async fn bench_batch_sends_its_count_in_batches_and_fails_on_an_error_status() {
    let server = apiary_tests::TestServer::start(|request, _| match request.path.as_str() {
        "/missing" => apiary_tests::respond(404, &[], ""),
        _ => apiary_tests::respond(200, &[], "{}"),
    })
    .await;
    let (runtime, _clock) = runtime_with_clock();
    let plugin = test_guest(
        &runtime,
        &super::grant(&server.url(), "[limits]\nmax_concurrency = 2\n"),
    );
    let input = json!({"url": format!("{}/item", server.url()), "count": 5, "width": 2});
    let (result, records) = run(&runtime, &plugin, "bench-batch", input).await;
    assert_eq!(result.unwrap().requests, 5);
    assert!(records.is_empty());
    assert_eq!(server.received().len(), 5);

    let input = json!({"url": format!("{}/missing", server.url()), "count": 2, "width": 2});
    let (result, _) = run(&runtime, &plugin, "bench-batch", input).await;
    let error = result.unwrap_err().to_string();
    assert!(error.contains("answered 404"), "{error}");
}

/// Numbered pages go out several at a time and come back in page order, whatever order the
/// server answers in: page 1 is held until the server has seen page 4's request.
#[tokio::test(flavor = "multi_thread", worker_threads = 3)]
async fn numbered_pages_are_fetched_together_and_yielded_in_order() {
    let (seen_tx, seen_rx) = std::sync::mpsc::channel::<()>();
    let seen_rx = std::sync::Mutex::new(seen_rx);
    let server = apiary_tests::TestServer::start(move |request, _| {
        let page = apiary_tests::page_of(&request.path);
        if page == 4 {
            seen_tx.send(()).unwrap();
        }
        if page == 1 {
            // A bounded wait, so a host that sends pages one at a time fails the test.
            // (`block_in_place` and a 409 that is not retried, as in the streaming test above.)
            let seen = tokio::task::block_in_place(|| {
                seen_rx.lock().unwrap().recv_timeout(std::time::Duration::from_secs(20))
            });
            if seen.is_err() {
                return apiary_tests::respond(409, &[], "page 4 never came");
            }
        }
        apiary_tests::json(&json!([page * 10, page * 10 + 1]))
    })
    .await;
    let (runtime, _clock) = runtime_with_clock();
    let plugin = test_guest(
        &runtime,
        &super::grant(&server.url(), "[limits]\nmax_concurrency = 4\n"),
    );
    let input = json!({"url": format!("{}/items", server.url()), "first": 1, "last": 6, "width": 4});
    let (result, records) = run(&runtime, &plugin, "numbered", input).await;
    assert_eq!(result.unwrap().pages, 6);
    let expected: Vec<serde_json::Value> = (1..=6).flat_map(|p| [json!(p * 10), json!(p * 10 + 1)]).collect();
    assert_eq!(records, expected);
    assert_eq!(server.received().len(), 6);
}
