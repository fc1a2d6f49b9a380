/**
 * Small helpers shared by both ends of the mux: error payloads, credit
 * messages and call deadlines.
 *
 * @module
 */
import { pack, unpack } from "msgpackr";
import { errorFromCode, type GridError, ProtocolError, TimeoutError } from "../errors.ts";
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

/** An OP_CANCEL message. */
export function cancelMessage(mux: number, reason: number): OutMessage {
  return msg(OP_CANCEL, mux, 0, Uint8Array.of(reason));
}

/** The abort reason a handler sees for an OP_CANCEL payload. */
export function cancelReason(payload: Uint8Array, remote: string): Error {
  if (payload.length > 0 && payload[0] === CANCEL_TIMEOUT) {
    return new TimeoutError(`Call from "${remote}" passed its deadline`);
  }
  return new DOMException(`Call canceled by "${remote}"`, "AbortError");
}

/** Clamps a timeout to what a u32 header field and a timer can hold. */
export function clampTimeout(ms: number): number {
  if (!Number.isFinite(ms) || ms < 1) return 1;
  return ms > MAX_TIMEOUT ? MAX_TIMEOUT : Math.floor(ms);
}

/** Message of an unknown thrown value. */
export function describe(e: unknown): { message: string; code: string | undefined } {
  if (e instanceof Error) {
    const code = (e as { code?: unknown }).code;
    return { message: e.message, code: typeof code === "string" ? code : undefined };
  }
  return { message: String(e), code: undefined };
}
