/**
 * The lock service of one node: the grid handlers over a {@link LockTable}.
 *
 * Every node of a lock cluster calls {@link registerLockHandlers} once. Each
 * handler takes {@link lockArgsCodec} bytes and answers one byte, `1` when the
 * lock was granted (or the call succeeded) and `0` when it was refused; a
 * malformed payload fails the call with a `RemoteError` carrying the
 * `ProtocolError` message. A sweep timer drops locks whose owner stopped
 * refreshing them (dsync's `expireOldLocks`).
 *
 * @module
 */

import { defineSingle, type SingleDefinition } from "../handlers/define.ts";
import type { Manager } from "../manager.ts";
import type { CallContext } from "../types.ts";
import { type LockArgs, lockArgsCodec } from "./lock_args.ts";
import { LockTable, type LockTableStats } from "./lock_table.ts";

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
  readonly lock: "lock.lock";
  readonly unlock: "lock.unlock";
  readonly rlock: "lock.rlock";
  readonly runlock: "lock.runlock";
  readonly refresh: "lock.refresh";
  readonly forceUnlock: "lock.forceUnlock";
  readonly stats: "lock.stats";
} = Object.freeze({
  lock: "lock.lock",
  unlock: "lock.unlock",
  rlock: "lock.rlock",
  runlock: "lock.runlock",
  refresh: "lock.refresh",
  forceUnlock: "lock.forceUnlock",
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
 * const service = registerLockHandlers(grid, { expireAfterMs: 60_000, sweepMs: 10_000 });
 * ```
 */
export interface LockServerOptions {
  /**
   * The table to serve; pass one to inspect it or share its clock in tests.
   * @default a new LockTable
   */
  table?: LockTable;
  /**
   * A lock not refreshed for this long is dropped (its owner died). Keep it
   * several times the clients' refresh interval.
   * @default 60000
   */
  expireAfterMs?: number;
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

const GRANTED = new Uint8Array([1]);
const REFUSED = new Uint8Array([0]);

/**
 * Registers the lock handlers (`lock.lock`, `lock.unlock`, `lock.rlock`,
 * `lock.runlock`, `lock.refresh`, `lock.forceUnlock`, and the readOnly
 * `lock.stats`) on `grid` and starts the sweep of stale locks.
 *
 * The sweep timer stops with `grid.close()` (the grid's `close` is wrapped on
 * this instance) or with the returned `stop()`, so it never keeps a process
 * alive by itself once the grid is closed.
 *
 * @param grid the node that serves the locks
 * @param options table, expiry and sweep interval
 * @returns the table and `stop()`
 * @throws {RangeError} when `expireAfterMs` or `sweepMs` is not a positive number
 * @throws {GridError} when a lock handler is already registered on `grid`
 * @example
 * ```ts
 * import { Manager } from "wsgrid";
 * import { registerLockHandlers } from "wsgrid/locks";
 * const grid = new Manager({ local, hosts, secret });
 * const { table, stop } = registerLockHandlers(grid, { expireAfterMs: 30_000, sweepMs: 5_000 });
 * ```
 */
export function registerLockHandlers(grid: Manager, options: LockServerOptions = {}): LockService {
  const expireAfterMs = positive("expireAfterMs", options.expireAfterMs, 60_000);
  const sweepMs = positive("sweepMs", options.sweepMs, 10_000);
  const table = options.table ?? new LockTable();

  const single = (name: string, op: (args: LockArgs) => boolean) => {
    grid.handle(name, (req: Uint8Array, _ctx: CallContext) => op(lockArgsCodec.decode(req)) ? GRANTED : REFUSED);
  };
  single(LOCK_HANDLERS.lock, (a) => table.lock(a));
  single(LOCK_HANDLERS.unlock, (a) => table.unlock(a));
  single(LOCK_HANDLERS.rlock, (a) => table.rlock(a));
  single(LOCK_HANDLERS.runlock, (a) => table.runlock(a));
  single(LOCK_HANDLERS.refresh, (a) => table.refresh(a));
  single(LOCK_HANDLERS.forceUnlock, (a) => table.forceUnlock(a));
  grid.handle(LockStatsHandler, () => ({ ...table.stats(), node: grid.local }), { readOnly: true });
  tables.set(grid, table);

  let timer: ReturnType<typeof setInterval> | undefined = setInterval(
    () => table.expireOlderThan(expireAfterMs),
    sweepMs,
  );
  const stop = () => {
    if (timer === undefined) return;
    clearInterval(timer);
    timer = undefined;
  };
  // The Manager has no "close" event: wrap close() on this instance so the
  // sweep ends with the grid.
  const close = grid.close;
  grid.close = function (this: Manager): Promise<void> {
    stop();
    return close.call(this);
  };
  return { table, stop };
}

function positive(name: string, value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== "number" || !Number.isFinite(value) || value <= 0) {
    throw new RangeError(`Cannot register lock handlers: "${name}" must be a positive number, got ${value}`);
  }
  return value;
}
