/**
 * Micro-benchmark of `LockArgs` codecs: encode + decode round trip, ns per
 * message and bytes per message, for
 *
 * - the binary codec chosen as `lockArgsCodec` (src/locks/lock_args.ts),
 * - the other candidate, msgpackr with an array of 6 items (lock_args_msgpack.ts),
 * - MinIO's old text format: one field per line, one resource per line,
 *   decoded by scanning the bytes for '\n' (as its `bufio.Scanner` did),
 * - JSON,
 * - the floor: the native calls the binary codec cannot avoid (one
 *   `TextEncoder.encodeInto` into a slab, one `TextDecoder.decode`, plain
 *   `Uint8Array` reads and `slice`s) with no checks at all, writing the same
 *   bytes; "round trip / floor" is what the codec's checks and bookkeeping cost.
 *
 * Candidates are interleaved within each round (the machine is shared and
 * noisy), and each reports the median of its rounds.
 *
 * Run directly under any runtime:
 *
 * ```sh
 * node_modules/.bin/deno run -A scripts/bench/lockargs.ts [--quick]
 * node_modules/.bin/bun run scripts/bench/lockargs.ts [--quick]
 * node_modules/.bin/node scripts/bench/lockargs.ts [--quick]
 * ```
 *
 * @module
 */

import { isNativeAccelerationEnabled } from "msgpackr";
import { type LockArgs, lockArgsCodec } from "../../src/locks/lock_args.ts";
import { decodeLockArgsMsgpack, encodeLockArgsMsgpack } from "../../src/locks/lock_args_msgpack.ts";

/**
 * Options of {@link runLockArgsBench}.
 */
export interface LockArgsBenchOptions {
  /**
   * Measured rounds per codec and shape; the median is reported.
   * @default 9
   */
  rounds?: number;
  /**
   * Target duration of one codec's share of a round, ms.
   * @default 40
   */
  roundMs?: number;
  /**
   * Warm-up per codec and shape before measuring, ms.
   * @default 200
   */
  warmupMs?: number;
  /**
   * Resource counts to measure; one message shape per count.
   * @default [1, 16]
   */
  resourceCounts?: number[];
}

/** One codec on one message shape. */
export interface LockArgsBenchResult {
  /** Codec label. */
  codec: string;
  /** Resources per message. */
  resources: number;
  /** Mean encoded size over the message pool, bytes. */
  bytes: number;
  /** Median encode + decode round trip, ns per message. */
  nsPerOp: number;
  /** Fastest and slowest round, ns per message. */
  minNs: number;
  maxNs: number;
  /** How many times faster than the text format on the same shape (text ns / this ns). */
  speedupVsText: number;
  /** How many times faster than JSON on the same shape (JSON ns / this ns). */
  speedupVsJson: number;
  /** How many times slower than the floor on the same shape (this ns / floor ns). */
  vsFloor: number;
}

interface Candidate {
  name: string;
  encode(value: LockArgs): Uint8Array;
  decode(bytes: Uint8Array): LockArgs;
  /**
   * `n` round trips over `pool`; returns a value that keeps the work alive.
   * Each candidate has its own copy of this loop so its call sites stay
   * monomorphic: a loop shared by all codecs would add the same dispatch cost
   * to each and hide the differences.
   */
  run(pool: LockArgs[], n: number): number;
}

/** Label of the codec exported as `lockArgsCodec`. */
export const CHOSEN = "binary (lockArgsCodec)";
/** Label of the MinIO-style text baseline. */
export const TEXT = "text (line scan)";
/** Label of the JSON baseline. */
export const JSON_CODEC = "JSON";
/** Label of the floor: the binary codec's native calls without its checks. */
export const FLOOR = "floor (native calls, no checks)";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

const NEWLINE = 10;

/** MinIO's old format, one field per line: uid, source, owner, quorum, then resources. */
function encodeText(value: LockArgs): Uint8Array {
  let text = `${value.uid}\n${value.source}\n${value.owner}\n${value.quorum}\n`;
  for (const resource of value.resources) text += `${resource}\n`;
  return encoder.encode(text);
}

function decodeText(bytes: Uint8Array): LockArgs {
  let start = 0;
  const line = (): string => {
    const end = bytes.indexOf(NEWLINE, start);
    if (end < 0) throw new Error("Cannot decode text LockArgs: missing newline");
    const text = decoder.decode(bytes.subarray(start, end));
    start = end + 1;
    return text;
  };
  const uid = line();
  const source = line();
  const owner = line();
  const quorum = Number(line());
  if (!Number.isInteger(quorum)) throw new Error("Cannot decode text LockArgs: quorum is not an integer");
  const resources: string[] = [];
  while (start < bytes.length) resources.push(line());
  return { uid, resources, source, owner, quorum };
}

/** MinIO's old newline text format as a codec, for the lock bench's end-to-end comparison. */
export const textLockArgsCodec: { encode(value: LockArgs): Uint8Array; decode(bytes: Uint8Array): LockArgs } = {
  encode: encodeText,
  decode: decodeText,
};

function encodeJson(value: LockArgs): Uint8Array {
  return encoder.encode(JSON.stringify(value));
}

function decodeJson(bytes: Uint8Array): LockArgs {
  const v: unknown = JSON.parse(decoder.decode(bytes));
  // Validate the shape, as any decoder taking input from the network must.
  if (typeof v !== "object" || v === null) throw new Error("Cannot decode JSON LockArgs: not an object");
  const o = v as Record<string, unknown>;
  const { uid, resources, source, owner, quorum } = o;
  if (
    typeof uid !== "string" || typeof source !== "string" || typeof owner !== "string" ||
    !Array.isArray(resources) || !resources.every((r) => typeof r === "string") ||
    typeof quorum !== "number" || !Number.isInteger(quorum)
  ) throw new Error("Cannot decode JSON LockArgs: wrong shape");
  return { uid, resources, source, owner, quorum };
}

const FLOOR_SLAB_BYTES = 16 * 1024;
let floorSlab = new ArrayBuffer(FLOOR_SLAB_BYTES);
let floorBytes = new Uint8Array(floorSlab);
let floorOffset = 0;

/**
 * The binary format's bytes for the bench's messages (ASCII, every length and
 * the quorum below 128, so every varint is one byte), with nothing checked.
 */
function encodeFloor(value: LockArgs): Uint8Array {
  const { uid, source, owner, resources, quorum } = value;
  const count = resources.length;
  let text = uid + source + owner;
  for (let i = 0; i < count; i++) text += resources[i];
  const header = 6 + count;
  const size = header + text.length;
  if (floorOffset + size > FLOOR_SLAB_BYTES) {
    floorSlab = new ArrayBuffer(FLOOR_SLAB_BYTES);
    floorBytes = new Uint8Array(floorSlab);
    floorOffset = 0;
  }
  const at = floorOffset;
  const b = floorBytes;
  b[at] = 1;
  b[at + 1] = uid.length;
  b[at + 2] = source.length;
  b[at + 3] = owner.length;
  b[at + 4] = quorum;
  b[at + 5] = count;
  for (let i = 0; i < count; i++) b[at + 6 + i] = resources[i].length;
  encoder.encodeInto(text, b.subarray(at + header, at + size));
  floorOffset = (at + size + 7) & ~7;
  return new Uint8Array(floorSlab, at, size);
}

function decodeFloor(bytes: Uint8Array): LockArgs {
  const text = decoder.decode(bytes);
  const count = bytes[5];
  let at = 6 + count;
  const uid = text.slice(at, at += bytes[1]);
  const source = text.slice(at, at += bytes[2]);
  const owner = text.slice(at, at += bytes[3]);
  const resources = new Array<string>(count);
  for (let i = 0; i < count; i++) resources[i] = text.slice(at, at += bytes[6 + i]);
  return { uid, resources, source, owner, quorum: bytes[4] };
}

const POOL = 64;
const MASK = POOL - 1;

const CANDIDATES: Candidate[] = [
  {
    name: CHOSEN,
    encode: lockArgsCodec.encode,
    decode: lockArgsCodec.decode,
    run(pool, n) {
      let sink = 0;
      for (let i = 0; i < n; i++) {
        const d = lockArgsCodec.decode(lockArgsCodec.encode(pool[i & MASK]));
        sink += d.quorum + d.resources.length;
      }
      return sink;
    },
  },
  {
    name: "msgpackr array",
    encode: encodeLockArgsMsgpack,
    decode: decodeLockArgsMsgpack,
    run(pool, n) {
      let sink = 0;
      for (let i = 0; i < n; i++) {
        const d = decodeLockArgsMsgpack(encodeLockArgsMsgpack(pool[i & MASK]));
        sink += d.quorum + d.resources.length;
      }
      return sink;
    },
  },
  {
    name: TEXT,
    encode: encodeText,
    decode: decodeText,
    run(pool, n) {
      let sink = 0;
      for (let i = 0; i < n; i++) {
        const d = decodeText(encodeText(pool[i & MASK]));
        sink += d.quorum + d.resources.length;
      }
      return sink;
    },
  },
  {
    name: JSON_CODEC,
    encode: encodeJson,
    decode: decodeJson,
    run(pool, n) {
      let sink = 0;
      for (let i = 0; i < n; i++) {
        const d = decodeJson(encodeJson(pool[i & MASK]));
        sink += d.quorum + d.resources.length;
      }
      return sink;
    },
  },
  {
    name: FLOOR,
    encode: encodeFloor,
    decode: decodeFloor,
    run(pool, n) {
      let sink = 0;
      for (let i = 0; i < n; i++) {
        const d = decodeFloor(encodeFloor(pool[i & MASK]));
        sink += d.quorum + d.resources.length;
      }
      return sink;
    },
  },
];

function uuid(n: number): string {
  const hex = (n * 2654435761 % 0x1000000000000).toString(16).padStart(12, "0");
  return `0b6f4a6e-2d7c-4f1e-9b7a-${hex}`;
}

/** Messages shaped like dsync's: UUID uid and owner, an object path, a call site. */
function messages(resources: number): LockArgs[] {
  return Array.from({ length: POOL }, (_, i) => ({
    uid: uuid(i + 1),
    resources: Array.from(
      { length: resources },
      (_, k) => `bucket-${i % 7}/photos/2024/${String(k).padStart(3, "0")}/IMG_${1000 + i}.jpg`,
    ),
    source: `[cmd/erasure-object.go:${100 + i}:erasureObjects.PutObject()]`,
    owner: uuid(i * 31 + 7),
    quorum: 3,
  }));
}

function sameArgs(a: LockArgs, b: LockArgs): boolean {
  return a.uid === b.uid && a.source === b.source && a.owner === b.owner && a.quorum === b.quorum &&
    a.resources.length === b.resources.length && a.resources.every((r, i) => r === b.resources[i]);
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

/** Runs `iterations` round trips of `c`; returns elapsed ms and the work's sink value. */
function timeRoundTrips(c: Candidate, pool: LockArgs[], iterations: number): { ms: number; sink: number } {
  const start = performance.now();
  const sink = c.run(pool, iterations);
  return { ms: performance.now() - start, sink };
}

function median(sorted: number[]): number {
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

const nextTick = (): Promise<void> => new Promise((resolve) => setTimeout(resolve, 0));

/**
 * Measures every codec on every message shape.
 *
 * @param opts rounds and durations
 * @returns one result per codec and shape, shapes in the order asked
 * @example
 * ```ts
 * import { runLockArgsBench } from "./scripts/bench/lockargs.ts";
 * const results = await runLockArgsBench({ rounds: 5 });
 * ```
 */
export async function runLockArgsBench(opts: LockArgsBenchOptions = {}): Promise<LockArgsBenchResult[]> {
  const rounds = opts.rounds ?? 9;
  const roundMs = opts.roundMs ?? 40;
  const warmupMs = opts.warmupMs ?? 200;
  const results: LockArgsBenchResult[] = [];
  // Summed from every run so no engine can treat the round trips as dead code.
  let sink = 0;
  for (const resources of opts.resourceCounts ?? [1, 16]) {
    const pool = messages(resources);
    const iterations = new Map<Candidate, number>();
    const bytes = new Map<Candidate, number>();
    for (const c of CANDIDATES) {
      let total = 0;
      for (const m of pool) {
        const encoded = c.encode(m);
        total += encoded.length;
        if (!sameArgs(c.decode(encoded), m)) throw new Error(`Cannot run bench: ${c.name} does not round-trip`);
        if (c.name === FLOOR && !sameBytes(encoded, lockArgsCodec.encode(m))) {
          throw new Error(`Cannot run bench: ${FLOOR} writes other bytes than ${CHOSEN}`);
        }
      }
      bytes.set(c, total / POOL);
      // Warm up, doubling the batch until it lasts warmupMs; size rounds from the last rate.
      let n = 256;
      let spent = 0;
      let rate = 0;
      while (spent < warmupMs) {
        const { ms, sink: s } = timeRoundTrips(c, pool, n);
        sink += s;
        spent += ms;
        rate = n / Math.max(ms, 0.001);
        if (ms < warmupMs / 4) n *= 2;
      }
      iterations.set(c, Math.max(POOL, Math.round(rate * roundMs)));
      await nextTick();
    }
    const samples = new Map<Candidate, number[]>(CANDIDATES.map((c) => [c, []]));
    for (let round = 0; round < rounds; round++) {
      // Rotate the order so no codec always runs right after the same neighbour.
      for (let k = 0; k < CANDIDATES.length; k++) {
        const c = CANDIDATES[(round + k) % CANDIDATES.length];
        const n = iterations.get(c) ?? POOL;
        const { ms, sink: s } = timeRoundTrips(c, pool, n);
        sink += s;
        samples.get(c)?.push((ms * 1e6) / n);
      }
      await nextTick();
    }
    const medians = new Map(CANDIDATES.map((c) => [c.name, median([...(samples.get(c) ?? [])].sort((a, b) => a - b))]));
    const textNs = medians.get(TEXT) ?? NaN;
    const jsonNs = medians.get(JSON_CODEC) ?? NaN;
    const floorNs = medians.get(FLOOR) ?? NaN;
    for (const c of CANDIDATES) {
      const sorted = [...(samples.get(c) ?? [])].sort((a, b) => a - b);
      const ns = median(sorted);
      results.push({
        codec: c.name,
        resources,
        bytes: Math.round(bytes.get(c) ?? 0),
        nsPerOp: Math.round(ns),
        minNs: Math.round(sorted[0]),
        maxNs: Math.round(sorted[sorted.length - 1]),
        speedupVsText: Math.round((textNs / ns) * 100) / 100,
        speedupVsJson: Math.round((jsonNs / ns) * 100) / 100,
        vsFloor: Math.round((ns / floorNs) * 100) / 100,
      });
    }
  }
  return results;
}

/** The codec's goals on one runtime and shape (issue 15). */
export interface LockArgsGoals {
  /** Least speed-up over the text format. */
  minVsText: number;
  /** Least speed-up over JSON. */
  minVsJson: number;
  /** Most round trip / floor. */
  maxVsFloor: number;
}

/**
 * The goals of `lockArgsCodec` on `runtime` ("deno", "bun", "node") for
 * messages of `resources` resources: within 1.25× of the floor everywhere;
 * ≥ 5× text and ≥ 2× JSON on V8. On Bun, JavaScriptCore's fast `JSON.parse`
 * and cheap allocation make the baselines faster, so one resource asks for
 * ≥ 2× text and ≥ 1.3× JSON, and 16 resources for ≥ 4× and ≥ 2×.
 *
 * @param runtime the runtime's short name
 * @param resources resources per message
 * @returns the goals
 */
export function lockArgsGoals(runtime: string, resources: number): LockArgsGoals {
  if (runtime !== "bun") return { minVsText: 5, minVsJson: 2, maxVsFloor: 1.25 };
  return resources <= 1
    ? { minVsText: 2, minVsJson: 1.3, maxVsFloor: 1.25 }
    : { minVsText: 4, minVsJson: 2, maxVsFloor: 1.25 };
}

/** Formats results as a plain-text table. */
export function formatLockArgsBench(results: LockArgsBenchResult[]): string {
  const header = ["resources", "codec", "bytes", "ns/op (median)", "min–max", "× vs text", "× vs JSON", "/ floor"];
  const rows = results.map((r) => [
    String(r.resources),
    r.codec,
    String(r.bytes),
    String(r.nsPerOp),
    `${r.minNs}–${r.maxNs}`,
    r.speedupVsText.toFixed(2),
    r.speedupVsJson.toFixed(2),
    r.vsFloor.toFixed(2),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i].length)));
  const line = (cells: string[]) =>
    cells.map((cell, i) => (i === 1 ? cell.padEnd(widths[i]) : cell.padStart(widths[i]))).join("  ");
  return [line(header), line(widths.map((w) => "-".repeat(w))), ...rows.map(line)].join("\n");
}

// Direct run: the only place that looks at the runtime.
const meta = import.meta as ImportMeta & { main?: boolean };
const argv1 = globalThis.process?.argv?.[1];
const isMain = meta.main ?? (argv1 !== undefined && new URL(import.meta.url).pathname === argv1);
if (isMain) {
  const g = globalThis as { Deno?: { version: { deno: string }; args: string[] }; Bun?: { version: string } };
  const runtime = g.Deno !== undefined
    ? `Deno ${g.Deno.version.deno}`
    : g.Bun !== undefined
    ? `Bun ${g.Bun.version}`
    : `Node ${globalThis.process?.version}`;
  const args = g.Deno?.args ?? globalThis.process?.argv.slice(2) ?? [];
  const quick = args.includes("--quick");
  const results = await runLockArgsBench(quick ? { rounds: 3, roundMs: 10, warmupMs: 30 } : {});
  const native = isNativeAccelerationEnabled ? "on" : "off";
  console.log(`LockArgs encode+decode round trip — ${runtime}${quick ? " (quick)" : ""}, msgpackr native: ${native}\n`);
  console.log(formatLockArgsBench(results));
  const short = g.Deno !== undefined ? "deno" : g.Bun !== undefined ? "bun" : "node";
  const goals = results.filter((r) => r.codec === CHOSEN).map((r) => {
    const goal = lockArgsGoals(short, r.resources);
    return `${r.resources} resource(s): ${r.speedupVsText}× vs text (goal ≥ ${goal.minVsText}), ` +
      `${r.speedupVsJson}× vs JSON (goal ≥ ${goal.minVsJson}), ${r.vsFloor}× floor (goal ≤ ${goal.maxVsFloor})`;
  });
  console.log(`\n${goals.join("\n")}`);
}
