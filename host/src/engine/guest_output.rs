//! A guest's stdout and stderr: a ring buffer that keeps the last bytes written, so a chatty
//! guest that then panics still leaves its panic message for the trap report, and whose writes
//! never fail or block (a full pipe would otherwise turn the guest's next `eprint!` into a
//! second panic that hides the first). Complete lines can also be forwarded to `tracing`.

use std::collections::VecDeque;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};

use bytes::Bytes;
use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

use crate::guest_text::escape_guest_text;
use crate::log::MAX_LOG_MESSAGE_BYTES;
use crate::secrets::RunRedactor;
use crate::tenant::TenantId;

/// Which of the guest's streams an output is, for the `tracing` target of forwarded lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum GuestStream {
    /// Forwarded under the target `apiary::guest::stdout`.
    Stdout,
    /// Forwarded under the target `apiary::guest::stderr`.
    Stderr,
}

/// One guest output stream: keeps the last `capacity` bytes; cheap to clone (clones share it).
#[derive(Debug, Clone)]
pub(crate) struct GuestOutput {
    inner: Arc<Mutex<Ring>>,
}

#[derive(Debug)]
struct Ring {
    kept: VecDeque<u8>,
    capacity: usize,
    forward: Option<Forward>,
}

/// Where complete lines go, and what they are scrubbed of on the way.
#[derive(Debug)]
struct Forward {
    stream: GuestStream,
    tenant: TenantId,
    plugin: String,
    redactor: Arc<RunRedactor>,
    /// The current line so far, at most [`MAX_LOG_MESSAGE_BYTES`].
    line: Vec<u8>,
}

impl GuestOutput {
    /// An output keeping the last `capacity` bytes (at least one), forwarding nothing.
    pub(crate) fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        Self {
            inner: Arc::new(Mutex::new(Ring {
                kept: VecDeque::with_capacity(capacity),
                capacity,
                forward: None,
            })),
        }
    }

    /// The same output, also forwarding each complete line to `tracing` at debug level, scrubbed
    /// of the run's secrets and with control characters escaped.
    pub(crate) fn forward_lines(
        self,
        stream: GuestStream,
        tenant: TenantId,
        plugin: String,
        redactor: Arc<RunRedactor>,
    ) -> Self {
        self.lock().forward = Some(Forward {
            stream,
            tenant,
            plugin,
            redactor,
            line: Vec::new(),
        });
        self
    }

    /// The bytes kept: the last `capacity` bytes written, oldest first.
    pub(crate) fn contents(&self) -> Vec<u8> {
        let ring = self.lock();
        let (front, back) = ring.kept.as_slices();
        [front, back].concat()
    }

    fn write_bytes(&self, bytes: &[u8]) {
        let mut ring = self.lock();
        ring.keep(bytes);
        if let Some(forward) = &mut ring.forward {
            forward.feed(bytes);
        }
    }

    fn capacity(&self) -> usize {
        self.lock().capacity
    }

    fn lock(&self) -> MutexGuard<'_, Ring> {
        // A panic while holding the lock leaves the ring consistent (every step is a whole push or drain).
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Ring {
    fn keep(&mut self, bytes: &[u8]) {
        let bytes = &bytes[bytes.len().saturating_sub(self.capacity)..];
        let overflow = (self.kept.len() + bytes.len()).saturating_sub(self.capacity);
        self.kept.drain(..overflow);
        self.kept.extend(bytes);
    }
}

impl Forward {
    fn feed(&mut self, mut bytes: &[u8]) {
        // Skip the per-byte work entirely when nobody listens at debug level.
        let enabled = match self.stream {
            GuestStream::Stdout => tracing::enabled!(target: "apiary::guest::stdout", tracing::Level::DEBUG),
            GuestStream::Stderr => tracing::enabled!(target: "apiary::guest::stderr", tracing::Level::DEBUG),
        };
        if !enabled {
            return;
        }
        while !bytes.is_empty() {
            let room = MAX_LOG_MESSAGE_BYTES - self.line.len();
            let take = bytes.len().min(room);
            match memchr::memchr(b'\n', &bytes[..take]) {
                Some(end) => {
                    self.line.extend_from_slice(&bytes[..end]);
                    bytes = &bytes[end + 1..];
                    self.emit();
                }
                None => {
                    self.line.extend_from_slice(&bytes[..take]);
                    bytes = &bytes[take..];
                    // A line longer than a log message goes out in pieces rather than growing without bound.
                    if self.line.len() == MAX_LOG_MESSAGE_BYTES {
                        self.emit();
                    }
                }
            }
        }
    }

    fn emit(&mut self) {
        let raw = String::from_utf8_lossy(&self.line);
        let text = escape_guest_text(&self.redactor.scrub(&raw)).into_owned();
        self.line.clear();
        let (tenant, plugin) = (self.tenant.as_str(), self.plugin.as_str());
        match self.stream {
            GuestStream::Stdout => tracing::debug!(target: "apiary::guest::stdout", tenant, plugin, "{text}"),
            GuestStream::Stderr => tracing::debug!(target: "apiary::guest::stderr", tenant, plugin, "{text}"),
        }
    }
}

impl IsTerminal for GuestOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for GuestOutput {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for GuestOutput {
    async fn ready(&mut self) {}
}

impl OutputStream for GuestOutput {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.write_bytes(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        // Always the full capacity: old bytes make room, so the stream is never full. The permit
        // also bounds what `write-zeroes` may make the host allocate.
        Ok(self.capacity())
    }
}

impl AsyncWrite for GuestOutput {
    fn poll_write(self: Pin<&mut Self>, _cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        self.write_bytes(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(output: &GuestOutput, bytes: &[u8]) {
        let mut stream = output.p2_stream();
        assert_eq!(
            stream.check_write().unwrap(),
            output.capacity(),
            "always the full capacity"
        );
        stream.write(Bytes::copy_from_slice(bytes)).unwrap();
    }

    #[test]
    fn wrap_around_keeps_exactly_the_last_bytes() {
        let output = GuestOutput::new(10);
        write(&output, b"0123");
        assert_eq!(output.contents(), b"0123");
        write(&output, b"456789ab");
        assert_eq!(output.contents(), b"23456789ab");
        write(&output, b"cd");
        assert_eq!(output.contents(), b"456789abcd");
        // One write longer than the ring keeps its own last bytes.
        write(&output, b"ABCDEFGHIJKLMNOP");
        assert_eq!(output.contents(), b"GHIJKLMNOP");
    }

    #[test]
    fn a_megabyte_of_writes_never_fails_and_keeps_the_tail() {
        let output = GuestOutput::new(16 * 1024);
        let mut all = Vec::new();
        for i in 0..(1024 * 1024 / 64) {
            let chunk = format!("{i:063}\n");
            write(&output, chunk.as_bytes());
            all.extend_from_slice(chunk.as_bytes());
        }
        assert_eq!(output.contents(), &all[all.len() - 16 * 1024..]);
    }

    /// Captures what a `tracing` subscriber formats, for checking forwarded lines.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn complete_lines_are_forwarded_scrubbed_and_escaped() {
        let redactor = Arc::new(RunRedactor::default());
        redactor.add(&secrecy::SecretString::from("hunter2-hunter2"));
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::DEBUG)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            let output =
                GuestOutput::new(64).forward_lines(GuestStream::Stderr, TenantId::default(), "chatty".into(), redactor);
            write(&output, b"token=hunter2-");
            write(&output, b"hunter2 \x1b[2J\x1b]0;x\x07\nsecond ");
            write(&output, b"line\nno newline yet");
        });
        let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert!(
            lines[0].contains("apiary::guest::stderr") && lines[0].contains("plugin=\"chatty\""),
            "{text}"
        );
        assert!(
            lines[0].contains("token=[REDACTED] \\u{1b}[2J\\u{1b}]0;x\\u{7}"),
            "{text}"
        );
        assert!(lines[1].contains("apiary::guest::stderr: second line "), "{text}");
        assert!(!text.contains("hunter2") && !text.contains('\x1b'), "{text}");
    }

    #[tokio::test]
    async fn the_async_writer_shares_the_ring() {
        use tokio::io::AsyncWriteExt as _;
        let output = GuestOutput::new(4);
        let mut writer = Pin::from(output.async_stream());
        writer.write_all(b"hello").await.unwrap();
        assert_eq!(output.contents(), b"ello");
    }
}
