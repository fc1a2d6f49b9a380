/**
 * The measurement loop shared by every benchmark client, so the raw baseline
 * and wsgrid are timed by identical code: `concurrency` workers each keep one
 * call outstanding, a warm-up phase is discarded, then completions and their
 * latencies are counted for a fixed window. Everything is bounded in time
 * (`hardTimeoutMs`) and in count (`maxRequests`).
 *
 * @module
 */

import process from "node:process";

/** Options of {@linkcode runLoad}. */
export interface LoadOptions {
  /** Calls kept outstanding at once. */
  concurrency: number;
  /** Discarded warm-up phase, ms. @default 1000 */
  warmupMs?: number;
  /** Measured window, ms. */
  durationMs: number;
  /** Completed calls after which the window ends early (bounds memory). @default 4_000_000 */
  maxRequests?: number;
  /** The whole run (warm-up, window, drain) fails after this long, ms. @default warm-up + duration + 15 s */
  hardTimeoutMs?: number;
}

/** What a client prints: one JSON line. Latencies in ms. */
export interface LoadResult {
  rps: number;
  p50: number;
  p99: number;
  n: number;
  /** Length of the measured window actually used, ms. */
  windowMs: number;
  concurrency: number;
}

/**
 * Runs `call` from `concurrency` workers; each worker awaits its call before
 * issuing the next. `call(seq)` gets a unique sequence number (u32 range).
 *
 * @example
 * ```ts
 * const r = await runLoad((seq) => echo(seq), { concurrency: 64, durationMs: 3000 });
 * console.log(JSON.stringify(r));
 * ```
 */
export async function runLoad(
  call: (seq: number) => Promise<unknown>,
  opts: LoadOptions,
): Promise<LoadResult> {
  const warmupMs = opts.warmupMs ?? 1000;
  const maxRequests = opts.maxRequests ?? 4_000_000;
  const hardTimeoutMs = opts.hardTimeoutMs ?? warmupMs + opts.durationMs + 15_000;
  // Latencies go into 256 KiB chunks taken as needed. One array sized for maxRequests (16 MB)
  // was external memory that changed how V8 collected the measured process: under a stream on
  // Node, the run ended in frequent full collections in 4 of 5 runs instead of 1 of 5.
  const CHUNK = 1 << 16;
  const chunks: Float32Array[] = [];
  let chunk = new Float32Array(0);
  let at = 0;
  let n = 0;
  let seq = 0;
  let phase: "warmup" | "measure" | "stop" = "warmup";
  let windowStart = 0;
  let windowEnd = 0;

  const worker = async (): Promise<void> => {
    while (phase !== "stop") {
      const id = seq;
      seq = (seq + 1) >>> 0;
      const t0 = performance.now();
      await call(id);
      const t1 = performance.now();
      if (phase === "measure" && t0 >= windowStart) {
        if (at === chunk.length) {
          chunk = new Float32Array(CHUNK);
          chunks.push(chunk);
          at = 0;
        }
        chunk[at++] = t1 - t0;
        n++;
        if (n >= maxRequests) stop();
      }
    }
  };
  const stop = (): void => {
    if (phase === "stop") return;
    phase = "stop";
    windowEnd = performance.now();
  };

  let hardTimer: ReturnType<typeof setTimeout> | undefined;
  const timedOut = new Promise<never>((_, reject) => {
    hardTimer = setTimeout(
      () => reject(new Error(`Cannot finish load run: no result after ${hardTimeoutMs} ms`)),
      hardTimeoutMs,
    );
  });
  const warmTimer = setTimeout(() => {
    phase = "measure";
    windowStart = performance.now();
  }, warmupMs);
  const endTimer = setTimeout(stop, warmupMs + opts.durationMs);
  try {
    const workers = Array.from({ length: opts.concurrency }, worker);
    await Promise.race([Promise.all(workers), timedOut]);
  } finally {
    clearTimeout(hardTimer);
    clearTimeout(warmTimer);
    clearTimeout(endTimer);
  }
  const windowMs = windowEnd - windowStart;
  const sorted = new Float32Array(n);
  chunks.forEach((c, i) => sorted.set(c.subarray(0, Math.min(CHUNK, n - i * CHUNK)), i * CHUNK));
  sorted.sort();
  const pick = (q: number): number =>
    n === 0 ? NaN : round3(sorted[Math.min(n - 1, Math.floor(q * n))]);
  return {
    rps: Math.round((n / windowMs) * 1000),
    p50: pick(0.5),
    p99: pick(0.99),
    n,
    windowMs: Math.round(windowMs),
    concurrency: opts.concurrency,
  };
}

function round3(x: number): number {
  return Math.round(x * 1000) / 1000;
}

/** Reads `--name value` flags into a map; bare `--flag` becomes "true". */
export function parseFlags(args: readonly string[]): Map<string, string> {
  const flags = new Map<string, string>();
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (!a.startsWith("--")) throw new TypeError(`Cannot parse arguments: unexpected "${a}"`);
    const eq = a.indexOf("=");
    if (eq > 0) flags.set(a.slice(2, eq), a.slice(eq + 1));
    else if (i + 1 < args.length && !args[i + 1].startsWith("--")) flags.set(a.slice(2), args[++i]);
    else flags.set(a.slice(2), "true");
  }
  return flags;
}

/** A numeric flag with a default; rejects non-finite values. */
export function numberFlag(flags: Map<string, string>, name: string, fallback: number): number {
  const v = flags.get(name);
  if (v === undefined) return fallback;
  const x = Number(v);
  if (!Number.isFinite(x)) throw new TypeError(`Cannot parse flag --${name}: "${v}" is not a number`);
  return x;
}

/** Builds a payload of `size` bytes whose first 4 bytes are `id` (little-endian u32). */
export function makePayload(size: number, id: number): Uint8Array<ArrayBuffer> {
  // Index writes rather than a DataView: touching `.buffer` of a small typed
  // array makes V8 move it off-heap, a cost of the harness, not of what is measured.
  const buf = new Uint8Array(size);
  buf[0] = id & 0xff;
  buf[1] = (id >>> 8) & 0xff;
  buf[2] = (id >>> 16) & 0xff;
  buf[3] = (id >>> 24) & 0xff;
  for (let i = 4; i < size; i++) buf[i] = i & 0xff;
  return buf;
}

/**
 * Ends the process when its parent goes away (stdin closes) or after
 * `maxSeconds`, running `cleanup` first. Servers use this so no benchmark
 * process outlives the harness.
 */
export function exitWithParent(cleanup: () => Promise<void> | void, maxSeconds: number): void {
  let done = false;
  const bye = async (code: number): Promise<void> => {
    if (done) return;
    done = true;
    try {
      await Promise.race([cleanup(), new Promise((r) => setTimeout(r, 2000))]);
    } finally {
      process.exit(code);
    }
  };
  const life = setTimeout(() => void bye(0), maxSeconds * 1000);
  life.unref?.();
  process.stdin.on("end", () => void bye(0));
  process.stdin.on("close", () => void bye(0));
  process.stdin.resume();
  process.on("SIGTERM", () => void bye(0));
  process.on("SIGINT", () => void bye(0));
}

/**
 * Samples this process's resident set size every `everyMs` (the timer does not
 * keep the process alive) and keeps the peak, overall and since each `mark()`.
 *
 * @example
 * ```ts
 * const mem = new MemorySampler();
 * const m = mem.mark();
 * // ... work ...
 * console.log(mem.peakSinceMB(m), mem.peakMB());
 * ```
 */
export class MemorySampler {
  private peak = 0;
  private readonly marks: number[] = [];
  private readonly timer: ReturnType<typeof setInterval>;

  constructor(everyMs = 20) {
    this.sample();
    this.timer = setInterval(() => this.sample(), everyMs);
    (this.timer as { unref?: () => void }).unref?.();
  }

  /** Current RSS, MB (10^6 bytes). */
  nowMB(): number {
    return toMB(this.sample());
  }

  /** Starts a window; `peakSinceMB(id)` reports the peak from now on. */
  mark(): number {
    this.marks.push(this.sample());
    return this.marks.length - 1;
  }

  peakSinceMB(id: number): number {
    this.sample();
    return toMB(this.marks[id] ?? this.peak);
  }

  /** Peak RSS since the sampler started, MB. */
  peakMB(): number {
    this.sample();
    return toMB(this.peak);
  }

  stop(): void {
    clearInterval(this.timer);
  }

  private sample(): number {
    // memoryUsage.rss() skips the heap statistics that memoryUsage() gathers.
    const rss = typeof process.memoryUsage.rss === "function" ? process.memoryUsage.rss() : process.memoryUsage().rss;
    if (rss > this.peak) this.peak = rss;
    for (let i = 0; i < this.marks.length; i++) if (rss > this.marks[i]) this.marks[i] = rss;
    return rss;
  }
}

function toMB(bytes: number): number {
  return Math.round(bytes / 1e5) / 10;
}

/** What {@linkcode readStreamFor} measured. */
export interface StreamReadResult {
  /** Payload megabytes (10^6 bytes) per second in the measured window. */
  mbps: number;
  msgs: number;
  bytes: number;
  windowMs: number;
}

/**
 * Reads `stream` for `warmupMs` (not counted) and then `durationMs` (counted),
 * or until `signal` aborts, then cancels it. With `readEveryMs` the reader
 * sleeps that long after each message (a slow consumer).
 *
 * @example
 * ```ts
 * const r = await readStreamFor(st.responses, { warmupMs: 300, durationMs: 1000 });
 * ```
 */
export async function readStreamFor(
  stream: ReadableStream<Uint8Array>,
  opts: { warmupMs: number; durationMs: number; readEveryMs?: number; signal?: AbortSignal },
): Promise<StreamReadResult> {
  const reader = stream.getReader();
  const t0 = performance.now();
  const start = t0 + opts.warmupMs;
  const end = start + opts.durationMs;
  let msgs = 0;
  let bytes = 0;
  let windowStart = NaN;
  let now = t0;
  try {
    while (!opts.signal?.aborted) {
      const { done, value } = await reader.read();
      if (done) break;
      now = performance.now();
      if (now >= start) {
        if (Number.isNaN(windowStart)) windowStart = now;
        else {
          msgs++;
          bytes += value.byteLength;
        }
      }
      if (now >= end) break;
      if (opts.readEveryMs) await new Promise((r) => setTimeout(r, opts.readEveryMs));
    }
  } finally {
    await reader.cancel().catch(() => {});
  }
  const windowMs = Number.isNaN(windowStart) ? 0 : now - windowStart;
  return {
    mbps: windowMs > 0 ? Math.round((bytes / 1e6 / (windowMs / 1000)) * 10) / 10 : 0,
    msgs,
    bytes,
    windowMs: Math.round(windowMs),
  };
}
