//! The plugin's `log` interface: guest log lines become `tracing` events (target
//! `apiary::guest`) tagged with the tenant and plugin. The text is the plugin's: it is scrubbed
//! of the run's secrets and its control characters are escaped before any sink sees it.

use std::sync::Arc;

use wasmtime::component::{HasSelf, Linker};

use crate::bindings::log as wit;
use crate::guest_text::escape_guest_text;
use crate::secrets::RunRedactor;
use crate::tenant::TenantId;

/// Longest guest log message kept, in bytes; longer ones are cut so one plugin cannot flood
/// the host's log pipeline.
pub const MAX_LOG_MESSAGE_BYTES: usize = 8 * 1024;

/// One run's view of logging.
#[derive(Debug)]
pub(crate) struct LogCtx {
    pub(crate) tenant: TenantId,
    pub(crate) plugin: String,
    pub(crate) redactor: Arc<RunRedactor>,
}

/// Links the `log` interface, reading each run's [`LogCtx`] through `get`.
pub(crate) fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    get: fn(&mut T) -> &mut LogCtx,
) -> wasmtime::Result<()> {
    wit::add_to_linker::<T, HasSelf<LogCtx>>(linker, get)
}

impl wit::Host for LogCtx {
    async fn log(&mut self, level: wit::Level, message: String, fields: Vec<(String, String)>) -> wasmtime::Result<()> {
        let guest = |text: &str| escape_guest_text(&self.redactor.scrub(text)).into_owned();
        let message = guest(truncate(&message, MAX_LOG_MESSAGE_BYTES));
        // tracing needs field names at compile time, so the plugin's fields travel as one
        // JSON object (whose serialisation escapes what the plugin wrote).
        let fields: serde_json::Map<String, serde_json::Value> = fields
            .into_iter()
            .map(|(k, v)| (self.redactor.scrub(&k), self.redactor.scrub(&v).into()))
            .collect();
        let fields = serde_json::Value::Object(fields).to_string();
        let (tenant, plugin) = (self.tenant.as_str(), self.plugin.as_str());
        match level {
            wit::Level::Trace => tracing::trace!(target: "apiary::guest", tenant, plugin, fields, "{message}"),
            wit::Level::Debug => tracing::debug!(target: "apiary::guest", tenant, plugin, fields, "{message}"),
            wit::Level::Info => tracing::info!(target: "apiary::guest", tenant, plugin, fields, "{message}"),
            wit::Level::Warn => tracing::warn!(target: "apiary::guest", tenant, plugin, fields, "{message}"),
            wit::Level::Error => tracing::error!(target: "apiary::guest", tenant, plugin, fields, "{message}"),
        }
        Ok(())
    }
}

/// `text` cut to at most `max` bytes on a character boundary.
fn truncate(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}
