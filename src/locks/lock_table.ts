/**
 * The lock table of one node: dsync's local locker, without networking.
 *
 * A distributed lock is granted when a quorum of nodes grant it in their own
 * table; this file is that per-node table. Rules (as dsync's `localLocker`):
 *
 * - a write lock on a resource is exclusive; read locks are shared by readers
 *   and exclude writers;
 * - a request for several resources is all or nothing on this node;
 * - locks are released by `uid` (and `owner`, as dsync matches both);
 * - the owner refreshes its locks; a lock not refreshed within the table's
 *   lease (`leaseMs`) is dropped (its owner died or lost its network): never
 *   earlier than `leaseMs` after its last grant or refresh, so a holder that
 *   counts its lease from the moment it *sent* the request knows the earliest
 *   moment this node may drop it;
 * - every write grant carries a fencing-token proposal, one more than the
 *   highest token this node has seen for any of the resources (see
 *   docs/LOCKS.md for why a quorum of them makes tokens strictly increase);
 * - a refused lock is `false`, never an exception.
 *
 * @module
 */

import type { LockArgs } from "./lock_args.ts";

/**
 * Options of {@link LockTable}.
 *
 * @example
 * ```ts
 * import { LockTable } from "wsgrid/locks";
 * let now = 0;
 * const table = new LockTable({ now: () => now });
 * ```
 */
export interface LockTableOptions {
  /**
   * Clock in milliseconds, used for acquisition and refresh times. Inject one
   * in tests.
   * @default () => performance.now()
   */
  now?: () => number;
  /**
   * The lease: a lock not refreshed for this long may be dropped, ms. The
   * lock service returns it with every grant and refresh, and clients derive
   * their refresh schedule from it.
   * @default 60000
   */
  leaseMs?: number;
  /**
   * How many resources' fencing counters are kept; past that the least
   * recently used one is folded into one node-wide floor (never lowering any
   * future token), so memory stays bounded.
   * @default 100000
   */
  maxTrackedResources?: number;
}

/**
 * Counters of a {@link LockTable}; a plain JSON-serialisable object.
 *
 * @example
 * ```ts
 * import { LockTable } from "wsgrid/locks";
 * const { writeLocks, readLocks, refused } = new LockTable().stats();
 * ```
 */
export interface LockTableStats {
  /** Resources locked now (by a writer or by at least one reader). */
  resources: number;
  /** Write locks held now, one per resource. */
  writeLocks: number;
  /** Read locks held now, one per (resource, reader). */
  readLocks: number;
  /** `lock`/`rlock` calls granted since the table was made. */
  granted: number;
  /** `lock`/`rlock` calls refused since the table was made. */
  refused: number;
  /** Locks (one per resource) dropped by {@link LockTable.expireOlderThan}. */
  expired: number;
  /** Locks (one per resource) dropped by {@link LockTable.forceUnlock}. */
  forceUnlocked: number;
  /** The highest fencing token this node has handed out or recorded. */
  maxToken: number;
  /** `true` while the node is recovering its token floor and refuses every lock. */
  recovering: boolean;
}

/**
 * One lock held on one resource, as listed by {@link LockTable.entries}.
 *
 * @example
 * ```ts
 * import { LockTable } from "wsgrid/locks";
 * for (const e of new LockTable().entries()) console.log(e.resource, e.writer, e.owner);
 * ```
 */
export interface LockEntry {
  /** The locked resource. */
  resource: string;
  /** `true` for a write lock, `false` for a read lock. */
  writer: boolean;
  /** The lock's uid. */
  uid: string;
  /** The node holding the lock. */
  owner: string;
  /** Where it was taken. */
  source: string;
  /** The quorum the lock was requested with. */
  quorum: number;
  /** Clock time when it was granted. */
  acquiredAt: number;
  /** Clock time of its last grant or refresh. */
  refreshedAt: number;
}

/** The locks of one uid: refresh, unlock and expiry work per uid. */
interface UidLocks {
  readonly entries: Set<LockEntry>;
  /** Some of its locks were force-unlocked or expired: refresh reports it. */
  lost: boolean;
  /** The fencing token of this uid here: its write proposal, or the read's latest write. */
  token: number;
}

/**
 * The lock table of one node.
 *
 * @example
 * ```ts
 * import { LockTable } from "wsgrid/locks";
 * const table = new LockTable();
 * const args = { uid: "u1", resources: ["bucket/a"], source: "", owner: "n1", quorum: 2 };
 * table.lock(args);                        // true
 * table.rlock({ ...args, uid: "u2" });     // false: a writer holds it
 * table.unlock(args);                      // true
 * ```
 */
export class LockTable {
  /** Per resource: one writer, or one or more readers (never empty). */
  private readonly byResource = new Map<string, LockEntry[]>();
  private readonly byUid = new Map<string, UidLocks>();
  private readonly now: () => number;
  /** Per resource, the highest fencing token seen here (least recently used first). */
  private readonly tokens = new Map<string, number>();
  private readonly maxTracked: number;
  /** Lower bound of every resource's token: evicted counters and the recovered floor. */
  private floor = 0;
  private highest = 0;
  private isRecovering = false;
  /** The lease, ms: see {@link LockTableOptions.leaseMs}. */
  readonly leaseMs: number;
  private granted = 0;
  private refused = 0;
  private expired = 0;
  private forceUnlocked = 0;

  /**
   * Makes an empty table.
   *
   * @param options clock injection
   */
  constructor(options: LockTableOptions = {}) {
    this.now = options.now ?? (() => performance.now());
    this.leaseMs = positive("leaseMs", options.leaseMs, 60_000);
    this.maxTracked = positive("maxTrackedResources", options.maxTrackedResources, 100_000);
  }

  /** `true` while the table refuses every lock until {@link recover} is called. */
  get recovering(): boolean {
    return this.isRecovering;
  }

  /**
   * Refuses every `lock`/`rlock` until {@link recover}: a node that restarted
   * lost its fencing counters and must first learn the highest token a quorum
   * of its peers has seen.
   *
   * @example
   * ```ts
   * import { LockTable } from "wsgrid/locks";
   * const table = new LockTable();
   * table.beginRecovery();
   * table.recover(42); // tokens handed out from now on are above 42
   * ```
   */
  beginRecovery(): void {
    this.isRecovering = true;
  }

  /**
   * Raises the token floor to `floor` and ends recovery.
   *
   * @param floor the highest token the peers reported
   * @example
   * ```ts
   * import { LockTable } from "wsgrid/locks";
   * new LockTable().recover(7);
   * ```
   */
  recover(floor: number): void {
    if (Number.isSafeInteger(floor) && floor > this.floor) this.floor = floor;
    if (this.floor > this.highest) this.highest = this.floor;
    this.isRecovering = false;
  }

  /**
   * The highest fencing token this node has handed out or recorded (what a
   * restarting peer recovers from).
   *
   * @returns a safe integer, 0 when none
   * @example
   * ```ts
   * import { LockTable } from "wsgrid/locks";
   * new LockTable().maxToken(); // 0
   * ```
   */
  maxToken(): number {
    return this.highest;
  }

  /**
   * The fencing token recorded here for `uid`: for a write lock this node's
   * proposal (or the raised value after {@link fence}), for a read lock the
   * token of the latest write on its resources.
   *
   * @param uid the lock's uid
   * @returns the token, or 0 when the uid holds nothing here
   * @example
   * ```ts
   * import { LockTable } from "wsgrid/locks";
   * const table = new LockTable();
   * table.lock({ uid: "u1", resources: ["a"], source: "", owner: "n1", quorum: 2 });
   * table.tokenOf("u1"); // 1
   * ```
   */
  tokenOf(uid: string): number {
    return this.byUid.get(uid)?.token ?? 0;
  }

  /**
   * Records that the write lock of `args.uid` uses fencing token `token`:
   * every resource's counter rises to at least `token`, so a later grant here
   * proposes more. Done only while the uid still holds its write locks here.
   *
   * @param args the uid (and its resources)
   * @param token the token the holder chose
   * @returns `true` when recorded; `false` when the uid holds no write lock here (any more)
   * @example
   * ```ts
   * import { LockTable } from "wsgrid/locks";
   * const table = new LockTable();
   * const args = { uid: "u1", resources: ["a"], source: "", owner: "n1", quorum: 2 };
   * table.lock(args);
   * table.fence(args, 9); // true: the next writer of "a" here gets 10
   * ```
   */
  fence(args: LockArgs, token: number): boolean {
    const locks = this.byUid.get(args.uid);
    if (locks === undefined || locks.lost || !Number.isSafeInteger(token)) return false;
    let writer = false;
    for (const entry of locks.entries) {
      if (!entry.writer) continue;
      writer = true;
      this.raise(entry.resource, token);
    }
    if (!writer) return false;
    if (token > locks.token) locks.token = token;
    return true;
  }
  /**
   * Takes a write lock on every resource of `args`, or on none: granted only
   * when no resource is locked at all (by a writer or a reader, this uid
   * included).
   *
   * @param args uid, resources (duplicates count once), owner, source, quorum
   * @returns `true` when granted; `false` when refused or `resources` is empty
   * @example
   * ```ts
   * import { LockTable } from "wsgrid/locks";
   * new LockTable().lock({ uid: "u1", resources: ["a", "b"], source: "", owner: "n1", quorum: 2 }); // true
   * ```
   */
  lock(args: LockArgs): boolean {
    const resources = unique(args.resources);
    if (this.isRecovering || resources.length === 0) return this.refuse();
    const cutoff = this.now() - this.leaseMs;
    for (const resource of resources) {
      if (this.byResource.has(resource) && !this.dropExpired(resource, cutoff)) return this.refuse();
    }
    let token = 0;
    for (const resource of resources) token = Math.max(token, this.tokenAt(resource));
    token++;
    for (const resource of resources) {
      this.byResource.set(resource, [this.addEntry(args, resource, true, token)]);
      this.raise(resource, token);
    }
    return this.grant();
  }

  /**
   * Takes a read lock on every resource of `args`, or on none: granted only
   * when no resource is write-locked. A uid that already reads a resource
   * keeps its one lock there (a retried request is harmless).
   *
   * @param args uid, resources (duplicates count once), owner, source, quorum
   * @returns `true` when granted; `false` when refused or `resources` is empty
   * @example
   * ```ts
   * import { LockTable } from "wsgrid/locks";
   * const table = new LockTable();
   * table.rlock({ uid: "r1", resources: ["a"], source: "", owner: "n1", quorum: 2 }); // true
   * table.rlock({ uid: "r2", resources: ["a"], source: "", owner: "n2", quorum: 2 }); // true
   * ```
   */
  rlock(args: LockArgs): boolean {
    const resources = unique(args.resources);
    if (this.isRecovering || resources.length === 0) return this.refuse();
    const cutoff = this.now() - this.leaseMs;
    for (const resource of resources) {
      const held = this.byResource.get(resource);
      if (held !== undefined && held[0].writer && !this.dropExpired(resource, cutoff)) return this.refuse();
    }
    let token = 0;
    for (const resource of resources) token = Math.max(token, this.tokenAt(resource));
    for (const resource of resources) {
      const held = this.byResource.get(resource);
      if (held === undefined) {
        this.byResource.set(resource, [this.addEntry(args, resource, false, token)]);
      } else if (this.entryOf(args, resource, false) === undefined) {
        held.push(this.addEntry(args, resource, false, token));
      }
    }
    return this.grant();
  }

  /**
   * Releases the write locks of `args.uid` (and `args.owner`) on `args.resources`.
   *
   * @param args uid, owner and the resources to release
   * @returns `true` when at least one write lock was released
   * @example
   * ```ts
   * import { LockTable } from "wsgrid/locks";
   * const table = new LockTable();
   * const args = { uid: "u1", resources: ["a"], source: "", owner: "n1", quorum: 2 };
   * table.lock(args);
   * table.unlock(args); // true
   * ```
   */
  unlock(args: LockArgs): boolean {
    return this.release(args, true);
  }

  /**
   * Releases the read locks of `args.uid` (and `args.owner`) on `args.resources`.
   *
   * @param args uid, owner and the resources to release
   * @returns `true` when at least one read lock was released
   * @example
   * ```ts
   * import { LockTable } from "wsgrid/locks";
   * const table = new LockTable();
   * const args = { uid: "r1", resources: ["a"], source: "", owner: "n1", quorum: 2 };
   * table.rlock(args);
   * table.runlock(args); // true
   * ```
   */
  runlock(args: LockArgs): boolean {
    return this.release(args, false);
  }

  /**
   * Records that the owner of `args.uid` is alive: sets the refresh time of
   * all its locks here.
   *
   * @param args the uid to refresh (resources are not needed)
   * @returns `true` when this node still holds every lock it granted to the
   *   uid; `false` when it holds none, or some were force-unlocked or expired
   *   (the lock is lost: its owner should give it up)
   * @example
   * ```ts
   * import { LockTable } from "wsgrid/locks";
   * const table = new LockTable();
   * const args = { uid: "u1", resources: ["a"], source: "", owner: "n1", quorum: 2 };
   * table.lock(args);
   * table.refresh(args); // true
   * ```
   */
  refresh(args: LockArgs): boolean {
    const locks = this.byUid.get(args.uid);
    if (locks === undefined || locks.lost) return false;
    const now = this.now();
    for (const entry of locks.entries) entry.refreshedAt = now;
    return true;
  }

  /**
   * Drops every lock of `args.uid`; with no uid, every lock on
   * `args.resources`, whoever holds it. The uid wins when both are given (as
   * dsync's `ForceUnlock`): the resources only name what it held, so other
   * holders of them keep their locks. The uids that lose a lock this way see
   * `refresh()` return `false`.
   *
   * @param args a uid, or (with an empty uid) the resources
   * @returns `true` (as dsync: afterwards nothing asked for is locked here);
   *   `false` only when neither resources nor a uid were given
   * @example
   * ```ts
   * import { LockTable } from "wsgrid/locks";
   * const table = new LockTable();
   * table.lock({ uid: "u1", resources: ["a"], source: "", owner: "n1", quorum: 2 });
   * table.forceUnlock({ uid: "", resources: ["a"], source: "", owner: "", quorum: 0 }); // true
   * ```
   */
  forceUnlock(args: LockArgs): boolean {
    if (args.uid === "") {
      if (args.resources.length === 0) return false;
      for (const resource of args.resources) {
        const held = this.byResource.get(resource);
        if (held === undefined) continue;
        for (const entry of held) this.dropEntry(entry, true);
        this.forceUnlocked += held.length;
        this.byResource.delete(resource);
      }
      return true;
    }
    const locks = this.byUid.get(args.uid);
    if (locks !== undefined) {
      for (const entry of [...locks.entries]) {
        this.removeFromResource(entry);
        this.dropEntry(entry, true);
        this.forceUnlocked++;
      }
    }
    return true;
  }

  /**
   * Drops every lock whose lease ran out: not refreshed for more than
   * {@link leaseMs} (what the lock service's sweep calls).
   *
   * @returns how many locks (one per resource and holder) were dropped
   * @example
   * ```ts
   * import { LockTable } from "wsgrid/locks";
   * const table = new LockTable({ leaseMs: 30_000 });
   * setInterval(() => table.expire(), 5_000);
   * ```
   */
  expire(): number {
    return this.expireOlderThan(this.leaseMs);
  }

  /**
   * Drops every lock whose last grant or refresh is more than `ms` ago: its
   * owner stopped refreshing (dsync's `expireOldLocks`).
   *
   * @param ms the age limit, milliseconds
   * @returns how many locks (one per resource and holder) were dropped
   * @example
   * ```ts
   * import { LockTable } from "wsgrid/locks";
   * const table = new LockTable();
   * setInterval(() => table.expireOlderThan(60_000), 60_000);
   * ```
   */
  expireOlderThan(ms: number): number {
    const cutoff = this.now() - ms;
    let dropped = 0;
    for (const [resource, held] of this.byResource) {
      const kept = held.filter((entry) => {
        if (entry.refreshedAt >= cutoff) return true;
        this.dropEntry(entry, true);
        dropped++;
        return false;
      });
      if (kept.length === 0) this.byResource.delete(resource);
      else if (kept.length !== held.length) this.byResource.set(resource, kept);
    }
    this.expired += dropped;
    return dropped;
  }

  /**
   * Current counters.
   *
   * @returns a fresh, JSON-serialisable object
   * @example
   * ```ts
   * import { LockTable } from "wsgrid/locks";
   * console.log(new LockTable().stats().writeLocks); // 0
   * ```
   */
  stats(): LockTableStats {
    let writeLocks = 0;
    let readLocks = 0;
    for (const held of this.byResource.values()) {
      if (held[0].writer) writeLocks++;
      else readLocks += held.length;
    }
    return {
      resources: this.byResource.size,
      writeLocks,
      readLocks,
      granted: this.granted,
      refused: this.refused,
      expired: this.expired,
      forceUnlocked: this.forceUnlocked,
      maxToken: this.highest,
      recovering: this.isRecovering,
    };
  }

  /**
   * Every lock held now, for diagnostics (dsync's `DupLockMap`).
   *
   * @returns copies; changing them does not change the table
   * @example
   * ```ts
   * import { LockTable } from "wsgrid/locks";
   * console.log(new LockTable().entries()); // []
   * ```
   */
  entries(): LockEntry[] {
    const list: LockEntry[] = [];
    for (const held of this.byResource.values()) for (const entry of held) list.push({ ...entry });
    return list;
  }

  /** Releases the write (or read) locks of the uid and owner on the resources. */
  private release(args: LockArgs, writer: boolean): boolean {
    let released = false;
    for (const resource of args.resources) {
      const held = this.byResource.get(resource);
      if (held === undefined || held[0].writer !== writer) continue;
      const entry = this.entryOf(args, resource, writer);
      if (entry === undefined) continue;
      if (held.length === 1) this.byResource.delete(resource);
      else held.splice(held.indexOf(entry), 1);
      this.dropEntry(entry, false);
      released = true;
    }
    return released;
  }

  /**
   * The lock of `args.uid` and `args.owner` on `resource`, if any: looked up
   * among the uid's own locks (usually one), not among every reader of the
   * resource (64 readers of one resource made each read lock and unlock scan
   * 64 entries).
   */
  private entryOf(args: LockArgs, resource: string, writer: boolean): LockEntry | undefined {
    const locks = this.byUid.get(args.uid);
    if (locks === undefined) return undefined;
    for (const entry of locks.entries) {
      if (entry.resource === resource && entry.owner === args.owner && entry.writer === writer) return entry;
    }
    return undefined;
  }

  /** Records a new lock of `args.uid` on `resource`; the caller puts it on the resource. */
  private addEntry(args: LockArgs, resource: string, writer: boolean, token: number): LockEntry {
    const now = this.now();
    const entry: LockEntry = {
      resource,
      writer,
      uid: args.uid,
      owner: args.owner,
      source: args.source,
      quorum: args.quorum,
      acquiredAt: now,
      refreshedAt: now,
    };
    let locks = this.byUid.get(args.uid);
    if (locks === undefined) {
      locks = { entries: new Set(), lost: false, token };
      this.byUid.set(args.uid, locks);
    } else if (token > locks.token) {
      locks.token = token;
    }
    locks.entries.add(entry);
    return entry;
  }

  /** Forgets `entry` in its uid's set; the caller removes it from its resource. */
  private dropEntry(entry: LockEntry, lost: boolean): void {
    const locks = this.byUid.get(entry.uid);
    if (locks === undefined) return;
    locks.entries.delete(entry);
    if (lost) locks.lost = true;
    if (locks.entries.size === 0) this.byUid.delete(entry.uid);
  }

  /** Takes `entry` off its resource. */
  private removeFromResource(entry: LockEntry): void {
    const held = this.byResource.get(entry.resource);
    if (held === undefined) return;
    const rest = held.filter((e) => e !== entry);
    if (rest.length === 0) this.byResource.delete(entry.resource);
    else this.byResource.set(entry.resource, rest);
  }

  /**
   * Drops the locks on `resource` whose lease ran out before `cutoff`.
   *
   * @returns `true` when the resource is free afterwards
   */
  private dropExpired(resource: string, cutoff: number): boolean {
    const held = this.byResource.get(resource);
    if (held === undefined) return true;
    const kept = held.filter((entry) => {
      if (entry.refreshedAt >= cutoff) return true;
      this.dropEntry(entry, true);
      this.expired++;
      return false;
    });
    if (kept.length === 0) {
      this.byResource.delete(resource);
      return true;
    }
    if (kept.length !== held.length) this.byResource.set(resource, kept);
    return false;
  }

  /** The highest token seen for `resource` (the floor when it is not tracked). */
  private tokenAt(resource: string): number {
    return Math.max(this.floor, this.tokens.get(resource) ?? 0);
  }

  /** Raises the counter of `resource` to `token`; evicts the least recently used past the cap. */
  private raise(resource: string, token: number): void {
    const current = this.tokens.get(resource);
    this.tokens.delete(resource);
    this.tokens.set(resource, current === undefined || token > current ? token : current);
    if (token > this.highest) this.highest = token;
    while (this.tokens.size > this.maxTracked) {
      const [oldest, value] = this.tokens.entries().next().value!;
      this.tokens.delete(oldest);
      if (value > this.floor) this.floor = value;
    }
  }

  /** Counts a granted request. */
  private grant(): true {
    this.granted++;
    return true;
  }

  /** Counts a refused request. */
  private refuse(): false {
    this.refused++;
    return false;
  }
}

function unique(resources: readonly string[]): string[] {
  return resources.length < 2 ? [...resources] : [...new Set(resources)];
}

function positive(name: string, value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== "number" || !Number.isFinite(value) || value <= 0) {
    throw new RangeError(`Cannot create LockTable: "${name}" must be a positive number, got ${value}`);
  }
  return value;
}
