//! The results as Markdown tables, JSON and an SVG plot. Every compared figure is a ratio to
//! the native client measured in the same process run: the machine is shared and noisy, so
//! absolute numbers from different runs do not compare.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::Context;
use plotters::prelude::*;
use serde::Serialize;

use crate::measure::Measurement;

/// One row of the tables: a client and the way it is driven.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Contender {
    /// A plain hyper-util client, c tasks.
    Native,
    /// The host's egress pipeline alone, c tasks, no plugin.
    ApiaryPipeline,
    /// c concurrent plugin runs, each sending one request at a time.
    ApiaryRuns,
    /// One plugin run, one streaming batch at a time with c in flight.
    ApiaryBatch,
    /// As `ApiaryRuns`, with the host's info-level logs written to a file and every response
    /// body emitted as a record to an NDJSON file: the CLI's default cost.
    ApiaryRunsObserved,
    /// aiohttp, c tasks on one session.
    Aiohttp,
}

impl Contender {
    /// The row label, e.g. `apiary (c runs)`.
    pub fn label(self) -> &'static str {
        match self {
            Contender::Native => "native hyper-util (c tasks)",
            Contender::ApiaryPipeline => "apiary pipeline, no plugin",
            Contender::ApiaryRuns => "apiary (c runs)",
            Contender::ApiaryBatch => "apiary (1 run, batch)",
            Contender::ApiaryRunsObserved => "apiary (c runs, logs + records)",
            Contender::Aiohttp => "aiohttp (c tasks)",
        }
    }
}

/// The median of one contender's repeats at one concurrency.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// Which contender.
    pub contender: Contender,
    /// Concurrency asked for.
    pub concurrency: usize,
    /// Requests in flight at most (below `concurrency` only for a capped batch).
    pub effective_concurrency: usize,
    /// The median repeat.
    #[serde(flatten)]
    pub median: Measurement,
    /// Its requests per second.
    pub requests_per_second: f64,
    /// Its throughput over the native client's at the same concurrency.
    pub ratio_to_native: Option<f64>,
    /// Connections opened per 100,000 requests in the median repeat.
    pub connections_per_100k: Option<f64>,
    /// Requests per second of every repeat, in the order they ran.
    pub repeats_requests_per_second: Vec<f64>,
}

/// Everything one invocation measured.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Whether `--quick` was given.
    pub quick: bool,
    /// The server, e.g. `built-in hyper-util server (...)`.
    pub server: String,
    /// Where the server and clients ran.
    pub cpus: String,
    /// Response body size.
    pub body_bytes: usize,
    /// Repeats per cell (the median is kept).
    pub repeats: usize,
    /// Concurrencies measured, ascending.
    pub concurrencies: Vec<usize>,
    /// Contenders measured, in table order.
    pub contenders: Vec<Contender>,
    /// Contenders skipped and why, e.g. `aiohttp: python3 cannot import aiohttp`.
    pub skipped: Vec<String>,
    /// One row per contender and concurrency.
    pub rows: Vec<Row>,
}

impl Report {
    fn row(&self, contender: Contender, concurrency: usize) -> Option<&Row> {
        self.rows
            .iter()
            .find(|row| row.contender == contender && row.concurrency == concurrency)
    }

    /// The two tables and their notes, as Markdown.
    pub fn markdown(&self) -> String {
        let mut out = String::new();
        let header = |title: &str| {
            let mut line = format!("| {title} |");
            let mut rule = String::from("|---|");
            for c in &self.concurrencies {
                let _ = write!(line, " c={c} |");
                rule.push_str("---:|");
            }
            format!("{line}\n{rule}\n")
        };
        let _ = writeln!(out, "Server: {}; {}.", self.server, self.cpus);
        let _ = writeln!(
            out,
            "{} B JSON body; median of {} repeats; ratios are to native at the same c.\n",
            self.body_bytes, self.repeats
        );
        let _ = writeln!(out, "**Throughput, req/s (ratio to native)**\n");
        out.push_str(&header("client (mode)"));
        for &contender in &self.contenders {
            let _ = write!(out, "| {} |", contender.label());
            for &c in &self.concurrencies {
                let cell = self.row(contender, c).map_or("—".to_string(), |row| {
                    let capped = if row.effective_concurrency < c {
                        format!(" [{} in flight]", row.effective_concurrency)
                    } else {
                        String::new()
                    };
                    format!(
                        "{:.0} ({}){capped}",
                        row.requests_per_second,
                        ratio(row.ratio_to_native)
                    )
                });
                let _ = write!(out, " {cell} |");
            }
            out.push('\n');
        }
        let _ = writeln!(
            out,
            "\n**Latency p50 / p99 in µs (ratio to native); connections opened per 100k requests**\n"
        );
        out.push_str(&header("client (mode)"));
        for &contender in &self.contenders {
            let _ = write!(out, "| {} |", contender.label());
            for &c in &self.concurrencies {
                let native = self.row(Contender::Native, c).and_then(|row| row.median.latency);
                let cell = self.row(contender, c).map_or("—".to_string(), |row| {
                    let latency = match (row.median.latency, native) {
                        (Some(own), Some(native)) => format!(
                            "{:.0} ({}) / {:.0} ({})",
                            own.p50_us,
                            ratio(Some(own.p50_us / native.p50_us)),
                            own.p99_us,
                            ratio(Some(own.p99_us / native.p99_us)),
                        ),
                        (Some(own), None) => format!("{:.0} / {:.0}", own.p50_us, own.p99_us),
                        (None, _) => "n/a¹".to_string(),
                    };
                    let connections = row
                        .connections_per_100k
                        .map_or("n/a²".to_string(), |per_100k| format!("{per_100k:.1}"));
                    format!("{latency}; {connections} conn")
                });
                let _ = write!(out, " {cell} |");
            }
            out.push('\n');
        }
        out.push('\n');
        if self.rows.iter().any(|row| row.median.latency.is_none()) {
            let _ = writeln!(
                out,
                "¹ Per-request latency happens inside the guest and is not observable from the host; \
                 apiary rows report throughput only.  "
            );
        }
        if self.rows.iter().any(|row| row.connections_per_100k.is_none()) {
            let _ = writeln!(
                out,
                "² The server cannot count connections (nginx without stub_status); use `--server built-in`."
            );
        }
        if !self.skipped.is_empty() {
            let _ = writeln!(out, "\nSkipped: {}.", self.skipped.join("; "));
        }
        out
    }

    /// Writes the report as pretty JSON to `path`.
    ///
    /// # Errors
    /// When the file cannot be written.
    pub fn write_json(&self, path: &Path) -> anyhow::Result<()> {
        let text = serde_json::to_string_pretty(self)?;
        std::fs::write(path, text + "\n").with_context(|| format!("failed to write {}", path.display()))
    }

    /// Plots req/s against concurrency (log scale), one line per contender, as SVG at `path`.
    ///
    /// # Errors
    /// When the file cannot be written.
    pub fn write_plot(&self, path: &Path) -> anyhow::Result<()> {
        self.draw_plot(path)
            .map_err(|error| anyhow::anyhow!("failed to draw {}: {error}", path.display()))
    }

    fn draw_plot(&self, path: &Path) -> Result<(), Box<dyn std::error::Error>> {
        let root = SVGBackend::new(path, (900, 560)).into_drawing_area();
        root.fill(&WHITE)?;
        let max_c = self.concurrencies.iter().copied().max().unwrap_or(1) as f64;
        let max_rps = self.rows.iter().map(|row| row.requests_per_second).fold(1.0, f64::max);
        let mut chart = ChartBuilder::on(&root)
            .caption(
                format!("Requests per second, loopback, {} B JSON", self.body_bytes),
                ("sans-serif", 22),
            )
            .margin(16)
            .x_label_area_size(44)
            .y_label_area_size(72)
            .build_cartesian_2d((0.8f64..max_c * 1.25).log_scale(), 0f64..max_rps * 1.1)?;
        chart
            .configure_mesh()
            .x_desc("concurrency (log scale)")
            .y_desc("req/s")
            .x_label_formatter(&|v| format!("{v:.0}"))
            .y_label_formatter(&|v| format!("{v:.0}"))
            .draw()?;
        for (index, &contender) in self.contenders.iter().enumerate() {
            let color = Palette99::pick(index).to_rgba();
            let points: Vec<(f64, f64)> = self
                .rows
                .iter()
                .filter(|row| row.contender == contender)
                .map(|row| (row.concurrency as f64, row.requests_per_second))
                .collect();
            chart
                .draw_series(LineSeries::new(points, color.stroke_width(2)).point_size(4))?
                .label(contender.label())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()?;
        root.present()?;
        Ok(())
    }
}

fn ratio(value: Option<f64>) -> String {
    value.map_or("—".to_string(), |ratio| format!("{ratio:.2}×"))
}
