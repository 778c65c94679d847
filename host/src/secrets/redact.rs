//! Scrubbing secret values, in every form the host may have sent them, out of responses.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use http::{HeaderMap, HeaderValue};
use memchr::memmem;
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};

use super::Placement;

/// What a secret's value is replaced with.
pub const REDACTED: &str = "[REDACTED]";

/// Replaces every known form of a set of secret values with [`REDACTED`].
///
/// ```
/// use apiary_host::{Placement, Redactor};
///
/// let mut redactor = Redactor::default();
/// redactor.add("s3cr3t-token", &Placement::Bearer);
/// assert_eq!(redactor.scrub_str("echo: Bearer s3cr3t-token"), "echo: Bearer [REDACTED]");
/// ```
#[derive(Debug, Default, Clone)]
pub struct Redactor {
    /// Forms to scrub, longest first so a longer form is never half-replaced by a shorter one.
    needles: Vec<Vec<u8>>,
}

impl Redactor {
    /// Registers `value` and the forms it takes when sent at `placement`.
    pub fn add(&mut self, value: &str, placement: &Placement) {
        if value.is_empty() {
            return;
        }
        let mut forms = vec![
            value.to_string(),
            // Percent-encoded as in a path, and form-encoded as the query placement sends it.
            utf8_percent_encode(value, NON_ALPHANUMERIC).to_string(),
            url::form_urlencoded::byte_serialize(value.as_bytes()).collect(),
            BASE64.encode(value),
        ];
        if let Placement::Basic { username } = placement {
            forms.push(BASE64.encode(format!("{username}:{value}")));
        }
        for form in forms {
            if !self.needles.iter().any(|n| n == form.as_bytes()) {
                self.needles.push(form.into_bytes());
            }
        }
        self.needles.sort_by_key(|n| std::cmp::Reverse(n.len()));
    }

    /// Whether nothing is registered.
    pub fn is_empty(&self) -> bool {
        self.needles.is_empty()
    }

    /// `bytes` with every registered form replaced.
    pub fn scrub_bytes(&self, bytes: &[u8]) -> Option<Vec<u8>> {
        let mut current: Option<Vec<u8>> = None;
        for needle in &self.needles {
            let haystack = current.as_deref().unwrap_or(bytes);
            if memmem::find(haystack, needle).is_none() {
                continue;
            }
            let mut out = Vec::with_capacity(haystack.len());
            let mut rest = haystack;
            while let Some(at) = memmem::find(rest, needle) {
                out.extend_from_slice(&rest[..at]);
                out.extend_from_slice(REDACTED.as_bytes());
                rest = &rest[at + needle.len()..];
            }
            out.extend_from_slice(rest);
            current = Some(out);
        }
        current
    }

    /// `text` with every registered form replaced.
    pub fn scrub_str(&self, text: &str) -> String {
        match self.scrub_bytes(text.as_bytes()) {
            Some(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
            None => text.to_string(),
        }
    }

    /// Scrubs a response body, sharing it unchanged when it holds no secret.
    pub fn scrub_body(&self, body: Bytes) -> Bytes {
        self.scrub_bytes(&body).map(Bytes::from).unwrap_or(body)
    }

    /// Scrubs header values in place.
    pub fn scrub_headers(&self, headers: &mut HeaderMap) {
        for value in headers.values_mut() {
            if let Some(clean) = self.scrub_bytes(value.as_bytes()) {
                *value = HeaderValue::from_bytes(&clean).unwrap_or_else(|_| HeaderValue::from_static(REDACTED));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_sent_form_is_scrubbed() {
        let mut r = Redactor::default();
        r.add("p@ss word-1", &Placement::Basic { username: "me".into() });
        let basic = BASE64.encode("me:p@ss word-1");
        let text = format!(
            "raw=p@ss word-1 enc=p%40ss%20word%2D1 form=p%40ss+word-1 b64={basic} plain={}",
            BASE64.encode("p@ss word-1")
        );
        assert_eq!(
            r.scrub_str(&text),
            "raw=[REDACTED] enc=[REDACTED] form=[REDACTED] b64=[REDACTED] plain=[REDACTED]"
        );
    }

    #[test]
    fn untouched_input_is_not_copied() {
        let mut r = Redactor::default();
        r.add("tok", &Placement::Bearer);
        assert!(r.scrub_bytes(b"nothing here").is_none());
        let body = Bytes::from_static(b"nothing here");
        assert_eq!(r.scrub_body(body.clone()).as_ptr(), body.as_ptr());
    }

    #[test]
    fn headers_are_scrubbed_in_place() {
        let mut r = Redactor::default();
        r.add("tok123", &Placement::Header("x-api-key".into()));
        let mut headers = HeaderMap::new();
        headers.insert("x-echo", HeaderValue::from_static("key=tok123;"));
        headers.insert("x-other", HeaderValue::from_static("fine"));
        r.scrub_headers(&mut headers);
        assert_eq!(headers["x-echo"], "key=[REDACTED];");
        assert_eq!(headers["x-other"], "fine");
    }
}
