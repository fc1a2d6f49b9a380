/**
 * `DistributedLock`: a read/write lock held on a quorum of lock nodes (dsync's
 * `DRWMutex`).
 *
 * A write lock is granted when `n/2 + 1` of the `n` lock nodes grant it; a
 * read lock when `n - n/2` (rounded up half, at least 1) do, as dsync: then
 * every read quorum and every write quorum share a node, so a reader and a
 * writer can never both hold. An attempt returns as soon as a quorum granted
 * (later grants are kept: refresh and unlock go to every node), fails as soon
 * as a quorum is out of reach, and is bounded by `attemptTimeout`; a failed
 * attempt is released in the background and retried with jittered
 * exponential backoff until the timeout. The caller's `signal` and `timeout`
 * bound every step, each per-node call included.
 *
 * One lease clock: the lock nodes decide the lease and return it with every
 * grant and refresh. The hold's `expiresAt` is the send time of the last
 * round a quorum confirmed plus the shortest lease they reported (on this
 * process's monotonic clock), the refresh schedule derives from it, and
 * `lost` aborts no later than `expiresAt` when no refresh got through.
 *
 * Fencing: a write grant carries each node's proposal (one more than the
 * highest token it saw for the resources); the token is the largest
 * proposal, and when the quorum's proposals differ a second round records it
 * on a quorum before the lock is handed out (docs/LOCKS.md has the argument).
 *
 * The local node (when it is a lock node) is served from its own
 * {@link LockTable} without a network call; remote nodes through grid
 * requests to the handlers of `server.ts`.
 *
 * @module
 */

import { GridError, TimeoutError } from "../errors.ts";
import type { Manager } from "../manager.ts";
import { type LockArgs, type LockArgsCodec, lockArgsCodec } from "./lock_args.ts";
import type { LockTable } from "./lock_table.ts";
import { LOCK_HANDLERS, localLockTable } from "./server.ts";
import { decodeReply, encodeFence, GRANTED, type LockReply } from "./_lock_reply.ts";
import { enter, leave, queueKey } from "./_local_queue.ts";

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
   * How often a held lock is refreshed, ms. The lease comes from the lock
   * nodes: a lock whose `refreshInterval + callTimeout` is not below the
   * granted lease is refused with `RangeError` (a live holder could lapse).
   * @default a quarter of the granted lease
   */
  refreshInterval?: number;
  /**
   * Deadline of one refresh or unlock call to one node, ms (capped at a
   * quarter of the lease for refreshes).
   * @default 5000
   */
  callTimeout?: number;
  /**
   * Deadline of one acquire attempt (all its per-node calls), ms, as dsync's
   * 1 s.
   * @default 1000
   */
  attemptTimeout?: number;
  /**
   * How long an unconfirmed unlock is retried in the background, ms (dsync: 30 s).
   * @default 30000
   */
  unlockRetryMs?: number;
  /**
   * The wire codec of `LockArgs`, the same as the lock nodes' (see `registerLockHandlers`).
   * @default lockArgsCodec
   */
  codec?: LockArgsCodec;
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
  /**
   * Fencing token: for a write lock, strictly greater than the token of every
   * earlier write holder of any of its resources; for a read lock, the token
   * of the latest write it follows. A safe integer; pass it to the storage
   * you protect, which rejects writes with a token below the last it took.
   */
  readonly token: number;
  /**
   * The earliest moment any granting node may drop the lock, on this
   * process's `performance.now()` clock: the send time of the last grant or
   * refresh round a quorum confirmed plus the lease. Moves on with each
   * refresh; `lost` aborts by then at the latest when no refresh got through.
   */
  readonly expiresAt: number;
  /**
   * Unlocks as {@link DistributedLock.unlock} does, so that a hold can be
   * scoped: `await using hold = await mutex.lock();` releases it when the
   * block ends, by return or throw. Does nothing when this hold is no longer
   * the instance's lock (already unlocked or lost; a later hold of the same
   * instance is left alone).
   *
   * @example
   * ```ts
   * {
   *   await using hold = await mutex.lock({ timeout: 1_000 });
   *   await store.put("key", "value", { token: hold.token, signal: hold.lost });
   * } // unlocked here
   * ```
   */
  [Symbol.asyncDispose](): Promise<void>;
}

/**
 * Unlock bookkeeping of one grid's lock clients, from {@link lockClientStats}.
 *
 * @example
 * ```ts
 * import { lockClientStats } from "wsgrid/locks";
 * console.log(lockClientStats(grid).unlockUnconfirmed);
 * ```
 */
export interface LockClientStats {
  /** Unlock calls to one node retried in the background (after a failed first try). */
  unlockRetries: number;
  /** Unlocks to one node confirmed by a background retry. */
  unlockConfirmedLate: number;
  /** Unlocks to one node never confirmed within `unlockRetryMs` (the node drops it at lease end). */
  unlockUnconfirmed: number;
  /** Unlocks to one node being retried now. */
  unlockPending: number;
}

const clientStats = new WeakMap<Manager, LockClientStats>();

function statsOf(grid: Manager): LockClientStats {
  let s = clientStats.get(grid);
  if (s === undefined) {
    s = { unlockRetries: 0, unlockConfirmedLate: 0, unlockUnconfirmed: 0, unlockPending: 0 };
    clientStats.set(grid, s);
  }
  return s;
}

/**
 * The unlock counters of the lock clients of `grid`.
 *
 * @param grid the node the clients run on
 * @returns a copy of its counters
 * @example
 * ```ts
 * import { lockClientStats } from "wsgrid/locks";
 * const { unlockPending, unlockUnconfirmed } = lockClientStats(grid);
 * ```
 */
export function lockClientStats(grid: Manager): LockClientStats {
  return { ...statsOf(grid) };
}

/** Result of one call to one node: a reply, or failed (down, timeout, remote error, abort). */
type Reply = LockReply | Error;

type Op = "lock" | "rlock" | "unlock" | "runlock" | "refresh";

interface Held {
  hold: LockHold;
  args: LockArgs;
  bytes: Uint8Array;
  /** Made when `lost` is first read or aborted: most holds never need one. */
  controller: AbortController | undefined;
  expiresAt: number;
  refreshEvery: number;
  refreshTimeout: number;
  /** The next refresh; it fires before `expiresAt`, and a late one (a paused process) loses the lock. */
  timer: ReturnType<typeof setTimeout> | undefined;
  /** Armed only while a refresh round is in flight: `lost` at `expiresAt` if it has not settled. */
  lapse: ReturnType<typeof setTimeout> | undefined;
  unhook: () => void;
}

const NOOP = (): void => {};
/** Per grid, what its close stops: held locks' timers, background unlock retries. */
const closeHooks = new WeakMap<Manager, Set<() => void>>();

/**
 * Calls `hook` when `grid` closes (at once when it is closed): one listener on
 * `grid.signal` per grid, so a hold costs a set entry, not an event listener.
 *
 * @returns what unregisters the hook
 */
function onGridClose(grid: Manager, hook: () => void): () => void {
  if (grid.signal.aborted) {
    hook();
    return NOOP;
  }
  let hooks = closeHooks.get(grid);
  if (hooks === undefined) {
    const created = new Set<() => void>();
    hooks = created;
    closeHooks.set(grid, created);
    grid.signal.addEventListener("abort", () => {
      for (const h of [...created]) h();
      created.clear();
    }, { once: true });
  }
  const set = hooks;
  set.add(hook);
  return () => set.delete(hook);
}

/**
 * A distributed read/write lock over a set of resources (dsync's `DRWMutex`).
 * One instance holds at most one lock at a time; use one instance per
 * concurrent holder. While a lock is held its refresh timer runs until
 * `unlock()`, until the lock is lost, or until `grid.close()`.
 *
 * @example
 * ```ts
 * import { DistributedLock, registerLockHandlers } from "wsgrid/locks";
 * registerLockHandlers(grid);
 * const mutex = new DistributedLock(grid, { resources: ["bucket/object"] });
 * const { lost, token } = await mutex.lock({ timeout: 5_000 });
 * try {
 *   await store.put("key", "value", { token, signal: lost });
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
  private readonly refreshInterval: number | undefined;
  private readonly callTimeout: number;
  private readonly attemptTimeout: number;
  private readonly unlockRetryMs: number;
  private readonly table: LockTable | undefined;
  private readonly codec: LockArgsCodec;
  private readonly queueKey: string;
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
    this.refreshInterval = options.refreshInterval === undefined
      ? undefined
      : positive("refreshInterval", options.refreshInterval, 0);
    this.callTimeout = positive("callTimeout", options.callTimeout, 5_000);
    this.attemptTimeout = positive("attemptTimeout", options.attemptTimeout, 1_000);
    this.unlockRetryMs = positive("unlockRetryMs", options.unlockRetryMs, 30_000);
    this.table = options.table ?? localLockTable(grid);
    this.codec = options.codec ?? lockArgsCodec;
    this.queueKey = queueKey(this.resources, this.hosts);
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
   * @returns the hold, with its `lost` signal, fencing `token` and `expiresAt`
   * @throws {TimeoutError} when no quorum was reached in time
   * @throws {RangeError} when the granted lease is too short for `refreshInterval + callTimeout`
   * @throws {GridError} (code `"lock-busy"`) when this instance already holds or is acquiring
   * @example
   * ```ts
   * const { lost, token } = await mutex.lock({ timeout: 1_000 });
   * ```
   */
  lock(options: LockOptions = {}): Promise<LockHold> {
    return this.acquire(true, options);
  }

  /**
   * Acquires a read lock (shared with other readers, exclusive of writers).
   *
   * @param options timeout, retry pauses, signal
   * @returns the hold, with its `lost` signal, `token` (of the latest write) and `expiresAt`
   * @throws {TimeoutError} when no quorum was reached in time
   * @throws {RangeError} when the granted lease is too short for `refreshInterval + callTimeout`
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
   * Releases the held lock on every node. Waits at most `callTimeout` for the
   * first try; a node that did not confirm is retried in the background with
   * jitter for up to `unlockRetryMs` (see {@link lockClientStats}); after
   * that it drops the lock when its lease ends. Does nothing when no lock is
   * held.
   *
   * @example
   * ```ts
   * await mutex.unlock();
   * ```
   */
  async unlock(): Promise<void> {
    const held = this.held;
    if (held === null) return;
    this.drop(held);
    await this.release(held.hold.write, held.args, held.bytes, this.hosts, this.callTimeout);
  }

  /** Stops the timers of `held` and forgets it. */
  private drop(held: Held): void {
    if (this.held === held) this.held = null;
    if (held.timer !== undefined) clearTimeout(held.timer);
    if (held.lapse !== undefined) clearTimeout(held.lapse);
    held.timer = held.lapse = undefined;
    held.unhook();
    held.unhook = NOOP;
    if (held.hold.write) leave(this.grid, this.queueKey);
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
    const deadline = started + timeout;
    let attempts = 0;
    let last = "";
    // Write lockers of this process on the same lock take turns here (see _local_queue.ts).
    let queued = false;
    let holding = false;
    try {
      if (write) {
        const turn = enter(this.grid, this.queueKey, timeout, signal);
        queued = turn === true || await turn;
        if (!queued) {
          throw new TimeoutError(`Cannot lock ${this.describe()}: still behind other holders of this process after ${timeout} ms`);
        }
      }
      for (;;) {
        signal?.throwIfAborted();
        if (this.grid.signal.aborted) throw new GridError("closed", `Cannot lock ${this.describe()}: the grid is closed`);
        attempts++;
        const args: LockArgs = {
          uid: crypto.randomUUID(),
          resources: [...this.resources],
          source: this.source,
          owner: this.owner,
          quorum,
        };
        const bytes = this.codec.encode(args);
        const budget = Math.max(1, Math.min(this.attemptTimeout, deadline - performance.now()));
        const outcome = await this.attempt(write, args, bytes, quorum, budget, signal);
        if (outcome.ok) {
          const hold = this.hold(write, args, bytes, outcome, attempts, started);
          if (hold !== undefined) {
            holding = true;
            return hold;
          }
          last = "the token round reached no quorum before the lease ran out";
        } else {
          last = outcome.why;
        }
        signal?.throwIfAborted();
        const now = performance.now();
        if (now >= deadline) {
          throw new TimeoutError(
            `Cannot ${write ? "lock" : "rlock"} ${this.describe()}: no quorum within ${timeout} ms ` +
              `after ${attempts} attempts (last: ${last})`,
          );
        }
        const ceiling = Math.min(retryMax, retryMin * 2 ** Math.min(attempts - 1, 20));
        const pause = retryMin + Math.random() * (ceiling - retryMin);
        await sleep(Math.min(pause, deadline - now), signal);
      }
    } finally {
      this.busy = false;
      if (queued && !holding) leave(this.grid, this.queueKey);
    }
  }

  /**
   * One attempt: asks every node, settles as soon as a quorum granted (then
   * the token round when needed) or is out of reach, at `budget` ms, or when
   * `signal` aborts. What a failed attempt may hold is released in the
   * background.
   */
  private async attempt(
    write: boolean,
    args: LockArgs,
    bytes: Uint8Array,
    quorum: number,
    budget: number,
    signal: AbortSignal | undefined,
  ): Promise<Attempt> {
    const sentAt = performance.now();
    const end = sentAt + budget;
    const n = this.hosts.length;
    const replies: (Reply | undefined)[] = new Array(n).fill(undefined);
    let finish!: (outcome: Attempt) => void;
    const settled = new Promise<Attempt>((resolve) => finish = resolve);
    let done = false;
    let granted = 0;
    let refused = 0;
    let failed = 0;
    const grants: LockReply[] = [];
    const why = () => `${granted} of ${n} granted, ${failed} failed, quorum ${quorum}`;
    const settle = (outcome: Attempt) => {
      if (done) return;
      done = true;
      finish(outcome);
    };
    // Every per-node call is bounded by `budget` and gets the caller's signal, so the calls
    // themselves end the attempt in time: no timer or controller of its own (one fewer of each
    // per acquire). A local call answers at once; the listener covers an abort while only it
    // and calls already failed are in.
    const onAbort = () => settle({ ok: false, why: "aborted" });
    signal?.addEventListener("abort", onAbort, { once: true });
    const op = write ? "lock" : "rlock";
    const onReply = (i: number, r: Reply) => {
      replies[i] = r;
      if (done) return;
      if (r instanceof Error) failed++;
      else if (r.status === GRANTED) {
        granted++;
        grants.push(r);
      } else refused++;
      if (granted >= quorum) settle({ ok: true, sentAt, grants: grants.slice(), replies, end });
      else if (refused + failed > n - quorum) {
        settle({ ok: false, why: r instanceof TimeoutError ? `attempt timed out after ${Math.round(budget)} ms (${why()})` : why() });
      }
    };
    for (let i = 0; i < n; i++) {
      const host = this.hosts[i];
      if (host === this.grid.local) onReply(i, this.callLocal(op, args));
      else void this.callRemote(host, op, bytes, budget, signal).then((r) => onReply(i, r));
    }
    let outcome = await settled;
    signal?.removeEventListener("abort", onAbort);
    if (outcome.ok && write) outcome = await this.fence(args, bytes, quorum, outcome, signal, why);
    if (!outcome.ok || signal?.aborted) {
      // Refused nodes hold nothing; every other may (a call in flight can still be granted).
      const release = this.hosts.filter((_, i) => {
        const r = replies[i];
        return r === undefined || r instanceof Error || r.status === GRANTED;
      });
      void this.release(write, args, bytes, release, this.callTimeout);
      if (outcome.ok) return { ok: false, why: "aborted" };
    }
    return outcome;
  }

  /**
   * The fencing round: the token is the largest proposal of the quorum that
   * granted; when they all proposed it, every one of them already recorded
   * it (one round). Otherwise it is recorded on a quorum of the granting
   * nodes (`lock.v2.fence`) before the lock is handed out.
   */
  private async fence(
    args: LockArgs,
    bytes: Uint8Array,
    quorum: number,
    outcome: Granted,
    signal: AbortSignal | undefined,
    why: () => string,
  ): Promise<Attempt> {
    const token = Math.max(...outcome.grants.map((g) => g.token));
    if (outcome.grants.every((g) => g.token === token)) return { ...outcome, token };
    const granting = this.hosts.filter((_, i) => {
      const r = outcome.replies[i];
      return r !== undefined && !(r instanceof Error) && r.status === GRANTED;
    });
    const budget = Math.max(1, outcome.end - performance.now());
    const payload = encodeFence(token, bytes);
    let confirmed = 0;
    let failed = 0;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const ok = await new Promise<boolean>((resolve) => {
      timer = setTimeout(() => resolve(false), budget);
      signal?.addEventListener("abort", () => resolve(false), { once: true });
      for (const host of granting) {
        void this.fenceOne(host, args, token, payload, budget, signal).then((yes) => {
          if (yes) confirmed++;
          else failed++;
          if (confirmed >= quorum) resolve(true);
          else if (failed > granting.length - quorum) resolve(false);
        });
      }
    });
    clearTimeout(timer);
    return ok ? { ...outcome, token } : { ok: false, why: `token ${token} recorded by ${confirmed} nodes (${why()})` };
  }

  /** Records `token` on one node; `true` when it did. */
  private async fenceOne(
    host: string,
    args: LockArgs,
    token: number,
    payload: Uint8Array,
    timeout: number,
    signal: AbortSignal | undefined,
  ): Promise<boolean> {
    if (host === this.grid.local) return this.table!.fence(args, token);
    try {
      const res = await this.grid.connection(host).request(LOCK_HANDLERS.fence, payload, { timeout, signal });
      return decodeReply(res)?.status === GRANTED;
    } catch {
      return false;
    }
  }

  /** Turns a granted attempt into a hold, or `undefined` when its lease is already over. */
  private hold(
    write: boolean,
    args: LockArgs,
    bytes: Uint8Array,
    outcome: Granted,
    attempts: number,
    started: number,
  ): LockHold | undefined {
    const lease = Math.min(...outcome.grants.map((g) => g.leaseMs));
    const refreshTimeout = Math.min(this.callTimeout, lease / 4);
    const refreshEvery = this.refreshInterval ?? lease / 4;
    if (refreshEvery + (this.refreshInterval === undefined ? refreshTimeout : this.callTimeout) >= lease) {
      void this.release(write, args, bytes, this.hosts, this.callTimeout);
      throw new RangeError(
        `Cannot hold lock on ${this.describe()}: refreshInterval ${refreshEvery} + callTimeout ${this.callTimeout} ms ` +
          `must be below the lease of ${lease} ms the lock nodes granted, or a live lock could lapse`,
      );
    }
    const expiresAt = outcome.sentAt + lease;
    if (performance.now() >= expiresAt) {
      void this.release(write, args, bytes, this.hosts, this.callTimeout);
      return undefined;
    }
    const token = outcome.token ?? Math.max(...outcome.grants.map((g) => g.token));
    const held: Held = {
      hold: undefined as unknown as LockHold,
      args,
      bytes,
      controller: undefined,
      expiresAt,
      refreshEvery,
      refreshTimeout,
      timer: undefined,
      lapse: undefined,
      unhook: () => {},
    };
    const hold: LockHold = {
      uid: args.uid,
      write,
      get lost() {
        return (held.controller ??= new AbortController()).signal;
      },
      attempts,
      waitedMs: performance.now() - started,
      token,
      get expiresAt() {
        return held.expiresAt;
      },
      [Symbol.asyncDispose]: () => this.held === held ? this.unlock() : Promise.resolve(),
    };
    held.hold = hold;
    this.held = held;
    held.unhook = onGridClose(this.grid, () => this.lose(held, "the grid was closed", false));
    this.arm(held, outcome.sentAt);
    return hold;
  }

  /**
   * Arms the next refresh, from the send time of the last confirmed round. It
   * is due before `expiresAt` (`refreshInterval + callTimeout < lease`); the
   * lapse at `expiresAt` is armed by the refresh round itself, and a refresh
   * that fires at or past `expiresAt` (the process was paused) loses the
   * lock at once: one timer per hold between rounds, not two.
   */
  private arm(held: Held, sentAt: number): void {
    held.timer = setTimeout(() => void this.refresh(held), Math.max(0, sentAt + held.refreshEvery - performance.now()));
  }

  /** Refreshes `held` on every node; settles at a quorum; below it, or past `expiresAt`, loses the lock. */
  private async refresh(held: Held): Promise<void> {
    held.timer = undefined;
    if (this.held !== held) return;
    const lapsed = () => this.lose(held, `its lease ran out at ${Math.round(held.expiresAt)} with no refresh confirmed by a quorum`, true);
    const left = held.expiresAt - performance.now();
    if (left <= 0) return lapsed();
    held.lapse = setTimeout(lapsed, left);
    const quorum = held.hold.write ? this.writeQuorum : this.readQuorum;
    const sentAt = performance.now();
    const n = this.hosts.length;
    let confirmed = 0;
    let missing = 0;
    let lease = Infinity;
    await new Promise<void>((resolve) => {
      for (const host of this.hosts) {
        void this.call(host, "refresh", held.args, held.bytes, held.refreshTimeout, undefined).then((r) => {
          if (r instanceof Error || r.status !== GRANTED) missing++;
          else {
            confirmed++;
            lease = Math.min(lease, r.leaseMs);
          }
          if (confirmed >= quorum || missing > n - quorum) resolve();
        });
      }
    });
    if (this.held !== held) return;
    clearTimeout(held.lapse);
    held.lapse = undefined;
    if (confirmed >= quorum) {
      held.expiresAt = Math.max(held.expiresAt, sentAt + lease);
      this.arm(held, sentAt);
      return;
    }
    this.lose(held, `refresh confirmed by ${confirmed} of ${n} nodes, quorum ${quorum}`, true);
  }

  /** Aborts `lost` and releases the lock (in the background when `release`). */
  private lose(held: Held, why: string, release: boolean): void {
    if (this.held !== held) return;
    this.drop(held);
    (held.controller ??= new AbortController()).abort(new GridError("lock-lost", `Lock lost on ${this.describe()}: ${why}`));
    if (release) void this.release(held.hold.write, held.args, held.bytes, this.hosts, this.callTimeout);
  }

  /**
   * Unlocks on `hosts`: waits for the first try (at most `timeout`), then
   * retries the nodes that failed in the background, with full jitter, for up
   * to `unlockRetryMs` or until the grid closes.
   */
  private async release(
    write: boolean,
    args: LockArgs,
    bytes: Uint8Array,
    hosts: readonly string[],
    timeout: number,
  ): Promise<void> {
    const op = write ? "unlock" : "runlock";
    const first = await Promise.all(hosts.map((h) => this.call(h, op, args, bytes, timeout, undefined)));
    const failed = hosts.filter((_, i) => first[i] instanceof Error);
    if (failed.length === 0 || this.grid.signal.aborted) return;
    const stats = statsOf(this.grid);
    const until = performance.now() + this.unlockRetryMs;
    for (const host of failed) {
      stats.unlockPending++;
      void this.retryUnlock(host, op, args, bytes, until, stats);
    }
  }

  /** Background retries of one unlock to one node. */
  private async retryUnlock(
    host: string,
    op: "unlock" | "runlock",
    args: LockArgs,
    bytes: Uint8Array,
    until: number,
    stats: LockClientStats,
  ): Promise<void> {
    const closed = new AbortController();
    const unhook = onGridClose(this.grid, () => closed.abort(new GridError("closed", "Grid closed")));
    try {
      for (let round = 0; round < 64; round++) {
        const left = until - performance.now();
        if (left <= 0) break;
        await sleep(Math.random() * Math.min(2_000, 50 * 2 ** round, left), closed.signal).catch(() => {});
        if (closed.signal.aborted) break;
        stats.unlockRetries++;
        const r = await this.call(host, op, args, bytes, Math.max(1, Math.min(this.callTimeout, until - performance.now())), closed.signal);
        if (!(r instanceof Error)) {
          stats.unlockConfirmedLate++;
          return;
        }
      }
      stats.unlockUnconfirmed++;
    } finally {
      stats.unlockPending--;
      unhook();
    }
  }

  /** One call to one node; never rejects. */
  private call(
    host: string,
    op: Op,
    args: LockArgs,
    bytes: Uint8Array,
    timeout: number,
    signal: AbortSignal | undefined,
  ): Promise<Reply> {
    return host === this.grid.local ? Promise.resolve(this.callLocal(op, args)) : this.callRemote(host, op, bytes, timeout, signal);
  }

  /** One call to the local node's table. */
  private callLocal(op: Op, args: LockArgs): Reply {
    const table = this.table!;
    try {
      const ok = table[op](args);
      const token = ok && (op === "lock" || op === "rlock") ? table.tokenOf(args.uid) : 0;
      return { status: ok ? GRANTED : table.recovering && (op === "lock" || op === "rlock") ? 2 : 0, leaseMs: table.leaseMs, token };
    } catch (e) {
      return e instanceof Error ? e : new Error(String(e));
    }
  }

  /** One call to a remote node; never rejects. */
  private async callRemote(host: string, op: Op, bytes: Uint8Array, timeout: number, signal: AbortSignal | undefined): Promise<Reply> {
    try {
      const res = await this.grid.connection(host).request(LOCK_HANDLERS[op], bytes, { timeout, signal });
      return decodeReply(res) ?? new Error(`Cannot read the reply of ${host}: ${res.length} bytes`);
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

/** A granted attempt: when its calls were sent, the grants, every reply so far, its end. */
interface Granted {
  ok: true;
  sentAt: number;
  grants: LockReply[];
  replies: (Reply | undefined)[];
  end: number;
  token?: number;
}

type Attempt = Granted | { ok: false; why: string };

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
  if (value === undefined && fallback > 0) return fallback;
  if (typeof value !== "number" || !Number.isFinite(value) || value <= 0) {
    throw new RangeError(`Cannot use DistributedLock: "${name}" must be a positive number, got ${value}`);
  }
  return value;
}
