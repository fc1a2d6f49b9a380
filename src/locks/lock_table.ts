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
 * - the owner refreshes its locks; a lock not refreshed for a while is dropped
 *   by {@link LockTable.expireOlderThan} (its owner died or lost its network);
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
    if (resources.length === 0 || resources.some((r) => this.byResource.has(r))) return this.refuse();
    for (const resource of resources) this.byResource.set(resource, [this.addEntry(args, resource, true)]);
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
    if (resources.length === 0) return this.refuse();
    for (const resource of resources) {
      const held = this.byResource.get(resource);
      if (held !== undefined && held[0].writer) return this.refuse();
    }
    for (const resource of resources) {
      const held = this.byResource.get(resource);
      if (held === undefined) {
        this.byResource.set(resource, [this.addEntry(args, resource, false)]);
      } else if (!held.some((e) => e.uid === args.uid && e.owner === args.owner)) {
        held.push(this.addEntry(args, resource, false));
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
   * Drops every lock on `args.resources`, whoever holds it; with no
   * resources, drops every lock of `args.uid`. The uids that lose a lock this
   * way see `refresh()` return `false`.
   *
   * @param args the resources, or only a uid
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
    if (args.resources.length > 0) {
      for (const resource of args.resources) {
        const held = this.byResource.get(resource);
        if (held === undefined) continue;
        for (const entry of held) this.dropEntry(entry, true);
        this.forceUnlocked += held.length;
        this.byResource.delete(resource);
      }
      return true;
    }
    if (args.uid === "") return false;
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
      const index = held.findIndex((e) => e.uid === args.uid && e.owner === args.owner);
      if (index < 0) continue;
      const [entry] = held.splice(index, 1);
      if (held.length === 0) this.byResource.delete(resource);
      this.dropEntry(entry, false);
      released = true;
    }
    return released;
  }

  /** Records a new lock of `args.uid` on `resource`; the caller puts it on the resource. */
  private addEntry(args: LockArgs, resource: string, writer: boolean): LockEntry {
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
      locks = { entries: new Set(), lost: false };
      this.byUid.set(args.uid, locks);
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
