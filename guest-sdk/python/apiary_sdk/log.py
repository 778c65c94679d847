"""Structured, leveled logs, emitted by the host as `tracing` events tagged with the plugin.

::

    from apiary_sdk import log

    log.info("fetched page", page=2, items=100)

Field values are converted with `str`.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Any, Iterable, Mapping, Tuple, Union

from . import _bindings

__all__ = ["Level", "log", "trace", "debug", "info", "warn", "error"]


class Level(IntEnum):
    """A log level (the WIT `log.level`)."""

    TRACE = 0
    """Very detailed diagnostics."""
    DEBUG = 1
    """Diagnostics for developers."""
    INFO = 2
    """Normal progress."""
    WARN = 3
    """Something unexpected that the plugin handled."""
    ERROR = 4
    """A failure."""


Fields = Union[Mapping[str, Any], Iterable[Tuple[str, Any]], None]
"""Structured fields: a mapping or (key, value) pairs."""


def log(level: Level, message: str, fields: Fields = None, /, **more: Any) -> None:
    """Logs `message` at `level` with structured `fields` (a mapping or pairs) and `more`."""
    pairs = list(fields.items() if isinstance(fields, Mapping) else (fields or ()))
    pairs.extend(more.items())
    wire = _bindings.log
    wire.log(wire.Level(int(level)), str(message), [(str(k), str(v)) for k, v in pairs])


def trace(message: str, fields: Fields = None, /, **more: Any) -> None:
    """Logs very detailed diagnostics."""
    log(Level.TRACE, message, fields, **more)


def debug(message: str, fields: Fields = None, /, **more: Any) -> None:
    """Logs diagnostics for developers."""
    log(Level.DEBUG, message, fields, **more)


def info(message: str, fields: Fields = None, /, **more: Any) -> None:
    """Logs normal progress."""
    log(Level.INFO, message, fields, **more)


def warn(message: str, fields: Fields = None, /, **more: Any) -> None:
    """Logs something unexpected that the plugin handled."""
    log(Level.WARN, message, fields, **more)


def error(message: str, fields: Fields = None, /, **more: Any) -> None:
    """Logs a failure."""
    log(Level.ERROR, message, fields, **more)
