// Node module hooks for the SDK's tests: the host's interfaces (`apiary:plugin/*@0.2.0`), which only
// exist inside a component, become modules that forward to fakes the tests set in
// `globalThis.apiaryWire`. Loaded with `node --import ./test/wire-stub.mjs`.

import { register } from "node:module";

const hooks = `
export async function resolve(specifier, context, next) {
  const match = /^apiary:plugin\\/([a-z]+)@0\\.2\\.0$/.exec(specifier);
  if (match) return { url: "apiary-wire:" + match[1], shortCircuit: true };
  return next(specifier, context);
}
const NAMES = {
  http: ["send", "sendBatch", "Batch"],
  secrets: ["available"],
  log: ["log"],
  config: ["get", "getAll"],
  state: ["get", "put"],
  output: ["emit", "emitMany"],
  ratelimit: ["state", "wait"],
};
export async function load(url, context, next) {
  if (!url.startsWith("apiary-wire:")) return next(url, context);
  const iface = url.slice("apiary-wire:".length);
  const source = NAMES[iface]
    .map((name) => name === "Batch"
      ? "export class Batch { constructor(r) { return new globalThis.apiaryWire.http.Batch(r); } }"
      : "export function " + name + "(...args) { return globalThis.apiaryWire." + iface + "." + name + "(...args); }")
    .join("\\n");
  return { format: "module", source, shortCircuit: true };
}
`;

register(`data:text/javascript,${encodeURIComponent(hooks)}`);

/** What the bindings throw for an import's `err`: an Error whose `payload` is the WIT value. */
export class ComponentError extends Error {
  constructor(payload) {
    super("component error");
    Object.defineProperty(this, "payload", { value: payload, enumerable: true });
  }
}

globalThis.apiaryWire = {
  http: {},
  secrets: { available: () => false },
  log: { log: () => {} },
  config: { get: () => undefined, getAll: () => [] },
  state: { get: () => undefined, put: () => {} },
  output: { emit: () => {}, emitMany: () => {} },
  ratelimit: { state: () => ({ remaining: undefined, waitMs: 0n }), wait: () => 0n },
};
