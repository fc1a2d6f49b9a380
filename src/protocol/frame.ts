/**
 * Frame encoding and decoding. A frame is one binary WebSocket message holding
 * one or more wire messages back to back. Each message is an 18-byte header —
 * op u8, flags u8, mux u32, seq u32, deadline u32, payload length u32, all
 * big-endian — then, when FLAG_ROUTE is set, a route section (u8 length +
 * UTF-8 handler name, u8 length + UTF-8 subroute), when FLAG_METADATA is set
 * too a metadata section (u16 length + entries, see metadata.ts), then the payload.
 *
 * Decoding is total: any byte sequence either decodes or raises ProtocolError.
 *
 * @module
 */
import { ProtocolError } from "../errors.ts";
import { DEFAULT_LIMITS, HEADER_BYTES } from "./limits.ts";
import { FLAG_METADATA, FLAG_ROUTE, KNOWN_FLAGS, OP_NAMES, opHasRoute } from "./ops.ts";

/** A decoded wire message. `payload` is a view into the frame. */
export interface Message {
  op: number;
  flags: number;
  mux: number;
  seq: number;
  /** Milliseconds from the time of sending until the call's deadline; 0 means none. */
  deadline: number;
  handler: string;
  subroute: string;
  /**
   * The entries of the metadata section (a view into the frame, without its length), or null
   * when the message has none. Decoded by the callee (see metadata.ts), which answers a call
   * whose metadata is malformed or too large with an error instead of closing the socket.
   */
  metadata: Uint8Array | null;
  payload: Uint8Array;
}

/**
 * A message to encode. `route` is the pre-encoded route section (see {@link encodeRoute}),
 * followed by the metadata section when `flags` has FLAG_METADATA.
 */
export interface OutMessage {
  op: number;
  flags: number;
  mux: number;
  seq: number;
  deadline: number;
  route: Uint8Array | null;
  payload: Uint8Array;
}

const encoder = new TextEncoder();
// ignoreBOM keeps a leading U+FEFF in a route: stripping it would map "\uFEFFx" onto handler "x".
const decoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
const EMPTY = new Uint8Array(0);
const routeCache = new Map<string, Uint8Array>();
const ROUTE_CACHE_MAX = 4096;

/**
 * Encodes a handler name and subroute into a route section, cached per pair.
 *
 * @throws {RangeError} if either is longer than 255 UTF-8 bytes.
 */
export function encodeRoute(handler: string, subroute: string): Uint8Array {
  const key = subroute === "" ? handler : handler + "\u0000" + subroute;
  const cached = routeCache.get(key);
  if (cached !== undefined) return cached;
  const h = encoder.encode(handler);
  const s = encoder.encode(subroute);
  if (h.length === 0 || h.length > DEFAULT_LIMITS.maxRouteBytes) {
    throw new RangeError(`Cannot encode handler name "${handler}": length must be 1 to 255 bytes`);
  }
  if (s.length > DEFAULT_LIMITS.maxRouteBytes) {
    throw new RangeError(`Cannot encode subroute "${subroute}": length must be at most 255 bytes`);
  }
  const out = new Uint8Array(2 + h.length + s.length);
  out[0] = h.length;
  out.set(h, 1);
  out[1 + h.length] = s.length;
  out.set(s, 2 + h.length);
  if (routeCache.size >= ROUTE_CACHE_MAX) routeCache.clear();
  routeCache.set(key, out);
  return out;
}

/** Encoded size of one message. */
export function messageSize(m: OutMessage): number {
  return HEADER_BYTES + (m.route === null ? 0 : m.route.length) + m.payload.length;
}

/**
 * Encodes `count` messages of `msgs` starting at `start` into one frame of exactly
 * `size` bytes (the sum of {@link messageSize}): into the first `size` bytes of
 * `into` when given (it must be at least that long), else into a new array.
 */
export function encodeFrame(
  msgs: readonly OutMessage[],
  start: number,
  count: number,
  size: number,
  into?: Uint8Array<ArrayBuffer>,
): Uint8Array<ArrayBuffer> {
  const buf = into === undefined ? new Uint8Array(size) : into.subarray(0, size);
  let o = 0;
  for (let i = start; i < start + count; i++) {
    const m = msgs[i];
    const plen = m.payload.length;
    buf[o] = m.op;
    buf[o + 1] = m.route === null ? m.flags : m.flags | FLAG_ROUTE;
    writeU32(buf, o + 2, m.mux);
    writeU32(buf, o + 6, m.seq);
    writeU32(buf, o + 10, m.deadline);
    writeU32(buf, o + 14, plen);
    o += HEADER_BYTES;
    if (m.route !== null) {
      buf.set(m.route, o);
      o += m.route.length;
    }
    if (plen > 0) {
      buf.set(m.payload, o);
      o += plen;
    }
  }
  return buf;
}

// Byte-wise big-endian u32: no DataView per frame (a DataView is an allocation,
// and on Bun a costly one).
function writeU32(b: Uint8Array, o: number, v: number): void {
  b[o] = v >>> 24;
  b[o + 1] = v >>> 16;
  b[o + 2] = v >>> 8;
  b[o + 3] = v;
}

function readU32(b: Uint8Array, o: number): number {
  return ((b[o] << 24) | (b[o + 1] << 16) | (b[o + 2] << 8) | b[o + 3]) >>> 0;
}

/** Encodes a single message as its own frame. */
export function encodeMessage(m: OutMessage): Uint8Array<ArrayBuffer> {
  return encodeFrame([m], 0, 1, messageSize(m));
}

function fail(reason: string): never {
  throw new ProtocolError(`Cannot decode frame: ${reason}`);
}

/**
 * Decodes a frame into its messages, in order. The frame is validated
 * completely before anything is returned, so a malformed frame delivers nothing.
 *
 * @param frame the binary WebSocket message
 * @param maxPayload largest allowed payload of one message
 * @throws {ProtocolError} on any malformed input
 */
export function decodeFrame(frame: Uint8Array, maxPayload: number): Message[] {
  const len = frame.length;
  if (len === 0) fail("empty frame");
  const out: Message[] = [];
  let o = 0;
  while (o < len) {
    if (out.length >= DEFAULT_LIMITS.maxMessagesPerFrame) {
      fail(`more than ${DEFAULT_LIMITS.maxMessagesPerFrame} messages in one frame`);
    }
    if (len - o < HEADER_BYTES) fail(`truncated header at offset ${o}: ${len - o} bytes left`);
    const op = frame[o];
    const flags = frame[o + 1];
    if (OP_NAMES[op] === undefined) fail(`unknown op ${op} at offset ${o}`);
    if ((flags & ~KNOWN_FLAGS) !== 0) fail(`unknown flags 0x${flags.toString(16)} at offset ${o}`);
    const hasRoute = (flags & FLAG_ROUTE) !== 0;
    if (hasRoute !== opHasRoute(op)) {
      fail(`op "${OP_NAMES[op]}" ${hasRoute ? "must not" : "must"} carry a route`);
    }
    const mux = readU32(frame, o + 2);
    const seq = readU32(frame, o + 6);
    const deadline = readU32(frame, o + 10);
    const plen = readU32(frame, o + 14);
    o += HEADER_BYTES;
    let handler = "";
    let subroute = "";
    let metadata: Uint8Array | null = null;
    if (hasRoute) {
      if (o >= len) fail("truncated route");
      const hl = frame[o++];
      if (hl === 0) fail("empty handler name");
      if (len - o < hl + 1) fail(`handler name length ${hl} exceeds remaining ${len - o} bytes`);
      handler = decodeHandler(frame, o, hl);
      o += hl;
      const sl = frame[o++];
      if (len - o < sl) fail(`subroute length ${sl} exceeds remaining ${len - o} bytes`);
      subroute = sl === 0 ? "" : decodeText(frame.subarray(o, o + sl));
      o += sl;
      if ((flags & FLAG_METADATA) !== 0) {
        if (len - o < 2) fail("truncated metadata length");
        const ml = (frame[o] << 8) | frame[o + 1];
        o += 2;
        if (len - o < ml) fail(`metadata length ${ml} exceeds remaining ${len - o} bytes`);
        metadata = frame.subarray(o, o + ml);
        o += ml;
      }
    } else if ((flags & FLAG_METADATA) !== 0) fail(`op "${OP_NAMES[op]}" must not carry metadata`);
    if (plen > maxPayload) fail(`payload length ${plen} exceeds maxMessageBytes ${maxPayload}`);
    if (plen > len - o) fail(`payload length ${plen} exceeds remaining ${len - o} bytes`);
    const payload = plen === 0 ? EMPTY : frame.subarray(o, o + plen);
    o += plen;
    out.push({ op, flags, mux, seq, deadline, handler, subroute, metadata, payload });
  }
  return out;
}

// The last handler name decoded, reused while the bytes match: a batch of calls
// usually names the same handler, and TextDecoder has a high fixed cost per call.
let lastHandlerBytes: Uint8Array = EMPTY;
let lastHandler = "";

function decodeHandler(frame: Uint8Array, o: number, hl: number): string {
  const last = lastHandlerBytes;
  if (last.length === hl) {
    let i = 0;
    while (i < hl && frame[o + i] === last[i]) i++;
    if (i === hl) return lastHandler;
  }
  const name = decodeText(frame.subarray(o, o + hl));
  lastHandlerBytes = frame.slice(o, o + hl);
  lastHandler = name;
  return name;
}

function decodeText(bytes: Uint8Array): string {
  try {
    return decoder.decode(bytes);
  } catch (e) {
    throw new ProtocolError("Cannot decode frame: route is not valid UTF-8", { cause: e });
  }
}
