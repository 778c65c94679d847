//! Structured, leveled logs, emitted by the host as `tracing` events tagged with the plugin.
//!
//! ```no_run
//! apiary_sdk::log::info("fetched page", &[("page", "2"), ("items", "100")]);
//! ```

use crate::bindings::apiary::plugin::log as wire;

pub use wire::Level;

/// Logs `message` at `level` with structured `fields` (key, value pairs).
pub fn log(level: Level, message: &str, fields: &[(&str, &str)]) {
    let fields: Vec<(String, String)> = fields
        .iter()
        .map(|&(key, value)| (key.to_owned(), value.to_owned()))
        .collect();
    wire::log(level, message, &fields);
}

/// Logs very detailed diagnostics.
pub fn trace(message: &str, fields: &[(&str, &str)]) {
    log(Level::Trace, message, fields);
}

/// Logs diagnostics for developers.
pub fn debug(message: &str, fields: &[(&str, &str)]) {
    log(Level::Debug, message, fields);
}

/// Logs normal progress.
pub fn info(message: &str, fields: &[(&str, &str)]) {
    log(Level::Info, message, fields);
}

/// Logs something unexpected that the plugin handled.
pub fn warn(message: &str, fields: &[(&str, &str)]) {
    log(Level::Warn, message, fields);
}

/// Logs a failure.
pub fn error(message: &str, fields: &[(&str, &str)]) {
    log(Level::Error, message, fields);
}
