/**
 * Codecs for typed handlers: `raw` bytes, `msgpack<T>()` (the default) and `json<T>()`.
 *
 * @module
 */
import { Packr } from "msgpackr";
import type { Codec } from "../types.ts";

/**
 * Bytes as they are.
 *
 * @example
 * ```ts
 * import { defineSingle, raw } from "wsgrid";
 * const Echo = defineSingle<Uint8Array, Uint8Array>("echo", { codec: raw });
 * ```
 */
export const raw: Codec<Uint8Array> = {
  encode: (v) => {
    // Checked here because a frame would silently carry garbage for anything else.
    if (!(v instanceof Uint8Array)) throw new TypeError(`Cannot encode raw message: expected Uint8Array, got ${typeof v}`);
    return v;
  },
  decode: (b) => b,
};

const packr = new Packr({ useRecords: false, moreTypes: false });

/**
 * MessagePack (plain, interoperable: no msgpackr records), the default codec.
 *
 * @example
 * ```ts
 * import { msgpack } from "wsgrid";
 * const c = msgpack<{ key: string }>();
 * c.decode(c.encode({ key: "a" })).key; // "a"
 * ```
 */
export function msgpack<T>(): Codec<T> {
  return {
    encode: (v) => packr.pack(v),
    decode: (b) => packr.unpack(b) as T,
  };
}

const utf8Encoder = new TextEncoder();
const utf8Decoder = new TextDecoder();

/**
 * JSON as UTF-8.
 *
 * @example
 * ```ts
 * import { json } from "wsgrid";
 * const c = json<{ n: number }>();
 * c.decode(c.encode({ n: 1 })).n; // 1
 * ```
 */
export function json<T>(): Codec<T> {
  return {
    encode: (v) => utf8Encoder.encode(JSON.stringify(v) ?? "null"),
    decode: (b) => JSON.parse(utf8Decoder.decode(b)) as T,
  };
}
