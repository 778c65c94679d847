//! Apiary's two ways of sending many requests: many plugin runs at once, each sending one
//! request at a time, and one run handing the host a streaming batch.
//!
//! Each load gets a fresh [`Runtime`], so its connection pool starts empty as the native
//! client's does; building it and loading the plugin are not timed.

use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, ensure};
use apiary_host::{MAX_BATCH_REQUESTS, MemorySink, Plugin, RunReport, RunRequest, Runtime};
use apiary_tests::{test_guest, test_runtime_config};
use serde_json::json;

use crate::measure::{Measurement, share_of};

/// Run slots beyond the load's own, so admission control never queues a benchmark run.
const SPARE_RUN_SLOTS: u32 = 10;

/// `concurrency` runs of the test guest's `bench-loop` at once, sending `requests` GETs in all.
/// Per-request latency is not observable from outside the guest, so none is reported.
///
/// # Errors
/// When the runtime or plugin cannot be set up, or a run fails (a failed request fails it).
pub async fn runs(url: &str, concurrency: usize, requests: u64) -> anyhow::Result<Measurement> {
    let (runtime, plugin) = load(url, concurrency, 1)?;
    let (runtime, plugin) = (Arc::new(runtime), Arc::new(plugin));
    let started = Instant::now();
    let tasks: Vec<_> = (0..concurrency)
        .map(|index| {
            let (runtime, plugin) = (runtime.clone(), plugin.clone());
            let count = share_of(requests, concurrency, index);
            let input = json!({ "url": url, "count": count });
            tokio::spawn(async move { run(&runtime, &plugin, "bench-loop", input, count).await })
        })
        .collect();
    for task in tasks {
        task.await??;
    }
    Ok(Measurement {
        requests,
        elapsed: started.elapsed(),
        latency: None,
        connections: None,
    })
}

/// One run of the test guest's `bench-batch`, with the manifest's `max_concurrency` at
/// `concurrency`: the host keeps that many requests in flight. One batch holds at most
/// [`MAX_BATCH_REQUESTS`], so the guest sends consecutive batches of that size, and a
/// concurrency above it is capped there (see [`effective_batch_concurrency`]).
///
/// # Errors
/// As [`runs`].
pub async fn batch(url: &str, concurrency: usize, requests: u64) -> anyhow::Result<Measurement> {
    let (runtime, plugin) = load(url, 1, concurrency)?;
    let width = requests.min(MAX_BATCH_REQUESTS as u64);
    let input = json!({ "url": url, "count": requests, "width": width });
    let started = Instant::now();
    run(&runtime, &plugin, "bench-batch", input, requests).await?;
    Ok(Measurement {
        requests,
        elapsed: started.elapsed(),
        latency: None,
        connections: None,
    })
}

/// The requests a batch run really keeps in flight when asked for `concurrency`.
pub fn effective_batch_concurrency(concurrency: usize) -> usize {
    concurrency.min(MAX_BATCH_REQUESTS)
}

/// A runtime with room for `runs` runs at once, and the test guest granted `url`'s host with
/// batches of `batch_concurrency` in flight.
fn load(url: &str, runs: usize, batch_concurrency: usize) -> anyhow::Result<(Runtime, Plugin)> {
    let mut config = test_runtime_config();
    let slots = u32::try_from(runs)?.saturating_add(SPARE_RUN_SLOTS);
    config.max_concurrent_runs = slots;
    config.max_runs_per_tenant = slots;
    let runtime = Runtime::new(config).context("failed to build the runtime")?;
    let host = url::Url::parse(url)?;
    let manifest = format!(
        "[permissions]\nhosts = [\"http://{}:*\"]\n[limits]\nmax_concurrency = {batch_concurrency}\ndeadline = \"1h\"\n",
        host.host_str().context("the server URL has no host")?,
    );
    // `test_guest` panics on a load error; a benchmark set up wrongly should stop there too.
    let plugin = test_guest(&runtime, &manifest);
    Ok((runtime, plugin))
}

async fn run(
    runtime: &Runtime,
    plugin: &Plugin,
    operation: &str,
    input: serde_json::Value,
    expected_requests: u64,
) -> anyhow::Result<RunReport> {
    let request = RunRequest::new(operation, Arc::new(MemorySink::default())).input(input.to_string());
    let report = runtime
        .run(plugin, request)
        .await
        .with_context(|| format!("the {operation} run failed"))?;
    ensure!(
        report.requests == expected_requests && report.failures == 0 && report.retries == 0,
        "the {operation} run sent {} requests ({} failed, {} retried), expected {expected_requests} clean ones",
        report.requests,
        report.failures,
        report.retries,
    );
    Ok(report)
}
