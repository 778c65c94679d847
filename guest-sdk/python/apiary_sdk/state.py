"""Checkpoint state for resumable runs, scoped to the tenant and the plugin.

::

    from apiary_sdk import state

    since = state.get_json("since")  # None the first time
    # ... fetch what changed since then ...
    state.put_json("since", "2024-05-01T00:00:00Z")

Raised out of `run`, a state `Error` ends the run with `run-error.failed` and its message.
"""

from __future__ import annotations

import json
from typing import Any, Optional

from . import _bindings

__all__ = ["get", "put", "get_json", "put_json", "Error", "TooLarge", "Storage", "JsonError"]


class Error(Exception):
    """Why state could not be read or written (the WIT `state.error`); one subclass per case."""

    @staticmethod
    def from_wire(wire) -> "Error":
        """The exception for a generated `state.Error_*` value."""
        if type(wire).__name__ == "Error_TooLarge":
            return TooLarge(wire.value)
        return Storage(str(getattr(wire, "value", wire)))


class TooLarge(Error):
    """The value exceeds the host's limit, `limit` bytes."""

    def __init__(self, limit: int) -> None:
        """Builds the error from `limit`; its message is the Rust SDK's wording."""
        super().__init__(f"state value exceeds the host's limit of {limit} bytes")
        self.limit = limit


class Storage(Error):
    """The store failed; `reason` says how."""

    def __init__(self, reason: str) -> None:
        """Builds the error from `reason`; its message is the Rust SDK's wording."""
        super().__init__(f"state storage failed: {reason}")
        self.reason = reason


class JsonError(Error):
    """A stored value is not JSON, or a value to store cannot be serialized; `reason` says why."""

    def __init__(self, reason: str) -> None:
        """Builds the error from `reason`; its message is the Rust SDK's wording."""
        super().__init__(f"state value is not the expected JSON: {reason}")
        self.reason = reason


def get(key: str) -> Optional[str]:
    """The value stored under `key`, or None; raises the host's `Error`."""
    try:
        return _bindings.state.get(key)
    except _bindings.Err as err:
        raise Error.from_wire(err.value) from None


def put(key: str, value: str) -> None:
    """Stores `value` under `key`, replacing any earlier value; raises the host's `Error`."""
    try:
        _bindings.state.put(key, value)
    except _bindings.Err as err:
        raise Error.from_wire(err.value) from None


def get_json(key: str, default: Any = None) -> Any:
    """The value stored under `key` parsed as JSON, or `default` when there is none.

    Raises `JsonError` when the value is not JSON, or the host's `Error`.
    """
    text = get(key)
    if text is None:
        return default
    try:
        return json.loads(text)
    except ValueError as error:
        raise JsonError(str(error)) from None


def put_json(key: str, value: Any) -> None:
    """Stores `value` as compact JSON under `key`, replacing any earlier value.

    Raises `JsonError` when `value` cannot be serialized, or the host's `Error`.
    """
    try:
        text = json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as error:
        raise JsonError(str(error)) from None
    put(key, text)
