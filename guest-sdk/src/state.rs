//! Checkpoint state for resumable runs, scoped to the tenant and the plugin.
//!
//! ```no_run
//! # fn main() -> Result<(), apiary_sdk::RunError> {
//! use apiary_sdk::state;
//!
//! let since: Option<String> = state::get_json("since")?;
//! // ... fetch what changed since then ...
//! state::put_json("since", "2024-05-01T00:00:00Z")?;
//! # Ok(())
//! # }
//! ```

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::bindings::apiary::plugin::state as wire;

/// Why state could not be read or written (the WIT `state.error`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Error {
    /// The value exceeds the host's limit, in bytes.
    TooLarge(u64),
    /// The store failed; the text says how.
    Storage(String),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::TooLarge(limit) => {
                write!(f, "state value exceeds the host's limit of {limit} bytes")
            }
            Error::Storage(reason) => write!(f, "state storage failed: {reason}"),
        }
    }
}

impl std::error::Error for Error {}

impl From<Error> for crate::RunError {
    fn from(error: Error) -> Self {
        crate::RunError::Failed(error.to_string())
    }
}

/// Why a JSON state value could not be read or written.
#[derive(Debug)]
pub enum JsonError {
    /// The host could not read or write the value.
    State(Error),
    /// The value is not JSON of the expected shape, or could not be serialized.
    Json(serde_json::Error),
}

impl std::fmt::Display for JsonError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            JsonError::State(error) => write!(f, "{error}"),
            JsonError::Json(error) => write!(f, "state value is not the expected JSON: {error}"),
        }
    }
}

impl std::error::Error for JsonError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            JsonError::State(error) => Some(error),
            JsonError::Json(error) => Some(error),
        }
    }
}

impl From<JsonError> for crate::RunError {
    fn from(error: JsonError) -> Self {
        crate::RunError::Failed(error.to_string())
    }
}

/// The value stored under `key`, if any.
///
/// # Errors
///
/// The [`Error`] the host reported.
pub fn get(key: &str) -> Result<Option<String>, Error> {
    wire::get(key)
}

/// Stores `value` under `key`, replacing any earlier value.
///
/// # Errors
///
/// The [`Error`] the host reported.
pub fn put(key: &str, value: &str) -> Result<(), Error> {
    wire::put(key, value)
}

/// The value stored under `key` parsed as JSON, if any.
///
/// # Errors
///
/// [`JsonError::State`] when the host fails, [`JsonError::Json`] when the value is not a `T`.
pub fn get_json<T: DeserializeOwned>(key: &str) -> Result<Option<T>, JsonError> {
    match get(key).map_err(JsonError::State)? {
        Some(text) => serde_json::from_str(&text).map(Some).map_err(JsonError::Json),
        None => Ok(None),
    }
}

/// Stores `value` as JSON under `key`, replacing any earlier value.
///
/// # Errors
///
/// [`JsonError::Json`] when `value` cannot be serialized, [`JsonError::State`] when the host fails.
pub fn put_json<T: Serialize + ?Sized>(key: &str, value: &T) -> Result<(), JsonError> {
    let text = serde_json::to_string(value).map_err(JsonError::Json)?;
    put(key, &text).map_err(JsonError::State)
}
