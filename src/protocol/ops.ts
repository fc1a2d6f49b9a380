/**
 * Wire opcodes and flags of protocol version 2 (see docs/PROTOCOL.md).
 *
 * Calls are keyed by a mux id chosen by the caller. Ops sent by the caller are looked up
 * in the callee's table of calls it serves; ops sent by the callee are looked up in the
 * caller's table of calls it made. The two tables are independent, so the same id may be
 * in use in both directions.
 *
 * @module
 */

/** Protocol version exchanged in the handshake; bumped on any incompatible change. */
export const PROTOCOL_VERSION = 2;

/** Handshake: first message of the dialing side (payload: msgpack hello). */
export const OP_HELLO = 1;
/** Handshake: the accepting side's challenge and proof, or refusal (payload: msgpack welcome). */
export const OP_WELCOME = 2;
/** Handshake: the dialing side's proof (payload: msgpack `{ mac }`). */
export const OP_PROOF = 12;
/** Handshake: the accepting side's last word, the link is up (payload: msgpack `{ ok, code, reason }`). */
export const OP_READY = 13;
/** Connection liveness probe; payload is the sender's clock as float64. */
export const OP_PING = 3;
/** Answer to OP_PING echoing its payload. */
export const OP_PONG = 4;

// Caller → callee.
/** Single request: route + payload + deadline. */
export const OP_REQUEST = 5;
/** Cancels a request or stream the caller made. */
export const OP_CANCEL = 6;
/** Opens a stream: route + initial payload + deadline. */
export const OP_STREAM_OPEN = 7;
/** One request message of a stream. */
export const OP_STREAM_REQ = 8;
/** The caller closed its request side. */
export const OP_STREAM_REQ_END = 9;
/** Grants the handler `seq` more response credits. */
export const OP_STREAM_RESP_CREDIT = 10;
/** Per-stream liveness probe from the caller. */
export const OP_STREAM_PING = 11;

// Callee → caller.
/** Single response payload. */
export const OP_RESPONSE = 16;
/** The call failed; payload is a msgpack `{ code, message, remoteCode? }`. Ends the call. */
export const OP_ERROR = 17;
/** The stream was accepted; payload is two u32: inCapacity, outCapacity. */
export const OP_STREAM_ACK = 18;
/** One response message of a stream. */
export const OP_STREAM_RESP = 19;
/** The handler finished its responses; ends the call. */
export const OP_STREAM_RESP_END = 20;
/** Grants the caller `seq` more request credits. */
export const OP_STREAM_REQ_CREDIT = 21;
/** Answer to OP_STREAM_PING: the stream is still served. */
export const OP_STREAM_PONG = 22;

/** The message carries a route section (handler name and subroute). */
export const FLAG_ROUTE = 1;
/**
 * The message carries a metadata section after its route (only with FLAG_ROUTE): u16 length,
 * then entries of u8 key length + UTF-8 key, u16 value length + UTF-8 value.
 */
export const FLAG_METADATA = 2;
/** Every flag bit the protocol defines; others must be zero. */
export const KNOWN_FLAGS = FLAG_ROUTE | FLAG_METADATA;

/** Human-readable op names, for errors and debugging. */
export const OP_NAMES: Readonly<Record<number, string>> = {
  [OP_HELLO]: "hello",
  [OP_WELCOME]: "welcome",
  [OP_PING]: "ping",
  [OP_PONG]: "pong",
  [OP_REQUEST]: "request",
  [OP_CANCEL]: "cancel",
  [OP_STREAM_OPEN]: "stream-open",
  [OP_STREAM_REQ]: "stream-req",
  [OP_STREAM_REQ_END]: "stream-req-end",
  [OP_STREAM_RESP_CREDIT]: "stream-resp-credit",
  [OP_STREAM_PING]: "stream-ping",
  [OP_PROOF]: "proof",
  [OP_READY]: "ready",
  [OP_RESPONSE]: "response",
  [OP_ERROR]: "error",
  [OP_STREAM_ACK]: "stream-ack",
  [OP_STREAM_RESP]: "stream-resp",
  [OP_STREAM_RESP_END]: "stream-resp-end",
  [OP_STREAM_REQ_CREDIT]: "stream-req-credit",
  [OP_STREAM_PONG]: "stream-pong",
};

/** The ops of the handshake: legal before it completes, and only then. */
export function isHandshakeOp(op: number): boolean {
  return op === OP_HELLO || op === OP_WELCOME || op === OP_PROOF || op === OP_READY;
}

/** Ops that must carry a route section. */
export function opHasRoute(op: number): boolean {
  return op === OP_REQUEST || op === OP_STREAM_OPEN;
}
