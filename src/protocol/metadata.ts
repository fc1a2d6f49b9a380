/**
 * Per-call metadata: string keys and values that travel with a `request` or
 * `stream-open` (FLAG_METADATA). The section is a u16 length, then entries of
 * u8 key length (1–255) + UTF-8 key, u16 value length + UTF-8 value; its
 * entries are at most `maxMetadataBytes` (4 KiB). The sender refuses larger
 * metadata before sending; the callee answers a call whose metadata is larger
 * or malformed with an error, without running anything.
 *
 * @module
 */
import { PayloadTooLargeError, ProtocolError } from "../errors.ts";
import { DEFAULT_LIMITS } from "./limits.ts";

/** A call's metadata as handlers and interceptors see it. */
export type Metadata = Readonly<Record<string, string>>;

/** The metadata of a call that carries none. */
export const NO_METADATA: Metadata = Object.freeze({});

const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/** The string's bytes if it is ASCII (most metadata is), else its UTF-8 via TextEncoder. */
function utf8(s: string): Uint8Array {
  const n = s.length;
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0x80) return encoder.encode(s);
    out[i] = c;
  }
  return out;
}

/** Decodes UTF-8; short ASCII without TextDecoder, whose fixed cost per call is high. */
function text(b: Uint8Array): string {
  const n = b.length;
  if (n > 64) return decoder.decode(b);
  let s = "";
  for (let i = 0; i < n; i++) {
    const c = b[i];
    if (c >= 0x80) return decoder.decode(b);
    s += String.fromCharCode(c);
  }
  return s;
}

/** Sets `key` on a plain object without going through a `__proto__` setter. */
function put(o: Record<string, string>, key: string, value: string): void {
  Object.defineProperty(o, key, { value, enumerable: true, writable: true, configurable: true });
}

/**
 * Encodes metadata into the section that follows a route (its u16 length
 * included), or null when it has no entries.
 *
 * @throws {TypeError} a key is empty or a key or value is not a string
 * @throws {PayloadTooLargeError} a key is over 255 bytes, or the entries over maxMetadataBytes
 */
export function encodeMetadata(metadata: Record<string, string>, what: string): Uint8Array | null {
  if (typeof metadata !== "object" || metadata === null || Array.isArray(metadata)) {
    throw new TypeError(`Cannot ${what}: option "metadata" must be an object of strings`);
  }
  const parts: Uint8Array[] = [];
  let size = 0;
  for (const key of Object.keys(metadata)) {
    const value = metadata[key];
    if (typeof value !== "string") {
      throw new TypeError(`Cannot ${what}: metadata "${key}" must be a string, got ${typeof value}`);
    }
    const k = utf8(key);
    if (k.length === 0) throw new TypeError(`Cannot ${what}: metadata keys must not be empty`);
    if (k.length > 255) {
      throw new PayloadTooLargeError(`Cannot ${what}: metadata key "${key.slice(0, 64)}…" is ${k.length} bytes: exceeds 255`);
    }
    const v = utf8(value);
    size += 3 + k.length + v.length;
    if (size > DEFAULT_LIMITS.maxMetadataBytes) {
      throw new PayloadTooLargeError(
        `Cannot ${what}: metadata exceeds maxMetadataBytes ${DEFAULT_LIMITS.maxMetadataBytes} (at key "${key.slice(0, 64)}")`,
      );
    }
    parts.push(k, v);
  }
  if (parts.length === 0) return null;
  const out = new Uint8Array(2 + size);
  out[0] = size >>> 8;
  out[1] = size;
  let o = 2;
  for (let i = 0; i < parts.length; i += 2) {
    const k = parts[i];
    const v = parts[i + 1];
    out[o++] = k.length;
    out.set(k, o);
    o += k.length;
    out[o++] = v.length >>> 8;
    out[o++] = v.length;
    out.set(v, o);
    o += v.length;
  }
  return out;
}

/**
 * Decodes the entries of a received metadata section.
 *
 * @throws {PayloadTooLargeError} the entries are over maxMetadataBytes
 * @throws {ProtocolError} the entries are malformed (truncated, empty or duplicate key, not UTF-8)
 */
export function decodeMetadata(bytes: Uint8Array): Record<string, string> {
  if (bytes.length > DEFAULT_LIMITS.maxMetadataBytes) {
    throw new PayloadTooLargeError(
      `Cannot serve call: metadata of ${bytes.length} bytes exceeds maxMetadataBytes ${DEFAULT_LIMITS.maxMetadataBytes}`,
    );
  }
  const out: Record<string, string> = {};
  const len = bytes.length;
  let o = 0;
  try {
    while (o < len) {
      const kl = bytes[o++];
      if (kl === 0) throw new ProtocolError("Cannot decode metadata: empty key");
      if (len - o < kl + 2) throw new ProtocolError("Cannot decode metadata: truncated entry");
      const key = text(bytes.subarray(o, o + kl));
      o += kl;
      const vl = (bytes[o] << 8) | bytes[o + 1];
      o += 2;
      if (len - o < vl) throw new ProtocolError("Cannot decode metadata: truncated value");
      if (Object.hasOwn(out, key)) throw new ProtocolError(`Cannot decode metadata: duplicate key "${key}"`);
      put(out, key, vl === 0 ? "" : text(bytes.subarray(o, o + vl)));
      o += vl;
    }
  } catch (e) {
    if (e instanceof ProtocolError) throw e;
    throw new ProtocolError("Cannot decode metadata: not valid UTF-8", { cause: e });
  }
  return out;
}

/** A writable copy of `metadata` (interceptors and `parent` add to it). */
export function copyMetadata(metadata: Metadata | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  if (metadata !== undefined) for (const k of Object.keys(metadata)) put(out, k, metadata[k]);
  return out;
}

/** `route` followed by the metadata section `meta`. */
export function routeWithMetadata(route: Uint8Array, meta: Uint8Array): Uint8Array {
  const out = new Uint8Array(route.length + meta.length);
  out.set(route, 0);
  out.set(meta, route.length);
  return out;
}
