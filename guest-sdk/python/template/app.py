"""{{name}}: an Apiary plugin in Python, built on the Python guest SDK (`apiary_sdk`).

Operation `list`: GETs `{base_url}/items`, follows `Link: <...>; rel="next"` pagination and emits
each element of every page's JSON array as a record.

Config: `base_url` (default `http://127.0.0.1:8080`). Secret: `api_token`, sent as a bearer
token when the run has it; its value never enters the plugin, the host attaches it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import apiary_sdk
from apiary_sdk import OperationInfo, PluginInfo, RunSummary, config, http, output, secrets
from apiary_sdk.paginate import LinkPages

DEFAULT_BASE_URL = "http://127.0.0.1:8080"
"""Where the API is, unless the `base_url` config value says otherwise."""
TOKEN_SECRET = "api_token"
"""The secret attached as a bearer token when granted (see plugin.toml)."""


@dataclass
class ListInput:
    """The input of `list`: none yet. Add fields here; `parse_input` checks names and types."""


class App(apiary_sdk.Plugin):
    """The plugin: its operations, and which function runs each."""

    def describe(self) -> PluginInfo:
        """Names the plugin and its operations; makes no requests."""
        return PluginInfo(
            name="{{name}}",
            version="0.1.0",
            operations=[OperationInfo("list", "List every item, across all pages")],
        )

    def run(self, operation: str, input: Any) -> RunSummary:
        """Runs one operation with its input (parsed JSON)."""
        if operation == "list":
            return list_items(apiary_sdk.parse_input(input, ListInput))
        raise apiary_sdk.UnknownOperation(operation)


# componentize-py exports the class named `WitWorld` in this module.
WitWorld = apiary_sdk.export(App)


def list_items(input: ListInput) -> RunSummary:
    """Emits every item of every page of `{base_url}/items`."""
    base = config.get("base_url", DEFAULT_BASE_URL).rstrip("/")
    first = http.get(f"{base}/items").header("accept", "application/json")
    if secrets.available(TOKEN_SECRET):
        first = first.bearer(TOKEN_SECRET)

    # Raises on a non-2xx page, a failed request, a repeated next link or too many pages.
    pages = LinkPages(first)
    emitted = 0
    for page in pages:
        try:
            items = page.json()
        except ValueError as error:
            raise apiary_sdk.json_failed(error) from None
        if not isinstance(items, list):
            raise apiary_sdk.Failed(f"expected a JSON array from {page.url}")
        output.emit_all(items)
        emitted += len(items)
    return RunSummary(pages=pages.pages, message=f"{emitted} items")
