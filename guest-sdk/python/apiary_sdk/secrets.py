"""Sealed secrets: a plugin names a secret and the host attaches its value to a request.

The value never enters the plugin. The host attaches it only at the placement the manifest
declares, only to destinations the manifest asks for and the operator grants, and scrubs every
secret of the run from every response the plugin receives. Attach one with
`RequestBuilder.secret` (or `RequestBuilder.bearer`)::

    from apiary_sdk import http, secrets

    request = http.get("https://api.example.com/v1/items")
    if secrets.available("api_key"):
        request = request.secret(secrets.header("api_key", "x-api-key"))
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from . import _bindings

__all__ = [
    "SecretAttachment",
    "bearer",
    "basic",
    "header",
    "query",
    "available",
    "Error",
    "Unknown",
    "NotBound",
    "InvalidPlacement",
    "Unavailable",
]


@dataclass(frozen=True)
class SecretAttachment:
    """A request's instruction to attach one secret (the WIT `secret-attachment`).

    `placement` is one of `"bearer"`, `"basic"`, `"header"` or `"query"`; `value` is the
    placement's payload: the username for `basic`, the header name for `header`, the parameter
    name for `query`, None for `bearer`. Build one with `bearer`, `basic`, `header` or `query`.
    """

    name: str
    placement: str
    value: Optional[str] = None

    def to_wire(self):
        """The attachment as the generated bindings spell it."""
        wire = _bindings.secrets
        if self.placement == "bearer":
            placement = wire.Placement_Bearer()
        elif self.placement == "basic":
            placement = wire.Placement_Basic(self.value or "")
        elif self.placement == "header":
            placement = wire.Placement_Header(self.value or "")
        elif self.placement == "query":
            placement = wire.Placement_Query(self.value or "")
        else:
            raise ValueError(f"unknown secret placement `{self.placement}`")
        return wire.SecretAttachment(name=self.name, placement=placement)


def bearer(name: str) -> SecretAttachment:
    """Attaches the secret `name` as `Authorization: Bearer <value>`."""
    return SecretAttachment(name, "bearer")


def basic(name: str, username: str) -> SecretAttachment:
    """Attaches the secret `name` as the password of `Authorization: Basic` for `username`."""
    return SecretAttachment(name, "basic", username)


def header(name: str, header_name: str) -> SecretAttachment:
    """Attaches the secret `name` as the value of the header `header_name`."""
    return SecretAttachment(name, "header", header_name)


def query(name: str, param: str) -> SecretAttachment:
    """Attaches the secret `name` as the value of the query parameter `param`."""
    return SecretAttachment(name, "query", param)


def available(name: str) -> bool:
    """True when the secret `name` is granted and its source gave a value when the run started."""
    return bool(_bindings.secrets.available(name))


class Error(Exception):
    """Why a secret could not be attached (the WIT `secrets.error`); one subclass per case."""

    def to_wire(self):
        """The error as the generated bindings spell it."""
        raise NotImplementedError

    @staticmethod
    def from_wire(wire) -> "Error":
        """The exception for a generated `secrets.Error_*` value."""
        for cls in (Unknown, NotBound, InvalidPlacement, Unavailable):
            if type(wire).__name__ == "Error_" + cls.__name__:
                return cls(wire.value)
        return Unavailable(repr(wire))


class Unknown(Error):
    """The manifest asks for no secret with this name, or the operator did not grant it."""

    def __init__(self, name: str) -> None:
        """Builds the error from `name`; its message is the Rust SDK's wording."""
        super().__init__(f"no secret is declared as `{name}`")
        self.name = name

    def to_wire(self):
        """The error as the generated bindings spell it."""
        return _bindings.secrets.Error_Unknown(self.name)


class NotBound(Error):
    """The secret may not be sent to the request's destination; `detail` names both."""

    def __init__(self, detail: str) -> None:
        """Builds the error from `detail`; its message is the Rust SDK's wording."""
        super().__init__(f"secret not bound to this destination: {detail}")
        self.detail = detail

    def to_wire(self):
        """The error as the generated bindings spell it."""
        return _bindings.secrets.Error_NotBound(self.detail)


class InvalidPlacement(Error):
    """The placement is not the declared one, or cannot carry the value; `reason` says why."""

    def __init__(self, reason: str) -> None:
        """Builds the error from `reason`; its message is the Rust SDK's wording."""
        super().__init__(f"invalid secret placement: {reason}")
        self.reason = reason

    def to_wire(self):
        """The error as the generated bindings spell it."""
        return _bindings.secrets.Error_InvalidPlacement(self.reason)


class Unavailable(Error):
    """The secret's source failed; `reason` names the secret and the source, never a value."""

    def __init__(self, reason: str) -> None:
        """Builds the error from `reason`; its message is the Rust SDK's wording."""
        super().__init__(f"secret unavailable: {reason}")
        self.reason = reason

    def to_wire(self):
        """The error as the generated bindings spell it."""
        return _bindings.secrets.Error_Unavailable(self.reason)
