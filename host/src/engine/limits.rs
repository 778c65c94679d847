//! Per-run resource limits: a memory limiter that explains itself, and the epoch ticker that
//! lets a spinning guest be interrupted.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use wasmtime::{Engine, ResourceLimiter};

/// How often the engine's epoch advances. A running guest yields to the host at every tick,
/// so this bounds how late a deadline is noticed.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Refuses linear-memory growth past the run's limit, trapping with a message that names the
/// limit rather than letting the guest's allocator abort with a generic error.
#[derive(Debug)]
pub(crate) struct MemoryLimiter {
    limit_bytes: usize,
    pub(crate) exceeded: bool,
}

impl MemoryLimiter {
    pub(crate) fn new(limit_mib: u32) -> Self {
        Self {
            limit_bytes: limit_mib as usize * 1024 * 1024,
            exceeded: false,
        }
    }
}

/// The trap raised when a guest asks for more memory than its limit.
#[derive(Debug, thiserror::Error)]
#[error("memory limit of {limit_mib} MiB exceeded (the plugin asked for {desired_mib} MiB)")]
pub struct MemoryLimitExceeded {
    /// The limit.
    pub limit_mib: u64,
    /// What the plugin asked for.
    pub desired_mib: u64,
}

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        if desired > self.limit_bytes {
            self.exceeded = true;
            return Err(wasmtime::Error::new(MemoryLimitExceeded {
                limit_mib: (self.limit_bytes / (1024 * 1024)) as u64,
                desired_mib: desired.div_ceil(1024 * 1024) as u64,
            }));
        }
        Ok(true)
    }

    fn table_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        // Tables hold function references; a million is far beyond any real plugin.
        Ok(desired <= 1_000_000)
    }
}

/// Advances the engine's epoch every [`EPOCH_TICK`] on a background thread until dropped.
#[derive(Debug)]
pub(crate) struct EpochTicker {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl EpochTicker {
    pub(crate) fn start(engine: Engine) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("apiary-epoch".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    std::thread::sleep(EPOCH_TICK);
                    engine.increment_epoch();
                }
            })
            .expect("spawning the epoch thread");
        Self {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
