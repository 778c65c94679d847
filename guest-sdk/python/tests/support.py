"""What the tests share: the SDK imported over the stub bindings, and a fake host behind them.

`FakeHost(test)` replaces the generated host functions (`wit_world.imports.http.send`, ...)
for one test and restores them at its cleanup. It serves canned pages by URL, records every
request as the host would receive it (a generated `http.Request`, checked for the shapes the
generated code declares), and keeps emitted records, log lines, config, secrets, state and
rate-limit buckets.
"""

from __future__ import annotations

import os
import typing
import unittest
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple
from unittest import mock

from . import REPO, STUBS

import componentize_py_types  # noqa: E402 - after the package put the stubs on sys.path
import wit_world  # noqa: E402
from wit_world.imports import config as wit_config  # noqa: E402
from wit_world.imports import http as wit_http  # noqa: E402
from wit_world.imports import log as wit_log  # noqa: E402
from wit_world.imports import output as wit_output  # noqa: E402
from wit_world.imports import ratelimit as wit_ratelimit  # noqa: E402
from wit_world.imports import secrets as wit_secrets  # noqa: E402
from wit_world.imports import state as wit_state  # noqa: E402
from wit_world.imports import types as wit_types  # noqa: E402

import apiary_sdk  # noqa: E402
from apiary_sdk import _bindings  # noqa: E402

Ok = componentize_py_types.Ok
Err = componentize_py_types.Err

LINK_HEADER_VECTORS = os.path.join(REPO, "tests", "vectors", "link_header.toml")
"""The shared RFC 8288 vectors the Rust SDK's tests read too."""
WIT = os.path.join(REPO, "wit")
"""The WIT contract the stubs were generated from."""


def _check_imported_stubs() -> None:
    """Fails loudly when the SDK did not pick up the stubs (imported earlier without them)."""
    stub = os.path.join(STUBS, "wit_world")
    if not os.path.abspath(wit_world.__file__).startswith(stub + os.sep):
        raise ImportError(f"`wit_world` came from {wit_world.__file__}, not the stubs in {stub}")
    if not _bindings.IN_COMPONENT or _bindings.Err is not Err or _bindings.http is not wit_http:
        raise ImportError("apiary_sdk was imported before the stubs were on sys.path")


_check_imported_stubs()


def _let_unittest_report_errors_chained_from_err() -> None:
    """The generated `Err` is a frozen dataclass, so assigning its `__traceback__` raises
    `FrozenInstanceError`; unittest does that to every exception in the chain of an error it
    reports (`TestResult._clean_tracebacks`), and an SDK exception raised while handling an
    `Err` (`raise ... from None` keeps it as `__context__`) would crash the whole run instead of
    failing one test. Only `__traceback__` is let through: the fields stay frozen."""
    frozen_setattr = Err.__setattr__

    def __setattr__(self, name, value):
        if name == "__traceback__":
            object.__setattr__(self, name, value)
        else:
            frozen_setattr(self, name, value)

    Err.__setattr__ = __setattr__


_let_unittest_report_errors_chained_from_err()


def check_wire_request(request: Any) -> None:
    """Asserts `request` has the shape of the generated `http.Request`, field by field, as the
    component's lowering of it into the host would need."""
    assert isinstance(request, wit_http.Request), request
    assert type(request.method) in typing.get_args(wit_http.Method), request.method
    if isinstance(request.method, wit_http.Method_Other):
        assert isinstance(request.method.value, str), request.method
    assert isinstance(request.url, str), request.url
    assert isinstance(request.headers, list), request.headers
    for pair in request.headers:
        assert isinstance(pair, tuple) and len(pair) == 2, pair
        assert all(isinstance(part, str) for part in pair), pair
    assert request.body is None or isinstance(request.body, bytes), request.body
    assert isinstance(request.secrets, list), request.secrets
    for attachment in request.secrets:
        assert isinstance(attachment, wit_secrets.SecretAttachment), attachment
        assert isinstance(attachment.name, str), attachment
        assert type(attachment.placement) in typing.get_args(wit_secrets.Placement), attachment
    options = request.options
    assert isinstance(options, wit_http.RequestOptions), options
    assert options.timeout_ms is None or (type(options.timeout_ms) is int and options.timeout_ms >= 0), options
    assert options.idempotent is None or type(options.idempotent) is bool, options
    assert options.bucket is None or isinstance(options.bucket, str), options
    if options.retry is not None:
        assert isinstance(options.retry, wit_http.RetryOverride), options
        retries = options.retry.max_retries
        assert retries is None or (type(retries) is int and retries >= 0), options


class FakeHost:
    """The host behind the stub bindings, for one test.

    Pages are served by exact URL: `page(url, status, body, link=..., headers=...)` answers with
    a generated `http.Response`, `fail(url, wire_error)` with the generated error raised as
    `Err`; any other URL fails with `Error_Connection("no fake page at URL")`, as the Rust SDK's
    fake does. `Batch` completes its requests in reverse order (`completion_order`), so tests
    see results arrive out of order.
    """

    def __init__(self, test: unittest.TestCase) -> None:
        """Installs the fake over the generated host functions until `test` ends."""
        self.answers: Dict[str, Any] = {}
        self.requests: List[Any] = []
        """Every `http.Request` the host received, in order (single, batched and streamed)."""
        self.send_batch_calls: List[List[Any]] = []
        self.batches: List["FakeHost.Batch"] = []
        self.records: List[str] = []
        """Every record text emitted, in order."""
        self.emit_calls: List[List[str]] = []
        """Each `emit` / `emit_many` call's records."""
        self.refuse: Optional[Tuple[int, Any]] = None
        """(index among all records, generated `output.Error`) for the host to refuse."""
        self.logs: List[Tuple[Any, str, List[Tuple[str, str]]]] = []
        self.log_fails = False
        self.config: Dict[str, str] = {}
        self.secrets: set = set()
        self.state: Dict[str, str] = {}
        self.state_error: Any = None
        self.buckets: Dict[Tuple[str, Optional[str]], Tuple[Optional[int], int]] = {}
        """(bucket, secret) -> (remaining, wait_ms); any other bucket has no limit and no wait."""
        self.ratelimit_calls: List[Tuple[Any, ...]] = []
        """Every `ratelimit` call as ("state", bucket, secret) or ("wait", bucket, secret, max_ms)."""
        self.completion_order = reversed
        host = self

        class Batch:
            """The generated `http.Batch` resource, served by the fake."""

            def __init__(self, requests: List[Any]) -> None:
                assert isinstance(requests, list) and 0 < len(requests) <= 256, requests
                self.requests = requests
                self.closed = False
                order = list(host.completion_order(range(len(requests))))
                self._pending = [(index, host._result(requests[index])) for index in order]
                host.batches.append(self)

            def next(self):
                assert not self.closed, "next() on a released batch"
                return self._pending.pop(0) if self._pending else None

            def __enter__(self):
                return self

            def __exit__(self, exc_type, exc_value, traceback):
                self.closed = True
                return None

        self.Batch = Batch
        for module, name, fake in (
            (wit_http, "send", self._send),
            (wit_http, "send_batch", self._send_batch),
            (wit_http, "Batch", Batch),
            (wit_output, "emit", self._emit),
            (wit_output, "emit_many", self._emit_many),
            (wit_log, "log", self._log),
            (wit_config, "get", self.config.get),
            (wit_config, "get_all", lambda: sorted(self.config.items())),
            (wit_secrets, "available", lambda name: name in self.secrets),
            (wit_state, "get", self._state_get),
            (wit_state, "put", self._state_put),
            (wit_ratelimit, "state", self._ratelimit_state),
            (wit_ratelimit, "wait", self._ratelimit_wait),
        ):
            patcher = mock.patch.object(module, name, fake)
            patcher.start()
            test.addCleanup(patcher.stop)

    # --- pages --------------------------------------------------------------------------------

    def page(self, url: str, status: int = 200, body: str = "", *, link: Optional[str] = None,
             headers: Sequence[Tuple[str, str]] = (), attempts: int = 1) -> "FakeHost":
        """Answers `url` with a response (a `link` header first when given)."""
        fields = ([("link", link)] if link is not None else []) + list(headers)
        self.answers[url] = wit_http.Response(status=status, headers=fields, body=body.encode("utf-8"),
                                              attempts=attempts)
        return self

    def fail(self, url: str, error: Any) -> "FakeHost":
        """Answers `url` with the generated `http.Error` value `error`."""
        self.answers[url] = error
        return self

    @property
    def urls(self) -> List[str]:
        """The URLs the host was asked for, in order."""
        return [request.url for request in self.requests]

    def _result(self, request: Any):
        check_wire_request(request)
        self.requests.append(request)
        answer = self.answers.get(request.url)
        if answer is None:
            return Err(wit_http.Error_Connection(f"no fake page at {request.url}"))
        if isinstance(answer, wit_http.Response):
            return Ok(answer)
        return Err(answer)

    def _send(self, request: Any):
        result = self._result(request)
        if isinstance(result, Err):
            raise result
        return result.value

    def _send_batch(self, requests: List[Any]):
        assert isinstance(requests, list) and requests, requests
        self.send_batch_calls.append(list(requests))
        return [self._result(request) for request in requests]

    # --- output, log, config, state -----------------------------------------------------------

    def _emit(self, record: str) -> None:
        assert isinstance(record, str), record
        self._emit_many([record], single=True)

    def _emit_many(self, records: List[str], single: bool = False) -> None:
        assert isinstance(records, list) and all(isinstance(r, str) for r in records), records
        self.emit_calls.append(list(records))
        for position, record in enumerate(records):
            if self.refuse is not None and self.refuse[0] == len(self.records):
                raise Err(self.refuse[1] if single else (position, self.refuse[1]))
            self.records.append(record)

    def _log(self, level: Any, message: str, fields: List[Tuple[str, str]]) -> None:
        assert isinstance(level, wit_log.Level), level
        assert isinstance(message, str), message
        assert all(isinstance(k, str) and isinstance(v, str) for k, v in fields), fields
        if self.log_fails:
            raise RuntimeError("the log is down")
        self.logs.append((level, message, list(fields)))

    def _state_get(self, key: str) -> Optional[str]:
        if self.state_error is not None:
            raise Err(self.state_error)
        return self.state.get(key)

    def _state_put(self, key: str, value: str) -> None:
        assert isinstance(key, str) and isinstance(value, str), (key, value)
        if self.state_error is not None:
            raise Err(self.state_error)
        self.state[key] = value


    # --- rate limits ---------------------------------------------------------------------------

    def bucket(self, bucket: str, secret: Optional[str] = None, *, remaining: Optional[int] = None,
               wait_ms: int = 0) -> "FakeHost":
        """Gives `bucket`, for requests carrying `secret`, this state."""
        self.buckets[(bucket, secret)] = (remaining, wait_ms)
        return self

    def _ratelimit_args(self, bucket: Any, secret: Any) -> Tuple[Optional[int], int]:
        assert isinstance(bucket, str), bucket
        assert secret is None or isinstance(secret, str), secret
        return self.buckets.get((bucket, secret), (None, 0))

    def _ratelimit_state(self, bucket: str, secret: Optional[str]):
        remaining, wait_ms = self._ratelimit_args(bucket, secret)
        self.ratelimit_calls.append(("state", bucket, secret))
        return wit_ratelimit.BucketState(remaining=remaining, wait_ms=wait_ms)

    def _ratelimit_wait(self, bucket: str, secret: Optional[str], max_ms: int) -> int:
        _, wait_ms = self._ratelimit_args(bucket, secret)
        assert type(max_ms) is int and 0 <= max_ms < 1 << 64, max_ms  # a u64
        self.ratelimit_calls.append(("wait", bucket, secret, max_ms))
        if wait_ms > max_ms:
            raise Err(wait_ms)
        return wait_ms


def outcomes(pages: Iterable[Any]) -> List[Tuple[str, str]]:
    """Walks `pages` to its end: ("ok", body text) per page, then ("err", message) for the error
    that stopped it, if any; like the Rust tests' `bodies`."""
    out: List[Tuple[str, str]] = []
    try:
        for page in pages:
            out.append(("ok", page.text))
    except Exception as error:  # noqa: BLE001 - the error is the outcome under test
        out.append(("err", str(error)))
    return out
