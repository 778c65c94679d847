//! The Python reference: aiohttp, the usual choice for concurrent HTTP in Python, when it is
//! installed. The script is `bench/aiohttp_client.py`, compiled in and written to a temporary
//! directory so the binary runs from anywhere.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context, ensure};
use serde::Deserialize;

use crate::measure::{Latency, Measurement};

const SCRIPT: &str = include_str!("../aiohttp_client.py");

/// The aiohttp client script, ready to run.
#[derive(Debug)]
pub struct AiohttpClient {
    _dir: tempfile::TempDir,
    script: PathBuf,
    /// `taskset -c` CPUs for the Python process, so it stays off the server's CPU.
    cpus: Option<String>,
}

/// What the script prints.
#[derive(Debug, Deserialize)]
struct ScriptOutput {
    requests: u64,
    elapsed_s: f64,
    #[serde(flatten)]
    latency: Latency,
}

impl AiohttpClient {
    /// The client when `python3 -c "import aiohttp"` works, else `None`.
    ///
    /// # Errors
    /// When the script cannot be written to a temporary directory.
    pub fn find(cpus: Option<String>) -> anyhow::Result<Option<Self>> {
        let importable = Command::new("python3")
            .args(["-c", "import aiohttp"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|status| status.success());
        if !importable {
            return Ok(None);
        }
        let dir = tempfile::tempdir()?;
        let script = dir.path().join("aiohttp_client.py");
        std::fs::write(&script, SCRIPT)?;
        let cpus = cpus.filter(|_| crate::server::on_path("taskset"));
        Ok(Some(Self {
            _dir: dir,
            script,
            cpus,
        }))
    }

    /// Sends `requests` GETs to `url` from `concurrency` tasks and reads the script's report.
    ///
    /// # Errors
    /// When the script fails (a failed request fails it) or prints something unexpected.
    pub fn run(&self, url: &str, concurrency: usize, requests: u64) -> anyhow::Result<Measurement> {
        let mut command = match &self.cpus {
            Some(cpus) => {
                let mut command = Command::new("taskset");
                command.args(["-c", cpus, "python3"]);
                command
            }
            None => Command::new("python3"),
        };
        let output = command
            .arg(&self.script)
            .args([url, &concurrency.to_string(), &requests.to_string()])
            .output()
            .context("running python3")?;
        ensure!(
            output.status.success(),
            "the aiohttp client failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let report: ScriptOutput =
            serde_json::from_slice(&output.stdout).context("reading the aiohttp client's report")?;
        Ok(Measurement {
            requests: report.requests,
            elapsed: Duration::from_secs_f64(report.elapsed_s),
            latency: Some(report.latency),
            connections: None,
        })
    }
}
