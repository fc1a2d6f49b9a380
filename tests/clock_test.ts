/**
 * The connections' clock (src/clock.ts): one timer ticks every member, a member that leaves
 * during a tick is not ticked after, and the timer stops with the last member.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { Clock } from "../src/clock.ts";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe("clock", () => {
  it("ticks every member with the same time, at its interval", async () => {
    const clock = new Clock(20);
    const seen: [string, number][] = [];
    const a = { tick: (now: number) => seen.push(["a", now]) };
    const b = { tick: (now: number) => seen.push(["b", now]) };
    clock.add(a);
    clock.add(b);
    clock.add(a); // twice: still ticked once per tick
    await sleep(150);
    clock.delete(a);
    clock.delete(b);
    const as = seen.filter(([w]) => w === "a");
    const bs = seen.filter(([w]) => w === "b");
    assert.ok(as.length >= 2, `a ticked ${as.length} times in 150 ms at 20 ms`);
    assert.equal(as.length, bs.length);
    for (let i = 0; i < as.length; i++) assert.equal(as[i][1], bs[i][1], "one time per tick");
  });

  it("does not tick a member that left during the tick, and stops with the last member", async () => {
    const clock = new Clock(10);
    let aTicks = 0;
    let bTicks = 0;
    const b = { tick: () => bTicks++ };
    const a = {
      tick: () => {
        aTicks++;
        clock.delete(b); // b leaves during a's tick, before its own turn in this one
      },
    };
    clock.add(a);
    clock.add(b);
    await sleep(80);
    assert.ok(aTicks >= 1);
    assert.equal(bTicks, 0);
    clock.delete(a);
    const after = aTicks;
    await sleep(60);
    assert.equal(aTicks, after, "no tick after the last member left");
  });
});
