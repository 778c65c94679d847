//! The baseline: a plain hyper-util client, as a Rust program without Apiary would send the
//! same requests. Every other contender is reported as a ratio to it.

use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use crate::measure::{Latency, Measurement, latency_histogram, share_of};

/// Sends `requests` GETs to `url` from `concurrency` tasks sharing one client, each task one
/// request at a time, reading every body in full (as the host does).
///
/// The connector sets `TCP_NODELAY` as the host's does; the pool keeps hyper-util's defaults
/// (no cap on idle connections), which is what a plain client gets.
///
/// # Errors
/// When a request fails or answers other than 2xx.
pub async fn run(url: &str, concurrency: usize, requests: u64) -> anyhow::Result<Measurement> {
    let uri: http::Uri = url.parse().context("the server URL")?;
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    let client: Client<HttpConnector, Empty<Bytes>> = Client::builder(TokioExecutor::new()).build(connector);
    let started = Instant::now();
    let tasks: Vec<_> = (0..concurrency)
        .map(|index| {
            let (client, uri) = (client.clone(), uri.clone());
            let count = share_of(requests, concurrency, index);
            tokio::spawn(async move {
                let mut latencies = latency_histogram();
                for _ in 0..count {
                    let sent = Instant::now();
                    let response = client.get(uri.clone()).await?;
                    ensure!(
                        response.status().is_success(),
                        "the server answered {}",
                        response.status()
                    );
                    response.into_body().collect().await?;
                    latencies.record(duration_ns(sent.elapsed()))?;
                }
                anyhow::Ok(latencies)
            })
        })
        .collect();
    let mut latencies = latency_histogram();
    for task in tasks {
        latencies.add(task.await??)?;
    }
    Ok(Measurement {
        requests,
        elapsed: started.elapsed(),
        latency: Latency::of(&latencies),
        connections: None,
    })
}

fn duration_ns(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}
