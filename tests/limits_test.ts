/**
 * What each side learns from the other in the handshake (message limit, ping
 * interval), handler-side stream liveness, the admin handshake rate limit, the
 * served-work caps (BusyError), the grid.watch interval floor and the send budget.
 */
import { after, describe, it } from "node:test";
import assert from "node:assert/strict";
import { BusyError, GridWatchHandler, Manager, type ManagerOptions, PayloadTooLargeError, shouldDial, type StreamCall, TimeoutError } from "../mod.ts";
import { decodeWelcome } from "../src/auth/handshake.ts";
import { decodeFrame } from "../src/protocol/frame.ts";
import { helloFrame, peerHello, proofFor } from "./_handshake.ts";
import { RawWs } from "./e2e/_raw_ws.ts";
import { Client } from "../src/client.ts";
import { type GridServer, serve } from "../src/adapters/serve.ts";
import { freePort, urlWhere } from "./_net.ts";

const TEST = { timeout: 60_000 };

const cleanup: Array<() => Promise<void>> = [];
after(async () => {
  for (const c of cleanup.reverse()) await c();
});

async function pair(a: Partial<ManagerOptions>, b: Partial<ManagerOptions>): Promise<[Manager, Manager]> {
  const pa = await freePort();
  let pb = await freePort();
  while (pb === pa) pb = await freePort();
  const hosts = [`ws://127.0.0.1:${pa}`, `ws://127.0.0.1:${pb}`];
  const base = { hosts, secret: "limits", pingInterval: 300, backoff: { base: 20, cap: 200 } };
  const ga = new Manager({ ...base, ...a, local: hosts[0] });
  const gb = new Manager({ ...base, ...b, local: hosts[1] });
  const servers: GridServer[] = [
    await serve(ga, { port: pa, hostname: "127.0.0.1" }),
    await serve(gb, { port: pb, hostname: "127.0.0.1" }),
  ];
  cleanup.push(async () => {
    await ga.close();
    await gb.close();
    for (const s of servers) await s.close();
  });
  await ga.connection(hosts[1]).waitForConnect({ timeout: 10_000 });
  await gb.connection(hosts[0]).waitForConnect({ timeout: 10_000 });
  return [ga, gb];
}

describe("handshake limits", () => {
  it("fails a call over the remote's smaller maxMessageBytes locally and keeps the link up", TEST, async () => {
    const [ga, gb] = await pair({ maxMessageBytes: 1 << 20 }, { maxMessageBytes: 64 << 10 });
    gb.handle("echo", (r) => r);
    ga.handle("big", () => new Uint8Array(200 << 10));
    const toB = ga.connection(gb.local);
    await assert.rejects(toB.request("echo", new Uint8Array(100 << 10)), (e: unknown) => {
      assert.ok(e instanceof PayloadTooLargeError);
      assert.equal(e.code, "too-large");
      return true;
    });
    // The callee's answer over the caller's limit is refused by the callee, not by breaking the link.
    await assert.rejects(gb.connection(ga.local).request("big", new Uint8Array(1)), (e: unknown) => {
      assert.ok(e instanceof PayloadTooLargeError);
      return true;
    });
    const ok = await toB.request("echo", new Uint8Array(60 << 10));
    assert.equal(ok.length, 60 << 10);
    assert.equal(toB.stats().reconnects, 0);
    assert.equal(toB.state, "up");
  });

  it("ends a handler's stream whose caller stopped pinging it while the link stays up", TEST, async () => {
    const [ga, gb] = await pair({}, {});
    let aborted: unknown = null;
    const seen = new Promise<void>((resolve) => {
      gb.handleStream("hang", (call: StreamCall<Uint8Array, Uint8Array, Uint8Array>) =>
        new Promise<void>((done) => {
          call.signal.addEventListener("abort", () => {
            aborted = call.signal.reason;
            resolve();
            done();
          }, { once: true });
        }), { inCapacity: 0 });
    });
    const toB = ga.connection(gb.local);
    const st = await toB.newStream("hang", new Uint8Array());
    // Make the caller forget the stream without telling the handler (as a lost caller would).
    const caller = (toB as unknown as { caller: { streams: Map<number, unknown> } }).caller;
    assert.equal(caller.streams.size, 1);
    caller.streams.clear();
    const t0 = performance.now();
    await seen;
    const ms = performance.now() - t0;
    console.log(`[limits] handler stream dropped ${Math.round(ms)} ms after its caller went silent`);
    assert.equal((aborted as { code?: string }).code, "disconnected");
    assert.ok(ms < 2 * 300 + 1000 + 2_000, `dropped after ${ms} ms`);
    assert.equal(gb.connection(ga.local).stats().serving.streams, 0);
    assert.equal(toB.state, "up");
    void st.responses.cancel().catch(() => {});
  });
});

describe("admin handshake rate", () => {
  it("admits admin handshakes at maxHandshakesPerSecond; the rest back off and get in later", TEST, async () => {
    const [ga] = await pair({ admin: { tokens: ["tok"], maxHandshakesPerSecond: 2, maxConnections: 100 } }, {});
    const url = ga.local + "/grid/v1";
    const clients = Array.from({ length: 10 }, () => new Client(url, { token: "tok", backoff: { base: 50, cap: 400 } }));
    cleanup.push(async () => {
      for (const c of clients) await c.close();
    });
    await new Promise((resolve) => setTimeout(resolve, 300));
    const early = ga.stats().admin.connections;
    console.log(`[limits] admin burst of 10 at 2/s: ${early} admitted in the first 300 ms`);
    assert.ok(early >= 1 && early <= 5, `admitted ${early} at once`);
    const t0 = performance.now();
    const stats = await Promise.all(
      clients.map((c) => c.request("grid.stats", undefined, { waitForConnect: true, timeout: 20_000 })),
    );
    console.log(`[limits] all 10 admitted after ${Math.round(performance.now() - t0)} ms more`);
    assert.equal(stats.length, 10);
    assert.equal(ga.stats().admin.connections, 10);
  });
});

describe("served-work caps and the send budget", () => {
  it("a callee serving maxServedRequests for a caller refuses the next request with BusyError; nothing runs for it", TEST, async () => {
    const [ga, gb] = await pair({}, { maxServedRequests: 2 });
    let ran = 0;
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    gb.handle("slow", async (req) => {
      ran++;
      await gate;
      return req;
    });
    const conn = ga.connection(gb.local);
    const held = [conn.request("slow", Uint8Array.of(1)), conn.request("slow", Uint8Array.of(2))];
    await new Promise((r) => setTimeout(r, 50));
    const err = await conn.request("slow", Uint8Array.of(3)).then(() => null, (e) => e);
    assert.ok(err instanceof BusyError, `got ${err}`);
    assert.equal(err.code, "busy");
    assert.equal(ran, 2, "the refused call never reached the handler");
    release();
    assert.deepEqual((await Promise.all(held)).map((b) => b[0]), [1, 2]);
    assert.deepEqual([...await conn.request("slow", Uint8Array.of(4))], [4], "room again once calls finish");
  });

  it("a callee serving maxServedStreams for a caller refuses the next stream open with BusyError", TEST, async () => {
    const [ga, gb] = await pair({}, { maxServedStreams: 1 });
    let opened = 0;
    gb.handleStream("hold", async (call) => {
      opened++;
      await new Promise<void>((r) => call.signal.addEventListener("abort", () => r(), { once: true }));
    }, { inCapacity: 0 });
    const conn = ga.connection(gb.local);
    const ctrl = new AbortController();
    await conn.newStream("hold", new Uint8Array(0), { signal: ctrl.signal });
    const err = await conn.newStream("hold", new Uint8Array(0)).then(() => null, (e) => e);
    assert.ok(err instanceof BusyError, `got ${err}`);
    assert.equal(opened, 1);
    ctrl.abort();
  });

  it("grid.watch sends at most every 250 ms whatever interval is asked for", TEST, async () => {
    const [ga, gb] = await pair({}, {});
    const st = await ga.connection(gb.local).newStream(GridWatchHandler, { intervalMs: 1 });
    const reader = st.responses.getReader();
    await reader.read();
    const t0 = performance.now();
    await reader.read();
    await reader.read();
    const elapsed = performance.now() - t0;
    assert.ok(elapsed >= 2 * 250 - 50, `two updates came ${elapsed} ms apart in all`);
    await reader.cancel();
  });

  it("requests wait for room while the peer does not read: the deadline gives TimeoutError, the signal rejects at once", TEST, async () => {
    const port = await freePort();
    const local = `ws://127.0.0.1:${port}`;
    const ghost = await urlWhere((u) => shouldDial(u, local), new Set([local]));
    const grid = new Manager({
      local,
      hosts: [local, ghost],
      secret: "limits",
      maxMessageBytes: 256 << 10,
      maxQueuedBytes: 4 << 20,
      // Long enough that the write deadline does not drop the link during the test.
      writeTimeout: 30_000,
      pingInterval: 30_000,
    });
    const server = await serve(grid, { port, hostname: "127.0.0.1" });
    cleanup.push(async () => {
      await grid.close();
      await server.close();
    });
    // The ghost, played by hand, completes its handshake and then never reads.
    const raw = await RawWs.open(local + grid.path);
    const hello = peerHello(ghost, local, { max: 256 << 10 });
    raw.send(helloFrame(hello));
    const welcome = decodeWelcome(decodeFrame((await raw.next())!, 1 << 20)[0].payload);
    raw.send(await proofFor(hello, welcome, "limits"));
    assert.ok(await raw.next() !== null, "ready");
    raw.pause();
    cleanup.push(() => Promise.resolve(raw.destroy()));
    const conn = grid.connection(ghost);
    await conn.waitForConnect({ timeout: 10_000 });
    // Fill the socket's buffers and the budget's first quarter: these never get an answer.
    const sent: Promise<unknown>[] = [];
    for (let i = 0; i < 64; i++) sent.push(conn.request("x", new Uint8Array(200 << 10), { timeout: 20_000 }).catch(() => {}));
    await new Promise((r) => setTimeout(r, 200));
    const t0 = performance.now();
    const timedOut = await conn.request("x", new Uint8Array(200 << 10), { timeout: 300 }).then(() => null, (e) => e);
    assert.ok(timedOut instanceof TimeoutError, `got ${timedOut}`);
    assert.match(timedOut.message, /waiting for the peer to read/);
    assert.ok(performance.now() - t0 < 5_000);
    const ctrl = new AbortController();
    const aborted = conn.request("x", new Uint8Array(200 << 10), { signal: ctrl.signal, timeout: 20_000 }).then(() => null, (e) => e);
    const reason = new Error("caller gave up");
    ctrl.abort(reason);
    assert.equal(await aborted, reason, "the signal's reason, at once");
    assert.equal(conn.state, "up", "waiting callers do not drop the link");
    await grid.close();
    await Promise.all(sent);
  });
});
