//! What the operator grants a plugin, and what a run may therefore do: the intersection of the
//! plugin's request (`plugin.toml`, written by its author) and the operator's [`Grant`].
//!
//! A grant is plain data, so the CLI builds one from `apiary.toml` or its flags, and a server can
//! hold one per tenant. [`resolve`] is pure: it takes the request and the grant and returns the
//! [`Resolved`] permissions, or the reason the plugin cannot run.
//!
//! ```
//! use apiary_host::{Grant, Manifest, SecretGrant, StaticSource, resolve};
//! use std::path::Path;
//!
//! let manifest = Manifest::parse(r#"
//!     name = "crm-sync"
//!     version = "1.0.0"
//!     component = "crm.wasm"
//!     [permissions]
//!     hosts = ["https://api.crm.example", "https://telemetry.example"]
//!     [permissions.secrets.api_key]
//!     placement = { header = "X-Api-Key" }
//!     hosts = ["https://api.crm.example"]
//! "#, Path::new("plugin.toml")).unwrap();
//! let grant = Grant::new("acme-crm")
//!     .host("https://api.crm.example".parse().unwrap())
//!     .secret("api_key", SecretGrant::new(StaticSource::new("k3y-from-the-vault".into())));
//! let resolved = resolve(&manifest, &grant).unwrap();
//! let url = url::Url::parse("https://telemetry.example/beacon").unwrap();
//! assert!(!resolved.hosts.allows(&url), "asked for, but not granted");
//! assert_eq!(resolved.plugin_id, "acme-crm");
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use url::Url;

use crate::http::{Cidr, HostPattern, NetPolicy};
use crate::manifest::{Attach, Limits, MAX_DEADLINE, MAX_REQUEST_TIMEOUT, Manifest, Pin};
use crate::ratelimit::RateLimitConfig;
use crate::secrets::{DEFAULT_COMMAND_TIMEOUT, DEFAULT_SECRET_TTL, Placement, SecretSource, SourceSpec};
use crate::toml_file::duration;

/// Who granted: named in errors so the fix is obvious.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GrantOrigin {
    /// `apiary run` flags, with no operator file: the person running the plugin grants.
    CommandLine,
    /// An operator file.
    OperatorFile(PathBuf),
    /// An embedding program.
    Embedder,
}

/// What an operator grants one installed plugin.
#[derive(Debug, Clone)]
pub struct Grant {
    /// The id the plugin's state, buckets and logs are keyed by: two plugins that both call
    /// themselves `crm-sync` never share state or limits when installed under different ids.
    pub plugin_id: String,
    /// Destinations granted; a request must match one of these and one the plugin asked for.
    pub hosts: Vec<HostPattern>,
    /// Special-purpose networks (loopback, private, link-local, ...) the plugin's connections
    /// may reach; every other such address is refused, whatever name resolves to it.
    pub networks: Vec<Cidr>,
    /// Secrets granted, by name, with the source of each value.
    pub secrets: BTreeMap<String, SecretGrant>,
    /// Caps on the limits the plugin asks for.
    pub limits: LimitCaps,
    /// Rate limits the operator adds to the plugin's own.
    pub ratelimits: Vec<RateLimitConfig>,
    /// The component's expected SHA-256.
    pub pin: Option<Pin>,
    /// Who granted.
    pub origin: GrantOrigin,
}

impl Grant {
    /// A grant of nothing to the plugin `plugin_id`, by an embedding program.
    pub fn new(plugin_id: impl Into<String>) -> Self {
        Self {
            plugin_id: plugin_id.into(),
            hosts: Vec::new(),
            networks: Vec::new(),
            secrets: BTreeMap::new(),
            limits: LimitCaps::default(),
            ratelimits: Vec::new(),
            pin: None,
            origin: GrantOrigin::Embedder,
        }
    }

    /// What running a plugin directory from the command line grants with no operator file: the
    /// hosts it asks for, and no secrets (those are granted one by one with `--secret`).
    pub fn local(manifest: &Manifest) -> Self {
        Self {
            hosts: manifest.permissions.hosts.clone(),
            origin: GrantOrigin::CommandLine,
            ..Self::new(manifest.name.clone())
        }
    }

    /// The same grant with `pattern` granted too.
    pub fn host(mut self, pattern: HostPattern) -> Self {
        self.hosts.push(pattern);
        self
    }

    /// The same grant with the network `cidr` granted too.
    pub fn network(mut self, cidr: Cidr) -> Self {
        self.networks.push(cidr);
        self
    }

    /// The same grant with the secret `name` granted from `grant`'s source.
    pub fn secret(mut self, name: impl Into<String>, grant: SecretGrant) -> Self {
        self.secrets.insert(name.into(), grant);
        self
    }
}

/// One granted secret: where its value comes from, how long a value is reused, and optionally
/// a narrower set of destinations than the plugin asked for.
#[derive(Debug, Clone)]
pub struct SecretGrant {
    /// Reads the value.
    pub source: Arc<dyn SecretSource>,
    /// Destinations the operator allows it to be sent to; `None` allows all the plugin asked for.
    pub hosts: Option<Vec<HostPattern>>,
    /// How long a value read from the source is reused before it is read again.
    pub ttl: Duration,
}

impl SecretGrant {
    /// A grant of the value `source` reads, re-read every [`DEFAULT_SECRET_TTL`].
    pub fn new(source: impl SecretSource + 'static) -> Self {
        Self::from_arc(Arc::new(source))
    }

    /// A grant of the value `spec` points at (`env:VAR`, `dotenv:FILE[#KEY]`, `cmd:PROGRAM ARGS`)
    /// for the secret `name`, which is a `dotenv:` file's default key; a `cmd:` source may run
    /// for [`DEFAULT_COMMAND_TIMEOUT`](crate::DEFAULT_COMMAND_TIMEOUT).
    ///
    /// ```
    /// use apiary_host::SecretGrant;
    ///
    /// let grant = SecretGrant::from_spec("github_token", "cmd:pass show apiary/github".parse().unwrap());
    /// assert_eq!(grant.source.describe(), "cmd:pass show apiary/github");
    /// ```
    pub fn from_spec(name: &str, spec: SourceSpec) -> Self {
        Self::from_arc(spec.into_source(name, DEFAULT_COMMAND_TIMEOUT))
    }

    /// As [`SecretGrant::new`], for a shared source.
    pub fn from_arc(source: Arc<dyn SecretSource>) -> Self {
        Self {
            source,
            hosts: None,
            ttl: DEFAULT_SECRET_TTL,
        }
    }
}

/// The operator's caps on a plugin's `[limits]`; the run gets the smaller of the two.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitCaps {
    /// Example: `memory_mib = 128`
    #[serde(default)]
    pub memory_mib: Option<u32>,
    /// Example: `deadline = "5m"`
    #[serde(default, deserialize_with = "deadline_cap")]
    pub deadline: Option<Duration>,
    /// Example: `request_timeout = "10s"`
    #[serde(default, deserialize_with = "request_timeout_cap")]
    pub request_timeout: Option<Duration>,
    /// Example: `connect_timeout = "5s"`
    #[serde(default, deserialize_with = "request_timeout_cap")]
    pub connect_timeout: Option<Duration>,
    /// Example: `first_byte_timeout = "10s"`
    #[serde(default, deserialize_with = "request_timeout_cap")]
    pub first_byte_timeout: Option<Duration>,
    /// Example: `idle_timeout = "10s"`
    #[serde(default, deserialize_with = "request_timeout_cap")]
    pub idle_timeout: Option<Duration>,
    /// Example: `max_response_bytes = 1048576`
    #[serde(default)]
    pub max_response_bytes: Option<u64>,
    /// Example: `max_concurrency = 4`
    #[serde(default)]
    pub max_concurrency: Option<u32>,
}

fn deadline_cap<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    duration::option_at_most(d, MAX_DEADLINE)
}

fn request_timeout_cap<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    duration::option_at_most(d, MAX_REQUEST_TIMEOUT)
}

impl LimitCaps {
    /// `asked`, with every capped field lowered to its cap.
    pub fn apply(&self, asked: &Limits) -> Limits {
        fn min<T: Ord + Copy>(asked: T, cap: Option<T>) -> T {
            cap.map_or(asked, |cap| asked.min(cap))
        }
        Limits {
            memory_mib: min(asked.memory_mib, self.memory_mib),
            deadline: min(asked.deadline, self.deadline),
            request_timeout: min(asked.request_timeout, self.request_timeout),
            connect_timeout: min(asked.connect_timeout, self.connect_timeout),
            first_byte_timeout: min(asked.first_byte_timeout, self.first_byte_timeout),
            idle_timeout: min(asked.idle_timeout, self.idle_timeout),
            max_response_bytes: min(asked.max_response_bytes, self.max_response_bytes),
            max_concurrency: min(asked.max_concurrency, self.max_concurrency),
        }
    }
}

/// A set of destinations given as several pattern lists, all of which must match: what the
/// plugin asked for, what the operator granted, and for a secret, what it is bound to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Destinations {
    all_of: Vec<Vec<HostPattern>>,
}

impl Destinations {
    /// Destinations matched by one of `patterns` (and by every list added with [`and`](Self::and)).
    pub fn new(patterns: Vec<HostPattern>) -> Self {
        Self { all_of: vec![patterns] }
    }

    /// The intersection with `patterns`.
    pub fn and(mut self, patterns: Vec<HostPattern>) -> Self {
        self.all_of.push(patterns);
        self
    }

    /// Whether `url` is matched by one pattern of every list.
    pub fn allows(&self, url: &Url) -> bool {
        self.all_of.iter().all(|list| list.iter().any(|p| p.matches(url)))
    }
}

/// One secret a run holds: the declared placement, where it may go, and its grant.
#[derive(Debug, Clone)]
pub struct ResolvedSecret {
    /// Where the value goes, as the manifest declares it.
    pub placement: Placement,
    /// Where it may be sent: asked for by the secret, granted to the plugin, granted to the secret.
    pub destinations: Destinations,
    /// Whether the plugin marks it required.
    pub required: bool,
    /// When the host attaches it.
    pub attach: Attach,
    /// The source and TTL.
    pub grant: SecretGrant,
}

/// What a run of the plugin may do: the request intersected with the grant.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// The plugin's id.
    pub plugin_id: String,
    /// Destinations the plugin may reach.
    pub hosts: Destinations,
    /// Special-purpose networks its connections may reach.
    pub net: NetPolicy,
    /// Secrets asked for and granted.
    pub secrets: BTreeMap<String, ResolvedSecret>,
    /// The plugin's limits under the operator's caps.
    pub limits: Limits,
    /// The plugin's rate limits followed by the operator's.
    pub ratelimits: Vec<RateLimitConfig>,
}

/// Why a plugin cannot run under its grant.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GrantError {
    /// A secret the plugin requires is not granted.
    #[error(
        "plugin `{plugin}` requires the secret `{secret}`, which is not granted: {}",
        grant_hint(origin, plugin, secret)
    )]
    SecretNotGranted {
        /// The plugin's id.
        plugin: String,
        /// The secret's name.
        secret: String,
        /// Who should grant it.
        origin: GrantOrigin,
    },
    /// The plugin id cannot key state and buckets.
    #[error("`{0}` is not a valid plugin id: use ASCII letters, digits, `-` or `_`")]
    InvalidPluginId(String),
}

fn grant_hint(origin: &GrantOrigin, plugin: &str, secret: &str) -> String {
    match origin {
        GrantOrigin::CommandLine => format!(
            "pass --secret {secret}=SOURCE (env:VAR, dotenv:FILE or cmd:PROGRAM ARGS...) or an --env-file with a `{secret}=` line"
        ),
        GrantOrigin::OperatorFile(path) => format!(
            "add `[plugins.{plugin}.secrets.{secret}]` with a `source` to {}",
            path.display()
        ),
        GrantOrigin::Embedder => format!("add it to the plugin's Grant (Grant::secret(\"{secret}\", ...))"),
    }
}

/// Whether `id` can name a plugin's state file and buckets.
pub(crate) fn is_valid_plugin_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 128 && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// Intersects what `manifest` asks for with what `grant` gives.
///
/// # Errors
/// [`GrantError::SecretNotGranted`] for a required secret the grant lacks.
pub fn resolve(manifest: &Manifest, grant: &Grant) -> Result<Resolved, GrantError> {
    if !is_valid_plugin_id(&grant.plugin_id) {
        return Err(GrantError::InvalidPluginId(grant.plugin_id.clone()));
    }
    let asked = &manifest.permissions;
    let hosts = Destinations::new(asked.hosts.clone()).and(grant.hosts.clone());
    let mut secrets = BTreeMap::new();
    for (name, request) in &asked.secrets {
        let Some(secret_grant) = grant.secrets.get(name) else {
            if request.required {
                return Err(GrantError::SecretNotGranted {
                    plugin: grant.plugin_id.clone(),
                    secret: name.clone(),
                    origin: grant.origin.clone(),
                });
            }
            continue;
        };
        let mut destinations = hosts.clone().and(request.hosts.clone());
        if let Some(narrowed) = &secret_grant.hosts {
            destinations = destinations.and(narrowed.clone());
        }
        secrets.insert(
            name.clone(),
            ResolvedSecret {
                placement: request.placement.clone(),
                destinations,
                required: request.required,
                attach: request.attach,
                grant: secret_grant.clone(),
            },
        );
    }
    Ok(Resolved {
        plugin_id: grant.plugin_id.clone(),
        hosts,
        net: NetPolicy::new(grant.networks.clone()),
        secrets,
        limits: grant.limits.apply(&manifest.limits),
        ratelimits: manifest.ratelimit.iter().chain(&grant.ratelimits).cloned().collect(),
    })
}

/// Requested against granted, side by side, as `apiary inspect` prints it.
#[derive(Debug)]
pub struct GrantReport<'a> {
    /// What the plugin asks for.
    pub manifest: &'a Manifest,
    /// What it is granted.
    pub grant: &'a Grant,
}

impl fmt::Display for GrantReport<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (asked, grant) = (&self.manifest.permissions, self.grant);
        let granted_by = match &grant.origin {
            GrantOrigin::CommandLine => "the command line (no operator file)".to_string(),
            GrantOrigin::OperatorFile(path) => path.display().to_string(),
            GrantOrigin::Embedder => "the embedding program".to_string(),
        };
        writeln!(f, "plugin id:   {}", grant.plugin_id)?;
        writeln!(f, "granted by:  {granted_by}")?;
        writeln!(f, "\n{:<40} {:<10} granted", "hosts", "requested")?;
        for pattern in &asked.hosts {
            writeln!(
                f,
                "  {:<38} {:<10} {}",
                pattern.to_string(),
                "yes",
                coverage(pattern, &grant.hosts)
            )?;
        }
        for pattern in grant.hosts.iter().filter(|g| !asked.hosts.iter().any(|a| a.covers(g))) {
            writeln!(f, "  {:<38} {:<10} yes (not used)", pattern.to_string(), "no")?;
        }
        let networks = match grant.networks.as_slice() {
            [] => "none (loopback, private and link-local addresses are refused)".to_string(),
            networks => networks.iter().map(ToString::to_string).collect::<Vec<_>>().join(", "),
        };
        writeln!(f, "networks:    {networks}")?;
        writeln!(f, "\n{:<20} {:<24} {:<9} granted", "secrets", "placement", "required")?;
        for (name, request) in &asked.secrets {
            let granted = match grant.secrets.get(name) {
                Some(secret) => {
                    let narrowed = match &secret.hosts {
                        Some(hosts) => format!(
                            ", only to {}",
                            hosts.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
                        ),
                        None => String::new(),
                    };
                    format!("from {}{narrowed}", secret.source.describe())
                }
                None if request.required => "NO: the plugin cannot run".to_string(),
                None => "no".to_string(),
            };
            let required = if request.required { "yes" } else { "no" };
            writeln!(
                f,
                "  {name:<18} {:<24} {required:<9} {granted}",
                request.placement.to_string()
            )?;
            let hosts: Vec<String> = request.hosts.iter().map(ToString::to_string).collect();
            writeln!(f, "  {:<18} sent only to {}", "", hosts.join(", "))?;
        }
        for name in grant.secrets.keys().filter(|n| !asked.secrets.contains_key(*n)) {
            writeln!(f, "  {name:<18} {:<24} {:<9} granted, not requested (unused)", "-", "-")?;
        }
        let limits = grant.limits.apply(&self.manifest.limits);
        let asked_limits = &self.manifest.limits;
        writeln!(f, "\n{:<20} {:<14} {:<14} effective", "limits", "requested", "cap")?;
        let effective: &Limits = &limits;
        let time = |name, pick: fn(&Limits) -> Duration, cap: Option<Duration>| {
            (name, human(pick(asked_limits)), cap.map(human), human(pick(effective)))
        };
        let count = |name, pick: fn(&Limits) -> u64, cap: Option<u64>| {
            let show = |v: u64| v.to_string();
            (name, show(pick(asked_limits)), cap.map(show), show(pick(effective)))
        };
        let caps = &grant.limits;
        let rows: [(&str, String, Option<String>, String); 8] = [
            count("memory_mib", |l| l.memory_mib.into(), caps.memory_mib.map(u64::from)),
            time("deadline", |l| l.deadline, caps.deadline),
            time("request_timeout", |l| l.request_timeout, caps.request_timeout),
            time("connect_timeout", |l| l.connect_timeout, caps.connect_timeout),
            time("first_byte_timeout", |l| l.first_byte_timeout, caps.first_byte_timeout),
            time("idle_timeout", |l| l.idle_timeout, caps.idle_timeout),
            count("max_response_bytes", |l| l.max_response_bytes, caps.max_response_bytes),
            count(
                "max_concurrency",
                |l| l.max_concurrency.into(),
                caps.max_concurrency.map(u64::from),
            ),
        ];
        for (name, asked, cap, effective) in rows {
            writeln!(
                f,
                "  {name:<18} {asked:<14} {:<14} {effective}",
                cap.as_deref().unwrap_or("-")
            )?;
        }
        for (who, rules) in [("plugin", &self.manifest.ratelimit), ("operator", &grant.ratelimits)] {
            for rule in rules {
                writeln!(
                    f,
                    "ratelimit:   {}: {} per {}, burst {} ({who})",
                    rule.bucket,
                    rule.rate,
                    human(rule.per),
                    rule.burst
                )?;
            }
        }
        Ok(())
    }
}

fn human(d: Duration) -> String {
    humantime::format_duration(d).to_string()
}

/// How much of `asked` the granted patterns cover.
fn coverage(asked: &HostPattern, granted: &[HostPattern]) -> &'static str {
    if granted.iter().any(|g| g.covers(asked)) {
        "yes"
    } else if granted.iter().any(|g| asked.covers(g)) {
        "partly"
    } else {
        "no"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secrets::StaticSource;
    use std::path::Path;

    fn manifest(extra: &str) -> Manifest {
        let text = format!(
            "name = \"crm-sync\"\nversion = \"1\"\ncomponent = \"c.wasm\"\n\
             [permissions]\nhosts = [\"https://api.crm.example\", \"http://127.0.0.1:*\"]\n\
             [permissions.secrets.key]\nplacement = \"bearer\"\nhosts = [\"https://api.crm.example\", \"http://127.0.0.1:*\"]\n\
             [limits]\nmemory_mib = 512\ndeadline = \"1h\"\n{extra}"
        );
        Manifest::parse(&text, Path::new("plugin.toml")).unwrap()
    }

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    fn secret() -> SecretGrant {
        SecretGrant::new(StaticSource::new("static-secret-value".into()))
    }

    #[test]
    fn a_run_may_reach_only_hosts_both_asked_for_and_granted() {
        let grant = Grant::new("crm")
            .host("http://127.0.0.1:8080".parse().unwrap())
            .secret("key", secret());
        let resolved = resolve(&manifest(""), &grant).unwrap();
        assert!(resolved.hosts.allows(&url("http://127.0.0.1:8080/x")));
        assert!(
            !resolved.hosts.allows(&url("http://127.0.0.1:9090/x")),
            "asked for, not granted"
        );
        assert!(
            !resolved.hosts.allows(&url("https://api.crm.example/")),
            "asked for, not granted"
        );
        let grant = Grant::new("crm")
            .host("https://evil.example".parse().unwrap())
            .secret("key", secret());
        let resolved = resolve(&manifest(""), &grant).unwrap();
        assert!(
            !resolved.hosts.allows(&url("https://evil.example/")),
            "granted, never asked for"
        );
    }

    #[test]
    fn a_secret_goes_only_where_asked_granted_and_bound() {
        let mut narrowed = secret();
        narrowed.hosts = Some(vec!["http://127.0.0.1:*".parse().unwrap()]);
        let grant = Grant::local(&manifest("")).secret("key", narrowed);
        let resolved = resolve(&manifest(""), &grant).unwrap();
        let key = &resolved.secrets["key"];
        assert!(key.destinations.allows(&url("http://127.0.0.1:1/")));
        assert!(
            !key.destinations.allows(&url("https://api.crm.example/")),
            "the operator narrowed it"
        );
        assert_eq!(key.placement, Placement::Bearer);
    }

    #[test]
    fn a_required_secret_not_granted_names_who_should_grant_it() {
        let err = resolve(&manifest(""), &Grant::local(&manifest("")))
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "plugin `crm-sync` requires the secret `key`, which is not granted: pass --secret key=SOURCE \
             (env:VAR, dotenv:FILE or cmd:PROGRAM ARGS...) or an --env-file with a `key=` line"
        );
        let mut grant = Grant::new("crm-a");
        grant.origin = GrantOrigin::OperatorFile("/etc/apiary/apiary.toml".into());
        let err = resolve(&manifest(""), &grant).unwrap_err().to_string();
        assert!(
            err.ends_with("add `[plugins.crm-a.secrets.key]` with a `source` to /etc/apiary/apiary.toml"),
            "{err}"
        );
    }

    #[test]
    fn an_optional_secret_not_granted_is_left_out() {
        let text = "[permissions.secrets.extra]\nplacement = { query = \"k\" }\nhosts = [\"https://api.crm.example\"]\nrequired = false\n";
        let manifest = manifest(text);
        let resolved = resolve(&manifest, &Grant::local(&manifest).secret("key", secret())).unwrap();
        assert!(resolved.secrets.contains_key("key") && !resolved.secrets.contains_key("extra"));
    }

    #[test]
    fn operator_caps_lower_limits_and_add_rate_limits() {
        let mut grant = Grant::local(&manifest("")).secret("key", secret());
        grant.limits = LimitCaps {
            memory_mib: Some(128),
            deadline: Some(Duration::from_secs(7200)),
            idle_timeout: Some(Duration::from_secs(5)),
            ..LimitCaps::default()
        };
        grant.ratelimits.push(RateLimitConfig {
            bucket: "api.crm.example".into(),
            rate: std::num::NonZeroU32::new(1).unwrap(),
            per: Duration::from_secs(1),
            burst: std::num::NonZeroU32::new(1).unwrap(),
            max_wait: Duration::from_secs(1),
        });
        let resolved = resolve(&manifest(""), &grant).unwrap();
        assert_eq!(resolved.limits.memory_mib, 128, "capped");
        assert_eq!(
            resolved.limits.deadline,
            Duration::from_secs(3600),
            "asked for less than the cap"
        );
        assert_eq!(resolved.ratelimits.len(), 1);
        assert_eq!(
            resolved.limits.idle_timeout,
            Duration::from_secs(5),
            "a phase timeout capped"
        );
        assert_eq!(
            resolved.limits.connect_timeout,
            crate::manifest::DEFAULT_CONNECT_TIMEOUT
        );
    }

    #[test]
    fn granted_networks_become_the_run_s_net_policy() {
        let grant = Grant::local(&manifest("")).secret("key", secret());
        let resolved = resolve(&manifest(""), &grant).unwrap();
        assert_eq!(resolved.net, NetPolicy::default(), "nothing special unless granted");
        let grant = grant
            .network("::1".parse().unwrap())
            .network("127.0.0.0/8".parse().unwrap());
        let resolved = resolve(&manifest(""), &grant).unwrap();
        assert!(resolved.net.check("127.0.0.1".parse().unwrap()).is_ok());
        assert!(resolved.net.check("10.0.0.1".parse().unwrap()).is_err());
    }

    #[test]
    fn two_installs_of_one_plugin_get_their_own_ids() {
        let a = resolve(&manifest(""), &Grant::new("crm-a").secret("key", secret())).unwrap();
        let b = resolve(&manifest(""), &Grant::new("crm-b").secret("key", secret())).unwrap();
        assert_ne!(a.plugin_id, b.plugin_id);
        let err = resolve(&manifest(""), &Grant::new("../etc").secret("key", secret())).unwrap_err();
        assert_eq!(err, GrantError::InvalidPluginId("../etc".into()));
    }

    #[test]
    fn no_debug_output_of_a_grant_or_policy_shows_a_value() {
        let grant = Grant::local(&manifest("")).secret("key", secret());
        let resolved = resolve(&manifest(""), &grant).unwrap();
        let clock: Arc<dyn crate::Clock> = Arc::new(crate::ManualClock::new());
        let policy = crate::EgressPolicy::new(&manifest(""), resolved.clone(), &clock);
        for text in [format!("{grant:?}"), format!("{resolved:?}"), format!("{policy:?}")] {
            assert!(!text.contains("static-secret-value"), "{text}");
            assert!(text.contains("key"), "{text}");
        }
    }

    #[test]
    fn the_report_shows_requested_and_granted_side_by_side() {
        let manifest = manifest("");
        let grant = Grant::new("crm").host("http://127.0.0.1:8080".parse().unwrap());
        let report = GrantReport {
            manifest: &manifest,
            grant: &grant,
        }
        .to_string();
        assert!(report.contains("https://api.crm.example:443"), "{report}");
        let line = |needle: &str| report.lines().find(|l| l.contains(needle)).unwrap().to_string();
        assert!(
            line("https://api.crm.example:443").trim_end().ends_with("no"),
            "{report}"
        );
        assert!(line("http://127.0.0.1:*").trim_end().ends_with("partly"), "{report}");
        assert!(line("  key").contains("NO: the plugin cannot run"), "{report}");
        assert!(line("memory_mib").contains("512"), "{report}");
        assert!(line("networks:").contains("none"), "{report}");
        let grant = grant.network("127.0.0.0/8".parse().unwrap());
        let report = GrantReport {
            manifest: &manifest,
            grant: &grant,
        }
        .to_string();
        assert!(report.contains("networks:    127.0.0.0/8\n"), "{report}");
        assert!(!report.contains("static-secret-value"));
    }
}
