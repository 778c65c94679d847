//! The plugin manifest, `plugin.toml`: what a plugin is, where its component is, and what it
//! may do (hosts, secrets, limits, retries, rate limits).
//!
//! ```toml
//! name = "github"
//! version = "0.1.0"
//! component = "../../target/wasm32-wasip2/release/apiary_plugin_github.wasm"
//!
//! [permissions]
//! hosts = ["https://api.github.com"]
//!
//! [permissions.secrets.github_token]
//! hosts = ["https://api.github.com"]
//!
//! [limits]
//! memory_mib = 128
//! deadline = "10m"
//!
//! [[ratelimit]]
//! bucket = "api.github.com"
//! rate = 5000
//! per = "1h"
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::http::HostPattern;
use crate::ratelimit::RateLimitConfig;
use crate::retry::RetryConfig;

/// The file name looked for when a plugin directory is given.
pub const MANIFEST_FILE: &str = "plugin.toml";
/// Default memory limit of one run, in MiB: ample for JSON mapping, small enough that many
/// runs fit on one machine.
pub const DEFAULT_MEMORY_MIB: u32 = 256;
/// Largest memory limit a manifest may ask for, in MiB (the pooling allocator's slot size).
pub const MAX_MEMORY_MIB: u32 = 4096;
/// Default wall-clock deadline of one run.
pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(10 * 60);
/// Default timeout of one HTTP attempt.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Default cap on one response body: large JSON pages fit, a runaway download does not.
pub const DEFAULT_MAX_RESPONSE_BYTES: u64 = 16 * 1024 * 1024;
/// Default number of requests of one `send-batch` in flight at once.
pub const DEFAULT_MAX_CONCURRENCY: u32 = 8;

/// A parsed, validated `plugin.toml`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// The plugin's name, used in logs, bucket keys and state scopes.
    /// Example: `name = "github"`
    pub name: String,
    /// The plugin's version.
    /// Example: `version = "0.1.0"`
    pub version: String,
    /// A one-line description.
    /// Example: `description = "GitHub REST API"`
    #[serde(default)]
    pub description: Option<String>,
    /// Path of the component (`.wasm`), relative to the manifest's directory.
    /// Example: `component = "plugin.wasm"`
    pub component: PathBuf,
    /// The component's expected SHA-256, in hex; checked at load when present.
    /// Example: `sha256 = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"`
    #[serde(default)]
    pub sha256: Option<String>,
    /// What the plugin may reach.
    #[serde(default)]
    pub permissions: Permissions,
    /// Default configuration values; a run's `--config` overrides them.
    /// Example: `[config] base_url = "https://api.github.com"`
    #[serde(default)]
    pub config: BTreeMap<String, String>,
    /// Resource limits of each run.
    #[serde(default)]
    pub limits: Limits,
    /// The retry policy of outbound requests.
    #[serde(default)]
    pub retry: RetryConfig,
    /// Declared rate limits.
    #[serde(default)]
    pub ratelimit: Vec<RateLimitConfig>,
}

/// The `[permissions]` table: what the plugin may reach and use. Nothing is granted by default.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Permissions {
    /// Destinations the plugin may send requests to, as `scheme://host[:port]`; the host may
    /// start with `*.` and the port may be `*`.
    /// Example: `hosts = ["https://api.github.com", "http://127.0.0.1:*"]`
    #[serde(default)]
    pub hosts: Vec<HostPattern>,
    /// Secrets the plugin may ask the host to attach, by name.
    /// Example: `[permissions.secrets.github_token] hosts = ["https://api.github.com"]`
    #[serde(default)]
    pub secrets: BTreeMap<String, SecretPermission>,
}

/// One declared secret: where its value comes from and where it may be sent.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretPermission {
    /// Destinations the secret may be attached to; each must also be in `permissions.hosts`.
    /// Example: `hosts = ["https://api.github.com"]`
    pub hosts: Vec<HostPattern>,
    /// The environment variable (or `.env` key) holding the value; defaults to the secret's
    /// name in upper case.
    /// Example: `env = "GITHUB_TOKEN"`
    #[serde(default)]
    pub env: Option<String>,
}

impl SecretPermission {
    /// The variable the value is read from: `env`, or the upper-cased secret name.
    pub fn env_var(&self, name: &str) -> String {
        self.env.clone().unwrap_or_else(|| name.to_ascii_uppercase())
    }
}

/// The `[limits]` table.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Linear-memory limit of one run, in MiB.
    /// Example: `memory_mib = 256`
    pub memory_mib: u32,
    /// Wall-clock deadline of one run, waits included.
    /// Example: `deadline = "10m"`
    #[serde(with = "duration")]
    pub deadline: Duration,
    /// Timeout of one HTTP attempt unless the request sets its own.
    /// Example: `request_timeout = "30s"`
    #[serde(with = "duration")]
    pub request_timeout: Duration,
    /// Largest response body accepted, in bytes.
    /// Example: `max_response_bytes = 16777216`
    pub max_response_bytes: u64,
    /// Requests of one batch in flight at once.
    /// Example: `max_concurrency = 8`
    pub max_concurrency: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            memory_mib: DEFAULT_MEMORY_MIB,
            deadline: DEFAULT_DEADLINE,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
            max_concurrency: DEFAULT_MAX_CONCURRENCY,
        }
    }
}

/// Why a manifest could not be loaded. Every case names the file; parse errors name the line,
/// column and field too.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// The file could not be read.
    #[error("failed to read {path}: {source}")]
    Read {
        /// The manifest's path.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not valid TOML, or a field has the wrong type or value.
    #[error("{}", format_location(path, *line, *column, field.as_deref(), message))]
    Parse {
        /// The manifest's path.
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
        /// The manifest's path.
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

impl Manifest {
    /// Loads the manifest at `path`, or `path/plugin.toml` when `path` is a directory.
    ///
    /// # Errors
    /// [`ManifestError`] when the file cannot be read, does not parse, or is inconsistent.
    pub fn load(path: &Path) -> Result<LoadedManifest, ManifestError> {
        let path = if path.is_dir() {
            path.join(MANIFEST_FILE)
        } else {
            path.to_path_buf()
        };
        let text = std::fs::read_to_string(&path).map_err(|source| ManifestError::Read {
            path: path.clone(),
            source,
        })?;
        let manifest = Self::parse(&text, &path)?;
        let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        Ok(LoadedManifest { manifest, path, dir })
    }

    /// Parses and validates manifest text; `path` is only used in error messages.
    ///
    /// # Errors
    /// [`ManifestError::Parse`] or [`ManifestError::Invalid`].
    pub fn parse(text: &str, path: &Path) -> Result<Self, ManifestError> {
        let parse_error = |error: toml::de::Error, field: Option<String>| {
            let offset = error.span().map(|s| s.start).unwrap_or(0);
            let (line, column) = line_column(text, offset);
            ManifestError::Parse {
                path: path.to_path_buf(),
                line,
                column,
                field: field.filter(|f| !f.is_empty() && f != "."),
                message: error.message().to_string(),
            }
        };
        let deserializer = toml::Deserializer::parse(text).map_err(|e| parse_error(e, None))?;
        let manifest: Manifest = serde_path_to_error::deserialize(deserializer).map_err(|e| {
            let field = e.path().to_string();
            parse_error(e.into_inner(), Some(field))
        })?;
        manifest.validate(path)?;
        Ok(manifest)
    }

    fn validate(&self, path: &Path) -> Result<(), ManifestError> {
        let invalid = |field: String, message: String| ManifestError::Invalid {
            path: path.to_path_buf(),
            field,
            message,
        };
        if self.name.is_empty()
            || !self
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(invalid(
                "name".into(),
                format!("`{}` must be non-empty ASCII letters, digits, `-` or `_`", self.name),
            ));
        }
        if let Some(sha) = &self.sha256
            && (sha.len() != 64 || !sha.bytes().all(|b| b.is_ascii_hexdigit()))
        {
            return Err(invalid("sha256".into(), "must be 64 hex digits".into()));
        }
        if self.limits.memory_mib == 0 || self.limits.memory_mib > MAX_MEMORY_MIB {
            return Err(invalid(
                "limits.memory_mib".into(),
                format!("must be between 1 and {MAX_MEMORY_MIB}"),
            ));
        }
        if self.limits.deadline.is_zero() {
            return Err(invalid("limits.deadline".into(), "must be longer than zero".into()));
        }
        if self.limits.max_concurrency == 0 {
            return Err(invalid("limits.max_concurrency".into(), "must be at least 1".into()));
        }
        for (name, secret) in &self.permissions.secrets {
            for host in &secret.hosts {
                if !self.permissions.hosts.iter().any(|allowed| allowed.covers(host)) {
                    return Err(invalid(
                        format!("permissions.secrets.{name}.hosts"),
                        format!("`{host}` is not covered by permissions.hosts"),
                    ));
                }
            }
        }
        for (i, rule) in self.ratelimit.iter().enumerate() {
            if rule.per.is_zero() {
                return Err(invalid(
                    format!("ratelimit[{i}].per"),
                    "must be longer than zero".into(),
                ));
            }
        }
        Ok(())
    }
}

/// A manifest together with where it was read from.
#[derive(Debug, Clone)]
pub struct LoadedManifest {
    /// The parsed manifest.
    pub manifest: Manifest,
    /// The manifest file's path.
    pub path: PathBuf,
    /// The directory relative paths are resolved against.
    pub dir: PathBuf,
}

impl LoadedManifest {
    /// The component's path, resolved against the manifest's directory.
    pub fn component_path(&self) -> PathBuf {
        self.dir.join(&self.manifest.component)
    }

    /// Reads the component and checks it against `sha256` when the manifest gives one.
    ///
    /// # Errors
    /// [`ManifestError::Read`] when the file is missing, [`ManifestError::Invalid`] on a
    /// checksum mismatch.
    pub fn read_component(&self, path: &Path) -> Result<Vec<u8>, ManifestError> {
        let bytes = std::fs::read(path).map_err(|source| ManifestError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        if let Some(expected) = &self.manifest.sha256 {
            let actual = hex::encode(Sha256::digest(&bytes));
            if !actual.eq_ignore_ascii_case(expected) {
                return Err(ManifestError::Invalid {
                    path: self.path.clone(),
                    field: "sha256".into(),
                    message: format!(
                        "{} has sha256 {actual}, the manifest expects {expected}",
                        path.display()
                    ),
                });
            }
        }
        Ok(bytes)
    }
}

fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

/// Serde support for human durations such as `"30s"`, `"5m"` or `"1h 30m"`.
pub(crate) mod duration {
    use super::*;
    use serde::Deserializer;

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(d)?;
        humantime::parse_duration(&text).map_err(|e| {
            serde::de::Error::custom(format!(
                "invalid duration `{text}` ({e}); write it like \"30s\", \"5m\" or \"1h\""
            ))
        })
    }
}

impl fmt::Display for LoadedManifest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = &self.manifest;
        writeln!(f, "name:        {}", m.name)?;
        writeln!(f, "version:     {}", m.version)?;
        if let Some(d) = &m.description {
            writeln!(f, "description: {d}")?;
        }
        writeln!(f, "manifest:    {}", self.path.display())?;
        writeln!(f, "component:   {}", self.component_path().display())?;
        let hosts: Vec<String> = m.permissions.hosts.iter().map(ToString::to_string).collect();
        writeln!(
            f,
            "hosts:       {}",
            if hosts.is_empty() {
                "(none)".into()
            } else {
                hosts.join(", ")
            }
        )?;
        for (name, secret) in &m.permissions.secrets {
            let hosts: Vec<String> = secret.hosts.iter().map(ToString::to_string).collect();
            writeln!(
                f,
                "secret:      {name} (from ${}) -> {}",
                secret.env_var(name),
                hosts.join(", ")
            )?;
        }
        writeln!(
            f,
            "limits:      memory {} MiB, deadline {}, request timeout {}, body {} bytes, batch {}",
            m.limits.memory_mib,
            humantime::format_duration(m.limits.deadline),
            humantime::format_duration(m.limits.request_timeout),
            m.limits.max_response_bytes,
            m.limits.max_concurrency
        )?;
        writeln!(
            f,
            "retry:       {} retries, base {}, cap {}, jitter {}, statuses {:?}",
            m.retry.max_retries,
            humantime::format_duration(m.retry.base_delay),
            humantime::format_duration(m.retry.max_delay),
            m.retry.jitter,
            m.retry.statuses
        )?;
        for rule in &m.ratelimit {
            writeln!(
                f,
                "ratelimit:   {}: {} per {}, burst {}, max wait {}",
                rule.bucket,
                rule.rate,
                humantime::format_duration(rule.per),
                rule.burst,
                humantime::format_duration(rule.max_wait)
            )?;
        }
        for (key, value) in &m.config {
            writeln!(f, "config:      {key} = {value}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Manifest, ManifestError> {
        Manifest::parse(text, Path::new("plugins/x/plugin.toml"))
    }

    const MINIMAL: &str = "name = \"x\"\nversion = \"1.0.0\"\ncomponent = \"x.wasm\"\n";

    #[test]
    fn minimal_manifest_grants_nothing_and_has_defaults() {
        let m = parse(MINIMAL).unwrap();
        assert!(m.permissions.hosts.is_empty());
        assert!(m.permissions.secrets.is_empty());
        assert_eq!(m.limits, Limits::default());
        assert_eq!(m.retry, RetryConfig::default());
    }

    #[test]
    fn full_manifest_parses() {
        let text = format!(
            "{MINIMAL}[permissions]\nhosts = [\"https://api.github.com\", \"http://127.0.0.1:*\"]\n\
             [permissions.secrets.tok]\nhosts = [\"https://api.github.com\"]\n\
             [config]\nbase_url = \"https://api.github.com\"\n\
             [limits]\nmemory_mib = 64\ndeadline = \"90s\"\n\
             [retry]\nmax_retries = 2\nbase_delay = \"100ms\"\n\
             [[ratelimit]]\nbucket = \"api.github.com\"\nrate = 10\nper = \"1s\"\nburst = 3\n"
        );
        let m = parse(&text).unwrap();
        assert_eq!(m.limits.memory_mib, 64);
        assert_eq!(m.limits.deadline, Duration::from_secs(90));
        assert_eq!(m.retry.max_retries, 2);
        assert_eq!(m.retry.base_delay, Duration::from_millis(100));
        assert_eq!(m.ratelimit[0].burst.get(), 3);
        assert_eq!(m.permissions.secrets["tok"].env_var("tok"), "TOK");
    }

    #[test]
    fn unknown_field_names_file_line_and_field() {
        let err = parse(&format!("{MINIMAL}[limits]\nmemory_mb = 3\n"))
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("plugins/x/plugin.toml:5:1: limits.memory_mb: unknown field `memory_mb`"),
            "{err}"
        );
    }

    #[test]
    fn wrong_type_names_the_field_path() {
        let err = parse(&format!("{MINIMAL}[limits]\nmemory_mib = \"lots\"\n"))
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("plugins/x/plugin.toml:5:14: limits.memory_mib: invalid type"),
            "{err}"
        );
    }

    #[test]
    fn bad_duration_and_bad_host_are_explained() {
        let err = parse(&format!("{MINIMAL}[limits]\ndeadline = \"soon\"\n"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(":5:") && err.contains("limits.deadline") && err.contains("invalid duration `soon`"),
            "{err}"
        );
        let err = parse(&format!("{MINIMAL}[permissions]\nhosts = [\"ftp://x\"]\n"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(":5:") && err.contains("permissions.hosts[0]") && err.contains("ftp"),
            "{err}"
        );
    }

    #[test]
    fn missing_field_and_syntax_error() {
        let err = parse("name = \"x\"\nversion = \"1\"\n").unwrap_err().to_string();
        assert!(err.contains("missing field `component`"), "{err}");
        let err = parse("name = \"x\nversion = 1\n").unwrap_err().to_string();
        assert!(err.starts_with("plugins/x/plugin.toml:1:"), "{err}");
    }

    #[test]
    fn secret_hosts_must_be_allowed_hosts() {
        let text = format!(
            "{MINIMAL}[permissions]\nhosts = [\"https://api.github.com\"]\n\
             [permissions.secrets.tok]\nhosts = [\"https://evil.example\"]\n"
        );
        let err = parse(&text).unwrap_err().to_string();
        assert_eq!(
            err,
            "plugins/x/plugin.toml: permissions.secrets.tok.hosts: `https://evil.example:443` is not covered by permissions.hosts"
        );
    }

    #[test]
    fn limits_are_range_checked() {
        let err = parse(&format!("{MINIMAL}[limits]\nmemory_mib = 0\n"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("limits.memory_mib: must be between 1"), "{err}");
        let err = parse(&format!(
            "{MINIMAL}[[ratelimit]]\nbucket = \"h\"\nrate = 0\nper = \"1s\"\n"
        ))
        .unwrap_err()
        .to_string();
        assert!(err.contains("ratelimit[0].rate"), "{err}");
    }
}
