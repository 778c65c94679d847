// Apiary guest SDK for JavaScript plugins (ESM), built into components with componentize-js.
//
// The JavaScript twin of the Rust `apiary-sdk` crate (guest-sdk/src): the same concepts under
// the same names, spelled the JavaScript way. A plugin imports it as `apiary-sdk`:
//
//   import { exportPlugin, http, output, LinkPages, UnknownOperationError } from "apiary-sdk";
//
//   const Weather = {
//     describe() {
//       return { name: "weather", version: "0.1.0", operations: [{ name: "today", summary: "Today's forecast" }] };
//     },
//     run(operation, input) {
//       if (operation !== "today") throw new UnknownOperationError(operation);
//       const response = http.get("https://weather.example/v1/today").query("city", input.city).bearer("weather_token").send();
//       output.emit(response.json());
//       return { pages: 1 };
//     },
//   };
//
//   export const { describe, run } = exportPlugin(Weather);
//
// Everything dangerous or hard (the network, secrets, retries, rate limits, state) is the host's:
// this module only describes requests and maps the contract's types (wit/*.wit,
// `apiary:plugin@0.2.0`) to JavaScript ones. The module's top level runs once, when the component
// is built (componentize-js pre-initializes it), so it must not call the host; neither should a
// plugin's top level.

import {
  send as wireSend,
  sendBatch as wireSendBatch,
  Batch as WireBatch,
} from "apiary:plugin/http@0.2.0";
import { available as wireAvailable } from "apiary:plugin/secrets@0.2.0";
import { log as wireLog } from "apiary:plugin/log@0.2.0";
import { get as wireConfigGet, getAll as wireConfigGetAll } from "apiary:plugin/config@0.2.0";
import { get as wireStateGet, put as wireStatePut } from "apiary:plugin/state@0.2.0";
import { emit as wireEmit, emitMany as wireEmitMany } from "apiary:plugin/output@0.2.0";
import { state as wireBucketState, wait as wireBucketWait } from "apiary:plugin/ratelimit@0.2.0";

// ---------------------------------------------------------------------------------------------
// Wire helpers

/**
 * The WIT error value carried by what an import threw: the bindings throw an `Error` whose
 * `payload` is the `err` case of the function's `result`. Anything else is rethrown.
 * @param {unknown} thrown
 * @returns {any}
 */
function payloadOf(thrown) {
  if (thrown !== null && typeof thrown === "object" && Object.hasOwn(thrown, "payload")) {
    return thrown.payload;
  }
  throw thrown;
}

/** A WIT `u64` (a BigInt in the bindings) as a number. */
function u64(value) {
  return typeof value === "bigint" ? Number(value) : value;
}

/** ASCII-only lowercase, for comparisons HTTP defines as ASCII case-insensitive. */
function asciiLower(text) {
  return text.replace(/[A-Z]+/g, (upper) => upper.toLowerCase());
}

function isObject(value) {
  return value !== null && typeof value === "object" && !Array.isArray(value);
}

// ---------------------------------------------------------------------------------------------
// Errors: one Error subclass per WIT error case, under a common base per WIT error type.

/**
 * Why a request failed (the WIT `http.error`); each case is a subclass, and each is something a
 * plugin can handle. Uncaught in `run`, it ends the run with the `http` case of `run-error`.
 */
export class HttpError extends Error {
  /**
   * @param {string} message The one-line description.
   * @param {string} tag The WIT case name, e.g. `"timeout"`.
   */
  constructor(message, tag) {
    super(message);
    this.name = new.target.name;
    /** The WIT case name, e.g. `"retries-exhausted"`. @type {string} */
    this.tag = tag;
  }

  /**
   * The error as the WIT `http.error` variant (`{ tag, val }`).
   * @returns {{ tag: string, val?: any }}
   */
  toWire() {
    throw new Error(`${this.name} does not implement toWire`);
  }

  /**
   * The subclass for a WIT `http.error` value, as an import returns it.
   * @param {{ tag: string, val?: any }} wire
   * @returns {HttpError}
   */
  static fromWire(wire) {
    switch (wire.tag) {
      case "denied":
        return new DeniedError(wire.val);
      case "invalid-request":
        return new InvalidRequestError(wire.val);
      case "timeout":
        return new TimeoutError(u64(wire.val));
      case "rate-limited":
        return new RateLimitedError(u64(wire.val));
      case "retries-exhausted":
        return new RetriesExhaustedError(wire.val.attempts, wire.val.lastStatus, wire.val.message);
      case "body-too-large":
        return new BodyTooLargeError(u64(wire.val));
      case "connection":
        return new ConnectionError(wire.val);
      case "secret":
        return new SecretError(wire.val.tag, wire.val.val);
      default:
        return new ConnectionError(`unknown http error case \`${wire.tag}\``);
    }
  }
}

/** The destination is not in the manifest's allowlist (WIT `denied`). */
export class DeniedError extends HttpError {
  /** @param {string} destination The destination, as the host names it. */
  constructor(destination) {
    super(`request denied: ${destination}`, "denied");
    /** @type {string} */
    this.destination = destination;
  }

  /** @returns {{ tag: "denied", val: string }} */
  toWire() {
    return { tag: "denied", val: this.destination };
  }
}

/** The request is malformed: bad URL, method or header (WIT `invalid-request`). */
export class InvalidRequestError extends HttpError {
  /** @param {string} reason What is wrong. */
  constructor(reason) {
    super(`invalid request: ${reason}`, "invalid-request");
    /** @type {string} */
    this.reason = reason;
  }

  /** @returns {{ tag: "invalid-request", val: string }} */
  toWire() {
    return { tag: "invalid-request", val: this.reason };
  }
}

/** The only attempt took longer than its timeout (WIT `timeout`). */
export class TimeoutError extends HttpError {
  /** @param {number} ms The timeout, in milliseconds. */
  constructor(ms) {
    super(`request timed out after ${ms} ms`, "timeout");
    /** @type {number} */
    this.ms = ms;
  }

  /** @returns {{ tag: "timeout", val: number }} */
  toWire() {
    return { tag: "timeout", val: this.ms };
  }
}

/** The rate limit would delay the request for longer than allowed (WIT `rate-limited`). */
export class RateLimitedError extends HttpError {
  /** @param {number} ms The wait, in milliseconds. */
  constructor(ms) {
    super(`rate limited: the next slot is ${ms} ms away`, "rate-limited");
    /** @type {number} */
    this.ms = ms;
  }

  /** @returns {{ tag: "rate-limited", val: number }} */
  toWire() {
    return { tag: "rate-limited", val: this.ms };
  }
}

/** Every allowed attempt failed with a retryable status or error (WIT `retries-exhausted`). */
export class RetriesExhaustedError extends HttpError {
  /**
   * @param {number} attempts Attempts made.
   * @param {number | undefined} lastStatus The last response's status, when the last attempt got one.
   * @param {string} lastFailure The last failure, in one line.
   */
  constructor(attempts, lastStatus, lastFailure) {
    const status = lastStatus == null ? "" : ` (last status ${lastStatus})`;
    super(`gave up after ${attempts} attempts${status}: ${lastFailure}`, "retries-exhausted");
    /** @type {number} */
    this.attempts = attempts;
    /** @type {number | undefined} */
    this.lastStatus = lastStatus ?? undefined;
    /** @type {string} */
    this.lastFailure = lastFailure;
  }

  /** @returns {{ tag: "retries-exhausted", val: { attempts: number, lastStatus?: number, message: string } }} */
  toWire() {
    return {
      tag: "retries-exhausted",
      val: { attempts: this.attempts, lastStatus: this.lastStatus, message: this.lastFailure },
    };
  }
}

/** The response body exceeded the host's limit (WIT `body-too-large`). */
export class BodyTooLargeError extends HttpError {
  /** @param {number} limit The limit, in bytes. */
  constructor(limit) {
    super(`response body exceeds the host's limit of ${limit} bytes`, "body-too-large");
    /** @type {number} */
    this.limit = limit;
  }

  /** @returns {{ tag: "body-too-large", val: number }} */
  toWire() {
    return { tag: "body-too-large", val: this.limit };
  }
}

/** The connection failed (DNS, refused, TLS, reset) on the only attempt made (WIT `connection`). */
export class ConnectionError extends HttpError {
  /** @param {string} reason What failed. */
  constructor(reason) {
    super(`connection failed: ${reason}`, "connection");
    /** @type {string} */
    this.reason = reason;
  }

  /** @returns {{ tag: "connection", val: string }} */
  toWire() {
    return { tag: "connection", val: this.reason };
  }
}

/** Describes a WIT `secrets.error` case the way the Rust SDK does. */
function describeSecretError(kind, detail) {
  switch (kind) {
    case "unknown":
      return `no secret is declared as \`${detail}\``;
    case "not-bound":
      return `secret not bound to this destination: ${detail}`;
    case "invalid-placement":
      return `invalid secret placement: ${detail}`;
    case "unavailable":
      return `secret unavailable: ${detail}`;
    default:
      return `${kind}: ${detail}`;
  }
}

/** A secret could not be attached (WIT `secret`, carrying a `secrets.error`). */
export class SecretError extends HttpError {
  /**
   * @param {"unknown" | "not-bound" | "invalid-placement" | "unavailable"} kind The `secrets.error` case.
   * @param {string} detail Its text (a secret name for `unknown`); never a secret's value.
   */
  constructor(kind, detail) {
    super(`secret not attached: ${describeSecretError(kind, detail)}`, "secret");
    /** The `secrets.error` case. @type {string} */
    this.kind = kind;
    /** @type {string} */
    this.detail = detail;
  }

  /** @returns {{ tag: "secret", val: { tag: string, val: string } }} */
  toWire() {
    return { tag: "secret", val: { tag: this.kind, val: this.detail } };
  }
}

/** Why a record was refused (the WIT `output.error`). Ends a run with `failed`. */
export class OutputError extends Error {
  /**
   * @param {"invalid-json" | "too-large"} tag The WIT case.
   * @param {string | number} val Its payload: the reason, or the limit in bytes.
   * @param {number} [index] For {@link emitAll}: the index of the refused record.
   */
  constructor(tag, val, index) {
    super(
      tag === "too-large"
        ? `record exceeds the host's limit of ${val} bytes`
        : `record is not valid JSON: ${val}`,
    );
    this.name = "OutputError";
    /** @type {string} */
    this.tag = tag;
    /** @type {string | number} */
    this.val = val;
    /** The refused record's index, for {@link emitAll}. @type {number | undefined} */
    this.index = index;
  }
}

/** Why state could not be read or written (the WIT `state.error`). Ends a run with `failed`. */
export class StateError extends Error {
  /**
   * @param {"too-large" | "storage"} tag The WIT case.
   * @param {string | number} val Its payload: the limit in bytes, or what failed.
   */
  constructor(tag, val) {
    super(
      tag === "too-large"
        ? `state value exceeds the host's limit of ${val} bytes`
        : `state storage failed: ${val}`,
    );
    this.name = "StateError";
    /** @type {string} */
    this.tag = tag;
    /** @type {string | number} */
    this.val = val;
  }
}

/** A state value is not JSON, or a value to store cannot be serialized. Ends a run with `failed`. */
export class StateJsonError extends Error {
  /** @param {string} reason What is wrong. */
  constructor(reason) {
    super(`state value is not the expected JSON: ${reason}`);
    this.name = "StateJsonError";
  }
}

/**
 * Why a run failed (the WIT `run-error`): throw a subclass from `run`. Anything else thrown from
 * `run` is mapped too: an {@link HttpError} to the `http` case, every other error to `failed`.
 */
export class RunError extends Error {
  /**
   * @param {string} message The one-line description.
   * @param {"unknown-operation" | "invalid-input" | "failed"} tag The WIT case.
   * @param {string} val Its payload.
   */
  constructor(message, tag, val) {
    super(message);
    this.name = new.target.name;
    /** @type {string} */
    this.tag = tag;
    /** @type {string} */
    this.val = val;
  }

  /**
   * The error as the WIT `run-error` variant.
   * @returns {{ tag: string, val: any }}
   */
  toWire() {
    return { tag: this.tag, val: this.val };
  }
}

/** The operation name is not one the plugin offers (WIT `unknown-operation`). */
export class UnknownOperationError extends RunError {
  /** @param {string} operation The operation asked for. */
  constructor(operation) {
    super(`unknown operation \`${operation}\``, "unknown-operation", operation);
  }
}

/** The input is malformed or misses a field; the text says which (WIT `invalid-input`). */
export class InvalidInputError extends RunError {
  /** @param {string} message What is wrong with the input. */
  constructor(message) {
    super(message, "invalid-input", message);
  }
}

/** Any other failure, described in one line (WIT `failed`). */
export class FailedError extends RunError {
  /** @param {string} message The failure. */
  constructor(message) {
    super(message, "failed", message);
  }
}

/**
 * Why a walk over pages stopped early (besides a failed request, which throws its
 * {@link HttpError}). Uncaught in `run`, it ends the run with `failed`.
 */
export class PageError extends Error {
  /** @param {string} message The one-line description. */
  constructor(message) {
    super(message);
    this.name = new.target.name;
  }
}

/** A page came back with a status outside 2xx; the response is kept for inspection. */
export class UnexpectedStatusError extends PageError {
  /** @param {Response} response The page's response. */
  constructor(response) {
    super(`unexpected status ${response.status} from ${response.url}`);
    /** @type {Response} */
    this.response = response;
  }
}

/** The next URL or cursor was already fetched: following it would loop. */
export class LoopDetectedError extends PageError {
  /** @param {string} next The repeated (normalized) URL or cursor. */
  constructor(next) {
    super(`pagination loop: \`${next}\` was already fetched`);
    /** @type {string} */
    this.next = next;
  }
}

/** The listing has more pages than the limit allows. */
export class TooManyPagesError extends PageError {
  /** @param {number} max The page limit. */
  constructor(max) {
    super(`more than ${max} pages: stopped (raise the page limit if that is expected)`);
    /** @type {number} */
    this.max = max;
  }
}

/**
 * Maps anything `run` threw to the WIT `run-error` variant: a {@link RunError} to its case, an
 * {@link HttpError} to `http`, any other error to `failed` with its message (prefixed with its
 * class when it is not an SDK error, e.g. `TypeError: x is undefined`).
 * @param {unknown} error
 * @returns {{ tag: string, val: any }}
 */
export function toRunError(error) {
  if (error instanceof RunError) return error.toWire();
  if (error instanceof HttpError) return { tag: "http", val: error.toWire() };
  if (
    error instanceof PageError ||
    error instanceof OutputError ||
    error instanceof StateError ||
    error instanceof StateJsonError
  ) {
    return { tag: "failed", val: error.message };
  }
  if (error instanceof Error) {
    const name = error.name && error.name !== "Error" ? `${error.name}: ` : "";
    return { tag: "failed", val: `${name}${error.message}` };
  }
  return { tag: "failed", val: String(error) };
}

// ---------------------------------------------------------------------------------------------
// Plugin glue

/**
 * Turns a plugin into the component's exports, `describe` and `run`; the JavaScript form of the
 * Rust `export!` macro. Use it once, in the entry module:
 *
 * ```js
 * export const { describe, run } = exportPlugin(MyPlugin);
 * ```
 *
 * `plugin` is an object (or a class with static methods, or a class whose instances have the
 * methods) with:
 * - `describe()` returning `{ name, version, operations: [{ name, summary }] }`; it must not
 *   make requests;
 * - `run(operation, input)`, `input` being the caller's JSON already parsed (`{}` when they gave
 *   none), returning (or resolving to) `{ pages, message? }` (or nothing, for `{ pages: 0 }`), or
 *   throwing: see {@link toRunError}.
 *
 * @param {object | Function} plugin
 * @returns {{ describe: () => object, run: (operation: string, input: string) => Promise<object> }}
 */
export function exportPlugin(plugin) {
  const impl =
    typeof plugin === "function" && typeof plugin.describe !== "function" ? new plugin() : plugin;
  if (typeof impl?.describe !== "function" || typeof impl?.run !== "function") {
    throw new TypeError("exportPlugin: the plugin needs `describe()` and `run(operation, input)` methods");
  }
  return {
    describe() {
      const info = impl.describe();
      return {
        name: String(info.name),
        version: String(info.version),
        operations: (info.operations ?? []).map((op) => ({
          name: String(op.name),
          summary: String(op.summary ?? ""),
        })),
      };
    },
    async run(operation, input) {
      let parsed;
      try {
        parsed = parseJson(input, { numberForms: true });
      } catch (error) {
        return err({ tag: "invalid-input", val: `input is not valid JSON: ${error.message}` });
      }
      let summary;
      try {
        summary = await impl.run(operation, parsed);
      } catch (error) {
        if (error instanceof Error && !(error instanceof RunError) && !(error instanceof HttpError)) {
          debug("run failed", { error: String(error), stack: String(error.stack ?? "") });
        }
        return err(toRunError(error));
      }
      summary ??= {};
      const pages = summary.pages ?? 0;
      if (!Number.isInteger(pages) || pages < 0 || pages > 0xffffffff) {
        return err({ tag: "failed", val: `run returned an invalid page count: ${pages}` });
      }
      const message = summary.message == null ? undefined : String(summary.message);
      return { tag: "ok", val: { pages, message } };
    },
  };
}

function err(val) {
  return { tag: "err", val };
}

// ---------------------------------------------------------------------------------------------
// JSON: parsing that keeps what JSON.parse loses, and serde-like shape checks

/**
 * Per object or array parsed by {@link parseJson} with `numberForms`: the members whose number
 * `JSON.parse` cannot keep, with how they were written.
 */
const numberForms = new WeakMap();

/** The form of the last parsed document that was a number itself (its holder is JSON.parse's). */
let rootNumber;

/** Whether serde_json reads this number token as a float: a fraction, an exponent, `-0`, or an integer beyond 64 bits. */
function isFloatForm(source) {
  if (/[.eE]/.test(source) || source === "-0") return true;
  const integer = BigInt(source);
  return integer > 18446744073709551615n || integer < -9223372036854775808n;
}

/**
 * Parses JSON text as `JSON.parse` does. With `{ numberForms: true }` it also notes how each
 * number was written where `JSON.parse` loses it: as a float (`100.0`, `1e2`, `-0`, or an integer
 * beyond 64 bits, which serde_json reads as a float) or as an integer beyond 2^53. With that,
 * {@link checkJson} refuses `100.0` where an integer is expected and quotes big integers exactly,
 * as serde does, and {@link exactNumber} writes them back digit for digit. Noting costs a
 * reviver call per value (several times `JSON.parse`'s own time). The run glue parses a run's
 * input this way.
 * @param {string} text
 * @param {{ numberForms?: boolean }} [options]
 * @returns {any}
 * @throws {SyntaxError} when `text` is not JSON.
 */
export function parseJson(text, options = {}) {
  if (!options.numberForms) return JSON.parse(text);
  rootNumber = undefined;
  return JSON.parse(text, function note(key, value, context) {
    const source = context?.source;
    if (typeof value === "number" && typeof source === "string") {
      const float = isFloatForm(source);
      if (float || !Number.isSafeInteger(value)) {
        let forms = numberForms.get(this);
        if (!forms) numberForms.set(this, (forms = new Map()));
        forms.set(key, { float, source });
        if (key === "") rootNumber = { value, form: { float, source } };
      }
    }
    return value;
  });
}

/**
 * How the number `holder[key]` was written, when {@link parseJson} noted it (a float form, or an
 * integer beyond 2^53); `undefined` otherwise.
 * @param {object} holder The parsed object or array holding the number.
 * @param {string | number} key
 * @returns {{ float: boolean, source: string } | undefined}
 */
export function numberForm(holder, key) {
  return numberForms.get(holder)?.get(String(key));
}

/**
 * The number `holder[key]` ready for `JSON.stringify` with its exact digits: `JSON.rawJSON` of its
 * source when it is an integer beyond 2^53 that {@link parseJson} noted, else the value itself.
 * @param {object} holder
 * @param {string | number} key
 * @returns {any}
 */
export function exactNumber(holder, key) {
  const form = numberForm(holder, key);
  return form && !form.float && typeof JSON.rawJSON === "function" ? JSON.rawJSON(form.source) : holder[key];
}

/**
 * An f64 the way serde_json quotes one in its messages (the `zmij` crate's format): shortest
 * round-trip digits, fixed notation with at least one decimal when the decimal exponent is in
 * -5..=15 (`100.0`, `0.00001`), else exponent notation (`1e-7`, `1.5e+300`).
 */
function serdeFloat(value) {
  const sign = value < 0 || Object.is(value, -0) ? "-" : "";
  const [mantissa, power] = Math.abs(value).toExponential().split("e");
  const exp = Number(power);
  if (exp < -5 || exp > 15) return `${sign}${mantissa}e${exp < 0 ? "-" : "+"}${Math.abs(exp)}`;
  const digits = mantissa.replace(".", "");
  if (digits.length - 1 <= exp) return `${sign}${digits}${"0".repeat(exp - digits.length + 1)}.0`;
  if (exp >= 0) return `${sign}${digits.slice(0, exp + 1)}.${digits.slice(exp + 1)}`;
  return `${sign}0.${"0".repeat(-exp - 1)}${digits}`;
}

/** What serde calls an unexpected value, for messages like serde_json's. */
function unexpected(value, form) {
  if (value === null || value === undefined) return "null";
  switch (typeof value) {
    case "boolean":
      return `boolean \`${value}\``;
    case "number":
      return Number.isInteger(value) && !form?.float
        ? `integer \`${form?.source ?? value}\``
        : `floating point \`${serdeFloat(value)}\``;
    case "string":
      return `string ${JSON.stringify(value)}`;
    default:
      return Array.isArray(value) ? "sequence" : "map";
  }
}

/** A value that does not have the shape a {@link checkJson} spec asks for; the message is serde's. */
export class JsonShapeError extends TypeError {
  /** @param {string} message */
  constructor(message) {
    super(message);
    this.name = "JsonShapeError";
  }
}

const SCALARS = { string: "a string", boolean: "a boolean", number: "f64", any: "any value" };
const INTEGERS = {
  u32: [0n, 0xffffffffn],
  u64: [0n, 18446744073709551615n],
  i64: [-9223372036854775808n, 9223372036854775807n],
};

function normalizeSpec(spec) {
  const full = typeof spec === "string" ? { type: spec } : spec;
  if (!(full.type in SCALARS) && !(full.type in INTEGERS) && full.type !== "object" && full.type !== "array") {
    throw new TypeError(`unknown JSON type \`${full.type}\``);
  }
  return full;
}

function expectedOf(spec) {
  if (spec.type === "object") return spec.fields ? `struct ${spec.name ?? "Input"}` : "a map";
  if (spec.type === "array") return "a sequence";
  return SCALARS[spec.type] ?? spec.type;
}

function checkAt(value, spec, form, order) {
  const wrongType = () => new JsonShapeError(`invalid type: ${unexpected(value, form)}, expected ${expectedOf(spec)}`);
  switch (spec.type) {
    case "any":
      return value;
    case "string":
    case "boolean":
      if (typeof value !== spec.type) throw wrongType();
      return value;
    case "number":
      if (typeof value !== "number") throw wrongType();
      return value;
    case "array":
      if (!Array.isArray(value)) throw wrongType();
      if (!spec.items) return value;
      return value.map((item, index) => checkMember(value, index, normalizeSpec(spec.items), order));
    case "object":
      if (spec.fields && Array.isArray(value)) return checkPositional(value, spec, order);
      if (value === null || typeof value !== "object" || Array.isArray(value)) throw wrongType();
      return spec.fields ? checkStruct(value, spec, order) : value;
    default: {
      // An integer type.
      if (typeof value !== "number" || !Number.isInteger(value) || form?.float) throw wrongType();
      const [min, max] = INTEGERS[spec.type];
      if (!form && !Number.isSafeInteger(value)) {
        throw new JsonShapeError(
          `integer \`${value}\` is beyond 2^53 and cannot be held exactly (parse with numberForms to keep it)`,
        );
      }
      const integer = BigInt(form ? form.source : value);
      if (integer < min || integer > max) {
        throw new JsonShapeError(`invalid value: ${unexpected(value, form)}, expected ${spec.type}`);
      }
      return value;
    }
  }
}

/** Checks `holder[key]` against `spec` (null is `null` for an optional one). */
function checkMember(holder, key, spec, order) {
  const value = holder[key];
  if (value === null && spec.optional) return null;
  return checkAt(value, spec, numberForm(holder, key), order);
}

function defaultOf(spec) {
  return typeof spec.default === "function" ? spec.default() : spec.default;
}

function checkStruct(object, spec, order) {
  const specs = Object.entries(spec.fields).map(([name, field]) => [name, normalizeSpec(field)]);
  const known = new Map(specs);
  const result = {};
  const keys = Object.keys(object);
  for (const key of order === "sorted" ? keys.sort() : keys) {
    const field = known.get(key);
    if (!field) {
      if (spec.denyUnknownFields) {
        const names = specs.map(([name]) => `\`${name}\``);
        const expected =
          names.length === 0
            ? "there are no fields"
            : names.length === 1
              ? `expected ${names[0]}`
              : names.length === 2
                ? `expected ${names[0]} or ${names[1]}`
                : `expected one of ${names.join(", ")}`;
        throw new JsonShapeError(`unknown field \`${key}\`, ${expected}`);
      }
      continue;
    }
    result[key] = checkMember(object, key, field, order);
  }
  for (const [name, field] of specs) {
    if (Object.hasOwn(result, name)) continue;
    if ("default" in field) result[name] = defaultOf(field);
    else if (field.optional) result[name] = null;
    else throw new JsonShapeError(`missing field \`${name}\``);
  }
  return result;
}

/** A struct given as an array, fields in order, as serde accepts it. */
function checkPositional(array, spec, order) {
  const specs = Object.entries(spec.fields).map(([name, field]) => [name, normalizeSpec(field)]);
  const result = {};
  specs.forEach(([name, field], index) => {
    if (index < array.length) {
      result[name] = checkMember(array, index, field, order);
    } else if ("default" in field) {
      result[name] = defaultOf(field);
    } else {
      throw new JsonShapeError(`invalid length ${index}, expected ${expectedOf(spec)} with ${specs.length} elements`);
    }
  });
  if (array.length > specs.length) {
    throw new JsonShapeError(`invalid length ${array.length}, expected fewer elements in array`);
  }
  return result;
}

/**
 * Checks parsed JSON against a spec the way serde's derived `Deserialize` checks a struct, with
 * serde_json's messages (`missing field \`owner\``, ``invalid type: string "x", expected u32``),
 * and returns it checked: a struct as a new object holding its fields (defaults filled in),
 * an array as a new array, anything else as it was.
 *
 * A spec is a type name or `{ type, optional, default, fields, name, denyUnknownFields, items }`:
 * - types: `"string"`, `"boolean"`, `"number"` (f64), `"u32"`, `"u64"`, `"i64"`, `"any"`,
 *   `"array"` (with `items`, a spec for each element) and `"object"` (with `fields`, a struct:
 *   `{ name: spec }`, named `name` in messages; `denyUnknownFields` refuses others);
 * - `optional`: a missing or `null` field is `null` (Rust's `Option`);
 * - `default`: a missing field takes this value (or what this function returns).
 *
 * Integers must be written as integers (`100.0` is not a u32) when the document was parsed with
 * {@link parseJson}'s `numberForms`; without it, that distinction is lost.
 *
 * @param {any} value
 * @param {string | object} spec
 * @param {{ order?: "document" | "sorted" }} [options] The order struct fields are checked in,
 *   which decides which error comes first: `"document"` (serde reading text; the default) or
 *   `"sorted"` (serde reading a `serde_json::Value`, as the Rust SDK's `parse_input` does).
 * @returns {any}
 * @throws {JsonShapeError}
 */
export function checkJson(value, spec, options = {}) {
  const form = rootNumber && Object.is(rootNumber.value, value) ? rootNumber.form : undefined;
  return checkAt(value, normalizeSpec(spec), form, options.order ?? "document");
}

/**
 * Checks a run's `input` against `fields` and returns it with defaults filled in: the Rust SDK's
 * `parse_input`, with serde's messages (``invalid input: missing field `owner` ``).
 *
 * ```js
 * const { owner, per_page } = parseInput(input, { owner: "string", per_page: { type: "u32", default: 100 } });
 * ```
 * @param {unknown} input The run's input, as `run` received it.
 * @param {Record<string, string | object>} fields The struct's fields; see {@link checkJson}.
 * @param {{ name?: string, denyUnknownFields?: boolean }} [options] `name` names the struct in
 *   messages (`expected struct IssuesInput`); `denyUnknownFields` refuses fields not listed.
 * @returns {Record<string, any>}
 * @throws {InvalidInputError}
 */
export function parseInput(input, fields, options = {}) {
  const spec = { type: "object", fields, name: options.name, denyUnknownFields: options.denyUnknownFields };
  try {
    return checkJson(input, spec, { order: "sorted" });
  } catch (error) {
    if (error instanceof JsonShapeError) throw new InvalidInputError(`invalid input: ${error.message}`);
    throw error;
  }
}

// ---------------------------------------------------------------------------------------------
// secrets

/**
 * Attaches the secret `name` as `Authorization: Bearer <value>`.
 * @param {string} name The secret's name in the manifest.
 * @returns {{ name: string, placement: { tag: "bearer" } }}
 */
function bearerSecret(name) {
  return { name, placement: { tag: "bearer" } };
}

/**
 * Sealed secrets: name a secret and where it goes; the host attaches its value to the request.
 * The value never enters the plugin. Attach one with {@link RequestBuilder#secret} (or
 * {@link RequestBuilder#bearer}).
 */
export const secrets = Object.freeze({
  /**
   * True when the secret `name` is granted and its source gave a value when the run started.
   * @param {string} name
   * @returns {boolean}
   */
  available(name) {
    return wireAvailable(name);
  },
  bearer: bearerSecret,
  /**
   * Attaches the secret `name` as the password of `Authorization: Basic` for `username`.
   * @param {string} name
   * @param {string} username
   */
  basic(name, username) {
    return { name, placement: { tag: "basic", val: username } };
  },
  /**
   * Attaches the secret `name` as the value of the header `headerName`.
   * @param {string} name
   * @param {string} headerName
   */
  header(name, headerName) {
    return { name, placement: { tag: "header", val: headerName } };
  },
  /**
   * Attaches the secret `name` as the value of the query parameter `param`.
   * @param {string} name
   * @param {string} param
   */
  query(name, param) {
    return { name, placement: { tag: "query", val: param } };
  },
});

// ---------------------------------------------------------------------------------------------
// log

/** @param {Record<string, unknown> | Array<[string, unknown]> | undefined} fields */
function fieldPairs(fields) {
  if (fields == null) return [];
  const entries = Array.isArray(fields) ? fields : Object.entries(fields);
  return entries.map(([key, value]) => [String(key), typeof value === "string" ? value : String(value)]);
}

/**
 * Logs `message` at `level` with structured `fields`.
 * @param {"trace" | "debug" | "info" | "warn" | "error"} level
 * @param {string} message
 * @param {Record<string, unknown> | Array<[string, unknown]>} [fields] Key/value pairs; values
 *   are converted with `String`.
 */
function logAt(level, message, fields) {
  wireLog(level, String(message), fieldPairs(fields));
}

function debug(message, fields) {
  try {
    logAt("debug", message, fields);
  } catch {
    // Logging must never turn a failure into a trap.
  }
}

/**
 * Structured, leveled logs, emitted by the host as `tracing` events tagged with the plugin:
 * `log.info("fetched page", { page: 2, items: 100 })`.
 */
export const log = Object.freeze({
  log: logAt,
  /** Logs very detailed diagnostics. @param {string} message @param {object} [fields] */
  trace: (message, fields) => logAt("trace", message, fields),
  /** Logs diagnostics for developers. @param {string} message @param {object} [fields] */
  debug: (message, fields) => logAt("debug", message, fields),
  /** Logs normal progress. @param {string} message @param {object} [fields] */
  info: (message, fields) => logAt("info", message, fields),
  /** Logs something unexpected that the plugin handled. @param {string} message @param {object} [fields] */
  warn: (message, fields) => logAt("warn", message, fields),
  /** Logs a failure. @param {string} message @param {object} [fields] */
  error: (message, fields) => logAt("error", message, fields),
});

// ---------------------------------------------------------------------------------------------
// config

/**
 * Configuration values: the manifest's `[config]` defaults overridden by the run's `--config`.
 */
export const config = Object.freeze({
  /**
   * The value of `key`, if set.
   * @param {string} key
   * @returns {string | undefined}
   */
  get(key) {
    return wireConfigGet(key) ?? undefined;
  },
  /**
   * The value of `key`.
   * @param {string} key
   * @returns {string}
   * @throws {InvalidInputError} naming `key` when it is not set.
   */
  require(key) {
    const value = wireConfigGet(key);
    if (value == null) throw new InvalidInputError(`config value \`${key}\` is required but not set`);
    return value;
  },
  /**
   * Every (key, value) pair, sorted by key.
   * @returns {Array<[string, string]>}
   */
  all() {
    return wireConfigGetAll();
  },
});

// ---------------------------------------------------------------------------------------------
// state

/**
 * Checkpoint state for resumable runs, scoped to the tenant and the plugin.
 */
export const state = Object.freeze({
  /**
   * The value stored under `key`, if any.
   * @param {string} key
   * @returns {string | undefined}
   * @throws {StateError}
   */
  get(key) {
    try {
      return wireStateGet(key) ?? undefined;
    } catch (thrown) {
      const wire = payloadOf(thrown);
      throw new StateError(wire.tag, u64(wire.val));
    }
  },
  /**
   * Stores `value` under `key`, replacing any earlier value.
   * @param {string} key
   * @param {string} value
   * @throws {StateError}
   */
  put(key, value) {
    try {
      wireStatePut(key, value);
    } catch (thrown) {
      const wire = payloadOf(thrown);
      throw new StateError(wire.tag, u64(wire.val));
    }
  },
  /**
   * The value stored under `key` parsed as JSON, if any.
   * @param {string} key
   * @returns {any}
   * @throws {StateError | StateJsonError}
   */
  getJson(key) {
    const text = state.get(key);
    if (text === undefined) return undefined;
    try {
      return JSON.parse(text);
    } catch (error) {
      throw new StateJsonError(error.message);
    }
  },
  /**
   * Stores `value` as JSON under `key`, replacing any earlier value.
   * @param {string} key
   * @param {any} value
   * @throws {StateError | StateJsonError}
   */
  putJson(key, value) {
    let text;
    try {
      text = JSON.stringify(value);
    } catch (error) {
      throw new StateJsonError(error.message);
    }
    if (text === undefined) throw new StateJsonError("the value has no JSON form");
    state.put(key, text);
  },
});

// ---------------------------------------------------------------------------------------------
// ratelimit

/** How long {@link ratelimit}`.wait` waits at most when not told: one minute, in milliseconds. */
const DEFAULT_MAX_WAIT_MS = 60_000;

/** A secret's name for the wire: `option<string>`. */
function secretName(secret) {
  return secret == null ? undefined : String(secret);
}

/**
 * What a bucket admits now (the WIT `ratelimit.bucket-state`).
 * @typedef {object} BucketState
 * @property {number | undefined} remaining Requests it admits at once now, by its tightest
 *   declared limit; `undefined` when the manifest and the operator declare no limit for it.
 * @property {number} waitMs Milliseconds until it admits the next request: its declared limits
 *   and any pause the API announced (`Retry-After`, `RateLimit`, `X-RateLimit-*`); 0 when it
 *   admits one now.
 */

/**
 * Rate-limit buckets as the host sees them: how many requests a bucket admits now, and waiting
 * for capacity before sending a batch instead of sending into a limit. A bucket is a host such
 * as `api.github.com`, or a bucket a request names ({@link RequestBuilder#bucket}); quotas are
 * counted per credential, so name the secret the requests will carry:
 *
 * ```js
 * const { remaining } = ratelimit.state("api.github.com", "github_token");
 * if (remaining !== undefined && remaining < 10) ratelimit.wait("api.github.com", "github_token", 60_000);
 * ```
 *
 * The host still applies every limit to each request; these calls only let a plugin plan.
 */
export const ratelimit = Object.freeze({
  /**
   * The state of `bucket` for requests carrying the secret named `secret`, if any.
   * @param {string} bucket A host such as `api.github.com`, or a bucket a request names.
   * @param {string} [secret] The name of the secret the requests will carry.
   * @returns {BucketState}
   */
  state(bucket, secret) {
    const wire = wireBucketState(String(bucket), secretName(secret));
    return { remaining: wire.remaining ?? undefined, waitMs: u64(wire.waitMs) };
  },
  /**
   * Waits until `bucket` admits a request for the secret named `secret`, at most `maxMs`
   * milliseconds and never past the run's deadline. Waiting books nothing: the request itself
   * still takes its slot, and requests (from every run) take slots in the order they reach the
   * bucket, so capacity waited for may be taken by another request first.
   * @param {string} bucket A host such as `api.github.com`, or a bucket a request names.
   * @param {string} [secret] The name of the secret the requests will carry.
   * @param {number} [maxMs=60000] The longest wait allowed, in milliseconds (`Infinity`: no
   *   limit but the run's deadline).
   * @returns {number} The milliseconds waited.
   * @throws {RateLimitedError} when the wait needed is longer than `maxMs`; its `ms` is that
   *   wait, and nothing was waited. Uncaught in `run`, it ends the run with the `http` case.
   */
  wait(bucket, secret, maxMs = DEFAULT_MAX_WAIT_MS) {
    if (typeof maxMs !== "number" || Number.isNaN(maxMs) || maxMs < 0) {
      throw new TypeError(`maxMs must be a number of milliseconds, not ${maxMs}`);
    }
    const U64_MAX = 18446744073709551615n;
    const limit = Number.isFinite(maxMs) && maxMs < 2 ** 64 ? BigInt(Math.floor(maxMs)) : U64_MAX;
    try {
      return u64(wireBucketWait(String(bucket), secretName(secret), limit));
    } catch (thrown) {
      throw new RateLimitedError(u64(payloadOf(thrown)));
    }
  },
  DEFAULT_MAX_MS: DEFAULT_MAX_WAIT_MS,
});

// ---------------------------------------------------------------------------------------------
// output

/** Serializes a record, or throws the `invalid-json` OutputError. */
function recordJson(record, index) {
  let json;
  try {
    json = JSON.stringify(record);
  } catch (error) {
    throw new OutputError("invalid-json", error.message, index);
  }
  if (json === undefined) throw new OutputError("invalid-json", `${typeof record} has no JSON form`, index);
  return json;
}

/**
 * Emits `record`, serialized with `JSON.stringify` (key order kept), as one record.
 * @param {any} record An object, usually.
 * @throws {OutputError}
 */
export function emit(record) {
  emitJson(recordJson(record));
}

/**
 * Emits `json`, a JSON document the plugin already has as text (an API's object passed
 * through, say); the host writes it as given, key order and numbers kept.
 * @param {string} json
 * @throws {OutputError}
 */
export function emitJson(json) {
  try {
    wireEmit(json);
  } catch (thrown) {
    const wire = payloadOf(thrown);
    throw new OutputError(wire.tag, u64(wire.val));
  }
}

/** Most records the host takes in one call; {@link emitAll} splits longer arrays. */
const RECORDS_PER_CALL = 4096;

/**
 * Emits every record of `records`, serialized, in as few calls to the host as its limit allows
 * (one per 4096 records).
 * @param {any[]} records
 * @throws {OutputError} with `index`, the first record refused or not serializable; the records
 *   before it were emitted, none after it.
 */
export function emitAll(records) {
  const json = [];
  let unserializable;
  for (let index = 0; index < records.length; index += 1) {
    try {
      json.push(recordJson(records[index], index));
    } catch (error) {
      unserializable = error;
      break;
    }
  }
  for (let offset = 0; offset < json.length; offset += RECORDS_PER_CALL) {
    try {
      wireEmitMany(json.slice(offset, offset + RECORDS_PER_CALL));
    } catch (thrown) {
      const [index, wire] = payloadOf(thrown);
      throw new OutputError(wire.tag, u64(wire.val), offset + index);
    }
  }
  if (unserializable) throw unserializable;
}

/** The records a run produces. */
export const output = Object.freeze({ emit, emitJson, emitAll });

// ---------------------------------------------------------------------------------------------
// http

const METHODS = new Set(["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]);

/**
 * A method token as the WIT `method` variant; tokens are case-sensitive, so `"get"` is `other`.
 * @param {string | { tag: string, val?: string }} method
 */
function wireMethod(method) {
  if (typeof method !== "string") return method;
  return METHODS.has(method) ? { tag: method.toLowerCase() } : { tag: "other", val: method };
}

/** `application/x-www-form-urlencoded` byte serialization, as the Rust `url` crate does it. */
function formEncode(text) {
  let out = "";
  for (const byte of new TextEncoder().encode(text)) {
    if (
      (byte >= 0x30 && byte <= 0x39) ||
      (byte >= 0x41 && byte <= 0x5a) ||
      (byte >= 0x61 && byte <= 0x7a) ||
      byte === 0x2a ||
      byte === 0x2d ||
      byte === 0x2e ||
      byte === 0x5f
    ) {
      out += String.fromCharCode(byte);
    } else if (byte === 0x20) {
      out += "+";
    } else {
      out += `%${byte.toString(16).toUpperCase().padStart(2, "0")}`;
    }
  }
  return out;
}

function urlProblem(url) {
  return /^[A-Za-z][A-Za-z0-9+.-]*:/.test(url) ? "not a valid URL" : "relative URL without a base";
}

/**
 * A request being described; {@link RequestBuilder#send} hands it to the host. Builders are
 * immutable: every method returns a new builder, so one can be sent again or used as a template
 * (the paginators do both). Start one with {@link get}, {@link post}, ... or {@link request}.
 */
export class RequestBuilder {
  #method;
  #url;
  #query;
  #headers;
  #body;
  #secrets;
  #options;

  /**
   * @param {string | { tag: string, val?: string }} method A method token (`"GET"`) or WIT `method`.
   * @param {string} url An absolute `http` or `https` URL.
   */
  constructor(method, url) {
    this.#method = wireMethod(method);
    this.#url = String(url);
    this.#query = [];
    this.#headers = [];
    this.#body = undefined;
    this.#secrets = [];
    this.#options = {};
  }

  #with(change) {
    const next = new RequestBuilder(this.#method, this.#url);
    next.#query = [...this.#query];
    next.#headers = [...this.#headers];
    next.#body = this.#body;
    next.#secrets = [...this.#secrets];
    next.#options = { ...this.#options };
    change(next);
    return next;
  }

  /**
   * Appends the query parameter `name=value`, percent-encoded
   * (`application/x-www-form-urlencoded`) after any query the URL has.
   * @param {string} name
   * @param {string | number | boolean} value Converted with `String`.
   * @returns {RequestBuilder}
   */
  query(name, value) {
    return this.#with((next) => next.#query.push([String(name), String(value)]));
  }

  /**
   * Appends a header; a name may repeat, as in HTTP.
   * @param {string} name
   * @param {string | number} value Converted with `String`.
   * @returns {RequestBuilder}
   */
  header(name, value) {
    return this.#with((next) => next.#headers.push([String(name), String(value)]));
  }

  /**
   * Asks the host to attach the secret `secretName` as `Authorization: Bearer <value>`. The value
   * never enters the plugin.
   * @param {string} secretName The secret's name in the manifest, e.g. `"github_token"`.
   * @returns {RequestBuilder}
   */
  bearer(secretName) {
    return this.secret(bearerSecret(secretName));
  }

  /**
   * Asks the host to attach a secret as `attachment` says (see {@link secrets}).
   * @param {{ name: string, placement: { tag: string, val?: string } }} attachment
   * @returns {RequestBuilder}
   */
  secret(attachment) {
    return this.#with((next) => next.#secrets.push(attachment));
  }

  /**
   * Sets the timeout of each attempt, in milliseconds (whole milliseconds).
   * @param {number} ms
   * @returns {RequestBuilder}
   */
  timeout(ms) {
    if (typeof ms !== "number" || Number.isNaN(ms) || ms < 0) {
      throw new TypeError(`timeout must be a number of milliseconds, not ${ms}`);
    }
    const whole = Number.isFinite(ms) ? Math.floor(ms) : 18446744073709551615n;
    return this.#with((next) => (next.#options.timeoutMs = whole));
  }

  /**
   * Declares whether repeating this request is safe, overriding the method's default.
   * @param {boolean} idempotent
   * @returns {RequestBuilder}
   */
  idempotent(idempotent) {
    return this.#with((next) => (next.#options.idempotent = Boolean(idempotent)));
  }

  /**
   * Allows at most `maxRetries` retries after the first attempt (0 disables retries); the host
   * caps this at the manifest's `retry.max_retries`.
   * @param {number} maxRetries
   * @returns {RequestBuilder}
   */
  maxRetries(maxRetries) {
    return this.#with((next) => (next.#options.retry = { maxRetries }));
  }

  /**
   * Draws from the rate-limit bucket `bucket` instead of the destination host's.
   * @param {string} bucket
   * @returns {RequestBuilder}
   */
  bucket(bucket) {
    return this.#with((next) => (next.#options.bucket = String(bucket)));
  }

  /**
   * Sets the request body: bytes, or a string sent as UTF-8.
   * @param {Uint8Array | ArrayBuffer | string} body
   * @returns {RequestBuilder}
   */
  body(body) {
    const bytes =
      typeof body === "string"
        ? new TextEncoder().encode(body)
        : body instanceof ArrayBuffer
          ? new Uint8Array(body)
          : body;
    return this.#with((next) => (next.#body = bytes));
  }

  /**
   * Sets the body to `value` as JSON (`JSON.stringify`), and `content-type: application/json`
   * unless a content type is set; the Rust SDK's `json_body`.
   * @param {any} value
   * @returns {RequestBuilder}
   * @throws {TypeError} when `value` has no JSON form.
   */
  json(value) {
    const text = JSON.stringify(value);
    if (text === undefined) throw new TypeError(`${typeof value} has no JSON form`);
    const hasType = this.#headers.some(([name]) => asciiLower(name) === "content-type");
    const withBody = this.body(text);
    return hasType ? withBody : withBody.header("content-type", "application/json");
  }

  /**
   * Replaces the URL with `url`, used as given: query pairs added so far are dropped. Everything
   * else (method, headers, body, secrets, options) is kept, which is what following a
   * pagination link needs.
   * @param {string} url
   * @returns {RequestBuilder}
   */
  withUrl(url) {
    return this.#with((next) => {
      next.#url = String(url);
      next.#query = [];
    });
  }

  /** The method, as the WIT `method` variant (`{ tag: "get" }`). */
  get method() {
    return this.#method;
  }

  /**
   * The URL with the query pairs encoded into it. A URL without added pairs is passed through
   * unchanged for the host to judge.
   * @returns {string}
   * @throws {InvalidRequestError} when query pairs were added to a URL that does not parse.
   */
  url() {
    if (this.#query.length === 0) return this.#url;
    let parsed;
    try {
      parsed = new URL(this.#url);
    } catch {
      throw new InvalidRequestError(`invalid URL \`${this.#url}\`: ${urlProblem(this.#url)}`);
    }
    const pairs = this.#query.map(([name, value]) => `${formEncode(name)}=${formEncode(value)}`).join("&");
    const existing = parsed.search.slice(1);
    parsed.search = existing ? `${existing}&${pairs}` : pairs;
    return parsed.href;
  }

  /**
   * The request as the host receives it (the WIT `request` record).
   * @returns {object}
   * @throws {InvalidRequestError} as {@link RequestBuilder#url} does.
   */
  toWire() {
    return {
      method: this.#method,
      url: this.url(),
      headers: this.#headers.map(([name, value]) => [name, value]),
      body: this.#body,
      secrets: [...this.#secrets],
      options: { ...this.#options },
    };
  }

  /**
   * Sends the request and waits for its response (4xx and 5xx included).
   * @returns {Response}
   * @throws {HttpError} the case saying why no response came back.
   */
  send() {
    const request = this.toWire();
    let response;
    try {
      response = wireSend(request);
    } catch (thrown) {
      throw HttpError.fromWire(payloadOf(thrown));
    }
    return new Response(request.url, response);
  }
}

/**
 * Starts a request with any `method` to `url`, an absolute `http` or `https` URL.
 * @param {string} method A method token, e.g. `"OPTIONS"` (case-sensitive).
 * @param {string} url
 * @returns {RequestBuilder}
 */
export function request(method, url) {
  return new RequestBuilder(method, url);
}

/** Starts a GET request to `url`. @param {string} url @returns {RequestBuilder} */
export function get(url) {
  return new RequestBuilder("GET", url);
}

/** Starts a POST request to `url`. @param {string} url @returns {RequestBuilder} */
export function post(url) {
  return new RequestBuilder("POST", url);
}

/** Starts a PUT request to `url`. @param {string} url @returns {RequestBuilder} */
export function put(url) {
  return new RequestBuilder("PUT", url);
}

/** Starts a PATCH request to `url`. @param {string} url @returns {RequestBuilder} */
export function patch(url) {
  return new RequestBuilder("PATCH", url);
}

/** Starts a DELETE request to `url` (`http.delete`). @param {string} url @returns {RequestBuilder} */
function del(url) {
  return new RequestBuilder("DELETE", url);
}

/**
 * A response, with the URL of the request that got it (for resolving relative links).
 */
export class Response {
  #url;
  #wire;

  /**
   * Wraps `wire`, the response to a request for `url`; useful to test mapping code.
   * @param {string} url
   * @param {{ status: number, headers: Array<[string, string]>, body: Uint8Array, attempts: number }} wire
   */
  constructor(url, wire) {
    this.#url = url;
    this.#wire = wire;
  }

  /** The status code. @type {number} */
  get status() {
    return this.#wire.status;
  }

  /** True for a 2xx status. @returns {boolean} */
  isSuccess() {
    return this.#wire.status >= 200 && this.#wire.status < 300;
  }

  /**
   * The first value of the header `name` (compared case-insensitively).
   * @param {string} name
   * @returns {string | undefined}
   */
  header(name) {
    return this.headerValues(name)[0];
  }

  /**
   * Every value of the header `name` in order (compared case-insensitively); join them with
   * `", "` to get the combined field value.
   * @param {string} name
   * @returns {string[]}
   */
  headerValues(name) {
    const wanted = asciiLower(name);
    return this.#wire.headers.filter(([n]) => asciiLower(n) === wanted).map(([, value]) => value);
  }

  /** All headers as [name, value] pairs, in order. @type {Array<[string, string]>} */
  get headers() {
    return this.#wire.headers;
  }

  /** The body. @type {Uint8Array} */
  get body() {
    return this.#wire.body;
  }

  /** The body as text, with invalid UTF-8 replaced by U+FFFD. @returns {string} */
  text() {
    return new TextDecoder().decode(this.#wire.body);
  }

  /**
   * The body parsed as JSON.
   * @returns {any}
   * @throws {SyntaxError} when the body is not JSON.
   */
  json() {
    return JSON.parse(this.text());
  }

  /** How many attempts the host made (1 when the first one succeeded). @type {number} */
  get attempts() {
    return this.#wire.attempts;
  }

  /** The URL of the request that got this response. @type {string} */
  get url() {
    return this.#url;
  }

  /**
   * The `rel="next"` target of the `Link` headers, resolved against {@link Response#url}; see
   * {@link nextLink} for the parsing rules.
   * @returns {string | undefined}
   */
  nextLink() {
    return nextLink(this.headerValues("link"), this.#url);
  }

  /** The response exactly as it crossed from the host. */
  toWire() {
    return this.#wire;
  }
}

/** Builds each request, keeping those whose URL fails as errors. */
function buildAll(requests) {
  return [...requests].map((builder) => {
    try {
      return { wire: builder.toWire() };
    } catch (error) {
      if (error instanceof HttpError) return { error };
      throw error;
    }
  });
}

/**
 * Sends several requests concurrently; results are in the order of `requests`, each a
 * {@link Response} or the {@link HttpError} of that request alone (a builder whose URL cannot
 * be built fails alone, with {@link InvalidRequestError}).
 * @param {Iterable<RequestBuilder>} requests
 * @returns {Array<Response | HttpError>}
 */
export function sendAll(requests) {
  const built = buildAll(requests);
  const sendable = built.filter((b) => b.wire).map((b) => b.wire);
  const results = wireSendBatch(sendable);
  if (results.length !== sendable.length) throw new Error("send-batch returned fewer results than requests");
  let next = 0;
  return built.map((b) => {
    if (b.error) return b.error;
    const result = results[next++];
    return result.tag === "ok" ? new Response(b.wire.url, result.val) : HttpError.fromWire(result.val);
  });
}

const disposeSymbol = Symbol.dispose ?? Symbol.for("dispose");

/**
 * Requests started together whose responses are taken as each completes, so a plugin works on
 * the first response while the others are still in flight. Iterating yields `[index, result]`
 * pairs, `index` being the request's position in the order given and `result` a
 * {@link Response} or an {@link HttpError}; every request yields once. The host holds at most
 * the manifest's `max_concurrency` requests at once.
 *
 * ```js
 * for (const [index, result] of Batch.start(pages)) {
 *   if (result instanceof HttpError) throw result;
 *   // map page `index` as soon as it arrives
 * }
 * ```
 */
export class Batch {
  #started;
  #indices = [];
  #urls = [];
  #failed = [];

  /**
   * Starts `requests` (at most 256).
   * @param {Iterable<RequestBuilder>} requests
   */
  constructor(requests) {
    const wires = [];
    buildAll(requests).forEach((b, index) => {
      if (b.error) {
        this.#failed.push([index, b.error]);
      } else {
        this.#indices.push(index);
        this.#urls.push(b.wire.url);
        wires.push(b.wire);
      }
    });
    this.#started = new WireBatch(wires);
  }

  /**
   * Starts `requests`; the same as `new Batch(requests)`.
   * @param {Iterable<RequestBuilder>} requests
   * @returns {Batch}
   */
  static start(requests) {
    return new Batch(requests);
  }

  /**
   * The next completed request, as an iterator result of `[index, Response | HttpError]`.
   * @returns {IteratorResult<[number, Response | HttpError]>}
   */
  next() {
    if (this.#failed.length > 0) return { done: false, value: this.#failed.shift() };
    if (!this.#started) return { done: true, value: undefined };
    const taken = this.#started.next();
    if (taken === undefined) {
      this.close();
      return { done: true, value: undefined };
    }
    const [position, result] = taken;
    const index = this.#indices[position] ?? position;
    const value =
      result.tag === "ok"
        ? new Response(this.#urls[position] ?? "", result.val)
        : HttpError.fromWire(result.val);
    return { done: false, value: [index, value] };
  }

  /** Releases the host's batch (done on its own once every result was taken). */
  close() {
    if (this.#started) {
      this.#started[disposeSymbol]?.();
      this.#started = undefined;
    }
  }

  /** Stops iterating early: releases the host's batch. */
  return() {
    this.close();
    return { done: true, value: undefined };
  }

  [Symbol.iterator]() {
    return this;
  }
}

/**
 * Outbound HTTP through the host's egress pipeline: a request builder and its response. The
 * host enforces the allowlist, attaches secrets, retries, rate-limits and times out; a builder
 * only describes the request and the narrowing of those policies it wants.
 */
export const http = Object.freeze({
  get,
  post,
  put,
  patch,
  delete: del,
  request,
  sendAll,
  Batch,
  RequestBuilder,
  Response,
});

// ---------------------------------------------------------------------------------------------
// paginate

/**
 * The default page limit: far above any real listing (10 000 pages of 100 items is a million
 * records), yet it ends a runaway walk the loop guard cannot see, such as a server that invents
 * a new next URL forever.
 */
export const DEFAULT_MAX_PAGES = 10_000;

/** Sends one page's request: the host, or a fake in tests. */
function hostSend(builder) {
  return builder.send();
}

/** The bookkeeping both paginators share: sending, counting and the loop guard. */
class Walk {
  constructor(send) {
    this.send = send ?? hostSend;
    /** Normalized URLs or cursors already fetched. */
    this.seen = new Set();
    this.pages = 0;
    this.maxPages = DEFAULT_MAX_PAGES;
    /** An error found while reading the last good page, thrown after it. */
    this.pending = undefined;
  }

  fetch(request) {
    if (this.pages >= this.maxPages) throw new TooManyPagesError(this.maxPages);
    const response = this.send(request);
    if (!response.isSuccess()) throw new UnexpectedStatusError(response);
    this.pages += 1;
    return response;
  }

  /** Records `key` as fetched; false (and a pending loop error) when it already was. */
  firstVisit(key) {
    if (!this.seen.has(key)) {
      this.seen.add(key);
      return true;
    }
    this.pending = new LoopDetectedError(key);
    return false;
  }

  takePending() {
    const pending = this.pending;
    this.pending = undefined;
    return pending;
  }
}

/**
 * The URL in the form the loop guard compares (WHATWG serialization, as the Rust `url` crate's),
 * so that `HTTPS://Host/a` and `https://host/a` count as one.
 */
function normalizeUrl(url) {
  try {
    return new URL(url).href;
  } catch {
    return url;
  }
}

/**
 * What the Link and cursor walks share: the loop guard and page count ({@link Walk}), the
 * iterator protocol, and the step that fetches the pending request. Each walk says only how to
 * find the next request (`follow`).
 */
class SequentialPages {
  #next;
  #walk;

  constructor(first, options = {}) {
    this.#walk = new Walk(options.send);
    this.#next = first;
  }

  /**
   * Sets the most pages to fetch before stopping with {@link TooManyPagesError}.
   * @param {number} maxPages
   * @returns {this}
   */
  maxPages(maxPages) {
    this.#walk.maxPages = maxPages;
    return this;
  }

  /** How many pages were fetched successfully so far. @type {number} */
  get pages() {
    return this.#walk.pages;
  }

  /**
   * Whether `key` (a next URL or cursor) is new to this walk; a repeat ends it with
   * {@link LoopDetectedError}.
   * @protected
   */
  visit(key) {
    return this.#walk.firstVisit(key);
  }

  /**
   * The next page.
   * @returns {IteratorResult<Response>}
   * @throws {HttpError | PageError}
   */
  next() {
    const pending = this.#walk.takePending();
    if (pending) throw pending;
    const request = this.#next;
    if (!request) return { done: true, value: undefined };
    this.#next = undefined;
    const response = this.#walk.fetch(request);
    this.#next = this.follow(request, response);
    return { done: false, value: response };
  }

  [Symbol.iterator]() {
    return this;
  }
}

/**
 * Pages of a listing paginated with `Link: <...>; rel="next"` headers (RFC 8288), as GitHub and
 * many REST APIs paginate. Iterating yields one {@link Response} per page; it throws, and then
 * stops, on the first problem: the {@link HttpError} of a failed request, or an
 * {@link UnexpectedStatusError} (non-2xx page), a {@link LoopDetectedError} (a next URL already
 * fetched; thrown after the page that linked to it) or a {@link TooManyPagesError}.
 *
 * Each next request is the first one with its URL replaced by the next link, used as given: the
 * headers, secrets and options carry over, but query pairs added with
 * {@link RequestBuilder#query} do not (the next link already holds them).
 *
 * ```js
 * const first = http.get("https://api.github.com/repos/octocat/hello-world/issues").query("per_page", 100);
 * for (const page of new LinkPages(first)) {
 *   for (const issue of page.json()) output.emit(issue);
 * }
 * ```
 */
export class LinkPages extends SequentialPages {
  /**
   * Starts a walk at `first`.
   * @param {RequestBuilder} first
   * @param {{ send?: (request: RequestBuilder) => Response }} [options] `send` replaces the host
   *   (for tests).
   */
  constructor(first, options = {}) {
    super(first, options);
    try {
      this.visit(normalizeUrl(first.url()));
    } catch {
      // The first request fails on its own when sent.
    }
  }

  /** @protected */
  follow(request, response) {
    const nextUrl = response.nextLink();
    if (nextUrl !== undefined && this.visit(normalizeUrl(nextUrl))) return request.withUrl(nextUrl);
    return undefined;
  }
}

/**
 * Pages of a listing paginated with a cursor read from each page (Stripe's `starting_after`,
 * Slack's `next_cursor`). Yields and throws as {@link LinkPages} does; the loop guard compares
 * cursors.
 *
 * `cursorOf(page)` reads the next cursor from a page (`undefined`, `null` or an empty string,
 * as Slack sends on the last page, ends the walk); `apply(first, cursor)` turns the *first*
 * request and a cursor into the next request, so parameters it adds never pile up.
 *
 * ```js
 * const pages = new CursorPages(
 *   http.get("https://slack.com/api/conversations.list").query("limit", 200),
 *   (page) => page.json().response_metadata?.next_cursor,
 *   (first, cursor) => first.query("cursor", cursor),
 * );
 * ```
 */
export class CursorPages extends SequentialPages {
  #first;
  #cursorOf;
  #apply;

  /**
   * Starts a walk at `first`.
   * @param {RequestBuilder} first
   * @param {(page: Response) => string | null | undefined} cursorOf
   * @param {(first: RequestBuilder, cursor: string) => RequestBuilder} apply
   * @param {{ send?: (request: RequestBuilder) => Response }} [options] `send` replaces the host
   *   (for tests).
   */
  constructor(first, cursorOf, apply, options = {}) {
    super(first, options);
    this.#first = first;
    this.#cursorOf = cursorOf;
    this.#apply = apply;
  }

  /** @protected */
  follow(_request, response) {
    const cursor = this.#cursorOf(response);
    if (cursor != null && cursor !== "" && this.visit(String(cursor))) return this.#apply(this.#first, String(cursor));
    return undefined;
  }
}

/**
 * Pages of a listing addressed by page number, when the last page is known (from a first page's
 * `Link: rel="last"`, or a total the API reports): fetched `width` at a time through a streaming
 * {@link Batch}, so several pages are in flight at once, and yielded in page order as
 * `[page, Response | HttpError]`.
 *
 * ```js
 * const pages = new NumberedPages(2, 10, (page) => http.get(url).query("page", page)).width(4);
 * for (const [page, result] of pages) { ... }
 * ```
 */
export class NumberedPages {
  #nextPage;
  #lastPage;
  #width = 8;
  #requestFor;
  #ready = [];

  /**
   * Pages `firstPage` to `lastPage` (inclusive), each request made by `requestFor(page)`; 8 in
   * flight at once.
   * @param {number} firstPage
   * @param {number} lastPage
   * @param {(page: number) => RequestBuilder} requestFor
   */
  constructor(firstPage, lastPage, requestFor) {
    this.#nextPage = firstPage;
    this.#lastPage = lastPage;
    this.#requestFor = requestFor;
  }

  /**
   * Sets how many pages are requested together (at least 1, at most 256). The host keeps at
   * most the manifest's `max_concurrency` of them in flight.
   * @param {number} width
   * @returns {this}
   */
  width(width) {
    this.#width = Math.min(256, Math.max(1, Math.floor(width)));
    return this;
  }

  /** @returns {IteratorResult<[number, Response | HttpError]>} */
  next() {
    if (this.#ready.length === 0 && this.#nextPage <= this.#lastPage) {
      const first = this.#nextPage;
      const last = Math.min(first + this.#width - 1, this.#lastPage);
      const requests = [];
      for (let page = first; page <= last; page += 1) requests.push(this.#requestFor(page));
      // Responses come back as they complete; pages go out in order.
      const window = new Array(requests.length);
      for (const [index, result] of new Batch(requests)) window[index] = result;
      window.forEach((result, index) => {
        if (result !== undefined) this.#ready.push([first + index, result]);
      });
      this.#nextPage = last + 1;
    }
    const value = this.#ready.shift();
    return value === undefined ? { done: true, value: undefined } : { done: false, value };
  }

  [Symbol.iterator]() {
    return this;
  }
}

/** Parses the link-values of a `Link` field value (RFC 8288), as the Rust SDK's `LinkValues`. */
class LinkValues {
  constructor(header) {
    this.header = header;
    this.at = 0;
  }

  peek() {
    return this.at < this.header.length ? this.header[this.at] : undefined;
  }

  skipWhitespace() {
    while (this.peek() === " " || this.peek() === "\t") this.at += 1;
  }

  /** Moves to the next character in `stops` outside a quoted string, or to the end. */
  skipUntil(stops) {
    let quoted = false;
    for (let c = this.peek(); c !== undefined; c = this.peek()) {
      if (c === "\\" && quoted) this.at += 1;
      else if (c === '"') quoted = !quoted;
      else if (!quoted && stops.includes(c)) return;
      this.at += 1;
    }
  }

  /** A parameter name: a token, up to `=`, `;`, `,` or whitespace. */
  name() {
    const start = this.at;
    for (let c = this.peek(); c !== undefined && !"=;, \t".includes(c); c = this.peek()) this.at += 1;
    return this.header.slice(start, this.at);
  }

  /** A parameter value after `=`: a quoted string (unescaped) or a token. */
  value() {
    if (this.peek() !== '"') return this.name();
    this.at += 1;
    let value = "";
    for (let c = this.peek(); c !== undefined; c = this.peek()) {
      this.at += 1;
      if (c === '"') break;
      if (c === "\\") {
        const escaped = this.peek();
        if (escaped !== undefined) {
          value += escaped;
          this.at += 1;
        }
      } else {
        value += c;
      }
    }
    return value;
  }

  /** The parameters after a target, up to the `,` ending the link-value; returns the first `rel`. */
  params() {
    let rel;
    for (;;) {
      this.skipWhitespace();
      const c = this.peek();
      if (c === undefined || c === ",") return rel;
      if (c === ";") {
        this.at += 1;
        this.skipWhitespace();
        const name = this.name();
        this.skipWhitespace();
        let value = "";
        if (this.peek() === "=") {
          this.at += 1;
          this.skipWhitespace();
          value = this.value();
        }
        if (rel === undefined && asciiLower(name) === "rel") rel = value;
      } else {
        // Junk between parameters: skip to the next one.
        this.skipUntil(";,");
      }
    }
  }

  /** The next link-value `{ target, rel }`, or undefined at the end. */
  nextValue() {
    for (;;) {
      while (this.peek() === "," || this.peek() === " " || this.peek() === "\t") this.at += 1;
      if (this.peek() === undefined) return undefined;
      if (this.peek() !== "<") {
        // Not a link-value: skip it whole.
        this.skipUntil(",");
        continue;
      }
      const end = this.header.indexOf(">", this.at + 1);
      if (end === -1) {
        this.at = this.header.length;
        return undefined;
      }
      const target = this.header.slice(this.at + 1, end).trim();
      this.at = end + 1;
      return { target, rel: this.params() };
    }
  }
}

/**
 * The target of the first link with relation type `next` in `Link` header values, resolved
 * against `base` (the URL of the request that got them).
 *
 * Follows RFC 8288: several header lines are one value joined with `", "`; a link-value is
 * `<URI-Reference>` followed by `;`-separated parameters whose values may be tokens or quoted
 * strings (which may hold `;` and `,`); `rel` holds space-separated relation types compared
 * case-insensitively; a link-value's first `rel` wins. Malformed link-values are skipped.
 *
 * ```js
 * nextLink(["</items?page=2>; rel=next"], "https://api.example.com/items"); // "https://api.example.com/items?page=2"
 * ```
 * @param {string[]} headerValues The `Link` header values, in order.
 * @param {string} base
 * @returns {string | undefined} undefined when no link is `next` or its target does not resolve
 *   to an absolute URL.
 */
export function nextLink(headerValues, base) {
  const values = new LinkValues(headerValues.join(", "));
  for (let link = values.nextValue(); link !== undefined; link = values.nextValue()) {
    const isNext =
      link.rel !== undefined && link.rel.split(/[ \t\n\f\r]+/).some((type) => asciiLower(type) === "next");
    if (!isNext) continue;
    let baseUrl;
    try {
      baseUrl = new URL(base);
    } catch {
      baseUrl = undefined;
    }
    try {
      return (baseUrl ? new URL(link.target, baseUrl) : new URL(link.target)).href;
    } catch {
      return undefined;
    }
  }
  return undefined;
}

/**
 * Pagination: iterators over the pages of a listing, with loop guards.
 */
export const paginate = Object.freeze({
  LinkPages,
  CursorPages,
  NumberedPages,
  nextLink,
  DEFAULT_MAX_PAGES,
});
