/**
 * The lock service of one node: the grid handlers over a {@link LockTable}.
 *
 * Every node of a lock cluster calls {@link registerLockHandlers} once. Each
 * handler takes {@link lockArgsCodec} bytes (`lock.v2.fence`: a float64 token
 * first) and answers 13 bytes: a status (`0` refused, `1` granted or done, `2`
 * refused while recovering), the node's lease in ms (big-endian u32), and a
 * fencing token (float64, a safe integer). A malformed payload fails the call
 * with a `RemoteError` carrying the `ProtocolError` message. A sweep timer
 * drops locks whose lease ran out (dsync's `expireOldLocks`).
 *
 * The handlers of protocol version 1 (`lock.lock`, ... answering one byte)
 * are gone: their replies carried no lease nor token, and a name is never
 * reused for an incompatible change.
 *
 * @module
 */

import { GridError, ProtocolError } from "../errors.ts";
import { defineSingle, type SingleDefinition } from "../handlers/define.ts";
import type { Manager } from "../manager.ts";
import type { CallContext } from "../types.ts";
import { type LockArgs, type LockArgsCodec, lockArgsCodec } from "./lock_args.ts";
import { LockTable, type LockTableStats } from "./lock_table.ts";
import { decodeFence, decodeReply, encodeReply, GRANTED, RECOVERING, REFUSED } from "./_lock_reply.ts";

/**
 * Handler names of the lock service; a name is never reused for an incompatible change.
 *
 * @example
 * ```ts
 * import { LOCK_HANDLERS, lockArgsCodec } from "wsgrid/locks";
 * await grid.connection(host).request(LOCK_HANDLERS.forceUnlock, lockArgsCodec.encode(args));
 * ```
 */
export const LOCK_HANDLERS: {
  readonly lock: "lock.v2.lock";
  readonly unlock: "lock.v2.unlock";
  readonly rlock: "lock.v2.rlock";
  readonly runlock: "lock.v2.runlock";
  readonly refresh: "lock.v2.refresh";
  readonly fence: "lock.v2.fence";
  readonly maxToken: "lock.v2.maxToken";
  readonly forceUnlock: "lock.v2.forceUnlock";
  readonly stats: "lock.stats";
} = Object.freeze({
  lock: "lock.v2.lock",
  unlock: "lock.v2.unlock",
  rlock: "lock.v2.rlock",
  runlock: "lock.v2.runlock",
  refresh: "lock.v2.refresh",
  fence: "lock.v2.fence",
  maxToken: "lock.v2.maxToken",
  forceUnlock: "lock.v2.forceUnlock",
  stats: "lock.stats",
} as const);

/**
 * What `lock.stats` answers: the table's counters plus the node's name.
 *
 * @example
 * ```ts
 * import { LockStatsHandler } from "wsgrid/locks";
 * const stats = await grid.connection(host).request(LockStatsHandler, null);
 * console.log(stats.node, stats.writeLocks);
 * ```
 */
export interface LockServerStats extends LockTableStats {
  /** The node that answered. */
  node: string;
}

/**
 * The typed definition of the readOnly `lock.stats` handler (msgpack).
 *
 * @example
 * ```ts
 * import { LockStatsHandler } from "wsgrid/locks";
 * const stats = await grid.connection(host).request(LockStatsHandler, null);
 * ```
 */
export const LockStatsHandler: SingleDefinition<null | undefined, LockServerStats> = defineSingle<
  null | undefined,
  LockServerStats
>(LOCK_HANDLERS.stats);

/**
 * Options of {@link registerLockHandlers}.
 *
 * @example
 * ```ts
 * import { registerLockHandlers } from "wsgrid/locks";
 * const service = registerLockHandlers(grid, { leaseMs: 60_000, sweepMs: 10_000 });
 * ```
 */
export interface LockServerOptions {
  /**
   * The table to serve; pass one to inspect it or share its clock in tests.
   * Its own `leaseMs` is the lease when given.
   * @default a new LockTable with `leaseMs`
   */
  table?: LockTable;
  /**
   * The lease: a lock not refreshed for this long is dropped (its owner
   * died). Every grant and refresh returns it, and clients derive their
   * refresh schedule from it, so it is the one lease clock of the cluster.
   * @default 60000
   */
  leaseMs?: number;
  /** @deprecated the old name of {@link leaseMs}; used when `leaseMs` is not given. */
  expireAfterMs?: number;
  /**
   * The other lock nodes, asked for their highest fencing token before this
   * node grants anything (it may have restarted and lost its counters). Pass
   * `[]` to skip recovery (one lock node, or tests).
   * @default grid.hosts without grid.local
   */
  peers?: readonly string[];
  /**
   * The wire codec of `LockArgs`; every lock node and client of a cluster
   * must use the same one (the bench plugs in a text format to compare).
   * @default lockArgsCodec
   */
  codec?: LockArgsCodec;
  /**
   * How often stale locks are looked for.
   * @default 10000
   */
  sweepMs?: number;
}

/**
 * The running lock service of one node, returned by {@link registerLockHandlers}.
 *
 * @example
 * ```ts
 * import { registerLockHandlers } from "wsgrid/locks";
 * const service = registerLockHandlers(grid);
 * console.log(service.table.stats());
 * service.stop();
 * ```
 */
export interface LockService {
  /** The table the handlers serve (the local node's locks). */
  readonly table: LockTable;
  /**
   * Settles once the node grants locks: after it learned the highest fencing
   * token from enough peers (`n - n/2` of the `n - 1` others), at once when
   * there are none. Rejects when the grid closes first.
   */
  readonly ready: Promise<void>;
  /** Stops the sweep timer; `grid.close()` calls it too. Idempotent. */
  stop(): void;
}

const tables = new WeakMap<Manager, LockTable>();

/**
 * The lock table that {@link registerLockHandlers} serves on `grid`, if any.
 * `DistributedLock` uses it to lock on the local node without a network call.
 *
 * @param grid the node
 * @returns its table, or `undefined` when it serves no locks
 * @example
 * ```ts
 * import { localLockTable } from "wsgrid/locks";
 * console.log(localLockTable(grid)?.stats());
 * ```
 */
export function localLockTable(grid: Manager): LockTable | undefined {
  return tables.get(grid);
}

/**
 * Registers the lock handlers (`lock.v2.lock`, `lock.v2.unlock`,
 * `lock.v2.rlock`, `lock.v2.runlock`, `lock.v2.refresh`, `lock.v2.fence`,
 * `lock.v2.maxToken`, `lock.v2.forceUnlock`, and the readOnly `lock.stats`)
 * on `grid`, recovers the fencing-token floor from the peers, and starts the
 * sweep of expired locks.
 *
 * The sweep timer and recovery stop with `grid.close()` (when `grid.signal`
 * aborts) or with the returned `stop()`, so they never keep a process alive
 * once the grid is closed.
 *
 * @param grid the node that serves the locks
 * @param options table, lease, sweep interval, peers
 * @returns the table, `ready` and `stop()`
 * @throws {RangeError} when `leaseMs` or `sweepMs` is not a positive number
 * @throws {GridError} when a lock handler is already registered on `grid`
 * @example
 * ```ts
 * import { Manager } from "wsgrid";
 * import { registerLockHandlers } from "wsgrid/locks";
 * const grid = new Manager({ local, hosts, secret });
 * const { table, ready } = registerLockHandlers(grid, { leaseMs: 30_000, sweepMs: 5_000 });
 * await ready;
 * ```
 */
export function registerLockHandlers(grid: Manager, options: LockServerOptions = {}): LockService {
  const leaseMs = positive("leaseMs", options.leaseMs ?? options.expireAfterMs, 60_000);
  const sweepMs = positive("sweepMs", options.sweepMs, 10_000);
  const table = options.table ?? new LockTable({ leaseMs });
  const lease = table.leaseMs;
  const peers = [...(options.peers ?? grid.hosts.filter((h) => h !== grid.local))];
  const codec = options.codec ?? lockArgsCodec;

  const reply = (status: number, token: number) => encodeReply(status, lease, token);
  const single = (name: string, op: (args: LockArgs) => boolean, tokens: boolean) => {
    grid.handle(name, (req: Uint8Array, _ctx: CallContext) => {
      const args = codec.decode(req);
      if (table.recovering && tokens) return reply(RECOVERING, 0);
      return op(args) ? reply(GRANTED, tokens ? table.tokenOf(args.uid) : 0) : reply(REFUSED, 0);
    });
  };
  single(LOCK_HANDLERS.lock, (a) => table.lock(a), true);
  single(LOCK_HANDLERS.rlock, (a) => table.rlock(a), true);
  single(LOCK_HANDLERS.unlock, (a) => table.unlock(a), false);
  single(LOCK_HANDLERS.runlock, (a) => table.runlock(a), false);
  single(LOCK_HANDLERS.refresh, (a) => table.refresh(a), false);
  single(LOCK_HANDLERS.forceUnlock, (a) => table.forceUnlock(a), false);
  grid.handle(LOCK_HANDLERS.fence, (req: Uint8Array) => {
    const fence = decodeFence(req);
    if (fence === undefined) throw new ProtocolError("Cannot decode fence request: expected a float64 token then LockArgs");
    const args = codec.decode(fence.args);
    return table.fence(args, fence.token) ? reply(GRANTED, fence.token) : reply(REFUSED, 0);
  });
  grid.handle(LOCK_HANDLERS.maxToken, () => reply(GRANTED, table.maxToken()));
  grid.handle(LockStatsHandler, () => ({ ...table.stats(), node: grid.local }), { readOnly: true });
  tables.set(grid, table);

  let stopped = false;
  let timer: ReturnType<typeof setInterval> | undefined = setInterval(() => table.expire(), sweepMs);
  const recovery = new AbortController();
  const stop = () => {
    stopped = true;
    recovery.abort(new GridError("closed", "Lock service stopped"));
    if (timer === undefined) return;
    clearInterval(timer);
    timer = undefined;
  };
  if (grid.signal.aborted) stop();
  else grid.signal.addEventListener("abort", stop, { once: true });
  const ready = peers.length === 0 ? Promise.resolve() : recover(grid, table, peers, recovery.signal, () => stopped);
  // A caller that never awaits `ready` must not see an unhandled rejection on close.
  ready.catch(() => {});
  return { table, ready, stop };
}

/**
 * Refuses locks until `n - n/2` of the `n - 1` peers reported their highest
 * token (any quorum that recorded a token before this node lost its state
 * keeps at least one such peer), then raises the floor to the maximum.
 */
async function recover(
  grid: Manager,
  table: LockTable,
  peers: readonly string[],
  signal: AbortSignal,
  stopped: () => boolean,
): Promise<void> {
  table.beginRecovery();
  const n = peers.length + 1;
  const needed = n - Math.floor(n / 2);
  const heard = new Map<string, number>();
  for (let round = 0; !stopped(); round++) {
    await Promise.all(peers.filter((p) => !heard.has(p)).map(async (peer) => {
      try {
        const res = await grid.connection(peer).request(LOCK_HANDLERS.maxToken, new Uint8Array(0), { timeout: 1_000, signal });
        const r = decodeReply(res);
        if (r !== undefined) heard.set(peer, r.token);
      } catch {
        // Down or not serving locks yet: asked again next round.
      }
    }));
    if (heard.size >= needed) {
      table.recover(Math.max(0, ...heard.values()));
      return;
    }
    await new Promise<void>((resolve) => {
      const t = setTimeout(done, Math.min(1_000, 50 * 2 ** Math.min(round, 4)));
      function done() {
        clearTimeout(t);
        signal.removeEventListener("abort", done);
        resolve();
      }
      signal.addEventListener("abort", done, { once: true });
    });
  }
  signal.throwIfAborted();
}
function positive(name: string, value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== "number" || !Number.isFinite(value) || value <= 0) {
    throw new RangeError(`Cannot register lock handlers: "${name}" must be a positive number, got ${value}`);
  }
  return value;
}
