/**
 * What each side learns from the other in the handshake (message limit, ping
 * interval), handler-side stream liveness, and the admin handshake rate limit.
 */
import { after, describe, it } from "node:test";
import assert from "node:assert/strict";
import { Manager, type ManagerOptions, PayloadTooLargeError, type StreamCall } from "../mod.ts";
import { Client } from "../src/client.ts";
import { type GridServer, serve } from "../src/adapters/serve.ts";
import { freePort } from "./_net.ts";

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
