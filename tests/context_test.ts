/**
 * Call context end to end, in one process over real WebSockets: per-call metadata and its
 * limit, nested calls that inherit deadline, cancellation and trace context from `parent`,
 * and interceptors on the Manager (incoming and outgoing) and on the Client.
 */
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import {
  type CallContext,
  defineStream,
  GridError,
  type IncomingCall,
  Manager,
  type OutgoingCall,
  PayloadTooLargeError,
  ProtocolError,
  RemoteError,
  type StreamCall,
  TimeoutError,
  UnauthorizedError,
} from "../mod.ts";
import { Client } from "../src/client.ts";
import type { Link } from "../src/link.ts";
import type { MuxCaller } from "../src/mux/caller.ts";
import { DEFAULT_LIMITS } from "../src/protocol/limits.ts";
import { type GridServer, serve } from "../src/adapters/serve.ts";
import { freeUrls } from "./_net.ts";
import { withTimeout } from "./_wait.ts";

const SECRET = "context test secret";
const TOKEN = "context test token";
const TEST = { timeout: 60_000 };
const enc = new TextEncoder();
const dec = new TextDecoder();
const EMPTY = new Uint8Array(0);

interface Node {
  url: string;
  grid: Manager;
  server: GridServer;
}

async function startNode(url: string, hosts: string[]): Promise<Node> {
  const grid = new Manager({
    local: url,
    hosts,
    secret: SECRET,
    pingInterval: 500,
    backoff: { base: 20, cap: 200 },
    requestTimeout: 8_000,
    admin: { tokens: [TOKEN] },
  });
  const server = await serve(grid, { port: Number(new URL(url).port), hostname: "127.0.0.1" });
  return { url, grid, server };
}

const json = (v: unknown) => enc.encode(JSON.stringify(v));
const parse = <T>(b: Uint8Array): T => JSON.parse(dec.decode(b)) as T;

/** What a handler saw, for the assertions. */
interface Seen {
  metadata: Record<string, string>;
  deadline: number | undefined;
}

const seenOf = (ctx: CallContext): Seen => ({ metadata: { ...ctx.metadata }, deadline: ctx.deadline });

describe("call context: metadata, parent, interceptors", () => {
  let a: Node;
  let b: Node;
  /** Handler runs of "guarded" (refused by an interceptor unless authorized). */
  let guardedRuns = 0;
  /** Set by "inner" when its signal aborted, with the reason. */
  let innerAborted: ((reason: unknown) => void) | null = null;
  /** What the incoming interceptor of B observed, by handler. */
  const observed: { handler: string; remote: string; metadata: Record<string, string>; outcome: string }[] = [];
  const outgoingSeen: { handler: string; metadata: Record<string, string>; outcome: string }[] = [];

  before(async () => {
    const hosts = await freeUrls(2);
    [a, b] = await Promise.all(hosts.map((h) => startNode(h, hosts)));
    for (const n of [a, b]) {
      n.grid.handle("meta", (_req, ctx) => json(seenOf(ctx)), { readOnly: true });
      n.grid.handleStream("meta-stream", async (call) => {
        const w = call.responses.getWriter();
        await w.write(json(seenOf(call)));
        await w.close();
      }, { inCapacity: 0 });
      n.grid.handle("inner", (_req, ctx) =>
        new Promise<Uint8Array>((resolve, reject) => {
          const onAbort = () => {
            innerAborted?.(ctx.signal.reason);
            reject(ctx.signal.reason);
          };
          if (ctx.signal.aborted) return onAbort();
          ctx.signal.addEventListener("abort", onAbort, { once: true });
          // Answers at once when asked to, else waits for its signal.
          if (ctx.metadata.wait !== "yes") resolve(json(seenOf(ctx)));
        }));
      n.grid.handle("guarded", () => {
        guardedRuns++;
        return EMPTY;
      });
      n.grid.handleStream("guarded-stream", async () => {
        guardedRuns++;
      }, { inCapacity: 0 });
    }
    // B's "outer" calls A's "inner" inside its handler, with the call as parent.
    b.grid.handle("outer", async (req, ctx) => {
      const over = parse<{ timeout?: number; wait?: boolean }>(req);
      const metadata: Record<string, string> = over.wait === true ? { wait: "yes" } : {};
      return await b.grid.connection(a.url).request("inner", EMPTY, { parent: ctx, timeout: over.timeout, metadata });
    });
    b.grid.handle("outer-stream", async (_req, ctx) => {
      const st = await b.grid.connection(a.url).newStream("meta-stream", EMPTY, { parent: ctx });
      for await (const r of st.responses) return r;
      throw new Error("no response");
    });
    b.grid.use({
      incoming: async (call: IncomingCall, next) => {
        call.onEnd((o) => {
          observed.push({
            handler: call.handler,
            remote: call.remote,
            metadata: { ...call.metadata },
            outcome: o === undefined ? "ok" : o instanceof GridError ? o.code : "error",
          });
        });
        if (call.handler.startsWith("guarded") && call.metadata.auth !== "yes") {
          throw new UnauthorizedError(`Handler "${call.handler}" needs auth`);
        }
        if (call.handler === "meta") call.metadata.added = "by interceptor";
        return await next();
      },
    });
    a.grid.use({
      outgoing: async (call: OutgoingCall, next) => {
        if (call.handler === "meta") call.metadata["x-from"] = "a";
        try {
          const r = await next();
          outgoingSeen.push({ handler: call.handler, metadata: { ...call.metadata }, outcome: "ok" });
          return r;
        } catch (e) {
          outgoingSeen.push({ handler: call.handler, metadata: { ...call.metadata }, outcome: (e as GridError).code ?? "error" });
          throw e;
        }
      },
    });
    await a.grid.connection(b.url).waitForConnect({ timeout: 10_000 });
  });

  after(async () => {
    for (const n of [a, b]) {
      await n?.grid.close();
      await n?.server.close();
    }
  });

  it("metadata round-trips on a request and on a stream; a call without metadata sees {}", TEST, async () => {
    const conn = b.grid.connection(a.url);
    const got = parse<Seen>(await conn.request("meta", EMPTY, { metadata: { "user-id": "42", "日本": "語", empty: "" } }));
    assert.deepEqual(got.metadata, { "user-id": "42", "日本": "語", empty: "" });
    assert.deepEqual(parse<Seen>(await conn.request("meta", EMPTY)).metadata, {});
    const st = await conn.newStream("meta-stream", EMPTY, { metadata: { k: "stream" } });
    const chunks: Uint8Array[] = [];
    for await (const c of st.responses) chunks.push(c);
    assert.deepEqual(parse<Seen>(chunks[0]).metadata, { k: "stream" });
  });

  it("metadata over maxMetadataBytes is refused before sending; a bad value with TypeError", TEST, async () => {
    const conn = b.grid.connection(a.url);
    const before = a.grid.stats().handlers.meta?.calls ?? 0;
    const big = { k: "x".repeat(DEFAULT_LIMITS.maxMetadataBytes) };
    await assert.rejects(conn.request("meta", EMPTY, { metadata: big }), PayloadTooLargeError);
    await assert.rejects(conn.newStream("meta-stream", EMPTY, { metadata: big }), PayloadTooLargeError);
    await assert.rejects(conn.request("meta", EMPTY, { metadata: { n: 1 as unknown as string } }), TypeError);
    await assert.rejects(conn.request("meta", EMPTY, { metadata: "k=v" as unknown as Record<string, string> }), TypeError);
    assert.equal(a.grid.stats().handlers.meta?.calls ?? 0, before, "a refused call reached the handler");
  });

  it("a peer that sends over-limit or malformed metadata gets an error for that call; the connection stays up", TEST, async () => {
    const conn = b.grid.connection(a.url);
    // Past the sender's own check: the mux and link of the connection, as a misbehaving peer would use them.
    const inner = conn as unknown as { caller: MuxCaller; link: Link };
    const section = (entries: Uint8Array) => {
      const out = new Uint8Array(2 + entries.length);
      out[0] = entries.length >>> 8;
      out[1] = entries.length;
      out.set(entries, 2);
      return out;
    };
    const big = new Uint8Array(DEFAULT_LIMITS.maxMetadataBytes + 1);
    big.set([1, 0x6b, (big.length - 4) >>> 8, (big.length - 4) & 255]);
    await assert.rejects(
      inner.caller.request(inner.link, "meta", "", EMPTY, 5_000, undefined, section(big)),
      (e: unknown) => e instanceof PayloadTooLargeError && /maxMetadataBytes/.test(e.message),
    );
    await assert.rejects(
      inner.caller.request(inner.link, "meta", "", EMPTY, 5_000, undefined, section(Uint8Array.of(1, 0xff, 0, 0))),
      (e: unknown) => e instanceof ProtocolError && /metadata/.test(e.message),
    );
    assert.equal(conn.state, "up");
    assert.deepEqual(parse<Seen>(await conn.request("meta", EMPTY, { metadata: { ok: "1" } })).metadata, { ok: "1" });
  });

  it("a nested call with { parent: ctx } takes the parent's shorter deadline and its trace context", TEST, async () => {
    const conn = a.grid.connection(b.url);
    const traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    const started = Date.now();
    const got = parse<Seen>(await conn.request("outer", json({}), { timeout: 3_000, metadata: { traceparent, tracestate: "k=v", other: "x" } }));
    assert.equal(got.metadata.traceparent, traceparent);
    assert.equal(got.metadata.tracestate, "k=v");
    assert.equal(got.metadata.other, undefined, "only the trace context is inherited");
    assert.ok(got.deadline !== undefined && got.deadline <= started + 3_000 + 50, `inner deadline ${got.deadline} vs ${started + 3_000}`);
    // The inner call's own shorter timeout wins over the parent's.
    const shorter = parse<Seen>(await conn.request("outer", json({ timeout: 500 }), { timeout: 5_000 }));
    assert.ok(shorter.deadline !== undefined && shorter.deadline <= Date.now() + 500, `inner deadline ${shorter.deadline}`);
  });

  it("a nested call fails with TimeoutError at the parent's deadline, and its handler is aborted", TEST, async () => {
    const conn = a.grid.connection(b.url);
    const aborted = new Promise<unknown>((resolve) => (innerAborted = resolve));
    const started = performance.now();
    await assert.rejects(conn.request("outer", json({ wait: true }), { timeout: 300 }), TimeoutError);
    const reason = await withTimeout(aborted, "inner handler aborted", 5_000);
    assert.ok(reason instanceof TimeoutError, `inner abort reason ${String(reason)}`);
    assert.ok(performance.now() - started < 4_000);
  });

  it("a nested call is canceled when the parent's caller aborts", TEST, async () => {
    const conn = a.grid.connection(b.url);
    const aborted = new Promise<unknown>((resolve) => (innerAborted = resolve));
    const ctrl = new AbortController();
    const call = conn.request("outer", json({ wait: true }), { signal: ctrl.signal, timeout: 20_000 });
    const rejected = assert.rejects(call, (e: unknown) => e instanceof DOMException && e.name === "AbortError");
    // Abort once the inner handler runs (A serves it).
    for (let i = 0; i < 200 && (a.grid.stats().handlers.inner?.inFlight ?? 0) === 0; i++) {
      await new Promise((r) => setTimeout(r, 10));
    }
    ctrl.abort();
    await rejected;
    const reason = await withTimeout(aborted, "inner handler aborted", 5_000);
    assert.ok(reason instanceof DOMException && reason.name === "AbortError", `inner abort reason ${String(reason)}`);
  });

  it("a nested stream with { parent } carries the trace context; a parent past its deadline fails at once", TEST, async () => {
    const conn = a.grid.connection(b.url);
    const traceparent = "00-0af7651916cd43dd8448eb211c80319c-00f067aa0ba902b7-01";
    const got = parse<Seen>(await conn.request("outer-stream", EMPTY, { metadata: { traceparent } }));
    assert.equal(got.metadata.traceparent, traceparent);
    const past: CallContext = { signal: new AbortController().signal, remote: "x", deadline: Date.now() - 1, subroute: "", metadata: {} };
    await assert.rejects(conn.request("meta", EMPTY, { parent: past }), TimeoutError);
    await assert.rejects(conn.request("meta", EMPTY, { parent: {} as CallContext }), TypeError);
  });

  it("an incoming interceptor that refuses a handler gives unauthorized at the caller; the handler never runs", TEST, async () => {
    const conn = a.grid.connection(b.url);
    guardedRuns = 0;
    await assert.rejects(conn.request("guarded", EMPTY), (e: unknown) => e instanceof UnauthorizedError && e.code === "unauthorized");
    await assert.rejects(conn.newStream("guarded-stream", EMPTY), UnauthorizedError);
    assert.equal(guardedRuns, 0);
    await conn.request("guarded", EMPTY, { metadata: { auth: "yes" } });
    assert.equal(guardedRuns, 1);
    assert.equal(b.grid.stats().handlers.guarded.errorsByCode.unauthorized, 1);
  });

  it("interceptors see handler, remote and metadata, set metadata the other side sees, and observe outcomes", TEST, async () => {
    const conn = a.grid.connection(b.url);
    observed.length = 0;
    outgoingSeen.length = 0;
    const got = parse<Seen>(await conn.request("meta", EMPTY, { metadata: { k: "1" } }));
    // A's outgoing interceptor added x-from; B's incoming one added "added" for the handler.
    assert.deepEqual(got.metadata, { k: "1", "x-from": "a", added: "by interceptor" });
    await assert.rejects(conn.request("guarded", EMPTY), UnauthorizedError);
    const st = await conn.newStream("meta-stream", EMPTY);
    for await (const _ of st.responses) { /* drain */ }
    const until = Date.now() + 5_000;
    while (observed.length < 3 && Date.now() < until) await new Promise((r) => setTimeout(r, 10));
    const byHandler = Object.fromEntries(observed.map((o) => [o.handler, o]));
    assert.equal(byHandler.meta.remote, a.url);
    assert.equal(byHandler.meta.outcome, "ok");
    assert.equal(byHandler.guarded.outcome, "unauthorized");
    assert.equal(byHandler["meta-stream"].outcome, "ok");
    assert.deepEqual(outgoingSeen.map((o) => [o.handler, o.outcome]), [["meta", "ok"], ["guarded", "unauthorized"], ["meta-stream", "ok"]]);
    assert.equal(outgoingSeen[0].metadata["x-from"], "a");
  });

  it("an interceptor that throws a plain error fails the call as a RemoteError; next() twice is refused", TEST, async () => {
    const hosts = await freeUrls(2);
    const [c, d] = await Promise.all(hosts.map((h) => startNode(h, hosts)));
    try {
      d.grid.handle("x", () => EMPTY);
      d.grid.use({ incoming: () => Promise.reject(new Error("boom")) });
      c.grid.use({ outgoing: async (_call, next) => (await next(), await next()) });
      const conn = c.grid.connection(d.url);
      await assert.rejects(conn.request("x", EMPTY), (e: unknown) => e instanceof RemoteError && e.message === "boom");
      assert.throws(() => c.grid.use({ incoming: 1 as unknown as undefined }), TypeError);
    } finally {
      for (const n of [c, d]) {
        await n.grid.close();
        await n.server.close();
      }
    }
  });

  it("interceptors that answer without calling next() still settle every call with a clear error", TEST, async () => {
    const hosts = await freeUrls(2);
    const [g, h] = await Promise.all(hosts.map((x) => startNode(x, hosts)));
    try {
      h.grid.handleStream("st", async () => {}, { inCapacity: 0 });
      h.grid.use({ incoming: () => Promise.resolve(undefined) });
      g.grid.use({ outgoing: (call, next) => call.handler === "skip" ? Promise.resolve("nope") : next() });
      await assert.rejects(g.grid.connection(h.url).newStream("st", EMPTY, { timeout: 5_000 }), RemoteError);
      await assert.rejects(g.grid.connection(h.url).request("skip", EMPTY), TypeError);
    } finally {
      for (const n of [g, h]) {
        await n.grid.close();
        await n.server.close();
      }
    }
  });

  it("a Client's outgoing interceptors set metadata and observe outcomes", TEST, async () => {
    const seen: string[] = [];
    await using client = new Client(`${a.url}/grid/v1`, {
      token: TOKEN,
      outgoing: [async (call, next) => {
        call.metadata.client = "yes";
        try {
          return await next();
        } finally {
          seen.push(`${call.kind} ${call.handler} ${call.remote}`);
        }
      }],
    });
    const got = parse<Seen>(await client.request("meta", EMPTY, { waitForConnect: true, metadata: { k: "v" } }));
    assert.deepEqual(got.metadata, { k: "v", client: "yes" });
    await assert.rejects(client.request("guarded", EMPTY), UnauthorizedError); // not readOnly
    assert.deepEqual(seen, [`request meta ${a.url}/grid/v1`, `request guarded ${a.url}/grid/v1`]);
    assert.throws(() => new Client(`${a.url}/grid/v1`, { token: TOKEN, outgoing: [1 as unknown as never] }), TypeError);
  });

  it("a stream without requests (defineStream<P, never, R> with inCapacity 0) gives the caller no requests writable", TEST, async () => {
    const Count = defineStream<{ to: number }, never, number>("count", { inCapacity: 0 });
    assert.equal(Count.inCapacity, 0);
    a.grid.handleStream(Count, async function* (call: StreamCall<{ to: number }, never, number>) {
      assert.equal(call.requests, null);
      for (let i = 1; i <= call.payload.to; i++) yield i;
    });
    const st = await b.grid.connection(a.url).newStream(Count, { to: 3 });
    assert.equal(st.requests, null);
    const got: number[] = [];
    for await (const n of st.responses) got.push(n);
    assert.deepEqual(got, [1, 2, 3]);
  });
});
