// Unit tests of the JavaScript SDK under Node, with the host's interfaces faked (see
// wire-stub.mjs). Run with `npm test` in guest-sdk/js. Many cases are the Rust SDK's own tests,
// ported, so both SDKs keep the same behaviour.

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";

import { ComponentError } from "./wire-stub.mjs";
import {
  BodyTooLargeError,
  ConnectionError,
  CursorPages,
  DeniedError,
  FailedError,
  HttpError,
  InvalidInputError,
  InvalidRequestError,
  LinkPages,
  LoopDetectedError,
  OutputError,
  RateLimitedError,
  Response,
  RetriesExhaustedError,
  SecretError,
  TimeoutError,
  TooManyPagesError,
  UnexpectedStatusError,
  UnknownOperationError,
  checkJson,
  emit,
  emitAll,
  exactNumber,
  exportPlugin,
  get,
  http,
  nextLink,
  parseInput,
  parseJson,
  post,
  secrets,
  state,
  toRunError,
} from "../apiary-sdk.mjs";

const wire = globalThis.apiaryWire;

/** The shared RFC 8288 vectors the Rust SDK tests against too. */
function linkHeaderCases() {
  const text = readFileSync(new URL("../../../tests/vectors/link_header.toml", import.meta.url), "utf8");
  const cases = [];
  for (const line of text.split("\n")) {
    if (!line.trim().startsWith("{")) continue;
    const fields = {};
    for (const [, key, , single, double] of line.matchAll(/(\w+) = ('([^']*)'|"((?:[^"\\]|\\.)*)")/g)) {
      fields[key] = single ?? JSON.parse(`"${double}"`);
    }
    cases.push(fields);
  }
  assert.ok(cases.length > 10);
  return cases;
}

test("nextLink matches every shared vector", () => {
  for (const c of linkHeaderCases()) {
    const expected = c.next === "" ? undefined : c.next;
    assert.equal(nextLink([c.value], c.base ?? "https://base.invalid/unused"), expected, `${c.value} (${c.note})`);
  }
});

test("nextLink skips empty lines and malformed link-values", () => {
  const base = "https://api.example.com/items";
  assert.equal(nextLink(["", "</b>; rel=next"], base), "https://api.example.com/b");
  assert.equal(nextLink(["junk; rel=next, </b>; rel=next"], base), "https://api.example.com/b");
  assert.equal(nextLink(["<https://example.com/unterminated; rel=next"], base), undefined);
  assert.equal(nextLink(['</a>; title="say \\"next\\""; rel=prev'], base), undefined);
  assert.equal(nextLink([], base), undefined);
});

function response(headers, url = "https://api.example.com/items?page=1") {
  return new Response(url, { status: 200, headers, body: new Uint8Array(), attempts: 1 });
}

test("header lookup ignores case and keeps every value", () => {
  const r = response([
    ["Link", "<a>; rel=prev"],
    ["x-other", "1"],
    ["LINK", "</b>; rel=next"],
  ]);
  assert.equal(r.header("link"), "<a>; rel=prev");
  assert.deepEqual(r.headerValues("Link"), ["<a>; rel=prev", "</b>; rel=next"]);
  assert.equal(r.nextLink(), "https://api.example.com/b");
  assert.equal(r.header("absent"), undefined);
});

test("query pairs are percent-encoded after existing ones", () => {
  const url = get("https://api.example.com/s?state=open").query("q", "label:bug is:open").query("tag", "ü/#?&=").url();
  assert.equal(url, "https://api.example.com/s?state=open&q=label%3Abug+is%3Aopen&tag=%C3%BC%2F%23%3F%26%3D");
  assert.equal(get("https://API.example.com:443/a").query("x", 1).url(), "https://api.example.com/a?x=1");
  assert.equal(get("https://api.example.com/a?").query("x", "~*").url(), "https://api.example.com/a?x=%7E*");
  assert.equal(get("https://api.example.com/a#frag").query("x", "y").url(), "https://api.example.com/a?x=y#frag");
});

test("builders are immutable; withUrl drops pending query pairs and keeps everything else", () => {
  const first = get("https://api.example.com/items")
    .query("per_page", "100")
    .header("accept", "application/json")
    .bearer("token")
    .maxRetries(1);
  const next = first.withUrl("https://api.example.com/items?page=2&per_page=100").toWire();
  assert.equal(next.url, "https://api.example.com/items?page=2&per_page=100");
  assert.deepEqual(next.headers, [["accept", "application/json"]]);
  assert.deepEqual(next.secrets, [{ name: "token", placement: { tag: "bearer" } }]);
  assert.equal(next.options.retry.maxRetries, 1);
  first.query("extra", "1");
  assert.equal(first.url(), "https://api.example.com/items?per_page=100");
});

test("query on an unparsable URL is an invalid request", () => {
  assert.throws(
    () => get("not a url").query("a", "b").toWire(),
    (e) => e instanceof InvalidRequestError && e.message.includes("not a url"),
  );
  assert.equal(get("not a url").url(), "not a url");
});

test("json sets the body and content-type once", () => {
  const request = post("https://api.example.com/")
    .header("Content-Type", "application/merge-patch+json")
    .json({ a: 1 })
    .toWire();
  assert.equal(new TextDecoder().decode(request.body), '{"a":1}');
  assert.equal(request.headers.length, 1);
  const plain = post("https://api.example.com/").json([1]).toWire();
  assert.deepEqual(plain.headers, [["content-type", "application/json"]]);
  assert.deepEqual(plain.method, { tag: "post" });
  assert.deepEqual(http.request("get", "https://x/").method, { tag: "other", val: "get" });
});

test("timeout is whole milliseconds", () => {
  assert.equal(get("https://api.example.com/").timeout(2.5).toWire().options.timeoutMs, 2);
});

test("send maps the host's errors to typed errors with the Rust SDK's messages", () => {
  const cases = [
    [{ tag: "denied", val: "x:80" }, DeniedError, "request denied: x:80"],
    [{ tag: "invalid-request", val: "bad" }, InvalidRequestError, "invalid request: bad"],
    [{ tag: "timeout", val: 5n }, TimeoutError, "request timed out after 5 ms"],
    [{ tag: "rate-limited", val: 7n }, RateLimitedError, "rate limited: the next slot is 7 ms away"],
    [
      { tag: "retries-exhausted", val: { attempts: 3, lastStatus: 503, message: "HTTP 503" } },
      RetriesExhaustedError,
      "gave up after 3 attempts (last status 503): HTTP 503",
    ],
    [{ tag: "body-too-large", val: 16n }, BodyTooLargeError, "response body exceeds the host's limit of 16 bytes"],
    [{ tag: "connection", val: "refused" }, ConnectionError, "connection failed: refused"],
    [
      { tag: "secret", val: { tag: "unknown", val: "tok" } },
      SecretError,
      "secret not attached: no secret is declared as `tok`",
    ],
  ];
  for (const [payload, type, message] of cases) {
    wire.http.send = () => {
      throw new ComponentError(payload);
    };
    assert.throws(
      () => get("https://api.example.com/").send(),
      (e) => e instanceof type && e instanceof HttpError && e.message === message,
    );
    const error = HttpError.fromWire(payload);
    const back = error.toWire();
    assert.equal(HttpError.fromWire(back).message, message);
    assert.deepEqual(toRunError(error), { tag: "http", val: back });
  }
});

test("send sends the wire request and wraps the response", () => {
  let sent;
  wire.http.send = (request) => {
    sent = request;
    return { status: 201, headers: [["content-type", "application/json"]], body: new TextEncoder().encode("[1,2]"), attempts: 2 };
  };
  const r = get("https://api.example.com/items").query("a", "b").secret(secrets.header("k", "x-api-key")).send();
  assert.equal(sent.url, "https://api.example.com/items?a=b");
  assert.deepEqual(sent.secrets, [{ name: "k", placement: { tag: "header", val: "x-api-key" } }]);
  assert.equal(r.status, 201);
  assert.ok(r.isSuccess());
  assert.deepEqual(r.json(), [1, 2]);
  assert.equal(r.attempts, 2);
  assert.equal(r.url, "https://api.example.com/items?a=b");
});

/** A fake API: each URL maps to [status, link header, body]. */
function fakeApi(pages) {
  const requests = [];
  const send = (builder) => {
    const request = builder.toWire();
    requests.push(request);
    const page = pages[request.url];
    if (!page) throw new ConnectionError(`no fake page at ${request.url}`);
    const [status, link, body] = page;
    const headers = link ? [["link", link]] : [];
    return new Response(request.url, { status, headers, body: new TextEncoder().encode(body), attempts: 1 });
  };
  return { send, requests };
}

function bodies(pages) {
  const out = [];
  try {
    for (const page of pages) out.push(page.text());
  } catch (error) {
    out.push(`error: ${error.message}`);
  }
  return out;
}

test("LinkPages follow next links as given with the same settings", () => {
  const api = fakeApi({
    "https://api.example.com/items?per_page=2": [200, "</items?page=2&per_page=2>; rel=next", "p1"],
    "https://api.example.com/items?page=2&per_page=2": [200, "<https://cdn.example.com/p3>; rel=next", "p2"],
    "https://cdn.example.com/p3": [200, undefined, "p3"],
  });
  const first = get("https://api.example.com/items").query("per_page", "2").header("accept", "x").bearer("tok");
  const pages = new LinkPages(first, { send: api.send });
  assert.deepEqual(bodies(pages), ["p1", "p2", "p3"]);
  assert.equal(pages.pages, 3);
  assert.ok(api.requests.every((r) => r.headers.length === 1 && r.headers[0][1] === "x" && r.secrets.length === 1));
});

test("LinkPages stop with an error when a next link repeats", () => {
  const api = fakeApi({
    "https://api.example.com/a": [200, "</b>; rel=next", "a"],
    "https://api.example.com/b": [200, "<HTTPS://API.example.com/a>; rel=next", "b"],
  });
  const pages = new LinkPages(get("https://api.example.com/a"), { send: api.send });
  assert.deepEqual(bodies(pages), ["a", "b", "error: pagination loop: `https://api.example.com/a` was already fetched"]);
  assert.deepEqual([...pages], [], "fused after the error");
});

test("LinkPages stop at the page limit and on a bad status", () => {
  const api = fakeApi({
    "https://api.example.com/1": [200, "</2>; rel=next", "1"],
    "https://api.example.com/2": [200, "</3>; rel=next", "2"],
    "https://api.example.com/3": [503, undefined, "down"],
  });
  const limited = new LinkPages(get("https://api.example.com/1"), { send: api.send }).maxPages(1);
  assert.deepEqual(bodies(limited), ["1", "error: more than 1 pages: stopped (raise the page limit if that is expected)"]);
  const failing = bodies(new LinkPages(get("https://api.example.com/1"), { send: api.send }));
  assert.deepEqual(failing, ["1", "2", "error: unexpected status 503 from https://api.example.com/3"]);
  try {
    [...new LinkPages(get("https://api.example.com/3"), { send: api.send })];
    assert.fail("expected an error");
  } catch (error) {
    assert.ok(error instanceof UnexpectedStatusError);
    assert.equal(error.response.text(), "down");
    assert.deepEqual(toRunError(error), { tag: "failed", val: "unexpected status 503 from https://api.example.com/3" });
  }
  assert.ok(new TooManyPagesError(1) instanceof Error && new LoopDetectedError("x").next === "x");
});

test("CursorPages apply each cursor to the first request", () => {
  const api = fakeApi({
    "https://api.example.com/list?limit=2": [200, undefined, '{"next": "c2"}'],
    "https://api.example.com/list?limit=2&cursor=c2": [200, undefined, '{"next": "c3"}'],
    "https://api.example.com/list?limit=2&cursor=c3": [200, undefined, '{"next": ""}'],
  });
  const first = get("https://api.example.com/list").query("limit", "2");
  const pages = new CursorPages(first, (page) => page.json().next, (f, cursor) => f.query("cursor", cursor), { send: api.send });
  assert.equal(bodies(pages).length, 3);
  assert.equal(api.requests.length, 3);
  assert.equal(pages.pages, 3);
});

test("CursorPages stop with an error when a cursor repeats", () => {
  const api = fakeApi({
    "https://api.example.com/list": [200, undefined, "c1"],
    "https://api.example.com/list?cursor=c1": [200, undefined, "c1"],
  });
  const pages = new CursorPages(
    get("https://api.example.com/list"),
    (page) => page.text(),
    (f, cursor) => f.query("cursor", cursor),
    { send: api.send },
  );
  assert.deepEqual(bodies(pages), ["c1", "c1", "error: pagination loop: `c1` was already fetched"]);
});

test("sendAll and Batch keep the caller's order and fail bad builders alone", () => {
  wire.http.sendBatch = (requests) =>
    requests.map((r) => (r.url.endsWith("/ok") ? { tag: "ok", val: { status: 200, headers: [], body: new Uint8Array(), attempts: 1 } } : { tag: "err", val: { tag: "connection", val: "no" } }));
  const results = http.sendAll([get("https://x.example/ok"), get("nope").query("a", "b"), get("https://x.example/bad")]);
  assert.ok(results[0] instanceof Response && results[1] instanceof InvalidRequestError && results[2] instanceof ConnectionError);

  let disposed = false;
  wire.http.Batch = class {
    constructor(requests) {
      this.left = requests.map((r, i) => [i, { tag: "ok", val: { status: 200, headers: [], body: new TextEncoder().encode(r.url), attempts: 1 } }]).reverse();
    }
    next() {
      return this.left.pop();
    }
    [Symbol.dispose ?? Symbol.for("dispose")]() {
      disposed = true;
    }
  };
  const seen = [...http.Batch.start([get("https://x.example/0"), get("bad").query("a", 1), get("https://x.example/2")])];
  assert.deepEqual(seen.map(([i, r]) => [i, r instanceof Response ? r.text() : r.constructor.name]), [
    [1, "InvalidRequestError"],
    [0, "https://x.example/0"],
    [2, "https://x.example/2"],
  ]);
  assert.ok(disposed);
});

test("emit writes JSON.stringify's bytes; emitAll reports the refused index", () => {
  const emitted = [];
  wire.output.emit = (json) => emitted.push(json);
  emit({ b: 1, a: [null, "é\u0001"] });
  assert.deepEqual(emitted, ['{"b":1,"a":[null,"é\\u0001"]}']);
  assert.throws(() => emit(undefined), (e) => e instanceof OutputError && e.tag === "invalid-json");
  wire.output.emit = () => {
    throw new ComponentError({ tag: "too-large", val: 10n });
  };
  assert.throws(() => emit({}), (e) => e instanceof OutputError && e.message === "record exceeds the host's limit of 10 bytes");

  const calls = [];
  wire.output.emitMany = (records) => {
    calls.push(records.length);
    if (calls.length === 2) throw new ComponentError([3, { tag: "invalid-json", val: "bad" }]);
  };
  assert.throws(
    () => emitAll(Array.from({ length: 5000 }, (_, i) => ({ i }))),
    (e) => e instanceof OutputError && e.index === 4099 && e.message === "record is not valid JSON: bad",
  );
  assert.deepEqual(calls, [4096, 904]);
  calls.length = 0;
  wire.output.emitMany = (records) => calls.push(records.length);
  assert.throws(() => emitAll([1, 2, 10n, 4]), (e) => e instanceof OutputError && e.index === 2);
  assert.deepEqual(calls, [2]);
});

test("state maps the host's errors and JSON", () => {
  const store = new Map();
  wire.state.get = (k) => store.get(k);
  wire.state.put = (k, v) => {
    if (v.length > 10) throw new ComponentError({ tag: "too-large", val: 10n });
    store.set(k, v);
  };
  state.putJson("since", { t: 1 });
  assert.deepEqual(state.getJson("since"), { t: 1 });
  assert.equal(state.get("absent"), undefined);
  assert.throws(() => state.put("k", "x".repeat(11)), { message: "state value exceeds the host's limit of 10 bytes" });
  assert.deepEqual(toRunError(new Error("plain")), { tag: "failed", val: "plain" });
  assert.deepEqual(toRunError(new TypeError("x")), { tag: "failed", val: "TypeError: x" });
});

/** Whether `JSON.parse` gives revivers the source text (SpiderMonkey does; Node 20 does not). */
const SOURCE_TEXT = (() => {
  let seen = false;
  JSON.parse("1", (key, value, context) => {
    seen = typeof context?.source === "string";
    return value;
  });
  return seen;
})();

const ISSUES_INPUT = {
  owner: "string",
  repo: "string",
  state: { type: "string", default: "open" },
  per_page: { type: "u32", default: 100 },
  include_pulls: { type: "boolean", default: false },
};

/** The message parseInput gives for the input `text`, or "accepted". */
function inputMessage(text) {
  try {
    parseInput(parseJson(text, { numberForms: true }), ISSUES_INPUT, { name: "IssuesInput", denyUnknownFields: true });
  } catch (error) {
    assert.ok(error instanceof InvalidInputError);
    return error.message;
  }
  return "accepted";
}

test("parseInput tells floats from integers and quotes big integers exactly", { skip: !SOURCE_TEXT && "JSON.parse has no source text here" }, () => {
  assert.equal(inputMessage('{"owner":"o","repo":"r","per_page":1e2}'), "invalid input: invalid type: floating point `100.0`, expected u32");
  assert.equal(
    inputMessage('{"owner":"o","repo":"r","per_page":18446744073709551615}'),
    "invalid input: invalid value: integer `18446744073709551615`, expected u32",
  );
  assert.equal(inputMessage("1.0"), "invalid input: invalid type: floating point `1.0`, expected struct IssuesInput");
});

test("parseInput checks like serde and fills defaults", () => {
  const parsed = parseInput({ owner: "o", repo: "r" }, ISSUES_INPUT, { name: "IssuesInput", denyUnknownFields: true });
  assert.deepEqual(parsed, { owner: "o", repo: "r", state: "open", per_page: 100, include_pulls: false });
  const message = inputMessage;
  assert.equal(message('{"repo":"r"}'), "invalid input: missing field `owner`");
  assert.equal(message('{"owner":"o","repo":"r","x":1}'), "invalid input: unknown field `x`, expected one of `owner`, `repo`, `state`, `per_page`, `include_pulls`");
  assert.equal(message('{"owner":"o","repo":"r","per_page":-1}'), "invalid input: invalid value: integer `-1`, expected u32");
  assert.equal(message('{"owner":"o","repo":"r","per_page":1e-7}'), "invalid input: invalid type: floating point `1e-7`, expected u32");
  assert.equal(message('{"owner":"o","repo":"r","state":null}'), "invalid input: invalid type: null, expected a string");
  assert.equal(message("[1]"), "invalid input: invalid type: integer `1`, expected a string");
  assert.equal(message('["o"]'), "invalid input: invalid length 1, expected struct IssuesInput with 5 elements");
  assert.equal(message('{"zzz":1,"aaa":2}'), "invalid input: unknown field `aaa`, expected one of `owner`, `repo`, `state`, `per_page`, `include_pulls`");
});

test("checkJson keeps exact big integers when asked", { skip: !SOURCE_TEXT && "JSON.parse has no source text here" }, () => {
  const issues = parseJson('[{"number":12345678901234567890}]', { numberForms: true });
  checkJson(issues, { type: "array", items: { type: "object", fields: { number: "u64" } } });
  assert.equal(JSON.stringify({ n: exactNumber(issues[0], "number") }), '{"n":12345678901234567890}');
  assert.throws(() => checkJson(JSON.parse("[1.5]"), { type: "array", items: "u64" }), {
    message: "invalid type: floating point `1.5`, expected u64",
  });
});

test("exportPlugin maps results and thrown errors onto run-error", async () => {
  const plugin = exportPlugin({
    describe: () => ({ name: "p", version: "1.0.0", operations: [{ name: "op", summary: "s" }] }),
    async run(operation, input) {
      if (operation === "op") return { pages: input.n, message: "done" };
      if (operation === "nothing") return undefined;
      if (operation === "fail") throw new FailedError("boom");
      if (operation === "http") throw new TimeoutError(3);
      if (operation === "bug") return input.missing.field;
      throw new UnknownOperationError(operation);
    },
  });
  assert.deepEqual(plugin.describe(), { name: "p", version: "1.0.0", operations: [{ name: "op", summary: "s" }] });
  assert.deepEqual(await plugin.run("op", '{"n":2}'), { tag: "ok", val: { pages: 2, message: "done" } });
  assert.deepEqual(await plugin.run("nothing", "{}"), { tag: "ok", val: { pages: 0, message: undefined } });
  assert.deepEqual(await plugin.run("fail", "{}"), { tag: "err", val: { tag: "failed", val: "boom" } });
  assert.deepEqual(await plugin.run("http", "{}"), { tag: "err", val: { tag: "http", val: { tag: "timeout", val: 3 } } });
  assert.deepEqual(await plugin.run("x", "{}"), { tag: "err", val: { tag: "unknown-operation", val: "x" } });
  assert.equal((await plugin.run("bug", "{}")).val.tag, "failed");
  const invalid = await plugin.run("op", "{bad");
  assert.equal(invalid.val.tag, "invalid-input");
  assert.ok(invalid.val.val.startsWith("input is not valid JSON: "));
  assert.deepEqual(await plugin.run("op", '{"n":-1}'), { tag: "err", val: { tag: "failed", val: "run returned an invalid page count: -1" } });

  class AsClass {
    describe() {
      return { name: "c", version: "0", operations: [] };
    }
    run() {
      return { pages: 1 };
    }
  }
  assert.equal(exportPlugin(AsClass).describe().name, "c");
});
