/**
 * Small helpers shared by both ends of the mux: error payloads, credit
 * messages and call deadlines.
 *
 * @module
 */
import { pack, unpack } from "msgpackr";
import { errorFromCode, GridError, ProtocolError, TimeoutError } from "../errors.ts";
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

/** An OP_ERROR message carrying `err`'s code and message. */
export function errorMessage(mux: number, code: string, message: string, remoteCode?: string): OutMessage {
  const body: Record<string, string> = { code, message: message.slice(0, 8192) };
  if (remoteCode !== undefined) body.remoteCode = remoteCode.slice(0, 256);
  return msg(OP_ERROR, mux, 0, pack(body));
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
  return errorFromCode(o.code, o.message, typeof o.remoteCode === "string" ? o.remoteCode : undefined);
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
