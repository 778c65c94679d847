//! Caps on what a plugin may hand the `http` interface: everything a request carries is
//! checked before the host copies or parses more of it, and over a cap is an
//! `invalid-request` value, never a panic.

use http::HeaderName;

/// Longest URL accepted, in bytes: far above any real API's, far below what would hurt.
pub const MAX_URL_BYTES: usize = 8 * 1024;
/// Most header fields one request may set.
pub const MAX_REQUEST_HEADERS: usize = 64;
/// Most bytes of header names and values one request may set, together.
pub const MAX_REQUEST_HEADER_BYTES: usize = 64 * 1024;
/// Largest request body, in bytes.
pub const MAX_REQUEST_BODY_BYTES: usize = 16 * 1024 * 1024;
/// Most secrets one request may ask to attach.
pub const MAX_ATTACHMENTS: usize = 8;
/// Most requests in one `send-batch`: a batch is for a page's worth of work, not a crawl.
pub const MAX_BATCH_REQUESTS: usize = 256;

/// Headers that say how a request is routed or framed. The host sets them; a plugin that sets
/// one could pick another virtual host behind a granted address, or smuggle a second request.
pub(crate) const HOST_OWNED_HEADERS: &[&str] = &[
    "host",
    "connection",
    "keep-alive",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "content-length",
    "proxy-authorization",
    "proxy-connection",
];

/// Whether the header `name` (lower case) is one the host owns.
pub(crate) fn is_host_owned(name: &str) -> bool {
    HOST_OWNED_HEADERS.contains(&name) || name.starts_with("proxy-")
}

/// Parses a header name a plugin set, refusing one the host owns.
///
/// # Errors
/// A sentence naming the header, for `invalid-request`.
pub(crate) fn plugin_header_name(name: &str) -> Result<HeaderName, String> {
    let name = HeaderName::try_from(name).map_err(|_| format!("`{name}` is not a valid header name"))?;
    if is_host_owned(name.as_str()) {
        return Err(format!("the header `{name}` is set by the host, not the plugin"));
    }
    Ok(name)
}

/// What a request carries, measured before it is converted.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RequestShape<'a> {
    pub(crate) url: &'a str,
    /// Header fields set.
    pub(crate) header_count: usize,
    /// Bytes of header names and values, together.
    pub(crate) header_bytes: usize,
    pub(crate) body_bytes: usize,
    pub(crate) attachments: usize,
}

impl<'a> RequestShape<'a> {
    /// The shape of a request with these header fields.
    pub(crate) fn new<N: AsRef<[u8]>, V: AsRef<[u8]>>(
        url: &'a str,
        headers: impl Iterator<Item = (N, V)>,
        body_bytes: usize,
        attachments: usize,
    ) -> Self {
        let (header_count, header_bytes) = headers.fold((0, 0), |(count, bytes), (name, value)| {
            (count + 1, bytes + name.as_ref().len() + value.as_ref().len())
        });
        Self {
            url,
            header_count,
            header_bytes,
            body_bytes,
            attachments,
        }
    }
}

/// Checks `request` against the caps, before anything in it is parsed.
///
/// # Errors
/// A sentence naming the cap, for `invalid-request`.
pub(crate) fn check(request: RequestShape<'_>) -> Result<(), String> {
    if request.url.len() > MAX_URL_BYTES {
        return Err(format!(
            "the URL is {} bytes, over the limit of {MAX_URL_BYTES}",
            request.url.len()
        ));
    }
    if request.header_count > MAX_REQUEST_HEADERS {
        return Err(format!(
            "{} headers, over the limit of {MAX_REQUEST_HEADERS}",
            request.header_count
        ));
    }
    let header_bytes = request.header_bytes;
    if header_bytes > MAX_REQUEST_HEADER_BYTES {
        return Err(format!(
            "the headers take {header_bytes} bytes, over the limit of {MAX_REQUEST_HEADER_BYTES}"
        ));
    }
    if request.body_bytes > MAX_REQUEST_BODY_BYTES {
        return Err(format!(
            "the body is {} bytes, over the limit of {MAX_REQUEST_BODY_BYTES}",
            request.body_bytes
        ));
    }
    if request.attachments > MAX_ATTACHMENTS {
        return Err(format!(
            "{} secret attachments, over the limit of {MAX_ATTACHMENTS}",
            request.attachments
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape<'a>(url: &'a str, headers: &'a [(String, String)]) -> RequestShape<'a> {
        RequestShape::new(url, headers.iter().map(|(n, v)| (n, v)), 0, 0)
    }

    fn headers(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect()
    }

    #[test]
    fn an_ordinary_request_passes() {
        let h = headers(&[("accept", "application/json"), ("x-request-id", "1")]);
        assert_eq!(check(shape("https://api.example.com/v1/items?page=2", &h)), Ok(()));
    }

    /// Regression: 40,000 header names panicked the host (`size overflows MAX_SIZE`) before the
    /// allowlist was consulted.
    #[test]
    fn too_many_or_too_large_headers_are_refused() {
        let many: Vec<(String, String)> = (0..40_000).map(|i| (format!("x-{i}"), String::new())).collect();
        let err = check(shape("https://a.example/", &many)).unwrap_err();
        assert_eq!(err, "40000 headers, over the limit of 64");
        let big = headers(&[("x-big", &"v".repeat(70_000))]);
        assert!(
            check(shape("https://a.example/", &big))
                .unwrap_err()
                .contains("over the limit of 65536")
        );
    }

    #[test]
    fn host_owned_headers_are_refused() {
        for name in [
            "Host",
            "connection",
            "TE",
            "transfer-encoding",
            "upgrade",
            "proxy-foo",
            "content-length",
        ] {
            let err = plugin_header_name(name).unwrap_err();
            assert!(err.contains("is set by the host"), "{name}: {err}");
        }
        assert_eq!(plugin_header_name("X-Request-Id").unwrap(), "x-request-id");
        assert!(
            plugin_header_name("bad name")
                .unwrap_err()
                .contains("not a valid header name")
        );
    }

    #[test]
    fn url_body_and_attachment_caps() {
        let long = format!("https://a.example/{}", "a".repeat(MAX_URL_BYTES));
        assert!(check(shape(&long, &[])).unwrap_err().starts_with("the URL is"));
        let body = RequestShape {
            body_bytes: MAX_REQUEST_BODY_BYTES + 1,
            ..shape("https://a.example/", &[])
        };
        assert!(check(body).unwrap_err().starts_with("the body is"));
        let attachments = RequestShape {
            attachments: MAX_ATTACHMENTS + 1,
            ..shape("https://a.example/", &[])
        };
        assert!(check(attachments).unwrap_err().contains("secret attachments"));
    }
}
