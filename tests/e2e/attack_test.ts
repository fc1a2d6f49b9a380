/**
 * The hostile-client suite: real sockets against a real node (served by this
 * runtime's adapter) while a legitimate peer keeps calling it. Each scenario
 * is one attack from docs/SECURITY.md's threat model; for each one the suite
 * measures the bytes the attacker sent, the node's memory growth (heap and
 * array buffers, after GC) at the height of the attack, the time until the
 * node closed the offending socket, and the legitimate calls that failed, and
 * checks them against stated bounds. It also checks that no handler ran for
 * the attacker and that no legitimate waiter was failed by the attacker.
 *
 * Results go to .tmp/security/<scenario>.<runtime>.json; the Node run renders
 * the table of docs/SECURITY.md from them (scripts/security_report.ts).
 */
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import process from "node:process";
import { pack, unpack } from "msgpackr";
import { type GridSocket, Manager, type ManagerOptions, shouldDial } from "../../mod.ts";
import { type GridServer, serve } from "../../src/adapters/serve.ts";
import { decodeReady, decodeWelcome, encodeHandshake, newChallenge, type PeerHello, type Welcome } from "../../src/auth/handshake.ts";
import { decodeFrame, encodeFrame, encodeMessage, encodeRoute, type Message, type OutMessage } from "../../src/protocol/frame.ts";
import { OP_HELLO, OP_PING, OP_READY, OP_REQUEST, OP_WELCOME, PROTOCOL_VERSION } from "../../src/protocol/ops.ts";
import type { SocketAcceptor } from "../../src/socket.ts";
import { handshakeFrame, helloFrame, peerHello, proofFor } from "../_handshake.ts";
import { freePort, urlWhere } from "../_net.ts";
import { withTimeout } from "../_wait.ts";
import { GC_AVAILABLE, memoryUsed } from "./_memory.ts";
import { RawWs } from "./_raw_ws.ts";
import { RESULTS_DIR, type SecurityResult } from "../../scripts/security_report.ts";

const SECRET = "attack suite secret";
const TOKEN = "attack suite admin token";
const PATH = "/grid/v1";
const TEST = { timeout: 120_000 };
// Long enough that a loaded machine (a GC of the whole heap per sample, other test runs) never drops the legitimate peer.
const PING_MS = 1_000;
const WRITE_TIMEOUT_MS = 1_000;
const HELLO_TIMEOUT_MS = 500;
const MAX_QUEUED = 8 << 20;
const MAX_MESSAGE = 256 << 10;
/** Memory a scenario may add to the node (heap + array buffers after GC); looser without a forced GC. */
const GROWTH_BOUND = GC_AVAILABLE ? 24 << 20 : 96 << 20;
/** A non-reading peer may cost the node its queue budget on top. */
const QUEUE_GROWTH_BOUND = GROWTH_BOUND + 2 * MAX_QUEUED;
const RUNTIME = "Deno" in globalThis ? "deno" : "Bun" in globalThis ? "bun" : "node";
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

async function until(pred: () => boolean, what: string, ms = 10_000): Promise<number> {
  const t0 = performance.now();
  while (!pred()) {
    if (performance.now() - t0 > ms) throw new Error(`Timed out after ${ms} ms waiting for ${what}`);
    await sleep(5);
  }
  return performance.now() - t0;
}

interface Node {
  url: string;
  grid: Manager;
  server: GridServer;
}

async function startNode(url: string, hosts: string[], over: Partial<ManagerOptions> = {}): Promise<Node> {
  const grid = new Manager({
    secret: SECRET,
    pingInterval: PING_MS,
    backoff: { base: 20, cap: 200 },
    maxMessageBytes: MAX_MESSAGE,
    maxQueuedBytes: MAX_QUEUED,
    writeTimeout: WRITE_TIMEOUT_MS,
    helloTimeout: HELLO_TIMEOUT_MS,
    handshakeTimeout: 2_000,
    admin: { tokens: [TOKEN] },
    ...over,
    local: url,
    hosts,
  });
  return { url, grid, server: await serve(grid, { port: Number(new URL(url).port), hostname: "127.0.0.1" }) };
}

async function stopNode(n: Node | undefined): Promise<void> {
  if (n === undefined) return;
  await n.grid.close();
  await n.server.close();
}

/** Serves `accept` at `url` as if it were a grid node: an impostor. */
async function serveImpostor(url: string, accept: (s: GridSocket) => void): Promise<GridServer> {
  const acceptor: SocketAcceptor = { path: PATH, maxFrameBytes: 1 << 20, acceptSocket: accept };
  return await serve(acceptor, { port: Number(new URL(url).port), hostname: "127.0.0.1" });
}

function request(mux: number, handler: string, payload = new Uint8Array(0)): OutMessage {
  return { op: OP_REQUEST, flags: 0, mux, seq: 0, deadline: 0, route: encodeRoute(handler, ""), payload };
}

function frameOf(msgs: OutMessage[]): Uint8Array<ArrayBuffer> {
  let size = 0;
  for (const m of msgs) size += 18 + (m.route?.length ?? 0) + m.payload.length;
  return encodeFrame(msgs, 0, msgs.length, size);
}

function firstMessage(data: unknown): Message {
  const b = data instanceof ArrayBuffer ? new Uint8Array(data) : data as Uint8Array;
  return decodeFrame(new Uint8Array(b.buffer, b.byteOffset, b.byteLength), MAX_MESSAGE)[0];
}

/**
 * Stops reading on `raw` and sends it 16 requests for 64 KiB responses per frame while `up()`,
 * sampling memory as it goes; resolves once the node dropped it, with the bytes sent and the ms
 * from the first request to the drop.
 */
async function floodUntilDropped(
  raw: RawWs,
  up: () => boolean,
  what: string,
  peak: () => Promise<void>,
): Promise<{ bytesSent: number; closeMs: number }> {
  raw.pause();
  const t0 = performance.now();
  let mux = 1;
  for (let i = 0; i < 2_000 && up(); i++) {
    raw.send(frameOf(Array.from({ length: 16 }, () => request(mux++, "blob"))));
    if (i % 50 === 0) await sleep(1);
    if (i % 4 === 3) await peak();
  }
  await until(() => !up(), `${what} dropped`);
  const closeMs = performance.now() - t0;
  await peak();
  const bytesSent = raw.bytesSent;
  raw.destroy();
  return { bytesSent, closeMs };
}

/** The whole peer handshake on a raw connection as `hello.from` (which holds the secret). */
async function rawPeer(endpoint: string, hello: PeerHello, secret = SECRET): Promise<RawWs> {
  const raw = await RawWs.open(endpoint);
  raw.send(helloFrame(hello));
  const w = await raw.next();
  assert.ok(w !== null, "a welcome");
  const welcome = decodeWelcome(decodeFrame(w, MAX_MESSAGE)[0].payload);
  assert.equal(welcome.ok, true, welcome.reason);
  raw.send(await proofFor(hello, welcome, secret));
  const r = await raw.next();
  assert.ok(r !== null, "a ready");
  const ready = decodeReady(decodeFrame(r, MAX_MESSAGE)[0].payload);
  assert.equal(ready.ok, true, ready.reason);
  return raw;
}

describe(`hostile clients against a served node (${RUNTIME})`, () => {
  let target: Node;
  let peer: Node;
  /** Dials the target; never runs: the attacker plays it. */
  let ghost: string;
  /** The target dials it: where impostors answer. */
  let dialed: string;
  /** Dials the target; stopped and restarted in the restart scenario. */
  let restarter: string;
  /** In the target's hosts; joins during the idle-socket attack. */
  let late: string;
  let endpoint: string;
  const ran = { secret: 0 };
  const legit = { ok: 0, failed: 0, firstError: "", running: false, loop: Promise.resolve() };
  const results: SecurityResult[] = [];
  /** The peer's reconnect count that the scenarios must leave as it is (the restart test moves it). */
  let reconnectsBase = 0;

  function startLegitLoad(): void {
    legit.ok = 0;
    legit.failed = 0;
    legit.firstError = "";
    legit.running = true;
    const conn = peer.grid.connection(target.url);
    legit.loop = (async () => {
      for (let i = 0; legit.running && i < 1_000_000; i++) {
        try {
          const res = await conn.request("echo", Uint8Array.of(i & 255), { timeout: 5_000 });
          if (res[0] === (i & 255)) legit.ok++;
          else legit.failed++;
        } catch (e) {
          legit.failed++;
          legit.firstError ||= `${(e as Error).name}: ${(e as Error).message}`;
        }
        await sleep(2);
      }
    })();
  }

  async function stopLegitLoad(): Promise<void> {
    legit.running = false;
    await legit.loop;
  }

  /**
   * Runs one scenario under legitimate load. `attack` returns the bytes it sent and the ms until
   * the node closed the offending socket(s), and calls `peak()` at the height of the attack.
   */
  async function scenario(
    key: string,
    title: string,
    bounds: { growth: number; closeMs: number | null },
    attack: (peak: () => Promise<void>) => Promise<{ bytesSent: number; closeMs: number | null }>,
  ): Promise<void> {
    const before = await memoryUsed();
    const rssBefore = process.memoryUsage().rss;
    let peakBytes = before;
    let peakRss = rssBefore;
    const ranBefore = ran.secret;
    startLegitLoad();
    const t0 = performance.now();
    let out: { bytesSent: number; closeMs: number | null };
    try {
      out = await attack(async () => {
        peakBytes = Math.max(peakBytes, await memoryUsed());
        peakRss = Math.max(peakRss, process.memoryUsage().rss);
      });
      // A few more calls after the attack, so a node that gave way shows it.
      await sleep(100);
    } finally {
      await stopLegitLoad();
    }
    const growth = Math.max(0, peakBytes - before);
    const row: SecurityResult = {
      scenario: key,
      title,
      runtime: RUNTIME,
      at: new Date().toISOString(),
      durationMs: Math.round(performance.now() - t0),
      bytesSent: out.bytesSent,
      growthBytes: growth,
      growthBound: bounds.growth,
      rssGrowthBytes: Math.max(0, peakRss - rssBefore),
      closeMs: out.closeMs === null ? null : Math.round(out.closeMs),
      closeBoundMs: bounds.closeMs,
      legitOk: legit.ok,
      legitFailed: legit.failed,
      attackerHandlerRuns: ran.secret - ranBefore,
      gc: GC_AVAILABLE,
    };
    results.push(row);
    console.log(`attack ${key}: ${JSON.stringify(row)}`);
    mkdirSync(RESULTS_DIR, { recursive: true });
    writeFileSync(join(RESULTS_DIR, `${key}.${RUNTIME}.json`), JSON.stringify(row, null, 2));
    assert.ok(growth <= bounds.growth, `memory grew ${growth} bytes (bound ${bounds.growth})`);
    if (bounds.closeMs !== null) {
      assert.ok(out.closeMs !== null && out.closeMs <= bounds.closeMs, `closed after ${out.closeMs} ms (bound ${bounds.closeMs})`);
    }
    assert.equal(legit.failed, 0, `no legitimate call failed (first: ${legit.firstError})`);
    assert.ok(legit.ok > 0, "legitimate calls went on during the attack");
    assert.equal(row.attackerHandlerRuns, 0, "no handler ran for the attacker");
    assert.equal(peer.grid.stats().connections[target.url].reconnects, reconnectsBase, "the peer's connection was never dropped");
  }

  before(async () => {
    const taken = new Set<string>();
    const targetUrl = await urlWhere(() => true, taken);
    const peerUrl = await urlWhere((u) => shouldDial(u, targetUrl), taken);
    ghost = await urlWhere((u) => shouldDial(u, targetUrl), taken);
    dialed = await urlWhere((u) => shouldDial(targetUrl, u), taken);
    restarter = await urlWhere((u) => shouldDial(u, targetUrl), taken);
    late = await urlWhere((u) => shouldDial(u, targetUrl), taken);
    const hosts = [targetUrl, peerUrl, ghost, dialed, restarter, late];
    target = await startNode(targetUrl, hosts);
    peer = await startNode(peerUrl, [targetUrl, peerUrl]);
    endpoint = targetUrl + PATH;
    target.grid.handle("echo", (req) => req);
    target.grid.handle("secret.write", (req) => {
      ran.secret++;
      return req;
    }, { readOnly: true });
    // A new 64 KiB array per call, as a real handler's result would be.
    target.grid.handle("blob", () => new Uint8Array(64 << 10), { readOnly: true });
    await peer.grid.connection(targetUrl).waitForConnect({ timeout: 10_000 });
  });

  after(async () => {
    await stopNode(peer);
    await stopNode(target);
    if (RUNTIME === "node" && process.env.WSGRID_SECURITY_REPORT !== "0") {
      const { writeSecurityReport } = await import("../../scripts/security_report.ts");
      writeSecurityReport();
    }
  });

  it("a ping flood before the hello: the first ping closes the socket, no pong is sent", TEST, async () => {
    await scenario("ping-before-hello", "Ping flood before the hello", { growth: GROWTH_BOUND, closeMs: 2_000 }, async (peak) => {
      let bytes = 0;
      let worst = 0;
      const pings = Array.from({ length: 200 }, () => ({ op: OP_PING, flags: 0, mux: 0, seq: 0, deadline: 0, route: null, payload: new Uint8Array(16) }));
      for (let round = 0; round < 20; round++) {
        const raws = await Promise.all(Array.from({ length: 8 }, () => RawWs.open(endpoint)));
        const t0 = performance.now();
        for (const raw of raws) {
          for (let i = 0; i < 5; i++) raw.send(frameOf(pings.slice(0, 16)));
          raw.send(new Uint8Array(1 << 20));
        }
        const codes = await Promise.all(raws.map((r) => withTimeout(r.closed, "pinger closed")));
        worst = Math.max(worst, performance.now() - t0);
        for (const c of codes) assert.ok(c === 1002 || c === 1009 || c === 1006, `close code ${c}`);
        for (const raw of raws) {
          assert.equal(await raw.next(1), null, "nothing was answered");
          bytes += raw.bytesSent;
        }
        if (round === 10) await peak();
      }
      return { bytesSent: bytes, closeMs: worst };
    });
  });

  it("a ping flood after the hello from a peer that never reads: one pong queued at most, dropped for missing pongs", TEST, async () => {
    await scenario("ping-after-hello", "Ping flood after the hello, never reading", { growth: GROWTH_BOUND, closeMs: 4 * PING_MS + 2_000 }, async (peak) => {
      const raw = await rawPeer(endpoint, peerHello(ghost, target.url, { max: MAX_MESSAGE }));
      await until(() => target.grid.stats().connections[ghost].state === "up", "the ghost is up");
      raw.pause();
      const t0 = performance.now();
      const pings = Array.from({ length: 256 }, () => ({ op: OP_PING, flags: 0, mux: 0, seq: 0, deadline: 0, route: null, payload: new Uint8Array(16) }));
      const frame = frameOf(pings);
      for (let i = 0; i < 400 && target.grid.stats().connections[ghost].state === "up"; i++) {
        raw.send(frame);
        if (i === 100) await peak();
        await sleep(2);
      }
      await until(() => target.grid.stats().connections[ghost].state !== "up", "the ghost dropped");
      // The loop stops within a few ms of the drop.
      const closeMs = performance.now() - t0;
      const bytes = raw.bytesSent;
      raw.destroy();
      return { bytesSent: bytes, closeMs };
    });
  });

  it("an oversize first message is refused before it is decoded", TEST, async () => {
    await scenario("oversize-first", "Oversize first message", { growth: GROWTH_BOUND, closeMs: 2_000 }, async (peak) => {
      let bytes = 0;
      let worst = 0;
      for (const size of [4097, 64 << 10, 1 << 20, 1 << 20]) {
        const raws = await Promise.all(Array.from({ length: 8 }, () => RawWs.open(endpoint)));
        const t0 = performance.now();
        for (const raw of raws) raw.send(new Uint8Array(size));
        const codes = await Promise.all(raws.map((r) => withTimeout(r.closed, "oversize closed")));
        worst = Math.max(worst, performance.now() - t0);
        for (const c of codes) assert.ok(c === 1009 || c === 1006, `close code ${c}`);
        for (const raw of raws) bytes += raw.bytesSent;
        await peak();
      }
      return { bytesSent: bytes, closeMs: worst };
    });
  });

  it("idle sockets from several addresses cannot keep a new peer out", TEST, async () => {
    await scenario("idle-slots", "Idle sockets holding handshake slots", { growth: GROWTH_BOUND, closeMs: HELLO_TIMEOUT_MS + 2_000 }, async (peak) => {
      const raws: RawWs[] = [];
      let worst = 0;
      let newcomer: Node | undefined;
      try {
        // 5 addresses × 8 sockets, renewed as they are closed, for 3 s.
        const t0 = performance.now();
        const opened = new Map<RawWs, number>();
        const refill = async () => {
          for (let a = 2; a <= 6; a++) {
            for (let i = 0; i < 8; i++) {
              const r = await RawWs.open(endpoint, { localAddress: `127.0.0.${a}` }).catch(() => null);
              if (r === null) continue;
              opened.set(r, performance.now());
              r.closed.then(() => (worst = Math.max(worst, performance.now() - opened.get(r)!)));
              raws.push(r);
            }
          }
        };
        await refill();
        await peak();
        // A node the target has never seen connects while the slots are held and renewed.
        const joinStart = performance.now();
        newcomer = await startNode(late, [target.url, late]);
        const joined = newcomer.grid.connection(target.url).waitForConnect({ timeout: 10_000 });
        while (performance.now() - t0 < 3_000) {
          await refill();
          await sleep(100);
        }
        await joined;
        assert.ok(performance.now() - joinStart < 10_000);
        await Promise.all(raws.map((r) => withTimeout(r.closed, "idle socket closed")));
        return { bytesSent: raws.reduce((n, r) => n + r.bytesSent, 0), closeMs: worst };
      } finally {
        for (const r of raws) r.destroy();
        await stopNode(newcomer);
      }
    });
  });

  it("a peer that sends requests and never reads is dropped by the byte budget or the write deadline", TEST, async () => {
    await scenario("non-reading-peer", "Non-reading peer sending requests", { growth: QUEUE_GROWTH_BOUND, closeMs: WRITE_TIMEOUT_MS + 4_000 }, async (peak) => {
      const raw = await rawPeer(endpoint, peerHello(ghost, target.url, { max: MAX_MESSAGE }));
      await until(() => target.grid.stats().connections[ghost].state === "up", "the ghost is up");
      return await floodUntilDropped(raw, () => target.grid.stats().connections[ghost].state === "up", "the non-reading peer", peak);
    });
  });

  it("an admin client that sends requests and never reads is dropped too", TEST, async () => {
    await scenario("non-reading-admin", "Non-reading admin client sending requests", { growth: QUEUE_GROWTH_BOUND, closeMs: WRITE_TIMEOUT_MS + 4_000 }, async (peak) => {
      const raw = await RawWs.open(endpoint);
      raw.send(helloFrame({ kind: "admin", v: PROTOCOL_VERSION, token: TOKEN, nonce: newChallenge(), max: MAX_MESSAGE, ping: 10_000 }));
      const w = await raw.next();
      assert.ok(w !== null && decodeWelcome(decodeFrame(w, MAX_MESSAGE)[0].payload).ok);
      await until(() => target.grid.stats().admin.connections === 1, "the admin client is in");
      return await floodUntilDropped(raw, () => target.grid.stats().admin.connections > 0, "the non-reading admin", peak);
    });
  });

  it("an impostor answering a dial (bad welcome, or a refusal, followed by calls) runs nothing and fails no waiter", TEST, async () => {
    await scenario("impostor-dial", "Impostor answering a dial", { growth: GROWTH_BOUND, closeMs: 2_000 }, async (peak) => {
      let bytes = 0;
      let worst = 0;
      let answered = 0;
      const conn = target.grid.connection(dialed);
      // A legitimate call waits for the real node behind `dialed`.
      const waiter = conn.request("echo", Uint8Array.of(9), { waitForConnect: true, timeout: 20_000 });
      let real: Node | undefined;
      const impostor = await serveImpostor(dialed, (s) => {
        s.binaryType = "arraybuffer";
        const t0 = performance.now();
        s.addEventListener("close", () => (worst = Math.max(worst, performance.now() - t0)));
        s.addEventListener("message", (ev) => {
          const m = firstMessage(ev.data);
          if (m.op !== OP_HELLO) return;
          const variant = answered++ % 3;
          // A welcome with a MAC that is not genuine, alone or followed by a ready and calls in the
          // same frame; or a refusal followed by calls.
          const forged: Welcome = variant === 2
            ? { ok: false, v: PROTOCOL_VERSION, from: "", id: "", nonce: "", max: 1, ping: 1, mac: "", code: "unauthorized", reason: "forged" }
            : { ok: true, v: PROTOCOL_VERSION, from: dialed, id: "x", nonce: newChallenge(), max: MAX_MESSAGE, ping: PING_MS, mac: "0".repeat(64), code: "", reason: "" };
          const msgs: OutMessage[] = [{ op: OP_WELCOME, flags: 0, mux: 0, seq: 0, deadline: 0, route: null, payload: encodeHandshake(forged) }];
          if (variant === 1) {
            msgs.push({ op: OP_READY, flags: 0, mux: 0, seq: 0, deadline: 0, route: null, payload: encodeHandshake({ ok: true, code: "", reason: "" }) });
          }
          if (variant !== 0) msgs.push(request(1, "secret.write"), request(2, "secret.write"));
          const f = frameOf(msgs);
          bytes += f.length;
          s.send(f);
        });
      });
      try {
        await until(() => answered >= 10, "ten dials answered by the impostor", 15_000);
        await peak();
        const rejected = target.grid.stats().rejectedHandshakes;
        assert.ok((rejected["dial-bad-mac"] ?? 0) > 0, "bad welcome MACs were counted");
        assert.ok((rejected["dial-refused-unauthorized"] ?? 0) > 0, "forged refusals were counted");
        await impostor.close();
        real = await startNode(dialed, [target.url, dialed]);
        real.grid.handle("echo", (req) => req);
        assert.deepEqual([...await waiter], [9], "the waiting call went through once the real node came");
      } finally {
        await impostor.close();
        await stopNode(real);
      }
      return { bytesSent: bytes, closeMs: worst };
    });
  });

  it("an impostor that accepts a dial and never answers the hello is closed at handshakeTimeout and fails no waiter", TEST, async () => {
    await scenario("impostor-silent", "Impostor accepting a dial, then silent", { growth: GROWTH_BOUND, closeMs: 4_000 }, async (peak) => {
      let worst = 0;
      let closed = 0;
      let hellos = 0;
      const conn = target.grid.connection(dialed);
      const waiter = conn.request("echo", Uint8Array.of(7), { waitForConnect: true, timeout: 30_000 });
      let real: Node | undefined;
      const impostor = await serveImpostor(dialed, (s) => {
        s.binaryType = "arraybuffer";
        const t0 = performance.now();
        // Reads the hello and says nothing: no welcome, no close.
        s.addEventListener("message", (ev) => firstMessage(ev.data).op === OP_HELLO && hellos++);
        s.addEventListener("close", () => {
          worst = Math.max(worst, performance.now() - t0);
          closed++;
        });
      });
      try {
        await until(() => closed >= 2, "two silent dials closed by the target", 20_000);
        await peak();
        assert.ok(hellos >= 2, `the target sent its hello on each dial (${hellos})`);
        assert.equal(conn.state === "up", false, "no session with a peer that never answered");
        await impostor.close();
        real = await startNode(dialed, [target.url, dialed]);
        real.grid.handle("echo", (req) => req);
        assert.deepEqual([...await waiter], [7], "the waiting call went through once the real node came");
      } finally {
        await impostor.close();
        await stopNode(real);
      }
      return { bytesSent: 0, closeMs: worst };
    });
  });

  it("forged hellos during a peer's restart never fail the calls waiting for it", TEST, async () => {
    await scenario("forged-during-restart", "Forged hellos during a peer's restart", { growth: GROWTH_BOUND, closeMs: 2_000 }, async (peak) => {
      let node: Node | undefined = await startNode(restarter, [target.url, restarter]);
      let bytes = 0;
      let worst = 0;
      try {
        node.grid.handle("echo", (req) => req);
        await target.grid.connection(restarter).waitForConnect({ timeout: 10_000 });
        await stopNode(node);
        node = undefined;
        await until(() => target.grid.connection(restarter).state !== "up", "the restarter is down");
        const waiter = target.grid.connection(restarter).request("echo", Uint8Array.of(5), { waitForConnect: true, timeout: 20_000 });
        const before = target.grid.stats().rejectedHandshakes["bad-mac"] ?? 0;
        for (let i = 0; i < 30; i++) {
          const hello = peerHello(restarter, target.url);
          const raw = await RawWs.open(endpoint);
          const t0 = performance.now();
          raw.send(helloFrame(hello));
          const w = await raw.next();
          assert.ok(w !== null);
          const welcome = decodeWelcome(decodeFrame(w, MAX_MESSAGE)[0].payload);
          raw.send(await proofFor(hello, welcome, "a guessed secret"));
          assert.ok([1008, 1006].includes(await withTimeout(raw.closed, "forged hello closed")));
          worst = Math.max(worst, performance.now() - t0);
          bytes += raw.bytesSent;
          if (i === 15) await peak();
        }
        assert.equal(target.grid.stats().rejectedHandshakes["bad-mac"], before + 30);
        node = await startNode(restarter, [target.url, restarter]);
        node.grid.handle("echo", (req) => req);
        assert.deepEqual([...await waiter], [5], "the waiting call went through after the restart");
      } finally {
        await stopNode(node);
      }
      return { bytesSent: bytes, closeMs: worst };
    });
  });

  /** A genuine handshake to the target, recorded: its hello, the target's welcome, the proof. */
  let captured: { hello: PeerHello; welcome: Welcome; proof: Uint8Array<ArrayBuffer> };

  /** Replays the captured hello and proof on a new socket; returns the bytes sent and ms to close. */
  async function replayCaptured(): Promise<{ bytes: number; ms: number }> {
    const raw = await RawWs.open(target.url + PATH);
    const t0 = performance.now();
    raw.send(helloFrame(captured.hello));
    raw.send(captured.proof);
    const got: Message[] = [];
    for (let m = await raw.next(); m !== null; m = await raw.next()) got.push(...decodeFrame(m, MAX_MESSAGE));
    assert.ok([1008, 1002, 1006].includes(await raw.closed));
    const ready = got.find((m) => m.op === OP_READY);
    assert.ok(ready === undefined || decodeReady(ready.payload).ok === false, "no replay is ever ready");
    return { bytes: raw.bytesSent, ms: performance.now() - t0 };
  }

  it("a captured hello and proof, and a captured welcome, replayed never yield a session", TEST, async () => {
    await scenario("replay", "Replayed hello, proof and welcome", { growth: GROWTH_BOUND, closeMs: 2_000 }, async (peak) => {
      let bytes = 0;
      let worst = 0;
      const hello = peerHello(ghost, target.url, { max: MAX_MESSAGE });
      const first = await RawWs.open(endpoint);
      first.send(helloFrame(hello));
      const welcome = decodeWelcome(decodeFrame((await first.next())!, MAX_MESSAGE)[0].payload);
      const proof = await proofFor(hello, welcome, SECRET);
      first.send(proof);
      assert.equal(decodeReady(decodeFrame((await first.next())!, MAX_MESSAGE)[0].payload).ok, true);
      first.destroy();
      captured = { hello, welcome, proof };
      await until(() => target.grid.connection(ghost).state !== "up", "the captured session ended");
      for (let i = 0; i < 5; i++) {
        const r = await replayCaptured();
        bytes += r.bytes;
        worst = Math.max(worst, r.ms);
      }
      // The captured welcome, replayed to the target's dial of `dialed` by an impostor there.
      let answered = 0;
      const impostor = await serveImpostor(dialed, (s) => {
        s.binaryType = "arraybuffer";
        s.addEventListener("message", (ev) => {
          if (firstMessage(ev.data).op !== OP_HELLO) return;
          answered++;
          const f = handshakeFrame(OP_WELCOME, { ...welcome, from: dialed });
          bytes += f.length;
          s.send(f);
        });
      });
      try {
        await until(() => answered >= 5, "five dials answered with a replayed welcome", 15_000);
        assert.notEqual(target.grid.connection(dialed).state, "up");
      } finally {
        await impostor.close();
      }
      await peak();
      assert.notEqual(target.grid.connection(ghost).state, "up", "the replays never brought the ghost up");
      return { bytesSent: bytes, closeMs: worst };
    });
  });

  it("the captured hello and proof replayed after the target restarted never yield a session", TEST, async () => {
    // The restart itself (a new instance on the same port) is not part of the measured attack.
    const hosts = [...target.grid.hosts];
    const reconnectsBefore = peer.grid.stats().connections[target.url].reconnects;
    await stopNode(target);
    target = await startNode(target.url, hosts);
    target.grid.handle("echo", (req) => req);
    target.grid.handle("secret.write", (req) => {
      ran.secret++;
      return req;
    }, { readOnly: true });
    await until(
      () => peer.grid.connection(target.url).state === "up" && peer.grid.stats().connections[target.url].reconnects > reconnectsBefore,
      "the peer reconnects to the restarted target",
    );
    reconnectsBase = peer.grid.stats().connections[target.url].reconnects;
    await scenario("replay-after-restart", "Replayed hello and proof after a restart", { growth: GROWTH_BOUND, closeMs: 2_000 }, async (peak) => {
      let bytes = 0;
      let worst = 0;
      for (let i = 0; i < 10; i++) {
        const r = await replayCaptured();
        bytes += r.bytes;
        worst = Math.max(worst, r.ms);
        if (i === 5) await peak();
      }
      assert.notEqual(target.grid.connection(ghost).state, "up");
      return { bytesSent: bytes, closeMs: worst };
    });
  });

  it("negotiated limits tampered with on the path (a relay rewriting max) fail both MACs", TEST, async () => {
    await scenario("tampered-limits", "Tampered negotiated limits (relay)", { growth: GROWTH_BOUND, closeMs: 2_000 }, async (peak) => {
      // The real node behind `dialed` listens elsewhere; a relay at `dialed`'s address rewrites the
      // welcome's max on its way to the target (and the hello's on its way to the real node).
      const realPort = await freePort();
      const real = new Manager({ secret: SECRET, local: dialed, hosts: [target.url, dialed], pingInterval: PING_MS });
      const realServer = await serve(real, { port: realPort, hostname: "127.0.0.1" });
      let bytes = 0;
      let worst = 0;
      let relayed = 0;
      // The relay changes `max` in whatever hello or welcome it sees, and passes the rest on.
      const tamper = (data: Uint8Array): Uint8Array<ArrayBuffer> => {
        const m = decodeFrame(data, MAX_MESSAGE)[0];
        if (m.op !== OP_HELLO && m.op !== OP_WELCOME) return Uint8Array.from(data);
        const o = unpack(m.payload) as Record<string, unknown>;
        return encodeMessage({ ...m, route: null, payload: pack({ ...o, max: 1 << 30 }) });
      };
      const relay = await serveImpostor(dialed, (s) => {
        s.binaryType = "arraybuffer";
        const t0 = performance.now();
        s.addEventListener("close", () => (worst = Math.max(worst, performance.now() - t0)));
        const upstream = RawWs.open(`ws://127.0.0.1:${realPort}${PATH}`);
        s.addEventListener("message", async (ev) => {
          const up = await upstream;
          const b = ev.data instanceof ArrayBuffer ? new Uint8Array(ev.data) : ev.data as Uint8Array;
          up.send(tamper(b));
          relayed++;
          for (let m = await up.next(2_000); m !== null; m = await up.next(2_000)) {
            const f = tamper(m);
            bytes += f.length;
            try {
              s.send(f);
            } catch {
              break;
            }
          }
          up.destroy();
        });
      });
      try {
        await until(() => relayed >= 5, "five dials relayed", 15_000);
        await peak();
        assert.notEqual(target.grid.connection(dialed).state, "up", "a tampered handshake never completes");
        assert.ok((target.grid.stats().rejectedHandshakes["dial-bad-mac"] ?? 0) > 0);
      } finally {
        await relay.close();
        await real.close();
        await realServer.close();
      }
      return { bytesSent: bytes, closeMs: worst };
    });
  });
});
