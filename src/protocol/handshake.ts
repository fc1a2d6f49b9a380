/**
 * The handshake messages (OP_HELLO / OP_WELCOME payloads) and their
 * authentication. A peer's hello carries an HMAC-SHA256 over its fields made
 * with the cluster secret; the welcome carries one over the hello's nonce, so
 * both sides prove they know the secret. A read-only client's hello carries a
 * token instead. Times and nonces make a captured hello useless later.
 *
 * @module
 */
import { pack, unpack } from "msgpackr";
import { ProtocolError } from "../errors.ts";

/** Hello from a peer node (dialer → acceptor). */
export interface PeerHello {
  kind: "peer";
  v: number;
  from: string;
  to: string;
  id: string;
  t: number;
  nonce: string;
  mac: string;
  /** The sender's maxMessageBytes: the other side sends nothing larger. */
  max?: number;
  /** The sender's ping interval, ms: the other side expects stream pings this often. */
  ping?: number;
}

/** Hello from a read-only client. */
export interface AdminHello {
  kind: "admin";
  v: number;
  token: string;
  t: number;
  nonce: string;
  max?: number;
  ping?: number;
}

/** Either kind of hello. */
export type Hello = PeerHello | AdminHello;

/** The acceptor's answer. On refusal `code` is a GridError code and `reason` says why. */
export interface Welcome {
  ok: boolean;
  v: number;
  id: string;
  from: string;
  t: number;
  mac: string;
  code: string;
  reason: string;
  max?: number;
  ping?: number;
}

function field<T extends string | number>(o: Record<string, unknown>, k: string, type: "string" | "number"): T {
  const v = o[k];
  const ok = type === "string" ? typeof v === "string" : typeof v === "number";
  if (!ok) throw new ProtocolError(`Cannot decode handshake: field "${k}" must be a ${type}`);
  if (type === "string" && (v as string).length > 2048) {
    throw new ProtocolError(`Cannot decode handshake: field "${k}" is too long`);
  }
  return v as T;
}

function optionalLimit(o: Record<string, unknown>, k: string): number | undefined {
  const v = o[k];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== "number" || !Number.isFinite(v) || v < 1) {
    throw new ProtocolError(`Cannot decode handshake: field "${k}" must be a positive number`);
  }
  return v;
}

/** The optional limits of a hello or welcome, present keys only (so decode inverts encode). */
function limitsOf(o: Record<string, unknown>): { max?: number; ping?: number } {
  const out: { max?: number; ping?: number } = {};
  const max = optionalLimit(o, "max");
  const ping = optionalLimit(o, "ping");
  if (max !== undefined) out.max = max;
  if (ping !== undefined) out.ping = ping;
  return out;
}

function decodeObject(bytes: Uint8Array): Record<string, unknown> {
  let v: unknown;
  try {
    v = unpack(bytes);
  } catch (e) {
    throw new ProtocolError("Cannot decode handshake: invalid msgpack", { cause: e });
  }
  if (typeof v !== "object" || v === null || Array.isArray(v)) {
    throw new ProtocolError("Cannot decode handshake: payload is not a map");
  }
  return v as Record<string, unknown>;
}

/** Encodes a hello or welcome. */
export function encodeHandshake(h: Hello | Welcome): Uint8Array {
  const o: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(h)) if (v !== undefined) o[k] = v;
  return pack(o);
}

/** What each side learns of the other's limits in the handshake. */
export interface PeerLimits {
  /** The remote's maxMessageBytes. */
  max?: number;
  /** The remote's ping interval, ms. */
  ping?: number;
}

/** Decodes and validates a hello. @throws {ProtocolError} */
export function decodeHello(bytes: Uint8Array): Hello {
  const o = decodeObject(bytes);
  const v = field<number>(o, "v", "number");
  const kind = o.kind;
  if (kind === "peer") {
    return {
      kind,
      v,
      from: field(o, "from", "string"),
      to: field(o, "to", "string"),
      id: field(o, "id", "string"),
      t: field(o, "t", "number"),
      nonce: field(o, "nonce", "string"),
      mac: field(o, "mac", "string"),
      ...limitsOf(o),
    };
  }
  if (kind === "admin") {
    return {
      kind,
      v,
      token: field(o, "token", "string"),
      t: field(o, "t", "number"),
      nonce: field(o, "nonce", "string"),
      ...limitsOf(o),
    };
  }
  throw new ProtocolError(`Cannot decode handshake: unknown hello kind`);
}

/** Decodes and validates a welcome. @throws {ProtocolError} */
export function decodeWelcome(bytes: Uint8Array): Welcome {
  const o = decodeObject(bytes);
  if (typeof o.ok !== "boolean") throw new ProtocolError(`Cannot decode handshake: field "ok" must be a boolean`);
  return {
    ok: o.ok,
    v: field(o, "v", "number"),
    id: field(o, "id", "string"),
    from: field(o, "from", "string"),
    t: field(o, "t", "number"),
    mac: field(o, "mac", "string"),
    code: field(o, "code", "string"),
    reason: field(o, "reason", "string"),
    ...limitsOf(o),
  };
}

const encoder = new TextEncoder();

/**
 * A WebCrypto key. Spelled through the `crypto` global rather than `CryptoKey` so the
 * published `.d.ts` files type-check without the DOM lib: Node's types declare `CryptoKey`
 * as a value only.
 */
export type HmacKey = Awaited<ReturnType<typeof crypto.subtle.importKey>>;

/** An HMAC-SHA256 key made from the cluster secret (WebCrypto). */
export function importSecret(secret: string): Promise<HmacKey> {
  return crypto.subtle.importKey("raw", encoder.encode(secret), { name: "HMAC", hash: "SHA-256" }, false, [
    "sign",
    "verify",
  ]);
}

function toHex(buf: ArrayBuffer): string {
  const b = new Uint8Array(buf);
  let s = "";
  for (let i = 0; i < b.length; i++) s += b[i].toString(16).padStart(2, "0");
  return s;
}

function fromHex(s: string): Uint8Array<ArrayBuffer> | null {
  if (s.length !== 64 || !/^[0-9a-f]+$/.test(s)) return null;
  const out = new Uint8Array(32);
  for (let i = 0; i < 32; i++) out[i] = parseInt(s.slice(i * 2, i * 2 + 2), 16);
  return out;
}

/** What a peer hello's MAC covers. */
export function helloSigningText(h: Omit<PeerHello, "mac">): string {
  return `wsgrid-hello\n${h.v}\n${h.from}\n${h.to}\n${h.id}\n${h.t}\n${h.nonce}`;
}

/** What a welcome's MAC covers: it binds the answer to the hello's nonce. */
export function welcomeSigningText(w: Omit<Welcome, "mac">, nonce: string): string {
  return `wsgrid-welcome\n${w.ok}\n${w.v}\n${w.from}\n${w.id}\n${w.t}\n${nonce}`;
}

/** Signs text with the key; hex string. */
export async function sign(key: HmacKey, text: string): Promise<string> {
  return toHex(await crypto.subtle.sign("HMAC", key, encoder.encode(text)));
}

/** Verifies a hex MAC in constant time (WebCrypto verify). */
export async function verify(key: HmacKey, text: string, mac: string): Promise<boolean> {
  const raw = fromHex(mac);
  if (raw === null) return false;
  return await crypto.subtle.verify("HMAC", key, raw, encoder.encode(text));
}

/** A random nonce / instance id, hex. */
export function randomId(bytes = 16): string {
  const b = new Uint8Array(bytes);
  crypto.getRandomValues(b);
  let s = "";
  for (let i = 0; i < b.length; i++) s += b[i].toString(16).padStart(2, "0");
  return s;
}
