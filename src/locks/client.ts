/**
 * `DistributedLock`: a read/write lock held on a quorum of lock nodes (dsync's
 * `DRWMutex`).
 *
 * A write lock is granted when `n/2 + 1` of the `n` lock nodes grant it; a
 * read lock when `n - n/2` (rounded up half, at least 1) do, as dsync: then
 * every read quorum and every write quorum share a node, so a reader and a
 * writer can never both hold. A failed attempt releases what it got and is
 * retried with jittered exponential backoff until the timeout. While held, a
 * refresh loop tells every node the owner is alive; when fewer than a quorum
 * confirm, the lock is lost: the holder's `lost` signal is aborted and the
 * lock released.
 *
 * The local node (when it is a lock node) is served from its own
 * {@link LockTable} without a network call; remote nodes through grid
 * requests to the handlers of `server.ts`.
 *
 * @module
 */

import { GridError, TimeoutError } from "../errors.ts";
import type { Manager } from "../manager.ts";
import { type LockArgs, lockArgsCodec } from "./lock_args.ts";
import type { LockTable } from "./lock_table.ts";
import { LOCK_HANDLERS, localLockTable } from "./server.ts";

/**
 * Options of {@link DistributedLock}.
 *
 * @example
 * ```ts
 * import { DistributedLock } from "wsgrid/locks";
 * const mutex = new DistributedLock(grid, { resources: ["bucket/object"], source: "upload.ts:42" });
 * ```
 */
export interface DistributedLockOptions {
  /** The resources locked together, all or nothing (at least one). */
  resources: readonly string[];
  /**
   * The lock nodes (each serves `registerLockHandlers`).
   * @default grid.hosts
   */
  hosts?: readonly string[];
  /**
   * The holder's name, matched with the uid on unlock.
   * @default grid.local
   */
  owner?: string;
  /**
   * Where the lock is taken, for diagnostics.
   * @default ""
   */
  source?: string;
  /**
   * How often a held lock is refreshed, ms. Keep it well below the nodes'
   * `expireAfterMs`.
   * @default 10000
   */
  refreshInterval?: number;
  /**
   * Deadline of one call to one node, ms.
   * @default 5000
   */
  callTimeout?: number;
  /**
   * The local node's table, when the local node is a lock node.
   * @default the table that registerLockHandlers(grid) serves
   */
  table?: LockTable;
}

/**
 * Options of {@link DistributedLock.lock} and {@link DistributedLock.rlock}.
 *
 * @example
 * ```ts
 * const hold = await mutex.lock({ timeout: 2_000, retryMin: 10, retryMax: 200 });
 * ```
 */
export interface LockOptions {
  /**
   * Give up (with `TimeoutError`) when no quorum was reached for this long, ms.
   * @default 30000
   */
  timeout?: number;
  /**
   * Smallest pause between two attempts, ms.
   * @default 20
   */
  retryMin?: number;
  /**
   * Largest pause between two attempts, ms (the pause doubles from `retryMin`, with full jitter).
   * @default 1000
   */
  retryMax?: number;
  /** Aborting it stops trying: the call rejects with the signal's reason. */
  signal?: AbortSignal;
}

/**
 * A held lock, as returned by {@link DistributedLock.lock}.
 *
 * @example
 * ```ts
 * const hold = await mutex.lock();
 * hold.lost.addEventListener("abort", () => console.error("lock lost:", hold.lost.reason));
 * ```
 */
export interface LockHold {
  /** The uid of this acquisition on every node. */
  readonly uid: string;
  /** `true` for a write lock, `false` for a read lock. */
  readonly write: boolean;
  /** Aborted (reason: `GridError` code `"lock-lost"`) when the refresh loop loses the quorum. */
  readonly lost: AbortSignal;
  /** Attempts it took, the successful one included. */
  readonly attempts: number;
  /** Time from the call to the grant, ms. */
  readonly waitedMs: number;
}

/** Result of one call to one node: granted, refused, or failed (down, timeout, remote error). */
type Reply = true | false | Error;

interface Held {
  hold: LockHold;
  args: LockArgs;
  bytes: Uint8Array;
  controller: AbortController;
  timer: ReturnType<typeof setTimeout> | undefined;
}

/**
 * A distributed read/write lock over a set of resources (dsync's `DRWMutex`).
 * One instance holds at most one lock at a time; use one instance per
 * concurrent holder. While a lock is held its refresh timer runs (and keeps
 * the process alive) until `unlock()` or until the lock is lost.
 *
 * @example
 * ```ts
 * import { DistributedLock, registerLockHandlers } from "wsgrid/locks";
 * registerLockHandlers(grid);
 * const mutex = new DistributedLock(grid, { resources: ["bucket/object"] });
 * const { lost } = await mutex.lock({ timeout: 5_000 });
 * try {
 *   await work({ signal: lost });
 * } finally {
 *   await mutex.unlock();
 * }
 * ```
 */
export class DistributedLock {
  /** The resources locked together. */
  readonly resources: readonly string[];
  /** The lock nodes. */
  readonly hosts: readonly string[];
  /** The holder's name. */
  readonly owner: string;
  /** Where the lock is taken. */
  readonly source: string;
  private readonly grid: Manager;
  private readonly refreshInterval: number;
  private readonly callTimeout: number;
  private readonly table: LockTable | undefined;
  private held: Held | null = null;
  private busy = false;

  /**
   * Makes a lock over `options.resources`; nothing is locked until {@link lock} or {@link rlock}.
   *
   * @param grid the local node
   * @param options resources, lock hosts, owner, source, intervals
   * @throws {TypeError} when `resources` is empty or a host is not on the grid
   * @throws {RangeError} when an interval is not a positive number
   */
  constructor(grid: Manager, options: DistributedLockOptions) {
    const resources = options?.resources;
    if (!Array.isArray(resources) || resources.length === 0 || resources.some((r) => typeof r !== "string")) {
      throw new TypeError("Cannot create DistributedLock: \"resources\" must be a non-empty array of strings");
    }
    const hosts = options.hosts ?? grid.hosts;
    if (hosts.length === 0) throw new TypeError("Cannot create DistributedLock: \"hosts\" is empty");
    if (new Set(hosts).size !== hosts.length) throw new TypeError("Cannot create DistributedLock: \"hosts\" has duplicates");
    for (const h of hosts) {
      if (!grid.hosts.includes(h)) throw new TypeError(`Cannot create DistributedLock: host "${h}" is not on the grid`);
    }
    this.grid = grid;
    this.resources = [...resources];
    this.hosts = [...hosts];
    this.owner = options.owner ?? grid.local;
    this.source = options.source ?? "";
    this.refreshInterval = positive("refreshInterval", options.refreshInterval, 10_000);
    this.callTimeout = positive("callTimeout", options.callTimeout, 5_000);
    this.table = options.table ?? localLockTable(grid);
    if (hosts.includes(grid.local) && this.table === undefined) {
      throw new TypeError(
        "Cannot create DistributedLock: the local node is a lock host but serves no locks (call registerLockHandlers first)",
      );
    }
  }

  /** Nodes that must grant a write lock: `n/2 + 1`. */
  get writeQuorum(): number {
    return Math.floor(this.hosts.length / 2) + 1;
  }

  /** Nodes that must grant a read lock: `n - n/2` (dsync), at least 1. */
  get readQuorum(): number {
    return Math.max(1, this.hosts.length - Math.floor(this.hosts.length / 2));
  }

  /** Whether a lock is held now. */
  get locked(): boolean {
    return this.held !== null;
  }

  /**
   * Acquires the write lock on a quorum of nodes, retrying until `timeout`.
   *
   * @param options timeout, retry pauses, signal
   * @returns the hold, with its `lost` signal
   * @throws {TimeoutError} when no quorum was reached in time
   * @throws {GridError} (code `"lock-busy"`) when this instance already holds or is acquiring
   * @example
   * ```ts
   * const { lost } = await mutex.lock({ timeout: 1_000 });
   * ```
   */
  lock(options: LockOptions = {}): Promise<LockHold> {
    return this.acquire(true, options);
  }

  /**
   * Acquires a read lock (shared with other readers, exclusive of writers).
   *
   * @param options timeout, retry pauses, signal
   * @returns the hold, with its `lost` signal
   * @throws {TimeoutError} when no quorum was reached in time
   * @throws {GridError} (code `"lock-busy"`) when this instance already holds or is acquiring
   * @example
   * ```ts
   * const hold = await mutex.rlock({ timeout: 1_000 });
   * ```
   */
  rlock(options: LockOptions = {}): Promise<LockHold> {
    return this.acquire(false, options);
  }

  /**
   * Releases the held lock on every node (best effort: a node that is down
   * drops it when it expires). Does nothing when no lock is held.
   *
   * @example
   * ```ts
   * await mutex.unlock();
   * ```
   */
  async unlock(): Promise<void> {
    const held = this.held;
    if (held === null) return;
    this.held = null;
    if (held.timer !== undefined) clearTimeout(held.timer);
    await this.release(held.hold.write, held.args, held.bytes, this.hosts);
  }

  /** Tries until a quorum grants, the timeout passes or the signal aborts. */
  private async acquire(write: boolean, options: LockOptions): Promise<LockHold> {
    if (this.busy || this.held !== null) {
      throw new GridError("lock-busy", `Cannot lock ${this.describe()}: this DistributedLock already holds or is acquiring`);
    }
    const timeout = positive("timeout", options.timeout, 30_000);
    const retryMin = positive("retryMin", options.retryMin, 20);
    const retryMax = Math.max(retryMin, positive("retryMax", options.retryMax, 1_000));
    const signal = options.signal;
    const quorum = write ? this.writeQuorum : this.readQuorum;
    this.busy = true;
    const started = performance.now();
    let attempts = 0;
    let last = "";
    try {
      for (;;) {
        signal?.throwIfAborted();
        attempts++;
        const args: LockArgs = {
          uid: crypto.randomUUID(),
          resources: [...this.resources],
          source: this.source,
          owner: this.owner,
          quorum,
        };
        const bytes = lockArgsCodec.encode(args);
        const left = timeout - (performance.now() - started);
        const callTimeout = Math.max(1, Math.min(this.callTimeout, left));
        const replies = await Promise.all(
          this.hosts.map((h) => this.call(h, write ? "lock" : "rlock", args, bytes, callTimeout)),
        );
        const granted = replies.filter((r) => r === true).length;
        if (granted >= quorum && !signal?.aborted) {
          const controller = new AbortController();
          const hold: LockHold = {
            uid: args.uid,
            write,
            lost: controller.signal,
            attempts,
            waitedMs: performance.now() - started,
          };
          const held: Held = { hold, args, bytes, controller, timer: undefined };
          this.held = held;
          this.scheduleRefresh(held);
          return hold;
        }
        // Not enough: give back what was granted, and what may have been
        // (a timed-out call can still be granted later).
        const release = this.hosts.filter((_, i) => replies[i] !== false);
        await this.release(write, args, bytes, release);
        const failed = replies.filter((r) => r instanceof Error).length;
        last = `${granted} of ${this.hosts.length} granted, ${failed} failed, quorum ${quorum}`;
        signal?.throwIfAborted();
        const elapsed = performance.now() - started;
        if (elapsed >= timeout) {
          throw new TimeoutError(
            `Cannot ${write ? "lock" : "rlock"} ${this.describe()}: no quorum within ${timeout} ms ` +
              `after ${attempts} attempts (last: ${last})`,
          );
        }
        const ceiling = Math.min(retryMax, retryMin * 2 ** Math.min(attempts - 1, 20));
        const pause = retryMin + Math.random() * (ceiling - retryMin);
        await sleep(Math.min(pause, timeout - elapsed), signal);
      }
    } finally {
      this.busy = false;
    }
  }

  /** Arms the next refresh of `held`. */
  private scheduleRefresh(held: Held): void {
    held.timer = setTimeout(() => void this.refresh(held), this.refreshInterval);
  }

  /** Refreshes `held` on every node; below quorum, aborts its `lost` signal and releases it. */
  private async refresh(held: Held): Promise<void> {
    held.timer = undefined;
    if (this.held !== held) return;
    const replies = await Promise.all(
      this.hosts.map((h) => this.call(h, "refresh", held.args, held.bytes, this.callTimeout)),
    );
    if (this.held !== held) return;
    const confirmed = replies.filter((r) => r === true).length;
    const quorum = held.hold.write ? this.writeQuorum : this.readQuorum;
    if (confirmed >= quorum) {
      this.scheduleRefresh(held);
      return;
    }
    this.held = null;
    held.controller.abort(
      new GridError(
        "lock-lost",
        `Lock lost on ${this.describe()}: refresh confirmed by ${confirmed} of ${this.hosts.length} nodes, quorum ${quorum}`,
      ),
    );
    await this.release(held.hold.write, held.args, held.bytes, this.hosts);
  }

  /** Unlocks on `hosts` (best effort). */
  private async release(write: boolean, args: LockArgs, bytes: Uint8Array, hosts: readonly string[]): Promise<void> {
    await Promise.all(hosts.map((h) => this.call(h, write ? "unlock" : "runlock", args, bytes, this.callTimeout)));
  }

  /** One call to one node; never rejects. */
  private async call(
    host: string,
    op: "lock" | "rlock" | "unlock" | "runlock" | "refresh",
    args: LockArgs,
    bytes: Uint8Array,
    timeout: number,
  ): Promise<Reply> {
    if (host === this.grid.local) {
      const table = this.table!;
      try {
        return table[op](args);
      } catch (e) {
        return e instanceof Error ? e : new Error(String(e));
      }
    }
    try {
      const res = await this.grid.connection(host).request(LOCK_HANDLERS[op], bytes, { timeout });
      return res.length === 1 && res[0] === 1;
    } catch (e) {
      return e instanceof Error ? e : new Error(String(e));
    }
  }

  /** The resources, for messages. */
  private describe(): string {
    const shown = this.resources.slice(0, 3).map((r) => `"${r}"`).join(", ");
    return this.resources.length > 3 ? `${shown} and ${this.resources.length - 3} more` : shown;
  }
}

function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", abort);
    };
    const timer = setTimeout(() => {
      done();
      resolve();
    }, Math.max(0, ms));
    const abort = () => {
      done();
      reject(signal!.reason);
    };
    signal?.addEventListener("abort", abort, { once: true });
  });
}

function positive(name: string, value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== "number" || !Number.isFinite(value) || value <= 0) {
    throw new RangeError(`Cannot use DistributedLock: "${name}" must be a positive number, got ${value}`);
  }
  return value;
}
