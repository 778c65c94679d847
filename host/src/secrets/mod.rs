//! Sealed secrets: values the host attaches to a plugin's requests, which the plugin can name
//! but never read.
//!
//! - The plugin's manifest asks for a secret by name, with its [`Placement`] and destinations.
//! - The operator grants it with a [`SecretSource`] (`env:`, `dotenv:`, `cmd:`), read through a
//!   TTL cache ([`CachedSecret`]) so a rotated key reaches the next request of a running plugin.
//! - [`SecretLayer`], in the egress pipeline, attaches a value only at its declared placement
//!   and only to its destinations, records an audit event for every use, and scrubs every
//!   secret the run holds from every response with the run's [`Redactor`].
//! - The same redactor scrubs what the plugin writes: logs, records, failure text and stderr.

mod decode;
mod glue;
mod held;
mod layer;
mod placement;
mod redact;
mod source;

pub(crate) use decode::decode_body;
pub(crate) use glue::{SecretsCtx, add_to_linker};
pub use held::{HeldSecret, RunRedactor};
pub use layer::SecretLayer;
pub use placement::Placement;
pub use redact::{MIN_FRAGMENT_BYTES, REDACTED, Redactor};
pub use source::{
    CachedSecret, CommandSource, DEFAULT_COMMAND_TIMEOUT, DEFAULT_SECRET_TTL, DotenvSource, EnvSource,
    MAX_SECRET_BYTES, MIN_SECRET_BYTES, SecretSource, SourceError, SourceSpec, SourceSpecError, StaticSource,
};

/// A request's instruction to attach the secret `name`. The placement is the plugin's
/// statement of where it expects the value; the host checks it against the declared one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretAttachment {
    /// The secret's name, as the manifest asks for it.
    pub name: String,
    /// Where the plugin expects the value to go.
    pub placement: Placement,
}

/// Why a secret could not be attached; mirrors the WIT `secrets.error`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    /// The plugin did not ask for such a secret, or it was not granted.
    #[error("unknown secret `{0}`: the manifest does not ask for it, or the operator did not grant it")]
    Unknown(String),
    /// The secret may not be sent to the destination.
    #[error("secret `{name}` may not be sent to {destination}")]
    NotBound {
        /// The secret's name.
        name: String,
        /// The refused destination.
        destination: String,
    },
    /// The placement is not the declared one, or cannot carry the value.
    #[error("cannot place secret `{name}`: {reason}")]
    InvalidPlacement {
        /// The secret's name.
        name: String,
        /// Why.
        reason: String,
    },
    /// The secret's source failed (a command that exits non-zero, an unset variable).
    #[error("secret `{name}` is unavailable: {reason}")]
    Unavailable {
        /// The secret's name.
        name: String,
        /// The source and what went wrong (never the value).
        reason: String,
    },
}
