//! What one timed load measured, and how repeated loads are reduced to one figure.

use std::time::Duration;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// Significant figures the latency histograms keep: 0.1% resolution at any magnitude.
const LATENCY_SIGFIGS: u8 = 3;

/// One timed load of one contender at one concurrency.
#[derive(Debug, Clone, Serialize)]
pub struct Measurement {
    /// Requests completed (all of them answered 2xx, or the load failed).
    pub requests: u64,
    /// Wall-clock time of the whole load, from the first request sent to the last answer read.
    #[serde(rename = "elapsed_s", serialize_with = "as_seconds")]
    pub elapsed: Duration,
    /// Per-request latency, where the contender lets it be observed.
    pub latency: Option<Latency>,
    /// Connections the server accepted during the load, where the server can tell.
    pub connections: Option<u64>,
}

impl Measurement {
    /// Requests per second over the whole load.
    pub fn requests_per_second(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64().max(f64::EPSILON)
    }

    /// Connections opened per 100,000 requests: 0.3 means the pool kept its connections.
    pub fn connections_per_100k(&self) -> Option<f64> {
        self.connections
            .map(|connections| connections as f64 * 100_000.0 / self.requests.max(1) as f64)
    }
}

fn as_seconds<S: serde::Serializer>(duration: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_f64(duration.as_secs_f64())
}

/// Latency percentiles of one load, in microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Latency {
    /// Median.
    pub p50_us: f64,
    /// 90th percentile.
    pub p90_us: f64,
    /// 99th percentile.
    pub p99_us: f64,
}

impl Latency {
    /// The percentiles of a histogram of nanoseconds; `None` when it is empty.
    pub fn of(histogram: &Histogram<u64>) -> Option<Self> {
        if histogram.is_empty() {
            return None;
        }
        let micros = |quantile: f64| histogram.value_at_quantile(quantile) as f64 / 1000.0;
        Some(Self {
            p50_us: micros(0.50),
            p90_us: micros(0.90),
            p99_us: micros(0.99),
        })
    }
}

/// An empty histogram of request latencies in nanoseconds, growing to whatever it is given.
pub fn latency_histogram() -> Histogram<u64> {
    Histogram::new(LATENCY_SIGFIGS).expect("3 significant figures is within hdrhistogram's 0..=5")
}

/// The requests worker `index` of `workers` sends so that together they send `total`.
pub fn share_of(total: u64, workers: usize, index: usize) -> u64 {
    let workers = workers as u64;
    total / workers + u64::from((index as u64) < total % workers)
}

/// The load of median throughput among repeats: one slow repeat (another build on the shared
/// machine) moves it less than it moves the mean.
///
/// # Panics
/// When `repeats` is empty.
pub fn median(mut repeats: Vec<Measurement>) -> Measurement {
    assert!(!repeats.is_empty(), "a median of no measurements");
    repeats.sort_by(|a, b| a.requests_per_second().total_cmp(&b.requests_per_second()));
    repeats.swap_remove(repeats.len() / 2)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(requests: u64, millis: u64) -> Measurement {
        Measurement {
            requests,
            elapsed: Duration::from_millis(millis),
            latency: None,
            connections: Some(3),
        }
    }

    #[test]
    fn shares_add_up_to_the_total() {
        for (total, workers) in [(10, 3), (2000, 300), (7, 8), (100_000, 50)] {
            let sum: u64 = (0..workers).map(|i| share_of(total, workers, i)).sum();
            assert_eq!(sum, total, "{total} over {workers}");
        }
    }

    #[test]
    fn the_median_is_the_middle_throughput() {
        let picked = median(vec![load(100, 10), load(100, 50), load(100, 20)]);
        assert_eq!(picked.elapsed, Duration::from_millis(20));
        assert_eq!(picked.connections_per_100k(), Some(3000.0));
    }
}
