//! Where a secret's value goes in a request. The plugin author declares it in `plugin.toml`,
//! the operator grants it with the secret, and the host attaches the value only there: a plugin
//! cannot put a secret into a header or parameter of its own choosing.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use http::header::{AUTHORIZATION, HeaderName};
use http::{HeaderValue, Uri};
use secrecy::{ExposeSecret, SecretString};
use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};
use url::Url;

use super::SecretError;
use crate::http::{EgressRequest, is_host_owned};

/// Where in a request a secret's value is placed.
///
/// In `plugin.toml`, one of:
///
/// ```toml
/// placement = "bearer"                                  # Authorization: Bearer <value>
/// placement = { basic = "username" }                    # Authorization: Basic base64(username:<value>)
/// placement = { header = "X-Api-Key" }                  # X-Api-Key: <value>
/// placement = { header = "Authorization", prefix = "token " }
/// placement = { query = "api_key" }                     # ?api_key=<value>, replacing any api_key
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Placement {
    /// `Authorization: Bearer <value>`.
    Bearer,
    /// `Authorization: Basic base64(<username>:<value>)`.
    Basic {
        /// The username sent with the secret as password.
        username: String,
    },
    /// A header whose value is `<prefix><value>`.
    Header {
        /// The header's name, lower case.
        name: String,
        /// Text before the value, e.g. `token `; empty for none.
        prefix: String,
    },
    /// A query parameter whose value is the secret; an existing parameter of that name is replaced.
    Query {
        /// The parameter's name.
        param: String,
    },
}

impl Placement {
    /// A header placement with no prefix.
    pub fn header(name: &str) -> Self {
        Self::Header {
            name: name.to_ascii_lowercase(),
            prefix: String::new(),
        }
    }

    /// A query-parameter placement.
    pub fn query(param: &str) -> Self {
        Self::Query { param: param.into() }
    }

    /// Checks the placement can carry a value: a valid, non-reserved header name, a prefix that
    /// is valid header text, a non-empty parameter, a username without `:`.
    ///
    /// # Errors
    /// A sentence saying what is wrong.
    pub fn validate(&self) -> Result<(), String> {
        match self {
            Placement::Bearer => Ok(()),
            Placement::Basic { username } if username.contains(':') => {
                Err("a basic-auth username cannot contain `:`".into())
            }
            Placement::Basic { .. } => Ok(()),
            Placement::Header { name, prefix } => {
                HeaderName::try_from(name.as_str()).map_err(|_| format!("`{name}` is not a valid header name"))?;
                if is_host_owned(name) {
                    return Err(format!("`{name}` is a header the host controls"));
                }
                if !prefix.bytes().all(|b| b == b' ' || b.is_ascii_graphic()) {
                    return Err("the prefix must be printable ASCII".into());
                }
                Ok(())
            }
            Placement::Query { param } if param.is_empty() => Err("the query parameter name is empty".into()),
            Placement::Query { .. } => Ok(()),
        }
    }

    /// Places `value` in `request`. Header values are marked sensitive so that `Debug` output
    /// and HTTP/2 header compression never expose them.
    ///
    /// # Errors
    /// [`SecretError::InvalidPlacement`] when the value cannot be carried there (a line break
    /// in a header value, say).
    pub fn attach(&self, secret: &str, request: &mut EgressRequest, value: &SecretString) -> Result<(), SecretError> {
        let invalid = |reason: String| SecretError::InvalidPlacement {
            name: secret.to_string(),
            reason,
        };
        let value = value.expose_secret();
        let header_value = |text: String| {
            let mut header =
                HeaderValue::try_from(text).map_err(|_| invalid("the value is not a valid header value".into()))?;
            header.set_sensitive(true);
            Ok::<_, SecretError>(header)
        };
        self.validate().map_err(&invalid)?;
        match self {
            Placement::Bearer => {
                request
                    .headers_mut()
                    .insert(AUTHORIZATION, header_value(format!("Bearer {value}"))?);
            }
            Placement::Basic { username } => {
                let encoded = BASE64.encode(format!("{username}:{value}"));
                request
                    .headers_mut()
                    .insert(AUTHORIZATION, header_value(format!("Basic {encoded}"))?);
            }
            Placement::Header { name, prefix } => {
                let name = HeaderName::try_from(name.as_str()).map_err(|e| invalid(e.to_string()))?;
                request
                    .headers_mut()
                    .insert(name, header_value(format!("{prefix}{value}"))?);
            }
            Placement::Query { param } => {
                let mut url = Url::parse(&request.uri().to_string()).map_err(|e| invalid(e.to_string()))?;
                // Replace, never add: a `Link` URL that already carries the parameter must not
                // end up with two (servers disagree on which one wins).
                let kept: Vec<(String, String)> = url
                    .query_pairs()
                    .filter(|(k, _)| k != param)
                    .map(|(k, v)| (k.into_owned(), v.into_owned()))
                    .collect();
                url.query_pairs_mut()
                    .clear()
                    .extend_pairs(kept)
                    .append_pair(param, value);
                *request.uri_mut() = Uri::try_from(url.as_str()).map_err(|e| invalid(e.to_string()))?;
            }
        }
        Ok(())
    }
}

impl fmt::Display for Placement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Placement::Bearer => f.write_str("bearer"),
            Placement::Basic { username } => write!(f, "basic (user {username})"),
            Placement::Header { name, prefix } if prefix.is_empty() => write!(f, "header {name}"),
            Placement::Header { name, prefix } => write!(f, "header {name} ({prefix:?} + value)"),
            Placement::Query { param } => write!(f, "query {param}"),
        }
    }
}

impl<'de> Deserialize<'de> for Placement {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(PlacementVisitor)
    }
}

struct PlacementVisitor;

const EXPECTED: &str =
    r#""bearer", { basic = "user" }, { header = "X-Api-Key" } (with an optional prefix) or { query = "api_key" }"#;

impl<'de> Visitor<'de> for PlacementVisitor {
    type Value = Placement;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(EXPECTED)
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<Placement, E> {
        match text {
            "bearer" => Ok(Placement::Bearer),
            other => Err(E::custom(format!("unknown placement `{other}`: expected {EXPECTED}"))),
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Placement, A::Error> {
        let (mut basic, mut header, mut prefix, mut query) = (None, None, None, None);
        while let Some(key) = map.next_key::<String>()? {
            let slot = match key.as_str() {
                "basic" => &mut basic,
                "header" => &mut header,
                "prefix" => &mut prefix,
                "query" => &mut query,
                other => {
                    return Err(de::Error::custom(format!(
                        "unknown placement key `{other}`: expected {EXPECTED}"
                    )));
                }
            };
            *slot = Some(map.next_value::<String>()?);
        }
        let placement = match (basic, header, query) {
            (Some(username), None, None) => Placement::Basic { username },
            (None, Some(name), None) => Placement::Header {
                name: name.to_ascii_lowercase(),
                prefix: prefix.take().unwrap_or_default(),
            },
            (None, None, Some(param)) => Placement::Query { param },
            _ => return Err(de::Error::custom(format!("give exactly one placement: {EXPECTED}"))),
        };
        if prefix.is_some() {
            return Err(de::Error::custom("`prefix` goes only with `header`"));
        }
        placement.validate().map_err(de::Error::custom)?;
        Ok(placement)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(url: &str) -> EgressRequest {
        http::Request::get(url).body(bytes::Bytes::new()).unwrap()
    }

    fn parse(text: &str) -> Result<Placement, String> {
        #[derive(Deserialize)]
        struct Doc {
            placement: Placement,
        }
        toml::from_str::<Doc>(text)
            .map(|d| d.placement)
            .map_err(|e| e.message().to_string())
    }

    #[test]
    fn every_manifest_form_parses() {
        assert_eq!(parse(r#"placement = "bearer""#).unwrap(), Placement::Bearer);
        assert_eq!(
            parse(r#"placement = { basic = "me" }"#).unwrap(),
            Placement::Basic { username: "me".into() }
        );
        assert_eq!(
            parse(r#"placement = { header = "X-Api-Key" }"#).unwrap(),
            Placement::header("x-api-key")
        );
        assert_eq!(
            parse(r#"placement = { header = "Authorization", prefix = "token " }"#).unwrap(),
            Placement::Header {
                name: "authorization".into(),
                prefix: "token ".into()
            }
        );
        assert_eq!(
            parse(r#"placement = { query = "api_key" }"#).unwrap(),
            Placement::query("api_key")
        );
    }

    #[test]
    fn bad_forms_say_what_is_expected() {
        for (text, expected) in [
            (r#"placement = "cookie""#, "unknown placement `cookie`"),
            (r#"placement = { header = "x", query = "y" }"#, "exactly one placement"),
            (
                r#"placement = { query = "y", prefix = "p" }"#,
                "`prefix` goes only with `header`",
            ),
            (
                r#"placement = { header = "Host" }"#,
                "`host` is a header the host controls",
            ),
            (r#"placement = { header = "bad name" }"#, "not a valid header name"),
            (r#"placement = { basic = "a:b" }"#, "cannot contain `:`"),
            (r#"placement = { path = "x" }"#, "unknown placement key `path`"),
        ] {
            let err = parse(text).unwrap_err();
            assert!(err.contains(expected), "{text}: {err}");
        }
    }

    #[test]
    fn each_placement_puts_the_value_where_declared() {
        let value = SecretString::from("a b&c-12345");
        let mut r = request("https://x.test/p?q=1");
        Placement::Bearer.attach("tok", &mut r, &value).unwrap();
        assert_eq!(r.headers()[AUTHORIZATION], "Bearer a b&c-12345");
        assert!(r.headers()[AUTHORIZATION].is_sensitive());

        let mut r = request("https://x.test/");
        Placement::Basic { username: "me".into() }
            .attach("tok", &mut r, &value)
            .unwrap();
        assert_eq!(
            r.headers()[AUTHORIZATION],
            format!("Basic {}", BASE64.encode("me:a b&c-12345")).as_str()
        );

        let mut r = request("https://x.test/");
        let prefixed = Placement::Header {
            name: "authorization".into(),
            prefix: "token ".into(),
        };
        prefixed.attach("tok", &mut r, &value).unwrap();
        assert_eq!(r.headers()[AUTHORIZATION], "token a b&c-12345");

        let mut r = request("https://x.test/p?q=1");
        Placement::query("api_key").attach("tok", &mut r, &value).unwrap();
        assert_eq!(r.uri().to_string(), "https://x.test/p?q=1&api_key=a+b%26c-12345");
    }

    /// Regression: a query placement appended a second `api_key` when a `Link` URL already
    /// carried one.
    #[test]
    fn a_query_placement_replaces_an_existing_parameter() {
        let value = SecretString::from("fresh-value-123");
        let mut r = request("https://x.test/p?api_key=stale&page=2&api_key=other");
        Placement::query("api_key").attach("tok", &mut r, &value).unwrap();
        assert_eq!(r.uri().to_string(), "https://x.test/p?page=2&api_key=fresh-value-123");
    }

    #[test]
    fn unusable_values_are_errors_not_panics() {
        let mut r = request("https://x.test/");
        let err = Placement::Bearer
            .attach("tok", &mut r, &SecretString::from("line\nbreak-123"))
            .unwrap_err();
        assert!(matches!(err, SecretError::InvalidPlacement { .. }), "{err}");
    }
}
