//! The engine: the compiled-artifact cache and concurrent runs of one pre-instantiated plugin.

use std::sync::Arc;

use apiary_host::{Grant, Manifest, MemorySink, RunRequest, Runtime, RuntimeConfig};
use apiary_tests::{components, manifest};
use serde_json::json;

#[test]
fn compiled_components_are_cached_by_hash_and_reused() {
    let cache = tempfile::tempdir().unwrap();
    let plugin_dir = tempfile::tempdir().unwrap();
    let config = || RuntimeConfig {
        cache_dir: Some(cache.path().to_path_buf()),
        max_concurrent_runs: 4,
        ..RuntimeConfig::default()
    };
    let entries = || std::fs::read_dir(cache.path()).map(|d| d.count()).unwrap_or(0);

    let runtime = Runtime::new(config()).unwrap();
    let loaded = || manifest(plugin_dir.path(), components::TEST_GUEST, "");
    runtime.load(loaded(), Grant::local(&loaded().manifest)).unwrap();
    assert_eq!(entries(), 1);

    // A second runtime (a new process, in effect) reuses the entry instead of adding one.
    let runtime = Runtime::new(config()).unwrap();
    let loaded = || manifest(plugin_dir.path(), components::TEST_GUEST, "");
    runtime.load(loaded(), Grant::local(&loaded().manifest)).unwrap();
    assert_eq!(entries(), 1);

    // A corrupt entry is ignored and replaced, never fatal.
    for entry in std::fs::read_dir(cache.path()).unwrap() {
        std::fs::write(entry.unwrap().path(), b"garbage").unwrap();
    }
    let runtime = Runtime::new(config()).unwrap();
    let loaded = || manifest(plugin_dir.path(), components::TEST_GUEST, "");
    runtime.load(loaded(), Grant::local(&loaded().manifest)).unwrap();
    assert_eq!(entries(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_loaded_plugin_serves_concurrent_runs() {
    let runtime = Arc::new(Runtime::new(apiary_tests::test_runtime_config()).unwrap());
    let dir = tempfile::tempdir().unwrap();
    let plugin = Arc::new(
        runtime
            .load(
                Manifest::load(&manifest(dir.path(), components::TEST_GUEST, "").path).unwrap(),
                Grant::new("engine-test"),
            )
            .unwrap(),
    );
    let runs: Vec<_> = (0..6)
        .map(|n| {
            let (runtime, plugin) = (runtime.clone(), plugin.clone());
            tokio::spawn(async move {
                let sink = MemorySink::default();
                let request =
                    RunRequest::new("emit-many", Arc::new(sink.clone())).input(json!({"count": n}).to_string());
                runtime.run(&plugin, request).await.unwrap();
                sink.records().len()
            })
        })
        .collect();
    let mut counts = Vec::new();
    for run in runs {
        counts.push(run.await.unwrap());
    }
    assert_eq!(counts, vec![0, 1, 2, 3, 4, 5]);
}
