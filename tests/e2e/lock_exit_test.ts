/**
 * A process that holds a lock on a one-node grid exits by itself once the grid and its server
 * are closed (issue 15, hole 6: the refresh timer used to keep it alive). Each runner runs its
 * own runtime.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { bin, describeRun, freePorts, run, runner } from "./_subprocess.ts";

const COMMAND: Record<"deno" | "bun" | "node", string[]> = {
  deno: [bin("deno"), "run", "-A"],
  bun: [bin("bun")],
  node: [bin("node")],
};

describe("locks: process exit after close()", () => {
  it(`a ${runner} process holding a lock on one node exits by itself after grid.close()`, { timeout: 60_000 }, async () => {
    const [port] = await freePorts(1);
    const [cmd, ...args] = COMMAND[runner];
    const res = await run(cmd, [...args, "tests/e2e/_lock_exit.ts", String(port)], { timeoutMs: 20_000 });
    const what = `${runner} tests/e2e/_lock_exit.ts`;
    assert.equal(res.code, 0, describeRun(what, res));
    assert.equal(res.stdout.trim(), "CLOSED lost", describeRun(what, res));
  });
});
