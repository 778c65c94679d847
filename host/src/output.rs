//! The plugin's `output` interface: records, validated as JSON and written one per line.

use std::fmt;
use std::io::Write;
use std::sync::{Arc, Mutex};

use wasmtime::component::{HasSelf, Linker};

use crate::bindings::output as wit;
use crate::http::RunStats;
use crate::secrets::RunRedactor;

/// Largest record accepted, in bytes: one API object, not a whole export.
pub const MAX_RECORD_BYTES: usize = 1024 * 1024;

/// Where a run's records go.
///
/// ```
/// use apiary_host::{MemorySink, RecordSink};
///
/// let sink = MemorySink::default();
/// sink.emit(&serde_json::json!({"id": 1})).unwrap();
/// assert_eq!(sink.records(), vec![serde_json::json!({"id": 1})]);
/// ```
pub trait RecordSink: Send + Sync + fmt::Debug {
    /// Writes one record.
    ///
    /// # Errors
    /// The I/O error of the underlying writer; the run is stopped.
    fn emit(&self, record: &serde_json::Value) -> std::io::Result<()>;
}

/// Writes records as NDJSON: one compact JSON document per line, flushed per record so a
/// consumer sees each record as soon as it exists.
#[derive(Debug)]
pub struct NdjsonSink<W> {
    writer: Mutex<W>,
}

impl<W: Write> NdjsonSink<W> {
    /// A sink writing to `writer`.
    pub fn new(writer: W) -> Self {
        Self {
            writer: Mutex::new(writer),
        }
    }
}

impl<W: Write + Send + fmt::Debug> RecordSink for NdjsonSink<W> {
    fn emit(&self, record: &serde_json::Value) -> std::io::Result<()> {
        let mut writer = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        serde_json::to_writer(&mut *writer, record)?;
        writer.write_all(b"\n")?;
        writer.flush()
    }
}

/// Keeps records in memory; for tests and embedding.
#[derive(Debug, Default, Clone)]
pub struct MemorySink {
    records: Arc<Mutex<Vec<serde_json::Value>>>,
}

impl MemorySink {
    /// The records emitted so far.
    pub fn records(&self) -> Vec<serde_json::Value> {
        self.records.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

impl RecordSink for MemorySink {
    fn emit(&self, record: &serde_json::Value) -> std::io::Result<()> {
        self.records
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(record.clone());
        Ok(())
    }
}

/// One run's view of its output.
#[derive(Debug)]
pub(crate) struct OutputCtx {
    pub(crate) sink: Arc<dyn RecordSink>,
    pub(crate) stats: Arc<RunStats>,
    pub(crate) redactor: Arc<RunRedactor>,
}

/// Links the `output` interface, reading each run's [`OutputCtx`] through `get`.
pub(crate) fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    get: fn(&mut T) -> &mut OutputCtx,
) -> wasmtime::Result<()> {
    wit::add_to_linker::<T, HasSelf<OutputCtx>>(linker, get)
}

impl wit::Host for OutputCtx {
    async fn emit(&mut self, record: String) -> wasmtime::Result<Result<(), wit::Error>> {
        if record.len() > MAX_RECORD_BYTES {
            return Ok(Err(wit::Error::TooLarge(MAX_RECORD_BYTES as u64)));
        }
        // Scrubbed as text: the redactor's replacement keeps a JSON document valid JSON.
        let record = self.redactor.scrub(&record);
        let value: serde_json::Value = match serde_json::from_str(&record) {
            Ok(value) => value,
            Err(e) => return Ok(Err(wit::Error::InvalidJson(e.to_string()))),
        };
        // A sink that cannot be written (a closed stdout) ends the run: records would be lost.
        self.sink
            .emit(&value)
            .map_err(|e| wasmtime::format_err!("failed to write a record: {e}"))?;
        RunStats::add(&self.stats.records, 1);
        Ok(Ok(()))
    }
}
