"""Rate-limit buckets as the host sees them: how many requests a bucket admits now, and waiting
for capacity before sending a batch instead of sending into a limit.

A bucket is a host such as `api.github.com`, or a bucket a request names
(`RequestBuilder.bucket`). Quotas are counted per credential, so name the secret the requests
will carry::

    from apiary_sdk import ratelimit

    bucket = ratelimit.state("api.github.com", "github_token")
    if bucket.remaining is not None and bucket.remaining < 10:
        ratelimit.wait("api.github.com", "github_token", max_ms=60_000)  # raises RateLimited

The host still applies every limit to each request; these calls only let a plugin plan. Raised
out of `run`, `RateLimited` ends the run with `run-error.http`, as the same error from a request.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from . import _bindings
from .http import RateLimited

__all__ = ["BucketState", "state", "wait", "RateLimited", "DEFAULT_MAX_MS"]

DEFAULT_MAX_MS = 60_000
"""How long `wait` waits at most when not told: one minute, in milliseconds."""

_U64_MAX = (1 << 64) - 1


@dataclass(frozen=True)
class BucketState:
    """What a bucket admits now (the WIT `ratelimit.bucket-state`)."""

    remaining: Optional[int]
    """Requests it admits at once now, by its tightest declared limit; None when the manifest
    and the operator declare no limit for it."""
    wait_ms: int
    """Milliseconds until it admits the next request: its declared limits and any pause the API
    announced (`Retry-After`, `RateLimit`, `X-RateLimit-*`); 0 when it admits one now."""


def state(bucket: str, secret: Optional[str] = None) -> BucketState:
    """The state of `bucket` (a host such as `api.github.com`, or a bucket a request names) for
    requests carrying the secret named `secret`, if any."""
    wire = _bindings.ratelimit.state(str(bucket), None if secret is None else str(secret))
    return BucketState(remaining=wire.remaining, wait_ms=wire.wait_ms)


def wait(bucket: str, secret: Optional[str] = None, max_ms: int = DEFAULT_MAX_MS) -> int:
    """Waits until `bucket` admits a request for the secret named `secret`, at most `max_ms`
    milliseconds (a negative value counts as 0) and never past the run's deadline; returns the
    milliseconds waited.

    Waiting books nothing: the request itself still takes its slot, and requests (from every
    run) take slots in the order they reach the bucket, so capacity waited for may be taken by
    another request first.

    Raises `RateLimited` (`apiary_sdk.http.RateLimited`) when the wait needed is longer than
    `max_ms`; its `ms` is that wait, and nothing was waited.
    """
    limit = min(max(0, int(max_ms)), _U64_MAX)
    try:
        return _bindings.ratelimit.wait(str(bucket), None if secret is None else str(secret), limit)
    except _bindings.Err as err:
        raise RateLimited(err.value) from None
