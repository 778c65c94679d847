"""Apiary plugin for the GitHub REST API, in Python: lists a repository's issues across all pages.

A port of `plugins/github` (Rust) on the Python guest SDK; it sends the same requests and emits
the same records, byte for byte.

Config: `base_url` (default `https://api.github.com`). Secret: `github_token`, sent as a bearer
token when the run has it (public repositories work without one, at a lower rate limit).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, List, Optional

import apiary_sdk
from apiary_sdk import Failed, InvalidInput, OperationInfo, PluginInfo, RunSummary, config, http, output, secrets
from apiary_sdk.paginate import LinkPages, UnexpectedStatus

DEFAULT_BASE_URL = "https://api.github.com"
"""GitHub's REST API, unless the `base_url` config value points elsewhere (GitHub Enterprise)."""
API_VERSION = "2022-11-28"
"""The REST API version the record mapping below was written against."""
TOKEN_SECRET = "github_token"
"""The secret holding a GitHub token."""
STATES = ("open", "closed", "all")
"""The values GitHub accepts for `state`."""
NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.")


@dataclass
class IssuesInput:
    """The input of `issues`."""

    owner: str
    repo: str
    state: str = "open"
    per_page: int = 100  # GitHub's largest page size: fewer requests for the same issues
    include_pulls: bool = False


class GitHub(apiary_sdk.Plugin):
    """The plugin: one operation, `issues`."""

    def describe(self) -> PluginInfo:
        """Names the plugin and its operation."""
        return PluginInfo(
            name="github-py",
            version="0.1.0",
            operations=[OperationInfo("issues", "List a repository's issues across all pages")],
        )

    def run(self, operation: str, input: Any) -> RunSummary:
        """Runs `issues`."""
        if operation == "issues":
            return issues(apiary_sdk.parse_input(input, IssuesInput))
        raise apiary_sdk.UnknownOperation(operation)


WitWorld = apiary_sdk.export(GitHub)


def issues(input: IssuesInput) -> RunSummary:
    """Emits one record per issue of `owner/repo`, following GitHub's Link pagination."""
    owner, repo, state, per_page = input.owner, input.repo, input.state, input.per_page
    check_name("owner", owner)
    check_name("repo", repo)
    if state not in STATES:
        raise InvalidInput(f'state must be one of ["open", "closed", "all"], not `{state}`')
    if not 1 <= per_page <= 100:
        raise InvalidInput(f"per_page must be 1 to 100, not {per_page}")
    base = config.get("base_url", DEFAULT_BASE_URL)
    first = (
        http.get(f"{base.rstrip('/')}/repos/{owner}/{repo}/issues")
        .query("state", state)
        .query("per_page", per_page)
        .header("accept", "application/vnd.github+json")
        .header("x-github-api-version", API_VERSION)
    )
    if secrets.available(TOKEN_SECRET):
        first = first.bearer(TOKEN_SECRET)

    pages = LinkPages(first)
    emitted = 0
    try:
        for page in pages:
            try:
                records = [
                    issue_record(issue)
                    for issue in issue_list(page.json())
                    if input.include_pulls or issue.get("pull_request") is None
                ]
            except ValueError as error:
                raise Failed(f"unexpected issue JSON from {page.url}: {error}") from None
            output.emit_all(records)
            emitted += len(records)
    except UnexpectedStatus as error:
        raise with_github_message(error) from None
    return RunSummary(pages=pages.pages, message=f"{emitted} issues from {owner}/{repo}")


def issue_list(body: Any) -> List[Dict[str, Any]]:
    """The page's issues; `ValueError` unless it is a list of objects."""
    if not isinstance(body, list):
        raise ValueError("expected a sequence of issues")
    for issue in body:
        if not isinstance(issue, dict):
            raise ValueError("expected each issue to be an object")
    return body


def issue_record(issue: Dict[str, Any]) -> Dict[str, Any]:
    """The record emitted for an issue as GitHub's REST API returns it; the keys are in the order
    of the Rust plugin's `IssueRecord`. `ValueError` when a field is missing or of the wrong type."""
    user = optional(issue, "user", dict)
    return {
        "number": unsigned(issue, "number"),
        "title": field(issue, "title", str),
        "state": field(issue, "state", str),
        "user": None if user is None else field(user, "login", str),
        "labels": [field(label, "name", str) for label in labels(issue)],
        "comments": unsigned(issue, "comments"),
        "created_at": field(issue, "created_at", str),
        "updated_at": field(issue, "updated_at", str),
        "closed_at": optional(issue, "closed_at", str),
        "html_url": field(issue, "html_url", str),
        # Present on pull requests, which GitHub lists among issues.
        "is_pull_request": issue.get("pull_request") is not None,
    }


def field(value: Dict[str, Any], name: str, kind: type) -> Any:
    """`value[name]`, which must be a `kind`."""
    if name not in value:
        raise ValueError(f"missing field `{name}`")
    if not isinstance(value[name], kind) or isinstance(value[name], bool) is not (kind is bool):
        raise ValueError(f"invalid type for `{name}`: expected {kind.__name__}")
    return value[name]


def optional(value: Dict[str, Any], name: str, kind: type) -> Optional[Any]:
    """`value[name]`, which must be a `kind` or null or absent."""
    return None if value.get(name) is None else field(value, name, kind)


def unsigned(value: Dict[str, Any], name: str) -> int:
    """`value[name]`, which must be an integer from 0 to 2^64 - 1."""
    number = field(value, name, int)
    if not 0 <= number < 1 << 64:
        raise ValueError(f"invalid value for `{name}`: {number}, expected u64")
    return number


def labels(issue: Dict[str, Any]) -> List[Dict[str, Any]]:
    """The issue's labels, each an object."""
    items = field(issue, "labels", list)
    for label in items:
        if not isinstance(label, dict):
            raise ValueError("invalid type for a label: expected an object")
    return items


def check_name(field_name: str, name: str) -> None:
    """Rejects what is not a GitHub account or repository name, so input cannot reshape the URL."""
    if name and name not in (".", "..") and all(c in NAME_CHARS for c in name):
        return
    raise InvalidInput(f"{field_name} `{name}` is not a GitHub name")


def with_github_message(error: UnexpectedStatus) -> Failed:
    """Adds GitHub's own explanation (its error bodies carry a `message`) to a failed page."""
    try:
        body = error.response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("message"), str):
        return Failed(f"{error}: {body['message']}")
    return Failed(str(error))
