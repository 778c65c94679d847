//! Configuration values: the manifest's `[config]` defaults overridden by the run's `--config`.
//!
//! ```no_run
//! # fn main() -> Result<(), apiary_sdk::RunError> {
//! let base = apiary_sdk::config::get("base_url").unwrap_or_else(|| "https://api.github.com".into());
//! let org = apiary_sdk::config::require("org")?;
//! # Ok(())
//! # }
//! ```

use crate::RunError;
use crate::bindings::apiary::plugin::config as wire;

/// The value of `key`, if set.
pub fn get(key: &str) -> Option<String> {
    wire::get(key)
}

/// The value of `key`.
///
/// # Errors
///
/// [`RunError::InvalidInput`] naming `key` when it is not set.
pub fn require(key: &str) -> Result<String, RunError> {
    get(key).ok_or_else(|| RunError::InvalidInput(format!("config value `{key}` is required but not set")))
}

/// Every (key, value) pair, sorted by key.
pub fn all() -> Vec<(String, String)> {
    wire::get_all()
}
