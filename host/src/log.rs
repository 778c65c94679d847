//! The plugin's `log` interface: guest log lines become `tracing` events (target
//! `apiary::guest`) tagged with the tenant and plugin. The text is the plugin's: it is scrubbed
//! of the run's secrets and its control characters are escaped before any sink sees it.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use wasmtime::component::{HasSelf, Linker};

use crate::bindings::log as wit;
use crate::clock::Clock;
use crate::guest_text::escape_guest_text;
use crate::ratelimit::{Gcra, Quota};
use crate::secrets::RunRedactor;
use crate::tenant::TenantId;

/// Longest guest log message kept, in bytes; longer ones are cut so one plugin cannot flood
/// the host's log pipeline.
pub const MAX_LOG_MESSAGE_BYTES: usize = 8 * 1024;
/// Most fields kept per log event; the rest are dropped.
pub const MAX_LOG_FIELDS: usize = 32;
/// Longest field name or value kept, in bytes; longer ones are cut.
pub const MAX_LOG_FIELD_BYTES: usize = 1024;
/// Log events one run may emit per second, on average; the excess is counted, not written.
pub const LOG_EVENTS_PER_SECOND: u32 = 100;
/// Log events one run may emit at once before the per-second rate applies.
pub const LOG_EVENTS_BURST: u32 = 200;

/// One run's view of logging.
#[derive(Debug)]
pub(crate) struct LogCtx {
    pub(crate) tenant: TenantId,
    pub(crate) plugin: String,
    pub(crate) redactor: Arc<RunRedactor>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) rate: Gcra,
    /// Events dropped over the rate, reported once when the run ends.
    pub(crate) dropped: u64,
}

impl LogCtx {
    /// A fresh log context for one run.
    pub(crate) fn new(tenant: TenantId, plugin: String, redactor: Arc<RunRedactor>, clock: Arc<dyn Clock>) -> Self {
        Self {
            tenant,
            plugin,
            redactor,
            clock,
            rate: Gcra::default(),
            dropped: 0,
        }
    }

    /// Whether one more event fits the run's log rate.
    fn admit(&mut self) -> bool {
        let quota = Quota::new(
            NonZeroU32::new(LOG_EVENTS_PER_SECOND).expect("non-zero"),
            Duration::from_secs(1),
            NonZeroU32::new(LOG_EVENTS_BURST).expect("non-zero"),
        );
        let admitted = self
            .rate
            .reserve(&quota, self.clock.monotonic(), Duration::ZERO)
            .is_ok();
        if !admitted {
            self.dropped += 1;
        }
        admitted
    }

    /// Writes the one summary line of a run that logged over its rate.
    pub(crate) fn report_dropped(&self) {
        if self.dropped > 0 {
            tracing::warn!(
                target: "apiary::guest",
                tenant = self.tenant.as_str(),
                plugin = self.plugin.as_str(),
                dropped = self.dropped,
                "the plugin logged over {LOG_EVENTS_PER_SECOND} events per second; {} were dropped",
                self.dropped
            );
        }
    }
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
        if !self.admit() {
            return Ok(());
        }
        let guest = |text: &str| escape_guest_text(&self.redactor.scrub(text)).into_owned();
        let message = guest(truncate(&message, MAX_LOG_MESSAGE_BYTES));
        // tracing needs field names at compile time, so the plugin's fields travel as one
        // JSON object (whose serialisation escapes what the plugin wrote).
        let scrub = |text: &str| self.redactor.scrub(truncate(text, MAX_LOG_FIELD_BYTES)).into_owned();
        let fields: serde_json::Map<String, serde_json::Value> = fields
            .iter()
            .take(MAX_LOG_FIELDS)
            .map(|(k, v)| (scrub(k), scrub(v).into()))
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    /// Regression: nothing bounded how fast a plugin could log.
    #[test]
    fn a_run_may_log_a_burst_then_its_rate_and_the_rest_is_counted() {
        let clock = ManualClock::new();
        let mut ctx = LogCtx::new(TenantId::default(), "p".into(), Arc::default(), Arc::new(clock.clone()));
        let admitted = (0..1000).filter(|_| ctx.admit()).count();
        assert_eq!(admitted, LOG_EVENTS_BURST as usize);
        assert_eq!(ctx.dropped, 1000 - u64::from(LOG_EVENTS_BURST));
        clock.advance(Duration::from_secs(1));
        let admitted = (0..1000).filter(|_| ctx.admit()).count();
        assert_eq!(admitted, LOG_EVENTS_PER_SECOND as usize);
    }

    #[test]
    fn truncation_keeps_whole_characters() {
        assert_eq!(truncate("héllo", 2), "h");
        assert_eq!(truncate("héllo", 3), "hé");
        assert_eq!(truncate("abc", 10), "abc");
    }
}
