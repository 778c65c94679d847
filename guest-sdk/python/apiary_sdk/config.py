"""Configuration values: the manifest's `[config]` defaults overridden by the run's `--config`.

::

    from apiary_sdk import config

    base = config.get("base_url", "https://api.github.com")
    org = config.require("org")  # raises InvalidInput when unset
"""

from __future__ import annotations

from typing import List, Optional, Tuple

from . import _bindings

__all__ = ["get", "require", "all"]


def get(key: str, default: Optional[str] = None) -> Optional[str]:
    """The value of `key`, or `default` when it is not set."""
    value = _bindings.config.get(key)
    return default if value is None else value


def require(key: str) -> str:
    """The value of `key`; raises `apiary_sdk.InvalidInput` naming `key` when it is not set."""
    value = _bindings.config.get(key)
    if value is None:
        from . import InvalidInput

        raise InvalidInput(f"config value `{key}` is required but not set")
    return value


def all() -> List[Tuple[str, str]]:  # noqa: A001 - the Rust SDK's name
    """Every (key, value) pair, sorted by key."""
    return list(_bindings.config.get_all())
