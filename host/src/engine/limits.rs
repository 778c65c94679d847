//! Per-run resource limits: one budget across every linear memory and table of a run, with a
//! trap that names the limit, and the epoch ticker that lets a spinning guest be interrupted.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use wasmtime::{Engine, ResourceLimiter};

/// How often the engine's epoch advances. A running guest yields to the host at every tick,
/// so this bounds how late a deadline is noticed.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Core instances one run may create. A Rust component has a handful (its module, the WASI
/// adapter, shims); interpreters built with componentize-py link a few dozen.
pub const MAX_CORE_INSTANCES_PER_RUN: u32 = 64;
/// Linear memories one run may create: the component's own plus an adapter's or two.
pub const MAX_MEMORIES_PER_RUN: u32 = 4;
/// Tables one run may create.
pub const MAX_TABLES_PER_RUN: u32 = 64;
/// What one table element costs against the run's memory budget: wasmtime stores a pointer per
/// element.
const TABLE_ELEMENT_BYTES: usize = size_of::<usize>();

/// Holds a run's memories and tables, together, to one byte budget: a component with many
/// core instances, each with a memory just under the limit, cannot add up to more than it.
#[derive(Debug)]
pub(crate) struct RunLimiter {
    budget_bytes: usize,
    used_bytes: usize,
    /// The last growth allowed, undone if the engine then fails to grow.
    pending_bytes: usize,
    pub(crate) exceeded: bool,
}

impl RunLimiter {
    pub(crate) fn new(limit_mib: u32) -> Self {
        Self {
            budget_bytes: limit_mib as usize * 1024 * 1024,
            used_bytes: 0,
            pending_bytes: 0,
            exceeded: false,
        }
    }

    /// Books `grow_bytes` more, or fails with the trap that names the limit.
    fn grow(&mut self, grow_bytes: usize) -> wasmtime::Result<bool> {
        let total = self.used_bytes.saturating_add(grow_bytes);
        if total > self.budget_bytes {
            self.exceeded = true;
            return Err(wasmtime::Error::new(MemoryLimitExceeded {
                limit_mib: (self.budget_bytes / (1024 * 1024)) as u64,
                desired_mib: total.div_ceil(1024 * 1024) as u64,
            }));
        }
        self.used_bytes = total;
        self.pending_bytes = grow_bytes;
        Ok(true)
    }

    fn undo_last_growth(&mut self) {
        self.used_bytes -= std::mem::take(&mut self.pending_bytes);
    }
}

/// The trap raised when a run asks for more memory than its limit.
#[derive(Debug, thiserror::Error)]
#[error("memory limit of {limit_mib} MiB exceeded (the run's memories and tables would take {desired_mib} MiB)")]
pub struct MemoryLimitExceeded {
    /// The limit.
    pub limit_mib: u64,
    /// What the run's memories and tables would take together.
    pub desired_mib: u64,
}

impl ResourceLimiter for RunLimiter {
    fn memory_growing(&mut self, current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        self.grow(desired.saturating_sub(current))
    }

    fn memory_grow_failed(&mut self, _error: wasmtime::Error) -> wasmtime::Result<()> {
        self.undo_last_growth();
        Ok(())
    }

    fn table_growing(&mut self, current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        self.grow(desired.saturating_sub(current).saturating_mul(TABLE_ELEMENT_BYTES))
    }

    fn table_grow_failed(&mut self, _error: wasmtime::Error) -> wasmtime::Result<()> {
        self.undo_last_growth();
        Ok(())
    }

    fn instances(&self) -> usize {
        MAX_CORE_INSTANCES_PER_RUN as usize
    }

    fn tables(&self) -> usize {
        MAX_TABLES_PER_RUN as usize
    }

    fn memories(&self) -> usize {
        MAX_MEMORIES_PER_RUN as usize
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

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: usize = 1024 * 1024;

    /// Regression: the limit was checked per memory, so 8 memories each just under a 64 MiB
    /// limit ran at 8× the limit.
    #[test]
    fn memories_and_tables_share_one_budget() {
        let mut limiter = RunLimiter::new(64);
        assert!(limiter.memory_growing(0, 40 * MIB, None).unwrap());
        let err = limiter.memory_growing(0, 40 * MIB, None).unwrap_err();
        let err = err.downcast::<MemoryLimitExceeded>().unwrap();
        assert_eq!((err.limit_mib, err.desired_mib), (64, 80));
        assert!(limiter.exceeded);
        // Tables count too: 24 MiB is left, a table of 4M pointers is 32 MiB.
        assert!(limiter.table_growing(0, 4 * 1024 * 1024, None).is_err());
        assert!(limiter.table_growing(0, 1024, None).unwrap());
    }

    #[test]
    fn growth_counts_only_the_difference_and_a_failed_growth_is_undone() {
        let mut limiter = RunLimiter::new(10);
        assert!(limiter.memory_growing(0, 4 * MIB, None).unwrap());
        assert!(limiter.memory_growing(4 * MIB, 8 * MIB, None).unwrap());
        limiter
            .memory_grow_failed(wasmtime::Error::msg("the OS said no"))
            .unwrap();
        assert!(
            limiter.memory_growing(4 * MIB, 10 * MIB, None).unwrap(),
            "the failed 4 MiB was given back"
        );
        assert!(limiter.memory_growing(10 * MIB, 10 * MIB + 65536, None).is_err());
    }

    /// The same through a real engine: instances of a module whose memory starts at 40 MiB, in
    /// one store. The first fits a 64 MiB run; the second would make 80 MiB and is refused.
    #[test]
    fn a_second_instance_cannot_take_a_second_budget() {
        let engine = Engine::default();
        let wasm = wat::parse_str("(module (memory (export \"m\") 640))").unwrap();
        let module = wasmtime::Module::new(&engine, wasm).unwrap();
        let mut store = wasmtime::Store::new(&engine, RunLimiter::new(64));
        store.limiter(|limiter| limiter);
        wasmtime::Instance::new(&mut store, &module, &[]).unwrap();
        let err = wasmtime::Instance::new(&mut store, &module, &[]).unwrap_err();
        assert!(err.to_string().contains("memory limit of 64 MiB exceeded"), "{err:#}");
    }
}
