//! Sealed secrets: name a secret and where it goes; the host attaches its value to the request.
//!
//! The value never enters the plugin. Attach one with [`RequestBuilder::secret`]
//! (or [`RequestBuilder::bearer`]):
//!
//! ```no_run
//! use apiary_sdk::{http, secrets};
//!
//! let mut request = http::get("https://api.example.com/v1/items");
//! if secrets::available("api_key") {
//!     request = request.secret(secrets::header("api_key", "x-api-key"));
//! }
//! ```
//!
//! [`RequestBuilder::secret`]: crate::http::RequestBuilder::secret
//! [`RequestBuilder::bearer`]: crate::http::RequestBuilder::bearer

use crate::bindings::apiary::plugin::secrets as wire;

pub use wire::{Placement, SecretAttachment};

/// Why a secret could not be attached (the WIT `secrets.error`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Error {
    /// The manifest asks for no secret with this name, or the operator did not grant it.
    Unknown(String),
    /// The secret may not be sent to the request's destination; the text names both.
    NotBound(String),
    /// The placement is not the declared one, or cannot carry the value; the text says why.
    InvalidPlacement(String),
    /// The secret's source failed; the text names the secret and the source.
    Unavailable(String),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Unknown(name) => write!(f, "no secret is declared as `{name}`"),
            Error::NotBound(detail) => write!(f, "secret not bound to this destination: {detail}"),
            Error::InvalidPlacement(reason) => write!(f, "invalid secret placement: {reason}"),
            Error::Unavailable(reason) => write!(f, "secret unavailable: {reason}"),
        }
    }
}

impl std::error::Error for Error {}

/// Attaches the secret `name` as `Authorization: Bearer <value>`.
pub fn bearer(name: &str) -> SecretAttachment {
    attachment(name, Placement::Bearer)
}

/// Attaches the secret `name` as the password of `Authorization: Basic` for `username`.
pub fn basic(name: &str, username: &str) -> SecretAttachment {
    attachment(name, Placement::Basic(username.to_owned()))
}

/// Attaches the secret `name` as the value of the header `header_name`.
pub fn header(name: &str, header_name: &str) -> SecretAttachment {
    attachment(name, Placement::Header(header_name.to_owned()))
}

/// Attaches the secret `name` as the value of the query parameter `param`.
pub fn query(name: &str, param: &str) -> SecretAttachment {
    attachment(name, Placement::Query(param.to_owned()))
}

/// True when the secret `name` is granted and its source gave a value when the run started.
pub fn available(name: &str) -> bool {
    wire::available(name)
}

fn attachment(name: &str, placement: Placement) -> SecretAttachment {
    SecretAttachment {
        name: name.to_owned(),
        placement,
    }
}
