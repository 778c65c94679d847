//! The secret-attachment egress layer.

use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use http::header::{AUTHORIZATION, HeaderName};
use http::{HeaderValue, Uri};
use secrecy::{ExposeSecret, SecretString};
use tower::ServiceExt;
use url::Url;

use super::{Placement, Redactor, SecretAttachment, SecretError, SecretStore};
use crate::http::{EgressContext, EgressError, EgressFuture, EgressLayer, EgressRequest, EgressService, destination};

/// Attaches the secrets a request asks for, after checking each is bound to the request's
/// destination, and scrubs their values from the response before it goes back to the plugin.
#[derive(Debug, Clone)]
pub struct SecretLayer {
    store: Arc<SecretStore>,
}

impl SecretLayer {
    /// A layer taking values from `store`.
    pub fn new(store: Arc<SecretStore>) -> Self {
        Self { store }
    }
}

impl EgressLayer for SecretLayer {
    fn call(self, mut request: EgressRequest, next: EgressService) -> EgressFuture {
        Box::pin(async move {
            let ctx = EgressContext::of(&request)?.clone();
            if ctx.secrets.is_empty() {
                return next.oneshot(request).await;
            }
            let url = Url::parse(&request.uri().to_string()).map_err(|e| EgressError::InvalidRequest(e.to_string()))?;
            let mut redactor = Redactor::default();
            for attachment in &ctx.secrets {
                let name = &attachment.name;
                let permission = ctx
                    .policy
                    .secrets
                    .get(name)
                    .ok_or_else(|| SecretError::Unknown(name.clone()))?;
                if !permission.hosts.iter().any(|h| h.matches(&url)) {
                    return Err(SecretError::NotBound {
                        name: name.clone(),
                        destination: destination(&url),
                    }
                    .into());
                }
                let value = self
                    .store
                    .get(&ctx.tenant, name)
                    .ok_or_else(|| SecretError::Unknown(name.clone()))?;
                attach(&mut request, attachment, &value)?;
                redactor.add(value.expose_secret(), &attachment.placement);
            }
            let response = next.oneshot(request).await?;
            let (mut parts, body) = response.into_parts();
            redactor.scrub_headers(&mut parts.headers);
            let body = redactor.scrub_body(body);
            // The scrubbed body may differ in length from what the server declared.
            parts.headers.remove(http::header::CONTENT_LENGTH);
            Ok(http::Response::from_parts(parts, body))
        })
    }
}

/// Places `value` in `request` as `attachment` says; header values are marked sensitive so
/// that `Debug` output and HTTP/2 header compression never expose them.
///
/// # Errors
/// [`SecretError::InvalidPlacement`] when the header or parameter name, or the value, cannot
/// be placed.
pub fn attach(
    request: &mut EgressRequest,
    attachment: &SecretAttachment,
    value: &SecretString,
) -> Result<(), SecretError> {
    let invalid = |reason: String| SecretError::InvalidPlacement {
        name: attachment.name.clone(),
        reason,
    };
    let value = value.expose_secret();
    let header_value = |text: String| {
        let mut header =
            HeaderValue::try_from(text).map_err(|_| invalid("the value is not a valid header value".into()))?;
        header.set_sensitive(true);
        Ok::<_, SecretError>(header)
    };
    match &attachment.placement {
        Placement::Bearer => {
            request
                .headers_mut()
                .insert(AUTHORIZATION, header_value(format!("Bearer {value}"))?);
        }
        Placement::Basic { username } => {
            if username.contains(':') {
                return Err(invalid("a basic-auth username cannot contain `:`".into()));
            }
            let encoded = BASE64.encode(format!("{username}:{value}"));
            request
                .headers_mut()
                .insert(AUTHORIZATION, header_value(format!("Basic {encoded}"))?);
        }
        Placement::Header(name) => {
            let name = HeaderName::try_from(name.as_str())
                .map_err(|_| invalid(format!("`{name}` is not a valid header name")))?;
            request.headers_mut().insert(name, header_value(value.to_string())?);
        }
        Placement::Query(param) => {
            if param.is_empty() {
                return Err(invalid("the query parameter name is empty".into()));
            }
            let mut url = Url::parse(&request.uri().to_string()).map_err(|e| invalid(e.to_string()))?;
            url.query_pairs_mut().append_pair(param, value);
            *request.uri_mut() = Uri::try_from(url.as_str()).map_err(|e| invalid(e.to_string()))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(url: &str) -> EgressRequest {
        http::Request::get(url).body(bytes::Bytes::new()).unwrap()
    }

    fn attachment(placement: Placement) -> SecretAttachment {
        SecretAttachment {
            name: "tok".into(),
            placement,
        }
    }

    #[test]
    fn each_placement_puts_the_value_where_asked() {
        let value = SecretString::from("a b&c");
        let mut r = request("https://x.test/p?q=1");
        attach(&mut r, &attachment(Placement::Bearer), &value).unwrap();
        assert_eq!(r.headers()[AUTHORIZATION], "Bearer a b&c");
        assert!(r.headers()[AUTHORIZATION].is_sensitive());

        let mut r = request("https://x.test/");
        attach(&mut r, &attachment(Placement::Basic { username: "me".into() }), &value).unwrap();
        assert_eq!(
            r.headers()[AUTHORIZATION],
            format!("Basic {}", BASE64.encode("me:a b&c")).as_str()
        );

        let mut r = request("https://x.test/");
        attach(&mut r, &attachment(Placement::Header("X-Api-Key".into())), &value).unwrap();
        assert_eq!(r.headers()["x-api-key"], "a b&c");

        let mut r = request("https://x.test/p?q=1");
        attach(&mut r, &attachment(Placement::Query("api_key".into())), &value).unwrap();
        assert_eq!(r.uri().to_string(), "https://x.test/p?q=1&api_key=a+b%26c");
    }

    #[test]
    fn unusable_placements_are_errors_not_panics() {
        let value = SecretString::from("v");
        let mut r = request("https://x.test/");
        let err = attach(&mut r, &attachment(Placement::Header("bad header".into())), &value).unwrap_err();
        assert!(matches!(err, SecretError::InvalidPlacement { .. }), "{err}");
        let err = attach(
            &mut r,
            &attachment(Placement::Bearer),
            &SecretString::from("line\nbreak"),
        )
        .unwrap_err();
        assert!(matches!(err, SecretError::InvalidPlacement { .. }), "{err}");
    }
}
