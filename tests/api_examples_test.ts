/**
 * The examples of API.md (the public contract), each mirrored as written: the same calls, the
 * same options and the same handler bodies, with loopback URLs in place of the 10.0.0.x hosts
 * and free ports in place of 9000. The "Decided additions" examples (`await using`, the
 * `async function*` stream handler, `timeout: Infinity`, the first connection) are here too.
 * The locks examples are mirrored by tests/locks_test.ts, the adapter forms by
 * tests/adapters_test.ts.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import {
  type CallContext,
  defineSingle,
  defineStream,
  GridError,
  Manager,
  type Stream,
  type StreamCall,
} from "../mod.ts";
import { Client } from "../src/client.ts";
import { serve } from "../src/adapters/serve.ts";
import { freePorts } from "./_net.ts";
import { withTimeout } from "./_wait.ts";

const WAIT = 15_000;

/** Three loopback nodes as in API.md's Manager example; the first is `local`. */
async function threeHosts(): Promise<{ hosts: string[]; ports: number[] }> {
  const ports = await freePorts(3);
  return { hosts: ports.map((p) => `ws://127.0.0.1:${p}`), ports };
}

/** A peer Manager for `hosts[i]`, served, with the same secret. */
async function peer(hosts: string[], ports: number[], i: number) {
  const grid = new Manager({ local: hosts[i], hosts, secret: "cluster secret", backoff: { base: 20, cap: 200 } });
  const server = await serve(grid, { port: ports[i], hostname: "127.0.0.1" });
  return {
    grid,
    close: async () => {
      await grid.close();
      await server.close();
    },
  };
}

describe("API.md examples", () => {
  it("Manager: new Manager with every option, serve, close", async () => {
    const { hosts, ports } = await threeHosts();
    const grid = new Manager({
      local: hosts[0],
      hosts,
      secret: "cluster secret",
      path: "/grid/v1",
      requestTimeout: 60_000,
      pingInterval: 10_000,
      maxMessageBytes: 4 << 20,
      admin: { tokens: ["read-only token"] },
    });
    const server = await serve(grid, { port: ports[0], hostname: "127.0.0.1" });
    assert.equal(server.port, ports[0]);
    assert.throws(() => grid.connection(hosts[0]), (e: unknown) => e instanceof GridError && e.code === "unknown-host");
    assert.equal(grid.connection(hosts[1]), grid.connection(hosts[1]));
    const stats = grid.stats();
    assert.deepEqual(Object.keys(stats.connections).sort(), [hosts[1], hosts[2]].sort());
    await grid.close();
    await server.close();
  });

  it("Raw bytes: handle echo, request with signal, timeout and subroute; handleStream tail, newStream", async () => {
    const { hosts, ports } = await threeHosts();
    const a = await peer(hosts, ports, 0);
    const b = await peer(hosts, ports, 1);
    try {
      b.grid.handle("echo", (req: Uint8Array, _ctx: CallContext) => req);
      const conn = a.grid.connection(hosts[1]);
      const signal = new AbortController().signal;
      const res: Uint8Array = await conn.request("echo", new Uint8Array([1, 2, 3]), {
        signal,
        timeout: 5_000,
        subroute: "bucket-a",
      });
      assert.deepEqual([...res], [1, 2, 3]);

      b.grid.handleStream("tail", async (call: StreamCall<Uint8Array, Uint8Array, Uint8Array>) => {
        const w = call.responses.getWriter();
        for await (const chunk of call.requests!) await w.write(chunk);
        await w.close();
      }, { inCapacity: 16, outCapacity: 16 });
      const initialPayload = new Uint8Array(0);
      const st: Stream<Uint8Array, Uint8Array> = await conn.newStream("tail", initialPayload, { signal });
      assert.ok(st.requests !== null);
      const w = st.requests.getWriter();
      await w.write(Uint8Array.of(9));
      await w.close();
      const got: number[] = [];
      for await (const chunk of st.responses) got.push(...chunk);
      assert.deepEqual(got, [9]);
    } finally {
      await a.close();
      await b.close();
    }
  });

  it("Typed: defineSingle kv.lookup, defineStream kv.watch with never requests", async () => {
    const { hosts, ports } = await threeHosts();
    const a = await peer(hosts, ports, 0);
    const b = await peer(hosts, ports, 1);
    try {
      const grid = b.grid;
      const conn = a.grid.connection(hosts[1]);
      const store = new Map([["a", "1"], ["a/x", "2"]]);
      const Lookup = defineSingle<{ key: string }, { value: string | null }>("kv.lookup");
      grid.handle(Lookup, async ({ key }, _ctx) => ({ value: store.get(key) ?? null }), { readOnly: true });
      const { value } = await conn.request(Lookup, { key: "a" });
      assert.equal(value, "1");

      const Watch = defineStream<{ prefix: string }, never, { key: string }>("kv.watch", { outCapacity: 64 });
      grid.handleStream(Watch, async (call) => {
        const w = call.responses.getWriter();
        for (const key of store.keys()) if (key.startsWith(call.payload.prefix)) await w.write({ key });
        await w.close();
      });
      const st = await conn.newStream(Watch, { prefix: "a/" });
      const keys: string[] = [];
      for await (const ev of st.responses) keys.push(ev.key);
      assert.deepEqual(keys, ["a/x"]);
    } finally {
      await a.close();
      await b.close();
    }
  });

  it("Client: request grid.stats and newStream grid.watch right after new Client, then close", async () => {
    const { hosts, ports } = await threeHosts();
    const grid = new Manager({ local: hosts[0], hosts, secret: "cluster secret", admin: { tokens: ["read-only token"] } });
    const server = await serve(grid, { port: ports[0], hostname: "127.0.0.1" });
    try {
      const admin = new Client(`${hosts[0]}/grid/v1`, { token: "read-only token" });
      const stats = await withTimeout(admin.request("grid.stats", undefined), "grid.stats", WAIT);
      assert.equal((stats as { local: string }).local, hosts[0]);
      const live = await admin.newStream("grid.watch", { intervalMs: 1000 });
      const first = await withTimeout(live.responses.getReader().read(), "first grid.watch message", WAIT);
      assert.equal((first.value as { local: string }).local, hosts[0]);
      await admin.close();
    } finally {
      await grid.close();
      await server.close();
    }
  });

  it("Decided additions: await using, async function* handlers, timeout: Infinity", async () => {
    const { hosts, ports } = await threeHosts();
    const b = await peer(hosts, ports, 1);
    try {
      const Count = defineStream<{ to: number }, never, number>("count", { inCapacity: 0 });
      b.grid.handleStream(Count, async function* (call) {
        for (let i = 1; i <= call.payload.to; i++) yield i;
      });
      let closed: Manager | undefined;
      {
        await using grid = new Manager({ local: hosts[0], hosts, secret: "cluster secret" });
        await using server = await serve(grid, { port: ports[0], hostname: "127.0.0.1" });
        closed = grid;
        assert.equal(server.port, ports[0]);
        await using st = await grid.connection(hosts[1]).newStream(Count, { to: 3 }, { timeout: Infinity });
        const got: number[] = [];
        for await (const n of st.responses) got.push(n);
        assert.deepEqual(got, [1, 2, 3]);
      }
      assert.equal(closed.signal.aborted, true);
    } finally {
      await b.close();
    }
  });
});
