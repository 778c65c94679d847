//! Apiary's two ways of sending many requests: many plugin runs at once, each sending one
//! request at a time, and one run handing the host a streaming batch.
//!
//! Each load gets a fresh [`Runtime`], so its connection pool starts empty as the native
//! client's does; building it and loading the plugin are not timed.

use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, ensure};
use apiary_host::{MAX_BATCH_REQUESTS, MemorySink, NdjsonSink, Plugin, RecordSink, RunReport, RunRequest, Runtime};
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
    runs_with(url, concurrency, requests, None).await
}

/// As [`runs`], observed as `apiary run` is by default: the host's info-level events (one per
/// request) written to a file through the CLI's non-blocking writer, and every response body
/// emitted as a record into a buffered NDJSON file.
///
/// # Errors
/// As [`runs`], or when the files cannot be created.
pub async fn runs_observed(url: &str, concurrency: usize, requests: u64) -> anyhow::Result<Measurement> {
    let dir = tempfile::tempdir()?;
    let (writer, _flush_on_drop) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(false)
        .finish(std::fs::File::create(dir.path().join("apiary.log"))?);
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::INFO)
        .with_ansi(false)
        .with_writer(writer)
        .finish();
    let observed = Observed {
        logs: tracing::Dispatch::new(subscriber),
        records: Arc::new(NdjsonSink::new(std::fs::File::create(
            dir.path().join("records.ndjson"),
        )?)),
    };
    runs_with(url, concurrency, requests, Some(observed)).await
}

/// Where an observed load writes its logs and records.
#[derive(Clone)]
struct Observed {
    logs: tracing::Dispatch,
    records: Arc<NdjsonSink<std::fs::File>>,
}

async fn runs_with(
    url: &str,
    concurrency: usize,
    requests: u64,
    observed: Option<Observed>,
) -> anyhow::Result<Measurement> {
    use tracing::instrument::WithSubscriber;

    let (runtime, plugin) = load(url, concurrency, 1)?;
    let (runtime, plugin) = (Arc::new(runtime), Arc::new(plugin));
    let started = Instant::now();
    let tasks: Vec<_> = (0..concurrency)
        .map(|index| {
            let (runtime, plugin) = (runtime.clone(), plugin.clone());
            let count = share_of(requests, concurrency, index);
            let input = json!({ "url": url, "count": count, "emit": observed.is_some() });
            match observed.clone() {
                None => tokio::spawn(async move {
                    let sink = Arc::new(MemorySink::default());
                    run(&runtime, &plugin, "bench-loop", input, count, sink).await
                }),
                Some(observed) => tokio::spawn(
                    async move { run(&runtime, &plugin, "bench-loop", input, count, observed.records).await }
                        .with_subscriber(observed.logs),
                ),
            }
        })
        .collect();
    finish(tasks, requests, started).await
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
    run(
        &runtime,
        &plugin,
        "bench-batch",
        input,
        requests,
        Arc::new(MemorySink::default()),
    )
    .await?;
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
    sink: Arc<dyn RecordSink>,
) -> anyhow::Result<RunReport> {
    let request = RunRequest::new(operation, sink).input(input.to_string());
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

/// What `runs` runs, each parked on a request its server never answers, cost in resident
/// memory: the process's RSS before they start and once all are parked.
#[derive(Debug, Clone, Copy)]
pub struct ParkedRuns {
    /// Runs parked at once.
    pub runs: usize,
    /// Resident memory before the runs started, in KiB.
    pub rss_before_kib: u64,
    /// Resident memory with every run parked, in KiB.
    pub rss_parked_kib: u64,
}

/// Parks `runs` runs of the test guest, each waiting on a loopback server that accepts
/// connections and never answers, and measures the process's resident memory.
///
/// # Errors
/// When the runtime or plugin cannot be set up, or `/proc/self/status` cannot be read.
pub async fn parked(runs: usize) -> anyhow::Result<ParkedRuns> {
    use std::sync::atomic::{AtomicUsize, Ordering};

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/parked", listener.local_addr()?);
    let accepted = Arc::new(AtomicUsize::new(0));
    let counted = accepted.clone();
    let silent = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
            counted.fetch_add(1, Ordering::Relaxed);
        }
    });
    let (runtime, plugin) = load(&url, runs, 1)?;
    let (runtime, plugin) = (Arc::new(runtime), Arc::new(plugin));
    let rss_before_kib = rss_kib()?;
    let tasks: Vec<_> = (0..runs)
        .map(|_| {
            let (runtime, plugin) = (runtime.clone(), plugin.clone());
            let input = json!({ "url": url, "timeout_ms": 600_000 });
            tokio::spawn(async move {
                let request = RunRequest::new("fetch", Arc::new(MemorySink::default())).input(input.to_string());
                runtime.run(&plugin, request).await
            })
        })
        .collect();
    // Every run is parked once the server holds its connection.
    let waiting_since = Instant::now();
    while accepted.load(Ordering::Relaxed) < runs {
        ensure!(
            waiting_since.elapsed().as_secs() < 120,
            "only {} of {runs} runs reached the server",
            accepted.load(Ordering::Relaxed)
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let rss_parked_kib = rss_kib()?;
    for task in tasks {
        task.abort();
    }
    silent.abort();
    Ok(ParkedRuns {
        runs,
        rss_before_kib,
        rss_parked_kib,
    })
}

/// The process's resident set size, from `/proc/self/status`.
fn rss_kib() -> anyhow::Result<u64> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .context("no VmRSS line in /proc/self/status")
}

/// The host's egress pipeline alone, no plugin: `concurrency` tasks sending `requests` GETs
/// through [`Egress::send`](apiary_host::Egress::send) with the same policy a plugin would have.
/// Beside `runs`, it separates what the pipeline costs from what the plugin boundary costs.
///
/// # Errors
/// When the policy cannot be built, or a request fails or answers other than 2xx.
pub async fn pipeline(url: &str, concurrency: usize, requests: u64) -> anyhow::Result<Measurement> {
    use apiary_host::{
        Clock, Egress, EgressContext, EgressParts, EgressPolicy, Grant, Manifest, SystemClock, TenantId,
    };

    let host = url::Url::parse(url)?;
    let manifest = Manifest::parse(
        &format!(
            "name = \"bench\"\nversion = \"1\"\ncomponent = \"x.wasm\"\n[permissions]\nhosts = [\"http://{}:*\"]\n",
            host.host_str().context("the server URL has no host")?
        ),
        std::path::Path::new("bench.toml"),
    )?;
    let grant = Grant::local(&manifest).network("127.0.0.0/8".parse()?);
    let resolved = apiary_host::resolve(&manifest, &grant)?;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock::new());
    let policy = Arc::new(EgressPolicy::new(&manifest, resolved, &clock));
    let egress = Egress::new(EgressParts::default());
    let started = Instant::now();
    let tasks: Vec<_> = (0..concurrency)
        .map(|index| {
            let (egress, policy, url) = (egress.clone(), policy.clone(), url.to_string());
            let count = share_of(requests, concurrency, index);
            tokio::spawn(async move {
                for _ in 0..count {
                    let mut request = http::Request::get(url.as_str()).body(bytes::Bytes::new())?;
                    EgressContext::new(TenantId::default(), policy.clone()).attach_to(&mut request);
                    let response = egress.send(request).await?;
                    ensure!(
                        response.status().is_success(),
                        "the server answered {}",
                        response.status()
                    );
                }
                anyhow::Ok(())
            })
        })
        .collect();
    finish(tasks, requests, started).await
}

/// Waits for a load's tasks and measures its throughput (per-request latency is not observed).
async fn finish<T>(
    tasks: Vec<tokio::task::JoinHandle<anyhow::Result<T>>>,
    requests: u64,
    started: Instant,
) -> anyhow::Result<Measurement> {
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
