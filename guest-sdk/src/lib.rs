//! Guest SDK for Apiary plugins: export glue, a typed request builder and pagination helpers.
//!
//! A plugin is a WebAssembly component built for `wasm32-wasip2` that holds only per-API logic.
//! Writing one takes four steps:
//!
//! 1. Implement [`Plugin`] for a unit struct: [`Plugin::describe`] names the operations and
//!    [`Plugin::run`] runs one of them with its input, already parsed as JSON.
//! 2. Read the input with [`parse_input`] and settings with [`config`].
//! 3. Call APIs with [`http`] (secrets are attached by name, see [`secrets`]) and walk their pages
//!    with [`paginate`].
//! 4. Send each record to [`output::emit`]; return a [`RunSummary`]. Errors from every module
//!    convert into [`RunError`], so `?` works throughout.
//!
//! ```no_run
//! use apiary_sdk::{OperationInfo, Plugin, PluginInfo, RunError, RunSummary, http, output};
//!
//! struct Weather;
//!
//! impl Plugin for Weather {
//!     fn describe() -> PluginInfo {
//!         PluginInfo {
//!             name: "weather".into(),
//!             version: env!("CARGO_PKG_VERSION").into(),
//!             operations: vec![OperationInfo {
//!                 name: "today".into(),
//!                 summary: "Today's forecast for a city".into(),
//!             }],
//!         }
//!     }
//!
//!     fn run(operation: &str, input: serde_json::Value) -> Result<RunSummary, RunError> {
//!         #[derive(serde::Deserialize)]
//!         struct Input {
//!             city: String,
//!         }
//!         if operation != "today" {
//!             return Err(RunError::UnknownOperation(operation.into()));
//!         }
//!         let input: Input = apiary_sdk::parse_input(input)?;
//!         let response = http::get("https://weather.example/v1/today")
//!             .query("city", &input.city)
//!             .bearer("weather_token")
//!             .send()?;
//!         output::emit(&response.json::<serde_json::Value>().map_err(apiary_sdk::json_failed)?)?;
//!         Ok(RunSummary { pages: 1, message: None })
//!     }
//! }
//!
//! apiary_sdk::export!(Weather);
//! ```
//!
//! Every import is a call into the host; natively (in unit tests) they panic, so keep the logic
//! worth testing in pure functions such as [`paginate::next_link`].
#![deny(missing_docs)]

pub mod bindings;
pub mod config;
pub mod http;
pub mod log;
pub mod output;
pub mod paginate;
pub mod ratelimit;
pub mod secrets;
pub mod state;

pub use bindings::apiary::plugin::types::{OperationInfo, PluginInfo, RunSummary};
/// The JSON crate the SDK's signatures use, re-exported so plugins agree on its version.
pub use serde_json;

/// What a plugin implements; [`export!`] turns the implementing type into the component's exports.
///
/// ```
/// use apiary_sdk::{Plugin, PluginInfo, RunError, RunSummary};
///
/// struct Noop;
///
/// impl Plugin for Noop {
///     fn describe() -> PluginInfo {
///         PluginInfo { name: "noop".into(), version: "0.1.0".into(), operations: vec![] }
///     }
///
///     fn run(operation: &str, _input: serde_json::Value) -> Result<RunSummary, RunError> {
///         Err(RunError::UnknownOperation(operation.into()))
///     }
/// }
/// # assert_eq!(Noop::describe().name, "noop");
/// ```
pub trait Plugin {
    /// Describes the plugin: its name, version and operations. Must not make requests.
    fn describe() -> PluginInfo;

    /// Runs `operation` with `input`, the caller's JSON document (`{}` when they gave none).
    ///
    /// # Errors
    ///
    /// [`RunError::UnknownOperation`] for an operation the plugin does not offer,
    /// [`RunError::InvalidInput`] for unusable input, and whatever else stops the run.
    fn run(operation: &str, input: serde_json::Value) -> Result<RunSummary, RunError>;
}

// The generated export macro wants a `Guest` implementation; every `Plugin` is one, so plugin
// authors never see the raw string-typed signature.
impl<P: Plugin> bindings::Guest for P {
    fn describe() -> PluginInfo {
        P::describe()
    }

    fn run(operation: String, input: String) -> Result<RunSummary, RunError> {
        let input = serde_json::from_str(&input)
            .map_err(|e| RunError::InvalidInput(format!("input is not valid JSON: {e}")))?;
        P::run(&operation, input)
    }
}

/// Exports a [`Plugin`] implementation as the component's `describe` and `run`.
///
/// Use it once per plugin crate, at the top level: `apiary_sdk::export!(MyPlugin);`.
#[macro_export]
macro_rules! export {
    ($plugin:ident) => {
        $crate::bindings::export_component!($plugin with_types_in $crate::bindings);
    };
}

/// Deserializes a run's `input` into `T`, mapping failure to [`RunError::InvalidInput`].
///
/// serde's message names the offending field (``missing field `owner` ``).
///
/// # Errors
///
/// [`RunError::InvalidInput`] when `input` does not have the shape of `T`.
///
/// ```
/// #[derive(Debug, serde::Deserialize)]
/// struct Input {
///     owner: String,
/// }
///
/// let err = apiary_sdk::parse_input::<Input>(serde_json::json!({})).unwrap_err();
/// assert!(err.to_string().contains("missing field `owner`"));
/// ```
pub fn parse_input<T: serde::de::DeserializeOwned>(input: serde_json::Value) -> Result<T, RunError> {
    serde_json::from_value(input).map_err(|e| RunError::InvalidInput(format!("invalid input: {e}")))
}

/// Maps a JSON error from a response body to [`RunError::Failed`], for use with `map_err`.
///
/// ```
/// let err = serde_json::from_str::<u32>("x").map_err(apiary_sdk::json_failed).unwrap_err();
/// assert!(err.to_string().starts_with("unexpected JSON"));
/// ```
pub fn json_failed(error: serde_json::Error) -> RunError {
    RunError::Failed(format!("unexpected JSON in a response: {error}"))
}

/// Why a run failed (the WIT `run-error`); every SDK error converts into it, so `?` works in `run`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RunError {
    /// The operation name is not one the plugin offers.
    UnknownOperation(String),
    /// The input JSON is malformed or misses a field; the text says which.
    InvalidInput(String),
    /// A request failed in a way the plugin chose not to handle.
    Http(http::Error),
    /// Any other failure, described in one line.
    Failed(String),
}

impl std::error::Error for RunError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            RunError::Http(error) => Some(error),
            _ => None,
        }
    }
}

impl core::fmt::Display for RunError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            RunError::UnknownOperation(name) => write!(f, "unknown operation `{name}`"),
            RunError::InvalidInput(message) => f.write_str(message),
            RunError::Http(error) => write!(f, "request failed: {error}"),
            RunError::Failed(message) => f.write_str(message),
        }
    }
}
