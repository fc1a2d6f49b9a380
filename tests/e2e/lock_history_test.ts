/**
 * The lock history checker (Jepsen-style): three lock nodes and three clients, on Deno,
 * Bun and Node processes, take write locks on two resources while the test kills lock
 * nodes with SIGKILL (and restarts them, state lost) and pauses clients with SIGSTOP for
 * longer than the lease, and cuts lock nodes off through fault proxies (blackhole, then
 * delay). Every critical section writes its fencing token to a fenced
 * register served by this process, which refuses a token not above the last one it
 * accepted for the resource. The checks:
 *
 * - the register's accepted tokens are strictly increasing per resource, and it never
 *   refused a live holder (one writing before its own `expiresAt`, `lost` not fired): a
 *   token that went backwards would show there;
 * - no two holders whose holds overlapped (by their own `expiresAt`, or their unlock when
 *   earlier) both had a write accepted;
 * - no acquire outlived its timeout or its signal by more than the bound (acquires of a
 *   paused process are left out: the pause is not the library's);
 * - counts: writes, refused stale writes (what a paused holder would have written without
 *   fencing), lock-node kills, pauses, partitions.
 *
 * Short mode (the test command): 20 s of faults, under Node's runner only (the processes
 * are of all three runtimes whatever the runner). Long mode: WSGRID_LONG=1 (120 s),
 * run by `npm run reliability`. Environment: WSGRID_LOCK_HISTORY_SECONDS overrides.
 */
import { after, describe, it } from "node:test";
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import process from "node:process";
import { createInterface } from "node:readline";
import { Manager } from "../../mod.ts";
import { type GridServer, serve } from "../../src/adapters/serve.ts";
import { bin, freePorts, ROOT, runner } from "./_subprocess.ts";
import { record } from "./_reliability.ts";
import { FaultProxy } from "./_fault_proxy.ts";
import {
  type HistoryClientSummary,
  type HistoryNodeConfig,
  HistoryHeldHandler,
  HistoryReleaseHandler,
  type HistoryWrite,
  HistoryWriteHandler,
} from "./_lock_history_protocol.ts";

type Runtime = "deno" | "bun" | "node";

const LONG = process.env.WSGRID_LONG === "1";
const SECONDS = Number(process.env.WSGRID_LOCK_HISTORY_SECONDS ?? (LONG ? 120 : 20));
const LEASE_MS = 1_000;
const PAUSE_MS = 2_500;
const ACQUIRE_TIMEOUT_MS = 400;
/** Largest accepted overshoot of an acquire past its timeout or abort, ms (generous: a loaded 2-core machine). */
const OVERSHOOT_BOUND_MS = 100;
/** Clock tolerance between processes when comparing holds, ms. */
const CLOCK_SLACK_MS = 5;
const SCRIPT = "tests/e2e/_lock_history_node.ts";
const SECRET = "lock history secret";

const COMMAND: Record<Runtime, string[]> = {
  deno: [bin("deno"), "run", "-A"],
  bun: [bin("bun")],
  node: [bin("node")],
};

interface Proc {
  config: HistoryNodeConfig;
  runtime: Runtime;
  child: ChildProcess;
  lines: string[];
  exited: Promise<void>;
}

const procs = new Set<Proc>();

after(() => {
  for (const p of procs) if (p.child.exitCode === null) p.child.kill("SIGKILL");
});

async function start(config: HistoryNodeConfig, runtime: Runtime): Promise<Proc> {
  const [cmd, ...args] = COMMAND[runtime];
  const child = spawn(cmd, [...args, SCRIPT, JSON.stringify(config)], { cwd: ROOT, stdio: ["pipe", "pipe", "pipe"], env: { ...process.env, NO_COLOR: "1" } });
  const lines: string[] = [];
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const proc: Proc = { config, runtime, child, lines, exited };
  procs.add(proc);
  let stderr = "";
  child.stderr!.on("data", (d: Uint8Array) => stderr = (stderr + d.toString()).slice(-4_000));
  const ready = new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${config.name} (${runtime}) did not print READY in 30 s: ${stderr}`)), 30_000);
    createInterface({ input: child.stdout! }).on("line", (line) => {
      lines.push(line);
      if (line === "READY") {
        clearTimeout(timer);
        resolve();
      }
    });
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`${config.name} (${runtime}) exited with ${code} before READY: ${stderr}`));
    });
  });
  await ready;
  return proc;
}

async function kill9(p: Proc): Promise<void> {
  p.child.kill("SIGKILL");
  await p.exited;
  procs.delete(p);
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

interface HistoryRecord {
  write: HistoryWrite;
  accepted: boolean;
  end?: number;
}

describe("locks: history checker", () => {
  const skip = runner === "node" ? false : `runs under Node's runner only (its processes run on all three runtimes); this is ${runner}`;
  it(`${SECONDS} s of lock-node kills and holder pauses: fenced writes stay ordered`, { skip, timeout: (SECONDS + 120) * 1_000 }, async () => {
    const ports = await freePorts(10);
    // Each lock node's grid URL is a fault proxy in front of its real port (ports 7..9).
    const realPorts = ports.slice(7, 10);
    const proxies = await Promise.all(realPorts.map((targetPort, i) => FaultProxy.start({ targetPort, port: ports[i] })));
    const urls = ports.slice(0, 7).map((p) => `ws://127.0.0.1:${p}`);
    const lockHosts = urls.slice(0, 3);
    const clientHosts = urls.slice(3, 6);
    const registerUrl = urls[6];
    const base = { hosts: urls, lockHosts, register: registerUrl, secret: SECRET, resources: ["r0", "r1"], leaseMs: LEASE_MS, acquireTimeoutMs: ACQUIRE_TIMEOUT_MS };

    // The fenced register.
    const records = new Map<string, HistoryRecord>();
    const lastToken = new Map<string, number>();
    const accepted = new Map<string, number[]>();
    const grid = new Manager({ local: registerUrl, hosts: urls, secret: SECRET, pingInterval: 300, backoff: { base: 20, cap: 200 } });
    grid.handle(HistoryWriteHandler, (w) => {
      const last = lastToken.get(w.resource) ?? 0;
      const ok = Number.isSafeInteger(w.token) && w.token > last;
      if (ok) {
        lastToken.set(w.resource, w.token);
        const list = accepted.get(w.resource) ?? [];
        list.push(w.token);
        accepted.set(w.resource, list);
      }
      records.set(w.uid, { write: w, accepted: ok });
      return { accepted: ok };
    });
    // A pause is aimed at a holder: the target is stopped as soon as it says it holds a lock.
    let pauseTarget: { client: string; holding: () => void } | undefined;
    grid.handle(HistoryHeldHandler, ({ client }) => {
      if (pauseTarget?.client === client) pauseTarget.holding();
      return null;
    });
    grid.handle(HistoryReleaseHandler, ({ uid, end }) => {
      const r = records.get(uid);
      if (r !== undefined) r.end = end;
      return null;
    });
    const server: GridServer = await serve(grid, { port: ports[6], hostname: "127.0.0.1" });
    try {
      const lockRuntimes: Runtime[] = ["node", "deno", "bun"];
      const clientRuntimes: Runtime[] = ["deno", "bun", "node"];
      const lockConfigs = lockHosts.map((local, i): HistoryNodeConfig => ({ ...base, role: "lock", name: `lock${i}`, local, servePort: realPorts[i] }));
      const locks = await Promise.all(lockConfigs.map((c, i) => start(c, lockRuntimes[i])));
      const clients = await Promise.all(
        clientHosts.map((local, i) => start({ ...base, role: "client", name: `client${i}`, local }, clientRuntimes[i])),
      );

      let kills = 0;
      let pauses = 0;
      let partitions = 0;
      const end = performance.now() + SECONDS * 1_000;
      for (let step = 0; performance.now() < end && step < 1_000; step++) {
        await sleep(1_500);
        const kind = step % 3;
        const round = Math.floor(step / 3);
        if (kind === 0) {
          const c = clients[round % clients.length];
          await Promise.race([new Promise<void>((holding) => pauseTarget = { client: c.config.name, holding }), sleep(1_000)]);
          pauseTarget = undefined;
          c.child.kill("SIGSTOP");
          pauses++;
          await sleep(PAUSE_MS);
          c.child.kill("SIGCONT");
        } else if (kind === 2) {
          // A lock node cut off (its inbound links blackholed), then slow, then healed.
          const proxy = proxies[(round + 1) % proxies.length];
          proxy.set("blackhole");
          partitions++;
          await sleep(2_000);
          proxy.set("delay", 50);
          await sleep(1_000);
          proxy.set("pass");
        } else {
          const i = round % locks.length;
          await kill9(locks[i]);
          kills++;
          await sleep(500);
          locks[i] = await start(lockConfigs[i], lockRuntimes[i]);
        }
      }
      await sleep(1_000);

      const summaries: HistoryClientSummary[] = [];
      for (const c of clients) {
        c.child.stdin!.write("stop\n");
      }
      for (const c of clients) {
        await Promise.race([c.exited, sleep(15_000)]);
        const line = c.lines.find((l) => l.startsWith("{"));
        assert.ok(line, `${c.config.name} (${c.runtime}) printed its summary`);
        summaries.push(JSON.parse(line) as HistoryClientSummary);
      }
      for (const l of locks) {
        l.child.stdin!.end();
        await Promise.race([l.exited, sleep(10_000)]);
      }

      // 1. Accepted tokens strictly increase per resource.
      for (const [resource, tokens] of accepted) {
        for (let i = 1; i < tokens.length; i++) assert.ok(tokens[i] > tokens[i - 1], `${resource}: ${tokens[i - 1]} then ${tokens[i]}`);
      }
      // 2. No two holders whose holds overlapped both had writes accepted.
      const all = [...records.values()];
      let overlapping = 0;
      for (const resource of base.resources) {
        const holds = all.filter((r) => r.accepted && r.write.resource === resource)
          .map((r) => ({ uid: r.write.uid, start: r.write.start, end: Math.min(r.end ?? Infinity, r.write.expiresAt) }))
          .sort((a, b) => a.start - b.start);
        for (let i = 1; i < holds.length; i++) {
          if (holds[i].start + CLOCK_SLACK_MS < holds[i - 1].end) overlapping++;
        }
      }
      // 3. Overshoots.
      const maxTimeout = Math.max(...summaries.map((s) => s.maxTimeoutOvershootMs));
      const maxAbort = Math.max(...summaries.map((s) => s.maxAbortOvershootMs));
      const writes = all.length;
      const refused = all.filter((r) => !r.accepted).length;
      const lostFirst = all.filter((r) => r.write.lostBeforeWrite).length;
      const refusedLive = all.filter((r) => !r.accepted && !r.write.lostBeforeWrite && r.write.at + CLOCK_SLACK_MS < r.write.expiresAt);
      const sum = (k: keyof HistoryClientSummary) => summaries.reduce((n, s) => n + (s[k] as number), 0);
      console.log(
        `lock history: ${SECONDS} s, ${kills} lock-node kills, ${pauses} holder pauses of ${PAUSE_MS} ms (lease ${LEASE_MS} ms), ` +
          `${partitions} lock-node partitions (2 s blackhole, 1 s of 50 ms delay); ` +
          `${sum("acquired")} acquires, ${sum("timeouts")} timeouts, ${sum("aborts")} aborts, ${sum("errors")} errors; ` +
          `${writes} fenced writes, ${writes - refused} accepted, ${refused} refused as stale ` +
          `(would have been written without fencing; ${lostFirst} of the writers had seen lost first); ` +
          `${refusedLive.length} live holders refused, ${overlapping} overlapping accepted holds; max overshoot past timeout ${maxTimeout.toFixed(1)} ms, ` +
          `past abort ${maxAbort.toFixed(1)} ms (${sum("pausedAcquires")} paused acquires left out); ` +
          `tokens ${[...accepted.values()].map((t) => `${t[0]}..${t.at(-1)}`).join(", ")}`,
      );
      assert.equal(overlapping, 0, "holders whose holds overlapped both wrote");
      assert.deepEqual(refusedLive.map((r) => r.write), [], "live holders refused by the fenced register");
      assert.ok(writes > 0 && sum("acquired") > 0, "the clients locked and wrote");
      // Not vacuous: the pauses made holders write past their lease, and fencing refused them.
      assert.ok(refused >= 1, "no paused holder wrote late");
      assert.ok(maxTimeout <= OVERSHOOT_BOUND_MS, `an acquire settled ${maxTimeout} ms past its timeout`);
      assert.ok(maxAbort <= OVERSHOOT_BOUND_MS, `an acquire settled ${maxAbort} ms past its abort`);
      const round = (x: number) => Math.round(x * 10) / 10;
      record({
        scenario: "lock-history",
        title: `${SECONDS} s of lock-node kills and holder pauses`,
        setup: `3 lock nodes (node, deno, bun) and 3 clients (deno, bun, node), 2 resources, lease ${LEASE_MS} ms; ` +
          `in turn: a client paused ${PAUSE_MS} ms as soon as it holds a lock, a lock node killed with SIGKILL ` +
          `and restarted, a lock node's links blackholed 2 s then delayed 50 ms for 1 s (fault proxy)`,
        durationMs: SECONDS * 1_000,
        bound: "0 live holders refused, 0 overlapping accepted holds, overshoot past timeout or abort ≤ 100 ms",
        figures: [
          { name: "lock-node kills", value: kills, unit: "" },
          { name: "holder pauses", value: pauses, unit: "" },
          { name: "lock-node partitions (blackhole, then delay)", value: partitions, unit: "" },
          { name: "acquires", value: sum("acquired"), unit: "" },
          { name: "fenced writes", value: writes, unit: "" },
          { name: "stale writes refused (would have been written without fencing)", value: refused, unit: "" },
          { name: "live holders refused", value: refusedLive.length, unit: "", bound: 0, op: "=" },
          { name: "overlapping accepted holds", value: overlapping, unit: "", bound: 0, op: "=" },
          { name: "max overshoot past timeout", value: round(maxTimeout), unit: "ms", bound: OVERSHOOT_BOUND_MS, op: "<=" },
          { name: "max overshoot past abort", value: round(maxAbort), unit: "ms", bound: OVERSHOOT_BOUND_MS, op: "<=" },
        ],
      });
    } finally {
      await grid.close();
      await server.close();
      await Promise.all(proxies.map((p) => p.close()));
    }
  });
});
