"""The raw bindings componentize-py generates from `wit/`; prefer the capability modules.

Inside a component, the generated modules are importable as `wit_world.imports.*` and the
`result` error wrapper as `componentize_py_types.Err`. Outside one (plain CPython, for unit tests
of pure logic such as `paginate.next_link`), every host call raises `HostUnavailable` instead.
"""

from __future__ import annotations


class HostUnavailable(RuntimeError):
    """Raised by host calls made outside a component, where there is no host to call."""


class _Missing:
    """Stands in for a generated module outside a component: any attribute use fails clearly."""

    def __init__(self, name: str) -> None:
        """Stands in for the generated module `name`."""
        self._name = name

    def __getattr__(self, attribute: str):
        raise HostUnavailable(
            f"apiary_sdk: `{self._name}.{attribute}` is a host import, only available inside a "
            "component built with componentize-py"
        )


try:
    from componentize_py_types import Err
    from wit_world.imports import config, http, log, output, ratelimit, secrets, state, types

    IN_COMPONENT = True
    """True when running inside a component, with the host's imports available."""
except ImportError:  # plain CPython: no host
    IN_COMPONENT = False

    class Err(Exception):  # type: ignore[no-redef]
        """Stand-in for componentize-py's `result` error wrapper outside a component."""

        def __init__(self, value) -> None:
            """Wraps `value`, the error case's payload."""
            super().__init__(value)
            self.value = value

    config = _Missing("config")
    http = _Missing("http")
    log = _Missing("log")
    output = _Missing("output")
    ratelimit = _Missing("ratelimit")
    secrets = _Missing("secrets")
    state = _Missing("state")
    types = _Missing("types")
