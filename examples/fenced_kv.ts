/**
 * A fenced key-value store: why a lock alone cannot protect data, and how a
 * fencing token does.
 *
 * Three lock nodes run in this process (in production each is its own
 * server); node 1 also serves a tiny key-value store whose `kv.put` carries
 * the writer's fencing token and is refused when a later token already wrote
 * the key. Writer A takes the lock and then "pauses" (a GC pause, SIGSTOP, a
 * laptop lid) past its lease: here its locks are dropped with `forceUnlock`,
 * which is what the lock nodes do when its lease runs out. Writer B takes the
 * lock with a larger token and writes. A wakes up still believing it holds
 * the lock and writes: the store refuses it, because its token is stale.
 *
 *   deno run -A examples/fenced_kv.ts [--ports 9101,9102,9103]
 *   bun examples/fenced_kv.ts  |  node examples/fenced_kv.ts
 *
 * In your project, import from the package instead: `wsgrid`, `wsgrid/serve`
 * and `wsgrid/locks`.
 *
 * @module
 */
import process from "node:process";
import { defineSingle, GridError, Manager } from "../mod.ts";
import { serve } from "../src/adapters/serve.ts";
import { DistributedLock, LOCK_HANDLERS, lockArgsCodec, registerLockHandlers } from "../src/locks/mod.ts";

const argv = process.argv.slice(2);
const portsArg = argv.includes("--ports") ? argv[argv.indexOf("--ports") + 1] : "9101,9102,9103";
const ports = portsArg.split(",").map(Number);
const hosts = ports.map((p) => `ws://127.0.0.1:${p}`);
const secret = "example cluster secret";

/** A put carries the fencing token of the lock its writer holds. */
const Put = defineSingle<{ key: string; value: string; token: number }, { ok: boolean; reason?: string }>("kv.put");

/**
 * The storage side: remembers, per key, the largest token that wrote it, and
 * refuses any write with a smaller one. That check is all fencing needs from
 * the storage; the lock service makes the tokens increase.
 */
class FencedStore {
  private readonly values = new Map<string, { value: string; token: number }>();
  put(key: string, value: string, token: number): { ok: boolean; reason?: string } {
    const current = this.values.get(key);
    if (current !== undefined && token < current.token) {
      return { ok: false, reason: `stale token ${token} < ${current.token}` };
    }
    this.values.set(key, { value, token });
    return { ok: true };
  }
  get(key: string): string | undefined {
    return this.values.get(key)?.value;
  }
}

const grids = hosts.map((local) => new Manager({ local, hosts, secret, backoff: { base: 20, cap: 200 } }));
const services = grids.map((grid) => registerLockHandlers(grid, { leaseMs: 2_000, sweepMs: 100 }));
const store = new FencedStore();
grids[1].handle(Put, ({ key, value, token }) => store.put(key, value, token));
const servers = await Promise.all(grids.map((grid, i) => serve(grid, { port: ports[i], hostname: "127.0.0.1" })));
await Promise.all(services.map((s) => s.ready));

const storage = (grid: Manager) => grid.connection(hosts[1]);

// Writer A (on node 0) takes the lock.
const lockA = new DistributedLock(grids[0], { resources: ["account/42"], source: "writer A" });
const a = await lockA.lock({ timeout: 5_000 });
console.log(`A holds "account/42" with token ${a.token}`);

// A pauses past its lease: every lock node drops its locks (here by force, as expiry would).
const force = lockArgsCodec.encode({ uid: a.uid, resources: [], source: "lease ran out", owner: "", quorum: 0 });
services[0].table.forceUnlock(lockArgsCodec.decode(force));
await Promise.all(hosts.slice(1).map((h) => grids[0].connection(h).request(LOCK_HANDLERS.forceUnlock, force)));

// Writer B (on node 2) takes the lock now and writes.
const lockB = new DistributedLock(grids[2], { resources: ["account/42"], source: "writer B" });
const b = await lockB.lock({ timeout: 5_000 });
console.log(`B holds "account/42" with token ${b.token} (A was paused past its lease)`);
const byB = await storage(grids[2]).request(Put, { key: "account/42", value: "balance=200", token: b.token });
console.log(`B put balance=200 with token ${b.token} -> ${byB.ok ? "accepted" : `rejected: ${byB.reason}`}`);
await lockB.unlock();

// A wakes up, still "holding" in its own view, and writes with its old token.
const byA = await storage(grids[0]).request(Put, { key: "account/42", value: "balance=100", token: a.token });
console.log(`A put balance=100 with token ${a.token} -> ${byA.ok ? "accepted" : `rejected: ${byA.reason}`}`);
console.log(`account/42 is ${store.get("account/42")}`);

try {
  await lockA.unlock();
} catch (e) {
  if (!(e instanceof GridError)) throw e;
}
await Promise.all(grids.map((g) => g.close()));
await Promise.all(servers.map((s) => s.close()));
