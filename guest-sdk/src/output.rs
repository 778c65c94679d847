//! The records a run produces.
//!
//! ```no_run
//! # fn main() -> Result<(), apiary_sdk::RunError> {
//! apiary_sdk::output::emit(&serde_json::json!({"id": 1, "title": "first"}))?;
//! # Ok(())
//! # }
//! ```

use serde::Serialize;

use crate::bindings::apiary::plugin::output as wire;

/// Why a record was refused (the WIT `output.error`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Error {
    /// The record is not valid JSON; the text says where.
    InvalidJson(String),
    /// The record exceeds the host's limit, in bytes.
    TooLarge(u64),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::InvalidJson(reason) => write!(f, "record is not valid JSON: {reason}"),
            Error::TooLarge(limit) => write!(f, "record exceeds the host's limit of {limit} bytes"),
        }
    }
}

impl std::error::Error for Error {}

impl From<Error> for crate::RunError {
    fn from(error: Error) -> Self {
        crate::RunError::Failed(error.to_string())
    }
}

/// Emits `record`, serialized as one JSON document (an object, usually).
///
/// # Errors
///
/// [`Error::InvalidJson`] when `record` cannot be serialized, or the host's [`Error`].
pub fn emit<T: Serialize + ?Sized>(record: &T) -> Result<(), Error> {
    let json = serde_json::to_string(record).map_err(|e| Error::InvalidJson(e.to_string()))?;
    wire::emit(&json)
}

/// Emits `json`, a JSON document the plugin already has as text (an API's object passed
/// through, say); the host writes it as given, key order and numbers kept.
///
/// # Errors
///
/// The host's [`Error`]: not valid JSON, or too large.
pub fn emit_json(json: &str) -> Result<(), Error> {
    wire::emit(json)
}

/// Most records the host takes in one call; [`emit_all`] splits longer slices.
const RECORDS_PER_CALL: usize = 4096;

/// Emits every record of `records`, serialized, in as few calls to the host as its limit allows
/// (one per 4096 records).
///
/// # Errors
///
/// The index of the first record that was refused or could not be serialized, with its
/// [`Error`]; the records before it were emitted, none after it.
pub fn emit_all<T: Serialize>(records: &[T]) -> Result<(), (usize, Error)> {
    let mut json = Vec::with_capacity(records.len());
    let mut unserializable = None;
    for (index, record) in records.iter().enumerate() {
        match serde_json::to_string(record) {
            Ok(text) => json.push(text),
            Err(e) => {
                unserializable = Some((index, Error::InvalidJson(e.to_string())));
                break;
            }
        }
    }
    for (chunk, texts) in json.chunks(RECORDS_PER_CALL).enumerate() {
        let offset = chunk * RECORDS_PER_CALL;
        wire::emit_many(texts).map_err(|(index, error)| (offset + index as usize, error))?;
    }
    unserializable.map_or(Ok(()), Err)
}
