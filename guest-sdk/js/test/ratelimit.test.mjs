// Unit tests of the SDK's `ratelimit` (bucket state, waiting for capacity) under Node, with the
// host's `apiary:plugin/ratelimit@0.2.0` faked (see wire-stub.mjs).

import assert from "node:assert/strict";
import { afterEach, beforeEach, test } from "node:test";

import { ComponentError } from "./wire-stub.mjs";
import { HttpError, RateLimitedError, exportPlugin, ratelimit, toRunError } from "../apiary-sdk.mjs";

const wire = globalThis.apiaryWire;
const defaults = { ...wire.ratelimit };

/** A fake host: (bucket, secret) -> { remaining, waitMs }; every call recorded as the host got it. */
let buckets;
let calls;

beforeEach(() => {
  buckets = new Map();
  calls = [];
  const lookup = (bucket, secret) => {
    assert.equal(typeof bucket, "string");
    assert.ok(secret === undefined || typeof secret === "string", `secret ${secret}`);
    return buckets.get(`${bucket} ${secret ?? ""}`) ?? { remaining: undefined, waitMs: 0n };
  };
  wire.ratelimit.state = (bucket, secret) => {
    calls.push(["state", bucket, secret]);
    return lookup(bucket, secret);
  };
  wire.ratelimit.wait = (bucket, secret, maxMs) => {
    assert.equal(typeof maxMs, "bigint", "max-ms is a u64");
    assert.ok(maxMs >= 0n && maxMs <= 18446744073709551615n);
    calls.push(["wait", bucket, secret, maxMs]);
    const { waitMs } = lookup(bucket, secret);
    if (waitMs > maxMs) throw new ComponentError(waitMs);
    return waitMs;
  };
});

afterEach(() => Object.assign(wire.ratelimit, defaults));

function bucket(name, secret, remaining, waitMs) {
  buckets.set(`${name} ${secret ?? ""}`, { remaining, waitMs: BigInt(waitMs) });
}

test("ratelimit.state gives remaining and waitMs for a bucket and a secret", () => {
  bucket("api.github.com", "github_token", 42, 0);
  bucket("api.github.com", undefined, 0, 1500);
  assert.deepEqual(ratelimit.state("api.github.com", "github_token"), { remaining: 42, waitMs: 0 });
  assert.deepEqual(ratelimit.state("api.github.com"), { remaining: 0, waitMs: 1500 });
  assert.deepEqual(ratelimit.state("api.github.com", null), { remaining: 0, waitMs: 1500 });
  assert.deepEqual(calls, [
    ["state", "api.github.com", "github_token"],
    ["state", "api.github.com", undefined],
    ["state", "api.github.com", undefined],
  ]);
});

test("ratelimit.state: a bucket with no declared limit has remaining undefined", () => {
  const state = ratelimit.state("search");
  assert.equal(state.remaining, undefined);
  assert.equal(state.waitMs, 0);
  assert.equal(typeof state.waitMs, "number");
});

test("ratelimit.wait returns the milliseconds waited, as a number", () => {
  bucket("api.github.com", "github_token", 0, 250);
  assert.equal(ratelimit.wait("api.github.com", "github_token", 1000), 250);
  assert.equal(ratelimit.wait("idle"), 0);
  assert.deepEqual(calls, [
    ["wait", "api.github.com", "github_token", 1000n],
    ["wait", "idle", undefined, 60000n],
  ]);
});

test("ratelimit.wait waits a minute at most by default", () => {
  assert.equal(ratelimit.DEFAULT_MAX_MS, 60_000);
  bucket("b", undefined, 0, 60_000);
  assert.equal(ratelimit.wait("b"), 60_000);
  bucket("b", undefined, 0, 60_001);
  assert.throws(() => ratelimit.wait("b"), RateLimitedError);
});

test("ratelimit.wait throws RateLimitedError with the wait needed when it is longer than maxMs", () => {
  bucket("api.github.com", "github_token", 0, 90_000);
  assert.throws(
    () => ratelimit.wait("api.github.com", "github_token", 5000),
    (e) =>
      e instanceof RateLimitedError &&
      e instanceof HttpError &&
      e.ms === 90_000 &&
      e.message === "rate limited: the next slot is 90000 ms away",
  );
  assert.deepEqual(toRunError(new RateLimitedError(90_000)), { tag: "http", val: { tag: "rate-limited", val: 90_000 } });
});

test("ratelimit.wait sends maxMs as a u64 of whole milliseconds", () => {
  for (const [given, sent] of [
    [0, 0n],
    [2.9, 2n],
    [2 ** 60, 2n ** 60n],
    [2 ** 64, 18446744073709551615n],
    [Infinity, 18446744073709551615n],
  ]) {
    ratelimit.wait("b", undefined, given);
    assert.deepEqual(calls.at(-1), ["wait", "b", undefined, sent], `maxMs ${given}`);
  }
  for (const bad of [-1, NaN, "10", null, 10n]) {
    assert.throws(() => ratelimit.wait("b", undefined, bad), TypeError, `maxMs ${String(bad)}`);
  }
  assert.equal(calls.length, 5, "a bad maxMs reaches no host");
});

test("ratelimit.wait rethrows what is not the host's err", () => {
  wire.ratelimit.wait = () => {
    throw new RangeError("trap");
  };
  assert.throws(() => ratelimit.wait("b"), RangeError);
});

test("a RateLimitedError from wait, uncaught in run, ends the run with the http case", async () => {
  bucket("b", undefined, 0, 7);
  const { run } = exportPlugin({
    describe: () => ({ name: "w", version: "0.1.0", operations: [] }),
    run() {
      ratelimit.wait("b", undefined, 0);
    },
  });
  assert.deepEqual(await run("list", "{}"), { tag: "err", val: { tag: "http", val: { tag: "rate-limited", val: 7 } } });
});

test("ratelimit is frozen, like the other capabilities", () => {
  assert.ok(Object.isFrozen(ratelimit));
  assert.deepEqual(Object.keys(ratelimit).sort(), ["DEFAULT_MAX_MS", "state", "wait"]);
});
