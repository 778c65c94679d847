//! The plugin manifest, `plugin.toml`, written by the plugin's author: what a plugin is, where
//! its component is, and what it *asks* for (hosts, secrets with their placement, limits,
//! retries, rate limits). It grants nothing: the operator grants (see [`Grant`](crate::Grant)),
//! and a run may do only what is both asked for and granted. It cannot say where a secret's
//! value comes from.
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
//! placement = "bearer"
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
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Deserializer};
use sha2::{Digest, Sha256};

use crate::breaker::BreakerConfig;
use crate::http::HostPattern;
use crate::ratelimit::RateLimitConfig;
use crate::retry::RetryConfig;
use crate::secrets::Placement;
use crate::toml_file::{self, ConfigError, duration};

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
/// Longest `limits.deadline` (and operator cap) accepted: a run is a job, not a daemon, and a
/// day keeps every instant computed from a deadline far from overflowing.
pub const MAX_DEADLINE: Duration = Duration::from_secs(24 * 60 * 60);
/// Default `limits.connect_timeout`.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Default `limits.idle_timeout`.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// Longest `limits.request_timeout` (and operator cap) accepted: an hour covers the slowest
/// export endpoint; beyond that a request has hung.
pub const MAX_REQUEST_TIMEOUT: Duration = Duration::from_secs(60 * 60);
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
    /// When to stop sending to a failing destination for a while.
    #[serde(default)]
    pub circuit_breaker: BreakerConfig,
}

/// The `[permissions]` table: what the plugin asks to reach and use. The operator grants some or
/// all of it; nothing is granted by the manifest itself.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Permissions {
    /// Destinations the plugin asks to send requests to, as `scheme://host[:port]`; the host
    /// may start with `*.` and the port may be `*`.
    /// Example: `hosts = ["https://api.github.com", "http://127.0.0.1:*"]`
    #[serde(default)]
    pub hosts: Vec<HostPattern>,
    /// Secrets the plugin asks the host to attach, by name.
    /// Example: `[permissions.secrets.github_token] placement = "bearer"`
    #[serde(default)]
    pub secrets: BTreeMap<String, SecretRequest>,
}

/// One requested secret: where its value goes in a request and which destinations it is for.
/// Where the value comes from is the operator's to say, never the manifest's.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretRequest {
    /// Where the host places the value; the plugin can attach the secret only there.
    /// Example: `placement = "bearer"` or `placement = { header = "X-Api-Key" }`
    pub placement: Placement,
    /// Destinations the secret is for; each must also be in `permissions.hosts`.
    /// Example: `hosts = ["https://api.github.com"]`
    pub hosts: Vec<HostPattern>,
    /// Whether the plugin cannot run without it: a required secret the operator does not grant
    /// stops the run before it starts; an optional one is reported as unavailable.
    /// Example: `required = false`
    #[serde(default = "required_by_default")]
    pub required: bool,
    /// What the secret is, for the operator.
    /// Example: `description = "a GitHub token with read access to issues"`
    #[serde(default)]
    pub description: Option<String>,
    /// When the host attaches it: when a request asks (`"on-request"`, the default), or to
    /// every request whose destination it is bound to (`"auto"`), for plugins that make requests
    /// through the standard `wasi:http` interface and so cannot name a secret.
    /// Example: `attach = "auto"`
    #[serde(default)]
    pub attach: Attach,
    #[serde(default, rename = "env", deserialize_with = "source_is_the_operators")]
    _env: Option<()>,
    #[serde(default, rename = "file", deserialize_with = "source_is_the_operators")]
    _file: Option<()>,
    #[serde(default, rename = "command", deserialize_with = "source_is_the_operators")]
    _command: Option<()>,
    #[serde(default, rename = "source", deserialize_with = "source_is_the_operators")]
    _source: Option<()>,
    #[serde(default, rename = "value", deserialize_with = "source_is_the_operators")]
    _value: Option<()>,
}

impl SecretRequest {
    /// A required secret placed at `placement` and sent only to `hosts`.
    pub fn new(placement: Placement, hosts: Vec<HostPattern>) -> Self {
        Self {
            placement,
            hosts,
            required: true,
            description: None,
            attach: Attach::OnRequest,
            _env: None,
            _file: None,
            _command: None,
            _source: None,
            _value: None,
        }
    }
}

/// When the host attaches a secret to a request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Attach {
    /// Only when the request names it (the `apiary:plugin/http` interface).
    #[default]
    OnRequest,
    /// To every request whose destination it is bound to, when the run holds it; a request
    /// that also names it gets it once.
    Auto,
}

fn required_by_default() -> bool {
    true
}

/// Refuses any field that would let a plugin choose where a secret's value is read from: a
/// third-party manifest naming `AWS_SECRET_ACCESS_KEY` must not make the host read it.
fn source_is_the_operators<'de, D: Deserializer<'de>>(d: D) -> Result<Option<()>, D::Error> {
    serde::de::IgnoredAny::deserialize(d)?;
    Err(serde::de::Error::custom(
        "a plugin cannot say where a secret's value comes from: the operator configures sources \
         (in apiary.toml, `[plugins.<id>.secrets.<name>] source = \"env:VAR\"`, or `apiary run --secret <name>=SOURCE`)",
    ))
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
    #[serde(deserialize_with = "deadline")]
    pub deadline: Duration,
    /// Timeout of one HTTP attempt, all phases together, unless the request sets its own.
    /// Example: `request_timeout = "30s"`
    #[serde(deserialize_with = "request_timeout")]
    pub request_timeout: Duration,
    /// Time allowed to open a connection (TCP and TLS).
    /// Example: `connect_timeout = "10s"`
    #[serde(deserialize_with = "request_timeout")]
    pub connect_timeout: Duration,
    /// Time allowed from the start of an attempt to its response's headers (connecting
    /// included).
    /// Example: `first_byte_timeout = "30s"`
    #[serde(deserialize_with = "request_timeout")]
    pub first_byte_timeout: Duration,
    /// Time allowed between two pieces of a response's body: a server that stalls mid-body
    /// fails the attempt without waiting out the whole `request_timeout`.
    /// Example: `idle_timeout = "15s"`
    #[serde(deserialize_with = "request_timeout")]
    pub idle_timeout: Duration,
    /// Largest response body accepted, in bytes.
    /// Example: `max_response_bytes = 16777216`
    pub max_response_bytes: u64,
    /// Requests of one batch in flight at once.
    /// Example: `max_concurrency = 8`
    pub max_concurrency: u32,
}

fn deadline<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    duration::at_most(d, MAX_DEADLINE)
}

fn request_timeout<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    duration::at_most(d, MAX_REQUEST_TIMEOUT)
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            memory_mib: DEFAULT_MEMORY_MIB,
            deadline: DEFAULT_DEADLINE,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            first_byte_timeout: DEFAULT_REQUEST_TIMEOUT,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
            max_concurrency: DEFAULT_MAX_CONCURRENCY,
        }
    }
}

impl Manifest {
    /// Loads the manifest at `path`, or `path/plugin.toml` when `path` is a directory.
    ///
    /// # Errors
    /// [`ConfigError`] when the file cannot be read, does not parse, or is inconsistent.
    pub fn load(path: &Path) -> Result<LoadedManifest, ConfigError> {
        let path = if path.is_dir() {
            path.join(MANIFEST_FILE)
        } else {
            path.to_path_buf()
        };
        let manifest = Self::parse(&toml_file::read(&path)?, &path)?;
        let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        Ok(LoadedManifest { manifest, path, dir })
    }

    /// Parses and validates manifest text; `path` is only used in error messages.
    ///
    /// # Errors
    /// [`ConfigError::Parse`] or [`ConfigError::Invalid`].
    pub fn parse(text: &str, path: &Path) -> Result<Self, ConfigError> {
        let manifest: Manifest = toml_file::parse(text, path)?;
        manifest.validate(path)?;
        Ok(manifest)
    }

    fn validate(&self, path: &Path) -> Result<(), ConfigError> {
        let invalid = |field: String, message: String| ConfigError::Invalid {
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
            && !toml_file::is_sha256_hex(sha)
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

    /// Reads the component and checks it against every SHA-256 pin given: the manifest's own
    /// `sha256`, and `operator_pin` (the operator's, which is what makes an install trusted).
    ///
    /// # Errors
    /// [`ConfigError::Read`] when the file is missing, [`ConfigError::Invalid`] on a checksum
    /// mismatch, naming the pin that failed.
    pub fn read_component(&self, path: &Path, operator_pin: Option<&Pin>) -> Result<ComponentBytes, ConfigError> {
        let bytes = std::fs::read(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let sha256: [u8; 32] = Sha256::digest(&bytes).into();
        let actual = hex::encode(sha256);
        let own = self.manifest.sha256.as_ref().map(|expected| Pin {
            file: self.path.clone(),
            field: "sha256".into(),
            expected: expected.clone(),
        });
        for pin in own.iter().chain(operator_pin) {
            if !actual.eq_ignore_ascii_case(&pin.expected) {
                return Err(ConfigError::Invalid {
                    path: pin.file.clone(),
                    field: pin.field.clone(),
                    message: format!("{} has sha256 {actual}, expected {}", path.display(), pin.expected),
                });
            }
        }
        Ok(ComponentBytes { bytes, sha256 })
    }
}

/// A component's bytes and their SHA-256, computed once for the pins and the compile cache's key
/// (hashing a 19 MB interpreter component takes milliseconds).
#[derive(Debug, Clone)]
pub struct ComponentBytes {
    /// The component.
    pub bytes: Vec<u8>,
    /// Its SHA-256.
    pub sha256: [u8; 32],
}

/// An expected SHA-256 of a component, and where it was written (for the error message).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pin {
    /// The file that gives the pin.
    pub file: PathBuf,
    /// The field, e.g. `plugins.github.sha256`.
    pub field: String,
    /// 64 hex digits.
    pub expected: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Manifest, ConfigError> {
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
             [permissions.secrets.tok]\nplacement = {{ header = \"X-Api-Key\" }}\nhosts = [\"https://api.github.com\"]\n\
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
        let tok = &m.permissions.secrets["tok"];
        assert_eq!(tok.placement, Placement::header("x-api-key"));
        assert!(tok.required, "secrets are required unless marked optional");
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
             [permissions.secrets.tok]\nplacement = \"bearer\"\nhosts = [\"https://evil.example\"]\n"
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

    /// Regression: `deadline = "18446744073709551615s"` (or `"1000000y"`) was accepted, and the
    /// run's deadline `now + deadline` overflowed and panicked the host (found by the property
    /// tests); durations now have documented upper bounds checked with file, line and field.
    #[test]
    fn enormous_durations_are_refused_with_line_and_field() {
        for (table, field, value) in [
            ("limits", "deadline", "1000000y"),
            ("limits", "deadline", "18446744073709551615s"),
            ("limits", "deadline", "25h"),
            ("limits", "request_timeout", "2h"),
            ("retry", "base_delay", "2d"),
            ("retry", "max_delay", "2d"),
            ("retry", "max_retry_after", "1000000y"),
        ] {
            let err = parse(&format!("{MINIMAL}[{table}]\n{field} = \"{value}\"\n"))
                .unwrap_err()
                .to_string();
            assert!(
                err.starts_with("plugins/x/plugin.toml:5:")
                    && err.contains(&format!("{table}.{field}: `{value}` is too long: at most")),
                "{err}"
            );
        }
        let err = parse(&format!(
            "{MINIMAL}[[ratelimit]]\nbucket = \"h\"\nrate = 1\nper = \"2y\"\n"
        ))
        .unwrap_err()
        .to_string();
        assert!(
            err.contains(":7:") && err.contains("ratelimit[0].per: `2y` is too long"),
            "{err}"
        );
        let at_bounds = format!(
            "{MINIMAL}[limits]\ndeadline = \"24h\"\nrequest_timeout = \"1h\"\n[retry]\nmax_retry_after = \"24h\"\n"
        );
        assert_eq!(parse(&at_bounds).unwrap().limits.deadline, MAX_DEADLINE);
    }

    /// Regression: a third-party manifest said `env = "AWS_SECRET_ACCESS_KEY"` and the host read
    /// the operator's variable and sent it where the manifest said.
    #[test]
    fn a_manifest_cannot_name_where_a_secret_comes_from() {
        for field in [
            "env = \"AWS_SECRET_ACCESS_KEY\"",
            "file = \"/etc/passwd\"",
            "command = \"cat ~/.aws/credentials\"",
            "source = \"env:HOME\"",
            "value = \"literal-value\"",
        ] {
            let text = format!(
                "{MINIMAL}[permissions]\nhosts = [\"https://collector.example\"]\n\
                 [permissions.secrets.x]\nplacement = \"bearer\"\nhosts = [\"https://collector.example\"]\n{field}\n"
            );
            let err = parse(&text).unwrap_err().to_string();
            let name = field.split(' ').next().unwrap();
            assert!(
                err.starts_with("plugins/x/plugin.toml:9:") && err.contains(&format!("permissions.secrets.x.{name}")),
                "{err}"
            );
            assert!(err.contains("the operator configures sources"), "{err}");
        }
    }

    #[test]
    fn a_secret_needs_a_placement() {
        let text = format!(
            "{MINIMAL}[permissions]\nhosts = [\"https://a.example\"]\n\
             [permissions.secrets.x]\nhosts = [\"https://a.example\"]\n"
        );
        let err = parse(&text).unwrap_err().to_string();
        assert!(
            err.contains("permissions.secrets.x") && err.contains("missing field `placement`"),
            "{err}"
        );
    }
}
