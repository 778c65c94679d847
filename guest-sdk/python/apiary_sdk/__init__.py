"""Guest SDK for Apiary plugins written in Python: export glue, a request builder and paginators.

A plugin is a WebAssembly component built with componentize-py for the `apiary:plugin` world. It
holds only per-API logic; the host does the network, secrets, retries, rate limits and state.
Writing one takes four steps:

1. Subclass `Plugin`: `describe` names the operations and `run` runs one of them with its input,
   already parsed from JSON. Export it with `WitWorld = apiary_sdk.export(MyPlugin)`.
2. Read the input with `parse_input` and settings with `config`.
3. Call APIs with `http` (secrets are attached by name, see `secrets`) and walk their pages with
   `paginate`; ask `ratelimit` what a bucket admits now, or wait for capacity.
4. Send each record to `output.emit`; return a `RunSummary`. Raise `InvalidInput`,
   `UnknownOperation` or `Failed` to fail a run; an `http.Error` raised out of `run` fails it
   with `run-error.http`, any other exception with `run-error.failed` and its message.

::

    from dataclasses import dataclass
    import apiary_sdk
    from apiary_sdk import OperationInfo, PluginInfo, RunSummary, http, output

    @dataclass
    class TodayInput:
        city: str

    class Weather(apiary_sdk.Plugin):
        def describe(self):
            return PluginInfo("weather", "0.1.0", [OperationInfo("today", "Today's forecast for a city")])

        def run(self, operation, input):
            if operation != "today":
                raise apiary_sdk.UnknownOperation(operation)
            city = apiary_sdk.parse_input(input, TodayInput).city
            response = http.get("https://weather.example/v1/today").query("city", city).bearer("weather_token").send()
            output.emit(response.json())
            return RunSummary(pages=1)

    WitWorld = apiary_sdk.export(Weather)  # componentize-py looks for `WitWorld` in the app module

Every import is a call into the host; outside a component they raise `HostUnavailable`, so keep
the logic worth testing in pure functions such as `paginate.next_link`.
"""

from __future__ import annotations

import dataclasses
import json
import traceback
import types as _pytypes
import typing
from typing import Any, List, Optional, Sequence, Tuple, Type, TypeVar, Union

from . import _bindings, config, http, log, output, paginate, ratelimit, secrets, state
from ._bindings import HostUnavailable

__all__ = [
    "Plugin",
    "PluginInfo",
    "OperationInfo",
    "RunSummary",
    "RunError",
    "UnknownOperation",
    "InvalidInput",
    "Failed",
    "HostUnavailable",
    "parse_input",
    "json_failed",
    "export",
    "config",
    "http",
    "log",
    "output",
    "paginate",
    "ratelimit",
    "secrets",
    "state",
]

__version__ = "0.2.0"
"""The SDK's version: the `apiary:plugin` WIT package version it targets."""


# --- what a plugin describes and returns ------------------------------------------------------


@dataclasses.dataclass
class OperationInfo:
    """One operation a plugin offers: the `name` passed to `run`, e.g. `issues`, and a one-line
    `summary` shown by `apiary inspect`."""

    name: str
    summary: str


@dataclasses.dataclass
class PluginInfo:
    """What `describe` returns: the plugin's `name` (should match the manifest's), its `version`
    (semver) and the `operations` `run` accepts (`OperationInfo`s or (name, summary) pairs)."""

    name: str
    version: str
    operations: List[OperationInfo] = dataclasses.field(default_factory=list)

    def to_wire(self):
        """The info as the generated bindings spell it."""
        types = _bindings.types
        operations = []
        for operation in self.operations:
            name, summary = (
                (operation.name, operation.summary) if isinstance(operation, OperationInfo) else operation
            )
            operations.append(types.OperationInfo(name=name, summary=summary))
        return types.PluginInfo(name=self.name, version=self.version, operations=operations)


@dataclasses.dataclass
class RunSummary:
    """What a successful run reports beyond what the host counts itself: the `pages` of results
    the plugin read, and an optional one-line `message` for the operator."""

    pages: int = 0
    message: Optional[str] = None

    def to_wire(self):
        """The summary as the generated bindings spell it."""
        return _bindings.types.RunSummary(pages=int(self.pages), message=self.message)


# --- run errors -------------------------------------------------------------------------------


class RunError(Exception):
    """Why a run failed (the WIT `run-error`); raise a subclass out of `run`.

    The fourth case, `run-error.http`, is raised as the `http.Error` itself.
    """

    def __init__(self, message: str) -> None:
        """A run error saying `message`, in one line."""
        super().__init__(message)
        self.message = message

    def to_wire(self):
        """The error as the generated bindings spell it."""
        return _bindings.types.RunError_Failed(self.message)


class UnknownOperation(RunError):
    """The operation name (`operation`) is not one the plugin offers."""

    def __init__(self, operation: str) -> None:
        """Builds the error from `operation`; its message is the Rust SDK's wording."""
        super().__init__(f"unknown operation `{operation}`")
        self.operation = operation

    def to_wire(self):
        """The error as the generated bindings spell it."""
        return _bindings.types.RunError_UnknownOperation(self.operation)


class InvalidInput(RunError):
    """The input JSON is malformed or misses a field; the message says which."""

    def to_wire(self):
        """The error as the generated bindings spell it."""
        return _bindings.types.RunError_InvalidInput(self.message)


class Failed(RunError):
    """Any other failure, described in one line."""


def json_failed(error: Exception) -> Failed:
    """A `Failed` for a JSON error from a response body: `raise json_failed(e) from e`."""
    return Failed(f"unexpected JSON in a response: {error}")


def _run_error(error: Exception):
    """The generated `run-error` for an exception raised out of `run`."""
    if isinstance(error, RunError):
        return error.to_wire()
    if isinstance(error, http.Error):
        try:
            return _bindings.types.RunError_Http(error.to_wire())
        except NotImplementedError:
            # `http.Error` itself or a plugin's own subclass: no WIT case to send, so a failure
            # (raising here would escape `run` and crash the component).
            return _bindings.types.RunError_Failed(str(error) or type(error).__name__)
    if isinstance(error, (paginate.PageError, output.Error, state.Error, secrets.Error)):
        return _bindings.types.RunError_Failed(str(error))
    # A bug in the plugin: say what it was, and log where.
    text = " ".join(str(error).split())
    try:
        log.error("uncaught exception in run", traceback="".join(traceback.format_exception(error)))
    except Exception:  # noqa: BLE001 - never let logging hide the error
        pass
    return _bindings.types.RunError_Failed(f"{type(error).__name__}: {text}" if text else type(error).__name__)


# --- plugins ----------------------------------------------------------------------------------


class Plugin:
    """What a plugin implements; `export` turns the subclass into the component's exports.

    ::

        class Noop(apiary_sdk.Plugin):
            def describe(self):
                return PluginInfo("noop", "0.1.0", [])

        WitWorld = apiary_sdk.export(Noop)
    """

    def describe(self) -> PluginInfo:
        """Describes the plugin: its name, version and operations. Must not make requests."""
        raise NotImplementedError

    def run(self, operation: str, input: Any) -> Optional[RunSummary]:
        """Runs `operation` with `input`, the caller's JSON document parsed (`{}` when they gave
        none); returns a `RunSummary` (None counts as zero pages and no message).

        Raise `UnknownOperation` for an operation the plugin does not offer, `InvalidInput` for
        unusable input, and whatever else stops the run.
        """
        raise UnknownOperation(operation)


def export(plugin: Union[Type[Plugin], Plugin, Any]) -> type:
    """The class componentize-py exports for `plugin` (a `Plugin` subclass or instance, or any
    object with `describe` and `run`); bind it to `WitWorld` at the top level of the app module::

        WitWorld = apiary_sdk.export(MyPlugin)

    The class parses the input JSON (a syntax error is `InvalidInput`), calls the plugin, and maps
    exceptions onto `run-error` cases. A plugin class is instantiated once, at the first call.
    """
    holder: List[Any] = [] if isinstance(plugin, type) else [plugin]

    def instance() -> Any:
        if not holder:
            holder.append(plugin())
        return holder[0]

    class WitWorld:
        """The `apiary:plugin` world's exports, calling the plugin."""

        def describe(self):
            """Describes the plugin (the WIT `describe` export)."""
            info = instance().describe()
            return info.to_wire() if isinstance(info, PluginInfo) else info

        def run(self, operation: str, input: str):
            """Runs an operation (the WIT `run` export); raises `Err(run-error)` on failure."""
            try:
                try:
                    value = json.loads(input)
                except ValueError as error:
                    raise InvalidInput(f"input is not valid JSON: {error}") from None
                summary = instance().run(operation, value)
                if summary is None:
                    summary = RunSummary()
                return summary.to_wire() if isinstance(summary, RunSummary) else summary
            except Exception as error:  # noqa: BLE001 - every failure becomes a run-error
                raise _bindings.Err(_run_error(error)) from None

    WitWorld.__qualname__ = WitWorld.__name__ = "WitWorld"
    return WitWorld


# --- input ------------------------------------------------------------------------------------

T = TypeVar("T")


def parse_input(input: Any, cls: Type[T]) -> T:
    """`input` (a parsed JSON document) as an instance of the dataclass `cls`, checked like the
    Rust SDK's serde: an object whose keys are `cls`'s fields, none unknown, each of its annotated
    type (`str`, `int`, `float`, `bool`, `list`, `dict`, `Any`, `Optional[...]`, `List[...]`,
    `Dict[str, ...]`); fields with defaults may be absent.

    Raises `InvalidInput` naming the offending field, e.g. ``invalid input: missing field `owner` ``.
    """
    if not (isinstance(cls, type) and dataclasses.is_dataclass(cls)):
        raise TypeError(f"parse_input needs a dataclass, not {cls!r}")
    if not isinstance(input, dict):
        raise InvalidInput(f"invalid input: invalid type: {_unexpected(input)}, expected struct {cls.__name__}")
    fields = [field for field in dataclasses.fields(cls) if field.init]
    names = [field.name for field in fields]
    hints = typing.get_type_hints(cls)
    for key, value in input.items():
        if key not in names:
            raise InvalidInput(f"invalid input: unknown field `{key}`, {_one_of(names)}")
        problem = _check(value, hints.get(key, Any))
        if problem:
            raise InvalidInput(f"invalid input: {problem}")
    for field in fields:
        required = field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING
        if required and field.name not in input:
            raise InvalidInput(f"invalid input: missing field `{field.name}`")
    return cls(**input)


def _one_of(names: Sequence[str]) -> str:
    """serde's wording of the expected field names."""
    quoted = [f"`{name}`" for name in names]
    if not quoted:
        return "there are no fields"
    if len(quoted) == 1:
        return f"expected {quoted[0]}"
    if len(quoted) == 2:
        return f"expected {quoted[0]} or {quoted[1]}"
    return "expected one of " + ", ".join(quoted)


def _unexpected(value: Any) -> str:
    """serde's wording of a JSON value of the wrong type."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"boolean `{'true' if value else 'false'}`"
    if isinstance(value, int):
        return f"integer `{value}`"
    if isinstance(value, float):
        return f"floating point `{value}`"
    if isinstance(value, str):
        return f"string {json.dumps(value, ensure_ascii=False)}"
    if isinstance(value, list):
        return "sequence"
    return "map"


_EXPECTED = {str: "a string", int: "an integer", float: "a number", bool: "a boolean", list: "a sequence", dict: "a map"}


def _check(value: Any, hint: Any) -> Optional[str]:
    """None when `value` has the type `hint`, else serde's wording of the mismatch."""
    if hint is Any:
        return None
    origin = typing.get_origin(hint)
    if origin is Union or origin is getattr(_pytypes, "UnionType", Union):
        options = typing.get_args(hint)
        if value is None and type(None) in options:
            return None
        problems = [_check(value, option) for option in options if option is not type(None)]
        return None if any(problem is None for problem in problems) else problems[0]
    base = origin or hint
    if base is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return None
    if base in (int, float) and isinstance(value, bool):
        return f"invalid type: {_unexpected(value)}, expected {_EXPECTED[base]}"
    if isinstance(base, type) and not isinstance(value, base):
        return f"invalid type: {_unexpected(value)}, expected {_EXPECTED.get(base, base.__name__)}"
    args = typing.get_args(hint)
    if base is list and args:
        for item in value:
            problem = _check(item, args[0])
            if problem:
                return problem
    if base is dict and len(args) == 2:
        for item in value.values():
            problem = _check(item, args[1])
            if problem:
                return problem
    return None
