/**
 * The grid core end to end, in one process: Managers served on loopback with
 * `serve`, talking over real WebSockets.
 */
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import {
  type CallContext,
  defineSingle,
  DisconnectedError,
  GridError,
  type GridEventDetail,
  type GridSocket,
  json,
  Manager,
  type ManagerOptions,
  PayloadTooLargeError,
  RemoteError,
  shouldDial,
  TimeoutError,
  UnauthorizedError,
  UnknownHandlerError,
} from "../mod.ts";
import { type GridServer, serve } from "../src/adapters/serve.ts";
import { freePort, freeUrls } from "./_net.ts";
import { withTimeout } from "./_wait.ts";

const SECRET = "grid test secret";
/** Upper bound of any wait in this file; generous for a shared 2-core machine. */
const WAIT_MS = 10_000;
const TEST = { timeout: 60_000 };
const MAX_BYTES = 256 << 10;
const enc = new TextEncoder();
const dec = new TextDecoder();

// --- helpers -----------------------------------------------------------------

function portOf(url: string): number {
  return Number(new URL(url).port);
}

interface TestNode {
  url: string;
  grid: Manager;
  server: GridServer;
}

const BASE_OPTIONS: Partial<ManagerOptions> = {
  pingInterval: 300,
  backoff: { base: 20, cap: 200 },
  handshakeTimeout: 3_000,
  requestTimeout: 8_000,
};

async function startNode(url: string, hosts: string[], over: Partial<ManagerOptions> = {}): Promise<TestNode> {
  const grid = new Manager({ secret: SECRET, ...BASE_OPTIONS, ...over, local: url, hosts });
  try {
    const server = await serve(grid, { port: portOf(url), hostname: "127.0.0.1" });
    return { url, grid, server };
  } catch (e) {
    await grid.close();
    throw e;
  }
}

async function stopNode(n: TestNode | undefined): Promise<void> {
  if (n === undefined) return;
  await n.grid.close();
  await n.server.close();
}

/** Resolves on the next `type` event of `grid` about `host`. Attach before the event can happen. */
function nextEvent(grid: Manager, type: "connect" | "disconnect" | "restart", host: string, ms = WAIT_MS): Promise<void> {
  return withTimeout(
    new Promise<void>((resolve) => {
      const on = (ev: Event) => {
        if ((ev as CustomEvent<GridEventDetail>).detail.host !== host) return;
        grid.removeEventListener(type, on);
        resolve();
      };
      grid.addEventListener(type, on);
    }),
    `"${type}" event for ${host}`,
    ms,
  );
}

/** Records every connect/disconnect/restart event of a Manager. */
function recordEvents(grid: Manager): string[] {
  const log: string[] = [];
  for (const type of ["connect", "disconnect", "restart"]) {
    grid.addEventListener(type, (ev) => log.push(`${type} ${(ev as CustomEvent<GridEventDetail>).detail.host}`));
  }
  return log;
}

interface Deferred<T> {
  promise: Promise<T>;
  resolve(v: T): void;
  settled: boolean;
}

function deferred<T>(): Deferred<T> {
  let resolve!: (v: T) => void;
  const promise = new Promise<T>((r) => resolve = r);
  const d: Deferred<T> = {
    promise,
    settled: false,
    resolve(v: T) {
      d.settled = true;
      resolve(v);
    },
  };
  return d;
}

/** What a "wait" handler saw of one call, keyed by the call's payload (a label). */
interface Probe {
  started: Deferred<CallContext>;
  aborted: Deferred<unknown>;
}

function newProbe(): Probe {
  return { started: deferred(), aborted: deferred() };
}

/**
 * Registers "wait": records the call in `probes[label]`, then waits until its
 * signal aborts (bounded, so a failing test cannot leave it hanging) and throws the reason.
 */
function registerWait(grid: Manager, probes: Map<string, Probe>): void {
  grid.handle("wait", async (req, ctx) => {
    const label = dec.decode(req);
    let probe = probes.get(label);
    if (probe === undefined) probes.set(label, probe = newProbe());
    probe.started.resolve(ctx);
    const signal = ctx.signal;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, 20_000);
      const done = () => {
        clearTimeout(timer);
        resolve();
      };
      if (signal.aborted) done();
      else signal.addEventListener("abort", done, { once: true });
    });
    if (signal.aborted) probe.aborted.resolve(signal.reason);
    throw signal.aborted ? signal.reason : new Error("wait handler was never aborted");
  });
}

async function rejectsWith(p: Promise<unknown>, cls: abstract new (...args: never[]) => GridError, code: string): Promise<GridError> {
  let caught: unknown = undefined;
  await assert.rejects(p, (e: unknown) => {
    caught = e;
    return true;
  });
  assert.ok(caught instanceof cls, `expected ${cls.name}, got ${String(caught)}`);
  assert.equal((caught as GridError).code, code);
  return caught as GridError;
}

function elapsedSince(t0: number): number {
  return performance.now() - t0;
}

function bytes(n: number, fill = 7): Uint8Array<ArrayBuffer> {
  return new Uint8Array(n).fill(fill);
}

// --- two nodes, shared by most tests ---------------------------------------------

describe("grid: requests between two nodes", () => {
  let a: TestNode;
  let b: TestNode;
  const probes = new Map<string, Probe>();
  const calls = { echo: 0, big: 0, afterTooLarge: 0 };

  before(async () => {
    const [ua, ub] = await freeUrls(2);
    const hosts = [ua, ub];
    a = await startNode(ua, hosts, { maxMessageBytes: MAX_BYTES });
    b = await startNode(ub, hosts, { maxMessageBytes: MAX_BYTES });
    for (const n of [a, b]) {
      n.grid.handle("echo", (req, ctx) => {
        calls.echo++;
        return Uint8Array.from([...enc.encode(`${ctx.remote}|${ctx.subroute}|`), ...req]);
      });
      n.grid.handle("fail", async (req) => {
        await Promise.resolve();
        const kind = dec.decode(req);
        if (kind === "string") throw "plain string thrown";
        if (kind === "no-code") throw new Error("no code here");
        if (kind === "wrong-type") return "not bytes" as unknown as Uint8Array;
        throw Object.assign(new Error("bucket not found"), { code: "ENOENT" });
      });
      n.grid.handle("fail-sync", () => {
        throw Object.assign(new RangeError("sync failure"), { code: "E_SYNC" });
      });
      n.grid.handle("big", (req) => {
        calls.big++;
        return bytes(new DataView(req.buffer, req.byteOffset, 4).getUint32(0), 9);
      });
      n.grid.handle("disk", (_req, ctx) => enc.encode(`any:${ctx.subroute}`));
      n.grid.handle("disk", (_req, ctx) => enc.encode(`specific:${ctx.subroute}`), { subroute: "d1" });
      n.grid.handle("only-sub", () => enc.encode("only"), { subroute: "s" });
      n.grid.handleStream("a-stream", async (call) => {
        await call.responses.close();
      });
      registerWait(n.grid, probes);
    }
    await Promise.all([
      a.grid.connection(ub).waitForConnect({ timeout: WAIT_MS }),
      b.grid.connection(ua).waitForConnect({ timeout: WAIT_MS }),
    ]);
  });

  after(async () => {
    await stopNode(a);
    await stopNode(b);
  });

  it("request() round-trips in both directions and the handler sees the caller's name", TEST, async () => {
    const ab = await a.grid.connection(b.url).request("echo", Uint8Array.of(1, 2, 3));
    assert.equal(dec.decode(ab.subarray(0, ab.length - 3)), `${a.url}||`);
    assert.deepEqual([...ab.subarray(ab.length - 3)], [1, 2, 3]);
    const ba = await b.grid.connection(a.url).request("echo", Uint8Array.of(4));
    assert.equal(dec.decode(ba.subarray(0, ba.length - 1)), `${b.url}||`);
    assert.equal(ba[ba.length - 1], 4);
    // Empty payloads and many concurrent calls both ways.
    const empty = await a.grid.connection(b.url).request("echo", new Uint8Array(0));
    assert.equal(dec.decode(empty), `${a.url}||`);
    const n = 200;
    const results = await Promise.all(
      Array.from({ length: n }, (_, i) => {
        const [from, to] = i % 2 === 0 ? [a, b] : [b, a];
        return from.grid.connection(to.url).request("echo", Uint8Array.of(i & 255, i >> 8));
      }),
    );
    results.forEach((r, i) => assert.deepEqual([...r.subarray(r.length - 2)], [i & 255, i >> 8], `call ${i}`));
  });

  it("request() carries payloads up to maxMessageBytes intact, both ways", TEST, async () => {
    const payload = new Uint8Array(MAX_BYTES - 100);
    for (let i = 0; i < payload.length; i++) payload[i] = (i * 31) & 255;
    const res = await a.grid.connection(b.url).request("echo", payload);
    assert.deepEqual(res.subarray(res.length - payload.length), payload);
    const size = new Uint8Array(4);
    new DataView(size.buffer).setUint32(0, MAX_BYTES);
    const big = await b.grid.connection(a.url).request("big", size);
    assert.equal(big.length, MAX_BYTES);
    assert.ok(big.every((x) => x === 9));
  });

  it("a handler error reaches the caller as RemoteError with its message and code", TEST, async () => {
    const conn = a.grid.connection(b.url);
    const e1 = await rejectsWith(conn.request("fail", enc.encode("coded")), RemoteError, "remote");
    assert.equal(e1.message, "bucket not found");
    assert.equal((e1 as RemoteError).remoteCode, "ENOENT");
    const e2 = await rejectsWith(conn.request("fail-sync", new Uint8Array(0)), RemoteError, "remote");
    assert.equal(e2.message, "sync failure");
    assert.equal((e2 as RemoteError).remoteCode, "E_SYNC");
    const e3 = await rejectsWith(conn.request("fail", enc.encode("no-code")), RemoteError, "remote");
    assert.equal(e3.message, "no code here");
    assert.equal((e3 as RemoteError).remoteCode, undefined);
    const e4 = await rejectsWith(conn.request("fail", enc.encode("string")), RemoteError, "remote");
    assert.equal(e4.message, "plain string thrown");
    // A handler that returns something other than bytes is a handler error, not a crash.
    await rejectsWith(conn.request("fail", enc.encode("wrong-type")), RemoteError, "remote");
    // The connection survives all of them.
    await conn.request("echo", new Uint8Array(0));
    assert.equal(conn.state, "up");
  });

  it("an unknown handler name rejects with UnknownHandlerError", TEST, async () => {
    const conn = a.grid.connection(b.url);
    await rejectsWith(conn.request("no.such.handler", new Uint8Array(0)), UnknownHandlerError, "unknown-handler");
    // A stream handler is not a single-request handler, and vice versa.
    await rejectsWith(conn.request("a-stream", new Uint8Array(0)), UnknownHandlerError, "unknown-handler");
    await rejectsWith(conn.newStream("echo", new Uint8Array(0)), UnknownHandlerError, "unknown-handler");
    assert.equal(conn.state, "up");
  });

  it("subroutes: a registration for the subroute wins over one for any subroute", TEST, async () => {
    const conn = a.grid.connection(b.url);
    assert.equal(dec.decode(await conn.request("disk", new Uint8Array(0), { subroute: "d1" })), "specific:d1");
    assert.equal(dec.decode(await conn.request("disk", new Uint8Array(0), { subroute: "d2" })), "any:d2");
    assert.equal(dec.decode(await conn.request("disk", new Uint8Array(0))), "any:");
    assert.equal(dec.decode(await conn.request("only-sub", new Uint8Array(0), { subroute: "s" })), "only");
    await rejectsWith(conn.request("only-sub", new Uint8Array(0)), UnknownHandlerError, "unknown-handler");
    await rejectsWith(conn.request("only-sub", new Uint8Array(0), { subroute: "t" }), UnknownHandlerError, "unknown-handler");
    const echoed = await conn.request("echo", Uint8Array.of(5), { subroute: "bucket-ü" });
    assert.equal(dec.decode(echoed.subarray(0, echoed.length - 1)), `${a.url}|bucket-ü|`);
  });

  it("an oversize request fails locally with PayloadTooLargeError, before anything is sent", TEST, async () => {
    const conn = a.grid.connection(b.url);
    const before = conn.stats().messagesOut;
    const echoCalls = calls.echo;
    await rejectsWith(conn.request("echo", new Uint8Array(MAX_BYTES + 1)), PayloadTooLargeError, "too-large");
    await rejectsWith(conn.newStream("a-stream", new Uint8Array(MAX_BYTES + 1)), PayloadTooLargeError, "too-large");
    assert.equal(conn.stats().messagesOut, before);
    assert.equal(calls.echo, echoCalls);
    // An exactly-full payload still goes through, and the connection is intact.
    await conn.request("echo", new Uint8Array(MAX_BYTES - 200));
    assert.equal(conn.state, "up");
  });

  it("an oversize response fails with PayloadTooLargeError sent by the remote", TEST, async () => {
    const conn = a.grid.connection(b.url);
    const size = new Uint8Array(4);
    new DataView(size.buffer).setUint32(0, MAX_BYTES + 1);
    const bigCalls = calls.big;
    await rejectsWith(conn.request("big", size), PayloadTooLargeError, "too-large");
    assert.equal(calls.big, bigCalls + 1, "the handler ran; the remote refused to send its result");
    await conn.request("echo", new Uint8Array(0));
    assert.equal(conn.state, "up");
    const s = b.grid.stats().handlers["big"];
    assert.ok(s.calls >= 1);
  });

  it("the deadline travels with the request: the remote aborts ctx.signal and the caller gets TimeoutError", TEST, async () => {
    const probe = newProbe();
    probes.set("deadline", probe);
    const t0 = Date.now();
    const call = a.grid.connection(b.url).request("wait", enc.encode("deadline"), { timeout: 250 });
    await rejectsWith(call, TimeoutError, "timeout");
    const ctx = await withTimeout(probe.started.promise, "handler start");
    assert.ok(ctx.deadline !== undefined, "ctx.deadline is set");
    assert.ok(ctx.deadline >= t0 + 100 && ctx.deadline <= Date.now() + 1_000, `deadline ${ctx.deadline - t0} ms after the call`);
    const reason = await withTimeout(probe.aborted.promise, "handler abort");
    assert.ok(reason instanceof TimeoutError, `abort reason ${String(reason)}`);
    assert.equal(reason.code, "timeout");
    // Nothing stays in flight on either side.
    await waitUntil(() => b.grid.stats().connections[a.url].serving.requests === 0, "serving 0");
    assert.equal(a.grid.stats().connections[b.url].inFlight.requests, 0);
  });

  it("aborting the caller's signal rejects at once with signal.reason and aborts the remote handler", TEST, async () => {
    const probe = newProbe();
    probes.set("abort", probe);
    const ctrl = new AbortController();
    const call = a.grid.connection(b.url).request("wait", enc.encode("abort"), { signal: ctrl.signal, timeout: 30_000 });
    const ctx = await withTimeout(probe.started.promise, "handler start");
    assert.equal(ctx.signal.aborted, false);
    assert.equal(a.grid.stats().connections[b.url].inFlight.requests, 1);
    assert.equal(b.grid.stats().connections[a.url].serving.requests, 1);
    const reason = new Error("caller gave up");
    const t0 = performance.now();
    ctrl.abort(reason);
    await assert.rejects(call, (e: unknown) => e === reason);
    assert.ok(elapsedSince(t0) < 2_000, "rejected without waiting for the remote");
    const seen = await withTimeout(probe.aborted.promise, "remote handler abort");
    assert.ok(seen instanceof Error, "the handler's signal aborted with an Error reason");
    await waitUntil(() => b.grid.stats().connections[a.url].serving.requests === 0, "serving 0");
    assert.equal(a.grid.stats().connections[b.url].inFlight.requests, 0);
  });

  it("an already-aborted signal rejects with its reason and the handler never runs", TEST, async () => {
    const probe = newProbe();
    probes.set("pre-aborted", probe);
    const reason = new Error("too late");
    await assert.rejects(
      a.grid.connection(b.url).request("wait", enc.encode("pre-aborted"), { signal: AbortSignal.abort(reason) }),
      (e: unknown) => e === reason,
    );
    await a.grid.connection(b.url).request("echo", new Uint8Array(0)); // a round trip later, it has still not run
    assert.equal(probe.started.settled, false);
  });

  it("typed definitions round-trip values through msgpack and json codecs", TEST, async () => {
    const Lookup = defineSingle<{ key: string; n: number[] }, { value: string | null; sum: number; when: number }>("kv.lookup");
    const store = new Map([["a", "alpha"]]);
    b.grid.handle(Lookup, ({ key, n }, ctx) => ({
      value: store.get(key) ?? null,
      sum: n.reduce((x, y) => x + y, 0),
      when: ctx.deadline ?? 0,
    }));
    const conn = a.grid.connection(b.url);
    const r1 = await conn.request(Lookup, { key: "a", n: [1, 2, 3.5] });
    assert.equal(r1.value, "alpha");
    assert.equal(r1.sum, 6.5);
    const r2 = await conn.request(Lookup, { key: "zz", n: [] });
    assert.deepEqual({ value: r2.value, sum: r2.sum }, { value: null, sum: 0 });
    const Json = defineSingle<{ s: string }, { upper: string }>("json.upper", { request: json(), response: json() });
    a.grid.handle(Json, async ({ s }) => {
      await Promise.resolve();
      return { upper: s.toUpperCase() };
    });
    assert.deepEqual(await b.grid.connection(a.url).request(Json, { s: "grüße" }), { upper: "GRÜSSE" });
    const Same = defineSingle<{ n: number[] }, { n: number[] }>("json.same", { codec: json() });
    a.grid.handle(Same, ({ n }) => ({ n: n.map((x) => x * 2) }));
    assert.deepEqual(await b.grid.connection(a.url).request(Same, { n: [1, 2] }), { n: [2, 4] });
    // A typed handler that throws is a RemoteError like any other.
    const Bad = defineSingle<{ x: number }, never>("typed.bad");
    b.grid.handle(Bad, ({ x }) => {
      throw Object.assign(new Error(`bad ${x}`), { code: "EBAD" });
    });
    const e = await rejectsWith(conn.request(Bad, { x: 1 }), RemoteError, "remote");
    assert.equal((e as RemoteError).remoteCode, "EBAD");
  });

  it("grid.stats() is plain JSON with the fields of API.md", TEST, async () => {
    await waitUntil(() => a.grid.stats().connections[b.url].rttMs !== null, "an rtt sample (pings every 300 ms)");
    const s = a.grid.stats();
    assert.deepEqual(JSON.parse(JSON.stringify(s)), s);
    assert.equal(s.local, a.url);
    assert.equal(typeof s.instanceId, "string");
    assert.ok(s.instanceId.length > 0);
    assert.notEqual(s.instanceId, b.grid.stats().instanceId);
    assert.equal(typeof s.uptimeMs, "number");
    assert.ok(s.uptimeMs >= 0);
    assert.deepEqual(Object.keys(s.connections), [b.url]);
    const c = s.connections[b.url];
    assert.equal(c.state, "up");
    assert.equal(typeof c.rttMs, "number");
    assert.ok(c.rttMs! >= 0 && c.rttMs! < WAIT_MS);
    assert.equal(c.reconnects, 0);
    for (const k of ["bytesIn", "bytesOut", "messagesIn", "messagesOut", "framesIn", "framesOut"] as const) {
      assert.equal(typeof c[k], "number", k);
      assert.ok(c[k] > 0, `${k} > 0`);
    }
    assert.ok(c.messagesOut >= c.framesOut, "a frame holds at least one message");
    assert.ok(c.messagesIn >= c.framesIn);
    assert.deepEqual(c.inFlight, { requests: 0, streams: 0 });
    assert.deepEqual(c.serving, { requests: 0, streams: 0 });
    assert.deepEqual(s.admin, { connections: 0 });
    const h = b.grid.stats().handlers["echo"];
    assert.ok(h !== undefined, "stats for the echo handler");
    assert.ok(h.calls >= 100, `echo calls ${h.calls}`);
    assert.equal(h.inFlight, 0);
    assert.equal(typeof h.errors, "number");
    assert.equal(typeof h.latencyMs.p50, "number");
    assert.equal(typeof h.latencyMs.p99, "number");
    assert.ok(h.latencyMs.p99 >= h.latencyMs.p50);
    const f = b.grid.stats().handlers["fail"];
    assert.ok(f.errors >= 3 && f.errors <= f.calls, `fail handler: ${f.errors} errors of ${f.calls} calls`);
  });

  it("connection() throws GridError \"unknown-host\" for the local node and for strangers", TEST, () => {
    for (const h of [a.url, "ws://127.0.0.1:1", "not a url"]) {
      assert.throws(() => a.grid.connection(h), (e: unknown) => e instanceof GridError && e.code === "unknown-host");
    }
    assert.equal(a.grid.connection(b.url), a.grid.connection(b.url), "stable identity");
  });
});

async function waitUntil(cond: () => boolean, what: string, ms = WAIT_MS): Promise<void> {
  const t0 = performance.now();
  while (!cond()) {
    if (elapsedSince(t0) > ms) throw new Error(`Timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

// --- one socket per pair --------------------------------------------------------

describe("grid: one socket per pair", () => {
  it("in a grid of three, each pair has exactly one socket, dialed once by one end; counters mirror", TEST, async () => {
    const urls = await freeUrls(3);
    const dials: string[] = [];
    const counting = (owner: string) => (url: string): GridSocket => {
      dials.push(`${owner} -> ${url}`);
      return new WebSocket(url) as unknown as GridSocket;
    };
    // No pings, so nothing moves on a socket between the last response and the snapshot.
    const quiet = { pingInterval: 600_000 };
    const nodes: TestNode[] = [];
    try {
      // All three start at once: both ends of a pair are ready to dial at the same moment.
      nodes.push(...await Promise.all(urls.map((u) => startNode(u, urls, { ...quiet, webSocket: counting(u) }))));
      for (const n of nodes) n.grid.handle("echo", (req) => req);
      const pairs: [TestNode, TestNode][] = [[nodes[0], nodes[1]], [nodes[0], nodes[2]], [nodes[1], nodes[2]]];
      await Promise.all(
        pairs.flatMap(([x, y]) => [
          x.grid.connection(y.url).waitForConnect({ timeout: WAIT_MS }),
          y.grid.connection(x.url).waitForConnect({ timeout: WAIT_MS }),
        ]),
      );
      for (const [x, y] of pairs) {
        const cxy = x.grid.connection(y.url);
        const cyx = y.grid.connection(x.url);
        assert.notEqual(cxy.dialer, cyx.dialer, "exactly one end of each pair is the dialer");
        for (let i = 0; i < 10; i++) {
          await cxy.request("echo", bytes(i));
          await cyx.request("echo", bytes(2 * i));
        }
        await Promise.all(Array.from({ length: 30 }, (_, i) => (i % 2 ? cxy : cyx).request("echo", bytes(i % 7))));
      }
      const expectedDials = pairs.map(([x, y]) =>
        x.grid.connection(y.url).dialer ? `${x.url} -> ${y.url}/grid/v1` : `${y.url} -> ${x.url}/grid/v1`
      );
      assert.deepEqual([...dials].sort(), expectedDials.sort(), "one dial per pair, by its dialer");
      for (const [x, y] of pairs) {
        const sx = x.grid.stats().connections[y.url];
        const sy = y.grid.stats().connections[x.url];
        assert.equal(sx.state, "up");
        assert.equal(sy.state, "up");
        assert.equal(sx.reconnects, 0);
        assert.equal(sy.reconnects, 0);
        // Every frame one end wrote, the other read: no second socket carried some of them.
        assert.equal(sx.framesOut, sy.framesIn);
        assert.equal(sx.framesIn, sy.framesOut);
        assert.equal(sx.messagesOut, sy.messagesIn);
        assert.equal(sx.messagesIn, sy.messagesOut);
        assert.equal(sx.bytesOut, sy.bytesIn);
        assert.equal(sx.bytesIn, sy.bytesOut);
        assert.ok(sx.messagesOut >= 25, `messagesOut ${sx.messagesOut}`);
      }
    } finally {
      for (const n of nodes) await stopNode(n);
    }
  });
});

// --- events and restarts ------------------------------------------------------------

describe("grid: events", () => {
  it("emits connect, then disconnect when the peer goes away, then restart + connect for a new instance", TEST, async () => {
    const [u1, u2] = await freeUrls(2);
    const hosts = [u1, u2];
    let n1: TestNode | undefined;
    let n2: TestNode | undefined;
    let n2b: TestNode | undefined;
    try {
      n1 = await startNode(u1, hosts);
      const log1 = recordEvents(n1.grid);
      const connected = nextEvent(n1.grid, "connect", u2);
      n2 = await startNode(u2, hosts);
      const log2 = recordEvents(n2.grid);
      await connected;
      await waitUntil(() => log2.includes(`connect ${u1}`), "connect event on the other side");
      const firstId = n2.grid.instanceId;

      const down = nextEvent(n1.grid, "disconnect", u2);
      await stopNode(n2);
      n2 = undefined;
      await down;
      assert.notEqual(n1.grid.connection(u2).state, "up");
      await rejectsWith(n1.grid.connection(u2).request("echo", new Uint8Array(0)), DisconnectedError, "disconnected");

      const restarted = nextEvent(n1.grid, "restart", u2);
      const reconnected = nextEvent(n1.grid, "connect", u2);
      n2b = await startNode(u2, hosts);
      n2b.grid.handle("echo", (req) => req);
      const log2b = recordEvents(n2b.grid);
      await restarted;
      await reconnected;
      assert.notEqual(n2b.grid.instanceId, firstId);
      assert.deepEqual(log1, [`connect ${u2}`, `disconnect ${u2}`, `restart ${u2}`, `connect ${u2}`]);
      assert.equal(n1.grid.stats().connections[u2].reconnects, 1);
      assert.deepEqual([...await n1.grid.connection(u2).request("echo", Uint8Array.of(3))], [3]);
      // The new instance met n1 for the first time: a connect, no restart.
      await waitUntil(() => log2b.includes(`connect ${u1}`), "connect on the new instance");
      assert.ok(!log2b.some((e) => e.startsWith("restart")), log2b.join(", "));
    } finally {
      await stopNode(n1);
      await stopNode(n2);
      await stopNode(n2b);
    }
  });
});

// --- down peers, waiting, refusals ---------------------------------------------------

describe("grid: peers that are down or refuse us", () => {
  it("calls on a connection that was never up wait for it within their timeout; waitForConnect is bounded by the timeout", TEST, async () => {
    const [u1, u2] = await freeUrls(2);
    const hosts = [u1, u2];
    let n1: TestNode | undefined;
    let n2: TestNode | undefined;
    try {
      n1 = await startNode(u1, hosts);
      const conn = n1.grid.connection(u2);
      await new Promise((r) => setTimeout(r, 100)); // let a dial attempt fail, if this side dials
      assert.notEqual(conn.state, "up");
      // Never up yet: the first calls wait for the connection (failing fast after a loss is in
      // tests/lifecycle_test.ts).
      let t0 = performance.now();
      await rejectsWith(conn.request("echo", new Uint8Array(0), { timeout: 300 }), TimeoutError, "timeout");
      await rejectsWith(conn.newStream("s", new Uint8Array(0), { timeout: 300 }), TimeoutError, "timeout");
      assert.ok(elapsedSince(t0) >= 500, "the first calls did not wait for the connection");

      // Waiting for the connection is bounded by the call's timeout.
      t0 = performance.now();
      await rejectsWith(
        conn.request("echo", new Uint8Array(0), { timeout: 300, waitForConnect: true }),
        TimeoutError,
        "timeout",
      );
      const waited = elapsedSince(t0);
      assert.ok(waited >= 250 && waited < 5_000, `waited ${waited} ms for a 300 ms timeout`);
      await rejectsWith(conn.waitForConnect({ timeout: 200 }), TimeoutError, "timeout");

      // A signal ends the wait at once with its reason.
      const ctrl = new AbortController();
      const waiting = conn.request("echo", new Uint8Array(0), { timeout: 30_000, waitForConnect: true, signal: ctrl.signal });
      const reason = new Error("stop waiting");
      setTimeout(() => ctrl.abort(reason), 50);
      await assert.rejects(waiting, (e: unknown) => e === reason);

      // A waiting call goes through once the peer comes up.
      const later = conn.request("echo", Uint8Array.of(42), { timeout: WAIT_MS, waitForConnect: true });
      await new Promise((r) => setTimeout(r, 200));
      n2 = await startNode(u2, hosts);
      n2.grid.handle("echo", (req) => req);
      assert.deepEqual([...await later], [42]);
    } finally {
      await stopNode(n1);
      await stopNode(n2);
    }
  });

  for (const side of ["dialing", "accepting"] as const) {
    it(`a node with the wrong secret on the ${side} side never connects: calls time out naming the failed verification, both sides count it, no handler runs`, TEST, async () => {
      const [u1, u2] = await freeUrls(2);
      const hosts = [u1, u2];
      // `wrong` is the node that calls; make it the dialer or the acceptor of the pair.
      const wrongDials = side === "dialing";
      const [wrongUrl, rightUrl] = shouldDial(u1, u2) === wrongDials
        ? [u1, u2]
        : [u2, u1];
      let right: TestNode | undefined;
      let wrong: TestNode | undefined;
      let ran = 0;
      try {
        right = await startNode(rightUrl, hosts);
        right.grid.handle("echo", (req) => {
          ran++;
          return req;
        });
        wrong = await startNode(wrongUrl, hosts, { secret: "not the cluster secret" });
        wrong.grid.handle("echo", (req) => {
          ran++;
          return req;
        });
        const conn = wrong.grid.connection(rightUrl);
        assert.equal(conn.dialer, wrongDials);
        // A handshake that fails verification cannot be told from an impostor's, so it fails
        // nobody's calls early: they wait for their deadline, and the message says why.
        const err = await rejectsWith(
          conn.request("echo", Uint8Array.of(1), { waitForConnect: true, timeout: 1_500 }),
          TimeoutError,
          "timeout",
        );
        const other = await rejectsWith(
          right.grid.connection(wrongUrl).request("echo", Uint8Array.of(1), { waitForConnect: true, timeout: 1_500 }),
          TimeoutError,
          "timeout",
        );
        const dialerErr = wrongDials ? err : other;
        assert.match(dialerErr.message, /failed verification/);
        // The dialer finds the acceptor's welcome MAC wrong; the acceptor sees the socket go.
        const dialer = wrongDials ? wrong : right;
        await waitUntil(() => (dialer.grid.stats().rejectedHandshakes["dial-bad-mac"] ?? 0) > 0, "the dialer counts a bad MAC");
        // The connection has never been up, so a call waits for it within its deadline.
        await rejectsWith(conn.request("echo", Uint8Array.of(1), { timeout: 300 }), TimeoutError, "timeout");
        assert.notEqual(conn.state, "up");
        assert.equal(ran, 0);
      } finally {
        await stopNode(wrong);
        await stopNode(right);
      }
    });
  }
});

// --- close -----------------------------------------------------------------------------

describe("grid: close()", () => {
  it("rejects in-flight calls with DisconnectedError, aborts the remote handlers, and refuses new calls", TEST, async () => {
    const [u1, u2] = await freeUrls(2);
    const hosts = [u1, u2];
    const probes = new Map<string, Probe>();
    let n1: TestNode | undefined;
    let n2: TestNode | undefined;
    try {
      n1 = await startNode(u1, hosts);
      n2 = await startNode(u2, hosts);
      registerWait(n2.grid, probes);
      const conn = n1.grid.connection(u2);
      await conn.waitForConnect({ timeout: WAIT_MS });
      const gone = nextEvent(n2.grid, "disconnect", u1);
      const inflight = [1, 2, 3].map((i) => {
        probes.set(`c${i}`, newProbe());
        return conn.request("wait", enc.encode(`c${i}`), { timeout: 30_000 });
      });
      for (let i = 1; i <= 3; i++) await withTimeout(probes.get(`c${i}`)!.started.promise, `handler c${i} start`);
      const waiting = n1.grid.connection(u2).waitForConnect({ timeout: 30_000 });
      await n1.grid.close();
      for (const p of inflight) await rejectsWith(p, DisconnectedError, "disconnected");
      await waiting; // it was already up
      for (let i = 1; i <= 3; i++) await withTimeout(probes.get(`c${i}`)!.aborted.promise, `handler c${i} abort`);
      await gone;
      assert.equal(conn.state, "closed");
      assert.equal(n1.grid.stats().connections[u2].state, "closed");
      await rejectsWith(conn.request("wait", enc.encode("late")), DisconnectedError, "disconnected");
      await rejectsWith(conn.request("wait", enc.encode("late"), { waitForConnect: true }), DisconnectedError, "disconnected");
      await rejectsWith(conn.waitForConnect({ timeout: 1_000 }), DisconnectedError, "disconnected");
      await n1.grid.close(); // twice is fine
      assert.equal(probes.has("late"), false);
    } finally {
      await stopNode(n1);
      await stopNode(n2);
    }
  });

  it("a Manager that is closed right after construction leaves nothing running", TEST, async () => {
    const [u1, u2] = await freeUrls(2);
    const grid = new Manager({ local: u1, hosts: [u1, u2], secret: SECRET });
    await grid.close();
    await rejectsWith(grid.connection(u2).request("x", new Uint8Array(0)), DisconnectedError, "disconnected");
    // node --test / deno test / bun test only get past this file when no timer or socket is left.
  });
});
