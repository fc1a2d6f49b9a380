/**
 * Handshake messages of protocol version 2 and their MACs.
 *
 * A peer handshake takes four messages, and both sides contribute a fresh
 * random challenge:
 *
 * 1. dialer → acceptor `hello`: names, the dialer's instance id, its
 *    challenge and its limits. Nothing in it is trusted yet.
 * 2. acceptor → dialer `welcome`: the acceptor's instance id, challenge and
 *    limits, and a MAC over the whole transcript (both names, both ids, both
 *    challenges, the version and every negotiated value) under the role label
 *    "acceptor". Or a refusal.
 * 3. dialer → acceptor `proof`: a MAC over the same transcript under the role
 *    label "dialer".
 * 4. acceptor → dialer `ready`: the link is up (or a refusal).
 *
 * Each MAC binds the other side's fresh challenge, so no message captured from
 * one handshake verifies in another, at any time and across restarts: there is
 * no replay table and no clock to agree on. The role labels keep a MAC of one
 * side from passing as the other's. HMAC-SHA256 over WebCrypto; verification
 * is WebCrypto's (constant time).
 *
 * A read-only (admin) client sends a token instead and gets `welcome` at once:
 * a bearer token, which only TLS keeps secret (docs/SECURITY.md).
 *
 * @module
 */
import { pack, unpack } from "msgpackr";
import { ProtocolError } from "../errors.ts";
import type { OutMessage } from "../protocol/frame.ts";

/** Bytes of random challenge each side contributes. */
export const CHALLENGE_BYTES = 32;
/** Longest string field of a handshake message (names are URLs). */
const MAX_FIELD_CHARS = 2048;

/** Hello from a peer node (dialer → acceptor). */
export interface PeerHello {
  kind: "peer";
  /** Protocol version. */
  v: number;
  /** The dialer's host name. */
  from: string;
  /** The host name the dialer meant to reach. */
  to: string;
  /** The dialer's instance id. */
  id: string;
  /** The dialer's challenge, hex. */
  nonce: string;
  /** The dialer's maxMessageBytes: the acceptor sends nothing larger. */
  max: number;
  /** The dialer's ping interval, ms. */
  ping: number;
}

/** Hello from a read-only client. */
export interface AdminHello {
  kind: "admin";
  v: number;
  token: string;
  nonce: string;
  max: number;
  ping: number;
}

/** Either kind of hello. */
export type Hello = PeerHello | AdminHello;

/**
 * The acceptor's answer to a hello. Accepted: `ok`, the acceptor's name, id,
 * challenge, limits and (peers) its MAC. Refused: `ok: false` with a GridError
 * `code` and a `reason`; nothing else is meaningful.
 */
export interface Welcome {
  ok: boolean;
  v: number;
  from: string;
  id: string;
  nonce: string;
  max: number;
  ping: number;
  mac: string;
  code: string;
  reason: string;
}

/** The dialer's proof (message 3). */
export interface Proof {
  mac: string;
}

/** The acceptor's last word (message 4): up, or refused with a code and reason. */
export interface Ready {
  ok: boolean;
  code: string;
  reason: string;
}

/** Everything both MACs cover: both sides' messages, as each side saw them. */
export interface Transcript {
  v: number;
  hello: Pick<PeerHello, "from" | "to" | "id" | "nonce" | "max" | "ping">;
  welcome: Pick<Welcome, "from" | "id" | "nonce" | "max" | "ping">;
}

function fail(what: string): never {
  throw new ProtocolError(`Cannot decode handshake: ${what}`);
}

function str(o: Record<string, unknown>, k: string): string {
  const v = o[k];
  if (typeof v !== "string") fail(`field "${k}" must be a string`);
  if (v.length > MAX_FIELD_CHARS) fail(`field "${k}" is too long`);
  return v;
}

function num(o: Record<string, unknown>, k: string): number {
  const v = o[k];
  if (typeof v !== "number" || !Number.isSafeInteger(v)) fail(`field "${k}" must be an integer`);
  return v;
}

function positive(o: Record<string, unknown>, k: string): number {
  const v = num(o, k);
  if (v < 1) fail(`field "${k}" must be a positive integer`);
  return v;
}

function challenge(o: Record<string, unknown>, k: string): string {
  const v = str(o, k);
  if (v.length !== 2 * CHALLENGE_BYTES || !/^[0-9a-f]+$/.test(v)) fail(`field "${k}" must be ${CHALLENGE_BYTES} bytes of hex`);
  return v;
}

function bool(o: Record<string, unknown>, k: string): boolean {
  const v = o[k];
  if (typeof v !== "boolean") fail(`field "${k}" must be a boolean`);
  return v;
}

function decodeObject(bytes: Uint8Array): Record<string, unknown> {
  let v: unknown;
  try {
    v = unpack(bytes);
  } catch (e) {
    throw new ProtocolError("Cannot decode handshake: invalid msgpack", { cause: e });
  }
  if (typeof v !== "object" || v === null || Array.isArray(v)) fail("payload is not a map");
  return v as Record<string, unknown>;
}

/** Encodes any handshake message (a msgpack map of its defined fields). */
export function encodeHandshake(h: Hello | Welcome | Proof | Ready): Uint8Array {
  const o: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(h)) if (v !== undefined) o[k] = v;
  return pack(o);
}

/** A handshake message of `op` carrying `body`, ready for `Link.send`. */
export function handshakeMessage(op: number, body: Hello | Welcome | Proof | Ready): OutMessage {
  return { op, flags: 0, mux: 0, seq: 0, deadline: 0, route: null, payload: encodeHandshake(body) };
}

/**
 * The version of a hello, read before anything else so that a peer of another
 * version is told so, whatever the rest of its hello looks like.
 *
 * @throws {ProtocolError} not a map, or no integer `v`
 */
export function helloVersion(bytes: Uint8Array): number {
  return num(decodeObject(bytes), "v");
}

/** Decodes and validates a hello. @throws {ProtocolError} */
export function decodeHello(bytes: Uint8Array): Hello {
  const o = decodeObject(bytes);
  const v = num(o, "v");
  if (o.kind === "peer") {
    return {
      kind: "peer",
      v,
      from: str(o, "from"),
      to: str(o, "to"),
      id: str(o, "id"),
      nonce: challenge(o, "nonce"),
      max: positive(o, "max"),
      ping: positive(o, "ping"),
    };
  }
  if (o.kind === "admin") {
    return {
      kind: "admin",
      v,
      token: str(o, "token"),
      nonce: challenge(o, "nonce"),
      max: positive(o, "max"),
      ping: positive(o, "ping"),
    };
  }
  fail("unknown hello kind");
}

/** Decodes and validates a welcome. @throws {ProtocolError} */
export function decodeWelcome(bytes: Uint8Array): Welcome {
  const o = decodeObject(bytes);
  const ok = bool(o, "ok");
  if (!ok) return refusedWelcome(num(o, "v"), str(o, "code"), str(o, "reason"));
  return {
    ok,
    v: num(o, "v"),
    from: str(o, "from"),
    id: str(o, "id"),
    nonce: challenge(o, "nonce"),
    max: positive(o, "max"),
    ping: positive(o, "ping"),
    mac: str(o, "mac"),
    code: "",
    reason: "",
  };
}

/** A refusing welcome: only the code and reason mean anything. */
export function refusedWelcome(v: number, code: string, reason: string): Welcome {
  return { ok: false, v, from: "", id: "", nonce: "", max: 1, ping: 1, mac: "", code, reason };
}

/** Decodes a proof. @throws {ProtocolError} */
export function decodeProof(bytes: Uint8Array): Proof {
  return { mac: str(decodeObject(bytes), "mac") };
}

/** Decodes a ready. @throws {ProtocolError} */
export function decodeReady(bytes: Uint8Array): Ready {
  const o = decodeObject(bytes);
  const ok = bool(o, "ok");
  return ok ? { ok, code: "", reason: "" } : { ok, code: str(o, "code"), reason: str(o, "reason") };
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

/**
 * The bytes a MAC covers: a role label and every field of the transcript, as
 * a JSON array (unambiguous: each string is quoted and escaped). A field added
 * to the handshake later is appended here, so that it is covered too.
 */
export function transcriptBytes(role: "acceptor" | "dialer", t: Transcript): Uint8Array<ArrayBuffer> {
  const h = t.hello;
  const w = t.welcome;
  return encoder.encode(JSON.stringify([
    "wsgrid-handshake",
    role,
    t.v,
    h.from,
    h.to,
    w.from,
    h.id,
    w.id,
    h.nonce,
    w.nonce,
    h.max,
    h.ping,
    w.max,
    w.ping,
  ]));
}

function toHex(b: Uint8Array): string {
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

/** The MAC of one side over the transcript, hex. */
export async function signTranscript(key: HmacKey, role: "acceptor" | "dialer", t: Transcript): Promise<string> {
  return toHex(new Uint8Array(await crypto.subtle.sign("HMAC", key, transcriptBytes(role, t))));
}

/** Verifies one side's MAC over the transcript (WebCrypto verify: constant time). */
export async function verifyTranscript(key: HmacKey, role: "acceptor" | "dialer", t: Transcript, mac: string): Promise<boolean> {
  const raw = fromHex(mac);
  if (raw === null) return false;
  return await crypto.subtle.verify("HMAC", key, raw, transcriptBytes(role, t));
}

/** A random challenge / instance id, hex. */
export function randomId(bytes = 16): string {
  const b = new Uint8Array(bytes);
  crypto.getRandomValues(b);
  return toHex(b);
}

/** A fresh challenge. */
export function newChallenge(): string {
  return randomId(CHALLENGE_BYTES);
}

/** Constant-time comparison of two strings (admin tokens). */
export function constantTimeEqual(a: string, b: string): boolean {
  const n = Math.max(a.length, b.length);
  let diff = a.length ^ b.length;
  for (let i = 0; i < n; i++) diff |= (a.charCodeAt(i) | 0) ^ (b.charCodeAt(i) | 0);
  return diff === 0;
}
