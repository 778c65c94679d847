//! `apiary-bench`: Apiary's egress under load beside a plain hyper-util client and aiohttp,
//! against one loopback server serving a 1 KB JSON body.
//!
//! For each concurrency c, every contender sends the same number of GETs, a few times over; the
//! median throughput is kept and reported as a ratio to the native client measured in the same
//! process. See `bench/README.md` for what each row measures.
//!
//! ```sh
//! cargo run --release -p apiary-bench -- --quick
//! ```

mod aiohttp;
mod apiary;
mod cpus;
mod measure;
mod native;
mod ratelimit;
mod report;
mod server;

use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;

use crate::aiohttp::AiohttpClient;
use crate::cpus::CpuPlan;
use crate::measure::{Measurement, median};
use crate::report::{Contender, Report, Row};
use crate::server::{BODY_BYTES, LoopbackServer, ServerChoice};

/// Concurrencies of a full run: one request at a time, a typical pool, and more than one batch.
const CONCURRENCIES: &[usize] = &[1, 50, 300];
/// Concurrencies of a `--quick` run.
const QUICK_CONCURRENCIES: &[usize] = &[1, 8];
/// Requests at c = 1: a sequential client is slow, and this is still seconds of load.
const REQUESTS_SEQUENTIAL: u64 = 20_000;
/// Requests at c > 1.
const REQUESTS_CONCURRENT: u64 = 100_000;
/// Requests of every `--quick` load.
const REQUESTS_QUICK: u64 = 2_000;

/// Apiary's egress under load, beside a plain hyper-util client and aiohttp.
#[derive(Debug, Parser)]
#[command(name = "apiary-bench", version)]
struct Args {
    /// Concurrencies 1 and 8 and 2,000 requests per load: seconds, for checking the harness.
    #[arg(long)]
    quick: bool,
    /// Where latest.json and throughput.svg go.
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/results"))]
    out: PathBuf,
    /// Concurrencies to measure instead of the defaults, e.g. `--concurrency 1,50`.
    #[arg(long, value_delimiter = ',')]
    concurrency: Option<Vec<usize>>,
    /// Requests per load instead of the defaults.
    #[arg(long)]
    requests: Option<u64>,
    /// Loads per contender and concurrency; the median is kept.
    #[arg(long, default_value_t = 3)]
    repeats: usize,
    /// The loopback server: nginx when installed (auto), or the built-in one, which also
    /// counts connections without nginx's stub_status module.
    #[arg(long, value_enum, default_value_t = ServerChoice::Auto)]
    server: ServerChoice,
    /// Leave aiohttp out even when it is installed (for profiling the Rust clients alone).
    #[arg(long)]
    no_aiohttp: bool,
    /// Instead of throughput, park this many runs on a server that never answers and report
    /// the resident memory they take (the target: 1,000 parked runs within 1 GiB).
    #[arg(long, value_name = "RUNS")]
    parked: Option<usize>,
    /// Instead of throughput, send the requests (default 10,000) through a bucket declared at
    /// this many per second and report how closely the host holds it.
    #[arg(long, value_name = "PER_SECOND")]
    rate_limit: Option<u32>,
}

impl Args {
    fn concurrencies(&self) -> Vec<usize> {
        let mut list = match (&self.concurrency, self.quick) {
            (Some(list), _) => list.clone(),
            (None, true) => QUICK_CONCURRENCIES.to_vec(),
            (None, false) => CONCURRENCIES.to_vec(),
        };
        list.retain(|&c| c > 0);
        list.sort_unstable();
        list.dedup();
        list
    }

    fn requests_at(&self, concurrency: usize) -> u64 {
        match (self.requests, self.quick) {
            (Some(requests), _) => requests,
            (None, true) => REQUESTS_QUICK,
            (None, false) if concurrency == 1 => REQUESTS_SEQUENTIAL,
            (None, false) => REQUESTS_CONCURRENT,
        }
        .max(concurrency as u64)
    }
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    anyhow::ensure!(args.repeats > 0, "--repeats must be at least 1");
    if let Some(rate) = args.rate_limit {
        let runtime = tokio::runtime::Runtime::new().context("failed to start the runtime")?;
        let outcome = runtime.block_on(ratelimit::run(rate, args.requests.unwrap_or(10_000)))?;
        println!(
            "{} requests through a bucket of {}/s (burst {}): {:.0}/s past the burst, {:.3}x the declared rate; \
             at most {} in any one second (limit plus burst: {}), {}",
            outcome.requests,
            outcome.declared,
            outcome.burst,
            outcome.achieved,
            outcome.ratio(),
            outcome.max_in_one_second,
            outcome.declared + outcome.burst,
            if outcome.within_limit() { "within it" } else { "OVER IT" },
        );
        return Ok(());
    }
    if let Some(runs) = args.parked {
        let runtime = tokio::runtime::Runtime::new().context("failed to start the runtime")?;
        let parked = runtime.block_on(apiary::parked(runs))?;
        let added = parked.rss_parked_kib.saturating_sub(parked.rss_before_kib);
        println!(
            "{} parked runs: RSS {} MiB before, {} MiB parked; {} MiB added, {} KiB per run",
            parked.runs,
            parked.rss_before_kib / 1024,
            parked.rss_parked_kib / 1024,
            added / 1024,
            added / parked.runs.max(1) as u64,
        );
        return Ok(());
    }
    let cpus = CpuPlan::detect();
    if let Some(&client_cpu) = cpus.clients.first() {
        // The main thread drives the loads too: keep it off the server's CPU.
        core_affinity::set_for_current(client_cpu);
    }
    let server = LoopbackServer::start(args.server, cpus.server)?;
    let pin = cpus.client_thread_pinner();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cpus.client_threads())
        .on_thread_start(pin)
        .enable_all()
        .build()
        .context("failed to start the client runtime")?;
    let aiohttp = if args.no_aiohttp {
        None
    } else {
        AiohttpClient::find(cpus.client_cpu_list())?
    };
    let mut contenders = vec![
        Contender::Native,
        Contender::ApiaryPipeline,
        Contender::ApiaryRuns,
        Contender::ApiaryRunsObserved,
        Contender::ApiaryBatch,
    ];
    let mut skipped = Vec::new();
    match aiohttp {
        Some(_) => contenders.push(Contender::Aiohttp),
        None if args.no_aiohttp => skipped.push("aiohttp: left out with --no-aiohttp".to_string()),
        None => skipped.push("aiohttp: `python3 -c \"import aiohttp\"` fails".to_string()),
    }
    eprintln!("server: {} at {}", server.describe(), server.url());
    eprintln!("cpus: {}", cpus.describe());

    let mut rows = Vec::new();
    for concurrency in args.concurrencies() {
        let requests = args.requests_at(concurrency);
        let mut repeats: Vec<Vec<Measurement>> = vec![Vec::new(); contenders.len()];
        // Repeats interleave the contenders, so a burst of noise from other work on the
        // machine lands on all of them rather than on one.
        for repeat in 1..=args.repeats {
            for (index, &contender) in contenders.iter().enumerate() {
                let before = server.connections_accepted();
                let mut measured = match contender {
                    Contender::Native => runtime.block_on(native::run(server.url(), concurrency, requests)),
                    Contender::ApiaryPipeline => {
                        runtime.block_on(apiary::pipeline(server.url(), concurrency, requests))
                    }
                    Contender::ApiaryRuns => runtime.block_on(apiary::runs(server.url(), concurrency, requests)),
                    Contender::ApiaryBatch => runtime.block_on(apiary::batch(server.url(), concurrency, requests)),
                    Contender::ApiaryRunsObserved => {
                        runtime.block_on(apiary::runs_observed(server.url(), concurrency, requests))
                    }
                    Contender::Aiohttp => aiohttp.as_ref().expect("aiohttp is a contender only when found").run(
                        server.url(),
                        concurrency,
                        requests,
                    ),
                }
                .with_context(|| format!("{} at c={concurrency}", contender.label()))?;
                measured.connections = before
                    .zip(server.connections_accepted())
                    .map(|(before, after)| after.saturating_sub(before));
                eprintln!(
                    "c={concurrency:<4} repeat {repeat}/{}  {:<28} {:>9.0} req/s",
                    args.repeats,
                    contender.label(),
                    measured.requests_per_second()
                );
                repeats[index].push(measured);
            }
        }
        let native_rps = median(repeats[0].clone()).requests_per_second();
        for (&contender, measured) in contenders.iter().zip(repeats) {
            let repeats_requests_per_second = measured.iter().map(Measurement::requests_per_second).collect();
            let median = median(measured);
            let requests_per_second = median.requests_per_second();
            rows.push(Row {
                contender,
                concurrency,
                effective_concurrency: match contender {
                    Contender::ApiaryBatch => apiary::effective_batch_concurrency(concurrency),
                    _ => concurrency,
                },
                requests_per_second,
                ratio_to_native: Some(requests_per_second / native_rps),
                connections_per_100k: median.connections_per_100k(),
                median,
                repeats_requests_per_second,
            });
        }
    }

    let report = Report {
        quick: args.quick,
        server: server.describe().to_string(),
        cpus: cpus.describe(),
        body_bytes: BODY_BYTES,
        repeats: args.repeats,
        concurrencies: args.concurrencies(),
        contenders,
        skipped,
        rows,
    };
    drop(server);
    println!("{}", report.markdown());
    std::fs::create_dir_all(&args.out).with_context(|| format!("failed to create {}", args.out.display()))?;
    report.write_json(&args.out.join("latest.json"))?;
    report.write_plot(&args.out.join("throughput.svg"))?;
    eprintln!("wrote {0}/latest.json and {0}/throughput.svg", args.out.display());
    Ok(())
}
