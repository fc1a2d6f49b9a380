/**
 * The typed-call layer shared by `Connection` and `Client`: it turns a handler name or a
 * typed definition plus a payload into a bytes call, and the bytes that come back into values.
 * Every failure (an encoder that throws, a payload that is not bytes) is a rejection, never a
 * synchronous throw.
 *
 * @module
 */
import type { SingleDefinition, StreamDefinition } from "./handlers/define.ts";
import { msgpack, raw } from "./handlers/codecs.ts";
import type { CallOptions, Codec, Stream } from "./types.ts";

/** Codecs of a stream's messages, as the caller's stream uses them. */
export interface CallCodecs {
  request: Codec<unknown>;
  response: Codec<unknown>;
}

/** The bytes-level calls that a typed call ends in (a Connection's). */
export interface BytesCaller {
  /** Sends one request of bytes; resolves with the response bytes. */
  requestBytes(name: string, payload: Uint8Array, options: CallOptions | undefined): Promise<Uint8Array>;
  /** Opens a stream with a bytes payload; its messages go through `codecs`. */
  openBytes(
    name: string,
    payload: Uint8Array,
    options: CallOptions | undefined,
    codecs: CallCodecs,
  ): Promise<Stream<unknown, unknown>>;
}

/**
 * How a call by handler name treats a payload that is not a Uint8Array: `"bytes"` rejects it
 * with a TypeError (a peer Connection), `"msgpack"` sends it and its answers as msgpack (Client).
 */
export type NamedPayloads = "bytes" | "msgpack";

const MSGPACK: Codec<unknown> = msgpack<unknown>();
const RAW = raw as Codec<unknown>;
const RAW_CODECS: CallCodecs = { request: RAW, response: RAW };
const MSGPACK_CODECS: CallCodecs = { request: MSGPACK, response: MSGPACK };

/** A single request by name or definition. */
export function callSingle(
  to: BytesCaller,
  handler: string | SingleDefinition<unknown, unknown>,
  payload: unknown,
  options: CallOptions | undefined,
  named: NamedPayloads,
): Promise<unknown> {
  if (typeof handler === "string") {
    if (payload instanceof Uint8Array) return to.requestBytes(handler, payload, options);
    if (named === "bytes") {
      return Promise.reject(new TypeError(`Cannot send request "${handler}": payload must be a Uint8Array`));
    }
    return encodeThen(MSGPACK, payload, (bytes) => to.requestBytes(handler, bytes, options).then((b) => MSGPACK.decode(b)));
  }
  if (typeof handler !== "object" || handler === null || handler.kind !== "single") {
    return Promise.reject(new TypeError("Cannot send request: handler must be a name or a defineSingle() definition"));
  }
  const response = handler.response;
  return encodeThen(
    handler.request,
    payload,
    (bytes) => to.requestBytes(handler.name, bytes, options).then((b) => response.decode(b)),
  );
}

/** A stream by name or definition. */
export function callStream(
  to: BytesCaller,
  handler: string | StreamDefinition<unknown, unknown, unknown>,
  payload: unknown,
  options: CallOptions | undefined,
  named: NamedPayloads,
): Promise<Stream<unknown, unknown>> {
  if (typeof handler === "string") {
    if (payload instanceof Uint8Array) return to.openBytes(handler, payload, options, RAW_CODECS);
    if (named === "bytes") {
      return Promise.reject(new TypeError(`Cannot open stream "${handler}": payload must be a Uint8Array`));
    }
    return encodeThen(MSGPACK, payload, (bytes) => to.openBytes(handler, bytes, options, MSGPACK_CODECS));
  }
  if (typeof handler !== "object" || handler === null || handler.kind !== "stream") {
    return Promise.reject(new TypeError("Cannot open stream: handler must be a name or a defineStream() definition"));
  }
  const codecs: CallCodecs = { request: handler.request, response: handler.response };
  return encodeThen(handler.payload, payload, (bytes) => to.openBytes(handler.name, bytes, options, codecs));
}

/** Encodes `value` and continues with the bytes; an encoder that throws (or returns no bytes) rejects. */
function encodeThen<T>(codec: Codec<unknown>, value: unknown, next: (bytes: Uint8Array) => Promise<T>): Promise<T> {
  let bytes: Uint8Array;
  try {
    bytes = codec.encode(value);
  } catch (e) {
    return Promise.reject(e);
  }
  if (!(bytes instanceof Uint8Array)) {
    return Promise.reject(new TypeError("Cannot make call: the payload codec did not return a Uint8Array"));
  }
  return next(bytes);
}
