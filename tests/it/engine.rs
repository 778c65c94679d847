//! The engine: the compiled-artifact cache and concurrent runs of one pre-instantiated plugin.

use std::sync::Arc;

use apiary_host::{Grant, Manifest, MemorySink, RunRequest, Runtime, RuntimeConfig};
use apiary_tests::{components, manifest};
use serde_json::json;

#[test]
fn compiled_components_are_cached_by_hash_and_reused() {
    let cache = tempfile::tempdir().unwrap();
    let plugin_dir = tempfile::tempdir().unwrap();
    let load = || {
        let runtime = Runtime::new(RuntimeConfig {
            cache_dir: Some(cache.path().to_path_buf()),
            max_concurrent_runs: 4,
            ..RuntimeConfig::default()
        })
        .unwrap();
        let loaded = manifest(plugin_dir.path(), components::TEST_GUEST, "");
        let grant = Grant::local(&loaded.manifest);
        runtime.load(loaded, grant).unwrap();
    };
    // The compiled entries, and when each was last written.
    let entries = || -> Vec<(std::path::PathBuf, std::time::SystemTime)> {
        let mut entries: Vec<_> = std::fs::read_dir(cache.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "cwasm"))
            .map(|p| {
                let written = std::fs::metadata(&p).unwrap().modified().unwrap();
                (p, written)
            })
            .collect();
        entries.sort();
        entries
    };

    load();
    let first = entries();
    assert_eq!(first.len(), 1);

    // A second runtime (a new process, in effect) reads the entry: it neither adds one nor
    // rewrites it.
    load();
    assert_eq!(entries(), first);

    // A corrupt entry is ignored and replaced, never fatal.
    std::fs::write(&first[0].0, b"garbage").unwrap();
    load();
    let replaced = entries();
    assert_eq!(replaced.len(), 1);
    assert_ne!(
        std::fs::read(&replaced[0].0).unwrap(),
        b"garbage",
        "the entry was rewritten"
    );
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
