/**
 * Typed handlers: `defineSingle` / `defineStream` with the msgpack (default),
 * json and raw codecs, round trip between two Managers on loopback.
 */
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import {
  type Codec,
  type Connection,
  defineSingle,
  defineStream,
  json,
  Manager,
  msgpack,
  raw,
  RemoteError,
} from "../mod.ts";
import { type GridServer, serve } from "../src/adapters/serve.ts";
import { freePort } from "./_net.ts";

const HOST = "127.0.0.1";
const WAIT = 15_000;

async function readAll<T>(stream: ReadableStream<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const v of stream) out.push(v);
  return out;
}

async function writeAll<T>(stream: WritableStream<T>, values: T[]): Promise<void> {
  const w = stream.getWriter();
  for (const v of values) await w.write(v);
  await w.close();
}

// ---------------------------------------------------------------------------------------------
// Definitions shared by "both nodes", as an application would keep them in one module

interface Item {
  key: string;
  size: number;
  tags: string[];
  meta: { owner: string | null; deleted: boolean };
  etag: Uint8Array;
}

const item: Item = {
  key: "bucket/object ✓",
  size: 2 ** 40 + 1,
  tags: ["a", "b"],
  meta: { owner: null, deleted: false },
  etag: Uint8Array.of(0, 1, 2, 254, 255),
};

const Stat = defineSingle<{ key: string }, Item>("typed.stat");
const JsonAdd = defineSingle<{ a: number; b: number }, { sum: number }>("typed.add.json", {
  request: json<{ a: number; b: number }>(),
  response: json<{ sum: number }>(),
});
const JsonEcho = defineSingle<{ text: string; list: number[] }, { text: string; list: number[] }>("typed.echo.json", {
  codec: json<{ text: string; list: number[] }>(),
});
const RawReverse = defineSingle<Uint8Array, Uint8Array>("typed.reverse.raw", { codec: raw });
const Mixed = defineSingle<{ n: number }, Uint8Array>("typed.mixed", { request: msgpack<{ n: number }>(), response: raw });

const Scan = defineStream<{ prefix: string }, { key: string }, Item>("typed.scan");
const JsonCount = defineStream<{ start: number }, { add: number }, { total: number }>("typed.count.json", {
  payload: json<{ start: number }>(),
  request: json<{ add: number }>(),
  response: json<{ total: number }>(),
  inCapacity: 2,
  outCapacity: 3,
});
const RawChunks = defineStream<Uint8Array, Uint8Array, Uint8Array>("typed.chunks.raw", {
  payload: raw,
  request: raw,
  response: raw,
});
const Watch = defineStream<{ prefix: string }, never, { key: string }>("typed.watch", { inCapacity: 0, outCapacity: 64 });

/** A codec that counts its calls, to show the definition's codec is the one used. */
function counting<T>(inner: Codec<T>): Codec<T> & { encoded: number; decoded: number } {
  const c = {
    encoded: 0,
    decoded: 0,
    encode: (v: T) => {
      c.encoded++;
      return inner.encode(v);
    },
    decode: (b: Uint8Array) => {
      c.decoded++;
      return inner.decode(b);
    },
  };
  return c;
}

const countedCodec = counting(json<{ n: number }>());
const Counted = defineSingle<{ n: number }, { n: number }>("typed.counted", { codec: countedCodec });

/** The handler's view of JsonCount's outCapacity (its writer's initial desiredSize). */
let handlerOutCapacity: number | null = null;

function register(grid: Manager): void {
  grid.handle(Stat, ({ key }) => ({ ...item, key }));
  grid.handle(JsonAdd, async ({ a, b }) => {
    await Promise.resolve();
    return { sum: a + b };
  });
  grid.handle(JsonEcho, (v) => v);
  grid.handle(RawReverse, (b) => b.slice().reverse());
  grid.handle(Mixed, ({ n }) => new Uint8Array(n).fill(7));
  grid.handle(Counted, ({ n }) => ({ n: n * 2 }));
  grid.handleStream(Scan, async (call) => {
    const w = call.responses.getWriter();
    for await (const { key } of call.requests!) await w.write({ ...item, key: call.payload.prefix + key });
    await w.close();
  });
  grid.handleStream(JsonCount, async (call) => {
    const w = call.responses.getWriter();
    handlerOutCapacity = w.desiredSize;
    let total = call.payload.start;
    for await (const { add } of call.requests!) {
      total += add;
      await w.write({ total });
    }
  });
  grid.handleStream(RawChunks, async (call) => {
    const w = call.responses.getWriter();
    for await (const chunk of call.requests!) await w.write(Uint8Array.of(...call.payload, ...chunk));
  });
  grid.handleStream(Watch, async (call) => {
    if (call.requests !== null) throw new Error("Watch got a requests stream");
    const w = call.responses.getWriter();
    for (let i = 0; i < 3; i++) await w.write({ key: `${call.payload.prefix}${i}` });
  });
}

describe("typed handlers", () => {
  let a: Manager;
  let b: Manager;
  let servers: GridServer[] = [];
  let conn: Connection;

  before(async () => {
    const pa = await freePort();
    const pb = await freePort();
    const A = `ws://${HOST}:${pa}`;
    const B = `ws://${HOST}:${pb}`;
    const common = { hosts: [A, B], secret: "typed test", pingInterval: 500, backoff: { base: 20, cap: 200 } };
    a = new Manager({ ...common, local: A });
    b = new Manager({ ...common, local: B });
    register(b);
    servers = [await serve(a, { port: pa, hostname: HOST }), await serve(b, { port: pb, hostname: HOST })];
    conn = a.connection(B);
    await conn.waitForConnect({ timeout: WAIT });
  });

  after(async () => {
    await a?.close();
    await b?.close();
    for (const s of servers) await s.close();
  });

  describe("defineSingle", () => {
    it("round-trips msgpack values by default, binary fields and large integers included", async () => {
      const res = await conn.request(Stat, { key: "x/y" });
      assert.deepEqual(res, { ...item, key: "x/y" });
      assert.ok(res.etag instanceof Uint8Array);
    });

    it("round-trips json request and response codecs", async () => {
      assert.deepEqual(await conn.request(JsonAdd, { a: 2, b: 40 }), { sum: 42 });
      const v = { text: "héllo \u0000 \"quoted\"", list: [1, -2.5, 1e21] };
      assert.deepEqual(await conn.request(JsonEcho, v), v);
    });

    it("passes raw bytes through as they are", async () => {
      const res = await conn.request(RawReverse, Uint8Array.of(1, 2, 3, 0, 255));
      assert.deepEqual([...res], [255, 0, 3, 2, 1]);
    });

    it("mixes a msgpack request with a raw response", async () => {
      const res = await conn.request(Mixed, { n: 5 });
      assert.deepEqual([...res], [7, 7, 7, 7, 7]);
    });

    it("uses the definition's codec on both sides", async () => {
      const before = { encoded: countedCodec.encoded, decoded: countedCodec.decoded };
      assert.deepEqual(await conn.request(Counted, { n: 21 }), { n: 42 });
      // Caller encodes the request and decodes the response; the handler does the reverse.
      assert.equal(countedCodec.encoded - before.encoded, 2);
      assert.equal(countedCodec.decoded - before.decoded, 2);
    });

    it("is callable by name with the encoded bytes", async () => {
      const bytes = await conn.request("typed.add.json", new TextEncoder().encode(JSON.stringify({ a: 1, b: 2 })));
      assert.deepEqual(JSON.parse(new TextDecoder().decode(bytes)), { sum: 3 });
    });

    it("rejects with RemoteError when the request cannot be decoded by the handler", async () => {
      await assert.rejects(conn.request("typed.add.json", Uint8Array.of(0xff)), RemoteError);
    });
  });

  describe("defineStream", () => {
    it("round-trips msgpack payload, requests and responses by default", async () => {
      const st = await conn.newStream(Scan, { prefix: "p/" });
      const keys = ["a", "b", "c"];
      const [, got] = await Promise.all([writeAll(st.requests!, keys.map((key) => ({ key }))), readAll(st.responses)]);
      assert.deepEqual(got, keys.map((k) => ({ ...item, key: `p/${k}` })));
    });

    it("round-trips json codecs and uses the definition's capacities", async () => {
      const st = await conn.newStream(JsonCount, { start: 10 });
      const probe = st.requests!.getWriter();
      assert.equal(probe.desiredSize, 2);
      probe.releaseLock();
      const adds = [1, 2, 3, 4, 5, 6, 7];
      const [, got] = await Promise.all([writeAll(st.requests!, adds.map((add) => ({ add }))), readAll(st.responses)]);
      assert.deepEqual(got.map((r) => r.total), [11, 13, 16, 20, 25, 31, 38]);
      assert.equal(handlerOutCapacity, 3);
    });

    it("passes raw chunks through as they are", async () => {
      const st = await conn.newStream(RawChunks, Uint8Array.of(9));
      const [, got] = await Promise.all([
        writeAll(st.requests!, [Uint8Array.of(1), Uint8Array.of(), Uint8Array.of(2, 3)]),
        readAll(st.responses),
      ]);
      assert.deepEqual(got.map((c) => [...c]), [[9, 1], [9], [9, 2, 3]]);
    });

    it("gives a stream whose request type is never a null requests stream on both sides", async () => {
      const st = await conn.newStream(Watch, { prefix: "k" });
      assert.equal(st.requests, null);
      assert.deepEqual(await readAll(st.responses), [{ key: "k0" }, { key: "k1" }, { key: "k2" }]);
    });

    it("leaves nothing in flight", () => {
      const s = a.stats().connections[conn.remote];
      assert.deepEqual([s.inFlight, s.serving], [{ requests: 0, streams: 0 }, { requests: 0, streams: 0 }]);
    });
  });
});
