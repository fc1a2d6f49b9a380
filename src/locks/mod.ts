/**
 * `wsgrid/locks`: a distributed read/write lock service on the grid, after
 * MinIO's dsync.
 *
 * - {@link LockArgs} and {@link lockArgsCodec}: the argument of every lock
 *   call, in a compact binary format (no text scanning).
 * - {@link LockTable}: the locks of one node.
 * - {@link registerLockHandlers}: serves a table on a node (`lock.v2.lock`,
 *   `lock.v2.unlock`, `lock.v2.rlock`, `lock.v2.runlock`, `lock.v2.refresh`,
 *   `lock.v2.fence`, `lock.v2.maxToken`, `lock.v2.forceUnlock`, readOnly
 *   `lock.stats`) and expires stale locks.
 * - {@link DistributedLock}: takes a write lock on `n/2 + 1` nodes or a read
 *   lock on `n - n/2`, returning at a quorum of grants; hands out a fencing
 *   `token` and the lease's `expiresAt`; refreshes on the lease the nodes
 *   decide and aborts the holder's `lost` signal when the quorum is gone; a
 *   hold is `AsyncDisposable` (`await using hold = await mutex.lock()`).
 *   docs/LOCKS.md has the guarantees and the fencing argument.
 *
 * @example
 * ```ts
 * import { Manager } from "wsgrid";
 * import { serve } from "wsgrid/serve";
 * import { DistributedLock, registerLockHandlers } from "wsgrid/locks";
 *
 * const grid = new Manager({ local, hosts, secret });
 * const { ready } = registerLockHandlers(grid, { leaseMs: 30_000, sweepMs: 5_000 });
 * await serve(grid, { port: 9000 });
 * await ready;
 *
 * const mutex = new DistributedLock(grid, { resources: ["bucket/object"] });
 * const { lost, token } = await mutex.lock({ timeout: 10_000 });
 * try {
 *   await store.put("bucket/object", data, { token, signal: lost });
 * } finally {
 *   await mutex.unlock();
 * }
 * ```
 *
 * @module
 */

export * from "./lock_args.ts";
export * from "./lock_args_msgpack.ts";
export * from "./lock_table.ts";
export * from "./server.ts";
export * from "./client.ts";
