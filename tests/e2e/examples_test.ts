/**
 * Runs every server example under its runtime with `--once`: each starts an app server with
 * the grid embedded plus a peer node, makes a real HTTP request whose handler calls the peer
 * over the grid, prints the answer and exits by itself.
 *
 * Each example runs under the runner of its own runtime (the Deno example under `deno test`,
 * and so on), so a full suite run starts each example exactly once; the other runners skip it.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { bin, describeRun, freePortPair, freePorts, run, runner } from "./_subprocess.ts";

/** Bound of one example run; generous for a shared 2-core machine. */
const RUN_TIMEOUT_MS = 60_000;

type Runtime = "deno" | "bun" | "node";

const EXAMPLES: { runtime: Runtime; file: string; command: string[] }[] = [
  { runtime: "deno", file: "examples/deno_server.ts", command: [bin("deno"), "run", "-A"] },
  { runtime: "bun", file: "examples/bun_server.ts", command: [bin("bun")] },
  { runtime: "node", file: "examples/node_server.ts", command: [bin("node")] },
];

function onlyUnder(r: Runtime): { skip: string | false } {
  return {
    skip: runner === r ? false : `the ${r} example runs only under ${r}'s test runner (this is ${runner})`,
  };
}

describe("examples", () => {
  for (const { runtime, file, command } of EXAMPLES) {
    it(`${file} --once serves the app next to the grid and answers /hello through the peer`, onlyUnder(runtime), async () => {
      const port = await freePortPair();
      const [cmd, ...args] = command;
      const res = await run(cmd, [...args, file, "--port", String(port), "--once"], { timeoutMs: RUN_TIMEOUT_MS });
      const what = `${runtime} ${file} --port ${port} --once`;
      assert.equal(res.code, 0, describeRun(what, res));
      const lines = res.stdout.trim().split("\n");
      assert.equal(
        lines[0],
        `app on http://127.0.0.1:${port}/hello?name=${runtime}, grid nodes ws://127.0.0.1:${port} and ws://127.0.0.1:${
          port + 1
        }`,
        describeRun(what, res),
      );
      const prefix = `GET /hello?name=${runtime} -> 200 `;
      const answer = lines.find((l) => l.startsWith(prefix));
      assert.ok(answer, `a line starting with "${prefix}"\n${describeRun(what, res)}`);
      assert.deepEqual(JSON.parse(answer.slice(prefix.length)), {
        greeting: `Hello, ${runtime}!`,
        servedBy: `ws://127.0.0.1:${port + 1}`,
      });
      assert.equal(lines.length, 2, `no other output\n${describeRun(what, res)}`);
    });
  }
});

const RUNNER_COMMAND: Record<Runtime, string[]> = {
  deno: [bin("deno"), "run", "-A"],
  bun: [bin("bun")],
  node: [bin("node")],
};

describe("examples/fenced_kv.ts", () => {
  it(`refuses the paused writer's stale token and keeps the later write (under ${runner})`, async () => {
    const ports = await freePorts(3);
    const [cmd, ...args] = RUNNER_COMMAND[runner];
    const res = await run(cmd, [...args, "examples/fenced_kv.ts", "--ports", ports.join(",")], { timeoutMs: RUN_TIMEOUT_MS });
    const what = `${runner} examples/fenced_kv.ts`;
    assert.equal(res.code, 0, describeRun(what, res));
    const lines = res.stdout.trim().split("\n");
    const tokenOf = (re: RegExp) => Number(lines.find((l) => re.test(l))?.match(/token (\d+)/)?.[1]);
    const a = tokenOf(/^A holds/);
    const b = tokenOf(/^B holds/);
    assert.ok(Number.isSafeInteger(a) && Number.isSafeInteger(b) && b > a, describeRun(what, res));
    assert.ok(lines.includes(`B put balance=200 with token ${b} -> accepted`), describeRun(what, res));
    assert.ok(lines.includes(`A put balance=100 with token ${a} -> rejected: stale token ${a} < ${b}`), describeRun(what, res));
    assert.equal(lines.at(-1), "account/42 is balance=200", describeRun(what, res));
  });
});
