/**
 * Cross-runtime end-to-end suite: three real OS processes — a Deno, a Bun and a Node
 * node (tests/e2e/_node.ts) — form one grid on 127.0.0.1, whichever test runner runs
 * this file. Covers requests between every ordered pair, the one-socket-per-pair rule,
 * peer death (kill -9) and freeze (SIGSTOP), restart on the same URL, streams across
 * runtimes, and processes exiting by themselves after `close`.
 */
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { Cluster, establishedBetween, type NodeProc, type Runtime, sleep, withTimeout } from "./_cluster.ts";
import type { NodeEvent, WireError } from "./_node.ts";

const RUNTIMES: Runtime[] = ["deno", "bun", "node"];
const PING_MS = 500;
/**
 * Detection of a dead peer: 2 ping intervals, plus a generous margin for a shared 2-core
 * machine. After kill -9 the kernel closes the process's sockets, so peers usually learn it
 * from the TCP close within milliseconds; the SIGSTOP test covers detection by pings alone.
 */
const DEAD_PEER_BOUND_MS = 2 * PING_MS + 2_000;
/** A frozen peer is noticed on the first ping tick after 2 silent intervals: up to 3 intervals. */
const FROZEN_PEER_BOUND_MS = 3 * PING_MS + 2_000;
const EXIT_BOUND_MS = 5_000;
const TEST = { timeout: 60_000 };

interface Whoami {
  runtime: Runtime;
  pid: number;
  local: string;
}

interface StatsReply {
  runtime: Runtime;
  pid: number;
  dialer: Record<string, boolean>;
  stats: {
    connections: Record<string, { state: string; reconnects: number; serving: { requests: number; streams: number } }>;
  };
}

interface InflightDone {
  results: { ok: boolean; error?: WireError; at: number }[];
}

interface StreamResult {
  received: number;
  bytes: number;
  firstBad: string | null;
  ms: number;
}

function log(text: string): void {
  console.log(`[e2e] ${text}`);
}

function pairs(n: number): [number, number][] {
  const out: [number, number][] = [];
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) if (i !== j) out.push([i, j]);
  return out;
}

async function pollStats(node: NodeProc, ok: (s: StatsReply) => boolean, what: string, timeoutMs = 5_000): Promise<StatsReply> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const s = await node.command<StatsReply>({ cmd: "stats" });
    if (ok(s)) return s;
    if (Date.now() > until) throw new Error(`${node.name}: ${what} not reached within ${timeoutMs} ms: ${JSON.stringify(s.stats.connections)}`);
    await sleep(50);
  }
}

function port(node: NodeProc): number {
  return Number(new URL(node.url).port);
}

describe("cross-runtime grid (Deno, Bun, Node processes)", () => {
  let cluster: Cluster;
  const nodes = () => cluster.nodes;

  /**
   * Every pair: exactly one side dials, both report "up", and (on Linux) the two processes
   * share exactly one established TCP connection. Sockets of a link being replaced may take
   * a moment to close, so the count is polled, bounded.
   */
  async function assertOneLinkPerPair(): Promise<StatsReply[]> {
    const stats = await Promise.all(nodes().map((n) => n.command<StatsReply>({ cmd: "stats" })));
    for (let i = 0; i < 3; i++) {
      for (let j = i + 1; j < 3; j++) {
        const [a, b] = [nodes()[i], nodes()[j]];
        const label = `${a.runtime} ↔ ${b.runtime}`;
        assert.equal(typeof stats[i].dialer[b.url], "boolean", `${label}: dialer missing from stats`);
        assert.notEqual(stats[i].dialer[b.url], stats[j].dialer[a.url], `${label}: exactly one side must dial`);
        assert.equal(stats[i].stats.connections[b.url].state, "up", `${label}: state on ${a.runtime}`);
        assert.equal(stats[j].stats.connections[a.url].state, "up", `${label}: state on ${b.runtime}`);
        const until = Date.now() + 5_000;
        let sockets = establishedBetween(a.pid, port(a), b.pid, port(b));
        while (sockets !== null && sockets !== 1 && Date.now() < until) {
          await sleep(50);
          sockets = establishedBetween(a.pid, port(a), b.pid, port(b));
        }
        if (sockets !== null) assert.equal(sockets, 1, `${label}: established TCP connections between the two processes`);
      }
    }
    return stats;
  }

  before(async () => {
    cluster = await Cluster.start(RUNTIMES, { pingInterval: PING_MS });
    await cluster.waitConnected();
  }, { timeout: 60_000 });

  after(async () => {
    await cluster?.destroy();
  });

  it("forms one grid: every ordered pair answers whoami with the callee's runtime and pid", TEST, async () => {
    for (const [i, j] of pairs(3)) {
      const a = nodes()[i];
      const b = nodes()[j];
      const res = await a.command<{ text: string }>({ cmd: "request", to: b.url, handler: "whoami" });
      const who = JSON.parse(res.text) as Whoami;
      assert.equal(who.runtime, b.runtime, `${a.runtime} → ${b.runtime}: wrong runtime answered`);
      assert.equal(who.pid, b.pid, `${a.runtime} → ${b.runtime}: wrong process answered`);
      assert.equal(who.local, b.url);
      const echo = await a.command<{ text: string }>({ cmd: "request", to: b.url, handler: "echo", payload: `${i}→${j}` });
      assert.equal(echo.text, `${i}→${j}`);
    }
  });

  it("has exactly one socket per pair: one side dials, both are up, no reconnects", TEST, async () => {
    const stats = await assertOneLinkPerPair();
    for (const s of stats) {
      for (const [host, c] of Object.entries(s.stats.connections)) {
        assert.equal(c.reconnects, 0, `${s.runtime} → ${host}: reconnects`);
      }
    }
  });

  it("echoes a stream of 1,000 messages in order and intact for every ordered pair", TEST, async () => {
    const times: string[] = [];
    let bytes = 0;
    for (const [i, j] of pairs(3)) {
      const [a, b] = [nodes()[i], nodes()[j]];
      // Message sizes vary from 4 to 2,051 bytes, so frames mix small and large messages.
      const r = await a.command<StreamResult>({ cmd: "stream", to: b.url, handler: "echo-stream", count: 1_000 }, 30_000);
      assert.equal(r.firstBad, null, `${a.runtime} → ${b.runtime}`);
      assert.equal(r.received, 1_000, `${a.runtime} → ${b.runtime}`);
      bytes = r.bytes;
      times.push(`${a.runtime}→${b.runtime} ${r.ms} ms`);
    }
    log(`echo-stream 1,000 messages (${bytes} bytes each way): ${times.join(", ")}`);
  });

  it("reads a stream of 2,000 responses fully for every ordered pair", TEST, async () => {
    const times: string[] = [];
    for (const [i, j] of pairs(3)) {
      const [a, b] = [nodes()[i], nodes()[j]];
      const r = await a.command<StreamResult>({ cmd: "stream", to: b.url, handler: "produce", count: 2_000 }, 30_000);
      assert.equal(r.firstBad, null, `${a.runtime} → ${b.runtime}`);
      assert.equal(r.received, 2_000, `${a.runtime} → ${b.runtime}`);
      times.push(`${a.runtime}→${b.runtime} ${r.ms} ms`);
    }
    log(`produce 2,000: ${times.join(", ")}`);
  });

  for (let v = 0; v < 3; v++) {
    it(`kill -9 of the ${RUNTIMES[v]} node: calls and streams to it fail with DisconnectedError, its streams' handlers abort, and it comes back on the same URL`, TEST, async () => {
      const victim = nodes()[v];
      const others = nodes().filter((_, k) => k !== v);
      const n = 3;
      // In flight at the moment of the kill: n requests from each other node to the victim,
      // a stream from each other node to the victim (callee dies), and a stream from the
      // victim to each other node (caller dies).
      const inflight = others.map((o) => ({ o, id: o.post({ cmd: "inflight", to: victim.url, n }) }));
      const endless = { cmd: "stream", handler: "produce", count: 1e9, progressAt: 50, paceMs: 20 } as const;
      const toVictim = others.map((o) => ({ o, id: o.post({ ...endless, to: victim.url }) }));
      const fromVictim = others.map((o) => victim.post({ ...endless, to: o.url }));
      await Promise.all([
        ...toVictim.map(({ o, id }) => o.waitEvent(id, "progress")),
        ...fromVictim.map((id) => victim.waitEvent(id, "progress")),
      ]);
      await pollStats(victim, (s) =>
        others.every((o) => {
          const c = s.stats.connections[o.url];
          return c.serving.requests === n && c.serving.streams === 1;
        }), "all calls in flight");

      const killedAt = victim.kill9();
      const exit = await victim.exited;
      assert.equal(exit.signal, "SIGKILL");

      const latencies: string[] = [];
      for (const { o, id } of inflight) {
        const done = (await o.waitEvent(id, "inflight-done")) as unknown as InflightDone;
        assert.equal(done.results.length, n);
        for (const r of done.results) {
          assert.equal(r.ok, false, `${o.runtime}: a call to the killed node succeeded`);
          assert.equal(r.error!.name, "DisconnectedError", `${o.runtime}: ${JSON.stringify(r.error)}`);
          assert.equal(r.error!.code, "disconnected");
        }
        const worst = Math.max(...done.results.map((r) => r.at - killedAt));
        latencies.push(`${o.runtime} requests ${worst} ms`);
        assert.ok(worst <= DEAD_PEER_BOUND_MS, `${o.runtime}: requests rejected ${worst} ms after the kill (bound ${DEAD_PEER_BOUND_MS} ms)`);
      }
      for (const { o, id } of toVictim) {
        const line = await o.answer(id);
        const ms = Date.now() - killedAt;
        assert.equal(line.ok, false, `${o.runtime}: stream from the killed node ended without error`);
        assert.equal(line.error!.name, "DisconnectedError", `${o.runtime}: ${JSON.stringify(line.error)}`);
        latencies.push(`${o.runtime} stream ≤${ms} ms`);
      }
      for (const o of others) {
        const ev = await o.waitForNodeEvent(
          (e: NodeEvent) => e.type === "abort" && e.handler === "produce" && e.host === victim.url && e.at >= killedAt,
          `abort of the killed node's stream handler`,
        );
        assert.equal(ev.code, "disconnected");
        latencies.push(`${o.runtime} handler abort ${ev.at - killedAt} ms`);
      }
      log(`kill -9 ${victim.runtime}: ${latencies.join(", ")} (bound ${DEAD_PEER_BOUND_MS} ms)`);

      const restartedAt = Date.now();
      const back = await cluster.restart(v);
      await cluster.waitConnected();
      const upMs = Date.now() - restartedAt;
      for (const o of others) {
        await o.waitForNodeEvent((e) => e.type === "restart" && e.host === back.url && e.at >= restartedAt, "restart event");
        const who = JSON.parse((await o.command<{ text: string }>({ cmd: "request", to: back.url, handler: "whoami" })).text) as Whoami;
        assert.equal(who.pid, back.pid);
        await back.command({ cmd: "request", to: o.url, handler: "echo", payload: "x" });
      }
      const stats = await assertOneLinkPerPair();
      for (const o of others) {
        const s = stats[nodes().indexOf(o)];
        assert.equal(s.stats.connections[back.url].reconnects, 1, `${o.runtime} → restarted ${back.runtime}: reconnects`);
        assert.equal(stats[v].stats.connections[o.url].reconnects, 0, `restarted ${back.runtime} → ${o.runtime}: reconnects`);
      }
      log(`restart ${victim.runtime}: grid whole again ${upMs} ms after respawn`);
    });
  }

  it("drops a frozen peer (SIGSTOP) by pings: calls to it fail with DisconnectedError, and it recovers after SIGCONT", TEST, async () => {
    const v = 2;
    const victim = nodes()[v];
    const others = nodes().filter((_, k) => k !== v);
    const inflight = others.map((o) => ({ o, id: o.post({ cmd: "inflight", to: victim.url, n: 2 }) }));
    await pollStats(victim, (s) => others.every((o) => s.stats.connections[o.url].serving.requests === 2), "calls in flight");
    const stoppedAt = Date.now();
    victim.signal("SIGSTOP");
    const latencies: string[] = [];
    try {
      for (const { o, id } of inflight) {
        const done = (await o.waitEvent(id, "inflight-done")) as unknown as InflightDone;
        for (const r of done.results) assert.equal(r.error?.code, "disconnected", `${o.runtime}: ${JSON.stringify(r)}`);
        const worst = Math.max(...done.results.map((r) => r.at - stoppedAt));
        latencies.push(`${o.runtime} ${worst} ms`);
        assert.ok(worst >= PING_MS, `${o.runtime}: rejected ${worst} ms after SIGSTOP: too early for ping detection`);
        assert.ok(worst <= FROZEN_PEER_BOUND_MS, `${o.runtime}: rejected ${worst} ms after SIGSTOP (bound ${FROZEN_PEER_BOUND_MS} ms)`);
      }
    } finally {
      victim.signal("SIGCONT");
    }
    log(`SIGSTOP ${victim.runtime}: requests rejected after ${latencies.join(", ")} (bound ${FROZEN_PEER_BOUND_MS} ms)`);
    await cluster.waitConnected();
    for (const o of others) {
      await o.command({ cmd: "request", to: victim.url, handler: "echo", payload: "x" });
      await victim.command({ cmd: "request", to: o.url, handler: "echo", payload: "x" });
    }
    await assertOneLinkPerPair();
  });

  it("makes each process exit by itself within 5 s of close", TEST, async () => {
    const measured: string[] = [];
    for (const n of [...nodes()]) {
      const sent = Date.now();
      await n.command({ cmd: "close" });
      const exit = await withTimeout(n.exited, EXIT_BOUND_MS + 1_000, () => `${n.name} did not exit within ${EXIT_BOUND_MS} ms of close`);
      assert.equal(exit.code, 0, `${n.name} exit code`);
      const ms = exit.at - sent;
      measured.push(`${n.runtime} ${ms} ms`);
      assert.ok(ms <= EXIT_BOUND_MS, `${n.name} exited ${ms} ms after close (bound ${EXIT_BOUND_MS} ms)`);
    }
    log(`exit after close: ${measured.join(", ")}`);
  });
});
