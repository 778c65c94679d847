// {{name}}: an Apiary plugin. `list` reads every page of `{base_url}/items` (a JSON array per
// page, pages linked with `Link: <...>; rel="next"`) and emits each element as a record.
//
// Build: apiary build (or node guest-sdk/js/build.mjs --wit <wit dir> --out {{name}}.wasm plugin.js)
// Run:   apiary run . list --config base_url=http://127.0.0.1:8080 [--secret api_token=env:API_TOKEN]

import { FailedError, LinkPages, UnknownOperationError, config, exportPlugin, http, output, secrets } from "apiary-sdk";

/** The secret sent as a bearer token, when the run has it. */
const TOKEN_SECRET = "api_token";

const Plugin = {
  describe() {
    return {
      name: "{{name}}",
      version: "0.1.0",
      operations: [{ name: "list", summary: "List every item across all pages" }],
    };
  },

  run(operation, input) {
    switch (operation) {
      case "list":
        return list(input);
      default:
        throw new UnknownOperationError(operation);
    }
  },
};

export const { describe, run } = exportPlugin(Plugin);

function list() {
  const base = config.require("base_url").replace(/\/+$/, "");
  let first = http.get(`${base}/items`).header("accept", "application/json");
  if (secrets.available(TOKEN_SECRET)) first = first.bearer(TOKEN_SECRET);

  // Follows rel="next" links; stops on a non-2xx page, a loop, or 10 000 pages.
  const pages = new LinkPages(first);
  let emitted = 0;
  for (const page of pages) {
    const items = page.json();
    if (!Array.isArray(items)) throw new FailedError(`expected a JSON array from ${page.url}`);
    for (const item of items) {
      output.emit(item);
      emitted += 1;
    }
  }
  return { pages: pages.pages, message: `${emitted} items` };
}
