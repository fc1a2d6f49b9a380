/**
 * Driver of the "no promise left behind" property (tests/e2e/no_promise_left_test.ts), run as a
 * child process: `deno run -A tests/e2e/_no_promise_left.ts SEED RUNS`, `bun run ...`, `node ...`.
 *
 * Node A is a Manager in this process; node B is a tests/e2e/_node.ts process of the same
 * runtime. Both are reached through TCP proxies here, so that "disconnect" can cut the socket
 * without a close frame. fast-check (seeded) draws sequences of operations — requests to
 * handlers that answer, throw, sleep or do not exist, with deadlines (Infinity included) and
 * aborts; streams that are read, partly read, canceled, aborted or left alone; disconnects; kills
 * of B (then restarted) — and runs each sequence with the operations overlapping. After each
 * sequence every promise the library handed out must settle within a bound, and neither side may
 * have a call in flight or being served. Then A and B close and both processes must exit by
 * themselves: this driver never calls process.exit on success, so a timer or socket left behind
 * keeps it alive and the test sees it.
 *
 * Prints one line `RESULT {json}` and exits 0 when the property held; exits 1 otherwise.
 *
 * @module
 */
import process from "node:process";
import fc from "fast-check";
import { Manager, type Stream } from "../../mod.ts";
import { detectRuntime, type GridServer, serve } from "../../src/adapters/serve.ts";
import { NodeProc } from "./_cluster.ts";
import { freePorts, startCuttingProxy } from "../_net.ts";

const HOST = "127.0.0.1";
const SECRET = "no promise left behind";
/** Bound for every promise of a sequence to settle after its last operation. */
const SETTLE_MS = 20_000;
const seed = Number(process.argv[2] ?? 1);
const numRuns = Number(process.argv[3] ?? 6);
const runtime = detectRuntime();
const enc = new TextEncoder();

type Op =
  | { t: "request"; handler: "echo" | "sleep" | "fail" | "missing" | "until-aborted"; ms: number; timeout: number | null; abortAfter: number | null; waitForConnect: boolean }
  | { t: "stream"; handler: "echo-stream" | "produce" | "stop-reading" | "write-after-close" | "missing"; writes: number; oversize: boolean; close: boolean; read: "all" | "some" | "cancel" | "none"; abortAfter: number | null; timeout: number | null }
  | { t: "disconnect"; reconnect: boolean }
  | { t: "kill"; reconnect: boolean }
  | { t: "pause"; ms: number };

const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 5, arbitrary: fc.record({
    t: fc.constant("request" as const),
    handler: fc.constantFrom("echo" as const, "sleep" as const, "fail" as const, "missing" as const, "until-aborted" as const),
    ms: fc.integer({ min: 0, max: 150 }),
    timeout: fc.option(fc.oneof(fc.integer({ min: 10, max: 300 }), fc.constant(Infinity)), { nil: null }),
    abortAfter: fc.option(fc.integer({ min: 0, max: 150 }), { nil: null }),
    waitForConnect: fc.boolean(),
  }) },
  { weight: 4, arbitrary: fc.record({
    t: fc.constant("stream" as const),
    handler: fc.constantFrom(
      "echo-stream" as const,
      "produce" as const,
      "stop-reading" as const,
      "write-after-close" as const,
      "missing" as const,
    ),
    writes: fc.integer({ min: 0, max: 40 }),
    oversize: fc.boolean(),
    close: fc.boolean(),
    read: fc.constantFrom("all" as const, "some" as const, "cancel" as const, "none" as const),
    // Half of the streams have neither: they end by themselves or not at all.
    abortAfter: fc.option(fc.integer({ min: 0, max: 200 }), { nil: null, freq: 1 }),
    timeout: fc.option(fc.oneof(fc.integer({ min: 20, max: 400 }), fc.constant(Infinity)), { nil: null, freq: 1 }),
  }) },
  { weight: 1, arbitrary: fc.record({ t: fc.constant("disconnect" as const), reconnect: fc.boolean() }) },
  { weight: 1, arbitrary: fc.record({ t: fc.constant("kill" as const), reconnect: fc.boolean() }) },
  { weight: 2, arbitrary: fc.record({ t: fc.constant("pause" as const), ms: fc.integer({ min: 0, max: 100 }) }) },
);

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Rejects when `p` does not settle within `ms`. */
function bounded<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  return Promise.race([
    p,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`not settled within ${ms} ms: ${what}`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

const [realA, realB, portA, portB] = await freePorts(4);
const A = `ws://${HOST}:${portA}`;
const B = `ws://${HOST}:${portB}`;
const proxyA = await startCuttingProxy(realA, portA);
const proxyB = await startCuttingProxy(realB, portB);
const nodeConfig = { local: B, hosts: [A, B], secret: SECRET, port: realB, pingInterval: 300, backoff: { base: 20, cap: 200 } };
let b = new NodeProc(runtime, nodeConfig);
await b.waitReady();
const grid = new Manager({ local: A, hosts: [A, B], secret: SECRET, pingInterval: 300, requestTimeout: 2_000, backoff: { base: 20, cap: 200 } });
const server: GridServer = await serve(grid, { port: realA, hostname: HOST });
const ab = grid.connection(B);
await ab.waitForConnect({ timeout: 20_000 });

/** Every promise the library handed out during the current sequence, with what it was. */
let handedOut: { what: string; p: Promise<unknown> }[] = [];
/** Streams opened by the sequence that the caller abandons (read partly or not at all, or whose handler waits for requests never closed). */
let abandoned: Stream<Uint8Array, Uint8Array>[] = [];
let ops = 0;
/** Contract breaks seen while the sequences ran. */
const violations: string[] = [];
let promises = 0;
/** How the handed-out promises settled, by what they were: evidence that the sequences reach the cases. */
const outcomes: Record<string, number> = {};

function track<T>(what: string, p: Promise<T>): Promise<T> {
  handedOut.push({ what, p });
  const kind = what.replace(/^op \d+: /, "").replace(/ \d+$/, "");
  p.then(
    () => (outcomes[`${kind}: ok`] = (outcomes[`${kind}: ok`] ?? 0) + 1),
    (e) => {
      const code = (e as { code?: unknown })?.code ?? (e as Error)?.name ?? "error";
      outcomes[`${kind}: ${String(code)}`] = (outcomes[`${kind}: ${String(code)}`] ?? 0) + 1;
    },
  );
  return p;
}

function signalFor(abortAfter: number | null): AbortSignal | undefined {
  if (abortAfter === null) return undefined;
  const ctrl = new AbortController();
  setTimeout(() => ctrl.abort(new Error("aborted by the sequence")), abortAfter);
  return ctrl.signal;
}

async function runStream(op: Extract<Op, { t: "stream" }>, i: number): Promise<void> {
  const payload = op.handler === "produce" ? enc.encode(JSON.stringify({ n: op.writes })) : new Uint8Array(0);
  const options = { signal: signalFor(op.abortAfter), timeout: op.timeout ?? undefined };
  const st = await track(`op ${i}: newStream`, ab.newStream(op.handler, payload, options));
  // A stream read to its end must end by itself, unless its handler echoes requests that are never closed.
  if (op.read !== "all" || (op.handler === "echo-stream" && !op.close)) abandoned.push(st);
  if (st.requests !== null) {
    const w = st.requests.getWriter();
    for (let k = 0; k < op.writes; k++) {
      // One write over maxMessageBytes (4 MiB) in the middle, when drawn: it must end the call.
      const chunk = op.oversize && k === op.writes >> 1 ? new Uint8Array((4 << 20) + 1) : Uint8Array.of(k);
      track(`op ${i}: write ${k}`, w.write(chunk));
    }
    if (op.close) track(`op ${i}: requests close`, w.close());
  }
  const reader = st.responses.getReader();
  if (op.read === "all") {
    for (;;) if ((await track(`op ${i}: read`, reader.read())).done) break;
  } else if (op.read === "some") {
    for (let k = 0; k < 3; k++) if ((await track(`op ${i}: read`, reader.read())).done) break;
  } else if (op.read === "cancel") {
    await track(`op ${i}: cancel`, reader.cancel(new Error("canceled by the sequence")));
  }
}

/** Waits until the connection is up again (after the loss was noticed). */
async function reconnect(): Promise<void> {
  const end = performance.now() + 5_000;
  while (ab.state === "up" && performance.now() < end) await sleep(5);
  await ab.waitForConnect({ timeout: 20_000 });
}

async function runOp(op: Op, i: number): Promise<void> {
  switch (op.t) {
    case "request": {
      const payload = op.handler === "sleep" ? enc.encode(String(op.ms)) : Uint8Array.of(i & 255);
      // A call to until-aborted without deadline or abort would wait forever, as it should.
      const forever = op.handler === "until-aborted" && op.timeout === Infinity && op.abortAfter === null;
      const timeout = forever ? 100 : op.timeout ?? undefined;
      const options = { signal: signalFor(op.abortAfter), timeout, waitForConnect: op.waitForConnect };
      const call = track(`op ${i}: request ${op.handler}`, ab.request(op.handler, payload, options));
      if (op.handler === "until-aborted") {
        // Its handler answers only after its deadline or cancel: that is never a result.
        call.then(() => violations.push(`op ${i}: a call to until-aborted resolved (timeout ${op.timeout})`), () => {});
      }
      return;
    }
    case "stream":
      void runStream(op, i).catch(() => {});
      return;
    case "disconnect":
      proxyA.cut();
      proxyB.cut();
      if (op.reconnect) await reconnect();
      return;
    case "kill": {
      b.kill9();
      await b.exited;
      b = new NodeProc(runtime, nodeConfig);
      await b.waitReady();
      if (op.reconnect) await reconnect();
      return;
    }
    case "pause":
      await sleep(op.ms);
  }
}

interface Busy {
  requests: number;
  streams: number;
}

async function idle(): Promise<string | null> {
  const end = performance.now() + 10_000;
  let last = "";
  while (performance.now() < end) {
    const mine = grid.stats().connections[B];
    const theirs = (await b.command<{ stats: { connections: Record<string, { inFlight: Busy; serving: Busy }> } }>({ cmd: "stats" }))
      .stats.connections[A];
    const busy = { a: { inFlight: mine.inFlight, serving: mine.serving }, b: { inFlight: theirs.inFlight, serving: theirs.serving } };
    const total = [busy.a.inFlight, busy.a.serving, busy.b.inFlight, busy.b.serving].reduce((n, x) => n + x.requests + x.streams, 0);
    if (total === 0) return null;
    last = JSON.stringify(busy);
    await sleep(50);
  }
  return `still busy after 10 s: ${last}`;
}

const property = fc.asyncProperty(fc.array(opArb, { minLength: 1, maxLength: 14 }), async (sequence) => {
  handedOut = [];
  abandoned = [];
  await ab.waitForConnect({ timeout: 20_000 });
  for (let i = 0; i < sequence.length; i++) await runOp(sequence[i], i);
  ops += sequence.length;
  // The streams the caller abandoned are ended by it, as a scope with `await using` would; the
  // others must end by themselves.
  await sleep(50);
  for (const st of abandoned) await st[Symbol.asyncDispose]();
  let pending = handedOut.length;
  const all = Promise.all(handedOut.map(({ what, p }) => p.then(() => pending--, () => pending--).then(() => what)));
  await bounded(all, SETTLE_MS, `${handedOut.length} promises`).catch(() => {
    throw new Error(`${pending} of ${handedOut.length} promises did not settle within ${SETTLE_MS} ms`);
  });
  promises += handedOut.length;
  const busy = await idle();
  if (busy !== null) throw new Error(busy);
  if (violations.length > 0) throw new Error(violations.join("; "));
});

let failure: string | null = null;
try {
  await fc.assert(property, { seed, numRuns, endOnFailure: true });
} catch (e) {
  failure = e instanceof Error ? e.message : String(e);
}

await grid.close();
await server.close();
await b.command({ cmd: "close" }).catch(() => {});
const exit = await bounded(b.exited, 10_000, "node B's exit").catch(() => null);
await proxyA.close();
await proxyB.close();
const result = { runtime, seed, numRuns, ops, promises, outcomes, failure, bExit: exit === null ? "did not exit" : exit.code };
console.log(`RESULT ${JSON.stringify(result)}`);
if (failure !== null || exit === null || exit.code !== 0) {
  if (exit === null) await b.destroy();
  process.exitCode = 1;
}
