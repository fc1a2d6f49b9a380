import { describe, it } from "node:test";
import assert from "node:assert/strict";
import type { LockArgs } from "../src/locks/lock_args.ts";
import { LockTable } from "../src/locks/lock_table.ts";

function args(uid: string, resources: string[], owner = "node-1"): LockArgs {
  return { uid, resources, source: "[lock_table_test.ts]", owner, quorum: 2 };
}

/** A table on a clock the test moves by hand. */
function tableWithClock(): { table: LockTable; advance(ms: number): void } {
  let now = 1_000;
  return { table: new LockTable({ now: () => now }), advance: (ms) => void (now += ms) };
}

describe("LockTable write locks", () => {
  it("lock() is exclusive until unlock()", () => {
    const table = new LockTable();
    assert.equal(table.lock(args("w1", ["a"])), true);
    assert.equal(table.lock(args("w2", ["a"])), false);
    assert.equal(table.lock(args("w1", ["a"])), false, "not re-entrant, as dsync");
    assert.equal(table.unlock(args("w1", ["a"])), true);
    assert.equal(table.lock(args("w2", ["a"])), true);
  });

  it("unlock() releases only the locks of the same uid and owner", () => {
    const table = new LockTable();
    table.lock(args("w1", ["a"], "node-1"));
    assert.equal(table.unlock(args("w2", ["a"], "node-1")), false);
    assert.equal(table.unlock(args("w1", ["a"], "node-2")), false);
    assert.equal(table.lock(args("w3", ["a"])), false);
    assert.equal(table.unlock(args("w1", ["a"], "node-1")), true);
    assert.equal(table.unlock(args("w1", ["a"], "node-1")), false, "nothing left to release");
  });

  it("locks on different resources do not interfere", () => {
    const table = new LockTable();
    assert.equal(table.lock(args("w1", ["a"])), true);
    assert.equal(table.lock(args("w2", ["b"])), true);
  });

  it("refuses a request without resources", () => {
    const table = new LockTable();
    assert.equal(table.lock(args("w1", [])), false);
    assert.equal(table.rlock(args("r1", [])), false);
    assert.equal(table.stats().refused, 2);
  });
});

describe("LockTable read locks", () => {
  it("rlock() is shared among readers", () => {
    const table = new LockTable();
    assert.equal(table.rlock(args("r1", ["a"])), true);
    assert.equal(table.rlock(args("r2", ["a"], "node-2")), true);
    assert.equal(table.stats().readLocks, 2);
  });

  it("readers exclude a writer until the last one leaves", () => {
    const table = new LockTable();
    table.rlock(args("r1", ["a"]));
    table.rlock(args("r2", ["a"]));
    assert.equal(table.lock(args("w1", ["a"])), false);
    assert.equal(table.runlock(args("r1", ["a"])), true);
    assert.equal(table.lock(args("w1", ["a"])), false);
    assert.equal(table.runlock(args("r2", ["a"])), true);
    assert.equal(table.lock(args("w1", ["a"])), true);
  });

  it("a writer excludes readers", () => {
    const table = new LockTable();
    table.lock(args("w1", ["a"]));
    assert.equal(table.rlock(args("r1", ["a"])), false);
    table.unlock(args("w1", ["a"]));
    assert.equal(table.rlock(args("r1", ["a"])), true);
  });

  it("a repeated rlock() by the same uid holds one lock", () => {
    const table = new LockTable();
    assert.equal(table.rlock(args("r1", ["a"])), true);
    assert.equal(table.rlock(args("r1", ["a"])), true);
    assert.equal(table.stats().readLocks, 1);
    assert.equal(table.runlock(args("r1", ["a"])), true);
    assert.equal(table.lock(args("w1", ["a"])), true);
  });

  it("unlock() does not release read locks, nor runlock() write locks", () => {
    const table = new LockTable();
    table.rlock(args("r1", ["a"]));
    table.lock(args("w1", ["b"]));
    assert.equal(table.unlock(args("r1", ["a"])), false);
    assert.equal(table.runlock(args("w1", ["b"])), false);
    const { readLocks, writeLocks } = table.stats();
    assert.deepEqual({ readLocks, writeLocks }, { readLocks: 1, writeLocks: 1 });
  });
});

describe("LockTable multi-resource requests", () => {
  it("lock() takes all resources or none", () => {
    const table = new LockTable();
    table.lock(args("w1", ["b"]));
    assert.equal(table.lock(args("w2", ["a", "b", "c"])), false);
    assert.equal(table.lock(args("w3", ["a"])), true, "a was not taken by the refused request");
    assert.equal(table.lock(args("w4", ["c"])), true, "c was not taken by the refused request");
    assert.equal(table.lock(args("w5", ["d", "e"])), true);
    assert.equal(table.stats().writeLocks, 5);
  });

  it("rlock() takes all resources or none", () => {
    const table = new LockTable();
    table.lock(args("w1", ["c"]));
    assert.equal(table.rlock(args("r1", ["a", "b", "c"])), false);
    assert.equal(table.lock(args("w2", ["a", "b"])), true, "a and b were not read-locked");
  });

  it("a write lock on several resources is refused when any is read-locked", () => {
    const table = new LockTable();
    table.rlock(args("r1", ["b"]));
    assert.equal(table.lock(args("w1", ["a", "b"])), false);
    assert.equal(table.rlock(args("r2", ["a", "b"])), true);
  });

  it("counts a resource named twice once", () => {
    const table = new LockTable();
    assert.equal(table.lock(args("w1", ["a", "a"])), true);
    assert.equal(table.stats().writeLocks, 1);
    assert.equal(table.unlock(args("w1", ["a"])), true);
    assert.equal(table.stats().writeLocks, 0);
  });

  it("unlock() may release part of a lock", () => {
    const table = new LockTable();
    table.lock(args("w1", ["a", "b"]));
    assert.equal(table.unlock(args("w1", ["a", "x"])), true);
    assert.equal(table.lock(args("w2", ["a"])), true);
    assert.equal(table.lock(args("w2", ["b"])), false);
    assert.equal(table.refresh(args("w1", [])), true, "a release by the owner does not lose the lock");
  });
});

describe("LockTable refresh and expiry", () => {
  it("refresh() reports whether the uid still holds its locks", () => {
    const table = new LockTable();
    assert.equal(table.refresh(args("w1", ["a"])), false, "never locked");
    table.lock(args("w1", ["a", "b"]));
    table.rlock(args("r1", ["c"]));
    assert.equal(table.refresh(args("w1", [])), true);
    assert.equal(table.refresh(args("r1", ["c"])), true);
    table.unlock(args("w1", ["a", "b"]));
    assert.equal(table.refresh(args("w1", ["a", "b"])), false);
  });

  it("expireOlderThan() drops locks not refreshed in time, and refresh() then fails", () => {
    const { table, advance } = tableWithClock();
    table.lock(args("w-stale", ["a"]));
    table.lock(args("w-live", ["b"]));
    table.rlock(args("r-stale", ["c"]));
    table.rlock(args("r-live", ["c"]));
    advance(40);
    assert.equal(table.refresh(args("w-live", [])), true);
    assert.equal(table.refresh(args("r-live", [])), true);
    advance(40); // stale: 80 ms since grant; live: 40 ms since refresh
    assert.equal(table.expireOlderThan(60), 2);
    assert.equal(table.refresh(args("w-stale", [])), false);
    assert.equal(table.refresh(args("r-stale", [])), false);
    assert.equal(table.refresh(args("w-live", [])), true);
    assert.equal(table.lock(args("w2", ["a"])), true, "the expired write lock is gone");
    assert.equal(table.lock(args("w3", ["c"])), false, "r-live still reads c");
    const stats = table.stats();
    assert.equal(stats.expired, 2);
    assert.equal(stats.readLocks, 1);
  });

  it("expireOlderThan() keeps a lock exactly at the limit", () => {
    const { table, advance } = tableWithClock();
    table.lock(args("w1", ["a"]));
    advance(60);
    assert.equal(table.expireOlderThan(60), 0);
    advance(1);
    assert.equal(table.expireOlderThan(60), 1);
  });

  it("refresh() fails once part of a multi-resource lock expired", () => {
    const { table, advance } = tableWithClock();
    table.lock(args("w1", ["a"]));
    advance(100);
    table.lock(args("w1", ["b"])); // same uid, later: "b" is fresher
    assert.equal(table.expireOlderThan(50), 1);
    assert.equal(table.refresh(args("w1", [])), false);
  });
});

describe("LockTable forceUnlock", () => {
  it("drops every lock on the resources, whoever holds them", () => {
    const table = new LockTable();
    table.lock(args("w1", ["a"], "node-1"));
    table.rlock(args("r1", ["b"], "node-2"));
    table.rlock(args("r2", ["b"], "node-3"));
    table.lock(args("w2", ["c"]));
    assert.equal(table.forceUnlock(args("", ["a", "b", "not-locked"])), true);
    assert.equal(table.lock(args("w3", ["a", "b"])), true);
    assert.equal(table.lock(args("w4", ["c"])), false, "c was not named");
    assert.equal(table.refresh(args("w1", [])), false);
    assert.equal(table.refresh(args("r2", [])), false);
    assert.equal(table.stats().forceUnlocked, 3);
  });

  it("with no resources, drops every lock of the uid", () => {
    const table = new LockTable();
    table.lock(args("w1", ["a", "b"]));
    table.rlock(args("w1", ["c"]));
    table.rlock(args("r1", ["c"]));
    assert.equal(table.forceUnlock(args("w1", [])), true);
    assert.equal(table.lock(args("w2", ["a", "b"])), true);
    assert.equal(table.lock(args("w2", ["c"])), false, "r1 still reads c");
    assert.equal(table.stats().readLocks, 1);
    assert.equal(table.forceUnlock(args("unknown", [])), true);
  });

  it("a partial force unlock makes refresh() fail for the uid", () => {
    const table = new LockTable();
    table.lock(args("w1", ["a", "b"]));
    table.forceUnlock(args("", ["a"]));
    assert.equal(table.refresh(args("w1", [])), false);
    assert.equal(table.lock(args("w2", ["b"])), false, "b is still held until released or expired");
    assert.equal(table.unlock(args("w1", ["a", "b"])), true);
    assert.equal(table.lock(args("w2", ["b"])), true);
  });

  it("refuses a request with neither resources nor uid", () => {
    assert.equal(new LockTable().forceUnlock(args("", [])), false);
  });
});

describe("LockTable stats and entries", () => {
  it("stats() counts held locks, grants, refusals and drops", () => {
    const { table, advance } = tableWithClock();
    table.lock(args("w1", ["a", "b"]));
    table.lock(args("w2", ["a"]));
    table.rlock(args("r1", ["c", "d"]));
    table.rlock(args("r2", ["c"]));
    table.rlock(args("r3", ["a"]));
    assert.deepEqual(table.stats(), {
      resources: 4,
      writeLocks: 2,
      readLocks: 3,
      granted: 3,
      refused: 2,
      expired: 0,
      forceUnlocked: 0,
      maxToken: 1,
      recovering: false,
    });
    advance(10);
    table.refresh(args("r2", []));
    advance(10);
    table.forceUnlock(args("", ["a"]));
    assert.equal(table.expireOlderThan(15), 3); // b, and r1 on c and d
    assert.deepEqual(table.stats(), {
      resources: 1,
      writeLocks: 0,
      readLocks: 1,
      granted: 3,
      refused: 2,
      expired: 3,
      forceUnlocked: 1,
      maxToken: 1,
      recovering: false,
    });
    assert.doesNotThrow(() => JSON.stringify(table.stats()));
  });

  it("entries() lists copies of the held locks", () => {
    const { table, advance } = tableWithClock();
    table.lock({ uid: "w1", resources: ["a"], source: "src", owner: "n1", quorum: 3 });
    advance(5);
    table.refresh(args("w1", []));
    const [entry, ...rest] = table.entries();
    assert.equal(rest.length, 0);
    assert.deepEqual(entry, {
      resource: "a",
      writer: true,
      uid: "w1",
      owner: "n1",
      source: "src",
      quorum: 3,
      acquiredAt: 1_000,
      refreshedAt: 1_005,
    });
    entry.refreshedAt = 0;
    assert.equal(table.expireOlderThan(1), 0, "changing a copy does not change the table");
  });
});

describe("LockTable forceUnlock precedence", () => {
  it("with a uid and resources, drops only that uid's locks (the uid wins, as dsync)", () => {
    const table = new LockTable();
    table.lock(args("w1", ["a"]));
    table.rlock(args("r1", ["b"]));
    table.rlock(args("r2", ["b"]));
    assert.equal(table.forceUnlock(args("r1", ["a", "b"])), true);
    assert.equal(table.refresh(args("w1", [])), true, "the writer of a keeps its lock");
    assert.equal(table.refresh(args("r2", [])), true, "the other reader of b keeps its lock");
    assert.equal(table.refresh(args("r1", [])), false);
    assert.equal(table.lock(args("w2", ["a"])), false);
    assert.equal(table.stats().forceUnlocked, 1);
  });
});

describe("LockTable lease", () => {
  it("a lock whose lease ran out is taken over at once, without waiting for the sweep", () => {
    let now = 1_000;
    const table = new LockTable({ now: () => now, leaseMs: 100 });
    assert.equal(table.leaseMs, 100);
    table.lock(args("w1", ["a"]));
    now += 100;
    assert.equal(table.lock(args("w2", ["a"])), false, "exactly at the lease it is still held");
    now += 1;
    assert.equal(table.lock(args("w2", ["a"])), true);
    assert.equal(table.refresh(args("w1", [])), false);
    assert.equal(table.stats().expired, 1);
  });

  it("refuses a lease that is not a positive number", () => {
    assert.throws(() => new LockTable({ leaseMs: 0 }), RangeError);
  });
});

describe("LockTable fencing tokens", () => {
  it("each write grant proposes one more than any token seen for its resources", () => {
    const table = new LockTable();
    const tokens: number[] = [];
    for (let i = 0; i < 5; i++) {
      assert.equal(table.lock(args(`w${i}`, ["a"])), true);
      tokens.push(table.tokenOf(`w${i}`));
      table.unlock(args(`w${i}`, ["a"]));
    }
    assert.deepEqual(tokens, [1, 2, 3, 4, 5]);
    table.lock(args("b1", ["b"]));
    assert.equal(table.tokenOf("b1"), 1, "another resource counts on its own");
    table.unlock(args("b1", ["b"]));
    table.lock(args("ab", ["a", "b"]));
    assert.equal(table.tokenOf("ab"), 6, "the largest of the resources, plus one");
    assert.equal(table.maxToken(), 6);
  });

  it("a read lock gets the token of the latest write on its resources", () => {
    const table = new LockTable();
    table.lock(args("w1", ["a"]));
    table.unlock(args("w1", ["a"]));
    table.rlock(args("r1", ["a"]));
    assert.equal(table.tokenOf("r1"), 1);
    assert.equal(table.tokenOf("nobody"), 0);
  });

  it("fence() raises the counters of a held write lock only", () => {
    const table = new LockTable();
    table.lock(args("w1", ["a"]));
    assert.equal(table.fence(args("w1", ["a"]), 40), true);
    assert.equal(table.tokenOf("w1"), 40);
    table.unlock(args("w1", ["a"]));
    assert.equal(table.fence(args("w1", ["a"]), 90), false, "no longer held");
    table.rlock(args("r1", ["a"]));
    assert.equal(table.fence(args("r1", ["a"]), 90), false, "a reader records no write token");
    table.runlock(args("r1", ["a"]));
    table.lock(args("w2", ["a"]));
    assert.equal(table.tokenOf("w2"), 41);
  });

  it("evicted counters fold into the floor, so tokens never go back", () => {
    const table = new LockTable({ maxTrackedResources: 2 });
    for (const r of ["a", "b", "c"]) {
      table.lock(args(r, [r]));
      table.fence(args(r, [r]), 10);
      table.unlock(args(r, [r]));
    }
    table.lock(args("a2", ["a"]));
    assert.ok(table.tokenOf("a2") > 10, `token ${table.tokenOf("a2")} after eviction`);
  });

  it("refuses every lock while recovering, and proposes above the recovered floor", () => {
    const table = new LockTable();
    table.beginRecovery();
    assert.equal(table.recovering, true);
    assert.equal(table.lock(args("w1", ["a"])), false);
    assert.equal(table.rlock(args("r1", ["a"])), false);
    table.recover(41);
    assert.equal(table.recovering, false);
    assert.equal(table.lock(args("w1", ["a"])), true);
    assert.equal(table.tokenOf("w1"), 42);
  });
});
