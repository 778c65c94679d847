//! How exactly the host holds a declared rate: `requests` GETs from many runs at once against a
//! bucket declared at `rate` per second, timed where it matters, on arrival at the server.
//!
//! Reported: the achieved rate as a ratio of the declared one (the burst, which may go at
//! once, is left out of it), and the most requests that arrived in any one-second window,
//! which must stay within the rate plus the burst.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use apiary_host::{MemorySink, RunRequest, Runtime};
use apiary_tests::{TestServer, respond, test_guest, test_runtime_config};
use serde_json::json;

use crate::measure::share_of;

/// Runs sending at once: enough that the bucket, not the runs, sets the pace.
const RUNS: usize = 50;
/// The bucket's burst.
const BURST: u32 = 20;

/// What a rate-limited load achieved.
#[derive(Debug, Clone, Copy)]
pub struct RateOutcome {
    /// The declared rate, per second.
    pub declared: u32,
    /// Requests sent.
    pub requests: u64,
    /// Requests per second past the burst, first arrival to last.
    pub achieved: f64,
    /// The most requests that arrived within any one second.
    pub max_in_one_second: usize,
    /// The bucket's burst.
    pub burst: u32,
}

impl RateOutcome {
    /// The achieved rate as a share of the declared one.
    pub fn ratio(&self) -> f64 {
        self.achieved / f64::from(self.declared)
    }

    /// Whether no one-second window saw more than the rate plus the burst.
    pub fn within_limit(&self) -> bool {
        self.max_in_one_second <= (self.declared + self.burst) as usize
    }
}

/// Sends `requests` GETs from [`RUNS`] runs at once through a bucket of `rate` per second.
///
/// # Errors
/// When the server, runtime or plugin cannot be set up, or a run fails.
pub async fn run(rate: u32, requests: u64) -> anyhow::Result<RateOutcome> {
    let arrivals = Arc::new(Mutex::new(Vec::with_capacity(requests as usize)));
    let server = {
        let arrivals = arrivals.clone();
        TestServer::start(move |_, _| {
            arrivals.lock().unwrap().push(Instant::now());
            respond(200, &[], "{}")
        })
        .await
    };
    let mut config = test_runtime_config();
    config.max_concurrent_runs = RUNS as u32 + 10;
    config.max_runs_per_tenant = RUNS as u32 + 10;
    let runtime = Arc::new(Runtime::new(config).context("failed to build the runtime")?);
    let manifest = format!(
        "[permissions]\nhosts = [\"http://127.0.0.1:*\"]\n[limits]\ndeadline = \"1h\"\n\
         [[ratelimit]]\nbucket = \"127.0.0.1\"\nrate = {rate}\nper = \"1s\"\nburst = {BURST}\nmax_wait = \"1h\"\n"
    );
    let plugin = Arc::new(test_guest(&runtime, &manifest));
    let url = server.url();
    let tasks: Vec<_> = (0..RUNS)
        .map(|index| {
            let (runtime, plugin) = (runtime.clone(), plugin.clone());
            let count = share_of(requests, RUNS, index);
            let input = json!({ "url": url, "count": count, "emit": false }).to_string();
            tokio::spawn(async move {
                let request = RunRequest::new("bench-loop", Arc::new(MemorySink::default())).input(input);
                runtime.run(&plugin, request).await
            })
        })
        .collect();
    for task in tasks {
        let report = task.await?.context("a rate-limited run failed")?;
        ensure!(report.failures == 0, "{} requests failed", report.failures);
    }
    let mut arrivals = arrivals.lock().unwrap().clone();
    arrivals.sort_unstable();
    ensure!(
        arrivals.len() as u64 == requests,
        "the server saw {} requests",
        arrivals.len()
    );
    Ok(outcome(rate, &arrivals))
}

/// The achieved rate and the busiest second of `arrivals` (sorted).
fn outcome(declared: u32, arrivals: &[Instant]) -> RateOutcome {
    let span = arrivals
        .last()
        .zip(arrivals.first())
        .map_or(Duration::ZERO, |(l, f)| *l - *f);
    let paced = arrivals.len().saturating_sub(BURST as usize);
    let achieved = paced as f64 / span.as_secs_f64().max(f64::EPSILON);
    let mut max_in_one_second = 0;
    let mut start = 0;
    for (end, at) in arrivals.iter().enumerate() {
        while *at - arrivals[start] >= Duration::from_secs(1) {
            start += 1;
        }
        max_in_one_second = max_in_one_second.max(end - start + 1);
    }
    RateOutcome {
        declared,
        requests: arrivals.len() as u64,
        achieved,
        max_in_one_second,
        burst: BURST,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_busiest_second_and_the_paced_rate() {
        let start = Instant::now();
        // The burst at once, then one every 10 ms for 2 s: 100 per second.
        let mut arrivals: Vec<Instant> = (0..BURST).map(|_| start).collect();
        arrivals.extend((1..=200).map(|i| start + Duration::from_millis(10 * i)));
        let outcome = outcome(100, &arrivals);
        assert!((outcome.ratio() - 1.0).abs() < 0.01, "{outcome:?}");
        assert_eq!(outcome.max_in_one_second, BURST as usize + 99);
        assert!(outcome.within_limit());
    }
}
