//! The allowlist: which destinations (scheme, host, port) a plugin may reach. Fails closed:
//! anything not matched by a manifest pattern is denied.

use std::fmt;
use std::str::FromStr;

use serde::Deserialize;
use tower::ServiceExt;
use url::Url;

use super::{EgressContext, EgressError, EgressFuture, EgressLayer, EgressRequest, EgressService};

/// A destination pattern from a manifest: `scheme://host[:port]`, where the host may start
/// with `*.` (any subdomain) and the port may be `*` (any port). Without a port, the scheme's
/// default port is meant.
///
/// ```
/// use apiary_host::HostPattern;
/// use url::Url;
///
/// let pattern: HostPattern = "https://*.example.com".parse().unwrap();
/// assert!(pattern.matches(&Url::parse("https://api.example.com/v1").unwrap()));
/// assert!(!pattern.matches(&Url::parse("https://example.com.evil.net/").unwrap()));
/// assert!(!pattern.matches(&Url::parse("http://api.example.com/").unwrap()));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HostPattern {
    scheme: Scheme,
    host: HostMatch,
    port: Option<u16>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Scheme {
    Http,
    Https,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum HostMatch {
    /// Exactly this host, as the `url` crate normalises it (lower case, `[..]` for IPv6).
    Exact(String),
    /// Any host ending in `.suffix`.
    Subdomain(String),
}

/// Why a host pattern is malformed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid host pattern `{pattern}`: {reason}")]
pub struct HostPatternError {
    pattern: String,
    reason: &'static str,
}

impl FromStr for HostPattern {
    type Err = HostPatternError;

    fn from_str(pattern: &str) -> Result<Self, Self::Err> {
        let error = |reason| HostPatternError {
            pattern: pattern.to_string(),
            reason,
        };
        let (scheme, rest) = pattern
            .split_once("://")
            .ok_or_else(|| error("expected scheme://host[:port], e.g. https://api.example.com"))?;
        let scheme = match scheme.to_ascii_lowercase().as_str() {
            "http" => Scheme::Http,
            "https" => Scheme::Https,
            _ => return Err(error("the scheme must be http or https")),
        };
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        let (rest, any_port) = match rest.strip_suffix(":*") {
            Some(rest) => (rest, true),
            None => (rest, false),
        };
        let (rest, subdomains) = match rest.strip_prefix("*.") {
            Some(rest) => (rest, true),
            None => (rest, false),
        };
        if rest.contains(['/', '?', '#', '@', '*']) {
            return Err(error(
                "only scheme, host and port are allowed (no path, query, user or inner `*`)",
            ));
        }
        let url =
            Url::parse(&format!("{}://{rest}", scheme.as_str())).map_err(|_| error("the host or port is malformed"))?;
        let host = url
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| error("the host is missing"))?;
        let host = if subdomains {
            HostMatch::Subdomain(host.to_string())
        } else {
            HostMatch::Exact(host.to_string())
        };
        let port = if any_port { None } else { url.port_or_known_default() };
        Ok(Self { scheme, host, port })
    }
}

impl TryFrom<String> for HostPattern {
    type Error = HostPatternError;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        value.parse()
    }
}

impl<'de> Deserialize<'de> for HostPattern {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

impl Scheme {
    fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }
}

impl HostMatch {
    fn matches(&self, host: &str) -> bool {
        match self {
            HostMatch::Exact(exact) => exact == host,
            HostMatch::Subdomain(suffix) => host
                .strip_suffix(suffix.as_str())
                .is_some_and(|head| head.len() > 1 && head.ends_with('.')),
        }
    }
}

impl HostPattern {
    /// Whether `url`'s scheme, host and port are matched by this pattern.
    pub fn matches(&self, url: &Url) -> bool {
        let Some(host) = url.host_str() else { return false };
        url.scheme() == self.scheme.as_str()
            && self.host.matches(host)
            && (self.port.is_none() || self.port == url.port_or_known_default())
    }

    /// Whether every destination `other` matches is also matched by `self`.
    pub fn covers(&self, other: &HostPattern) -> bool {
        let host = match (&self.host, &other.host) {
            (HostMatch::Exact(a), HostMatch::Exact(b)) => a == b,
            (HostMatch::Subdomain(_), HostMatch::Exact(b)) => self.host.matches(b),
            (HostMatch::Subdomain(a), HostMatch::Subdomain(b)) => a == b || self.host.matches(b),
            (HostMatch::Exact(_), HostMatch::Subdomain(_)) => false,
        };
        self.scheme == other.scheme && host && (self.port.is_none() || self.port == other.port)
    }
}

impl fmt::Display for HostPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (prefix, host) = match &self.host {
            HostMatch::Exact(h) => ("", h),
            HostMatch::Subdomain(h) => ("*.", h),
        };
        write!(f, "{}://{prefix}{host}:", self.scheme.as_str())?;
        match self.port {
            Some(port) => write!(f, "{port}"),
            None => f.write_str("*"),
        }
    }
}

/// The allowlist egress layer, outermost: refuses any request whose URL is not absolute
/// `http`/`https`, carries credentials, or is not both asked for by the plugin and granted to it.
#[derive(Debug, Clone, Default)]
pub struct AllowlistLayer;

impl EgressLayer for AllowlistLayer {
    fn call(self, request: EgressRequest, next: EgressService) -> EgressFuture {
        Box::pin(async move {
            let ctx = EgressContext::of(&request)?;
            let url = checked_url(&request, ctx)?;
            if !ctx.policy.hosts.allows(url) {
                return Err(EgressError::Denied {
                    destination: destination(url),
                    plugin: ctx.policy.plugin.clone(),
                });
            }
            next.oneshot(request).await
        })
    }
}

/// The request's URL, if it is absolute `http`/`https` without user credentials.
fn checked_url<'a>(request: &EgressRequest, ctx: &'a EgressContext) -> Result<&'a Url, EgressError> {
    let invalid = |m: String| EgressError::InvalidRequest(m);
    let url = ctx
        .url
        .as_ref()
        .ok_or_else(|| invalid(format!("`{}` is not an absolute URL", request.uri())))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(invalid(format!("the scheme `{}` is not http or https", url.scheme())));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(invalid(
            "URLs may not carry credentials; attach a secret instead".into(),
        ));
    }
    Ok(url)
}

/// `scheme://host:port` of `url`, as errors and logs name a destination.
pub fn destination(url: &Url) -> String {
    let host = url.host_str().unwrap_or_default();
    match url.port_or_known_default() {
        Some(port) => format!("{}://{host}:{port}", url.scheme()),
        None => format!("{}://{host}", url.scheme()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pattern(s: &str) -> HostPattern {
        s.parse().unwrap()
    }

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    #[test]
    fn exact_host_uses_the_default_port() {
        let p = pattern("https://api.github.com");
        assert!(p.matches(&url("https://api.github.com/repos")));
        assert!(p.matches(&url("https://API.GitHub.com:443/")));
        assert!(!p.matches(&url("https://api.github.com:8443/")));
        assert!(!p.matches(&url("http://api.github.com/")));
        assert!(!p.matches(&url("https://api.github.com.evil.net/")));
        assert!(!p.matches(&url("https://evil.net/?api.github.com")));
    }

    #[test]
    fn any_port_and_ip_literals() {
        let p = pattern("http://127.0.0.1:*");
        assert!(p.matches(&url("http://127.0.0.1:8080/x")));
        assert!(p.matches(&url("http://127.0.0.1/")));
        assert!(!p.matches(&url("http://127.0.0.2:8080/")));
        let v6 = pattern("http://[::1]:*");
        assert!(v6.matches(&url("http://[::1]:9/")));
        assert!(!v6.matches(&url("http://[::2]:9/")));
        let fixed = pattern("http://localhost:8080");
        assert!(fixed.matches(&url("http://localhost:8080/")));
        assert!(!fixed.matches(&url("http://localhost:8081/")));
    }

    #[test]
    fn subdomain_wildcard_needs_a_label() {
        let p = pattern("https://*.example.com");
        assert!(p.matches(&url("https://a.b.example.com/")));
        assert!(!p.matches(&url("https://example.com/")));
        assert!(!p.matches(&url("https://badexample.com/")));
    }

    #[test]
    fn malformed_patterns_are_rejected_with_the_reason() {
        for bad in [
            "api.github.com",
            "ftp://x",
            "https://x/path",
            "https://user@x",
            "https://a.*.com",
            "https://",
            "https://x:99999",
        ] {
            let err = bad.parse::<HostPattern>().unwrap_err().to_string();
            assert!(err.contains(bad), "{bad}: {err}");
        }
    }

    #[test]
    fn covers_is_subset() {
        assert!(pattern("http://127.0.0.1:*").covers(&pattern("http://127.0.0.1:8080")));
        assert!(!pattern("http://127.0.0.1:8080").covers(&pattern("http://127.0.0.1:*")));
        assert!(pattern("https://*.example.com").covers(&pattern("https://api.example.com")));
        assert!(!pattern("https://api.example.com").covers(&pattern("https://*.example.com")));
        assert!(!pattern("https://x.com").covers(&pattern("http://x.com")));
    }

    #[test]
    fn display_round_trips() {
        for s in [
            "https://api.github.com:443",
            "http://127.0.0.1:*",
            "https://*.example.com:443",
        ] {
            assert_eq!(pattern(s).to_string(), s);
            assert_eq!(pattern(&pattern(s).to_string()), pattern(s));
        }
    }
}
