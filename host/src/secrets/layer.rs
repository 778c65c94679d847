//! The secret egress layer: attaches granted secrets at their declared placement, audits every
//! use, and scrubs every secret the run holds from every response.

use std::sync::Arc;

use http::HeaderValue;
use http::header::ACCEPT_ENCODING;
use secrecy::SecretString;
use tower::ServiceExt;
use url::Url;

use super::{HeldSecret, Placement, SecretAttachment, SecretError, decode_body};
use crate::http::{EgressContext, EgressError, EgressFuture, EgressLayer, EgressRequest, EgressService, destination};
use crate::manifest::Attach;
use crate::ratelimit::CredentialId;
use secrecy::ExposeSecret;

/// Attaches the secrets a request asks for, after checking each is granted, asked for at its
/// declared placement and bound to the request's destination. In a run that holds secrets,
/// every response is decoded (gzip, deflate) and scrubbed of all of them, whichever request
/// carried what: a server that stored a value earlier cannot hand it back later.
#[derive(Debug, Clone, Default)]
pub struct SecretLayer;

impl EgressLayer for SecretLayer {
    fn call(self, mut request: EgressRequest, next: EgressService) -> EgressFuture {
        Box::pin(async move {
            let ctx = EgressContext::of(&request)?.clone();
            let auto = ctx
                .policy
                .secrets
                .iter()
                .filter(|(_, held)| held.attach == Attach::Auto);
            if ctx.secrets.is_empty() && ctx.redactor.is_empty() && auto.clone().next().is_none() {
                return next.oneshot(request).await;
            }
            let url = ctx
                .url
                .as_ref()
                .ok_or_else(|| EgressError::InvalidRequest(format!("`{}` is not an absolute URL", request.uri())))?;
            for attachment in &ctx.secrets {
                let held = ctx.policy.secrets.get(&attachment.name);
                let outcome = attach_one(&mut request, attachment, held.map(Arc::as_ref), url, &ctx).await;
                audit(&ctx, attachment, held.map(|h| &h.placement), url, &outcome);
                outcome?;
            }
            for (name, held) in auto {
                if ctx.secrets.iter().any(|a| &a.name == name) || !held.destinations.allows(url) {
                    continue;
                }
                let attachment = SecretAttachment {
                    name: name.clone(),
                    placement: held.placement.clone(),
                };
                let outcome = attach_one(&mut request, &attachment, Some(held), url, &ctx).await;
                audit(&ctx, &attachment, Some(&held.placement), url, &outcome);
                // A stock guest cannot handle a secret error: an automatic secret whose source
                // failed is left off (and audited), as if the run did not hold it.
                match outcome {
                    Err(SecretError::Unavailable { .. }) | Ok(()) => {}
                    Err(error) => return Err(error.into()),
                }
            }
            // Ask for an identity body: the host must see the bytes it scans. A server that
            // compresses anyway is decoded below.
            request
                .headers_mut()
                .insert(ACCEPT_ENCODING, HeaderValue::from_static("identity"));
            let redactor = &ctx.redactor;
            let response = next
                .oneshot(request)
                .await
                .map_err(|error| scrub_error(error, |text| redactor.scrub(text).into_owned()))?;
            let (mut parts, body) = response.into_parts();
            let body = decode_body(&mut parts.headers, body, ctx.policy.limits.max_response_bytes)?;
            let scrubbed = redactor.scrub_response(&mut parts.headers, body.clone());
            if scrubbed.as_ptr() != body.as_ptr() || scrubbed.len() != body.len() {
                // The scrubbed body may differ in length from what the server declared.
                parts.headers.remove(http::header::CONTENT_LENGTH);
            }
            Ok(http::Response::from_parts(parts, scrubbed))
        })
    }
}

async fn attach_one(
    request: &mut EgressRequest,
    attachment: &SecretAttachment,
    held: Option<&HeldSecret>,
    url: &Url,
    ctx: &EgressContext,
) -> Result<(), SecretError> {
    let name = &attachment.name;
    let held = held.ok_or_else(|| SecretError::Unknown(name.clone()))?;
    if !same_place(&held.placement, &attachment.placement) {
        return Err(SecretError::InvalidPlacement {
            name: name.clone(),
            reason: format!(
                "it is declared for {}, and the plugin asked for {}",
                held.placement, attachment.placement
            ),
        });
    }
    if !held.destinations.allows(url) {
        return Err(SecretError::NotBound {
            name: name.clone(),
            destination: destination(url),
        });
    }
    let value: SecretString = held.value.get().await.map_err(|e| SecretError::Unavailable {
        name: name.clone(),
        reason: e.to_string(),
    })?;
    ctx.redactor.add(&value);
    held.placement.attach(name, request, &value)?;
    // The rate-limit layer keys what the server learns about this credential's quota by it.
    request
        .extensions_mut()
        .insert(CredentialId::of(value.expose_secret().as_bytes()));
    Ok(())
}

/// Whether the plugin's statement of a placement names the declared one. A header prefix is the
/// manifest's alone to give, so only the header's name is compared.
fn same_place(declared: &Placement, asked: &Placement) -> bool {
    match (declared, asked) {
        (Placement::Header { name: a, .. }, Placement::Header { name: b, .. }) => a.eq_ignore_ascii_case(b),
        _ => declared == asked,
    }
}

/// One structured event per use of a secret (target `apiary::audit`): who, which secret,
/// where, how, and what happened. Never the value.
fn audit(
    ctx: &EgressContext,
    attachment: &SecretAttachment,
    declared: Option<&Placement>,
    url: &Url,
    outcome: &Result<(), SecretError>,
) {
    let (outcome, reason) = match outcome {
        Ok(()) => ("attached", String::new()),
        Err(SecretError::Unknown(_)) => ("refused-unknown", String::new()),
        Err(SecretError::NotBound { .. }) => ("refused-not-bound", String::new()),
        Err(error @ SecretError::InvalidPlacement { .. }) => ("refused-placement", error.to_string()),
        Err(error @ SecretError::Unavailable { .. }) => ("source-failed", error.to_string()),
    };
    let placement = declared.unwrap_or(&attachment.placement).to_string();
    tracing::info!(
        target: "apiary::audit",
        tenant = %ctx.tenant,
        plugin = %ctx.policy.plugin,
        secret = %attachment.name,
        destination = %destination(url),
        placement = %placement,
        outcome,
        reason = %reason,
        "secret use"
    );
}

/// The error with any secret scrubbed from its text (a client error may quote the URL, and a
/// query placement put a value there).
fn scrub_error(error: EgressError, scrub: impl Fn(&str) -> String) -> EgressError {
    match error {
        EgressError::InvalidRequest(m) => EgressError::InvalidRequest(scrub(&m)),
        EgressError::Connect(m) => EgressError::Connect(scrub(&m)),
        EgressError::Unreachable(m) => EgressError::Unreachable(scrub(&m)),
        EgressError::Connection(m) => EgressError::Connection(scrub(&m)),
        EgressError::RetriesExhausted {
            attempts,
            last_status,
            message,
        } => EgressError::RetriesExhausted {
            attempts,
            last_status,
            message: scrub(&message),
        },
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_header_placement_matches_by_name_only() {
        let declared = Placement::Header {
            name: "authorization".into(),
            prefix: "token ".into(),
        };
        assert!(same_place(&declared, &Placement::header("Authorization")));
        assert!(!same_place(&declared, &Placement::header("x-note")));
        assert!(!same_place(&Placement::Bearer, &Placement::header("authorization")));
        assert!(!same_place(
            &Placement::Basic { username: "a".into() },
            &Placement::Basic { username: "b".into() }
        ));
    }
}
