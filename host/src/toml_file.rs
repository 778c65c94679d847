//! Reading the host's TOML files (`plugin.toml`, `apiary.toml`): one error type whose messages
//! name the file, the line, the column and the field, and the serde helpers both files share.

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;

/// Why a configuration file (`plugin.toml` or `apiary.toml`) could not be loaded. Every case
/// names the file; parse errors name the line, column and field too.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("failed to read {path}: {source}")]
    Read {
        /// The file's path.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not valid TOML, or a field has the wrong type or value.
    #[error("{}", format_location(path, *line, *column, field.as_deref(), message))]
    Parse {
        /// The file's path.
        path: PathBuf,
        /// 1-based line of the problem.
        line: usize,
        /// 1-based column of the problem.
        column: usize,
        /// Dotted path of the field, e.g. `limits.memory_mib`, when known.
        field: Option<String>,
        /// What is wrong.
        message: String,
    },
    /// The fields parse but do not make sense together.
    #[error("{}: {field}: {message}", path.display())]
    Invalid {
        /// The file's path.
        path: PathBuf,
        /// Dotted path of the field.
        field: String,
        /// What is wrong.
        message: String,
    },
}

fn format_location(path: &Path, line: usize, column: usize, field: Option<&str>, message: &str) -> String {
    match field {
        Some(field) => format!("{}:{line}:{column}: {field}: {message}", path.display()),
        None => format!("{}:{line}:{column}: {message}", path.display()),
    }
}

/// Reads the file at `path`.
pub(crate) fn read(path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// Parses `text` as `T`; `path` is only used in error messages.
pub(crate) fn parse<T: DeserializeOwned>(text: &str, path: &Path) -> Result<T, ConfigError> {
    let parse_error = |error: toml::de::Error, field: Option<String>| {
        let offset = error.span().map(|s| s.start).unwrap_or(0);
        let (line, column) = line_column(text, offset);
        ConfigError::Parse {
            path: path.to_path_buf(),
            line,
            column,
            field: field.filter(|f| !f.is_empty() && f != "."),
            message: error.message().to_string(),
        }
    };
    let deserializer = toml::Deserializer::parse(text).map_err(|e| parse_error(e, None))?;
    serde_path_to_error::deserialize(deserializer).map_err(|e| {
        let field = e.path().to_string();
        parse_error(e.into_inner(), Some(field))
    })
}

fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

/// Whether `text` is 64 hex digits, as a SHA-256 pin must be.
pub(crate) fn is_sha256_hex(text: &str) -> bool {
    text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Serde support for human durations such as `"30s"`, `"5m"` or `"1h 30m"`.
pub(crate) mod duration {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer};

    fn parse<E: serde::de::Error>(text: &str) -> Result<Duration, E> {
        humantime::parse_duration(text).map_err(|e| {
            E::custom(format!(
                "invalid duration `{text}` ({e}); write it like \"30s\", \"5m\" or \"1h\""
            ))
        })
    }

    /// A duration no longer than `max`: a typo like `"1000000y"` is refused at load, with the
    /// file, line and field, instead of overflowing a deadline computed from it during a run.
    pub(crate) fn at_most<'de, D: Deserializer<'de>>(d: D, max: Duration) -> Result<Duration, D::Error> {
        parse_at_most(&String::deserialize(d)?, max)
    }

    /// As [`at_most`], for an optional field.
    pub(crate) fn option_at_most<'de, D: Deserializer<'de>>(d: D, max: Duration) -> Result<Option<Duration>, D::Error> {
        Option::<String>::deserialize(d)?
            .map(|t| parse_at_most(&t, max))
            .transpose()
    }

    fn parse_at_most<E: serde::de::Error>(text: &str, max: Duration) -> Result<Duration, E> {
        let value = parse(text)?;
        if value > max {
            return Err(E::custom(format!(
                "`{text}` is too long: at most {} is allowed",
                humantime::format_duration(max)
            )));
        }
        Ok(value)
    }

    /// The same, for an optional field.
    pub(crate) mod option {
        use super::*;

        pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
            Option::<String>::deserialize(d)?.map(|t| parse(&t)).transpose()
        }
    }
}
