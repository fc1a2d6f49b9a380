/**
 * One grid node for the cross-runtime end-to-end suite, runnable as
 * `deno run -A tests/e2e/_node.ts CONFIG`, `bun run tests/e2e/_node.ts CONFIG` or
 * `node tests/e2e/_node.ts CONFIG` (CONFIG is JSON, or set env WSGRID_E2E_NODE).
 *
 * CONFIG: `{ local, hosts, secret, pingInterval?, backoff?, maxConcurrentHandshakes?,
 * handshakeTimeout?, countAccepts?, startAt? }` (see `NodeConfig`). The node serves on the
 * port of `local` (127.0.0.1), prints `READY` once serving, then reads one JSON command
 * per line on stdin and answers with one JSON line per reply on stdout:
 * `{ id, ok: true, value }` or `{ id, ok: false, error: { name, code, message } }`.
 * Commands that report later (`inflight`, `stream` with `progressAt`) also send
 * `{ id, event, ... }` lines. See `Command` below for the commands.
 *
 * Handlers: `echo`, `whoami` (runtime, pid, local), `fail` (always throws), `sleep` (waits `ms` from its payload
 * or until its signal aborts), stream `echo-stream` (echoes each request), stream
 * `produce` (payload `{ n }`: writes n responses, the i-th holding i), and for the lifecycle
 * property (tests/e2e/_no_promise_left.ts): `until-aborted` (answers only once its signal
 * aborted), stream `stop-reading` (stops reading its requests after the first, then answers
 * one response), stream `write-after-close` (writes, closes, writes again and returns). Handler
 * aborts are recorded as events, with Manager events (connect, disconnect, restart).
 *
 * On `close` it closes the grid, its server and stdin and then must exit by itself:
 * nothing here calls `process.exit` on that path, so a leftover timer or socket in the
 * library shows as a process that does not exit. When stdin ends (the test runner died)
 * it closes and exits.
 *
 * @module
 */
import process from "node:process";
import { createInterface } from "node:readline";
import { GridError, Manager } from "../../mod.ts";
import type { StreamCall } from "../../mod.ts";
import { detectRuntime, serve } from "../../src/adapters/serve.ts";
import type { GridSocket, SocketAcceptor } from "../../src/socket.ts";
import { type LoadCounts, seeded, sleepFor, startLoad } from "./_load.ts";
import { GC_AVAILABLE, heapUsed } from "./_memory.ts";

/** What the node is started with. */
export interface NodeConfig {
  local: string;
  hosts: string[];
  secret: string;
  pingInterval?: number;
  backoff?: { base?: number; cap?: number };
  maxConcurrentHandshakes?: number;
  handshakeTimeout?: number;
  /** Count accepted sockets, 1013 ("try again later") closes and handshakes waiting for a hello. */
  countAccepts?: boolean;
  /** The port to serve on, when not the port of `local` (a fault proxy on `local` forwards here). */
  port?: number;
  /**
   * Epoch ms: wait until then before creating the Manager and serving, so that many processes
   * spawned together start their grid at the same moment (a reconnect storm).
   */
  startAt?: number;
  /** On SIGTERM, close the grid and the server (a graceful stop, as in a rolling restart); the process then exits by itself. */
  gracefulSigterm?: boolean;
}

/** Accept-side counters (config `countAccepts`), answer of the "accepts" command. */
export interface AcceptCounts {
  /** Sockets handed to the Manager. */
  accepted: number;
  /** Sockets the Manager closed with 1013 because too many handshakes were running. */
  busy: number;
  /** Sockets accepted and still waiting for their hello. */
  pending: number;
  /** The highest `pending` seen once the Manager took a socket. */
  maxPending: number;
}

/** One line of the control protocol, parent → node. */
export type Command =
  | { id: number; cmd: "whoami" }
  | { id: number; cmd: "request"; to: string; handler: string; payload?: string; timeout?: number }
  | { id: number; cmd: "wait"; to: string[]; timeout?: number }
  | { id: number; cmd: "stats" }
  | { id: number; cmd: "events" }
  | { id: number; cmd: "accepts" }
  | {
    id: number;
    cmd: "load";
    /** The hosts to call. */
    to: string[];
    /** How long to run, ms. */
    ms: number;
    /** Callers per host (default 3). */
    perTarget?: number;
    /** Deadline of each call (default 3,000 ms) and the margin after which it counts as hung (default 2,000 ms). */
    timeout?: number;
    hungMargin?: number;
    seed?: number;
  }
  | { id: number; cmd: "inflight"; to: string; n: number; ms?: number }
  | {
    id: number;
    cmd: "stream";
    to: string;
    handler: "echo-stream" | "produce";
    /** Messages to send (echo-stream) or to ask for (produce). */
    count: number;
    /** Bytes per echo-stream message (at least 4); by default sizes vary from 4 to 2,051 bytes. */
    size?: number;
    /** After this many responses, report a "progress" event and read one response per `paceMs`. */
    progressAt?: number;
    paceMs?: number;
  }
  | { id: number; cmd: "setHosts"; hosts: string[] }
  | { id: number; cmd: "broadcast"; handler: string; payload?: string; timeout?: number; includeLocal?: boolean }
  /** Calls `grid.pick()` every millisecond or so for `ms`; answers how many picks were not `up`. */
  | { id: number; cmd: "pick"; ms: number }
  | { id: number; cmd: "close" };

/** A recorded event: Manager events and handler aborts. */
export interface NodeEvent {
  type: string;
  host?: string;
  handler?: string;
  code?: string;
  at: number;
}

/** An error as it crosses the control protocol. */
export interface WireError {
  name: string;
  code: string | null;
  message: string;
}

const config = readConfig();
const runtime = detectRuntime();
const port = config.port ?? Number(new URL(config.local).port);
const enc = new TextEncoder();
const dec = new TextDecoder();
const events: NodeEvent[] = [];

function readConfig(): NodeConfig {
  const text = process.argv[2] ?? process.env.WSGRID_E2E_NODE;
  if (text === undefined) throw new TypeError("Cannot start node: pass the config as JSON in argv or WSGRID_E2E_NODE");
  return JSON.parse(text) as NodeConfig;
}

function send(line: Record<string, unknown>): void {
  process.stdout.write(JSON.stringify(line) + "\n");
}

function wireError(e: unknown): WireError {
  if (e instanceof GridError) return { name: e.name, code: e.code, message: e.message };
  if (e instanceof Error) return { name: e.name, code: null, message: e.message };
  return { name: "Error", code: null, message: String(e) };
}

function reasonCode(reason: unknown): string {
  return reason instanceof GridError ? reason.code : reason instanceof Error ? reason.name : String(reason);
}

/** Records the abort of a handler's signal as an event. */
function watchAbort(handler: string, remote: string, signal: AbortSignal): void {
  const record = () => events.push({ type: "abort", handler, host: remote, code: reasonCode(signal.reason), at: Date.now() });
  if (signal.aborted) record();
  else signal.addEventListener("abort", record, { once: true });
}

function u32(i: number): Uint8Array {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, i);
  return b;
}

function readU32(b: Uint8Array): number {
  return new DataView(b.buffer, b.byteOffset, b.byteLength).getUint32(0);
}

if (config.startAt !== undefined && config.startAt > Date.now()) {
  await new Promise<void>((r) => setTimeout(r, config.startAt! - Date.now()));
}

const grid = new Manager({
  local: config.local,
  hosts: config.hosts,
  secret: config.secret,
  pingInterval: config.pingInterval,
  backoff: config.backoff,
  maxConcurrentHandshakes: config.maxConcurrentHandshakes,
  handshakeTimeout: config.handshakeTimeout,
});
for (const type of ["connect", "disconnect", "restart"]) {
  grid.addEventListener(type, (ev) => {
    events.push({ type, host: (ev as CustomEvent<{ host: string }>).detail.host, at: Date.now() });
  });
}
grid.addEventListener("hosts", (ev) => {
  const { added, removed } = (ev as CustomEvent<{ added: string[]; removed: string[] }>).detail;
  for (const host of added) events.push({ type: "host-added", host, at: Date.now() });
  for (const host of removed) events.push({ type: "host-removed", host, at: Date.now() });
});

grid.handle("echo", (req) => req);
grid.handle("whoami", () => enc.encode(JSON.stringify({ runtime, pid: process.pid, local: config.local })));
grid.handle("sleep", (req, ctx) => {
  watchAbort("sleep", ctx.remote, ctx.signal);
  return sleepFor(req, ctx.signal);
});
grid.handleStream("echo-stream", async (call: StreamCall<Uint8Array, Uint8Array, Uint8Array>) => {
  watchAbort("echo-stream", call.remote, call.signal);
  const w = call.responses.getWriter();
  for await (const chunk of call.requests!) await w.write(chunk);
  await w.close();
}, { inCapacity: 16, outCapacity: 16 });
grid.handleStream("produce", async (call: StreamCall<Uint8Array, Uint8Array, Uint8Array>) => {
  watchAbort("produce", call.remote, call.signal);
  const { n } = JSON.parse(dec.decode(call.payload)) as { n: number };
  const w = call.responses.getWriter();
  for (let i = 0; i < n && !call.signal.aborted; i++) await w.write(u32(i));
  await w.close();
}, { inCapacity: 0, outCapacity: 16 });
grid.handle("fail", () => {
  throw new Error("Cannot serve: this handler always fails");
});
grid.handle("until-aborted", async (req, ctx) => {
  await new Promise((resolve) => ctx.signal.addEventListener("abort", resolve, { once: true }));
  return req;
});
grid.handleStream("stop-reading", async (call: StreamCall<Uint8Array, Uint8Array, Uint8Array>) => {
  for await (const _ of call.requests!) break;
  const w = call.responses.getWriter();
  await w.write(u32(0));
  await w.close();
}, { inCapacity: 2, outCapacity: 4 });
grid.handleStream("write-after-close", (call: StreamCall<Uint8Array, Uint8Array, Uint8Array>) => {
  const w = call.responses.getWriter();
  void w.write(u32(0)).catch(() => {});
  void w.write(u32(1)).catch(() => {});
  void w.close().catch(() => {});
  void w.write(u32(2)).catch(() => {});
}, { inCapacity: 0, outCapacity: 1 });

const accepts: AcceptCounts = { accepted: 0, busy: 0, pending: 0, maxPending: 0 };

/**
 * The grid's acceptor with counters around it: a socket is pending from the upgrade until its
 * first message (the hello) or its close, which is what the Manager's handshake limit counts.
 */
function countingAcceptor(): SocketAcceptor {
  return {
    path: grid.path,
    get maxFrameBytes() {
      return grid.maxFrameBytes;
    },
    useDialer: (open) => grid.useDialer(open),
    acceptSocket(socket: GridSocket, info) {
      accepts.accepted++;
      accepts.pending++;
      let pending = true;
      const done = () => {
        if (!pending) return;
        pending = false;
        accepts.pending--;
      };
      socket.addEventListener("message", done);
      socket.addEventListener("close", done);
      const close = socket.close.bind(socket);
      socket.close = (code?: number, reason?: string) => {
        if (code === 1013 && pending) accepts.busy++;
        done();
        close(code, reason);
      };
      grid.acceptSocket(socket, info);
      if (pending) accepts.maxPending = Math.max(accepts.maxPending, accepts.pending);
    },
  };
}

const server = await serve(config.countAccepts === true ? countingAcceptor() : grid, { port, hostname: "127.0.0.1" });

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

async function runStream(c: Extract<Command, { cmd: "stream" }>): Promise<unknown> {
  const conn = grid.connection(c.to);
  const started = performance.now();
  const payload = c.handler === "produce" ? enc.encode(JSON.stringify({ n: c.count })) : new Uint8Array(0);
  const st = await conn.newStream(c.handler, payload);
  const sizeOf = (i: number) => c.size !== undefined ? Math.max(4, c.size) : 4 + (i * 613) % 2048;
  let writing: Promise<void> = Promise.resolve();
  if (c.handler === "echo-stream") {
    const w = st.requests!.getWriter();
    writing = (async () => {
      for (let i = 0; i < c.count; i++) {
        const m = new Uint8Array(sizeOf(i));
        new DataView(m.buffer).setUint32(0, i);
        for (let j = 4; j < m.length; j++) m[j] = (i + j) & 0xff;
        await w.write(m);
      }
      await w.close();
    })();
    writing.catch(() => {});
  }
  const reader = st.responses.getReader();
  let received = 0;
  let bytes = 0;
  let firstBad: string | null = null;
  for (;;) {
    if (c.progressAt !== undefined && received === c.progressAt) {
      send({ id: c.id, event: "progress", received });
    }
    if (c.progressAt !== undefined && received >= c.progressAt) await sleep(c.paceMs ?? 10);
    const r = await reader.read();
    if (r.done) break;
    const m = r.value;
    if (firstBad === null) {
      if (readU32(m) !== received) firstBad = `message ${received} has index ${readU32(m)}`;
      else if (c.handler === "echo-stream") {
        if (m.length !== sizeOf(received)) firstBad = `message ${received} has ${m.length} bytes, expected ${sizeOf(received)}`;
        else {
          for (let j = 4; j < m.length; j++) {
            if (m[j] !== ((received + j) & 0xff)) {
              firstBad = `message ${received} differs at byte ${j}`;
              break;
            }
          }
        }
      }
    }
    received++;
    bytes += m.length;
  }
  await writing;
  return { received, bytes, firstBad, ms: Math.round(performance.now() - started) };
}

function startInflight(c: Extract<Command, { cmd: "inflight" }>): void {
  const conn = grid.connection(c.to);
  const calls = Array.from({ length: c.n }, () =>
    conn.request("sleep", enc.encode(String(c.ms ?? 60_000)), { timeout: (c.ms ?? 60_000) + 10_000 }).then(
      () => ({ ok: true, at: Date.now() }),
      (e: unknown) => ({ ok: false, error: wireError(e), at: Date.now() }),
    ));
  void Promise.all(calls).then((results) => send({ id: c.id, event: "inflight-done", results }));
}

/** Answer of the "load" command: the counts, and the heap after a quarter of the run and at its end. */
export interface LoadReport {
  counts: LoadCounts;
  heapBefore: number;
  heapAfter: number;
  gc: boolean;
}

async function runLoad(c: Extract<Command, { cmd: "load" }>): Promise<LoadReport> {
  const targets = c.to.map((h) => grid.connection(h));
  const load = startLoad(targets, c.perTarget ?? 3, {
    timeout: c.timeout ?? 3_000,
    hungMargin: c.hungMargin ?? 2_000,
    rnd: seeded(c.seed ?? Math.floor(Math.random() * 0x7fffffff)),
  });
  await sleep(c.ms / 4);
  const heapBefore = await heapUsed();
  await sleep(c.ms - c.ms / 4);
  const counts = await load.stop();
  return { counts, heapBefore, heapAfter: await heapUsed(), gc: GC_AVAILABLE };
}

/** Picks for `ms`, yielding between picks; counts picks, picks that were not up, and times none was up. */
async function pickFor(ms: number): Promise<{ picks: number; notUp: number; noneUp: number; hosts: Record<string, number> }> {
  const until = performance.now() + ms;
  const out = { picks: 0, notUp: 0, noneUp: 0, hosts: {} as Record<string, number> };
  while (performance.now() < until) {
    try {
      const c = grid.pick();
      out.picks++;
      if (c.state !== "up") out.notUp++;
      out.hosts[c.remote] = (out.hosts[c.remote] ?? 0) + 1;
    } catch {
      out.noneUp++;
    }
    await sleep(1);
  }
  return out;
}

let closing = false;

async function close(): Promise<void> {
  closing = true;
  // Both in the same tick: on Deno, a stdin destroyed a tick after rl.close() (or
  // without it) keeps a read pending that holds the process open.
  rl.close();
  process.stdin.destroy();
  await grid.close();
  await server.close();
}

async function execute(c: Command): Promise<unknown> {
  switch (c.cmd) {
    case "whoami":
      return { runtime, pid: process.pid, local: config.local };
    case "request": {
      const started = performance.now();
      const res = await grid.connection(c.to).request(c.handler, enc.encode(c.payload ?? ""), { timeout: c.timeout ?? 10_000 });
      return { text: dec.decode(res), ms: Math.round(performance.now() - started) };
    }
    case "wait":
      await Promise.all(c.to.map((h) => grid.connection(h).waitForConnect({ timeout: c.timeout ?? 10_000 })));
      return null;
    case "stats": {
      const stats = grid.stats();
      const dialer: Record<string, boolean> = {};
      for (const h of grid.hosts) if (h !== config.local) dialer[h] = grid.connection(h).dialer;
      return { runtime, pid: process.pid, dialer, stats };
    }
    case "events":
      return events;
    case "accepts":
      return accepts;
    case "load":
      return await runLoad(c);
    case "inflight":
      startInflight(c);
      return { started: c.n };
    case "stream":
      return await runStream(c);
    case "setHosts":
      grid.setHosts(c.hosts);
      return grid.hosts;
    case "broadcast": {
      const started = performance.now();
      const results = await grid.broadcast(c.handler, enc.encode(c.payload ?? ""), {
        timeout: c.timeout,
        includeLocal: c.includeLocal,
      });
      const entries = results.map((r) =>
        r.status === "fulfilled" ? { host: r.host, status: r.status, text: dec.decode(r.value) } : {
          host: r.host,
          status: r.status,
          error: wireError(r.reason),
        }
      );
      return { entries, ms: Math.round(performance.now() - started) };
    }
    case "pick":
      return await pickFor(c.ms);
    case "close":
      await close();
      return null;
  }
}

const rl = createInterface({ input: process.stdin, crlfDelay: Infinity });
rl.on("line", (line) => {
  if (line.trim() === "") return;
  let c: Command;
  try {
    c = JSON.parse(line) as Command;
  } catch {
    send({ id: null, ok: false, error: { name: "SyntaxError", code: null, message: `Cannot parse command: ${line}` } });
    return;
  }
  execute(c).then(
    (value) => send({ id: c.id, ok: true, value }),
    (e: unknown) => send({ id: c.id, ok: false, error: wireError(e) }),
  );
});
if (config.gracefulSigterm === true) {
  process.on("SIGTERM", () => {
    if (!closing) void close();
  });
}
rl.on("close", () => {
  // stdin ended without a close command: the parent is gone, do not outlive it.
  if (!closing) void close().finally(() => process.exit(0));
});

process.stdout.write("READY\n");
