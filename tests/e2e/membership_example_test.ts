/**
 * Runs examples/membership.ts briefly, as two processes of this runner's runtime sharing a peer
 * file: the second node is added to the file while the first runs, the two connect and answer
 * each other's broadcast, then it is taken out of the file again and the first node drops it.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { bin, freePorts, ROOT, runner } from "./_subprocess.ts";

const COMMAND: Record<typeof runner, string[]> = {
  deno: [bin("deno"), "run", "-A"],
  bun: [bin("bun")],
  node: [bin("node")],
};

interface Proc {
  lines: string[];
  exited: Promise<number | null>;
  kill(): void;
}

function start(args: string[]): Proc {
  const [cmd, ...pre] = COMMAND[runner];
  const child = spawn(cmd, [...pre, "examples/membership.ts", ...args], {
    cwd: ROOT,
    env: { ...process.env, NO_COLOR: "1", DENO_NO_UPDATE_CHECK: "1" },
  });
  const lines: string[] = [];
  let buf = "";
  const take = (chunk: Buffer) => {
    buf += chunk.toString();
    const parts = buf.split("\n");
    buf = parts.pop()!;
    lines.push(...parts);
  };
  child.stdout.on("data", take);
  child.stderr.on("data", (c: Buffer) => lines.push(...c.toString().trim().split("\n").map((l) => `stderr: ${l}`)));
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  return { lines, exited, kill: () => child.kill("SIGKILL") };
}

async function until(cond: () => boolean, what: string, p: Proc[], ms = 20_000): Promise<void> {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > ms) throw new Error(`Timed out after ${ms} ms waiting for ${what}; output:\n${p.map((x) => x.lines.join("\n")).join("\n---\n")}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe("examples/membership.ts", () => {
  it(`re-reads its peer file: a node added to it connects and answers the broadcast, taken out it is dropped (under ${runner})`, { timeout: 60_000 }, async () => {
    const dir = mkdtempSync(join(tmpdir(), "wsgrid-membership-"));
    const file = join(dir, "peers.txt");
    const [pa, pb] = await freePorts(2);
    const a = `ws://127.0.0.1:${pa}`;
    const b = `ws://127.0.0.1:${pb}`;
    writeFileSync(file, `# the grid\n${a}\n`);
    const procs: Proc[] = [];
    try {
      const na = start(["--local", a, "--peers-file", file, "--interval", "200", "--for", "30"]);
      procs.push(na);
      await until(() => na.lines.some((l) => l.startsWith(`node ${a} up`)), "node a up", procs);
      writeFileSync(file, `# the grid\n${a}\n${b}\n`);
      await until(() => na.lines.includes(`hosts +${b}`), "a adds b", procs);
      const nb = start(["--local", b, "--peers-file", file, "--interval", "200", "--for", "30"]);
      procs.push(nb);
      await until(() => na.lines.includes(`connected ${b}`) && nb.lines.includes(`connected ${a}`), "a and b connected", procs);
      await until(() => na.lines.includes(`whoami ${b}: 2 hosts`) && nb.lines.includes(`whoami ${a}: 2 hosts`), "broadcast answers", procs);
      writeFileSync(file, `${a}\n`);
      await until(() => na.lines.includes(`hosts -${b}`), "a drops b", procs);
      await until(() => nb.lines.includes(`disconnected ${a}`), "b sees a go", procs);
      assert.ok(!na.lines.some((l) => l.startsWith("stderr:")), na.lines.join("\n"));
    } finally {
      for (const p of procs) p.kill();
      await Promise.all(procs.map((p) => p.exited));
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it(`--dns localhost resolves to this node itself, and --for ends the node by itself (under ${runner})`, { timeout: 60_000 }, async () => {
    const [port] = await freePorts(1);
    const url = `ws://127.0.0.1:${port}`;
    const p = start(["--local", url, "--dns", "localhost", "--dns-port", String(port), "--interval", "200", "--for", "1.5"]);
    try {
      const code = await Promise.race([p.exited, new Promise<"hung">((r) => setTimeout(() => r("hung"), 20_000))]);
      assert.equal(code, 0, p.lines.join("\n"));
      assert.ok(p.lines.includes(`node ${url} up; peers from DNS localhost, every 200 ms`), p.lines.join("\n"));
      assert.ok(!p.lines.some((l) => l.startsWith("stderr:")), `localhost resolved without error\n${p.lines.join("\n")}`);
    } finally {
      p.kill();
    }
  });
});
