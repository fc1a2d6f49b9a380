/**
 * Small helpers shared by both ends of the mux: error payloads, credit
 * messages and call deadlines.
 *
 * @module
 */
import { pack, unpack } from "msgpackr";
import { errorFromCode, GridError, InvalidError, ProtocolError, TimeoutError, type ValidationIssue } from "../errors.ts";
import type { OutMessage } from "../protocol/frame.ts";
import { OP_CANCEL, OP_ERROR } from "../protocol/ops.ts";

const EMPTY = new Uint8Array(0);
/** The empty payload. */
export { EMPTY };

/** Largest deadline that fits a u32 and a timer, ms. */
export const MAX_TIMEOUT = 2_147_483_647;

/** Builds a message without a route. */
export function msg(op: number, mux: number, seq: number, payload: Uint8Array = EMPTY): OutMessage {
  return { op, flags: 0, mux, seq, deadline: 0, route: null, payload };
}

/** At most this many validation issues travel in an error (the rest are counted in the message). */
export const MAX_ISSUES = 64;
const MAX_ISSUE_MESSAGE = 1024;
const MAX_PATH = 32;
const MAX_PATH_KEY = 256;

/** An OP_ERROR message carrying a code, a message, and the remote error's code or validation issues. */
export function errorMessage(
  mux: number,
  code: string,
  message: string,
  remoteCode?: string,
  issues?: readonly ValidationIssue[],
): OutMessage {
  const body: { code: string; message: string; remoteCode?: string; issues?: ValidationIssue[] } = {
    code,
    message: message.slice(0, 8192),
  };
  if (remoteCode !== undefined) body.remoteCode = remoteCode.slice(0, 256);
  if (issues !== undefined) {
    body.issues = issues.slice(0, MAX_ISSUES).map((i) => {
      const out: { message: string; path?: (string | number)[] } = { message: i.message.slice(0, MAX_ISSUE_MESSAGE) };
      if (i.path !== undefined) {
        out.path = i.path.slice(0, MAX_PATH).map((k) => typeof k === "number" ? k : k.slice(0, MAX_PATH_KEY));
      }
      return out;
    });
  }
  return msg(OP_ERROR, mux, 0, pack(body));
}

/**
 * The OP_ERROR message for a handler's failure: an {@link InvalidError} travels
 * as code "invalid" with its issues, anything else as code "remote" with the
 * thrown error's message and `code`.
 */
export function handlerErrorMessage(mux: number, e: unknown): OutMessage {
  if (e instanceof InvalidError) return errorMessage(mux, "invalid", e.message, undefined, e.issues);
  const d = describe(e);
  return errorMessage(mux, "remote", d.message, d.code);
}

/**
 * The OP_ERROR message for a call an interceptor refused (or failed): a {@link GridError} keeps
 * its code (an UnauthorizedError reaches the caller as "unauthorized"), anything else travels
 * as a handler's failure does.
 */
export function refusalMessage(mux: number, e: unknown): OutMessage {
  if (!(e instanceof GridError) || e instanceof InvalidError) return handlerErrorMessage(mux, e);
  const remoteCode = (e as { remoteCode?: unknown }).remoteCode;
  return errorMessage(mux, e.code, e.message, typeof remoteCode === "string" ? remoteCode : undefined);
}

/** The stats code of a call that ended with `reason`: a GridError's code, "canceled" for an abort, else "remote". */
export function errorCode(reason: unknown): string {
  if (reason instanceof GridError) return reason.code;
  if (reason instanceof DOMException && reason.name === "AbortError") return "canceled";
  return "remote";
}

/** The issues of an OP_ERROR payload, keeping only well-formed ones (decoding is total). */
function decodeIssues(v: unknown): ValidationIssue[] {
  if (!Array.isArray(v)) return [];
  const out: ValidationIssue[] = [];
  for (const i of v.slice(0, MAX_ISSUES)) {
    if (typeof i !== "object" || i === null || typeof (i as { message?: unknown }).message !== "string") continue;
    const { message, path } = i as { message: string; path?: unknown };
    if (Array.isArray(path)) {
      const keys = path.slice(0, MAX_PATH).filter((k): k is string | number => typeof k === "string" || typeof k === "number");
      out.push({ message, path: keys });
    } else out.push({ message });
  }
  return out;
}

/** Decodes an OP_ERROR payload into the matching GridError. */
export function decodeError(payload: Uint8Array): GridError {
  let v: unknown;
  try {
    v = unpack(payload);
  } catch (e) {
    return new ProtocolError("Cannot decode error payload: invalid msgpack", { cause: e });
  }
  if (typeof v !== "object" || v === null) return new ProtocolError("Cannot decode error payload: not a map");
  const o = v as Record<string, unknown>;
  if (typeof o.code !== "string" || typeof o.message !== "string") {
    return new ProtocolError("Cannot decode error payload: missing code or message");
  }
  return errorFromCode(o.code, o.message, typeof o.remoteCode === "string" ? o.remoteCode : undefined, decodeIssues(o.issues));
}

/** Reasons carried by OP_CANCEL (first payload byte). */
export const CANCEL_ABORTED = 0;
/** The caller's deadline passed. */
export const CANCEL_TIMEOUT = 1;
/**
 * A write of the caller failed (too large, not encodable): the error follows the
 * reason byte as an error payload, so the handler's signal aborts with it. Peers
 * that predate it read an unknown reason as a plain cancel.
 */
export const CANCEL_FAILED = 2;

/** An OP_CANCEL message; `err` travels with CANCEL_FAILED. */
export function cancelMessage(mux: number, reason: number, err?: unknown): OutMessage {
  if (reason !== CANCEL_FAILED || err === undefined) return msg(OP_CANCEL, mux, 0, Uint8Array.of(reason));
  const d = describe(err);
  const code = err instanceof GridError ? err.code : "remote";
  const body = errorMessage(mux, code, d.message, d.code).payload;
  const payload = new Uint8Array(1 + body.length);
  payload[0] = reason;
  payload.set(body, 1);
  return msg(OP_CANCEL, mux, 0, payload);
}

/** The abort reason a handler sees for an OP_CANCEL payload. */
export function cancelReason(payload: Uint8Array, remote: string): Error {
  if (payload.length > 0 && payload[0] === CANCEL_TIMEOUT) {
    return new TimeoutError(`Call from "${remote}" passed its deadline`);
  }
  if (payload.length > 1 && payload[0] === CANCEL_FAILED) return decodeError(payload.subarray(1));
  return new DOMException(`Call canceled by "${remote}"`, "AbortError");
}

/** First payload byte of a stream-req-credit message that says the handler stopped reading its requests. */
export const REQUESTS_STOPPED = 1;

/**
 * A call's timeout option as a deadline in ms: `undefined` takes `dflt`, `Infinity` means no
 * deadline (returned as Infinity), other values are clamped to what a u32 header field and a
 * timer can hold (1 ms at least).
 *
 * @throws {RangeError} `ms` is not a number greater than 0 (NaN, 0, negative)
 */
export function callTimeout(ms: number | undefined, dflt: number): number {
  if (ms === undefined) ms = dflt;
  if (typeof ms !== "number" || !(ms > 0)) {
    throw new RangeError(`Cannot make call: option "timeout" must be a number above 0 or Infinity, got ${String(ms)}`);
  }
  if (ms === Infinity) return Infinity;
  return ms > MAX_TIMEOUT ? MAX_TIMEOUT : Math.max(1, Math.floor(ms));
}

/**
 * Runs `fire` once `performance.now()` reaches `at`, and returns what cancels it. Timers may
 * fire early against `performance.now()` (Node's timers count from the loop's cached time): an
 * early one is armed again, so that a handler's deadline never passes before its caller's.
 */
export function whenPassed(at: number, fire: () => void): () => void {
  let timer: ReturnType<typeof setTimeout> | undefined = undefined;
  const arm = () => {
    timer = setTimeout(() => {
      if (performance.now() < at) arm();
      else fire();
    }, Math.max(0, Math.ceil(at - performance.now())));
  };
  arm();
  return () => clearTimeout(timer);
}

/** What is left of a deadline of `timeout` ms after `elapsed` ms (1 ms at least; Infinity stays). */
export function timeLeft(timeout: number, elapsed: number): number {
  return timeout === Infinity ? Infinity : Math.max(1, Math.floor(timeout - elapsed));
}

/** Message of an unknown thrown value. */
export function describe(e: unknown): { message: string; code: string | undefined } {
  if (e instanceof Error) {
    const code = (e as { code?: unknown }).code;
    return { message: e.message, code: typeof code === "string" ? code : undefined };
  }
  return { message: String(e), code: undefined };
}
