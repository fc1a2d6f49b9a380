/**
 * Call lifecycles made total (issue 14): every promise the library hands out settles, with a
 * clear error where the call cannot succeed. One case per reproduced defect: a failed requests
 * write, a write after close() in a handler, a handler that stops reading its requests,
 * replies at the deadline, `timeout: Infinity`, the first connection, negotiated size limits,
 * a link dropped between the wait and the send, and rejections that are never synchronous.
 */
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import {
  type CallContext,
  type Connection,
  defineStream,
  DisconnectedError,
  GridError,
  Manager,
  type ManagerOptions,
  PayloadTooLargeError,
  type StreamCall,
  TimeoutError,
} from "../mod.ts";
import { Client } from "../src/client.ts";
import type { Link } from "../src/link.ts";
import { MuxCaller } from "../src/mux/caller.ts";
import { type GridServer, serve } from "../src/adapters/serve.ts";
import { freePorts } from "./_net.ts";
import { withTimeout } from "./_wait.ts";

const HOST = "127.0.0.1";
const SECRET = "lifecycle test secret";
const TOKEN = "lifecycle admin token";
/** Upper bound of any single wait: generous for a shared 2-core machine. */
const WAIT = 15_000;
const EMPTY = new Uint8Array(0);

type RawCall = StreamCall<Uint8Array, Uint8Array, Uint8Array>;

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function deferred<T>(): { promise: Promise<T>; resolve: (v: T) => void } {
  let resolve!: (v: T) => void;
  const promise = new Promise<T>((res) => {
    resolve = res;
  });
  return { promise, resolve };
}

/** Resolves with the signal's reason once it aborts. */
function aborted(signal: AbortSignal): Promise<unknown> {
  if (signal.aborted) return Promise.resolve(signal.reason);
  return new Promise((resolve) => signal.addEventListener("abort", () => resolve(signal.reason), { once: true }));
}

/** How a promise settled: its value, or the error it rejected with. */
function outcome<T>(p: Promise<T>): Promise<{ ok: true; value: T } | { ok: false; error: unknown }> {
  return p.then((value) => ({ ok: true as const, value }), (error) => ({ ok: false as const, error }));
}

function code(e: unknown): string | undefined {
  return e instanceof GridError ? e.code : undefined;
}

async function until(cond: () => boolean, what: string, ms = WAIT): Promise<void> {
  const end = performance.now() + ms;
  while (!cond()) {
    if (performance.now() > end) throw new Error(`Timed out after ${ms} ms waiting for ${what}`);
    await sleep(5);
  }
}

async function readAll<T>(stream: ReadableStream<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const v of stream) out.push(v);
  return out;
}

interface Node {
  grid: Manager;
  url: string;
  port: number;
  server: GridServer | null;
  start(): Promise<void>;
  stop(): Promise<void>;
}

/** Two Managers on loopback that know each other; neither is served until `start()`. */
async function makeNodes(options: { a?: Partial<ManagerOptions>; b?: Partial<ManagerOptions> } = {}): Promise<[Node, Node]> {
  const ports = await freePorts(2);
  const urls = ports.map((p) => `ws://${HOST}:${p}`);
  const common = {
    hosts: urls,
    secret: SECRET,
    pingInterval: 300,
    requestTimeout: WAIT,
    backoff: { base: 20, cap: 200 },
    admin: { tokens: [TOKEN] },
  };
  const make = (i: number, extra: Partial<ManagerOptions> | undefined): Node => {
    const node: Node = {
      grid: new Manager({ ...common, ...extra, local: urls[i] }),
      url: urls[i],
      port: ports[i],
      server: null,
      start: async () => {
        node.server = await serve(node.grid, { port: ports[i], hostname: HOST });
      },
      stop: async () => {
        await node.grid.close();
        await node.server?.close();
        node.server = null;
      },
    };
    return node;
  };
  return [make(0, options.a), make(1, options.b)];
}

async function startPair(options?: Parameters<typeof makeNodes>[0]): Promise<{ a: Node; b: Node; ab: Connection }> {
  const [a, b] = await makeNodes(options);
  await a.start();
  await b.start();
  await withTimeout(a.grid.connection(b.url).waitForConnect({ timeout: WAIT }), "pair connected", WAIT);
  await withTimeout(b.grid.connection(a.url).waitForConnect({ timeout: WAIT }), "pair connected", WAIT);
  return { a, b, ab: a.grid.connection(b.url) };
}

/** Nothing in flight or served on either side, within a few seconds. */
async function expectIdle(a: Node, b: Node): Promise<void> {
  const busy = () => {
    const out: string[] = [];
    for (const [self, other] of [[a, b], [b, a]]) {
      const c = self.grid.stats().connections[other.url];
      if (c.inFlight.requests + c.inFlight.streams + c.serving.requests + c.serving.streams > 0) {
        out.push(`${self.url}: ${JSON.stringify({ inFlight: c.inFlight, serving: c.serving })}`);
      }
    }
    return out;
  };
  await until(() => busy().length === 0, "both sides idle", 5_000).catch(() => {});
  assert.deepEqual(busy(), []);
}

describe("stream lifecycles end on both sides", () => {
  let a: Node;
  let b: Node;
  let ab: Connection;

  before(async () => {
    ({ a, b, ab } = await startPair({ a: { maxMessageBytes: 4096 }, b: { maxMessageBytes: 4096 } }));
  });

  after(async () => {
    await a?.stop();
    await b?.stop();
  });

  it("a requests write over maxMessageBytes cancels the call: the handler's requests error and its signal aborts with the reason", async () => {
    const seen = deferred<{ loop: unknown; signal: unknown }>();
    b.grid.handleStream("lc.too.large", async (call: RawCall) => {
      let loop: unknown = "ended normally";
      try {
        for await (const _ of call.requests!) { /* reads until the caller's write fails */ }
      } catch (e) {
        loop = e;
      }
      seen.resolve({ loop, signal: call.signal.aborted ? call.signal.reason : "not aborted" });
    });
    const st = await ab.newStream("lc.too.large", EMPTY);
    const w = st.requests!.getWriter();
    await w.write(new Uint8Array(10));
    const write = await outcome(w.write(new Uint8Array(5000)));
    assert.equal(write.ok, false);
    assert.ok(!write.ok && write.error instanceof PayloadTooLargeError);
    const responses = await withTimeout(outcome(readAll(st.responses)), "caller's responses end");
    assert.ok(!responses.ok && code(responses.error) === "too-large", `responses: ${JSON.stringify(responses)}`);
    const handler = await withTimeout(seen.promise, "handler's requests end");
    assert.equal(code(handler.loop), "too-large");
    assert.equal(code(handler.signal), "too-large");
    await expectIdle(a, b);
  });

  it("a requests value the codec cannot encode cancels the call on both sides", async () => {
    const Strict = defineStream<null, number, number>("lc.codec", {
      request: {
        encode: (n: number) => {
          if (n < 0) throw new TypeError("Cannot encode a negative number");
          return Uint8Array.of(n);
        },
        decode: (b: Uint8Array) => b[0],
      },
    });
    const handlerSignal = deferred<unknown>();
    b.grid.handleStream(Strict, async (call) => {
      handlerSignal.resolve(await aborted(call.signal));
    });
    const st = await ab.newStream(Strict, null);
    const w = st.requests!.getWriter();
    const write = await outcome(w.write(-1));
    assert.ok(!write.ok && write.error instanceof TypeError);
    const responses = await withTimeout(outcome(readAll(st.responses)), "caller's responses end");
    assert.equal(responses.ok, false);
    const reason = await withTimeout(handlerSignal.promise, "handler's signal aborts");
    assert.ok(reason instanceof GridError, `handler's abort reason: ${String(reason)}`);
    assert.match((reason as Error).message, /negative/);
    await expectIdle(a, b);
  });

  it("a handler's write after close() neither hangs the call nor holds back the end of its responses", async () => {
    const late = deferred<unknown>();
    b.grid.handleStream("lc.write.after.close", (call: RawCall) => {
      const w = call.responses.getWriter();
      void w.write(Uint8Array.of(0)).catch(() => {});
      void w.write(Uint8Array.of(1)).catch(() => {}); // waits for the caller's credit
      void w.close().catch(() => {});
      w.write(Uint8Array.of(2)).then(() => late.resolve("resolved"), (e) => late.resolve(e));
    }, { inCapacity: 0, outCapacity: 1 });
    const st = await ab.newStream("lc.write.after.close", EMPTY);
    await sleep(50);
    const got = await withTimeout(readAll(st.responses), "caller's responses end");
    assert.deepEqual(got.map((m) => m[0]), [0, 1]);
    assert.ok((await late.promise) instanceof TypeError, "the write after close() did not reject");
    await expectIdle(a, b);
  });

  it("a handler that cancels its requests tells the caller: pending and later writes reject while the responses go on", async () => {
    const release = deferred<void>();
    b.grid.handleStream("lc.stop.reading", async (call: RawCall) => {
      for await (const _ of call.requests!) break;
      await release.promise;
      const w = call.responses.getWriter();
      await w.write(Uint8Array.of(7));
      await w.close();
    }, { inCapacity: 2, outCapacity: 1 });
    const st = await ab.newStream("lc.stop.reading", EMPTY);
    const w = st.requests!.getWriter();
    const writes = Array.from({ length: 8 }, (_, i) => outcome(w.write(Uint8Array.of(i))));
    // The handler is still running (it waits for `release`): the writes must settle before it returns.
    const settled = await withTimeout(Promise.all(writes), "writes settle while the handler still runs");
    assert.ok(settled[0].ok, "the first write (read by the handler) failed");
    const last = settled[settled.length - 1];
    assert.ok(!last.ok && code(last.error) === "closed", `last write: ${JSON.stringify(last)}`);
    assert.match(!last.ok ? String((last.error as Error).message) : "", /stopped reading/);
    const later = await outcome(w.write(Uint8Array.of(99)));
    assert.equal(later.ok, false);
    release.resolve();
    const got = await withTimeout(readAll(st.responses), "responses go on");
    assert.deepEqual(got.map((m) => m[0]), [7]);
    assert.equal(ab.state, "up");
    await expectIdle(a, b);
  });

  it("an async function* handler streams what it yields, with the credits' backpressure", async () => {
    let yielded = 0;
    b.grid.handleStream("lc.generator", async function* (call: RawCall) {
      for (let i = 0; i < call.payload[0]; i++) {
        yielded++;
        yield Uint8Array.of(i);
      }
    }, { inCapacity: 0, outCapacity: 2 });
    const st = await ab.newStream("lc.generator", Uint8Array.of(50));
    await sleep(100);
    // Without credit, the generator is paused after at most a window (plus the one it is writing).
    assert.ok(yielded <= 4, `yielded ${yielded} before the caller read`);
    const got = await withTimeout(readAll(st.responses), "generator's responses");
    assert.deepEqual(got.map((m) => m[0]), Array.from({ length: 50 }, (_, i) => i));
    await expectIdle(a, b);
  });
});

describe("deadlines", () => {
  let a: Node;
  let b: Node;
  let ab: Connection;

  before(async () => {
    ({ a, b, ab } = await startPair());
    b.grid.handle("lc.until.aborted", async (req: Uint8Array, ctx: CallContext) => {
      await aborted(ctx.signal);
      return req;
    });
    b.grid.handle("lc.sleep", async (req: Uint8Array, ctx: CallContext) => {
      await sleep(req[0]);
      return Uint8Array.of(ctx.deadline === undefined ? 0 : 1);
    });
    b.grid.handleStream("lc.stream.until.aborted", async (call: RawCall) => {
      await aborted(call.signal);
      const w = call.responses.getWriter();
      await w.close().catch(() => {});
    }, { inCapacity: 0 });
  });

  after(async () => {
    await a?.stop();
    await b?.stop();
  });

  it("a reply that reaches the mux at or after the deadline rejects with TimeoutError even before the timer fired", async () => {
    const sent: number[] = [];
    const link = { send: (m: { mux: number }) => sent.push(m.mux), closed: false } as unknown as Link;
    const caller = new MuxCaller({ remote: "ws://peer", maxPayload: 1 << 20, pingInterval: 1000 });
    const call = outcome(caller.request(link, "slow", "", EMPTY, 20, undefined, null));
    // The event loop is held past the deadline, so the reply is handled before the timer runs.
    const end = performance.now() + 30;
    while (performance.now() < end) { /* hold the loop */ }
    caller.onMessage({ op: 16, flags: 0, mux: sent[0], seq: 0, deadline: 0, handler: "", subroute: "", metadata: null, payload: EMPTY });
    const r = await call;
    assert.ok(!r.ok && r.error instanceof TimeoutError, `a late reply resolved the call: ${JSON.stringify(r)}`);
    assert.equal(caller.requestCount, 0);
  });

  it("a handler that returns only after its signal aborted never produces a resolved call (60 calls)", async () => {
    const results = [];
    for (let round = 0; round < 12; round++) {
      const batch = Array.from({ length: 5 }, (_, i) => outcome(ab.request("lc.until.aborted", Uint8Array.of(i), { timeout: 20 + i })));
      results.push(...await withTimeout(Promise.all(batch), "a round of calls"));
    }
    assert.equal(results.length, 60);
    for (const r of results) assert.ok(!r.ok && r.error instanceof TimeoutError, `a call settled with ${JSON.stringify(r)}`);
    const st = await ab.newStream("lc.stream.until.aborted", EMPTY, { timeout: 30 });
    const end = await withTimeout(outcome(readAll(st.responses)), "stream at its deadline");
    assert.ok(!end.ok && end.error instanceof TimeoutError, `the stream ended with ${JSON.stringify(end)}`);
    await expectIdle(a, b);
  });

  it("timeout: Infinity means no deadline, for requests and streams", async () => {
    const r = await withTimeout(ab.request("lc.sleep", Uint8Array.of(60), { timeout: Infinity }), "request without deadline");
    assert.deepEqual([...r], [0], "the handler saw a deadline");
    const st = await ab.newStream("lc.stream.until.aborted", EMPTY, { timeout: Infinity });
    await sleep(60);
    assert.equal(a.grid.stats().connections[b.url].inFlight.streams, 1);
    await st.responses.cancel();
    await expectIdle(a, b);
  });

  it("rejects (never throws) a NaN, zero or negative timeout with RangeError", async () => {
    for (const timeout of [NaN, 0, -5]) {
      let p: Promise<unknown> | undefined;
      assert.doesNotThrow(() => {
        p = ab.request("lc.sleep", Uint8Array.of(0), { timeout });
      });
      await assert.rejects(p!, RangeError);
      await assert.rejects(ab.newStream("lc.stream.until.aborted", EMPTY, { timeout }), RangeError);
      await assert.rejects(ab.waitForConnect({ timeout }), RangeError);
    }
  });

  it("maps the reason of AbortSignal.timeout() to TimeoutError and tells the handler it was a deadline", async () => {
    const reason = deferred<unknown>();
    b.grid.handle("lc.signal.timeout", async (_req: Uint8Array, ctx: CallContext) => {
      reason.resolve(await aborted(ctx.signal));
      return EMPTY;
    });
    const r = await outcome(ab.request("lc.signal.timeout", EMPTY, { signal: AbortSignal.timeout(30), timeout: WAIT }));
    assert.ok(!r.ok && r.error instanceof TimeoutError, `rejected with ${JSON.stringify(r)}`);
    assert.ok((await withTimeout(reason.promise, "handler aborted")) instanceof TimeoutError);
    const st = await outcome(ab.newStream("lc.stream.until.aborted", EMPTY, { signal: AbortSignal.abort(new DOMException("t", "TimeoutError")) }));
    assert.ok(!st.ok && st.error instanceof TimeoutError);
    await expectIdle(a, b);
  });
});

describe("first connection", () => {
  it("a call on a connection that has never been up waits for it; after a loss calls fail fast", async () => {
    const [a, b] = await makeNodes();
    try {
      b.grid.handle("lc.echo", (req) => req);
      await a.start();
      const ab = a.grid.connection(b.url);
      const first = outcome(ab.request("lc.echo", Uint8Array.of(1), { timeout: WAIT }));
      const firstStream = outcome(ab.newStream("lc.none", EMPTY, { timeout: WAIT }));
      await sleep(100);
      await b.start();
      const r = await withTimeout(first, "first call");
      assert.ok(r.ok, `first call: ${JSON.stringify(r)}`);
      assert.deepEqual([...r.value], [1]);
      const s = await withTimeout(firstStream, "first stream");
      assert.equal(code(!s.ok ? s.error : undefined), "unknown-handler", "the stream did not reach the remote");
      await b.stop();
      await until(() => ab.state !== "up", "connection down");
      const started = performance.now();
      const down = await outcome(ab.request("lc.echo", Uint8Array.of(2), { timeout: WAIT }));
      assert.ok(!down.ok && down.error instanceof DisconnectedError, `after a loss: ${JSON.stringify(down)}`);
      assert.ok(performance.now() - started < WAIT / 2, "the call after a loss did not fail fast");
    } finally {
      await a.stop();
      await b.stop();
    }
  });

  it("a call that waited for the first connection is checked against the negotiated maxMessageBytes", async () => {
    const [a, b] = await makeNodes({ b: { maxMessageBytes: 1024 } });
    try {
      b.grid.handle("lc.echo", (req) => req);
      await a.start();
      const ab = a.grid.connection(b.url);
      const big = outcome(ab.request("lc.echo", new Uint8Array(2000), { timeout: WAIT, waitForConnect: true }));
      const bigStream = outcome(ab.newStream("lc.echo", new Uint8Array(2000), { timeout: WAIT, waitForConnect: true }));
      await b.start();
      const r = await withTimeout(big, "oversize call");
      assert.ok(!r.ok && r.error instanceof PayloadTooLargeError, `oversize call: ${JSON.stringify(r)}`);
      const s = await withTimeout(bigStream, "oversize stream");
      assert.ok(!s.ok && s.error instanceof PayloadTooLargeError, `oversize stream: ${JSON.stringify(s)}`);
      const ok = await withTimeout(ab.request("lc.echo", Uint8Array.of(3)), "small call");
      assert.deepEqual([...ok], [3]);
      assert.equal(ab.state, "up");
      assert.equal(a.grid.stats().connections[b.url].reconnects, 0, "the oversize frame dropped the connection");
    } finally {
      await a.stop();
      await b.stop();
    }
  });

  it("new Client(url) followed at once by request() waits for the first connection", async () => {
    const [a, b] = await makeNodes();
    await b.start();
    const client = new Client(`${b.url}/grid/v1`, { token: TOKEN, backoff: { base: 20, cap: 200 } });
    try {
      const stats = await withTimeout(client.request("grid.stats", undefined, { timeout: WAIT }), "client's first call");
      assert.equal((stats as { local: string }).local, b.url);
    } finally {
      await client.close();
      await a.stop();
      await b.stop();
    }
  });

  it("a link that drops between the wait for the connection and the send fails the call with DisconnectedError", async () => {
    const [a, b] = await makeNodes();
    try {
      b.grid.handle("lc.echo", (req) => req);
      // The grid closes in the same turn the connection comes up, before the waiting call sends.
      a.grid.addEventListener("connect", () => void a.grid.close(), { once: true });
      await a.start();
      const call = outcome(a.grid.connection(b.url).request("lc.echo", Uint8Array.of(1), { timeout: WAIT, waitForConnect: true }));
      const stream = outcome(a.grid.connection(b.url).newStream("lc.none", EMPTY, { timeout: WAIT, waitForConnect: true }));
      await b.start();
      const r = await withTimeout(call, "call");
      assert.ok(!r.ok && r.error instanceof DisconnectedError, `call: ${r.ok ? "resolved" : String(r.error)}`);
      const s = await withTimeout(stream, "stream");
      assert.ok(!s.ok && s.error instanceof DisconnectedError, `stream: ${s.ok ? "resolved" : String(s.error)}`);
    } finally {
      await a.stop();
      await b.stop();
    }
  });
});

describe("consistent rejections", () => {
  let a: Node;
  let b: Node;
  let ab: Connection;

  before(async () => {
    ({ a, b, ab } = await startPair());
  });

  after(async () => {
    await a?.stop();
    await b?.stop();
  });

  it("an invalid handler name or payload rejects instead of throwing", async () => {
    const calls: Array<() => Promise<unknown>> = [
      () => ab.request("", EMPTY),
      () => ab.request("x".repeat(300), EMPTY),
      () => ab.request("echo", EMPTY, { subroute: "s".repeat(300) }),
      () => ab.request("echo", "not bytes" as unknown as Uint8Array),
      () => ab.newStream("", EMPTY),
      () => ab.newStream("echo", 5 as unknown as Uint8Array),
    ];
    for (const call of calls) {
      let p: Promise<unknown> | undefined;
      assert.doesNotThrow(() => {
        p = call();
      });
      await assert.rejects(p!, (e: unknown) => e instanceof RangeError || e instanceof TypeError);
    }
    await expectIdle(a, b);
  });
});

describe("registration and lifecycle hooks", () => {
  it("refuses a second registration of a name (and subroute) with GridError code exists", async () => {
    const [a, b] = await makeNodes();
    try {
      a.grid.handle("lc.dup", (req) => req);
      a.grid.handle("lc.dup", (req) => req, { subroute: "x" });
      a.grid.handleStream("lc.dup.stream", () => {});
      const exists = (e: unknown) => e instanceof GridError && e.code === "exists";
      assert.throws(() => a.grid.handle("lc.dup", (req) => req), exists);
      assert.throws(() => a.grid.handle("lc.dup", (req) => req, { subroute: "x" }), exists);
      assert.throws(() => a.grid.handleStream("lc.dup", () => {}), exists);
      assert.throws(() => a.grid.handleStream("lc.dup.stream", () => {}), exists);
      assert.throws(() => a.grid.handle("grid.stats", (req) => req), exists);
    } finally {
      await a.stop();
      await b.stop();
    }
  });

  it("aborts grid.signal and dispatches close when the Manager closes", async () => {
    const [a, b] = await makeNodes();
    const events: string[] = [];
    a.grid.addEventListener("close", () => events.push(`close, signal aborted: ${a.grid.signal.aborted}`));
    assert.equal(a.grid.signal.aborted, false);
    await a.stop();
    await a.grid.close();
    await b.stop();
    assert.deepEqual(events, ["close, signal aborted: true"]);
    assert.equal(code(a.grid.signal.reason), "closed");
  });

  it("await using closes the Manager, its server, a Client and a Stream at the end of the scope", async () => {
    const [a, b] = await makeNodes();
    b.grid.handleStream("lc.forever", async (call: RawCall) => {
      await aborted(call.signal);
    }, { inCapacity: 0 });
    await b.start();
    let grid: Manager;
    let client: Client;
    try {
      {
        await using g = a.grid;
        await using server = await serve(g, { port: a.port, hostname: HOST });
        await using c = new Client(`${b.url}/grid/v1`, { token: TOKEN });
        grid = g;
        client = c;
        assert.ok(server.port > 0);
        {
          await using st = await g.connection(b.url).newStream("lc.forever", EMPTY, { timeout: WAIT });
          assert.equal(typeof st.responses[Symbol.asyncIterator], "function");
          await until(() => b.grid.stats().connections[a.url].serving.streams === 1, "stream served");
        }
        await until(() => b.grid.stats().connections[a.url].serving.streams === 0, "stream canceled by dispose");
        await c.request("grid.stats", undefined, { timeout: WAIT });
      }
      assert.equal(grid!.signal.aborted, true);
      assert.equal(client!.state, "closed");
      // The server is closed: its port can be bound again.
      await using other = new Manager({ local: a.url, hosts: [a.url, b.url], secret: SECRET });
      const again = await serve(other, { port: a.port, hostname: HOST });
      await again.close();
    } finally {
      await a.stop();
      await b.stop();
    }
  });
});
