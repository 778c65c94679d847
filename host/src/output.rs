//! The plugin's `output` interface: records, validated as JSON and written as the plugin gave
//! them (key order and number precision kept), one per line.

use std::fmt;
use std::io::{BufWriter, Write};
use std::sync::{Arc, Mutex};

use wasmtime::component::{HasSelf, Linker};

use crate::bindings::output as wit;
use crate::http::RunStats;
use crate::secrets::RunRedactor;

/// Largest record accepted, in bytes: one API object, not a whole export.
pub const MAX_RECORD_BYTES: usize = 1024 * 1024;
/// Most records one `emit-many` call may carry.
pub const MAX_RECORDS_PER_CALL: usize = 4096;

/// Where a run's records go. Each record is one valid JSON document on one line, with no
/// trailing newline.
///
/// ```
/// use apiary_host::{MemorySink, RecordSink};
///
/// let sink = MemorySink::default();
/// sink.emit(r#"{"id":1}"#).unwrap();
/// assert_eq!(sink.records(), vec![serde_json::json!({"id": 1})]);
/// ```
pub trait RecordSink: Send + Sync + fmt::Debug {
    /// Writes one record.
    ///
    /// # Errors
    /// The I/O error of the underlying writer; the run is stopped.
    fn emit(&self, record: &str) -> std::io::Result<()>;

    /// Makes what was written so far durable or visible; called when the plugin checkpoints
    /// its state and when the run ends.
    ///
    /// # Errors
    /// The I/O error of the underlying writer.
    fn flush(&self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Writes records as NDJSON through a buffer, flushed when the plugin checkpoints and when
/// the run ends (not per record: one write per record is what made records the slow path).
#[derive(Debug)]
pub struct NdjsonSink<W: Write> {
    writer: Mutex<BufWriter<W>>,
}

impl<W: Write> NdjsonSink<W> {
    /// A sink writing to `writer`.
    pub fn new(writer: W) -> Self {
        Self {
            writer: Mutex::new(BufWriter::with_capacity(64 * 1024, writer)),
        }
    }
}

impl<W: Write + Send + fmt::Debug> RecordSink for NdjsonSink<W> {
    fn emit(&self, record: &str) -> std::io::Result<()> {
        let mut writer = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        writer.write_all(record.as_bytes())?;
        writer.write_all(b"\n")
    }

    fn flush(&self) -> std::io::Result<()> {
        self.writer.lock().unwrap_or_else(|e| e.into_inner()).flush()
    }
}

/// Keeps records in memory; for tests and embedding.
#[derive(Debug, Default, Clone)]
pub struct MemorySink {
    records: Arc<Mutex<Vec<String>>>,
}

impl MemorySink {
    /// The records emitted so far, parsed.
    pub fn records(&self) -> Vec<serde_json::Value> {
        self.lines()
            .iter()
            .map(|line| serde_json::from_str(line).expect("sinks receive valid JSON"))
            .collect()
    }

    /// The records emitted so far, exactly as written.
    pub fn lines(&self) -> Vec<String> {
        self.records.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

impl RecordSink for MemorySink {
    fn emit(&self, record: &str) -> std::io::Result<()> {
        self.records
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(record.to_string());
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

impl OutputCtx {
    /// Checks, scrubs and writes one record. `Ok(Err(..))` is a refusal the plugin handles;
    /// `Err` ends the run (a sink that cannot be written would lose records).
    fn write(&self, record: &str) -> wasmtime::Result<Result<(), wit::Error>> {
        if record.len() > MAX_RECORD_BYTES {
            return Ok(Err(wit::Error::TooLarge(MAX_RECORD_BYTES as u64)));
        }
        // Scrubbed as text: the redactor's replacement keeps a JSON document valid JSON.
        let record = self.redactor.scrub(record);
        if let Err(e) = serde_json::from_str::<serde::de::IgnoredAny>(&record) {
            return Ok(Err(wit::Error::InvalidJson(e.to_string())));
        }
        self.sink
            .emit(&one_line(&record))
            .map_err(|e| wasmtime::format_err!("failed to write a record: {e}"))?;
        RunStats::add(&self.stats.records, 1);
        Ok(Ok(()))
    }
}

impl wit::Host for OutputCtx {
    async fn emit(&mut self, record: String) -> wasmtime::Result<Result<(), wit::Error>> {
        self.write(&record)
    }

    async fn emit_many(&mut self, records: Vec<String>) -> wasmtime::Result<Result<(), (u32, wit::Error)>> {
        if records.len() > MAX_RECORDS_PER_CALL {
            wasmtime::bail!(
                "emit-many of {} records is over the limit of {MAX_RECORDS_PER_CALL}",
                records.len()
            );
        }
        for (index, record) in (0u32..).zip(&records) {
            if let Err(error) = self.write(record)? {
                return Ok(Err((index, error)));
            }
        }
        Ok(Ok(()))
    }
}

/// `json` (valid JSON) on one line: whitespace outside strings removed only when there is a
/// line break to remove, so a compact record is written exactly as the plugin gave it.
fn one_line(json: &str) -> std::borrow::Cow<'_, str> {
    if !json.contains(['\n', '\r']) {
        return std::borrow::Cow::Borrowed(json);
    }
    let mut out = String::with_capacity(json.len());
    let (mut in_string, mut escaped) = (false, false);
    for c in json.chars() {
        if in_string {
            out.push(c);
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => in_string = false,
                _ => {}
            }
        } else if c == '"' {
            in_string = true;
            out.push(c);
        } else if !c.is_ascii_whitespace() {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_keep_their_order_and_numbers_and_land_on_one_line() {
        let exact = r#"{"z":1,"a":12345678901234567890123,"f":1.50}"#;
        assert_eq!(one_line(exact), exact, "written exactly as given");
        let pretty = "{\n  \"b\": \"x y\\n\\\"q\\\"\",\n  \"a\": [1, 2]\n}";
        assert_eq!(one_line(pretty), r#"{"b":"x y\n\"q\"","a":[1,2]}"#);
    }

    #[test]
    fn the_ndjson_sink_buffers_until_flushed() {
        #[derive(Debug, Clone, Default)]
        struct Shared(Arc<Mutex<Vec<u8>>>);
        impl Write for Shared {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(buf);
                Ok(buf.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let out = Shared::default();
        let sink = NdjsonSink::new(out.clone());
        sink.emit(r#"{"a":1}"#).unwrap();
        sink.emit(r#"{"b":2}"#).unwrap();
        assert!(out.0.lock().unwrap().is_empty(), "nothing written per record");
        sink.flush().unwrap();
        assert_eq!(&*out.0.lock().unwrap(), b"{\"a\":1}\n{\"b\":2}\n");
    }
}
