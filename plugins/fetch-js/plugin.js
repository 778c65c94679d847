// An Apiary plugin that makes its requests with nothing but the standard `fetch()`: the stock
// path. componentize-js turns `fetch` into `wasi:http/outgoing-handler` calls, and the host runs
// them through the same egress pipeline as its own `http` interface (allowlist, retries, rate
// limits, timeouts). A stock request cannot name a secret, so the manifest asks the host to attach
// `github_token` by itself (`attach = "auto"`) to every request bound for its hosts; the token
// never enters the plugin.
//
// `issues` lists a repository's issues across all pages (`Link: rel="next"`), with the input and
// the records of plugins/github, so both can be compared with `apiary demo`. Only the glue
// (exports, config, records, logs) comes from the SDK; no request goes through its `http`.
//
// Build: node ../../guest-sdk/js/build.mjs --wit ../../wit --out fetch_js.wasm --stock-http plugin.js

import {
  FailedError,
  InvalidInputError,
  UnknownOperationError,
  config,
  exportPlugin,
  log,
  nextLink,
  output,
  parseInput,
} from "apiary-sdk";

const DEFAULT_BASE_URL = "https://api.github.com";
const API_VERSION = "2022-11-28";
const STATES = ["open", "closed", "all"];
/** The loop guard's page limit, as the SDK's paginators default to. */
const MAX_PAGES = 10_000;

const ISSUES_INPUT = {
  owner: "string",
  repo: "string",
  state: { type: "string", default: "open" },
  per_page: { type: "u32", default: 100 },
  include_pulls: { type: "boolean", default: false },
};

const FetchGitHub = {
  describe() {
    return {
      name: "github-fetch",
      version: "0.1.0",
      operations: [{ name: "issues", summary: "List a repository's issues across all pages, with fetch()" }],
    };
  },

  async run(operation, input) {
    if (operation !== "issues") throw new UnknownOperationError(operation);
    return issues(parseInput(input, ISSUES_INPUT, { name: "IssuesInput", denyUnknownFields: true }));
  },
};

export const { describe, run } = exportPlugin(FetchGitHub);

async function issues({ owner, repo, state, per_page: perPage, include_pulls: includePulls }) {
  for (const [field, name] of [["owner", owner], ["repo", repo]]) {
    if (!/^[A-Za-z0-9._-]+$/.test(name) || name === "." || name === "..") {
      throw new InvalidInputError(`${field} \`${name}\` is not a GitHub name`);
    }
  }
  if (!STATES.includes(state)) {
    throw new InvalidInputError(`state must be one of [${STATES.map((s) => `"${s}"`).join(", ")}], not \`${state}\``);
  }
  if (perPage < 1 || perPage > 100) throw new InvalidInputError(`per_page must be 1 to 100, not ${perPage}`);

  const base = (config.get("base_url") ?? DEFAULT_BASE_URL).replace(/\/+$/, "");
  const first = new URL(`${base}/repos/${owner}/${repo}/issues`);
  first.searchParams.append("state", state);
  first.searchParams.append("per_page", String(perPage));

  let url = first.href;
  const seen = new Set([url]);
  let pages = 0;
  let emitted = 0;
  while (url) {
    if (pages >= MAX_PAGES) throw new FailedError(`more than ${MAX_PAGES} pages: stopped`);
    let response;
    try {
      // No authorization header: the host adds the token (attach = "auto").
      response = await fetch(url, {
        headers: { accept: "application/vnd.github+json", "x-github-api-version": API_VERSION },
      });
    } catch (error) {
      throw new FailedError(`request to ${url} failed: ${error.message}`);
    }
    const text = await response.text();
    if (!response.ok) {
      let detail = "";
      try {
        const body = JSON.parse(text);
        if (typeof body?.message === "string") detail = `: ${body.message}`;
      } catch {
        // Not GitHub's JSON error body.
      }
      throw new FailedError(`unexpected status ${response.status} from ${url}${detail}`);
    }
    pages += 1;
    let items;
    try {
      items = JSON.parse(text);
      if (!Array.isArray(items)) throw new TypeError("not a JSON array");
    } catch (error) {
      throw new FailedError(`unexpected issue JSON from ${url}: ${error.message}`);
    }
    for (const issue of items) {
      if (!includePulls && issue.pull_request != null) continue;
      output.emit({
        number: issue.number,
        title: issue.title,
        state: issue.state,
        user: issue.user == null ? null : issue.user.login,
        labels: issue.labels.map((label) => label.name),
        comments: issue.comments,
        created_at: issue.created_at,
        updated_at: issue.updated_at,
        closed_at: issue.closed_at ?? null,
        html_url: issue.html_url,
        is_pull_request: issue.pull_request != null,
      });
      emitted += 1;
    }
    const link = response.headers.get("link");
    const next = link ? nextLink([link], url) : undefined;
    if (next && seen.has(next)) throw new FailedError(`pagination loop: \`${next}\` was already fetched`);
    if (next) seen.add(next);
    log.debug("page", { page: pages, items: items.length });
    url = next;
  }
  return { pages, message: `${emitted} issues from ${owner}/${repo}` };
}
