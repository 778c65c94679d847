//! Workspace-level integration tests: real components built from `plugins/` and `tests/guest/`,
//! run by the real host against HTTP servers on 127.0.0.1.
//!
//! One test binary, one file per area. A new test goes in the file of its area; a new area gets
//! a new file, declared below.

mod bounds;
mod breaker_and_budget;
mod engine;
mod github;
mod guest_capabilities;
mod httpbin;
mod learned_limits;
mod manifest;
mod operator;
mod pool;
mod retry_and_ratelimit;
mod sandbox;
mod secrets;
mod ssrf;
mod tls;
mod wasi_http;

use std::sync::{Arc, Mutex};

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

/// Collects everything a `tracing` subscriber writes, for asserting on log output.
#[derive(Clone, Default)]
pub(crate) struct CapturedLogs(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for CapturedLogs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl CapturedLogs {
    /// A JSON subscriber writing here, set as the default for the current thread (the test
    /// runtime is single-threaded, so every event of the run reaches it).
    pub(crate) fn install(&self, level: tracing::Level) -> tracing::subscriber::DefaultGuard {
        let writer = self.clone();
        let subscriber = tracing_subscriber::fmt()
            .json()
            .with_max_level(level)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::set_default(subscriber)
    }

    pub(crate) fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }

    pub(crate) fn events(&self) -> Vec<Value> {
        self.text().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
    }
}
