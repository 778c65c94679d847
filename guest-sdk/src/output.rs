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
