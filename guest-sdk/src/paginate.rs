//! Pagination: iterators over the pages of a listing, with loop guards.
//!
//! - [`LinkPages`] follows `Link: <...>; rel="next"` headers (RFC 8288), as GitHub and many REST
//!   APIs paginate.
//! - [`CursorPages`] follows a cursor found in each page (Stripe's `starting_after`, Slack's
//!   `next_cursor`).
//!
//! Both yield one `Result<Response, PageError>` per page and stop after the first error: a non-2xx
//! page, a failed request, a next URL or cursor that was already seen (a server loop), or more
//! pages than [`max_pages`](LinkPages::max_pages) allows.
//!
//! ```no_run
//! use apiary_sdk::{http, output, paginate::LinkPages};
//!
//! # fn main() -> Result<(), apiary_sdk::RunError> {
//! let first = http::get("https://api.github.com/repos/octocat/hello-world/issues").query("per_page", "100");
//! for page in LinkPages::new(first) {
//!     for issue in page?.json::<Vec<serde_json::Value>>().map_err(apiary_sdk::json_failed)? {
//!         output::emit(&issue)?;
//!     }
//! }
//! # Ok(())
//! # }
//! ```

use std::collections::BTreeSet;
use std::iter::FusedIterator;

use crate::http::{self, RequestBuilder, Response};

/// The default page limit: far above any real listing the SDK's users walk (10 000 pages of 100
/// items is a million records), yet it ends a runaway walk that the loop guard cannot see, such
/// as a server that invents a new next URL forever.
pub const DEFAULT_MAX_PAGES: u32 = 10_000;

/// Why a walk over pages stopped early.
#[derive(Clone, Debug)]
pub enum PageError {
    /// A page's request failed.
    Http(http::Error),
    /// A page came back with a status outside 2xx; the response is kept for inspection.
    UnexpectedStatus(Response),
    /// The next URL or cursor (the payload) was already fetched: following it would loop.
    LoopDetected(String),
    /// The listing has more pages than the limit (the payload) allows.
    TooManyPages(u32),
}

impl std::fmt::Display for PageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PageError::Http(error) => write!(f, "{error}"),
            PageError::UnexpectedStatus(response) => {
                write!(f, "unexpected status {} from {}", response.status(), response.url())
            }
            PageError::LoopDetected(next) => {
                write!(f, "pagination loop: `{next}` was already fetched")
            }
            PageError::TooManyPages(max) => {
                write!(
                    f,
                    "more than {max} pages: stopped (raise the page limit if that is expected)"
                )
            }
        }
    }
}

impl std::error::Error for PageError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            PageError::Http(error) => Some(error),
            _ => None,
        }
    }
}

impl From<http::Error> for PageError {
    fn from(error: http::Error) -> Self {
        PageError::Http(error)
    }
}

impl From<PageError> for crate::RunError {
    fn from(error: PageError) -> Self {
        match error {
            PageError::Http(error) => crate::RunError::Http(error),
            other => crate::RunError::Failed(other.to_string()),
        }
    }
}

/// Sends one page's request; the host in production, a fake in tests.
type Sender = Box<dyn FnMut(&RequestBuilder) -> Result<Response, http::Error>>;

/// The bookkeeping both paginators share: sending, counting and the loop guard.
struct Walk {
    send: Sender,
    /// Normalized URLs or cursors already fetched.
    seen: BTreeSet<String>,
    pages: u32,
    max_pages: u32,
    /// An error found while reading the last good page, yielded after it.
    pending: Option<PageError>,
}

impl Walk {
    fn new(send: Sender) -> Self {
        Walk {
            send,
            seen: BTreeSet::new(),
            pages: 0,
            max_pages: DEFAULT_MAX_PAGES,
            pending: None,
        }
    }

    fn fetch(&mut self, request: &RequestBuilder) -> Result<Response, PageError> {
        if self.pages >= self.max_pages {
            return Err(PageError::TooManyPages(self.max_pages));
        }
        let response = (self.send)(request)?;
        if !response.is_success() {
            return Err(PageError::UnexpectedStatus(response));
        }
        self.pages += 1;
        Ok(response)
    }

    /// Records `key` as fetched; false (and a pending loop error) when it already was.
    fn first_visit(&mut self, key: String) -> bool {
        if self.seen.insert(key.clone()) {
            true
        } else {
            self.pending = Some(PageError::LoopDetected(key));
            false
        }
    }
}

/// Pages of a listing addressed by page number, when the last page is known (from a first
/// page's `Link: rel="last"`, or a total the API reports): fetched `width` at a time through a
/// streaming [`Batch`](crate::http::Batch), so several pages are in flight at once, and yielded
/// in page order.
///
/// ```no_run
/// use apiary_sdk::{http, paginate::NumberedPages};
///
/// let pages = NumberedPages::new(2..=10, |page| {
///     http::get("https://api.example.com/items").query("page", page.to_string())
/// })
/// .width(4);
/// for (page, response) in pages {
///     let response = response?; // page 2, 3, ... in order, four requests in flight at a time
/// #   let _ = (page, response);
/// }
/// # Ok::<(), apiary_sdk::http::Error>(())
/// ```
pub struct NumberedPages<F> {
    next_page: u32,
    last_page: u32,
    width: u32,
    request_for: F,
    ready: std::collections::VecDeque<(u32, Result<Response, http::Error>)>,
}

impl<F> std::fmt::Debug for NumberedPages<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NumberedPages")
            .field("next_page", &self.next_page)
            .field("last_page", &self.last_page)
            .field("width", &self.width)
            .finish_non_exhaustive()
    }
}

impl<F: FnMut(u32) -> RequestBuilder> NumberedPages<F> {
    /// Pages `pages` (inclusive), each request made by `request_for(page)`; 8 in flight at once.
    pub fn new(pages: std::ops::RangeInclusive<u32>, request_for: F) -> Self {
        NumberedPages {
            next_page: *pages.start(),
            last_page: *pages.end(),
            width: 8,
            request_for,
            ready: Default::default(),
        }
    }

    /// Sets how many pages are requested together (at least 1, at most 256). The host keeps at
    /// most the manifest's `max_concurrency` of them in flight.
    pub fn width(mut self, width: u32) -> Self {
        self.width = width.clamp(1, 256);
        self
    }
}

impl<F: FnMut(u32) -> RequestBuilder> Iterator for NumberedPages<F> {
    type Item = (u32, Result<Response, http::Error>);

    fn next(&mut self) -> Option<Self::Item> {
        if self.ready.is_empty() && self.next_page <= self.last_page && self.next_page > 0 {
            let first = self.next_page;
            let last = first.saturating_add(self.width - 1).min(self.last_page);
            let requests: Vec<RequestBuilder> = (first..=last).map(&mut self.request_for).collect();
            // Responses come back as they complete; pages go out in order.
            let mut window: Vec<Option<Result<Response, http::Error>>> = (first..=last).map(|_| None).collect();
            for (index, result) in http::Batch::start(requests) {
                window[index] = Some(result);
            }
            self.ready = (first..=last)
                .zip(window)
                .filter_map(|(page, result)| result.map(|result| (page, result)))
                .collect();
            self.next_page = if last == u32::MAX { 0 } else { last + 1 };
        }
        self.ready.pop_front()
    }
}

/// Pages of a listing paginated with `Link: <...>; rel="next"` headers.
///
/// Each next request is the first one with its URL replaced by the next link, used as given: the
/// headers, secrets and options carry over, but query pairs added with
/// [`RequestBuilder::query`] do not (the next link already holds them).
pub struct LinkPages {
    next: Option<RequestBuilder>,
    walk: Walk,
}

impl LinkPages {
    /// Starts a walk at `first`, sending each page's request through the host.
    pub fn new(first: RequestBuilder) -> Self {
        Self::with_sender(first, Box::new(RequestBuilder::send))
    }

    fn with_sender(first: RequestBuilder, send: Sender) -> Self {
        let mut walk = Walk::new(send);
        if let Ok(url) = first.url() {
            walk.seen.insert(normalize_url(&url));
        }
        LinkPages {
            next: Some(first),
            walk,
        }
    }

    /// Sets the most pages to fetch before stopping with [`PageError::TooManyPages`].
    pub fn max_pages(mut self, max_pages: u32) -> Self {
        self.walk.max_pages = max_pages;
        self
    }

    /// How many pages were fetched successfully so far.
    pub fn pages(&self) -> u32 {
        self.walk.pages
    }
}

impl Iterator for LinkPages {
    type Item = Result<Response, PageError>;

    fn next(&mut self) -> Option<Self::Item> {
        if let Some(error) = self.walk.pending.take() {
            return Some(Err(error));
        }
        let request = self.next.take()?;
        let response = match self.walk.fetch(&request) {
            Ok(response) => response,
            Err(error) => return Some(Err(error)),
        };
        if let Some(next_url) = response.next_link()
            && self.walk.first_visit(normalize_url(&next_url))
        {
            self.next = Some(request.with_url(next_url));
        }
        Some(Ok(response))
    }
}

impl FusedIterator for LinkPages {}

impl std::fmt::Debug for LinkPages {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LinkPages")
            .field("next", &self.next)
            .field("pages", &self.walk.pages)
            .field("max_pages", &self.walk.max_pages)
            .finish_non_exhaustive()
    }
}

/// Pages of a listing paginated with a cursor read from each page.
///
/// `cursor_of` reads the next cursor from a page (`None`, or an empty string as Slack sends on the
/// last page, ends the walk); `apply` turns the *first* request and a cursor into the next
/// request, so parameters it adds never pile up.
///
/// ```no_run
/// use apiary_sdk::{http, paginate::CursorPages};
///
/// let first = http::get("https://slack.com/api/conversations.list").query("limit", "200");
/// let pages = CursorPages::new(
///     first,
///     |page| {
///         let body: serde_json::Value = page.json().ok()?;
///         Some(body["response_metadata"]["next_cursor"].as_str()?.to_owned())
///     },
///     |first, cursor| first.query("cursor", cursor),
/// );
/// for page in pages {
///     let _channels = page.unwrap().json::<serde_json::Value>();
/// }
/// ```
pub struct CursorPages<C, A> {
    first: RequestBuilder,
    next: Option<RequestBuilder>,
    cursor_of: C,
    apply: A,
    walk: Walk,
}

impl<C, A> CursorPages<C, A>
where
    C: FnMut(&Response) -> Option<String>,
    A: FnMut(RequestBuilder, &str) -> RequestBuilder,
{
    /// Starts a walk at `first`, sending each page's request through the host.
    pub fn new(first: RequestBuilder, cursor_of: C, apply: A) -> Self {
        Self::with_sender(first, cursor_of, apply, Box::new(RequestBuilder::send))
    }

    fn with_sender(first: RequestBuilder, cursor_of: C, apply: A, send: Sender) -> Self {
        CursorPages {
            next: Some(first.clone()),
            first,
            cursor_of,
            apply,
            walk: Walk::new(send),
        }
    }

    /// Sets the most pages to fetch before stopping with [`PageError::TooManyPages`].
    pub fn max_pages(mut self, max_pages: u32) -> Self {
        self.walk.max_pages = max_pages;
        self
    }

    /// How many pages were fetched successfully so far.
    pub fn pages(&self) -> u32 {
        self.walk.pages
    }
}

impl<C, A> Iterator for CursorPages<C, A>
where
    C: FnMut(&Response) -> Option<String>,
    A: FnMut(RequestBuilder, &str) -> RequestBuilder,
{
    type Item = Result<Response, PageError>;

    fn next(&mut self) -> Option<Self::Item> {
        if let Some(error) = self.walk.pending.take() {
            return Some(Err(error));
        }
        let request = self.next.take()?;
        let response = match self.walk.fetch(&request) {
            Ok(response) => response,
            Err(error) => return Some(Err(error)),
        };
        if let Some(cursor) = (self.cursor_of)(&response).filter(|cursor| !cursor.is_empty())
            && self.walk.first_visit(cursor.clone())
        {
            self.next = Some((self.apply)(self.first.clone(), &cursor));
        }
        Some(Ok(response))
    }
}

impl<C, A> FusedIterator for CursorPages<C, A>
where
    C: FnMut(&Response) -> Option<String>,
    A: FnMut(RequestBuilder, &str) -> RequestBuilder,
{
}

impl<C, A> std::fmt::Debug for CursorPages<C, A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CursorPages")
            .field("first", &self.first)
            .field("next", &self.next)
            .field("pages", &self.walk.pages)
            .field("max_pages", &self.walk.max_pages)
            .finish_non_exhaustive()
    }
}

/// The URL in the form the loop guard compares (the `url` crate's serialization), so that
/// `HTTPS://Host/a` and `https://host/a` count as one.
fn normalize_url(url: &str) -> String {
    url::Url::parse(url).map_or_else(|_| url.to_owned(), String::from)
}

/// The target of the first link with relation type `next` in `Link` header values, resolved
/// against `base` (the URL of the request that got them).
///
/// Follows RFC 8288: several header lines are one value joined with `", "`; a link-value is
/// `<URI-Reference>` followed by `;`-separated parameters whose values may be tokens or quoted
/// strings (which may hold `;` and `,`); `rel` holds space-separated relation types compared
/// case-insensitively; a link-value's first `rel` wins. Malformed link-values are skipped.
/// Returns `None` when no link is `next` or its target does not resolve to an absolute URL.
///
/// ```
/// use apiary_sdk::paginate::next_link;
///
/// let link = r#"<https://api.github.com/user/repos?page=3>; rel="next", <https://api.github.com/user/repos?page=50>; rel="last""#;
/// assert_eq!(
///     next_link(&[link], "https://api.github.com/user/repos?page=2").as_deref(),
///     Some("https://api.github.com/user/repos?page=3"),
/// );
/// assert_eq!(next_link(&["</items?page=2>; rel=next"], "https://api.example.com/items").as_deref(), Some("https://api.example.com/items?page=2"));
/// assert_eq!(next_link(&[], "https://api.example.com/"), None);
/// ```
pub fn next_link(header_values: &[&str], base: &str) -> Option<String> {
    let header = header_values.join(", ");
    let target = LinkValues::new(&header)
        .find(|link| {
            link.rel
                .as_deref()
                .is_some_and(|rel| rel.split_ascii_whitespace().any(|t| t.eq_ignore_ascii_case("next")))
        })?
        .target;
    match url::Url::parse(base) {
        Ok(base) => base.join(target).ok().map(String::from),
        Err(_) => url::Url::parse(target).ok().map(String::from),
    }
}

/// One parsed link-value: its target and its first `rel` parameter.
#[derive(Debug, PartialEq)]
struct LinkValue<'a> {
    target: &'a str,
    rel: Option<String>,
}

/// The link-values of a `Link` field value, in order.
struct LinkValues<'a> {
    header: &'a str,
    at: usize,
}

impl<'a> LinkValues<'a> {
    fn new(header: &'a str) -> Self {
        LinkValues { header, at: 0 }
    }

    fn peek(&self) -> Option<u8> {
        self.header.as_bytes().get(self.at).copied()
    }

    fn skip_whitespace(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.at += 1;
        }
    }

    /// Moves to the next byte in `stops` outside a quoted string, or to the end.
    fn skip_until(&mut self, stops: &[u8]) {
        let mut quoted = false;
        while let Some(byte) = self.peek() {
            match byte {
                b'\\' if quoted => self.at += 1,
                b'"' => quoted = !quoted,
                _ if !quoted && stops.contains(&byte) => return,
                _ => {}
            }
            self.at += 1;
        }
    }

    /// A parameter name: a token, up to `=`, `;`, `,` or whitespace.
    fn name(&mut self) -> &'a str {
        let start = self.at;
        while self
            .peek()
            .is_some_and(|b| !matches!(b, b'=' | b';' | b',' | b' ' | b'\t'))
        {
            self.at += 1;
        }
        &self.header[start..self.at]
    }

    /// A parameter value after `=`: a quoted string (unescaped) or a token.
    fn value(&mut self) -> String {
        if self.peek() != Some(b'"') {
            return self.name().to_owned();
        }
        self.at += 1;
        // `\` and `"` are ASCII, so byte-wise unescaping never splits a UTF-8 sequence.
        let mut value = Vec::new();
        while let Some(byte) = self.peek() {
            self.at += 1;
            match byte {
                b'"' => break,
                b'\\' => {
                    if let Some(escaped) = self.peek() {
                        value.push(escaped);
                        self.at += 1;
                    }
                }
                _ => value.push(byte),
            }
        }
        String::from_utf8_lossy(&value).into_owned()
    }

    /// The parameters after a target, up to the `,` ending the link-value; returns the first `rel`.
    fn params(&mut self) -> Option<String> {
        let mut rel = None;
        loop {
            self.skip_whitespace();
            match self.peek() {
                None | Some(b',') => return rel,
                Some(b';') => {
                    self.at += 1;
                    self.skip_whitespace();
                    let name = self.name();
                    self.skip_whitespace();
                    let value = if self.peek() == Some(b'=') {
                        self.at += 1;
                        self.skip_whitespace();
                        self.value()
                    } else {
                        String::new()
                    };
                    if rel.is_none() && name.eq_ignore_ascii_case("rel") {
                        rel = Some(value);
                    }
                }
                // Junk between parameters: skip to the next one.
                Some(_) => self.skip_until(b";,"),
            }
        }
    }
}

impl<'a> Iterator for LinkValues<'a> {
    type Item = LinkValue<'a>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            while matches!(self.peek(), Some(b',' | b' ' | b'\t')) {
                self.at += 1;
            }
            self.peek()?;
            if self.peek() != Some(b'<') {
                // Not a link-value: skip it whole.
                self.skip_until(b",");
                continue;
            }
            let Some(length) = self.header[self.at + 1..].find('>') else {
                self.at = self.header.len();
                return None;
            };
            let target = self.header[self.at + 1..self.at + 1 + length].trim();
            self.at += length + 2;
            let rel = self.params();
            return Some(LinkValue { target, rel });
        }
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::collections::HashMap;
    use std::rc::Rc;

    use serde::Deserialize;

    use super::*;
    use crate::http::WireResponse;

    /// The shared RFC 8288 vectors (`tests/vectors/link_header.toml`, copied from the shared set).
    const LINK_HEADER_VECTORS: &str = include_str!("../../tests/vectors/link_header.toml");

    /// The base for cases that give none; their targets are absolute, so it must not show.
    const UNUSED_BASE: &str = "https://base.invalid/unused";

    #[derive(Deserialize)]
    struct LinkHeaderVectors {
        cases: Vec<LinkHeaderCase>,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct LinkHeaderCase {
        value: String,
        base: Option<String>,
        /// The expected next URL; empty when there is none.
        next: String,
        note: Option<String>,
    }

    impl LinkHeaderCase {
        fn expected(&self) -> Option<&str> {
            Some(self.next.as_str()).filter(|next| !next.is_empty())
        }

        fn base(&self) -> &str {
            self.base.as_deref().unwrap_or(UNUSED_BASE)
        }

        fn label(&self) -> String {
            format!("{:?} ({})", self.value, self.note.as_deref().unwrap_or("no note"))
        }
    }

    fn link_header_cases() -> Vec<LinkHeaderCase> {
        let vectors: LinkHeaderVectors = toml::from_str(LINK_HEADER_VECTORS).expect("link_header.toml parses");
        assert!(!vectors.cases.is_empty());
        vectors.cases
    }

    #[test]
    fn next_link_matches_every_shared_vector() {
        for case in link_header_cases() {
            assert_eq!(
                next_link(&[&case.value], case.base()).as_deref(),
                case.expected(),
                "{}",
                case.label()
            );
        }
    }

    #[test]
    fn next_link_treats_header_lines_as_one_value_joined_with_commas() {
        // The vectors' rule: two header lines are one value joined with ", ". Splitting every case at
        // its link-value boundaries must not change the answer.
        let mut split_any = false;
        for case in link_header_cases() {
            let lines: Vec<String> = case
                .value
                .split(", <")
                .enumerate()
                .map(|(i, part)| if i == 0 { part.to_owned() } else { format!("<{part}") })
                .collect();
            split_any |= lines.len() > 1;
            let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
            assert_eq!(
                next_link(&lines, case.base()).as_deref(),
                case.expected(),
                "{}",
                case.label()
            );
        }
        assert!(split_any, "no vector has two link-values to split");
    }

    #[test]
    fn next_link_skips_empty_lines_and_malformed_link_values() {
        let base = "https://api.example.com/items";
        assert_eq!(
            next_link(&["", "</b>; rel=next"], base).as_deref(),
            Some("https://api.example.com/b")
        );
        assert_eq!(
            next_link(&["junk; rel=next, </b>; rel=next"], base).as_deref(),
            Some("https://api.example.com/b")
        );
        assert_eq!(next_link(&["<https://example.com/unterminated; rel=next"], base), None);
        assert_eq!(next_link(&[r#"</a>; title="say \"next\""; rel=prev"#], base), None);
    }

    #[test]
    fn link_values_keep_the_first_rel_and_unescape_quoted_strings() {
        let links: Vec<LinkValue<'_>> = LinkValues::new(r#"<a> ; Rel = "x \"y\"" ; rel=z, <b>"#).collect();
        assert_eq!(
            links,
            [
                LinkValue {
                    target: "a",
                    rel: Some(r#"x "y""#.to_owned())
                },
                LinkValue { target: "b", rel: None },
            ]
        );
    }

    /// A fake API: each URL maps to (status, link header, body).
    #[derive(Default)]
    struct FakeApi {
        pages: HashMap<String, (u16, Option<String>, String)>,
        requests: Rc<RefCell<Vec<http::WireRequest>>>,
    }

    impl FakeApi {
        fn page(mut self, url: &str, status: u16, link: Option<&str>, body: &str) -> Self {
            self.pages
                .insert(url.to_owned(), (status, link.map(str::to_owned), body.to_owned()));
            self
        }

        fn sender(&self) -> (Sender, Rc<RefCell<Vec<http::WireRequest>>>) {
            let pages = self.pages.clone();
            let requests = Rc::clone(&self.requests);
            let send = Box::new(move |request: &RequestBuilder| {
                let wire = request.to_wire()?;
                requests.borrow_mut().push(wire.clone());
                let (status, link, body) = pages
                    .get(&wire.url)
                    .cloned()
                    .ok_or_else(|| http::Error::Connection(format!("no fake page at {}", wire.url)))?;
                let headers = link.map(|link| ("link".to_owned(), link)).into_iter().collect();
                Ok(Response::new(
                    wire.url,
                    WireResponse {
                        status,
                        headers,
                        body: body.into_bytes(),
                        attempts: 1,
                    },
                ))
            });
            (send, Rc::clone(&self.requests))
        }
    }

    fn bodies(pages: impl Iterator<Item = Result<Response, PageError>>) -> Vec<Result<String, String>> {
        pages
            .map(|page| page.map(|r| r.text().into_owned()).map_err(|e| e.to_string()))
            .collect()
    }

    #[test]
    fn link_pages_follow_next_links_as_given_with_the_same_settings() {
        let api = FakeApi::default()
            .page(
                "https://api.example.com/items?per_page=2",
                200,
                Some("</items?page=2&per_page=2>; rel=next"),
                "p1",
            )
            .page(
                "https://api.example.com/items?page=2&per_page=2",
                200,
                Some("<https://cdn.example.com/p3>; rel=next"),
                "p2",
            )
            .page("https://cdn.example.com/p3", 200, None, "p3");
        let (send, requests) = api.sender();
        let first = http::get("https://api.example.com/items")
            .query("per_page", "2")
            .header("accept", "x")
            .bearer("tok");
        let mut pages = LinkPages::with_sender(first, send);
        assert_eq!(
            bodies(pages.by_ref()),
            [Ok("p1".into()), Ok("p2".into()), Ok("p3".into())]
        );
        assert_eq!(pages.pages(), 3);
        let requests = requests.borrow();
        assert!(
            requests
                .iter()
                .all(|r| r.headers == [("accept".to_owned(), "x".to_owned())] && r.secrets.len() == 1)
        );
    }

    #[test]
    fn link_pages_stop_with_an_error_when_a_next_link_repeats() {
        let api = FakeApi::default()
            .page("https://api.example.com/a", 200, Some("</b>; rel=next"), "a")
            .page(
                "https://api.example.com/b",
                200,
                Some("<HTTPS://API.example.com/a>; rel=next"),
                "b",
            );
        let (send, _) = api.sender();
        let pages = bodies(LinkPages::with_sender(http::get("https://api.example.com/a"), send));
        assert_eq!(
            pages,
            [
                Ok("a".into()),
                Ok("b".into()),
                Err("pagination loop: `https://api.example.com/a` was already fetched".into())
            ]
        );
    }

    #[test]
    fn link_pages_stop_at_the_page_limit_and_on_a_bad_status() {
        let api = FakeApi::default()
            .page("https://api.example.com/1", 200, Some("</2>; rel=next"), "1")
            .page("https://api.example.com/2", 200, Some("</3>; rel=next"), "2")
            .page("https://api.example.com/3", 503, None, "down");
        let (send, _) = api.sender();
        let limited = LinkPages::with_sender(http::get("https://api.example.com/1"), send).max_pages(1);
        assert_eq!(
            bodies(limited),
            [
                Ok("1".into()),
                Err("more than 1 pages: stopped (raise the page limit if that is expected)".into())
            ]
        );
        let (send, _) = api.sender();
        let failing = bodies(LinkPages::with_sender(http::get("https://api.example.com/1"), send));
        assert_eq!(
            failing.last(),
            Some(&Err("unexpected status 503 from https://api.example.com/3".into()))
        );
        assert_eq!(failing.len(), 3);
    }

    #[test]
    fn cursor_pages_apply_each_cursor_to_the_first_request() {
        let api = FakeApi::default()
            .page("https://api.example.com/list?limit=2", 200, None, r#"{"next": "c2"}"#)
            .page(
                "https://api.example.com/list?limit=2&cursor=c2",
                200,
                None,
                r#"{"next": "c3"}"#,
            )
            .page(
                "https://api.example.com/list?limit=2&cursor=c3",
                200,
                None,
                r#"{"next": ""}"#,
            );
        let (send, requests) = api.sender();
        let next = |page: &Response| {
            page.json::<serde_json::Value>().ok()?["next"]
                .as_str()
                .map(str::to_owned)
        };
        let first = http::get("https://api.example.com/list").query("limit", "2");
        let pages = CursorPages::with_sender(first, next, |first, cursor| first.query("cursor", cursor), send);
        assert_eq!(bodies(pages).len(), 3);
        assert_eq!(requests.borrow().len(), 3);
    }

    #[test]
    fn cursor_pages_stop_with_an_error_when_a_cursor_repeats() {
        let api = FakeApi::default()
            .page("https://api.example.com/list", 200, None, "c1")
            .page("https://api.example.com/list?cursor=c1", 200, None, "c1");
        let (send, _) = api.sender();
        let pages = CursorPages::with_sender(
            http::get("https://api.example.com/list"),
            |page| Some(page.text().into_owned()),
            |first, cursor| first.query("cursor", cursor),
            send,
        );
        assert_eq!(
            bodies(pages),
            [
                Ok("c1".into()),
                Ok("c1".into()),
                Err("pagination loop: `c1` was already fetched".into())
            ]
        );
    }

    #[test]
    fn page_errors_convert_to_run_errors() {
        let http_error = http::Error::Timeout(5);
        assert_eq!(
            crate::RunError::from(PageError::Http(http_error.clone())),
            crate::RunError::Http(http_error)
        );
        assert!(matches!(
            crate::RunError::from(PageError::TooManyPages(3)),
            crate::RunError::Failed(_)
        ));
    }
}
