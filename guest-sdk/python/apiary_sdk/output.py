"""The records a run produces.

::

    from apiary_sdk import output

    output.emit({"id": 1, "title": "first"})

A record is serialized as compact JSON (`,` and `:` without spaces, non-ASCII kept, keys in the
dict's order), which the host writes as given, on one line.
"""

from __future__ import annotations

import json
from typing import Any, Iterable, List

from . import _bindings

__all__ = ["emit", "emit_json", "emit_all", "dumps", "Error", "InvalidJson", "TooLarge", "RECORDS_PER_CALL"]

RECORDS_PER_CALL = 4096
"""Most records the host takes in one call; `emit_all` splits longer lists."""


class Error(Exception):
    """Why a record was refused (the WIT `output.error`); one subclass per case.

    `index` is the position of the refused record in an `emit_all` call, else None. Raised out of
    `run`, it ends the run with `run-error.failed` and its message.
    """

    index = None

    @staticmethod
    def from_wire(wire) -> "Error":
        """The exception for a generated `output.Error_*` value."""
        if type(wire).__name__ == "Error_TooLarge":
            return TooLarge(wire.value)
        return InvalidJson(str(getattr(wire, "value", wire)))


class InvalidJson(Error):
    """The record is not valid JSON (or could not be serialized); `reason` says where."""

    def __init__(self, reason: str) -> None:
        """Builds the error from `reason`; its message is the Rust SDK's wording."""
        super().__init__(f"record is not valid JSON: {reason}")
        self.reason = reason


class TooLarge(Error):
    """The record exceeds the host's limit, `limit` bytes."""

    def __init__(self, limit: int) -> None:
        """Builds the error from `limit`; its message is the Rust SDK's wording."""
        super().__init__(f"record exceeds the host's limit of {limit} bytes")
        self.limit = limit


def dumps(record: Any) -> str:
    """`record` as the compact JSON text `emit` sends: `json.dumps` with `separators=(",", ":")`,
    `ensure_ascii=False` and `allow_nan=False` (the same bytes serde_json writes for strings,
    integers, booleans, null, lists and dicts).

    Raises `InvalidJson` when `record` cannot be serialized.
    """
    try:
        return json.dumps(record, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as error:
        raise InvalidJson(str(error)) from None


def emit(record: Any) -> None:
    """Emits `record`, serialized as one JSON document (a dict, usually) with `dumps`.

    Raises `InvalidJson` when it cannot be serialized, or the host's `Error`.
    """
    emit_json(dumps(record))


def emit_json(text: str) -> None:
    """Emits `text`, a JSON document the plugin already has as text (an API's object passed
    through, say); the host writes it as given, key order and numbers kept.

    Raises the host's `Error`: not valid JSON, or too large.
    """
    try:
        _bindings.output.emit(text)
    except _bindings.Err as err:
        raise Error.from_wire(err.value) from None


def emit_all(records: Iterable[Any]) -> None:
    """Emits every record of `records`, serialized with `dumps`, in as few calls to the host as
    its limit allows (one per 4096 records).

    Raises the `Error` of the first record refused or not serializable, with its position in
    `index`; the records before it were emitted, none after it.
    """
    texts: List[str] = []
    unserializable = None
    for index, record in enumerate(records):
        try:
            texts.append(dumps(record))
        except InvalidJson as error:
            error.index = index
            unserializable = error
            break
    for offset in range(0, len(texts), RECORDS_PER_CALL):
        try:
            _bindings.output.emit_many(texts[offset : offset + RECORDS_PER_CALL])
        except _bindings.Err as err:
            position, wire = err.value
            error = Error.from_wire(wire)
            error.index = offset + position
            raise error from None
    if unserializable is not None:
        raise unserializable
