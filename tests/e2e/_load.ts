/**
 * The mixed load of the reliability soaks, shared by the in-process soak
 * (tests/e2e/reliability_test.ts) and the node processes (tests/e2e/_node.ts, command "load"):
 * callers that issue random requests and streams until stopped and account for every call.
 *
 * Each call has a deadline; a watchdog counts it as hung when it has not settled by the
 * deadline + a margin, and a call still unsettled when the load is collected is lost. A call
 * that resolves with other bytes, or rejects with anything but the errors a fault may cause,
 * is wrong.
 *
 * The remote must serve `echo` (returns its payload), `sleep` (payload: ms as text; resolves
 * "slept", or rejects when its signal aborts), `fail` (always throws) and the stream
 * `echo-stream` (echoes each request message).
 *
 * @module
 */
import { type Connection, DisconnectedError, GridError, RemoteError, TimeoutError } from "../../mod.ts";

/** What a load run counted. */
export interface LoadCounts {
  total: number;
  /** Resolved with the right result. */
  ok: number;
  /** Streams cancelled by the caller that ended with the abort reason, as planned. */
  cancelled: number;
  /** Rejected with an error a fault may cause (or RemoteError from `fail`), by code. */
  rejected: Record<string, number>;
  wrong: number;
  hung: number;
  /** Calls not settled when collected. */
  lost: number;
  /** The first few wrong or hung calls, described. */
  problems: string[];
}

/** Options of {@link startLoad}. */
export interface LoadOptions {
  /** Deadline of each call, ms. */
  timeout: number;
  /** A call not settled this long after its deadline is hung, ms. */
  hungMargin: number;
  /** Random numbers in [0, 1). */
  rnd: () => number;
}

/** A running load; {@link RunningLoad.stop} ends it and resolves with the counts. */
export interface RunningLoad {
  counts: LoadCounts;
  /** Stops issuing calls and waits (at most deadline + margin + 1 s) for those in flight. */
  stop(): Promise<LoadCounts>;
}

const enc = new TextEncoder();
const dec = new TextDecoder();
const CANCELLED = "cancelled as planned";
const KINDS = 8;

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * The "sleep" handler the load calls: resolves with "slept" after the milliseconds the
 * request names (60 s when it names none), or rejects with the signal's reason as soon as
 * the call is cancelled.
 */
export function sleepFor(req: Uint8Array, signal: AbortSignal): Promise<Uint8Array> {
  const ms = Number(dec.decode(req)) || 60_000;
  return new Promise<Uint8Array>((resolve, reject) => {
    const timer = setTimeout(() => resolve(enc.encode("slept")), ms);
    signal.addEventListener("abort", () => {
      clearTimeout(timer);
      reject(signal.reason);
    }, { once: true });
  });
}

/** A small seeded PRNG (mulberry32). */
export function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const BIG = new Uint8Array(64 << 10).map((_, i) => i & 0xff);

/** One call of kind `kind`; resolves with a problem, {@link CANCELLED}, or null when it behaved. */
async function call(c: Connection, kind: number, id: number, o: LoadOptions): Promise<string | null> {
  const tag = enc.encode(`c${id}`);
  const timeout = o.timeout;
  switch (kind) {
    case 0: {
      const res = await c.request("echo", tag, { timeout });
      return dec.decode(res) === `c${id}` ? null : "echo returned other bytes";
    }
    case 1: {
      const res = await c.request("echo", BIG, { timeout });
      return res.length === BIG.length && res[777] === BIG[777] && res[65535] === BIG[65535] ? null : "large echo returned other bytes";
    }
    case 2: {
      const res = await c.request("sleep", enc.encode("30"), { timeout });
      return dec.decode(res) === "slept" ? null : "sleep returned other bytes";
    }
    case 3:
      // The handler outlives the deadline: must end with TimeoutError (or DisconnectedError).
      await c.request("sleep", enc.encode("60000"), { timeout: 200 + Math.floor(o.rnd() * 300) });
      return "a call past its deadline resolved";
    case 4:
      await c.request("fail", tag, { timeout });
      return "a failing handler resolved";
    case 5: {
      const res = await c.request("echo", tag, { timeout, waitForConnect: true });
      return dec.decode(res) === `c${id}` ? null : "echo (waitForConnect) returned other bytes";
    }
    case 6: {
      const st = await c.newStream("echo-stream", new Uint8Array(0), { timeout });
      const w = st.requests!.getWriter();
      const writing = (async () => {
        for (let k = 0; k < 20; k++) await w.write(enc.encode(`s${id}.${k}`));
        await w.close();
      })();
      writing.catch(() => {});
      let k = 0;
      for await (const m of st.responses) {
        if (dec.decode(m) !== `s${id}.${k}`) return `stream message ${k} differs`;
        k++;
      }
      await writing;
      return k === 20 ? null : `stream ended after ${k} of 20 messages`;
    }
    default: {
      const ac = new AbortController();
      const st = await c.newStream("echo-stream", new Uint8Array(0), { timeout, signal: ac.signal });
      const w = st.requests!.getWriter();
      const r = st.responses.getReader();
      await w.write(tag);
      const first = await r.read();
      if (dec.decode(first.value) !== `c${id}`) return "cancelled stream's echo differs";
      const reason = new Error("cancelled by the load");
      ac.abort(reason);
      const after = await r.read().then(() => "a cancelled stream kept delivering", (e: unknown) => e === reason ? null : e);
      if (after === null) return CANCELLED;
      return typeof after === "string" ? after : `cancelled stream failed with ${String(after)}`;
    }
  }
}

/**
 * Starts `perTarget` callers on each connection of `targets`, each issuing one call of a
 * random kind after another until stopped.
 */
export function startLoad(targets: Connection[], perTarget: number, o: LoadOptions): RunningLoad {
  const counts: LoadCounts = { total: 0, ok: 0, cancelled: 0, rejected: {}, wrong: 0, hung: 0, lost: 0, problems: [] };
  const pending = new Set<number>();
  let stopped = false;
  let nextId = 0;
  const note = (text: string) => {
    if (counts.problems.length < 10) counts.problems.push(text);
  };

  const worker = async (c: Connection): Promise<void> => {
    while (!stopped) {
      const id = nextId++;
      const kind = Math.floor(o.rnd() * KINDS);
      counts.total++;
      pending.add(id);
      const watchdog = setTimeout(() => {
        counts.hung++;
        note(`call ${id} (kind ${kind}) to ${c.remote} not settled ${o.hungMargin} ms after its deadline`);
      }, o.timeout + o.hungMargin);
      let problem: string | null;
      try {
        problem = await call(c, kind, id, o);
        if (problem === null) counts.ok++;
        else if (problem === CANCELLED) {
          counts.cancelled++;
          problem = null;
        }
      } catch (e) {
        const code = e instanceof GridError ? e.code : `non-grid error: ${String(e)}`;
        counts.rejected[code] = (counts.rejected[code] ?? 0) + 1;
        // Faults may fail any call with DisconnectedError or TimeoutError; only the failing
        // handler may end with RemoteError. Anything else is a wrong result.
        const allowed = e instanceof DisconnectedError || e instanceof TimeoutError || (kind === 4 && e instanceof RemoteError);
        problem = allowed ? null : `rejected with ${e instanceof GridError ? `${e.name} (${e.code}): ${e.message}` : String(e)}`;
      }
      clearTimeout(watchdog);
      pending.delete(id);
      if (problem !== null) {
        counts.wrong++;
        note(`call ${id} (kind ${kind}) to ${c.remote}: ${problem}`);
      }
      // Calls to a link that is down fail at once; pace them so the loop does not spin.
      if (c.state !== "up") await sleep(20);
    }
  };

  const workers = targets.flatMap((c) => Array.from({ length: perTarget }, () => worker(c)));
  return {
    counts,
    async stop() {
      stopped = true;
      let timer: ReturnType<typeof setTimeout> | undefined;
      await Promise.race([
        Promise.all(workers),
        new Promise<void>((resolve) => timer = setTimeout(resolve, o.timeout + o.hungMargin + 1_000)),
      ]);
      clearTimeout(timer);
      counts.lost = pending.size;
      return counts;
    },
  };
}

/** Total of {@link LoadCounts.rejected}. */
export function rejectedTotal(c: LoadCounts): number {
  return Object.values(c.rejected).reduce((n, v) => n + v, 0);
}
