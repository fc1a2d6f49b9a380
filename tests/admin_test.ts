/**
 * Read-only (admin) access, end to end in one process: two Managers serving on
 * loopback, admin `Client`s and raw sockets that speak the admin handshake by hand.
 */
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { GridError, Manager, TimeoutError, UnauthorizedError } from "../mod.ts";
import type { GridStats } from "../mod.ts";
import { Client } from "../src/client.ts";
import { detectRuntime, type GridServer, serve } from "../src/adapters/serve.ts";
import { decodeFrame, encodeMessage, encodeRoute, type Message, type OutMessage } from "../src/protocol/frame.ts";
import { decodeWelcome, encodeHandshake, newChallenge, type Welcome } from "../src/auth/handshake.ts";
import {
  OP_CANCEL,
  OP_ERROR,
  OP_HELLO,
  OP_REQUEST,
  OP_RESPONSE,
  OP_STREAM_OPEN,
  OP_STREAM_REQ,
  OP_STREAM_REQ_END,
  OP_STREAM_RESP_CREDIT,
  OP_STREAM_RESP_END,
  OP_WELCOME,
  PROTOCOL_VERSION,
} from "../src/protocol/ops.ts";
import { freePort } from "./_net.ts";
import { withTimeout } from "./_wait.ts";

const runtime = detectRuntime();
const HOST = "127.0.0.1";
const SECRET = "admin-test cluster secret";
const TOKEN = "tok-GOOD-3f9a1c77e2";
const BAD_TOKEN = "tok-BAD-8d0e55b1aa";
const WAIT_MS = 10_000;

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

async function until(cond: () => boolean, what: string, ms = WAIT_MS): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`Timed out after ${ms} ms waiting for: ${what}`);
    await sleep(10);
  }
}

/** A raw WebSocket speaking frames by hand; collects decoded messages. */
interface RawSocket {
  ws: WebSocket;
  messages: Message[];
  closed: Promise<{ code: number }>;
  isClosed: boolean;
  send(m: OutMessage): void;
  next(pred: (m: Message) => boolean, what: string): Promise<Message>;
}

function openRaw(url: string): Promise<RawSocket> {
  const ws = new WebSocket(url);
  ws.binaryType = "arraybuffer";
  const messages: Message[] = [];
  ws.addEventListener("message", (ev) => {
    for (const m of decodeFrame(new Uint8Array(ev.data as ArrayBuffer), 1 << 22)) messages.push(m);
  });
  const closed = new Promise<{ code: number }>((resolve) =>
    ws.addEventListener("close", (ev) => {
      raw.isClosed = true;
      resolve({ code: ev.code });
    })
  );
  const raw: RawSocket = {
    ws,
    messages,
    closed,
    isClosed: false,
    send: (m) => ws.send(encodeMessage(m)),
    next: async (pred, what) => {
      await until(() => messages.some(pred), what);
      return messages.find(pred)!;
    },
  };
  return withTimeout(
    new Promise<RawSocket>((resolve, reject) => {
      ws.addEventListener("open", () => resolve(raw), { once: true });
      ws.addEventListener("error", () => reject(new Error(`Cannot open ${url}`)), { once: true });
    }),
    `open ${url}`,
  );
}

function helloMessage(token: string, fields: Record<string, unknown> = {}): OutMessage {
  const hello = { kind: "admin" as const, v: PROTOCOL_VERSION, token, nonce: newChallenge(), max: 1 << 20, ping: 10_000, ...fields };
  return { op: OP_HELLO, flags: 0, mux: 0, seq: 0, deadline: 0, route: null, payload: encodeHandshake(hello) };
}

async function welcomeOf(raw: RawSocket): Promise<Welcome> {
  const m = await raw.next((m) => m.op === OP_WELCOME, "welcome");
  return decodeWelcome(m.payload);
}

function msg(op: number, mux: number, extra: Partial<OutMessage> = {}): OutMessage {
  return { op, flags: 0, mux, seq: 0, deadline: 0, route: null, payload: new Uint8Array(0), ...extra };
}

/** Every error message and reason collected in this file, to check no token leaks. */
const seenTexts: string[] = [];

function remember(e: unknown): unknown {
  let cur: unknown = e;
  for (let i = 0; i < 5 && cur instanceof Error; i++) {
    seenTexts.push(cur.message);
    cur = cur.cause;
  }
  return e;
}

describe(`admin (read-only) access on ${runtime}`, () => {
  let urlA = "";
  let urlB = "";
  let gridA: Manager;
  let gridB: Manager;
  const servers: GridServer[] = [];
  const clients: Client[] = [];
  const ran = { write: 0, tail: 0 };
  /** Releases the peer handler "hold" (one call at a time in this file). */
  let release: (() => void) | null = null;
  let holdAborted = 0;

  function client(url = urlA, token = TOKEN): Client {
    const c = new Client(url, { token, pingInterval: 300, backoff: { base: 20, cap: 200 }, requestTimeout: 5_000 });
    clients.push(c);
    return c;
  }

  before(async () => {
    const [pa, pb] = [await freePort(), await freePort()];
    const hosts = [`ws://${HOST}:${pa}`, `ws://${HOST}:${pb}`];
    [urlA, urlB] = hosts.map((h) => h + "/grid/v1");
    const common = {
      hosts,
      secret: SECRET,
      pingInterval: 300,
      backoff: { base: 20, cap: 200 },
      admin: { tokens: [TOKEN], maxConnections: 4 },
    };
    gridA = new Manager({ ...common, local: hosts[0] });
    gridB = new Manager({ ...common, local: hosts[1] });
    for (const g of [gridA, gridB]) {
      g.handle("kv.read", (req) => req, { readOnly: true });
      g.handle("kv.write", (req) => {
        ran.write++;
        return req;
      });
      g.handleStream("kv.tail", async (call) => {
        ran.tail++;
        await call.responses.getWriter().close();
      }, { inCapacity: 4, outCapacity: 4 });
      g.handle("hold", (_req, ctx) =>
        new Promise<Uint8Array>((resolve, reject) => {
          release = () => resolve(new Uint8Array([42]));
          ctx.signal.addEventListener("abort", () => {
            holdAborted++;
            reject(ctx.signal.reason);
          });
        }));
    }
    servers.push(await serve(gridA, { port: pa, hostname: HOST }));
    servers.push(await serve(gridB, { port: pb, hostname: HOST }));
    await gridA.connection(hosts[1]).waitForConnect({ timeout: WAIT_MS });
    await gridB.connection(hosts[0]).waitForConnect({ timeout: WAIT_MS });
  });

  after(async () => {
    for (const c of clients) await c.close();
    await gridA.close();
    await gridB.close();
    for (const s of servers) await s.close();
  });

  it("a Client with a valid token calls grid.stats and streams grid.watch", async () => {
    const c = client();
    const stats = await c.request("grid.stats", undefined, { waitForConnect: true }) as GridStats;
    assert.equal(stats.local, gridA.local);
    assert.equal(stats.connections[gridB.local].state, "up");
    assert.ok(stats.admin.connections >= 1, `admin connections ${stats.admin.connections}`);
    const live = await c.newStream("grid.watch", { intervalMs: 100 });
    const reader = (live.responses as ReadableStream<GridStats>).getReader();
    const seen: GridStats[] = [];
    for (let i = 0; i < 3; i++) {
      const r = await withTimeout(reader.read(), "grid.watch update");
      assert.equal(r.done, false);
      seen.push(r.value!);
    }
    assert.ok(seen.every((s) => s.local === gridA.local));
    assert.ok(seen[2].uptimeMs > seen[0].uptimeMs, "uptime advances between updates");
    await reader.cancel();
    const echoed = await c.request("kv.read", new Uint8Array([1, 2, 3]));
    assert.deepEqual([...echoed], [1, 2, 3]);
  });

  it("a Client cannot reach a non-readOnly handler by request or stream open; the handler never runs", async () => {
    const c = client();
    await c.waitForConnect({ timeout: WAIT_MS });
    const e1 = await c.request("kv.write", new Uint8Array([1])).then(() => null, remember);
    assert.ok(e1 instanceof UnauthorizedError, `request: ${e1}`);
    assert.equal(e1.code, "unauthorized");
    const e2 = await c.newStream("kv.tail", new Uint8Array([1])).then(() => null, remember);
    assert.ok(e2 instanceof UnauthorizedError, `stream open: ${e2}`);
    const e3 = await c.request("hold", new Uint8Array()).then(() => null, remember);
    assert.ok(e3 instanceof UnauthorizedError, `request hold: ${e3}`);
    assert.equal(ran.write, 0);
    assert.equal(ran.tail, 0);
    assert.equal(release, null, "the hold handler never ran");
    // The connection stays usable after refusals.
    assert.deepEqual([...await c.request("kv.read", new Uint8Array([9]))], [9]);
  });

  it("a bad token is refused with UnauthorizedError, without a hang", async () => {
    const c = client(urlA, BAD_TOKEN);
    const err = await withTimeout(c.waitForConnect({ timeout: 8_000 }).then(() => null, remember), "refusal");
    assert.ok(err instanceof UnauthorizedError, `waitForConnect: ${err}`);
    const err2 = await withTimeout(
      c.request("grid.stats", undefined, { waitForConnect: true, timeout: 8_000 }).then(() => null, remember),
      "refusal of request",
    );
    assert.ok(err2 instanceof GridError && (err2.code === "unauthorized" || err2.code === "disconnected"), `request: ${err2}`);
    await c.close();
  });

  it("a raw admin socket cannot touch calls of peer or other admin connections by their mux ids", async () => {
    const hostA = gridA.local;
    const peer = gridB.connection(hostA);
    // A peer call from B to A, held open by A's handler; and an admin watch stream on A.
    release = null;
    const held = peer.request("hold", new Uint8Array(), { timeout: 8_000 });
    await until(() => release !== null, "hold handler to start");
    const watcher = client();
    const live = await watcher.newStream("grid.watch", { intervalMs: 100 }, { waitForConnect: true });
    const reader = (live.responses as ReadableStream<GridStats>).getReader();
    await withTimeout(reader.read(), "first watch update");

    const raw = await openRaw(urlA);
    raw.send(helloMessage(TOKEN));
    const w = await welcomeOf(raw);
    assert.equal(w.ok, true, w.reason);
    // Every message kind an attacker could aim at the ids other connections use (ids start at 1).
    for (let id = 0; id <= 64; id++) {
      raw.send(msg(OP_CANCEL, id));
      raw.send(msg(OP_STREAM_REQ, id, { payload: new Uint8Array([1]) }));
      raw.send(msg(OP_STREAM_REQ_END, id));
      raw.send(msg(OP_STREAM_RESP_CREDIT, id, { seq: 1000 }));
      raw.send(msg(OP_RESPONSE, id, { payload: new Uint8Array([7]) }));
      raw.send(msg(OP_STREAM_RESP_END, id));
    }
    // And a request with an id in use by the held peer call: a separate table, so it is refused only for being non-readOnly.
    raw.send(msg(OP_REQUEST, 1, { route: encodeRoute("hold", ""), deadline: 5_000 }));
    raw.send(msg(OP_STREAM_OPEN, 2, { route: encodeRoute("kv.tail", ""), deadline: 5_000 }));
    const refusedReq = await raw.next((m) => m.op === OP_ERROR && m.mux === 1, "refusal of raw request");
    const refusedStream = await raw.next((m) => m.op === OP_ERROR && m.mux === 2, "refusal of raw stream open");
    for (const m of [refusedReq, refusedStream]) {
      assert.match(new TextDecoder().decode(m.payload), /unauthorized/);
    }
    await sleep(300);
    // The peer call and the other admin stream are untouched.
    assert.equal(holdAborted, 0, "the peer call's handler was not aborted");
    assert.equal(ran.tail, 0);
    release!();
    assert.deepEqual([...await withTimeout(held, "held peer call")], [42]);
    const r = await withTimeout(reader.read(), "watch update after the attack");
    assert.equal(r.done, false);
    assert.equal(r.value!.local, hostA);
    await reader.cancel();
    assert.equal(peer.state, "up");
    raw.ws.close();
  });

  it("an admin hello of another protocol version, or with a malformed challenge, is refused with code \"protocol\"", async () => {
    for (const c of clients.splice(0)) await c.close();
    await until(() => gridA.stats().admin.connections === 0, "admin connections to drain");
    for (const fields of [{ v: PROTOCOL_VERSION + 1 }, { v: 1, t: Date.now() }, { nonce: "00" }, { max: 0 }]) {
      const raw = await openRaw(urlA);
      raw.send(helloMessage(TOKEN, fields));
      const w = await welcomeOf(raw);
      assert.equal(w.ok, false, JSON.stringify(fields));
      assert.equal(w.code, "protocol");
      seenTexts.push(w.reason);
      assert.equal((await withTimeout(raw.closed, "close after refusal")).code, 1008);
    }
    assert.ok((gridA.stats().rejectedHandshakes.version ?? 0) >= 2);
    assert.ok((gridA.stats().rejectedHandshakes.malformed ?? 0) >= 2);
  });

  it("admin.maxConnections is enforced", async () => {
    await until(() => gridA.stats().admin.connections === 0, "admin connections to drain");
    const four = [client(), client(), client(), client()];
    await Promise.all(four.map((c) => c.waitForConnect({ timeout: WAIT_MS })));
    assert.equal(gridA.stats().admin.connections, 4);
    // Over the limit is "try again later" (1013): the client backs off and retries, it is not refused.
    const before = gridA.stats().rejectedHandshakes["admin-connections"] ?? 0;
    const fifth = client();
    const err = await withTimeout(fifth.waitForConnect({ timeout: 1_500 }).then(() => null, remember), "fifth refusal");
    assert.ok(err instanceof TimeoutError, `fifth: ${err}`);
    assert.match(err.message, /1013/);
    assert.ok((gridA.stats().rejectedHandshakes["admin-connections"] ?? 0) > before);
    await fifth.close();
    await four[0].close();
    await until(() => gridA.stats().admin.connections === 3, "a slot to free up");
    const again = client();
    await again.waitForConnect({ timeout: WAIT_MS });
    assert.equal(gridA.stats().admin.connections, 4);
    for (const c of clients.splice(0)) await c.close();
  });

  it("a flood of admin handshakes (200 sockets, most with bad tokens) does not stop peer traffic", async () => {
    const peer = gridA.connection(gridB.local);
    const reconnectsBefore = peer.stats().reconnects;
    let stop = false;
    let calls = 0;
    const traffic = (async () => {
      while (!stop) {
        const r = await peer.request("kv.read", new Uint8Array([calls & 255]), { timeout: 5_000 });
        assert.equal(r[0], calls & 255);
        calls++;
      }
    })();
    // Admitted sockets stay open until the flood is over, so maxConnections is tested at once.
    const opened: RawSocket[] = [];
    const outcomes = await Promise.all(Array.from({ length: 200 }, async (_, i) => {
      let raw: RawSocket;
      try {
        raw = await openRaw(urlA);
      } catch {
        return "not-opened";
      }
      opened.push(raw);
      raw.send(helloMessage(i % 10 === 0 ? TOKEN : `${BAD_TOKEN}-${i}`));
      const isWelcome = (m: Message) => m.op === OP_WELCOME;
      try {
        await until(() => raw.messages.some(isWelcome) || raw.isClosed, "flood socket answer");
      } catch {
        return "timeout";
      }
      const w = raw.messages.find(isWelcome);
      if (w === undefined) return "closed";
      const welcome = decodeWelcome(w.payload);
      if (!welcome.ok) seenTexts.push(welcome.reason);
      return welcome.ok ? "ok" : welcome.code;
    }));
    for (const raw of opened) if (!raw.isClosed) raw.ws.close();
    await withTimeout(Promise.all(opened.map((r) => r.closed)), "flood sockets to close");
    const callsDuringFlood = calls;
    stop = true;
    await withTimeout(traffic, "peer traffic loop");
    const tally: Record<string, number> = {};
    for (const o of outcomes) tally[o] = (tally[o] ?? 0) + 1;
    assert.ok((tally["ok"] ?? 0) <= 4, `at most maxConnections admitted: ${JSON.stringify(tally)}`);
    assert.equal(tally["timeout"] ?? 0, 0, `every flood socket got an answer: ${JSON.stringify(tally)}`);
    assert.ok(callsDuringFlood > 0, "peer requests completed during the flood");
    assert.equal(peer.state, "up");
    assert.equal(peer.stats().reconnects, reconnectsBefore, "the peer connection never dropped");
    // And the grid still accepts a good admin client afterwards.
    await until(() => gridA.stats().admin.connections === 0, "flood admin sockets to close");
    const c = client();
    assert.equal(((await c.request("grid.stats", undefined, { waitForConnect: true })) as GridStats).local, gridA.local);
  });

  it("tokens never appear in error messages or stats", async () => {
    const stats = JSON.stringify([gridA.stats(), gridB.stats()]);
    for (const t of [TOKEN, BAD_TOKEN, "tok-"]) assert.ok(!stats.includes(t), `stats mention ${t}`);
    assert.ok(seenTexts.length >= 5, `collected ${seenTexts.length} messages`);
    for (const text of seenTexts) {
      assert.ok(!text.includes("tok-"), `message leaks a token: ${text}`);
    }
    for (const c of clients) {
      const s = JSON.stringify(c.stats());
      assert.ok(!s.includes("tok-"), `client stats leak a token: ${s}`);
    }
  });
});
