"""Outbound HTTP through the host's egress pipeline: a request builder, its response and errors.

The host enforces the allowlist, attaches secrets, retries, rate-limits and times out; a builder
only describes the request and the narrowing of those policies it wants::

    from apiary_sdk import http

    response = (
        http.get("https://api.github.com/repos/octocat/hello-world/issues")
        .query("per_page", 100)
        .header("accept", "application/vnd.github+json")
        .bearer("github_token")  # a secret's name: the host attaches the value
        .timeout(10)
        .send()
    )
    assert response.is_success

The same request in one call, requests-style::

    response = http.get(url, params={"per_page": 100}, headers={"accept": "..."},
                        bearer="github_token", timeout=10).send()

Builders are immutable: every method returns a new builder, so one can serve as a template.
A failed request raises a subclass of `Error`, one per case of the WIT `http.error`; 4xx and 5xx
responses are responses, not errors.
"""

from __future__ import annotations

import json as _json
from collections import deque
from typing import Any, Iterable, Iterator, List, Mapping, Optional, Sequence, Tuple, Union
from urllib.parse import urlsplit

from . import _bindings
from . import secrets as _secrets

__all__ = [
    "get",
    "post",
    "put",
    "patch",
    "delete",
    "request",
    "RequestBuilder",
    "Response",
    "send_all",
    "Batch",
    "Error",
    "Denied",
    "InvalidRequest",
    "Timeout",
    "RateLimited",
    "RetriesExhausted",
    "BodyTooLarge",
    "Connection",
    "Secret",
]

Headers = List[Tuple[str, str]]
"""Header fields as (name, value) pairs, in order; a name may repeat."""


# --- errors -----------------------------------------------------------------------------------


class Error(Exception):
    """Why a request failed (the WIT `http.error`); each subclass is one case a plugin can handle.

    Raised out of `run`, it ends the run with the WIT `run-error.http` case.
    """

    def to_wire(self):
        """The error as the generated bindings spell it."""
        raise NotImplementedError

    @staticmethod
    def from_wire(wire) -> "Error":
        """The exception for a generated `http.Error_*` value."""
        case = type(wire).__name__
        value = getattr(wire, "value", None)
        if case == "Error_Denied":
            return Denied(value)
        if case == "Error_InvalidRequest":
            return InvalidRequest(value)
        if case == "Error_Timeout":
            return Timeout(value)
        if case == "Error_RateLimited":
            return RateLimited(value)
        if case == "Error_RetriesExhausted":
            return RetriesExhausted(value.attempts, value.last_status, value.message)
        if case == "Error_BodyTooLarge":
            return BodyTooLarge(value)
        if case == "Error_Connection":
            return Connection(value)
        if case == "Error_Secret":
            return Secret(_secrets.Error.from_wire(value))
        return Connection(f"unrecognized error from the host: {wire!r}")


class Denied(Error):
    """The destination is not in the manifest's allowlist; `destination` names it."""

    def __init__(self, destination: str) -> None:
        """Builds the error from `destination`; its message is the Rust SDK's wording."""
        super().__init__(f"request denied: {destination}")
        self.destination = destination

    def to_wire(self):
        """The error as the generated bindings spell it."""
        return _bindings.http.Error_Denied(self.destination)


class InvalidRequest(Error):
    """The request is malformed (bad URL, method or header); `reason` says what."""

    def __init__(self, reason: str) -> None:
        """Builds the error from `reason`; its message is the Rust SDK's wording."""
        super().__init__(f"invalid request: {reason}")
        self.reason = reason

    def to_wire(self):
        """The error as the generated bindings spell it."""
        return _bindings.http.Error_InvalidRequest(self.reason)


class Timeout(Error):
    """An attempt took longer than its timeout (`ms`), and retries were exhausted or not allowed."""

    def __init__(self, ms: int) -> None:
        """Builds the error from `ms`; its message is the Rust SDK's wording."""
        super().__init__(f"request timed out after {ms} ms")
        self.ms = ms

    def to_wire(self):
        """The error as the generated bindings spell it."""
        return _bindings.http.Error_Timeout(self.ms)


class RateLimited(Error):
    """The rate limit would delay the request longer than allowed; the wait is `ms`."""

    def __init__(self, ms: int) -> None:
        """Builds the error from `ms`; its message is the Rust SDK's wording."""
        super().__init__(f"rate limited: the next slot is {ms} ms away")
        self.ms = ms

    def to_wire(self):
        """The error as the generated bindings spell it."""
        return _bindings.http.Error_RateLimited(self.ms)


class RetriesExhausted(Error):
    """Every allowed attempt failed: `attempts` made, the `last_status` if any, the last `message`."""

    def __init__(self, attempts: int, last_status: Optional[int], message: str) -> None:
        """Builds the error from `attempts`, `last_status`, `message`; its message is the Rust SDK's wording."""
        text = f"gave up after {attempts} attempts"
        if last_status is not None:
            text += f" (last status {last_status})"
        super().__init__(f"{text}: {message}")
        self.attempts = attempts
        self.last_status = last_status
        self.message = message

    def to_wire(self):
        """The error as the generated bindings spell it."""
        wire = _bindings.http
        return wire.Error_RetriesExhausted(wire.RetriesExhausted(self.attempts, self.last_status, self.message))


class BodyTooLarge(Error):
    """The response body exceeded the host's limit, `limit` bytes."""

    def __init__(self, limit: int) -> None:
        """Builds the error from `limit`; its message is the Rust SDK's wording."""
        super().__init__(f"response body exceeds the host's limit of {limit} bytes")
        self.limit = limit

    def to_wire(self):
        """The error as the generated bindings spell it."""
        return _bindings.http.Error_BodyTooLarge(self.limit)


class Connection(Error):
    """The connection failed (DNS, refused, TLS, reset) and was not retried; `reason` says how."""

    def __init__(self, reason: str) -> None:
        """Builds the error from `reason`; its message is the Rust SDK's wording."""
        super().__init__(f"connection failed: {reason}")
        self.reason = reason

    def to_wire(self):
        """The error as the generated bindings spell it."""
        return _bindings.http.Error_Connection(self.reason)


class Secret(Error):
    """A secret could not be attached; `error` is the `secrets.Error` saying why."""

    def __init__(self, error: _secrets.Error) -> None:
        """Builds the error from `error`; its message is the Rust SDK's wording."""
        super().__init__(f"secret not attached: {error}")
        self.error = error

    def to_wire(self):
        """The error as the generated bindings spell it."""
        return _bindings.http.Error_Secret(self.error.to_wire())


# --- URLs -------------------------------------------------------------------------------------

_DEFAULT_PORTS = {"http": "80", "https": "443"}
_FORM_SAFE = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789*-._")


def _form_encode(text: str) -> str:
    """`text` percent-encoded as `application/x-www-form-urlencoded` (space as `+`), as the
    Rust SDK's `url` crate does: only ASCII alphanumerics and `*-._` are kept."""
    out = []
    for byte in text.encode("utf-8"):
        if byte in _FORM_SAFE:
            out.append(chr(byte))
        elif byte == 0x20:
            out.append("+")
        else:
            out.append("%%%02X" % byte)
    return "".join(out)


def _split_absolute(url: str):
    """`urlsplit(url)` when `url` is absolute (has a scheme and, for http(s), a host), else None."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if not parts.scheme or (parts.scheme.lower() in _DEFAULT_PORTS and not parts.netloc):
        return None
    return parts


def normalize_url(url: str) -> str:
    """`url` in the form the loop guards compare: scheme and host lowercased, a default port
    dropped, an empty path as `/`; `url` itself when it is not absolute.

    So `HTTPS://Host:443/a` and `https://host/a` count as one, as with the Rust SDK's `url` crate.
    """
    parts = _split_absolute(url)
    if parts is None:
        return url
    scheme = parts.scheme.lower()
    netloc = parts.netloc
    userinfo, at, hostport = netloc.rpartition("@")
    host, port = hostport, ""
    if hostport.startswith("["):
        end = hostport.find("]")
        if end >= 0:
            host, port = hostport[: end + 1], hostport[end + 1 :].lstrip(":")
    elif ":" in hostport:
        host, port = hostport.rsplit(":", 1)
    if port == _DEFAULT_PORTS.get(scheme):
        port = ""
    netloc = userinfo + at + host.lower() + (":" + port if port else "")
    path = parts.path
    if not path and scheme in _DEFAULT_PORTS:
        path = "/"
    result = f"{scheme}://{netloc}{path}"
    if "?" in url.split("#", 1)[0]:
        result += "?" + parts.query
    if "#" in url:
        result += "#" + parts.fragment
    return result


# --- requests ---------------------------------------------------------------------------------

_UNSET: Any = object()

_METHOD_CASES = {
    "GET": "Method_Get",
    "HEAD": "Method_Head",
    "POST": "Method_Post",
    "PUT": "Method_Put",
    "PATCH": "Method_Patch",
    "DELETE": "Method_Delete",
    "OPTIONS": "Method_Options",
}


def _text(value: Any) -> str:
    """A query or header value as text: bools as `true`/`false`, the rest with `str`."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


class RequestBuilder:
    """A request being described; `send` hands it to the host.

    Every method returns a new builder and leaves this one unchanged, so a builder can be sent
    again or used as a template (the paginators do both).
    """

    __slots__ = ("_method", "_url", "_query", "_headers", "_body", "_secrets", "_timeout_ms",
                 "_idempotent", "_max_retries", "_bucket")

    def __init__(self, method: str, url: str) -> None:
        """Starts a request with `method` (a case-sensitive token, e.g. `GET`) to `url`, an
        absolute `http` or `https` URL. Prefer `get`, `post`, ... or `request`."""
        self._method = method
        self._url = url
        self._query: Tuple[Tuple[str, str], ...] = ()
        self._headers: Tuple[Tuple[str, str], ...] = ()
        self._body: Optional[bytes] = None
        self._secrets: Tuple[_secrets.SecretAttachment, ...] = ()
        self._timeout_ms: Optional[int] = None
        self._idempotent: Optional[bool] = None
        self._max_retries: Optional[int] = None
        self._bucket: Optional[str] = None

    def _with(self, **changes: Any) -> "RequestBuilder":
        copy = RequestBuilder.__new__(RequestBuilder)
        for slot in RequestBuilder.__slots__:
            setattr(copy, slot, changes.get(slot, getattr(self, slot)))
        return copy

    def __repr__(self) -> str:
        return f"<RequestBuilder {self._method} {self._url} query={list(self._query)}>"

    def query(self, name: str, value: Any) -> "RequestBuilder":
        """Appends the query parameter `name=value`, percent-encoded as a form
        (`application/x-www-form-urlencoded`) after any query the URL has. `value` is converted
        with `str` (bools as `true`/`false`).

        >>> get("https://api.example.com/search?x=1").query("q", "a&b c").url()
        'https://api.example.com/search?x=1&q=a%26b+c'
        """
        return self._with(_query=self._query + ((str(name), _text(value)),))

    def header(self, name: str, value: Any) -> "RequestBuilder":
        """Appends a header; a name may repeat, as in HTTP."""
        return self._with(_headers=self._headers + ((str(name), _text(value)),))

    def bearer(self, secret_name: str) -> "RequestBuilder":
        """Asks the host to attach the secret `secret_name` as `Authorization: Bearer <value>`.

        The argument is the secret's *name* from the manifest; its value never enters the plugin.
        """
        return self.secret(_secrets.bearer(secret_name))

    def secret(self, attachment: _secrets.SecretAttachment) -> "RequestBuilder":
        """Asks the host to attach a secret as `attachment` says (see `apiary_sdk.secrets`)."""
        return self._with(_secrets=self._secrets + (attachment,))

    def timeout(self, seconds: float) -> "RequestBuilder":
        """Sets the timeout of each attempt, in seconds (sent as whole milliseconds)."""
        return self._with(_timeout_ms=max(0, int(seconds * 1000)))

    def idempotent(self, idempotent: bool) -> "RequestBuilder":
        """Declares whether repeating this request is safe, overriding the method's default."""
        return self._with(_idempotent=bool(idempotent))

    def max_retries(self, max_retries: int) -> "RequestBuilder":
        """Allows at most `max_retries` retries after the first attempt (0 disables retries).

        The host caps this at the manifest's `retry.max_retries`.
        """
        return self._with(_max_retries=int(max_retries))

    def bucket(self, bucket: str) -> "RequestBuilder":
        """Draws from the rate-limit bucket `bucket` instead of the destination host's."""
        return self._with(_bucket=str(bucket))

    def body(self, body: Union[bytes, str]) -> "RequestBuilder":
        """Sets the request body (text is sent as UTF-8)."""
        return self._with(_body=body.encode("utf-8") if isinstance(body, str) else bytes(body))

    def json(self, value: Any) -> "RequestBuilder":
        """Sets the body to `value` as compact JSON, and `content-type: application/json` unless set.

        Raises `TypeError` or `ValueError` when `value` cannot be serialized.
        """
        body = _json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
        headers = self._headers
        if not any(name.lower() == "content-type" for name, _ in headers):
            headers = headers + (("content-type", "application/json"),)
        return self._with(_body=body.encode("utf-8"), _headers=headers)

    def with_url(self, url: str) -> "RequestBuilder":
        """Replaces the URL with `url`, used as given: query pairs added so far are dropped.

        Everything else (method, headers, body, secrets, options) is kept, which is what following
        a pagination link needs.
        """
        return self._with(_url=url, _query=())

    @property
    def method(self) -> str:
        """The method token, e.g. `GET`."""
        return self._method

    @property
    def headers(self) -> Headers:
        """The headers as (name, value) pairs, in order."""
        return list(self._headers)

    def url(self) -> str:
        """The URL with the query pairs encoded into it.

        Raises `InvalidRequest` when query pairs were added to a URL that does not parse; a URL
        without added pairs is passed through unchanged for the host to judge.
        """
        if not self._query:
            return self._url
        if _split_absolute(self._url) is None:
            raise InvalidRequest(f"invalid URL `{self._url}`: relative URL without a base")
        base, hash_, fragment = normalize_url(self._url).partition("#")
        if "?" in base:
            existing = base.split("?", 1)[1]
            separator = "&" if existing else ""
        else:
            separator = "?"
        encoded = "&".join(f"{_form_encode(n)}={_form_encode(v)}" for n, v in self._query)
        return base + separator + encoded + hash_ + fragment

    def to_wire(self):
        """The request as the host receives it (a generated `http.Request`).

        Raises `InvalidRequest` as `url` does.
        """
        wire = _bindings.http
        case = _METHOD_CASES.get(self._method)
        method = getattr(wire, case)() if case else wire.Method_Other(self._method)
        retry = None if self._max_retries is None else wire.RetryOverride(max_retries=self._max_retries)
        return wire.Request(
            method=method,
            url=self.url(),
            headers=list(self._headers),
            body=self._body,
            secrets=[attachment.to_wire() for attachment in self._secrets],
            options=wire.RequestOptions(
                timeout_ms=self._timeout_ms,
                idempotent=self._idempotent,
                retry=retry,
                bucket=self._bucket,
            ),
        )

    def send(self) -> "Response":
        """Sends the request and waits for its response (4xx and 5xx included).

        Raises the `Error` subclass saying why no response came back.
        """
        request = self.to_wire()
        try:
            response = _bindings.http.send(request)
        except _bindings.Err as err:
            raise Error.from_wire(err.value) from None
        return Response._from_wire(request.url, response)


def request(
    method: str,
    url: str,
    *,
    params: Union[Mapping[str, Any], Iterable[Tuple[str, Any]], None] = None,
    headers: Union[Mapping[str, Any], Iterable[Tuple[str, Any]], None] = None,
    json: Any = _UNSET,
    data: Union[bytes, str, None] = None,
    bearer: Optional[str] = None,
    timeout: Optional[float] = None,
) -> RequestBuilder:
    """Starts a request with any `method` token (case-sensitive) to `url`, an absolute URL.

    The keywords are shortcuts for the builder methods: `params` (`query`, in order), `headers`
    (`header`), `json` (`json`), `data` (`body`), `bearer` (a secret's name, `bearer`) and
    `timeout` (seconds, `timeout`).
    """
    builder = RequestBuilder(method, url)
    for name, value in _pairs(params):
        builder = builder.query(name, value)
    for name, value in _pairs(headers):
        builder = builder.header(name, value)
    if data is not None:
        builder = builder.body(data)
    if json is not _UNSET:
        builder = builder.json(json)
    if bearer is not None:
        builder = builder.bearer(bearer)
    if timeout is not None:
        builder = builder.timeout(timeout)
    return builder


def _pairs(pairs) -> Iterable[Tuple[str, Any]]:
    if pairs is None:
        return ()
    if isinstance(pairs, Mapping):
        return pairs.items()
    return pairs


def get(url: str, **options: Any) -> RequestBuilder:
    """Starts a GET request to `url`; `options` as for `request`."""
    return request("GET", url, **options)


def post(url: str, **options: Any) -> RequestBuilder:
    """Starts a POST request to `url`; `options` as for `request`."""
    return request("POST", url, **options)


def put(url: str, **options: Any) -> RequestBuilder:
    """Starts a PUT request to `url`; `options` as for `request`."""
    return request("PUT", url, **options)


def patch(url: str, **options: Any) -> RequestBuilder:
    """Starts a PATCH request to `url`; `options` as for `request`."""
    return request("PATCH", url, **options)


def delete(url: str, **options: Any) -> RequestBuilder:
    """Starts a DELETE request to `url`; `options` as for `request`."""
    return request("DELETE", url, **options)


Result = Union["Response", Error]
"""A request's outcome in `send_all` and `Batch`: its `Response`, or the `Error` (not raised)."""


def send_all(requests: Iterable[RequestBuilder]) -> List[Result]:
    """Sends several requests concurrently; results are in the order of `requests`, each a
    `Response` or the `Error` instance (returned, not raised) of that request alone.

    A builder whose URL cannot be built fails alone, with `InvalidRequest`.
    """
    built: List[Any] = []
    for builder in requests:
        try:
            built.append(builder.to_wire())
        except Error as error:
            built.append(error)
    sendable = [wire for wire in built if not isinstance(wire, Error)]
    results = iter(_bindings.http.send_batch(sendable) if sendable else [])
    out: List[Result] = []
    for wire in built:
        if isinstance(wire, Error):
            out.append(wire)
            continue
        result = next(results)
        if isinstance(result, _bindings.Err):
            out.append(Error.from_wire(result.value))
        else:
            out.append(Response._from_wire(wire.url, result.value))
    return out


class Batch:
    """Requests started together whose results are taken as each completes, so a plugin works on
    the first response while the others are still in flight.

    Iterating yields `(index, result)` pairs, `index` being the request's position in the order
    given and `result` its `Response` or `Error` instance (not raised); every request yields once.
    The host keeps at most the manifest's `max_concurrency` requests in flight::

        pages = [http.get(url).query("page", n) for n in range(1, 6)]
        for index, result in http.Batch(pages):
            if isinstance(result, http.Error):
                ...  # the error of that page alone
            else:
                ...  # map page index + 1 as soon as it arrives
    """

    def __init__(self, requests: Iterable[RequestBuilder]) -> None:
        """Starts `requests` (at most 256)."""
        wires, self._indices, self._urls = [], [], []
        self._failed: deque = deque()
        for index, builder in enumerate(requests):
            try:
                wire = builder.to_wire()
            except Error as error:
                self._failed.append((index, error))
                continue
            self._indices.append(index)
            self._urls.append(wire.url)
            wires.append(wire)
        self._started = _bindings.http.Batch(wires) if wires else None

    def __iter__(self) -> Iterator[Tuple[int, Result]]:
        """The batch itself: an iterator."""
        return self

    def __next__(self) -> Tuple[int, Result]:
        """The next completed request as `(index, result)`."""
        if self._failed:
            return self._failed.popleft()
        if self._started is None:
            raise StopIteration
        taken = self._started.next()
        if taken is None:
            self.close()
            raise StopIteration
        position, result = taken
        index = self._indices[position] if position < len(self._indices) else position
        if isinstance(result, _bindings.Err):
            return index, Error.from_wire(result.value)
        url = self._urls[position] if position < len(self._urls) else ""
        return index, Response._from_wire(url, result.value)

    def close(self) -> None:
        """Releases the host's batch; results not yet taken are dropped."""
        if self._started is not None:
            started, self._started = self._started, None
            started.__exit__(None, None, None)

    def __enter__(self) -> "Batch":
        """Returns the batch; leaving the block closes it."""
        return self

    def __exit__(self, *exc_info: Any) -> None:
        """Closes the batch."""
        self.close()


# --- responses --------------------------------------------------------------------------------


class Response:
    """A response, with the URL of the request that got it (for resolving relative links)."""

    __slots__ = ("url", "status", "headers", "body", "attempts")

    def __init__(self, url: str, status: int, headers: Sequence[Tuple[str, str]] = (),
                 body: bytes = b"", attempts: int = 1) -> None:
        """A response to a request for `url`; build one directly to test mapping code natively.

        >>> r = Response("https://api.example.com/items", 200, [("Content-Type", "application/json")], b"[1, 2]")
        >>> r.header("content-type"), r.json()
        ('application/json', [1, 2])
        """
        self.url: str = url
        """The URL of the request that got this response."""
        self.status: int = status
        """The status code."""
        self.headers: Headers = list(headers)
        """All headers as (name, value) pairs, in order."""
        self.body: bytes = bytes(body)
        """The body."""
        self.attempts: int = attempts
        """How many attempts the host made (1 when the first one succeeded)."""

    @classmethod
    def _from_wire(cls, url: str, wire) -> "Response":
        return cls(url, wire.status, wire.headers, wire.body, wire.attempts)

    def __repr__(self) -> str:
        return f"<Response {self.status} {self.url}>"

    @property
    def is_success(self) -> bool:
        """True for a 2xx status."""
        return 200 <= self.status < 300

    def header(self, name: str) -> Optional[str]:
        """The first value of the header `name` (compared case-insensitively), or None."""
        values = self.header_values(name)
        return values[0] if values else None

    def header_values(self, name: str) -> List[str]:
        """Every value of the header `name` in order (compared case-insensitively); join them
        with `", "` to get the combined field value."""
        wanted = name.lower()
        return [value for n, value in self.headers if n.lower() == wanted]

    @property
    def text(self) -> str:
        """The body as text, with invalid UTF-8 replaced by U+FFFD."""
        return self.body.decode("utf-8", errors="replace")

    def json(self) -> Any:
        """The body parsed as JSON; raises `ValueError` when it is not JSON."""
        return _json.loads(self.body)

    def next_link(self) -> Optional[str]:
        """The `rel="next"` target of the `Link` headers, resolved against `url`.

        See `apiary_sdk.paginate.next_link` for the parsing rules.
        """
        from .paginate import next_link

        return next_link(self.header_values("link"), self.url)
