//! The operator file, `apiary.toml`: which plugins are installed, and what each is granted.
//!
//! The plugin's author writes `plugin.toml` and *asks*; the operator writes this file and
//! *grants*. A run may do only what both allow (see [`resolve`](crate::resolve)).
//!
//! ```toml
//! # The id, `github` here, keys the plugin's state, rate-limit buckets and logs.
//! [plugins.github]
//! path = "plugins/github"                    # the plugin's directory, relative to this file
//! sha256 = "9f86d0…"                         # optional: the component's pin
//! hosts = ["https://api.github.com"]         # granted: only these of the hosts it asks for
//! allow_net = ["10.20.0.0/16"]               # optional: private networks it may connect to
//!
//! [plugins.github.secrets.github_token]
//! source = "cmd:pass show apiary/github"     # or env:VAR, dotenv:FILE[#KEY]
//! ttl = "5m"                                 # re-read after this long (rotation)
//!
//! [plugins.github.limits]                    # caps on what the plugin asks for
//! memory_mib = 128
//!
//! [[plugins.github.ratelimit]]               # extra limits, on top of the plugin's
//! bucket = "api.github.com"
//! rate = 1000
//! per = "1h"
//! ```
//!
//! The file is found by `--operator FILE`, else the `APIARY_OPERATOR` environment variable.
//! There is no implicit lookup in the working directory: a cloned plugin repository could
//! otherwise ship an `apiary.toml` that grants itself the operator's secrets.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Deserializer};

use crate::grant::{Grant, GrantOrigin, LimitCaps, SecretGrant, is_valid_plugin_id};
use crate::http::{Cidr, HostPattern};
use crate::manifest::{MANIFEST_FILE, Pin};
use crate::ratelimit::RateLimitConfig;
use crate::secrets::{DEFAULT_COMMAND_TIMEOUT, DEFAULT_SECRET_TTL, SourceSpec};
use crate::toml_file::{self, ConfigError, duration};

/// The environment variable naming the operator file when `--operator` is not given.
pub const OPERATOR_FILE_VAR: &str = "APIARY_OPERATOR";

/// A parsed `apiary.toml`.
#[derive(Debug, Clone)]
pub struct OperatorConfig {
    /// The file it was read from.
    pub path: PathBuf,
    /// Installed plugins, by id.
    pub plugins: BTreeMap<String, PluginInstall>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct OperatorFile {
    #[serde(default)]
    plugins: BTreeMap<String, PluginInstall>,
}

/// One installed plugin: where it is and what it is granted.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginInstall {
    /// The plugin's directory or its `plugin.toml`, relative to the operator file.
    /// Example: `path = "plugins/github"`
    pub path: PathBuf,
    /// The component to run instead of the manifest's, relative to the operator file.
    /// Example: `component = "/opt/apiary/github.wasm"`
    #[serde(default)]
    pub component: Option<PathBuf>,
    /// The component's expected SHA-256, in hex.
    /// Example: `sha256 = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"`
    #[serde(default)]
    pub sha256: Option<String>,
    /// Destinations granted (of those the plugin asks for).
    /// Example: `hosts = ["https://api.github.com"]`
    #[serde(default)]
    pub hosts: Vec<HostPattern>,
    /// Special-purpose networks (loopback, private, link-local, ...) the plugin may connect
    /// to; without one, a granted host that resolves to such an address is refused.
    /// Example: `allow_net = ["127.0.0.0/8", "10.20.0.0/16"]`
    #[serde(default)]
    pub allow_net: Vec<Cidr>,
    /// Secrets granted, by the name the plugin asks for.
    /// Example: `[plugins.github.secrets.github_token] source = "env:GITHUB_TOKEN"`
    #[serde(default)]
    pub secrets: BTreeMap<String, SecretSourceConfig>,
    /// Caps on the plugin's limits.
    /// Example: `[plugins.github.limits] memory_mib = 128`
    #[serde(default)]
    pub limits: LimitCaps,
    /// Rate limits added to the plugin's own.
    #[serde(default)]
    pub ratelimit: Vec<RateLimitConfig>,
}

/// One granted secret in the operator file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretSourceConfig {
    /// Where the value comes from: `env:VAR`, `dotenv:FILE[#KEY]` or `cmd:PROGRAM ARGS...`.
    /// Example: `source = "cmd:pass show apiary/github"`
    #[serde(deserialize_with = "source_spec")]
    pub source: SourceSpec,
    /// Narrows where the secret may be sent, below what the plugin asks for.
    /// Example: `hosts = ["https://api.github.com"]`
    #[serde(default)]
    pub hosts: Option<Vec<HostPattern>>,
    /// How long a value is reused before the source is read again.
    /// Example: `ttl = "5m"`
    #[serde(default, with = "duration::option")]
    pub ttl: Option<Duration>,
    /// How long a `cmd:` source may run.
    /// Example: `timeout = "10s"`
    #[serde(default, with = "duration::option")]
    pub timeout: Option<Duration>,
}

fn source_spec<'de, D: Deserializer<'de>>(d: D) -> Result<SourceSpec, D::Error> {
    String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
}

impl OperatorConfig {
    /// The operator file named by `flag`, else by `$APIARY_OPERATOR`; `None` when neither is set.
    ///
    /// # Errors
    /// [`ConfigError`] when the named file cannot be read or is invalid.
    pub fn discover(flag: Option<&Path>) -> Result<Option<Self>, ConfigError> {
        let path = match flag {
            Some(path) => path.to_path_buf(),
            None => match std::env::var_os(OPERATOR_FILE_VAR) {
                Some(path) if !path.is_empty() => PathBuf::from(path),
                _ => return Ok(None),
            },
        };
        Self::load(&path).map(Some)
    }

    /// Reads and validates the operator file at `path`.
    ///
    /// # Errors
    /// [`ConfigError`] naming the file, line, column and field.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        Self::parse(&toml_file::read(path)?, path)
    }

    /// Parses operator-file text; relative paths are taken against `path`'s directory.
    ///
    /// # Errors
    /// [`ConfigError`] naming the file, line, column and field.
    pub fn parse(text: &str, path: &Path) -> Result<Self, ConfigError> {
        let file: OperatorFile = toml_file::parse(text, path)?;
        let invalid = |field: String, message: String| ConfigError::Invalid {
            path: path.to_path_buf(),
            field,
            message,
        };
        let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let mut plugins = BTreeMap::new();
        for (id, mut install) in file.plugins {
            if !is_valid_plugin_id(&id) {
                return Err(invalid(
                    format!("plugins.{id}"),
                    "a plugin id is ASCII letters, digits, `-` or `_`".into(),
                ));
            }
            if let Some(sha) = &install.sha256
                && !toml_file::is_sha256_hex(sha)
            {
                return Err(invalid(format!("plugins.{id}.sha256"), "must be 64 hex digits".into()));
            }
            install.path = dir.join(&install.path);
            install.component = install.component.map(|c| dir.join(c));
            for secret in install.secrets.values_mut() {
                secret.source = secret.source.resolve_relative(&dir);
            }
            plugins.insert(id, install);
        }
        Ok(Self {
            path: path.to_path_buf(),
            plugins,
        })
    }

    /// The installed plugin `plugin` names: its id, or the path of its directory or manifest.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] when nothing installed matches, listing what is.
    pub fn find(&self, plugin: &str) -> Result<(&str, &PluginInstall), ConfigError> {
        if let Some((id, install)) = self.plugins.get_key_value(plugin) {
            return Ok((id, install));
        }
        let wanted = manifest_path(Path::new(plugin)).canonicalize().ok();
        let by_path = self
            .plugins
            .iter()
            .find(|(_, install)| wanted.is_some() && manifest_path(&install.path).canonicalize().ok() == wanted);
        by_path.map(|(id, install)| (id.as_str(), install)).ok_or_else(|| {
            let installed: Vec<&str> = self.plugins.keys().map(String::as_str).collect();
            ConfigError::Invalid {
                path: self.path.clone(),
                field: "plugins".into(),
                message: format!(
                    "`{plugin}` is not installed (installed: {}); add `[plugins.<id>] path = \"{plugin}\"`",
                    if installed.is_empty() {
                        "none".to_string()
                    } else {
                        installed.join(", ")
                    }
                ),
            }
        })
    }

    /// What the operator grants the installed plugin `id` (a grant of nothing when it is not installed).
    pub fn grant(&self, id: &str) -> Grant {
        let mut grant = Grant::new(id);
        grant.origin = GrantOrigin::OperatorFile(self.path.clone());
        let Some(install) = self.plugins.get(id) else {
            return grant;
        };
        grant.hosts = install.hosts.clone();
        grant.networks = install.allow_net.clone();
        grant.limits = install.limits.clone();
        grant.ratelimits = install.ratelimit.clone();
        grant.pin = install.sha256.as_ref().map(|expected| Pin {
            file: self.path.clone(),
            field: format!("plugins.{id}.sha256"),
            expected: expected.clone(),
        });
        for (name, config) in &install.secrets {
            let source = config
                .source
                .clone()
                .into_source(name, config.timeout.unwrap_or(DEFAULT_COMMAND_TIMEOUT));
            let mut secret = SecretGrant::from_arc(source);
            secret.hosts = config.hosts.clone();
            secret.ttl = config.ttl.unwrap_or(DEFAULT_SECRET_TTL);
            grant.secrets.insert(name.clone(), secret);
        }
        grant
    }
}

/// `path` itself, or `path/plugin.toml` when it is a directory.
pub(crate) fn manifest_path(path: &Path) -> PathBuf {
    if path.is_dir() {
        path.join(MANIFEST_FILE)
    } else {
        path.to_path_buf()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = r#"
[plugins.github]
path = "plugins/github"
sha256 = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
hosts = ["https://api.github.com"]
allow_net = ["10.20.0.0/16", "::1"]

[plugins.github.secrets.github_token]
source = "cmd:pass show apiary/github"
ttl = "1m"

[plugins.github.limits]
memory_mib = 64

[[plugins.github.ratelimit]]
bucket = "api.github.com"
rate = 10
per = "1s"

[plugins.crm-b]
path = "/srv/crm"

[plugins.crm-b.secrets.key]
source = "dotenv:secrets/crm.env#CRM_KEY"
"#;

    fn parse(text: &str) -> Result<OperatorConfig, ConfigError> {
        OperatorConfig::parse(text, Path::new("/etc/apiary/apiary.toml"))
    }

    #[test]
    fn a_full_file_becomes_grants() {
        let config = parse(FILE).unwrap();
        assert_eq!(config.plugins["github"].path, Path::new("/etc/apiary/plugins/github"));
        let grant = config.grant("github");
        assert_eq!(grant.plugin_id, "github");
        assert_eq!(grant.hosts.len(), 1);
        let networks: Vec<String> = grant.networks.iter().map(ToString::to_string).collect();
        assert_eq!(networks, ["10.20.0.0/16", "::1/128"]);
        assert!(config.grant("crm-b").networks.is_empty(), "nothing special by default");
        assert_eq!(grant.limits.memory_mib, Some(64));
        assert_eq!(grant.ratelimits.len(), 1);
        assert_eq!(grant.pin.as_ref().unwrap().field, "plugins.github.sha256");
        let token = &grant.secrets["github_token"];
        assert_eq!(token.ttl, Duration::from_secs(60));
        assert_eq!(token.source.describe(), "cmd:pass show apiary/github");
        let key = &config.grant("crm-b").secrets["key"];
        assert_eq!(key.source.describe(), "dotenv:/etc/apiary/secrets/crm.env#CRM_KEY");
        assert!(config.grant("not-installed").secrets.is_empty());
    }

    #[test]
    fn mistakes_name_the_file_line_and_field() {
        let err = parse("[plugins.x]\npath = \"p\"\n[plugins.x.secrets.tok]\nsource = \"vault:x\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with(
                "/etc/apiary/apiary.toml:4:10: plugins.x.secrets.tok.source: `vault:…` is not a secret source"
            ),
            "{err}"
        );
        let err = parse("[plugins.x]\npath = \"p\"\nhost = []\n").unwrap_err().to_string();
        assert!(err.contains(":3:1: plugins.x.host: unknown field `host`"), "{err}");
        let err = parse("[plugins.\"a b\"]\npath = \"p\"\n").unwrap_err().to_string();
        assert!(err.contains("plugins.a b: a plugin id is"), "{err}");
        let err = parse("[plugins.x]\npath = \"p\"\nsha256 = \"abc\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("plugins.x.sha256: must be 64 hex digits"), "{err}");
        let err = parse("[plugins.x]\npath = \"p\"\nallow_net = [\"127.0.0.0/8\", \"10.0.0.1/8\"]\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(
                ":3:13: plugins.x.allow_net[1]: invalid network `10.0.0.1/8`: bits are set after the prefix; the network is 10.0.0.0/8"
            ),
            "{err}"
        );
    }

    /// Regression: an operator cap of `deadline = "18446744073709551615s"` was accepted like the
    /// manifest's (which overflowed the run's deadline); caps have the manifest's bounds.
    #[test]
    fn enormous_limit_caps_are_refused() {
        let err = parse("[plugins.x]\npath = \"p\"\n[plugins.x.limits]\ndeadline = \"18446744073709551615s\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(":4:") && err.contains("plugins.x.limits.deadline: `18446744073709551615s` is too long"),
            "{err}"
        );
        let err = parse("[plugins.x]\npath = \"p\"\n[plugins.x.limits]\nrequest_timeout = \"1000000y\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("plugins.x.limits.request_timeout: `1000000y` is too long"),
            "{err}"
        );
    }

    #[test]
    fn find_by_id_or_path_and_list_what_is_installed() {
        let dir = tempfile::tempdir().unwrap();
        let plugin = dir.path().join("p");
        std::fs::create_dir(&plugin).unwrap();
        std::fs::write(plugin.join(MANIFEST_FILE), "").unwrap();
        let config = OperatorConfig::parse("[plugins.mine]\npath = \"p\"\n", &dir.path().join("apiary.toml")).unwrap();
        assert_eq!(config.find("mine").unwrap().0, "mine");
        assert_eq!(config.find(plugin.to_str().unwrap()).unwrap().0, "mine");
        let err = config.find("other").unwrap_err().to_string();
        assert!(err.contains("`other` is not installed (installed: mine)"), "{err}");
    }
}
