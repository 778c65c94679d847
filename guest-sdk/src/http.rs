//! Outbound HTTP through the host's egress pipeline: a typed request builder and its response.
//!
//! The host enforces the allowlist, attaches secrets, retries, rate-limits and times out; a
//! builder only describes the request and the narrowing of those policies it wants.
//!
//! ```no_run
//! use std::time::Duration;
//! use apiary_sdk::http;
//!
//! # fn main() -> Result<(), apiary_sdk::RunError> {
//! let response = http::get("https://api.github.com/repos/octocat/hello-world/issues")
//!     .query("per_page", "100")
//!     .header("accept", "application/vnd.github+json")
//!     .bearer("github_token")
//!     .timeout(Duration::from_secs(10))
//!     .send()?;
//! assert!(response.is_success());
//! # Ok(())
//! # }
//! ```

use std::borrow::Cow;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::bindings::apiary::plugin::http as wire;
use crate::secrets::{self, SecretAttachment};

pub use wire::Method;

/// A request exactly as it crosses into the host.
pub type WireRequest = wire::Request;

/// A response exactly as it crossed from the host; wrap one with [`Response::new`].
pub type WireResponse = wire::Response;

/// Why a request failed (the WIT `http.error`); each case is something a plugin can handle.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Error {
    /// The destination is not in the manifest's allowlist; the text names it.
    Denied(String),
    /// The request is malformed (bad URL, method or header); the text says what.
    InvalidRequest(String),
    /// An attempt took longer than its timeout, in milliseconds, and retries were exhausted or
    /// not allowed.
    Timeout(u64),
    /// The rate limit would delay the request for longer than allowed; the wait is in milliseconds.
    RateLimited(u64),
    /// Every allowed attempt failed with a retryable status or error.
    RetriesExhausted(RetriesExhausted),
    /// The response body exceeded the host's limit, in bytes.
    BodyTooLarge(u64),
    /// The connection failed (DNS, refused, TLS, reset) and was not retried.
    Connection(String),
    /// A secret could not be attached.
    Secret(secrets::Error),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Denied(destination) => write!(f, "request denied: {destination}"),
            Error::InvalidRequest(reason) => write!(f, "invalid request: {reason}"),
            Error::Timeout(ms) => write!(f, "request timed out after {ms} ms"),
            Error::RateLimited(ms) => write!(f, "rate limited: the next slot is {ms} ms away"),
            Error::RetriesExhausted(last) => write!(f, "{last}"),
            Error::BodyTooLarge(limit) => {
                write!(f, "response body exceeds the host's limit of {limit} bytes")
            }
            Error::Connection(reason) => write!(f, "connection failed: {reason}"),
            Error::Secret(error) => write!(f, "secret not attached: {error}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Secret(error) => Some(error),
            _ => None,
        }
    }
}

impl From<Error> for crate::RunError {
    fn from(error: Error) -> Self {
        crate::RunError::Http(error)
    }
}

/// Retry gave up: the details of the last attempt (the WIT `http.retries-exhausted`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetriesExhausted {
    /// Attempts made.
    pub attempts: u32,
    /// The last response's status, when the last attempt got one.
    pub last_status: Option<u16>,
    /// The last failure, in one line.
    pub message: String,
}

impl std::fmt::Display for RetriesExhausted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "gave up after {} attempts", self.attempts)?;
        if let Some(status) = self.last_status {
            write!(f, " (last status {status})")?;
        }
        write!(f, ": {}", self.message)
    }
}

impl From<&str> for Method {
    /// Maps a method token to its case; tokens are case-sensitive, so `"get"` is `Other`.
    fn from(token: &str) -> Self {
        match token {
            "GET" => Method::Get,
            "HEAD" => Method::Head,
            "POST" => Method::Post,
            "PUT" => Method::Put,
            "PATCH" => Method::Patch,
            "DELETE" => Method::Delete,
            "OPTIONS" => Method::Options,
            other => Method::Other(other.to_owned()),
        }
    }
}

/// Starts a GET request to `url`.
pub fn get(url: impl Into<String>) -> RequestBuilder {
    request(Method::Get, url)
}

/// Starts a POST request to `url`.
pub fn post(url: impl Into<String>) -> RequestBuilder {
    request(Method::Post, url)
}

/// Starts a PUT request to `url`.
pub fn put(url: impl Into<String>) -> RequestBuilder {
    request(Method::Put, url)
}

/// Starts a PATCH request to `url`.
pub fn patch(url: impl Into<String>) -> RequestBuilder {
    request(Method::Patch, url)
}

/// Starts a DELETE request to `url`.
pub fn delete(url: impl Into<String>) -> RequestBuilder {
    request(Method::Delete, url)
}

/// Starts a request with any `method` to `url`, an absolute `http` or `https` URL.
///
/// ```
/// let builder = apiary_sdk::http::request("OPTIONS".into(), "https://api.example.com/");
/// assert!(matches!(builder.method(), apiary_sdk::http::Method::Options));
/// ```
pub fn request(method: Method, url: impl Into<String>) -> RequestBuilder {
    RequestBuilder {
        method,
        url: url.into(),
        query: Vec::new(),
        headers: Vec::new(),
        body: None,
        secrets: Vec::new(),
        options: wire::RequestOptions {
            timeout_ms: None,
            idempotent: None,
            retry: None,
            bucket: None,
        },
    }
}

/// A request being described; [`send`](Self::send) hands it to the host.
///
/// Builders are cheap to clone and [`send`](Self::send) borrows, so one builder can be sent again
/// or used as a template (the paginators do both).
#[derive(Clone, Debug)]
pub struct RequestBuilder {
    method: Method,
    url: String,
    /// Query pairs still to be encoded into `url`.
    query: Vec<(String, String)>,
    headers: Vec<(String, String)>,
    body: Option<Vec<u8>>,
    secrets: Vec<SecretAttachment>,
    options: wire::RequestOptions,
}

impl RequestBuilder {
    /// Appends the query parameter `name=value`, percent-encoded (`application/x-www-form-urlencoded`).
    ///
    /// ```
    /// let builder = apiary_sdk::http::get("https://api.example.com/search?x=1").query("q", "a&b c");
    /// assert_eq!(builder.url().unwrap(), "https://api.example.com/search?x=1&q=a%26b+c");
    /// ```
    pub fn query(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.query.push((name.into(), value.into()));
        self
    }

    /// Appends a header; a name may repeat, as in HTTP.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Asks the host to attach the secret `secret_name` as `Authorization: Bearer <value>`.
    pub fn bearer(self, secret_name: &str) -> Self {
        self.secret(secrets::bearer(secret_name))
    }

    /// Asks the host to attach a secret as `attachment` says (see [`secrets`]).
    pub fn secret(mut self, attachment: SecretAttachment) -> Self {
        self.secrets.push(attachment);
        self
    }

    /// Sets the timeout of each attempt (whole milliseconds, saturating).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.options.timeout_ms = Some(u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX));
        self
    }

    /// Declares whether repeating this request is safe, overriding the method's default.
    pub fn idempotent(mut self, idempotent: bool) -> Self {
        self.options.idempotent = Some(idempotent);
        self
    }

    /// Allows at most `max_retries` retries after the first attempt (0 disables retries).
    ///
    /// The host caps this at the manifest's `retry.max_retries`.
    pub fn max_retries(mut self, max_retries: u32) -> Self {
        self.options.retry = Some(wire::RetryOverride {
            max_retries: Some(max_retries),
        });
        self
    }

    /// Draws from the rate-limit bucket `bucket` instead of the destination host's.
    pub fn bucket(mut self, bucket: impl Into<String>) -> Self {
        self.options.bucket = Some(bucket.into());
        self
    }

    /// Sets the request body.
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = Some(body.into());
        self
    }

    /// Sets the body to `value` as JSON, and `content-type: application/json` unless set.
    ///
    /// # Errors
    ///
    /// When `value` cannot be serialized (a map with non-string keys, for example).
    pub fn json_body<T: Serialize + ?Sized>(mut self, value: &T) -> Result<Self, serde_json::Error> {
        self.body = Some(serde_json::to_vec(value)?);
        if !self
            .headers
            .iter()
            .any(|(name, _)| name.eq_ignore_ascii_case("content-type"))
        {
            self.headers.push(("content-type".into(), "application/json".into()));
        }
        Ok(self)
    }

    /// Replaces the URL with `url`, used as given: query pairs added so far are dropped.
    ///
    /// Everything else (method, headers, body, secrets, options) is kept, which is what following
    /// a pagination link needs.
    pub fn with_url(mut self, url: impl Into<String>) -> Self {
        self.url = url.into();
        self.query.clear();
        self
    }

    /// The method.
    pub fn method(&self) -> &Method {
        &self.method
    }

    /// The URL with the query pairs encoded into it.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidRequest`] when query pairs were added to a URL that does not parse. A URL
    /// without added pairs is passed through unchanged for the host to judge.
    pub fn url(&self) -> Result<String, Error> {
        if self.query.is_empty() {
            return Ok(self.url.clone());
        }
        let mut url = url::Url::parse(&self.url)
            .map_err(|e| Error::InvalidRequest(format!("invalid URL `{}`: {e}", self.url)))?;
        url.query_pairs_mut().extend_pairs(&self.query);
        Ok(url.into())
    }

    /// The request as the host receives it.
    ///
    /// # Errors
    ///
    /// As for [`url`](Self::url).
    pub fn to_wire(&self) -> Result<WireRequest, Error> {
        Ok(WireRequest {
            method: self.method.clone(),
            url: self.url()?,
            headers: self.headers.clone(),
            body: self.body.clone(),
            secrets: self.secrets.clone(),
            options: self.options.clone(),
        })
    }

    /// Sends the request and waits for its response (4xx and 5xx included).
    ///
    /// # Errors
    ///
    /// The [`Error`] case saying why no response came back.
    pub fn send(&self) -> Result<Response, Error> {
        let request = self.to_wire()?;
        let response = wire::send(&request)?;
        Ok(Response::new(request.url, response))
    }
}

/// Sends several requests concurrently; results are in the order of `requests`.
///
/// A builder whose URL cannot be built fails alone, with [`Error::InvalidRequest`].
///
/// # Panics
///
/// When the host returns fewer results than requests, which would be a host bug.
pub fn send_all(requests: impl IntoIterator<Item = RequestBuilder>) -> Vec<Result<Response, Error>> {
    let built: Vec<Result<WireRequest, Error>> = requests.into_iter().map(|r| r.to_wire()).collect();
    let sendable: Vec<WireRequest> = built.iter().filter_map(|r| r.as_ref().ok().cloned()).collect();
    let mut responses = wire::send_batch(&sendable).into_iter();
    built
        .into_iter()
        .map(|request| {
            let request = request?;
            // The host returns exactly one result per request; a short list is a host bug.
            let response = responses
                .next()
                .expect("send-batch returned fewer results than requests")?;
            Ok(Response::new(request.url, response))
        })
        .collect()
}

/// Requests started together whose responses are taken as each completes, so a plugin works on
/// the first response while the others are still in flight. Iterating yields `(index, result)`
/// pairs, `index` being the request's position in the order given; every request yields once.
///
/// ```no_run
/// use apiary_sdk::http;
///
/// let pages = (1..=5).map(|page| http::get("https://api.example.com/items").query("page", page.to_string()));
/// for (index, result) in http::Batch::start(pages) {
///     match result {
///         Ok(response) => { /* map page index + 1 as soon as it arrives */ }
///         Err(error) => { /* the error of that page alone */ }
///     }
/// }
/// ```
#[derive(Debug)]
pub struct Batch {
    started: wire::Batch,
    /// The index in the caller's order of each request the host was given.
    indices: Vec<usize>,
    urls: Vec<String>,
    /// Requests whose builder failed, yielded first.
    failed: std::collections::VecDeque<(usize, Error)>,
}

impl Batch {
    /// Starts `requests`; the host runs up to the manifest's `max_concurrency` at once.
    pub fn start(requests: impl IntoIterator<Item = RequestBuilder>) -> Batch {
        let (mut wires, mut indices, mut urls, mut failed) = (Vec::new(), Vec::new(), Vec::new(), Default::default());
        for (index, request) in requests.into_iter().enumerate() {
            match request.to_wire() {
                Ok(wire) => {
                    indices.push(index);
                    urls.push(wire.url.clone());
                    wires.push(wire);
                }
                Err(error) => std::collections::VecDeque::push_back(&mut failed, (index, error)),
            }
        }
        Batch {
            started: wire::Batch::new(&wires),
            indices,
            urls,
            failed,
        }
    }
}

impl Iterator for Batch {
    type Item = (usize, Result<Response, Error>);

    fn next(&mut self) -> Option<Self::Item> {
        if let Some((index, error)) = self.failed.pop_front() {
            return Some((index, Err(error)));
        }
        let (position, result) = self.started.next()?;
        let position = position as usize;
        let url = self.urls.get(position).cloned().unwrap_or_default();
        let index = self.indices.get(position).copied().unwrap_or(position);
        Some((index, result.map(|response| Response::new(url, response))))
    }
}

/// A response, with the URL of the request that got it (for resolving relative links).
#[derive(Clone, Debug)]
pub struct Response {
    url: String,
    wire: WireResponse,
}

impl Response {
    /// Wraps `wire`, the response to a request for `url`; useful to test mapping code natively.
    ///
    /// ```
    /// use apiary_sdk::http::{Response, WireResponse};
    ///
    /// let response = Response::new(
    ///     "https://api.example.com/items",
    ///     WireResponse {
    ///         status: 200,
    ///         headers: vec![("Content-Type".into(), "application/json".into())],
    ///         body: br#"[1, 2]"#.to_vec(),
    ///         attempts: 1,
    ///     },
    /// );
    /// assert_eq!(response.header("content-type"), Some("application/json"));
    /// assert_eq!(response.json::<Vec<u32>>().unwrap(), [1, 2]);
    /// ```
    pub fn new(url: impl Into<String>, wire: WireResponse) -> Self {
        Response { url: url.into(), wire }
    }

    /// The status code.
    pub fn status(&self) -> u16 {
        self.wire.status
    }

    /// True for a 2xx status.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.wire.status)
    }

    /// The first value of the header `name` (compared case-insensitively).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.header_values(name).into_iter().next()
    }

    /// Every value of the header `name` in order (compared case-insensitively); join them with
    /// `", "` to get the combined field value.
    pub fn header_values(&self, name: &str) -> Vec<&str> {
        self.wire
            .headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
            .collect()
    }

    /// All headers as (name, value) pairs, in order.
    pub fn headers(&self) -> &[(String, String)] {
        &self.wire.headers
    }

    /// The body.
    pub fn body(&self) -> &[u8] {
        &self.wire.body
    }

    /// The body, taken out of the response.
    pub fn into_body(self) -> Vec<u8> {
        self.wire.body
    }

    /// The body as text, with invalid UTF-8 replaced by U+FFFD.
    pub fn text(&self) -> Cow<'_, str> {
        String::from_utf8_lossy(&self.wire.body)
    }

    /// The body parsed as JSON.
    ///
    /// # Errors
    ///
    /// When the body is not JSON of the shape of `T`.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_slice(&self.wire.body)
    }

    /// How many attempts the host made (1 when the first one succeeded).
    pub fn attempts(&self) -> u32 {
        self.wire.attempts
    }

    /// The URL of the request that got this response.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The `rel="next"` target of the `Link` headers, resolved against [`url`](Self::url).
    ///
    /// See [`crate::paginate::next_link`] for the parsing rules.
    pub fn next_link(&self) -> Option<String> {
        crate::paginate::next_link(&self.header_values("link"), &self.url)
    }

    /// The response exactly as it crossed from the host.
    pub fn into_wire(self) -> WireResponse {
        self.wire
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(headers: &[(&str, &str)]) -> Response {
        Response::new(
            "https://api.example.com/items?page=1",
            WireResponse {
                status: 200,
                headers: headers.iter().map(|&(n, v)| (n.into(), v.into())).collect(),
                body: Vec::new(),
                attempts: 1,
            },
        )
    }

    #[test]
    fn header_lookup_ignores_case_and_keeps_every_value() {
        let response = response(&[("Link", "<a>; rel=prev"), ("x-other", "1"), ("LINK", "</b>; rel=next")]);
        assert_eq!(response.header("link"), Some("<a>; rel=prev"));
        assert_eq!(response.header_values("Link"), ["<a>; rel=prev", "</b>; rel=next"]);
        assert_eq!(response.next_link().as_deref(), Some("https://api.example.com/b"));
        assert_eq!(response.header("absent"), None);
    }

    #[test]
    fn query_pairs_are_percent_encoded_after_existing_ones() {
        let url = get("https://api.example.com/s?state=open")
            .query("q", "label:bug is:open")
            .query("tag", "ü/#?&=")
            .url()
            .unwrap();
        assert_eq!(
            url,
            "https://api.example.com/s?state=open&q=label%3Abug+is%3Aopen&tag=%C3%BC%2F%23%3F%26%3D"
        );
    }

    #[test]
    fn with_url_drops_pending_query_pairs_and_keeps_everything_else() {
        let first = get("https://api.example.com/items")
            .query("per_page", "100")
            .header("accept", "application/json")
            .bearer("token")
            .max_retries(1);
        let next = first
            .with_url("https://api.example.com/items?page=2&per_page=100")
            .to_wire()
            .unwrap();
        assert_eq!(next.url, "https://api.example.com/items?page=2&per_page=100");
        assert_eq!(next.headers, [("accept".to_owned(), "application/json".to_owned())]);
        assert_eq!(next.secrets.len(), 1);
        assert_eq!(next.options.retry.unwrap().max_retries, Some(1));
    }

    #[test]
    fn query_on_an_unparsable_url_is_an_invalid_request() {
        let error = get("not a url").query("a", "b").to_wire().unwrap_err();
        assert!(
            matches!(error, Error::InvalidRequest(ref m) if m.contains("not a url")),
            "{error}"
        );
    }

    #[test]
    fn json_body_sets_content_type_once() {
        let request = post("https://api.example.com/")
            .header("Content-Type", "application/merge-patch+json")
            .json_body(&serde_json::json!({"a": 1}))
            .unwrap()
            .to_wire()
            .unwrap();
        assert_eq!(request.body.as_deref(), Some(&br#"{"a":1}"#[..]));
        assert_eq!(request.headers.len(), 1);
    }

    #[test]
    fn timeout_is_whole_milliseconds() {
        let request = get("https://api.example.com/")
            .timeout(Duration::from_micros(2_500))
            .to_wire()
            .unwrap();
        assert_eq!(request.options.timeout_ms, Some(2));
    }
}
