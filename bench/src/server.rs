//! The loopback server every contender calls: nginx when it is installed (a server none of the
//! clients share code with), else a built-in hyper server on a thread of its own.

use std::convert::Infallible;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bytes::Bytes;
use core_affinity::CoreId;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::sync::oneshot;

/// Size of the JSON body every request gets: a small API response.
pub const BODY_BYTES: usize = 1024;
/// Path of nginx's `stub_status` page, which counts accepted connections.
const NGINX_STATUS_PATH: &str = "/apiary-bench-status";
/// How long nginx may take to start listening.
const NGINX_START_TIMEOUT: Duration = Duration::from_secs(10);

/// Which server to start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ServerChoice {
    /// nginx when it is on PATH, else the built-in server.
    Auto,
    /// nginx, or fail.
    Nginx,
    /// The built-in hyper server.
    BuiltIn,
}

/// A running loopback server; it stops when dropped.
#[derive(Debug)]
pub struct LoopbackServer {
    url: String,
    description: String,
    kind: ServerKind,
}

#[derive(Debug)]
enum ServerKind {
    Nginx(NginxServer),
    BuiltIn(BuiltInServer),
}

impl LoopbackServer {
    /// Starts the server `choice` asks for, pinned to `cpu` when given.
    ///
    /// # Errors
    /// When nginx was asked for and is missing or fails to start, or no port can be bound.
    pub fn start(choice: ServerChoice, cpu: Option<CoreId>) -> anyhow::Result<Self> {
        let nginx_found = on_path("nginx");
        match choice {
            ServerChoice::Nginx if !nginx_found => bail!("--server nginx: nginx is not on PATH"),
            ServerChoice::Nginx | ServerChoice::Auto if nginx_found => {
                let nginx = NginxServer::start(cpu).context("failed to start nginx")?;
                Ok(Self {
                    url: format!("http://{}/", nginx.addr),
                    description: nginx.describe(),
                    kind: ServerKind::Nginx(nginx),
                })
            }
            _ => {
                let server = BuiltInServer::start(cpu).context("failed to start the built-in server")?;
                Ok(Self {
                    url: format!("http://{}/", server.addr),
                    description: server.describe(),
                    kind: ServerKind::BuiltIn(server),
                })
            }
        }
    }

    /// The URL every request goes to, e.g. `http://127.0.0.1:41234/`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// What the server is and where it runs, for the report.
    pub fn describe(&self) -> &str {
        &self.description
    }

    /// Connections accepted so far by the server, not counting its own status probes; `None`
    /// when this server cannot tell (an nginx built without `stub_status`).
    pub fn connections_accepted(&self) -> Option<u64> {
        match &self.kind {
            ServerKind::Nginx(nginx) => nginx.connections_accepted(),
            ServerKind::BuiltIn(server) => Some(server.accepted.load(Ordering::Relaxed)),
        }
    }
}

/// A JSON document of exactly [`BODY_BYTES`] bytes, free of characters nginx would read in a
/// quoted string (`'`, `$`, `\`).
pub fn json_body() -> String {
    let mut items = Vec::new();
    let closing = "],\"padding\":\"\"}";
    loop {
        let id = items.len();
        let item = format!("{{\"id\":{id},\"name\":\"item-{id:03}\",\"done\":{}}}", id % 2 == 0);
        if "{\"items\":[".len() + items.iter().map(|i: &String| i.len() + 1).sum::<usize>() + item.len() + closing.len()
            > BODY_BYTES
        {
            break;
        }
        items.push(item);
    }
    let mut body = format!("{{\"items\":[{}],\"padding\":\"", items.join(","));
    body.push_str(&"x".repeat(BODY_BYTES - body.len() - 2));
    body.push_str("\"}");
    body
}

/// Whether `program` can be found on PATH.
pub fn on_path(program: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()))
}

/// nginx as a child process, configured in a temporary directory.
#[derive(Debug)]
struct NginxServer {
    child: Child,
    dir: tempfile::TempDir,
    addr: SocketAddr,
    pinned: bool,
    /// Whether the `stub_status` page is configured (nginx was built with its module).
    has_status: bool,
    /// Connections our own status probes opened, subtracted from nginx's count.
    probes: AtomicU64,
}

impl NginxServer {
    fn start(cpu: Option<CoreId>) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        // nginx cannot report the port it got for port 0, so the port is taken from a listener
        // bound and closed just before; another process grabbing it in between fails the start.
        let addr = TcpListener::bind("127.0.0.1:0")?.local_addr()?;
        let has_status = nginx_has_stub_status();
        let config = nginx_config(dir.path(), addr, has_status);
        let config_path = dir.path().join("nginx.conf");
        std::fs::write(&config_path, config)?;
        let pinned = cpu.is_some() && on_path("taskset");
        let mut command = match cpu {
            Some(cpu) if pinned => {
                let mut command = Command::new("taskset");
                command.args(["-c", &cpu.id.to_string(), "nginx"]);
                command
            }
            _ => Command::new("nginx"),
        };
        command
            .arg("-p")
            .arg(dir.path())
            .arg("-c")
            .arg(&config_path)
            .arg("-e")
            .arg(dir.path().join("error.log"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let child = command.spawn().context("running nginx")?;
        let mut server = Self {
            child,
            dir,
            addr,
            pinned,
            has_status,
            probes: AtomicU64::new(0),
        };
        server.wait_until_listening()?;
        Ok(server)
    }

    fn wait_until_listening(&mut self) -> anyhow::Result<()> {
        let started = Instant::now();
        while TcpStream::connect(self.addr).is_err() {
            if let Some(status) = self.child.try_wait()? {
                let log = std::fs::read_to_string(self.dir.path().join("error.log")).unwrap_or_default();
                bail!("nginx exited with {status}: {log}");
            }
            if started.elapsed() > NGINX_START_TIMEOUT {
                bail!("nginx did not listen on {} within {NGINX_START_TIMEOUT:?}", self.addr);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        // The probe above was a connection too.
        self.probes.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    fn describe(&self) -> String {
        let version = Command::new("nginx")
            .arg("-v")
            .output()
            .map(|out| {
                String::from_utf8_lossy(&out.stderr)
                    .trim()
                    .replace("nginx version: ", "")
            })
            .unwrap_or_else(|_| "nginx".into());
        let pinning = if self.pinned {
            "pinned to the server CPU with taskset"
        } else {
            "not pinned"
        };
        format!("{version}, 1 worker, {pinning}")
    }

    /// nginx's `accepts` counter minus the probes' own connections (this probe's included).
    fn connections_accepted(&self) -> Option<u64> {
        if !self.has_status {
            return None;
        }
        let probes = self.probes.fetch_add(1, Ordering::Relaxed) + 1;
        let mut stream = TcpStream::connect(self.addr).ok()?;
        let request = format!("GET {NGINX_STATUS_PATH} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n");
        stream.write_all(request.as_bytes()).ok()?;
        let mut response = String::new();
        stream.read_to_string(&mut response).ok()?;
        parse_stub_status_accepts(&response).map(|accepts| accepts.saturating_sub(probes))
    }
}

impl Drop for NginxServer {
    fn drop(&mut self) {
        // `-s stop` signals the master, which stops its worker too; killing the master alone
        // would leave the worker serving.
        let stopped = Command::new("nginx")
            .arg("-p")
            .arg(self.dir.path())
            .arg("-c")
            .arg(self.dir.path().join("nginx.conf"))
            .args(["-s", "stop"])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|status| status.success());
        if !stopped {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

fn nginx_has_stub_status() -> bool {
    Command::new("nginx")
        .arg("-V")
        .output()
        .is_ok_and(|out| String::from_utf8_lossy(&out.stderr).contains("http_stub_status_module"))
}

fn nginx_config(dir: &Path, addr: SocketAddr, has_status: bool) -> String {
    let dir = dir.display();
    let status = if has_status {
        format!("location = {NGINX_STATUS_PATH} {{ stub_status; }}")
    } else {
        String::new()
    };
    let body = json_body();
    format!(
        "worker_processes 1;
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    keepalive_requests 1000000;
    keepalive_timeout 300s;
    client_body_temp_path {dir}/client_body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    server {{
        listen {addr};
        {status}
        location / {{
            default_type application/json;
            return 200 '{body}';
        }}
    }}
}}
"
    )
}

/// The `accepts` figure of a `stub_status` page:
/// `Active connections: 1\nserver accepts handled requests\n 16 16 31\n...`.
fn parse_stub_status_accepts(response: &str) -> Option<u64> {
    let (_, page) = response.split_once("\r\n\r\n")?;
    let mut lines = page.lines().skip_while(|line| !line.contains("accepts"));
    lines.next()?;
    lines.next()?.split_whitespace().next()?.parse().ok()
}

/// A hyper server (HTTP/1.1 and HTTP/2, keep-alive) on a single-threaded tokio runtime in a
/// thread of its own, counting the connections it accepts.
#[derive(Debug)]
struct BuiltInServer {
    addr: SocketAddr,
    accepted: Arc<AtomicU64>,
    pinned: bool,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl BuiltInServer {
    fn start(cpu: Option<CoreId>) -> anyhow::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let accepted = Arc::new(AtomicU64::new(0));
        let (shutdown, stop) = oneshot::channel();
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        let counter = accepted.clone();
        let body = Bytes::from(json_body());
        let thread = std::thread::Builder::new()
            .name("loopback-server".into())
            .spawn(move || {
                if let Some(cpu) = cpu {
                    core_affinity::set_for_current(cpu);
                }
                runtime.block_on(serve(listener, counter, body, stop));
            })?;
        Ok(Self {
            addr,
            accepted,
            pinned: cpu.is_some(),
            shutdown: Some(shutdown),
            thread: Some(thread),
        })
    }

    fn describe(&self) -> String {
        let pinning = if self.pinned {
            "pinned to the server CPU"
        } else {
            "not pinned"
        };
        format!("built-in hyper-util server (HTTP/1.1 + HTTP/2, one thread), {pinning}")
    }
}

impl Drop for BuiltInServer {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

async fn serve(listener: TcpListener, accepted: Arc<AtomicU64>, body: Bytes, mut stop: oneshot::Receiver<()>) {
    let listener = tokio::net::TcpListener::from_std(listener).expect("a non-blocking std listener");
    loop {
        let stream = tokio::select! {
            _ = &mut stop => return,
            accept = listener.accept() => match accept {
                Ok((stream, _)) => stream,
                Err(_) => continue,
            },
        };
        accepted.fetch_add(1, Ordering::Relaxed);
        let _ = stream.set_nodelay(true);
        let body = body.clone();
        tokio::spawn(async move {
            let service = service_fn(move |_request: http::Request<hyper::body::Incoming>| {
                let response = http::Response::builder()
                    .header(http::header::CONTENT_TYPE, "application/json")
                    .body(Full::new(body.clone()))
                    .expect("a static response");
                async move { Ok::<_, Infallible>(response) }
            });
            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_body_is_one_kilobyte_of_json_nginx_can_quote() {
        let body = json_body();
        assert_eq!(body.len(), BODY_BYTES);
        serde_json::from_str::<serde_json::Value>(&body).unwrap();
        assert!(!body.contains(['\'', '$', '\\']));
    }

    #[test]
    fn the_accepts_count_is_read_from_a_stub_status_page() {
        let page = "HTTP/1.1 200 OK\r\nServer: nginx\r\n\r\nActive connections: 1 \nserver accepts handled requests\n 16 16 31 \nReading: 0 Writing: 1 Waiting: 0 \n";
        assert_eq!(parse_stub_status_accepts(page), Some(16));
    }
}
