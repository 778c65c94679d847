// Apiary plugin for the GitHub REST API, in JavaScript: lists a repository's issues across all
// pages. A port of plugins/github (Rust) that sends the same requests and emits the same records,
// byte for byte.
//
// Config: `base_url` (default `https://api.github.com`). Secret: `github_token`, sent as a bearer
// token when the run has it (public repositories work without one, at a lower rate limit).
//
// Build: node ../../guest-sdk/js/build.mjs --wit ../../wit --out github_js.wasm plugin.js

import {
  FailedError,
  InvalidInputError,
  LinkPages,
  UnexpectedStatusError,
  UnknownOperationError,
  checkJson,
  config,
  exactNumber,
  exportPlugin,
  http,
  output,
  parseInput,
  parseJson,
  secrets,
} from "apiary-sdk";

/** GitHub's REST API, unless the `base_url` config value points elsewhere (GitHub Enterprise). */
const DEFAULT_BASE_URL = "https://api.github.com";
/** The REST API version the record mapping below was written against. */
const API_VERSION = "2022-11-28";
/** The secret holding a GitHub token. */
const TOKEN_SECRET = "github_token";
/** The values GitHub accepts for `state`. */
const STATES = ["open", "closed", "all"];

/** The input of `issues`; unknown fields are refused. */
const ISSUES_INPUT = {
  owner: "string",
  repo: "string",
  state: { type: "string", default: "open" },
  // GitHub's largest page size, and the default: fewer requests for the same issues.
  per_page: { type: "u32", default: 100 },
  include_pulls: { type: "boolean", default: false },
};

const GitHub = {
  describe() {
    return {
      name: "github",
      version: "0.1.0",
      operations: [{ name: "issues", summary: "List a repository's issues across all pages" }],
    };
  },

  run(operation, input) {
    switch (operation) {
      case "issues":
        return issues(parseInput(input, ISSUES_INPUT, { name: "IssuesInput", denyUnknownFields: true }));
      default:
        throw new UnknownOperationError(operation);
    }
  },
};

export const { describe, run } = exportPlugin(GitHub);

function issues({ owner, repo, state, per_page: perPage, include_pulls: includePulls }) {
  checkName("owner", owner);
  checkName("repo", repo);
  if (!STATES.includes(state)) {
    // Rust's `{STATES:?}`: ["open", "closed", "all"].
    const states = STATES.map((s) => `"${s}"`).join(", ");
    throw new InvalidInputError(`state must be one of [${states}], not \`${state}\``);
  }
  if (perPage < 1 || perPage > 100) {
    throw new InvalidInputError(`per_page must be 1 to 100, not ${perPage}`);
  }
  const base = config.get("base_url") ?? DEFAULT_BASE_URL;
  let first = http
    .get(`${base.replace(/\/+$/, "")}/repos/${owner}/${repo}/issues`)
    .query("state", state)
    .query("per_page", perPage)
    .header("accept", "application/vnd.github+json")
    .header("x-github-api-version", API_VERSION);
  if (secrets.available(TOKEN_SECRET)) {
    first = first.bearer(TOKEN_SECRET);
  }

  const pages = new LinkPages(first);
  let emitted = 0;
  try {
    for (const page of pages) {
      for (const issue of issuesOf(page)) {
        if (!includePulls && issue.pull_request != null) continue;
        output.emit(issueRecord(issue));
        emitted += 1;
      }
    }
  } catch (error) {
    throw withGitHubMessage(error);
  }
  return { pages: pages.pages, message: `${emitted} issues from ${owner}/${repo}` };
}

/**
 * An issue as GitHub's REST API returns it (only the fields the record needs); the Rust plugin's
 * `Issue`, checked as serde checks it.
 */
const ISSUE = {
  type: "object",
  name: "Issue",
  fields: {
    number: "u64",
    title: "string",
    state: "string",
    user: { type: "object", name: "User", optional: true, fields: { login: "string" } },
    labels: { type: "array", items: { type: "object", name: "Label", fields: { name: "string" } } },
    comments: "u64",
    created_at: "string",
    updated_at: "string",
    closed_at: { type: "string", optional: true },
    html_url: "string",
    // Present on pull requests, which GitHub lists among issues.
    pull_request: { type: "any", optional: true },
  },
};

/**
 * A page whose integer fields may be written in a form `JSON.parse` loses (`7.0`, or beyond
 * 2^53); only then is the page parsed noting number forms, which is several times slower.
 */
const UNUSUAL_INTEGER = /"(?:number|comments)"\s*:\s*-?\d+(?:[.eE]|\d{15})/;

/** The issues of a page, checked against {@link ISSUE}. */
function issuesOf(page) {
  const text = page.text();
  try {
    const issues = parseJson(text, { numberForms: UNUSUAL_INTEGER.test(text) });
    checkJson(issues, { type: "array", items: ISSUE });
    return issues;
  } catch (error) {
    throw new FailedError(`unexpected issue JSON from ${page.url}: ${error.message}`);
  }
}

/**
 * The record emitted for each issue: the Rust plugin's `IssueRecord`, field for field and in its
 * order, so both serialize to the same bytes.
 */
function issueRecord(issue) {
  return {
    number: exactNumber(issue, "number"),
    title: issue.title,
    state: issue.state,
    user: issue.user == null ? null : issue.user.login,
    labels: issue.labels.map((label) => label.name),
    comments: exactNumber(issue, "comments"),
    created_at: issue.created_at,
    updated_at: issue.updated_at,
    closed_at: issue.closed_at ?? null,
    html_url: issue.html_url,
    is_pull_request: issue.pull_request != null,
  };
}

/** Rejects what is not a GitHub account or repository name, so input cannot reshape the URL. */
function checkName(field, name) {
  if (!/^[A-Za-z0-9._-]+$/.test(name) || name === "." || name === "..") {
    throw new InvalidInputError(`${field} \`${name}\` is not a GitHub name`);
  }
}

/** Adds GitHub's own explanation (its error bodies carry a `message`) to a failed page. */
function withGitHubMessage(error) {
  if (error instanceof UnexpectedStatusError) {
    let body;
    try {
      body = error.response.json();
    } catch {
      body = undefined;
    }
    if (body !== null && typeof body === "object" && typeof body.message === "string") {
      return new FailedError(`${error.message}: ${body.message}`);
    }
  }
  return error;
}
