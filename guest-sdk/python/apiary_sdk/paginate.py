"""Pagination: iterators over the pages of a listing, with loop guards.

- `LinkPages` follows `Link: <...>; rel="next"` headers (RFC 8288), as GitHub and many REST
  APIs paginate.
- `CursorPages` follows a cursor found in each page (Stripe's `starting_after`, Slack's
  `next_cursor`).
- `NumberedPages` fetches numbered pages several at a time when the last page is known.

`LinkPages` and `CursorPages` yield one `Response` per page and end at the first error, which
they raise: an `http.Error` when a page's request failed, and a `PageError` when a page came back
with a non-2xx status (`UnexpectedStatus`), when the next URL or cursor was already fetched (a
server loop, `LoopDetected`: raised after the last good page was yielded), or when there are
more pages than `max_pages` allows (`TooManyPages`)::

    from apiary_sdk import http, output
    from apiary_sdk.paginate import LinkPages

    first = http.get("https://api.github.com/repos/octocat/hello-world/issues").query("per_page", 100)
    for page in LinkPages(first):
        for issue in page.json():
            output.emit(issue)

Raised out of `run`, a `PageError` ends the run as `run-error.failed` with its message and an
`http.Error` as `run-error.http`.
"""

from __future__ import annotations

import re
from collections import deque
from typing import Any, Callable, Deque, Iterator, List, Optional, Set, Tuple
from urllib.parse import urljoin

from . import http
from .http import RequestBuilder, Response, normalize_url

__all__ = [
    "DEFAULT_MAX_PAGES",
    "PageError",
    "UnexpectedStatus",
    "LoopDetected",
    "TooManyPages",
    "LinkPages",
    "CursorPages",
    "NumberedPages",
    "next_link",
]

DEFAULT_MAX_PAGES = 10_000
"""The default page limit: far above any real listing (10 000 pages of 100 items is a million
records), yet it ends a runaway walk the loop guard cannot see, such as a server that invents a
new next URL forever."""

Sender = Callable[[RequestBuilder], Response]
"""Sends one page's request: `RequestBuilder.send` in production, a fake in tests."""


class PageError(Exception):
    """Why a walk over pages stopped early (other than a failed request, which raises the
    `http.Error` itself)."""


class UnexpectedStatus(PageError):
    """A page came back with a status outside 2xx; `response` is kept for inspection."""

    def __init__(self, response: Response) -> None:
        """Builds the error from `response`; its message is the Rust SDK's wording."""
        super().__init__(f"unexpected status {response.status} from {response.url}")
        self.response = response


class LoopDetected(PageError):
    """The next URL or cursor (`next`) was already fetched: following it would loop."""

    def __init__(self, next: str) -> None:
        """Builds the error from `next`; its message is the Rust SDK's wording."""
        super().__init__(f"pagination loop: `{next}` was already fetched")
        self.next = next


class TooManyPages(PageError):
    """The listing has more pages than the limit (`max_pages`) allows."""

    def __init__(self, max_pages: int) -> None:
        """Builds the error from `max_pages`; its message is the Rust SDK's wording."""
        super().__init__(f"more than {max_pages} pages: stopped (raise the page limit if that is expected)")
        self.max_pages = max_pages


class _Walk:
    """The bookkeeping both paginators share: sending, counting and the loop guard."""

    def __init__(self, send: Optional[Sender], max_pages: int) -> None:
        """A walk sending with `send` (the host when None), stopping after `max_pages` pages."""
        self.send: Sender = send or RequestBuilder.send
        self.seen: Set[str] = set()
        self.pages = 0
        self.max_pages = max_pages
        # An error found while reading the last good page, raised after it.
        self.pending: Optional[PageError] = None

    def take_pending(self) -> None:
        if self.pending is not None:
            error, self.pending = self.pending, None
            raise error

    def fetch(self, request: RequestBuilder) -> Response:
        if self.pages >= self.max_pages:
            raise TooManyPages(self.max_pages)
        response = self.send(request)
        if not response.is_success:
            raise UnexpectedStatus(response)
        self.pages += 1
        return response

    def first_visit(self, key: str) -> bool:
        """Records `key` as fetched; False (and a pending loop error) when it already was."""
        if key in self.seen:
            self.pending = LoopDetected(key)
            return False
        self.seen.add(key)
        return True


class _Pages:
    """What the Link and cursor walks share: the page count, the iterator protocol and the step
    that fetches the pending request; each says how to find the next one (`_follow`)."""

    _walk: _Walk
    _next: Optional[RequestBuilder]

    @property
    def pages(self) -> int:
        """How many pages were fetched successfully so far."""
        return self._walk.pages

    @property
    def max_pages(self) -> int:
        """The most pages to fetch before stopping with `TooManyPages`."""
        return self._walk.max_pages

    def __iter__(self):
        """The walk itself: an iterator."""
        return self

    def __next__(self) -> Response:
        """The next page; raises its error, or `StopIteration` after the last page."""
        self._walk.take_pending()
        request, self._next = self._next, None
        if request is None:
            raise StopIteration
        response = self._walk.fetch(request)
        self._next = self._follow(request, response)
        return response

    def _follow(self, request: RequestBuilder, response: Response) -> Optional[RequestBuilder]:
        raise NotImplementedError


class LinkPages(_Pages):
    """Pages of a listing paginated with `Link: <...>; rel="next"` headers.

    Each next request is the first one with its URL replaced by the next link, used as given:
    the headers, secrets and options carry over, but query pairs added with
    `RequestBuilder.query` do not (the next link already holds them).
    """

    def __init__(self, first: RequestBuilder, *, max_pages: int = DEFAULT_MAX_PAGES,
                 send: Optional[Sender] = None) -> None:
        """Starts a walk at `first`, fetching at most `max_pages` pages before raising
        `TooManyPages`; `send` replaces the host for tests."""
        self._walk = _Walk(send, max_pages)
        self._next: Optional[RequestBuilder] = first
        try:
            self._walk.seen.add(normalize_url(first.url()))
        except http.Error:
            pass  # sending it will fail with the same error

    def _follow(self, request: RequestBuilder, response: Response) -> Optional[RequestBuilder]:
        next_url = response.next_link()
        if next_url is not None and self._walk.first_visit(normalize_url(next_url)):
            return request.with_url(next_url)
        return None

    def __repr__(self) -> str:
        return f"<LinkPages next={self._next!r} pages={self.pages} max_pages={self.max_pages}>"


class CursorPages(_Pages):
    """Pages of a listing paginated with a cursor read from each page.

    `cursor_of(page)` reads the next cursor from a page (None, or an empty string as Slack sends
    on the last page, ends the walk); `apply(first, cursor)` turns the *first* request and a cursor
    into the next request, so parameters it adds never pile up::

        first = http.get("https://slack.com/api/conversations.list").query("limit", 200)
        pages = CursorPages(
            first,
            lambda page: page.json().get("response_metadata", {}).get("next_cursor"),
            lambda first, cursor: first.query("cursor", cursor),
        )
        for page in pages:
            channels = page.json()["channels"]
    """

    def __init__(self, first: RequestBuilder, cursor_of: Callable[[Response], Optional[str]],
                 apply: Callable[[RequestBuilder, str], RequestBuilder], *,
                 max_pages: int = DEFAULT_MAX_PAGES, send: Optional[Sender] = None) -> None:
        """Starts a walk at `first`, fetching at most `max_pages` pages before raising
        `TooManyPages`; `send` replaces the host for tests."""
        self._first = first
        self._next: Optional[RequestBuilder] = first
        self._cursor_of = cursor_of
        self._apply = apply
        self._walk = _Walk(send, max_pages)

    def _follow(self, request: RequestBuilder, response: Response) -> Optional[RequestBuilder]:
        cursor = self._cursor_of(response)
        if cursor is not None and cursor != "" and self._walk.first_visit(str(cursor)):
            return self._apply(self._first, str(cursor))
        return None

    def __repr__(self) -> str:
        return f"<CursorPages first={self._first!r} pages={self.pages} max_pages={self.max_pages}>"


class NumberedPages:
    """Pages of a listing addressed by page number, when the last page is known (from a first
    page's `Link: rel="last"`, or a total the API reports): fetched `width` at a time through a
    streaming `http.Batch`, so several pages are in flight at once, and yielded in page order as
    `(page, result)`, `result` being the `Response` or the `http.Error` instance (not raised)::

        pages = NumberedPages(range(2, 11), lambda n: http.get(url).query("page", n), width=4)
        for page, response in pages:  # page 2, 3, ... in order, four requests in flight at a time
            ...
    """

    def __init__(self, pages: range, request_for: Callable[[int], RequestBuilder], *,
                 width: int = 8) -> None:
        """Pages `pages` (a `range`, e.g. `range(2, last + 1)`), each request made by
        `request_for(page)`; `width` (1 to 256) requested together. The host keeps at most the
        manifest's `max_concurrency` of them in flight."""
        self._pages = iter(pages)
        self._width = min(max(int(width), 1), 256)
        self._request_for = request_for
        self._ready: Deque[Tuple[int, http.Result]] = deque()

    def __iter__(self) -> "NumberedPages":
        """The pages themselves: an iterator."""
        return self

    def __next__(self) -> Tuple[int, http.Result]:
        """The next page in order, as `(page, result)`."""
        if not self._ready:
            numbers: List[int] = []
            for number in self._pages:
                numbers.append(number)
                if len(numbers) == self._width:
                    break
            if not numbers:
                raise StopIteration
            # Responses come back as they complete; pages go out in order.
            window: List[Any] = [None] * len(numbers)
            with http.Batch(self._request_for(number) for number in numbers) as batch:
                for index, result in batch:
                    window[index] = result
            self._ready.extend((n, r) for n, r in zip(numbers, window) if r is not None)
            if not self._ready:
                raise StopIteration
        return self._ready.popleft()


# --- Link headers -----------------------------------------------------------------------------

_WHITESPACE = re.compile("[\t\n\x0c\r ]+")


def next_link(header_values: List[str], base: str) -> Optional[str]:
    """The target of the first link with relation type `next` in `Link` header values, resolved
    against `base` (the URL of the request that got them).

    Follows RFC 8288: several header lines are one value joined with `", "`; a link-value is
    `<URI-Reference>` followed by `;`-separated parameters whose values may be tokens or quoted
    strings (which may hold `;` and `,`); `rel` holds space-separated relation types compared
    case-insensitively; a link-value's first `rel` wins. Malformed link-values are skipped.
    Returns None when no link is `next` or its target does not resolve to an absolute URL.

    >>> next_link(['<https://api.github.com/user/repos?page=3>; rel="next", <https://api.github.com/user/repos?page=50>; rel="last"'], "https://api.github.com/user/repos?page=2")
    'https://api.github.com/user/repos?page=3'
    >>> next_link(["</items?page=2>; rel=next"], "https://api.example.com/items")
    'https://api.example.com/items?page=2'
    """
    header = ", ".join(header_values)
    target = None
    for link_target, rel in _link_values(header):
        if rel is not None and any(t.lower() == "next" for t in _WHITESPACE.split(rel) if t.isascii()):
            target = link_target
            break
    if target is None:
        return None
    if http._split_absolute(base) is not None:
        try:
            joined = urljoin(base, target)
        except ValueError:
            return None
    else:
        joined = target
    if http._split_absolute(joined) is None:
        return None
    return normalize_url(joined)


def _link_values(header: str) -> Iterator[Tuple[str, Optional[str]]]:
    """The link-values of a `Link` field value, in order, as (target, first `rel` or None)."""
    at, end = 0, len(header)
    while True:
        while at < end and header[at] in ", \t":
            at += 1
        if at >= end:
            return
        if header[at] != "<":
            # Not a link-value: skip it whole.
            at = _skip_until(header, at, ",")
            continue
        close = header.find(">", at + 1)
        if close < 0:
            return
        target = header[at + 1 : close].strip()
        rel, at = _params(header, close + 1)
        yield target, rel


def _skip_until(header: str, at: int, stops: str) -> int:
    """The position of the next character in `stops` outside a quoted string, or the end."""
    quoted = False
    while at < len(header):
        char = header[at]
        if char == "\\" and quoted:
            at += 1
        elif char == '"':
            quoted = not quoted
        elif not quoted and char in stops:
            return at
        at += 1
    return len(header)


def _skip_whitespace(header: str, at: int) -> int:
    while at < len(header) and header[at] in " \t":
        at += 1
    return at


def _name(header: str, at: int) -> Tuple[str, int]:
    """A parameter name: a token, up to `=`, `;`, `,` or whitespace."""
    start = at
    while at < len(header) and header[at] not in "=;, \t":
        at += 1
    return header[start:at], at


def _value(header: str, at: int) -> Tuple[str, int]:
    """A parameter value after `=`: a quoted string (unescaped) or a token."""
    if at >= len(header) or header[at] != '"':
        return _name(header, at)
    at += 1
    value = []
    while at < len(header):
        char = header[at]
        at += 1
        if char == '"':
            break
        if char == "\\":
            if at < len(header):
                value.append(header[at])
                at += 1
        else:
            value.append(char)
    return "".join(value), at


def _params(header: str, at: int) -> Tuple[Optional[str], int]:
    """The parameters after a target, up to the `,` ending the link-value; the first `rel`."""
    rel = None
    while True:
        at = _skip_whitespace(header, at)
        if at >= len(header) or header[at] == ",":
            return rel, at
        if header[at] == ";":
            at = _skip_whitespace(header, at + 1)
            name, at = _name(header, at)
            at = _skip_whitespace(header, at)
            value = ""
            if at < len(header) and header[at] == "=":
                at = _skip_whitespace(header, at + 1)
                value, at = _value(header, at)
            if rel is None and name.isascii() and name.lower() == "rel":
                rel = value
        else:
            # Junk between parameters: skip to the next one.
            at = _skip_until(header, at, ";,")
