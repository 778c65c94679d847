//! Workspace-level integration tests: real components built from `plugins/` and `tests/guest/`,
//! run by the real host against HTTP servers on 127.0.0.1.
//!
//! One test binary, one file per area. A new test goes in the file of its area; a new area gets
//! a new file, declared below.

mod engine;
mod github;
mod guest_capabilities;
mod manifest;
mod operator;
mod pool;
mod retry_and_ratelimit;
mod sandbox;
mod secrets;
mod ssrf;

use std::sync::Arc;

use apiary_host::{ManualClock, MemorySink, Plugin, RunError, RunReport, RunRequest, Runtime, RuntimeConfig};
use apiary_tests::test_runtime_config;
use serde_json::Value;

/// A runtime whose waits go to a [`ManualClock`] and whose jitter is seeded.
fn runtime_with_clock() -> (Runtime, ManualClock) {
    let clock = ManualClock::new();
    let mut config: RuntimeConfig = test_runtime_config();
    config.egress.clock = Arc::new(clock.clone());
    config.egress.rng_seed = Some(7);
    (Runtime::new(config).expect("runtime"), clock)
}

/// Runs `operation` with `input` and returns the report and the emitted records.
async fn run(
    runtime: &Runtime,
    plugin: &Plugin,
    operation: &str,
    input: Value,
) -> (Result<RunReport, RunError>, Vec<Value>) {
    let sink = MemorySink::default();
    let request = RunRequest::new(operation, Arc::new(sink.clone())).input(input.to_string());
    let result = runtime.run(plugin, request).await;
    (result, sink.records())
}

/// A manifest body granting `url`'s host (any port), with extra TOML appended.
fn grant(url: &str, extra: &str) -> String {
    let host = url::Url::parse(url).unwrap();
    format!(
        "[permissions]\nhosts = [\"{}://{}:*\"]\n{extra}",
        host.scheme(),
        host.host_str().unwrap()
    )
}
