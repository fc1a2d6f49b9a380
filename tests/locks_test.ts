/**
 * Distributed locks end to end in one process: three Managers served on
 * loopback, each serving the lock handlers, `DistributedLock` clients on them.
 */
import { after, afterEach, describe, it } from "node:test";
import assert from "node:assert/strict";
import { GridError, Manager, TimeoutError } from "../mod.ts";
import { type GridServer, serve } from "../src/adapters/serve.ts";
import {
  DistributedLock,
  type LockArgs,
  lockArgsCodec,
  LockStatsHandler,
  LockTable,
  registerLockHandlers,
} from "../src/locks/mod.ts";
import { freePort } from "./_net.ts";

const SECRET = "locks test secret";
const WAIT_MS = 10_000;
const TEST = { timeout: 60_000 };

interface LockNode {
  url: string;
  grid: Manager;
  server: GridServer;
  table: LockTable;
  closed: boolean;
}

interface Cluster {
  nodes: LockNode[];
  hosts: string[];
  close(): Promise<void>;
}

const clusters: Cluster[] = [];

async function closeNode(n: LockNode): Promise<void> {
  if (n.closed) return;
  n.closed = true;
  await n.grid.close();
  await n.server.close();
}

/** Three lock nodes, all connected; closed after each test. */
async function cluster(options: { expireAfterMs?: number; sweepMs?: number } = {}): Promise<Cluster> {
  const ports = new Set<number>();
  while (ports.size < 3) ports.add(await freePort());
  const hosts = [...ports].map((p) => `ws://127.0.0.1:${p}`);
  const nodes: LockNode[] = [];
  const c: Cluster = {
    nodes,
    hosts,
    close: async () => {
      for (const n of nodes) await closeNode(n);
    },
  };
  clusters.push(c);
  for (const url of hosts) {
    const grid = new Manager({
      local: url,
      hosts,
      secret: SECRET,
      pingInterval: 300,
      backoff: { base: 20, cap: 200 },
      requestTimeout: 8_000,
    });
    const { table } = registerLockHandlers(grid, {
      expireAfterMs: options.expireAfterMs ?? 60_000,
      sweepMs: options.sweepMs ?? 10_000,
    });
    const server = await serve(grid, { port: Number(new URL(url).port), hostname: "127.0.0.1" });
    nodes.push({ url, grid, server, table, closed: false });
  }
  for (const n of nodes) {
    for (const h of hosts) if (h !== n.url) await n.grid.connection(h).waitForConnect({ timeout: WAIT_MS });
  }
  return c;
}

afterEach(async () => {
  while (clusters.length > 0) await clusters.pop()!.close();
});
after(async () => {
  while (clusters.length > 0) await clusters.pop()!.close();
});

function mutex(n: LockNode, resources: string[], refreshInterval = 10_000): DistributedLock {
  return new DistributedLock(n.grid, { resources, refreshInterval, callTimeout: 2_000 });
}

const QUICK = { timeout: 150, retryMin: 5, retryMax: 30 };

async function rejectsTimeout(p: Promise<unknown>): Promise<TimeoutError> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof TimeoutError, `expected TimeoutError, got ${String(e)}`);
    assert.equal(e.code, "timeout");
    return e;
  }
  assert.fail("expected the lock to time out");
}

async function waitUntil(cond: () => boolean, what: string, ms = WAIT_MS): Promise<void> {
  const end = performance.now() + ms;
  while (!cond()) {
    if (performance.now() > end) assert.fail(`Timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

function locksHeld(table: LockTable): number {
  const s = table.stats();
  return s.writeLocks + s.readLocks;
}

function foreign(resources: string[]): LockArgs {
  return { uid: crypto.randomUUID(), resources, source: "test", owner: "someone-else", quorum: 2 };
}

describe("locks: DistributedLock on three nodes", () => {
  it("write locks exclude each other across nodes, and unlock lets the next one in", TEST, async () => {
    const { nodes } = await cluster();
    const a = mutex(nodes[0], ["bucket/a"]);
    const b = mutex(nodes[1], ["bucket/a"]);
    const hold = await a.lock(QUICK);
    assert.equal(hold.write, true);
    assert.equal(a.locked, true);
    const err = await rejectsTimeout(b.lock(QUICK));
    assert.match(err.message, /no quorum/);
    await a.unlock();
    assert.equal(a.locked, false);
    await b.lock(QUICK);
    await b.unlock();
    for (const n of nodes) assert.equal(locksHeld(n.table), 0);
  });

  it("read locks are shared; a writer waits until every reader is gone", TEST, async () => {
    const { nodes } = await cluster();
    const r1 = mutex(nodes[0], ["bucket/r"]);
    const r2 = mutex(nodes[1], ["bucket/r"]);
    const w = mutex(nodes[2], ["bucket/r"]);
    assert.equal((await r1.rlock(QUICK)).write, false);
    await r2.rlock(QUICK);
    await rejectsTimeout(w.lock(QUICK));
    await r1.unlock();
    await rejectsTimeout(w.lock(QUICK));
    await r2.unlock();
    await w.lock(QUICK);
    await w.unlock();
  });

  it("a held write lock keeps readers out", TEST, async () => {
    const { nodes } = await cluster();
    const w = mutex(nodes[0], ["bucket/w"]);
    const r = mutex(nodes[1], ["bucket/w"]);
    await w.lock(QUICK);
    await rejectsTimeout(r.rlock(QUICK));
    await w.unlock();
    await r.rlock(QUICK);
    await r.unlock();
  });

  it("uses quorum n/2+1 for writers and n-n/2 for readers", TEST, async () => {
    const { nodes } = await cluster();
    const m = mutex(nodes[0], ["x"]);
    assert.equal(m.writeQuorum, 2);
    assert.equal(m.readQuorum, 2);
    const one = new DistributedLock(nodes[0].grid, { resources: ["x"], hosts: [nodes[0].url] });
    assert.equal(one.writeQuorum, 1);
    assert.equal(one.readQuorum, 1);
    assert.throws(() => new DistributedLock(nodes[0].grid, { resources: [] }), TypeError);
    assert.throws(() => new DistributedLock(nodes[0].grid, { resources: ["x"], hosts: ["ws://127.0.0.1:1"] }), TypeError);
  });

  it("a second lock() on a holding instance is refused with code lock-busy", TEST, async () => {
    const { nodes } = await cluster();
    const m = mutex(nodes[0], ["busy"]);
    await m.lock(QUICK);
    await assert.rejects(m.lock(QUICK), (e: unknown) => e instanceof GridError && e.code === "lock-busy");
    await m.unlock();
  });

  it("keeps locking on a quorum when one node is closed, and times out when two are", TEST, async () => {
    const { nodes } = await cluster();
    await closeNode(nodes[2]);
    const a = mutex(nodes[0], ["q"]);
    const b = mutex(nodes[1], ["q"]);
    await a.lock(QUICK);
    await rejectsTimeout(b.lock(QUICK));
    await a.unlock();
    await b.lock(QUICK);
    await b.unlock();
    await closeNode(nodes[1]);
    const err = await rejectsTimeout(a.lock(QUICK));
    assert.match(err.message, /1 of 3 granted/);
  });

  it("drops a lock whose owner stopped refreshing (stale-lock expiry)", TEST, async () => {
    const { nodes } = await cluster({ expireAfterMs: 300, sweepMs: 50 });
    // The holder never refreshes within the test (refresh every 60 s).
    const stale = mutex(nodes[0], ["stale"], 60_000);
    await stale.lock(QUICK);
    const b = mutex(nodes[1], ["stale"]);
    const hold = await b.lock({ timeout: WAIT_MS, retryMin: 20, retryMax: 100 });
    assert.ok(hold.attempts > 1, "the first attempt found the stale lock");
    assert.ok(nodes.some((n) => n.table.stats().expired >= 1));
    await b.unlock();
    // Its refresh timer would keep the process alive for a minute.
    await stale.unlock();
  });

  it("a refreshing holder keeps its lock past the expiry time", TEST, async () => {
    const { nodes } = await cluster({ expireAfterMs: 800, sweepMs: 50 });
    const holder = mutex(nodes[0], ["fresh"], 100);
    const { lost } = await holder.lock(QUICK);
    await new Promise((r) => setTimeout(r, 1_500));
    assert.equal(lost.aborted, false);
    await rejectsTimeout(mutex(nodes[1], ["fresh"]).lock(QUICK));
    await holder.unlock();
  });

  it("forceUnlock frees the resource and the holder's refresh reports the loss", TEST, async () => {
    const { nodes } = await cluster();
    const holder = mutex(nodes[0], ["forced"], 100);
    const { lost } = await holder.lock(QUICK);
    const args = lockArgsCodec.encode({ uid: "", resources: ["forced"], source: "admin", owner: "", quorum: 0 });
    nodes[1].table.forceUnlock(lockArgsCodec.decode(args));
    const res = await nodes[1].grid.connection(nodes[2].url).request("lock.forceUnlock", args);
    assert.deepEqual([...res], [1]);
    await waitUntil(() => lost.aborted, "the lost signal");
    assert.ok(lost.reason instanceof GridError);
    assert.equal((lost.reason as GridError).code, "lock-lost");
    assert.equal(holder.locked, false);
    const other = mutex(nodes[1], ["forced"]);
    await other.lock(QUICK);
    await other.unlock();
    assert.equal(nodes[1].table.stats().forceUnlocked, 1);
  });

  it("signals the holder when closed nodes make refresh lose the quorum", TEST, async () => {
    const { nodes } = await cluster();
    const holder = mutex(nodes[0], ["refresh"], 100);
    const { lost } = await holder.lock(QUICK);
    await closeNode(nodes[1]);
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(lost.aborted, false, "one node down: refresh still has a quorum");
    await closeNode(nodes[2]);
    await waitUntil(() => lost.aborted, "the lost signal");
    assert.match((lost.reason as Error).message, /confirmed by 1 of 3/);
  });

  it("releases what a failed attempt acquired (partial-acquire rollback)", TEST, async () => {
    const { nodes } = await cluster();
    // Nodes 1 and 2 are taken by someone else: node 0 (local) grants, the attempt fails.
    nodes[1].table.lock(foreign(["partial"]));
    nodes[2].table.lock(foreign(["partial"]));
    await rejectsTimeout(mutex(nodes[0], ["partial"]).lock(QUICK));
    assert.equal(locksHeld(nodes[0].table), 0, "the local grant was released");
    assert.ok(nodes[0].table.stats().granted >= 1);
    // Same with the grant on a remote node: nodes 0 and 1 are taken, node 2 grants.
    nodes[0].table.lock(foreign(["partial2"]));
    nodes[1].table.lock(foreign(["partial2"]));
    await rejectsTimeout(mutex(nodes[0], ["partial2"]).lock(QUICK));
    const held = (t: LockTable, r: string) => t.entries().filter((e) => e.resource === r).length;
    await waitUntil(() => held(nodes[2].table, "partial2") === 0, "the remote grant to be released");
    assert.ok(nodes[2].table.stats().granted >= 1);
  });

  it("rejects with the signal's reason when aborted while retrying", TEST, async () => {
    const { nodes } = await cluster();
    const a = mutex(nodes[0], ["abort"]);
    await a.lock(QUICK);
    const controller = new AbortController();
    const reason = new Error("stop now");
    setTimeout(() => controller.abort(reason), 50);
    await assert.rejects(mutex(nodes[1], ["abort"]).lock({ timeout: WAIT_MS, signal: controller.signal }), (e) => e === reason);
    await a.unlock();
  });

  it("serves readOnly lock.stats", TEST, async () => {
    const { nodes } = await cluster();
    const a = mutex(nodes[0], ["s1", "s2"]);
    await a.lock(QUICK);
    const stats = await nodes[0].grid.connection(nodes[1].url).request(LockStatsHandler, null);
    assert.equal(stats.node, nodes[1].url);
    assert.equal(stats.writeLocks, 2);
    await a.unlock();
  });
});
