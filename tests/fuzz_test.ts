/**
 * Fuzzes the frame and handshake decoders: every input must either decode or
 * raise ProtocolError. Inputs are valid frames built with encodeFrame, then
 * mutated (bit flips, truncation, splices, forged lengths, ...), plus random bytes.
 *
 * Environment: WSGRID_FUZZ_FRAMES (frames, default 100000), WSGRID_FUZZ_HANDSHAKES
 * (handshake payloads, default 20000), WSGRID_FUZZ_SEED (u32; default random, printed).
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import process from "node:process";
import { pack } from "msgpackr";
import { ProtocolError } from "../src/errors.ts";
import { decodeFrame, encodeFrame, encodeRoute, type Message, messageSize, type OutMessage } from "../src/protocol/frame.ts";
import {
  decodeHello,
  decodeProof,
  decodeReady,
  decodeWelcome,
  encodeHandshake,
  type Hello,
  type Proof,
  type Ready,
  refusedWelcome,
  type Welcome,
} from "../src/auth/handshake.ts";
import { DEFAULT_LIMITS, HEADER_BYTES } from "../src/protocol/limits.ts";
import { KNOWN_FLAGS, OP_NAMES, opHasRoute, PROTOCOL_VERSION } from "../src/protocol/ops.ts";

function envInt(name: string, dflt: number): number {
  const v = process.env[name];
  if (v === undefined || v === "") return dflt;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw new RangeError(`Cannot read ${name}: "${v}" is not a non-negative integer`);
  return n;
}

const FRAMES = envInt("WSGRID_FUZZ_FRAMES", 100_000);
const HANDSHAKES = envInt("WSGRID_FUZZ_HANDSHAKES", 20_000);
const SEED = envInt("WSGRID_FUZZ_SEED", (Date.now() ^ (Math.random() * 0x100000000)) >>> 0) >>> 0;
/** Frames are split over this many tests so no single test runs long (Bun's default test timeout is 5 s). */
const CHUNKS = 10;
const CHUNK_TIMEOUT_MS = 600_000;

console.log(
  `fuzz: seed ${SEED} (replay with WSGRID_FUZZ_SEED=${SEED}), ${FRAMES} frames, ${HANDSHAKES} handshake payloads`,
);

const MAX = DEFAULT_LIMITS.maxMessageBytes;
const OPS = Object.keys(OP_NAMES).map(Number);
const MAX_PAYLOADS = [0, 1, 8, 64, 1024, MAX];
/** Mostly the default limit; small limits now and then (they reject most payloads). */
function pickMaxPayload(r: Rng): number {
  return r.chance(0.7) ? MAX : r.pick(MAX_PAYLOADS);
}
const INTERESTING_U32 = [0, 1, 2, 17, 18, 19, 0x7f, 0x80, 0xff, 0x100, 0xffff, 0x10000, MAX, MAX + 1, 0x7fffffff, 0x80000000, 0xfffffffe, 0xffffffff];
const INTERESTING_U8 = [0, 1, 2, 0x7f, 0x80, 0xc0, 0xef, 0xbb, 0xbf, 0xfe, 0xff];
const NAMES = ["echo", "lock.acquire", "grid.stats", "x", "ü", "日本語", "\uFEFF", "a".repeat(255), "ü".repeat(127) + "z"];

/** sfc32: small, fast, deterministic. */
class Rng {
  private a: number;
  private b: number;
  private c: number;
  private d: number;

  constructor(seed: number) {
    this.a = 0x9e3779b9;
    this.b = 0x243f6a88;
    this.c = 0xb7e15162;
    this.d = seed >>> 0;
    for (let i = 0; i < 16; i++) this.u32();
  }

  u32(): number {
    const t = (((this.a + this.b) | 0) + this.d) | 0;
    this.d = (this.d + 1) | 0;
    this.a = this.b ^ (this.b >>> 9);
    this.b = (this.c + (this.c << 3)) | 0;
    this.c = (this.c << 21) | (this.c >>> 11);
    this.c = (this.c + t) | 0;
    return t >>> 0;
  }

  /** Integer in [0, n). */
  int(n: number): number {
    return Math.floor((this.u32() / 0x100000000) * n);
  }

  chance(p: number): boolean {
    return this.u32() / 0x100000000 < p;
  }

  pick<T>(xs: readonly T[]): T {
    return xs[this.int(xs.length)];
  }

  bytes(n: number): Uint8Array<ArrayBuffer> {
    const b = new Uint8Array(n);
    for (let i = 0; i < n; i++) b[i] = this.u32() & 0xff;
    return b;
  }

  /** Small numbers mostly, sometimes anything. */
  length(small: number, large: number): number {
    return this.chance(0.9) ? this.int(small + 1) : this.int(large + 1);
  }
}

function hex(b: Uint8Array): string {
  const shown = b.subarray(0, 4096);
  let s = "";
  for (let i = 0; i < shown.length; i++) s += shown[i].toString(16).padStart(2, "0");
  return b.length > shown.length ? `${s}... (${b.length} bytes)` : s;
}

function randomName(r: Rng, allowEmpty: boolean): string {
  if (allowEmpty && r.chance(0.4)) return "";
  if (r.chance(0.5)) return r.pick(NAMES);
  const n = 1 + r.int(24);
  let s = "";
  for (let i = 0; i < n; i++) s += String.fromCharCode(r.chance(0.9) ? 0x21 + r.int(94) : 0xa0 + r.int(0x2000));
  return s;
}

function randomMessage(r: Rng): OutMessage {
  const op = r.pick(OPS);
  const u32 = () => (r.chance(0.5) ? r.int(100) : r.chance(0.3) ? r.pick(INTERESTING_U32) : r.u32());
  return {
    op,
    flags: 0,
    mux: u32(),
    seq: u32(),
    deadline: u32(),
    route: opHasRoute(op) ? encodeRoute(randomName(r, false), randomName(r, true)) : null,
    payload: r.bytes(r.length(24, 400)),
  };
}

interface Built {
  frame: Uint8Array<ArrayBuffer>;
  /** Offset of each message in the frame. */
  starts: number[];
}

function validFrame(r: Rng): Built {
  const n = r.chance(0.8) ? 1 + r.int(4) : 1 + r.int(40);
  const msgs: OutMessage[] = [];
  const starts: number[] = [];
  let size = 0;
  for (let i = 0; i < n; i++) {
    const m = randomMessage(r);
    msgs.push(m);
    starts.push(size);
    size += messageSize(m);
  }
  return { frame: encodeFrame(msgs, 0, n, size), starts };
}

function concat(...parts: Uint8Array[]): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/** One mutation step; `starts` are message offsets of the unmutated frame (may be stale after a step). */
function mutate(r: Rng, f: Uint8Array<ArrayBuffer>, starts: number[]): Uint8Array<ArrayBuffer> {
  const at = (): number => (starts.length > 0 && r.chance(0.7) ? r.pick(starts) : r.int(Math.max(1, f.length)));
  switch (r.int(12)) {
    case 0: { // flip a few bits
      const g = f.slice();
      const flips = 1 + r.int(8);
      for (let i = 0; i < flips && g.length > 0; i++) g[r.int(g.length)] ^= 1 << r.int(8);
      return g;
    }
    case 1: { // set bytes to edge values
      const g = f.slice();
      const n = 1 + r.int(4);
      for (let i = 0; i < n && g.length > 0; i++) g[r.int(g.length)] = r.chance(0.5) ? r.pick(INTERESTING_U8) : r.int(256);
      return g;
    }
    case 2: // truncate
      return f.slice(0, r.int(f.length + 1));
    case 3: // append garbage
      return concat(f, r.bytes(1 + r.int(40)));
    case 4: { // splice with another valid frame
      const other = validFrame(r).frame;
      return concat(f.subarray(0, r.int(f.length + 1)), other.subarray(r.int(other.length + 1)));
    }
    case 5: { // forge a payload length
      const g = f.slice();
      const s = at();
      if (s + HEADER_BYTES <= g.length) {
        const rem = g.length - s - HEADER_BYTES;
        const v = r.chance(0.5) ? r.pick(INTERESTING_U32) : r.chance(0.5) ? Math.max(0, rem + r.int(5) - 2) : r.u32();
        new DataView(g.buffer).setUint32(s + 14, v >>> 0);
      }
      return g;
    }
    case 6: { // forge route length bytes
      const g = f.slice();
      const s = at() + HEADER_BYTES + (r.chance(0.5) ? 0 : r.int(8));
      if (s < g.length) g[s] = r.chance(0.5) ? r.pick(INTERESTING_U8) : r.int(256);
      return g;
    }
    case 7: { // forge op and/or flags
      const g = f.slice();
      const s = at();
      if (s + 1 < g.length) {
        if (r.chance(0.7)) g[s] = r.chance(0.5) ? r.pick(OPS) : r.int(256);
        if (r.chance(0.5)) g[s + 1] = r.chance(0.7) ? r.int(2) : r.int(256);
      }
      return g;
    }
    case 8: { // insert bytes
      const p = r.int(f.length + 1);
      return concat(f.subarray(0, p), r.bytes(1 + r.int(20)), f.subarray(p));
    }
    case 9: { // delete bytes
      const p = r.int(f.length + 1);
      return concat(f.subarray(0, p), f.subarray(Math.min(f.length, p + 1 + r.int(20))));
    }
    case 10: // repeat the frame
      return concat(f, f, r.chance(0.5) ? f : new Uint8Array(0));
    default: { // a header with random fields in front
      const h = r.bytes(HEADER_BYTES);
      if (r.chance(0.7)) h[0] = r.pick(OPS);
      if (r.chance(0.7)) h[1] = r.int(2);
      if (r.chance(0.5)) new DataView(h.buffer).setUint32(14, r.int(64));
      return concat(h, r.chance(0.5) ? f : r.bytes(r.int(64)));
    }
  }
}

function fuzzInput(r: Rng): Uint8Array<ArrayBuffer> {
  const roll = r.int(100);
  if (roll < 8) return r.bytes(r.length(64, 600)); // pure noise
  if (roll < 10) return validFrame(r).frame; // unmutated
  if (roll === 10 && r.chance(0.05)) {
    // right at / past the message count limit
    const n = DEFAULT_LIMITS.maxMessagesPerFrame + (r.chance(0.5) ? 0 : 1);
    const g = new Uint8Array(n * HEADER_BYTES);
    for (let i = 0; i < n; i++) g[i * HEADER_BYTES] = 3; // OP_PING, empty
    return g;
  }
  const { frame, starts } = validFrame(r);
  let f = frame;
  const steps = 1 + (r.chance(0.3) ? r.int(4) : 0);
  for (let i = 0; i < steps; i++) f = mutate(r, f, starts);
  return f;
}

/** What a successful decode must satisfy: known ops/flags, bounded payloads, and re-encoding gives the input back. */
function checkDecoded(input: Uint8Array, msgs: Message[], maxPayload: number): string | null {
  if (msgs.length === 0) return "decoded to zero messages";
  if (msgs.length > DEFAULT_LIMITS.maxMessagesPerFrame) return `decoded ${msgs.length} messages`;
  const outs: OutMessage[] = [];
  let size = 0;
  for (const m of msgs) {
    if (OP_NAMES[m.op] === undefined) return `unknown op ${m.op} decoded`;
    if ((m.flags & ~KNOWN_FLAGS) !== 0) return `unknown flags ${m.flags} decoded`;
    if (m.payload.length > maxPayload) return `payload ${m.payload.length} > maxPayload ${maxPayload}`;
    const route = opHasRoute(m.op) ? encodeRoute(m.handler, m.subroute) : null;
    if (route === null && (m.handler !== "" || m.subroute !== "")) return "route decoded on an op without one";
    const o: OutMessage = { op: m.op, flags: m.flags, mux: m.mux, seq: m.seq, deadline: m.deadline, route, payload: m.payload };
    outs.push(o);
    size += messageSize(o);
  }
  const again = encodeFrame(outs, 0, outs.length, size);
  if (again.length !== input.length) return `re-encoded to ${again.length} bytes, input had ${input.length}`;
  for (let i = 0; i < again.length; i++) {
    if (again[i] !== input[i]) return `re-encoding differs at byte ${i}`;
  }
  return null;
}

function isProtocolError(e: unknown): boolean {
  return e instanceof ProtocolError && e.code === "protocol";
}

function describeThrown(e: unknown): string {
  return e instanceof Error ? `${e.constructor.name}: ${e.message}` : `non-error ${String(e)}`;
}

function chunkSeed(chunk: number): number {
  return (Math.imul(SEED ^ 0x5bd1e995, 0x01000193) + Math.imul(chunk + 1, 0x9e3779b1)) >>> 0;
}

describe(`decodeFrame fuzz (seed ${SEED})`, () => {
  for (let chunk = 0; chunk < CHUNKS; chunk++) {
    const count = Math.floor(FRAMES / CHUNKS) + (chunk < FRAMES % CHUNKS ? 1 : 0);
    it(`only ProtocolError is ever thrown: chunk ${chunk + 1}/${CHUNKS}, ${count} frames`, { timeout: CHUNK_TIMEOUT_MS }, () => {
      const seed = chunkSeed(chunk);
      const r = new Rng(seed);
      let decoded = 0;
      let refused = 0;
      for (let i = 0; i < count; i++) {
        const input = fuzzInput(r);
        const maxPayload = pickMaxPayload(r);
        let msgs: Message[];
        try {
          msgs = decodeFrame(input, maxPayload);
        } catch (e) {
          if (!isProtocolError(e)) {
            assert.fail(
              `decodeFrame threw ${describeThrown(e)} (seed ${SEED}, chunk ${chunk}, input ${i}, maxPayload ${maxPayload}); input hex: ${hex(input)}`,
            );
          }
          refused++;
          continue;
        }
        const problem = checkDecoded(input, msgs, maxPayload);
        if (problem !== null) {
          assert.fail(`decodeFrame accepted a bad frame: ${problem} (seed ${SEED}, chunk ${chunk}, input ${i}); input hex: ${hex(input)}`);
        }
        decoded++;
      }
      assert.equal(decoded + refused, count);
      // The mix must exercise both outcomes, or the generator is broken.
      if (count >= 1000) {
        assert.ok(decoded > count / 50, `only ${decoded} of ${count} inputs decoded`);
        assert.ok(refused > count / 10, `only ${refused} of ${count} inputs were refused`);
      }
    });
  }
});

// --- handshake payloads ------------------------------------------------------

function validHello(r: Rng): Hello {
  const max = 1 + r.int(1 << 24);
  const ping = 1 + r.int(60_000);
  if (r.chance(0.3)) {
    return { kind: "admin", v: PROTOCOL_VERSION, token: randomName(r, true), nonce: hex(r.bytes(32)), max, ping };
  }
  return {
    kind: "peer",
    v: PROTOCOL_VERSION,
    from: "ws://127.0.0.1:9000",
    to: "ws://127.0.0.1:9001",
    id: hex(r.bytes(16)),
    nonce: hex(r.bytes(32)),
    max,
    ping,
  };
}

function validWelcome(r: Rng): Welcome {
  if (r.chance(0.5)) return refusedWelcome(PROTOCOL_VERSION, r.pick(["unauthorized", "protocol"]), randomName(r, true));
  return {
    ok: true,
    v: PROTOCOL_VERSION,
    from: "ws://127.0.0.1:9001",
    id: hex(r.bytes(16)),
    nonce: hex(r.bytes(32)),
    max: 1 + r.int(1 << 24),
    ping: 1 + r.int(60_000),
    mac: hex(r.bytes(32)),
    code: "",
    reason: "",
  };
}

function validProofOrReady(r: Rng): Proof | Ready {
  if (r.chance(0.5)) return { mac: hex(r.bytes(32)) };
  return r.chance(0.5) ? { ok: true, code: "", reason: "" } : { ok: false, code: "unauthorized", reason: randomName(r, true) };
}

const FIELD_NAMES = [
  "kind", "v", "from", "to", "id", "nonce", "mac", "token", "ok", "code", "reason", "max", "ping", "__proto__", "constructor",
];

function randomValue(r: Rng, depth: number): unknown {
  switch (r.int(depth > 2 ? 8 : 11)) {
    case 0:
      return null;
    case 1:
      return r.chance(0.5);
    case 2:
      return r.pick([0, -1, 1.5, NaN, Infinity, -Infinity, 2 ** 53, PROTOCOL_VERSION, r.u32()]);
    case 3:
      return randomName(r, true);
    case 4:
      return "s".repeat(r.pick([2047, 2048, 2049, 10_000]));
    case 5:
      return r.bytes(r.int(20));
    case 6:
      return r.pick(["peer", "admin", "", "PEER"]);
    case 7:
      return BigInt(r.u32()) * 0x100000000n;
    case 8:
      return Array.from({ length: r.int(4) }, () => randomValue(r, depth + 1));
    case 9:
      return new Date(r.u32());
    default:
      return randomObject(r, depth + 1);
  }
}

function randomObject(r: Rng, depth: number): Record<string, unknown> {
  const o: Record<string, unknown> = {};
  const n = r.int(10);
  for (let i = 0; i < n; i++) {
    const k = r.chance(0.8) ? r.pick(FIELD_NAMES) : randomName(r, true);
    // defineProperty makes "__proto__" an own key instead of changing the prototype.
    Object.defineProperty(o, k, { value: randomValue(r, depth), enumerable: true, writable: true, configurable: true });
  }
  return o;
}

function handshakeInput(r: Rng): Uint8Array {
  const roll = r.int(10);
  if (roll === 0) return r.bytes(r.length(40, 400));
  if (roll === 1) return pack(randomValue(r, 0));
  const roll2 = r.int(3);
  const base: Record<string, unknown> = { ...(roll2 === 0 ? validHello(r) : roll2 === 1 ? validWelcome(r) : validProofOrReady(r)) };
  if (roll <= 4) {
    // one field replaced by a wrong-typed value, or removed
    const k = r.pick(Object.keys(base));
    if (r.chance(0.3)) delete base[k];
    else base[k] = randomValue(r, 1);
    if (r.chance(0.3)) {
      const extra = randomObject(r, 1);
      for (const key of Object.keys(extra)) {
        Object.defineProperty(base, key, { value: extra[key], enumerable: true, writable: true, configurable: true });
      }
    }
    return pack(base);
  }
  let b: Uint8Array<ArrayBuffer> = Uint8Array.from(encodeHandshake(base as unknown as Hello));
  const steps = 1 + r.int(3);
  for (let i = 0; i < steps; i++) b = mutate(r, b, []);
  return b;
}

function positiveInts(...ns: unknown[]): boolean {
  return ns.every((n) => typeof n === "number" && Number.isSafeInteger(n) && n >= 1);
}

function checkHello(h: Hello): string | null {
  const strings = h.kind === "peer" ? [h.from, h.to, h.id, h.nonce] : h.kind === "admin" ? [h.token, h.nonce] : null;
  if (strings === null) return `unknown kind ${String((h as { kind: unknown }).kind)}`;
  if (!Number.isSafeInteger(h.v) || !positiveInts(h.max, h.ping)) return "v, max or ping is not a valid integer";
  if (!/^[0-9a-f]{64}$/.test(h.nonce)) return "nonce is not 32 bytes of hex";
  for (const s of strings) {
    if (typeof s !== "string") return "a string field is not a string";
    if (s.length > 2048) return "a string field is longer than 2048";
  }
  return null;
}

function checkWelcome(w: Welcome): string | null {
  if (typeof w.ok !== "boolean") return "ok is not a boolean";
  if (!Number.isSafeInteger(w.v) || !positiveInts(w.max, w.ping)) return "v, max or ping is not a valid integer";
  for (const s of [w.id, w.from, w.mac, w.code, w.reason]) {
    if (typeof s !== "string") return "a string field is not a string";
    if (s.length > 2048) return "a string field is longer than 2048";
  }
  return null;
}

function checkProof(p: Proof): string | null {
  return typeof p.mac === "string" && p.mac.length <= 2048 ? null : "mac is not a short string";
}

function checkReady(r: Ready): string | null {
  if (typeof r.ok !== "boolean") return "ok is not a boolean";
  return [r.code, r.reason].every((s) => typeof s === "string" && s.length <= 2048) ? null : "code or reason is not a short string";
}

describe(`handshake decoder fuzz (seed ${SEED})`, () => {
  it(`decodeHello, decodeWelcome, decodeProof and decodeReady throw only ProtocolError on ${HANDSHAKES} inputs`, { timeout: CHUNK_TIMEOUT_MS }, () => {
    const r = new Rng(chunkSeed(CHUNKS + 1));
    let accepted = 0;
    for (let i = 0; i < HANDSHAKES; i++) {
      const input = handshakeInput(r);
      const where = `(seed ${SEED}, handshake input ${i}); input hex: ${hex(input)}`;
      for (const [name, decode, check] of [
        ["decodeHello", decodeHello, checkHello],
        ["decodeWelcome", decodeWelcome, checkWelcome],
        ["decodeProof", decodeProof, checkProof],
        ["decodeReady", decodeReady, checkReady],
      ] as const) {
        let v: Hello | Welcome | Proof | Ready;
        try {
          v = decode(input);
        } catch (e) {
          if (!isProtocolError(e)) assert.fail(`${name} threw ${describeThrown(e)} ${where}`);
          continue;
        }
        const problem = (check as (x: Hello | Welcome | Proof | Ready) => string | null)(v);
        if (problem !== null) assert.fail(`${name} accepted a bad payload: ${problem} ${where}`);
        accepted++;
      }
    }
    if (HANDSHAKES >= 1000) assert.ok(accepted > 0, "no handshake input decoded: the generator is broken");
  });

  it("valid hellos, welcomes, proofs and readies decode to what was encoded", () => {
    const r = new Rng(chunkSeed(CHUNKS + 2));
    for (let i = 0; i < 200; i++) {
      const h = validHello(r);
      assert.deepEqual(decodeHello(encodeHandshake(h)), h);
      const w = validWelcome(r);
      assert.deepEqual(decodeWelcome(encodeHandshake(w)), w);
      const pr = validProofOrReady(r);
      assert.deepEqual("mac" in pr ? decodeProof(encodeHandshake(pr)) : decodeReady(encodeHandshake(pr)), pr);
    }
  });
});
