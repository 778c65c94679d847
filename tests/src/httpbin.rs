//! httpbin (PyPI) served by gunicorn on 127.0.0.1: a real HTTP peer that nobody here wrote.
//!
//! The first start installs the versions pinned in `tests/httpbin/requirements.txt` into a venv
//! under the given cache directory (the tests pass `$CARGO_TARGET_TMPDIR`); later starts reuse
//! it and need no network. Without `python3` the tests using it are skipped with a message,
//! except under `CI`, where that is a failure.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex, Weak, mpsc};
use std::time::{Duration, Instant};

/// The pinned packages; the venv is rebuilt whenever this text (or the Python) changes.
const REQUIREMENTS: &str = include_str!("../httpbin/requirements.txt");
/// gunicorn's settings: a free port printed on stdout, and a stop when stdin closes.
const GUNICORN_CONF: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/httpbin/gunicorn.conf.py");
/// How long gunicorn may take to listen and answer.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long gunicorn may take to stop once asked before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(5);

/// One gunicorn serving httpbin, shared by the tests running at the same time and stopped when
/// the last of them drops it (killed by its process id if it does not stop promptly).
#[derive(Debug)]
pub struct Httpbin {
    addr: SocketAddr,
    child: Child,
    /// gunicorn's stdin, held open: it stops when it closes, so it does not outlive this
    /// process even when the process dies without dropping it.
    stdin: Option<ChildStdin>,
}

/// The running server, while some test holds it.
static SHARED: Mutex<Weak<Httpbin>> = Mutex::new(Weak::new());

impl Httpbin {
    /// The running httpbin, started (and first installed into `cache_dir/venv`) if none is.
    /// `None` when `python3` is missing or, outside `CI`, the first install failed (e.g.
    /// offline): the caller skips its test. A server that is installed but does not start is
    /// a failure.
    ///
    /// # Panics
    /// Under `CI` without `python3` or when the install fails, and whenever gunicorn does not
    /// start and answer within 30 s.
    pub fn start(cache_dir: &Path) -> Option<Arc<Httpbin>> {
        let mut shared = SHARED.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(running) = shared.upgrade() {
            return Some(running);
        }
        let venv = match install(cache_dir) {
            Ok(venv) => venv,
            Err(reason) if std::env::var_os("CI").is_some() => panic!("httpbin: {reason}"),
            Err(reason) => {
                // Straight to stderr, past the test harness's capture, so the skip is seen.
                let _ = writeln!(std::io::stderr(), "SKIPPED, httpbin unavailable: {reason}");
                return None;
            }
        };
        let server = Arc::new(launch(&venv, cache_dir));
        *shared = Arc::downgrade(&server);
        Some(server)
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for Httpbin {
    fn drop(&mut self) {
        // Closing stdin asks gunicorn for a quick shutdown, in which it reaps its worker; one
        // that has not exited after STOP_TIMEOUT is killed by its process id.
        drop(self.stdin.take());
        let asked = Instant::now();
        while asked.elapsed() < STOP_TIMEOUT {
            if !matches!(self.child.try_wait(), Ok(None)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The venv holding the pinned packages, created or updated under `cache_dir` if needed.
/// A file lock keeps two test processes sharing the target directory from installing at once.
fn install(cache_dir: &Path) -> Result<PathBuf, String> {
    let python = Command::new("python3")
        .arg("--version")
        .output()
        .map_err(|e| format!("python3 is not available ({e}); install Python 3 with venv and pip"))?;
    if !python.status.success() {
        return Err(format!("`python3 --version` failed: {}", text(&python.stderr)));
    }
    let stamp_text = format!("{}{REQUIREMENTS}", text(&python.stdout));
    std::fs::create_dir_all(cache_dir).map_err(|e| format!("creating {}: {e}", cache_dir.display()))?;
    let lock = File::create(cache_dir.join("install.lock")).map_err(|e| format!("install lock: {e}"))?;
    lock.lock().map_err(|e| format!("install lock: {e}"))?;
    let venv = cache_dir.join("venv");
    let stamp = venv.join("apiary-requirements.txt");
    if std::fs::read_to_string(&stamp).is_ok_and(|s| s == stamp_text) && venv.join("bin/gunicorn").exists() {
        return Ok(venv);
    }
    let _ = std::fs::remove_dir_all(&venv);
    run(Command::new("python3").arg("-m").arg("venv").arg(&venv))?;
    let requirements = cache_dir.join("requirements.txt");
    std::fs::write(&requirements, REQUIREMENTS).map_err(|e| format!("writing requirements: {e}"))?;
    // Wheels only: every pin has one for CPython 3.8+ on Linux, so no compiler is needed.
    let pip = [
        "-m",
        "pip",
        "install",
        "--disable-pip-version-check",
        "--no-input",
        "-q",
    ];
    run(Command::new(venv.join("bin/python"))
        .args(pip)
        .args(["--only-binary", ":all:", "-r"])
        .arg(&requirements))?;
    std::fs::write(&stamp, stamp_text).map_err(|e| format!("writing {}: {e}", stamp.display()))?;
    Ok(venv)
}

/// Runs `command`, its output in the error if it fails.
fn run(command: &mut Command) -> Result<(), String> {
    let output = command.output().map_err(|e| format!("running {command:?}: {e}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{command:?} failed ({}):\n{}{}",
            output.status,
            text(&output.stdout),
            text(&output.stderr)
        ))
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Starts gunicorn from `venv` and waits until httpbin answers. Its log (stderr) is appended
/// to `cache_dir/gunicorn.log`.
fn launch(venv: &Path, cache_dir: &Path) -> Httpbin {
    let log_path = cache_dir.join("gunicorn.log");
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .unwrap_or_else(|e| panic!("opening {}: {e}", log_path.display()));
    let mut child = Command::new(venv.join("bin/gunicorn"))
        .args(["--config", GUNICORN_CONF, "httpbin:app"])
        .current_dir(cache_dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .unwrap_or_else(|e| panic!("starting gunicorn: {e}"));
    let stdin = child.stdin.take().unwrap();
    let stdout = child.stdout.take().unwrap();
    let (port_tx, port_rx) = mpsc::channel();
    std::thread::spawn(move || {
        // Reads to the end, so gunicorn never blocks on a full pipe.
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(port) = line.strip_prefix("httpbin-port ") {
                let _ = port_tx.send(port.trim().parse::<u16>().ok());
            }
        }
    });
    let failed = |child: &mut Child, why: &str| -> ! {
        let _ = child.kill();
        let _ = child.wait();
        let log = std::fs::read_to_string(&log_path).unwrap_or_default();
        let tail: String = log
            .lines()
            .rev()
            .take(20)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect::<Vec<_>>()
            .join("\n");
        panic!(
            "httpbin did not start: {why}; the end of {}:\n{tail}",
            log_path.display()
        );
    };
    let port = match port_rx.recv_timeout(START_TIMEOUT) {
        Ok(Some(port)) => port,
        Ok(None) => failed(&mut child, "it printed no valid port"),
        Err(_) => failed(&mut child, "it printed no port"),
    };
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let started = Instant::now();
    while !answers(addr) {
        if started.elapsed() > START_TIMEOUT {
            failed(&mut child, "it does not answer GET /status/200");
        }
        if let Ok(Some(status)) = child.try_wait() {
            failed(&mut child, &format!("it exited ({status})"));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Httpbin {
        addr,
        child,
        stdin: Some(stdin),
    }
}

/// Whether httpbin at `addr` answers `GET /status/200` with a 200.
fn answers(addr: SocketAddr) -> bool {
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_secs(1)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    if stream
        .write_all(b"GET /status/200 HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    response.starts_with(b"HTTP/1.1 200") || response.starts_with(b"HTTP/1.0 200")
}
