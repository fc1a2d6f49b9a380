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
  LOCK_HANDLERS,
  type LockArgs,
  lockClientStats,
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
  ready: Promise<void>;
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

/** Three free loopback host names and no nodes yet; the cluster is closed after each test. */
async function emptyCluster(): Promise<Cluster> {
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
  return c;
}

/** Three lock nodes, all connected; closed after each test. */
async function cluster(options: { leaseMs?: number; sweepMs?: number } = {}): Promise<Cluster> {
  const c = await emptyCluster();
  const { hosts, nodes } = c;
  for (const url of hosts) {
    const grid = new Manager({
      local: url,
      hosts,
      secret: SECRET,
      pingInterval: 300,
      backoff: { base: 20, cap: 200 },
      requestTimeout: 8_000,
    });
    const { table, ready } = registerLockHandlers(grid, {
      leaseMs: options.leaseMs ?? 60_000,
      sweepMs: options.sweepMs ?? 10_000,
    });
    const server = await serve(grid, { port: Number(new URL(url).port), hostname: "127.0.0.1" });
    nodes.push({ url, grid, server, table, closed: false, ready });
  }
  for (const n of nodes) {
    for (const h of hosts) if (h !== n.url) await n.grid.connection(h).waitForConnect({ timeout: WAIT_MS });
  }
  for (const n of nodes) await n.ready;
  return c;
}

afterEach(async () => {
  while (clusters.length > 0) await clusters.pop()!.close();
});
after(async () => {
  while (clusters.length > 0) await clusters.pop()!.close();
});

function mutex(n: LockNode, resources: string[], refreshInterval?: number): DistributedLock {
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

  it("await using releases the hold at the end of its scope, on every node", TEST, async () => {
    const { nodes } = await cluster();
    const a = mutex(nodes[0], ["scoped"]);
    {
      await using hold = await a.lock(QUICK);
      assert.equal(hold.write, true);
      assert.equal(a.locked, true);
      assert.ok(nodes.filter((n) => locksHeld(n.table) === 1).length >= 2, "held on a quorum inside the scope");
    }
    assert.equal(a.locked, false);
    for (const n of nodes) assert.equal(locksHeld(n.table), 0);
    // A read hold too; disposing a hold that was already unlocked leaves the instance's next lock alone.
    const r = mutex(nodes[1], ["scoped"]);
    {
      await using hold = await r.rlock(QUICK);
      assert.equal(hold.write, false);
      await r.unlock();
      const next = await r.rlock(QUICK);
      await hold[Symbol.asyncDispose]();
      assert.equal(r.locked, true, "the stale hold's dispose did not unlock the next hold");
      assert.notEqual(next.uid, hold.uid);
    }
    assert.equal(r.locked, true);
    await r.unlock();
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
    const { nodes } = await cluster({ leaseMs: 300, sweepMs: 50 });
    // An owner that died: its grants on every node, and nobody refreshing them.
    for (const n of nodes) n.table.lock({ ...foreign(["stale"]), uid: "dead-owner" });
    const b = mutex(nodes[1], ["stale"]);
    const hold = await b.lock({ timeout: WAIT_MS, retryMin: 20, retryMax: 100 });
    assert.ok(hold.attempts > 1, "the first attempt found the stale lock");
    assert.ok(nodes.some((n) => n.table.stats().expired >= 1));
    await b.unlock();
  });

  it("a refreshing holder keeps its lock past the expiry time", TEST, async () => {
    const { nodes } = await cluster({ leaseMs: 800, sweepMs: 50 });
    const holder = mutex(nodes[0], ["fresh"]);
    const { lost } = await holder.lock(QUICK);
    await new Promise((r) => setTimeout(r, 1_500));
    assert.equal(lost.aborted, false);
    await rejectsTimeout(mutex(nodes[1], ["fresh"]).lock(QUICK));
    await holder.unlock();
  });

  it("forceUnlock frees the resource and the holder's refresh reports the loss", TEST, async () => {
    const { nodes } = await cluster();
    const holder = new DistributedLock(nodes[0].grid, { resources: ["forced"], refreshInterval: 100, callTimeout: 500 });
    const { lost } = await holder.lock(QUICK);
    const args = lockArgsCodec.encode({ uid: "", resources: ["forced"], source: "admin", owner: "", quorum: 0 });
    nodes[1].table.forceUnlock(lockArgsCodec.decode(args));
    const res = await nodes[1].grid.connection(nodes[2].url).request(LOCK_HANDLERS.forceUnlock, args);
    assert.equal(res[0], 1, "granted");
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
    const holder = new DistributedLock(nodes[0].grid, { resources: ["refresh"], refreshInterval: 100, callTimeout: 500 });
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

/** Starts a fresh lock node at `c.nodes[i]`'s URL (state lost unless `table` is passed). */
async function restartNode(c: Cluster, i: number, table?: LockTable): Promise<LockNode> {
  const old = c.nodes[i];
  await closeNode(old);
  const grid = new Manager({
    local: old.url,
    hosts: c.hosts,
    secret: SECRET,
    pingInterval: 300,
    backoff: { base: 20, cap: 200 },
    requestTimeout: 8_000,
  });
  const service = registerLockHandlers(grid, { table, leaseMs: table?.leaseMs ?? 60_000 });
  const server = await serve(grid, { port: Number(new URL(old.url).port), hostname: "127.0.0.1" });
  const node: LockNode = { url: old.url, grid, server, table: service.table, closed: false, ready: service.ready };
  c.nodes[i] = node;
  await node.ready;
  return node;
}

/** Three grids; node 0 serves locks, nodes 1 and 2 take every lock call and never answer (a blackhole). */
async function blackholed(answering = 1): Promise<Cluster> {
  const c = await emptyCluster();
  const { hosts, nodes } = c;
  for (const [i, url] of hosts.entries()) {
    const grid = new Manager({ local: url, hosts, secret: SECRET, pingInterval: 300, backoff: { base: 20, cap: 200 } });
    let table: LockTable;
    let ready: Promise<void> = Promise.resolve();
    if (i < answering) {
      const service = registerLockHandlers(grid, { peers: [] });
      table = service.table;
      ready = service.ready;
    } else {
      table = new LockTable();
      const hang = (_req: Uint8Array, ctx: { signal: AbortSignal }) =>
        new Promise<Uint8Array>((_resolve, reject) => ctx.signal.addEventListener("abort", () => reject(ctx.signal.reason)));
      for (const name of Object.values(LOCK_HANDLERS)) if (name !== LOCK_HANDLERS.stats) grid.handle(name, hang);
    }
    const server = await serve(grid, { port: Number(new URL(url).port), hostname: "127.0.0.1" });
    nodes.push({ url, grid, server, table, closed: false, ready });
  }
  for (const n of nodes) {
    for (const h of hosts) if (h !== n.url) await n.grid.connection(h).waitForConnect({ timeout: WAIT_MS });
  }
  return c;
}

describe("locks: one lease clock (hole 1)", () => {
  it("the lease comes from the lock nodes: expiresAt is the send time plus their lease", TEST, async () => {
    const { nodes } = await cluster({ leaseMs: 5_000 });
    const m = mutex(nodes[0], ["lease"]);
    const before = performance.now();
    const hold = await m.lock(QUICK);
    const after = performance.now();
    assert.ok(hold.expiresAt >= before + 5_000 && hold.expiresAt <= after + 5_000, `expiresAt ${hold.expiresAt - before} ms`);
    await m.unlock();
  });

  it("refuses a refreshInterval + callTimeout that could let a live lease lapse, and leaves nothing held", TEST, async () => {
    const { nodes } = await cluster({ leaseMs: 1_000 });
    const m = new DistributedLock(nodes[0].grid, { resources: ["lapse"], refreshInterval: 700, callTimeout: 400 });
    await assert.rejects(m.lock(QUICK), (e: unknown) => e instanceof RangeError && /lease of 1000 ms/.test(e.message));
    assert.equal(m.locked, false);
    const other = mutex(nodes[1], ["lapse"]);
    await other.lock({ timeout: WAIT_MS });
    await other.unlock();
  });

  it("refreshes from the lease (no interval given) and moves expiresAt on", TEST, async () => {
    const { nodes } = await cluster({ leaseMs: 400, sweepMs: 20 });
    const m = mutex(nodes[0], ["moving"]);
    const hold = await m.lock(QUICK);
    const first = hold.expiresAt;
    await new Promise((r) => setTimeout(r, 900));
    assert.equal(hold.lost.aborted, false);
    assert.ok(hold.expiresAt > first + 300, "refreshed");
    await m.unlock();
  });
});

describe("locks: liveness (holes 3 and 6, dsync's)", () => {
  it("lock({ timeout }) settles at its timeout when the other nodes are blackholed", TEST, async () => {
    const { nodes } = await blackholed();
    const m = new DistributedLock(nodes[0].grid, { resources: ["bh"], callTimeout: 2_000 });
    const started = performance.now();
    await rejectsTimeout(m.lock({ timeout: 300 }));
    const took = performance.now() - started;
    assert.ok(took < 300 + 200, `settled after ${Math.round(took)} ms`);
    assert.equal(locksHeld(nodes[0].table), 0, "the local grant was released");
  });

  it("an abort settles the acquire at once when the other nodes are blackholed", TEST, async () => {
    const { nodes } = await blackholed();
    const m = new DistributedLock(nodes[0].grid, { resources: ["bh"], callTimeout: 2_000 });
    const controller = new AbortController();
    const reason = new Error("caller gave up");
    setTimeout(() => controller.abort(reason), 100);
    const started = performance.now();
    await assert.rejects(m.lock({ timeout: 5_000, signal: controller.signal }), (e) => e === reason);
    const took = performance.now() - started;
    assert.ok(took < 100 + 150, `settled after ${Math.round(took)} ms`);
  });

  it("returns as soon as a quorum granted, without waiting for a node that does not answer", TEST, async () => {
    const { nodes } = await blackholed(2);
    await nodes[1].ready;
    const m = new DistributedLock(nodes[0].grid, { resources: ["fast"], callTimeout: 2_000, hosts: nodes.map((n) => n.url) });
    const started = performance.now();
    const hold = await m.lock({ timeout: 5_000 });
    const took = performance.now() - started;
    assert.ok(took < 500, `granted after ${Math.round(took)} ms`);
    assert.equal(hold.attempts, 1);
    await m.unlock();
  });

  it("a holder whose event loop was blocked past its lease loses the lock as soon as it runs again", TEST, async () => {
    const { nodes } = await cluster({ leaseMs: 400 });
    const m = new DistributedLock(nodes[0].grid, { resources: ["blocked"], callTimeout: 50 });
    const hold = await m.lock(QUICK);
    const until = hold.expiresAt + 50;
    // A paused process, as a GC pause or SIGSTOP: no timer runs until the lease is over.
    for (let i = 0; i < 1e9 && performance.now() < until; i++) { /* busy */ }
    await waitUntil(() => hold.lost.aborted, "lost to abort");
    assert.equal((hold.lost.reason as GridError).code, "lock-lost");
    assert.match((hold.lost.reason as GridError).message, /lease ran out/);
    assert.equal(m.locked, false);
  });

  it("a held lock on one node stops refreshing and reports the loss when the grid closes", TEST, async () => {
    const { nodes } = await cluster();
    const one = new DistributedLock(nodes[0].grid, { resources: ["solo"], hosts: [nodes[0].url], refreshInterval: 50, callTimeout: 20 });
    const hold = await one.lock(QUICK);
    await closeNode(nodes[0]);
    assert.equal(hold.lost.aborted, true);
    assert.equal((hold.lost.reason as GridError).code, "lock-lost");
    assert.equal(one.locked, false);
  });
});

describe("locks: unlock retried in the background (hole 4)", () => {
  it("a node that missed the unlock during a brief disconnect releases it when it comes back", TEST, async () => {
    const c = await cluster();
    const { nodes } = c;
    const m = new DistributedLock(nodes[0].grid, { resources: ["retry"], callTimeout: 500 });
    await m.lock(QUICK);
    await waitUntil(() => locksHeld(nodes[2].table) === 1, "node 2 to hold the lock");
    const kept = nodes[2].table;
    await closeNode(nodes[2]);
    await m.unlock();
    assert.equal(locksHeld(kept), 1, "node 2 missed the unlock");
    assert.ok(lockClientStats(nodes[0].grid).unlockPending >= 1);
    await restartNode(c, 2, kept);
    await waitUntil(() => locksHeld(kept) === 0, "the background retry to release node 2");
    // The table empties when node 2 runs the unlock; its answer reaches the client a moment later.
    await waitUntil(() => lockClientStats(nodes[0].grid).unlockPending === 0, "node 2's answer to the retried unlock");
    const stats = lockClientStats(nodes[0].grid);
    assert.ok(stats.unlockConfirmedLate >= 1, JSON.stringify(stats));
    assert.equal(stats.unlockPending, 0);
  });
});

describe("locks: fencing tokens", () => {
  it("successive write holders on any node get strictly increasing tokens; readers get the latest", TEST, async () => {
    const { nodes } = await cluster();
    const seen: number[] = [];
    for (let i = 0; i < 6; i++) {
      const m = mutex(nodes[i % 3], ["fenced", `other-${i}`]);
      const hold = await m.lock(QUICK);
      assert.ok(Number.isSafeInteger(hold.token));
      seen.push(hold.token);
      await m.unlock();
    }
    for (let i = 1; i < seen.length; i++) assert.ok(seen[i] > seen[i - 1], `tokens ${seen.join(", ")}`);
    const r = mutex(nodes[1], ["fenced"]);
    assert.equal((await r.rlock(QUICK)).token, seen.at(-1));
    await r.unlock();
  });

  it("uses the largest proposal when the quorum disagrees, and records it (second round)", TEST, async () => {
    const { nodes } = await cluster();
    // Node 2 saw many more writes of "split" than the others; node 1 is taken, so the quorum is {0, 2}.
    const f = foreign(["split"]);
    nodes[2].table.lock(f);
    nodes[2].table.fence(f, 50);
    nodes[2].table.unlock(f);
    const blocker = foreign(["split"]);
    nodes[1].table.lock(blocker);
    const m = mutex(nodes[0], ["split"]);
    const hold = await m.lock(QUICK);
    assert.equal(hold.token, 51);
    await m.unlock();
    nodes[1].table.unlock(blocker);
    // Recorded on a quorum: whichever two nodes grant next, the token goes up.
    await closeNode(nodes[2]);
    const next = mutex(nodes[1], ["split"]);
    assert.ok((await next.lock(QUICK)).token > 51);
    await next.unlock();
  });

  it("tokens keep increasing after a lock node restarts with its state lost", TEST, async () => {
    const c = await cluster();
    // Writes granted by nodes 0 and 2 only (node 1 is taken), so node 1's counter lags.
    const blocker = foreign(["restart"]);
    c.nodes[1].table.lock(blocker);
    let last = 0;
    for (let i = 0; i < 4; i++) {
      const m = mutex(c.nodes[0], ["restart"]);
      last = (await m.lock(QUICK)).token;
      await m.unlock();
    }
    c.nodes[1].table.unlock(blocker);
    // Node 2 loses everything; node 0 is taken, so the next quorum is {1, 2}: neither
    // remembers `last` unless node 2 recovered it from its peers.
    await restartNode(c, 2);
    c.nodes[0].table.lock(foreign(["restart"]));
    const m = mutex(c.nodes[1], ["restart"]);
    const token = (await m.lock({ timeout: WAIT_MS })).token;
    assert.ok(token > last, `token ${token} after ${last}`);
    await m.unlock();
  });
});

describe("locks: write lockers of one process take turns", () => {
  it("16 concurrent write lockers on one node each get the lock on their first attempt", TEST, async () => {
    const { nodes } = await cluster();
    const tokens: number[] = [];
    let inside = 0;
    let overlap = 0;
    const worker = async () => {
      const m = mutex(nodes[0], ["turns"]);
      const hold = await m.lock({ timeout: WAIT_MS });
      inside++;
      if (inside > 1) overlap++;
      tokens.push(hold.token);
      assert.equal(hold.attempts, 1, "no blind retry");
      await new Promise((r) => setTimeout(r, 2));
      inside--;
      await m.unlock();
    };
    await Promise.all(Array.from({ length: 16 }, worker));
    assert.equal(overlap, 0);
    for (let i = 1; i < tokens.length; i++) assert.ok(tokens[i] > tokens[i - 1], tokens.join(", "));
  });

  it("a locker waiting behind another of its process honours its timeout and signal", TEST, async () => {
    const { nodes } = await cluster();
    const a = mutex(nodes[0], ["turns2"]);
    await a.lock(QUICK);
    const started = performance.now();
    const err = await rejectsTimeout(mutex(nodes[0], ["turns2"]).lock({ timeout: 200 }));
    assert.match(err.message, /behind other holders/);
    assert.ok(performance.now() - started < 200 + 150);
    const controller = new AbortController();
    const reason = new Error("enough");
    setTimeout(() => controller.abort(reason), 50);
    await assert.rejects(mutex(nodes[0], ["turns2"]).lock({ timeout: WAIT_MS, signal: controller.signal }), (e) => e === reason);
    await a.unlock();
    const b = mutex(nodes[0], ["turns2"]);
    await b.lock(QUICK);
    await b.unlock();
  });
});
