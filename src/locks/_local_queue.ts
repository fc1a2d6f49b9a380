/**
 * A FIFO of the write lockers of one process on the same resources and lock
 * nodes: only the head contends for the distributed lock, the others wait
 * here and go next when it unlocks. Without it, concurrent holders in one
 * process race each other on every node, split the votes and retry blindly
 * (what dominates contended throughput and tail latency); with it, they take
 * turns, and only holders in different processes contend on the nodes.
 *
 * @module
 */

import type { Manager } from "../manager.ts";

interface Waiter {
  resolve(): void;
}

interface Queue {
  busy: boolean;
  waiters: Waiter[];
}

const byGrid = new WeakMap<Manager, Map<string, Queue>>();

/** The key of a lock's queue: its resources (as a set) and its lock nodes. */
export function queueKey(resources: readonly string[], hosts: readonly string[]): string {
  return [...new Set(resources)].sort().join("\u0000") + "\u0001" + hosts.join("\u0000");
}

/**
 * Waits for the turn of `key` on `grid`, until `ms` passes (`false`) or
 * `signal` aborts (rejects with its reason, or throws when already aborted).
 * `true`: the caller has the turn and must {@link leave} once; a free turn is
 * `true` at once, not a promise, so an uncontended lock costs no extra
 * microtask turn (its calls then share the frames of the other lockers').
 */
export function enter(grid: Manager, key: string, ms: number, signal: AbortSignal | undefined): true | Promise<boolean> {
  let queues = byGrid.get(grid);
  if (queues === undefined) {
    queues = new Map();
    byGrid.set(grid, queues);
  }
  let q = queues.get(key);
  if (q === undefined) {
    q = { busy: false, waiters: [] };
    queues.set(key, q);
  }
  signal?.throwIfAborted();
  if (!q.busy) {
    q.busy = true;
    return true;
  }
  const queue = q;
  return new Promise<boolean>((resolve, reject) => {
    const waiter: Waiter = {
      resolve: () => {
        done();
        resolve(true);
      },
    };
    const drop = () => {
      const i = queue.waiters.indexOf(waiter);
      if (i >= 0) queue.waiters.splice(i, 1);
      done();
    };
    const timer = setTimeout(() => {
      drop();
      resolve(false);
    }, Math.max(0, ms));
    const abort = () => {
      drop();
      reject(signal!.reason);
    };
    function done() {
      clearTimeout(timer);
      signal?.removeEventListener("abort", abort);
    }
    signal?.addEventListener("abort", abort, { once: true });
    queue.waiters.push(waiter);
  });
}

/** Gives the turn of `key` to the next waiter, or frees it. */
export function leave(grid: Manager, key: string): void {
  const queues = byGrid.get(grid);
  const q = queues?.get(key);
  if (q === undefined) return;
  const next = q.waiters.shift();
  if (next !== undefined) {
    next.resolve();
    return;
  }
  q.busy = false;
  queues!.delete(key);
}
