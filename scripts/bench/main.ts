/**
 * Benchmark harness (`deno task bench`): wsgrid against a raw WebSocket
 * baseline on Deno, Bun and Node (binaries from node_modules/.bin), server and
 * client in separate processes of the same runtime, plus peer libraries on
 * Node. Suites (`--suites`, all by default):
 *
 * - `rtt`: single requests, 64 B and 4 KiB, concurrency 1, 64, 256: round trips/s and
 *   p50/p99 for raw, wsgrid and (Node, 64 B, concurrency 1 and 64) capnweb, birpc, socket.io;
 * - `stream`: one-way throughput of 16 KiB messages, wsgrid stream vs raw (and capnweb's
 *   ReadableStream on Node), MB/s and the peak RSS of both processes;
 * - `loaded`: single-request p99 while a stream runs on the same connection vs idle;
 * - `slow`: a slow stream consumer; the writer's RSS;
 * - `lockargs`: the LockArgs codec (binary vs text vs JSON, and the floor of its native calls), ns/op and bytes;
 * - `frame`: encode/decode of a 64-request batch frame, ns per message (frame_micro.ts);
 * - `scale`: full mesh of 2, 8, 32 Managers in one process;
 * - `membership`: 8, 32, 64 Managers in one process that start alone and are given the full
 *   list with `setHosts`: time until every pair is up, memory per connection, and the time to
 *   shrink back to 3 (goal: 64 hosts up in < 5 s, ≤ 64 KiB per connection);
 * - `profile`: `node --cpu-prof` of the 64 B, concurrency 64 request loop, top self time;
 * - `interceptors`: wsgrid single requests, 64 B at concurrency 64, with no interceptor, a
 *   no-op interceptor pair and the OpenTelemetry pair installed on both processes, interleaved
 *   in each round (goal: the machinery costs ≤ 5 % with none installed).
 *
 * Cases are interleaved within each round (raw, wsgrid, raw, wsgrid…) and the
 * tables report medians over rounds plus the ratio to the baseline (ratio of
 * the medians, and the median of the per-round ratios, which is less sensitive
 * to load that drifts during the run). Results go to `.bench/results.json`;
 * a run of every suite on every runtime then regenerates docs/BENCHMARKS.md and
 * docs/bench-ratios.svg (scripts/bench/report.ts; `--no-docs` to skip).
 *
 * Where the two processes run matters most at concurrency 1: on the same CPU a
 * round trip is a direct hand-off (~20 µs here), on two CPUs it pays two
 * cross-CPU wake-ups (~65 µs), and an unpinned pair flips between the two from
 * run to run. So by default (`--pin split`, when `taskset` exists and there are
 * at least 2 CPUs) the server runs on CPU 0 and the client on CPU 1;
 * `--pin same` puts both on CPU 0, `--pin none` leaves placement to the OS.
 *
 * ```sh
 * deno task bench                                   # everything, short (< 5 min on 2 cores)
 * deno task bench --full                            # 5 rounds of every cell, 3 s windows (about 30 min)
 * deno run -A scripts/bench/main.ts --quick         # shortest possible, docs not rewritten
 * deno run -A scripts/bench/main.ts --suites rtt --runtimes bun,node --rounds 5 --duration 3
 * ```
 *
 * Flags: `--suites rtt,stream,loaded,slow,lockargs,frame,scale,membership,profile`, `--runtimes deno,bun,node`,
 * `--cases raw,wsgrid,capnweb,birpc,socketio`, `--concurrency 1,64,256`, `--sizes 64,4096`,
 * `--nodes 2,8,32`, `--membership-nodes 8,32,64`, `--rounds 2`, `--secondary-rounds 1` (4 KiB and concurrency 256 cells), `--duration 1` (s), `--loaded-duration 3` (s, at least `--duration`), `--warmup 0.3` (s), `--quick`, `--full`, `--no-docs`,
 * `--pin split|same|none`, `--dialer client|server|any` (which wsgrid process opens the
 * socket; `client`, like the raw baseline, by default), `--quiet-below 0.2` and `--quiet-wait 10` (s; each run
 * first waits up to that long for other programs to leave the CPUs below 20 %
 * busy; `--quiet-budget 40` s bounds all such waiting), `--out .bench/results.json`.
 *
 * @module
 */

import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { cpus, loadavg, release, totalmem } from "node:os";
import { dirname, join, resolve } from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { numberFlag, parseFlags, type LoadResult } from "./_load.ts";
import {
  type Child,
  firstLine,
  freePorts,
  killAll,
  type Runtime,
  start,
  stop,
  waitJson,
  waitQuiet,
  waitReady,
} from "./_proc.ts";
import { type BenchCase, CASES, type Dialer, type Suite } from "./cases.ts";
import { formatProfile, type ProfileSummary, summarizeProfile } from "./cpuprofile.ts";
import type { LockArgsBenchResult } from "./lockargs.ts";
import type { LocksBenchResult } from "./locks.ts";
import { renderReport, type RttRow as Row, type SuiteRow } from "./report.ts";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const BIN = join(ROOT, "node_modules/.bin");

const RUNTIMES: Record<string, Runtime> = {
  deno: { name: "deno", bin: join(BIN, "deno"), runArgs: (s, x = []) => ["run", "-A", "--quiet", ...x, s] },
  bun: { name: "bun", bin: join(BIN, "bun"), runArgs: (s, x = []) => ["run", ...x, s] },
  node: { name: "node", bin: join(BIN, "node"), runArgs: (s, x = []) => ["--no-warnings", ...x, s] },
};
/** Runtime flags that expose a synchronous GC to scripts (Bun has `Bun.gc`). */
const GC_FLAGS: Record<string, string[]> = { deno: ["--v8-flags=--expose-gc"], bun: [], node: ["--expose-gc"] };

interface Run {
  round: number;
  runtime: string;
  case: string;
  size: number;
  concurrency: number;
  /** Fraction of all CPUs busy just before the run (other programs). */
  busyBefore?: number;
  result?: LoadResult;
  error?: string;
}


/** A run of one case in a suite other than rtt: the client's JSON and the server's exit JSON. */
interface SuiteRun {
  suite: Suite;
  round: number;
  runtime: string;
  case: string;
  busyBefore?: number;
  client?: Record<string, unknown>;
  server?: Record<string, unknown>;
  error?: string;
}

const ALL_SUITES = ["rtt", "stream", "loaded", "slow", "lockargs", "locks", "frame", "scale", "membership", "profile", "interceptors"];
const flags = parseFlags(process.argv.slice(2));
const quick = flags.has("quick");
const full = flags.has("full");
const suites = (flags.get("suites") ?? ALL_SUITES.join(",")).split(",").filter(Boolean);
for (const s of suites) if (!ALL_SUITES.includes(s)) throw new TypeError(`Cannot run: unknown suite "${s}" (${ALL_SUITES.join(", ")})`);
const runtimeNames = (flags.get("runtimes") ?? "deno,bun,node").split(",").filter(Boolean);
const caseNames = flags.get("cases")?.split(",").filter(Boolean);
const concurrencies = (flags.get("concurrency") ?? (quick ? "1,64" : "1,64,256")).split(",").map(Number);
const sizes = (flags.get("sizes") ?? flags.get("size") ?? (quick ? "64" : "64,4096")).split(",").map(Number);
const nodeCounts = (flags.get("nodes") ?? "2,8,32").split(",").map(Number);
const membershipCounts = (flags.get("membership-nodes") ?? "8,32,64").split(",").map(Number);
const rounds = numberFlag(flags, "rounds", full ? 5 : quick ? 1 : 2);
/** Rounds of the secondary round-trip cells (other sizes, concurrency other than 1 and 64). */
const secondaryRounds = numberFlag(flags, "secondary-rounds", full ? rounds : 1);
const duration = numberFlag(flags, "duration", full ? 3 : quick ? 0.5 : 1);
/**
 * The `loaded` suite measures at least this long (s). A request's tail under a stream
 * follows the reading process's garbage collector, which settles into its cadence over
 * seconds: on Deno 2.9 the same build measured 3.0–4.2x idle in 1 s windows and 12–18x
 * in 3 s windows (2026-12-06), so a 1 s window understates it.
 */
const loadedDuration = quick ? duration : Math.max(duration, numberFlag(flags, "loaded-duration", 3));
const warmup = numberFlag(flags, "warmup", full ? 1 : quick ? 0.2 : 0.3);
const profileSeconds = numberFlag(flags, "profile-seconds", full ? 5 : 3);
const canPin = cpus().length >= 2 && ["/usr/bin/taskset", "/bin/taskset"].some(existsSync);
const pin = flags.get("pin") ?? (canPin ? "split" : "none");
if (!["split", "same", "none"].includes(pin)) throw new TypeError(`Cannot run: --pin must be split, same or none, got "${pin}"`);
if (pin !== "none" && !canPin) throw new TypeError(`Cannot pin: taskset or a second CPU is missing`);
const serverCpu = pin === "none" ? undefined : 0;
const clientCpu = pin === "none" ? undefined : pin === "same" ? 0 : 1;
const dialer = (flags.get("dialer") ?? "client") as Dialer;
if (!["client", "server", "any"].includes(dialer)) throw new TypeError(`Cannot run: --dialer must be client, server or any, got "${dialer}"`);
/** Runs start once other programs keep less than this fraction of the CPUs busy (waiting up to quietWaitMs). */
const quietBelow = numberFlag(flags, "quiet-below", 0.2);
const quietWaitMs = numberFlag(flags, "quiet-wait", full ? 10 : quick ? 1 : 3) * 1000;
/** All waiting for quiet together is bounded, so a busy machine cannot stretch the bench unboundedly. */
let quietBudgetMs = numberFlag(flags, "quiet-budget", full ? 60 : quick ? 5 : 20) * 1000;
const outPath = resolve(ROOT, flags.get("out") ?? ".bench/results.json");
/** Docs are regenerated only from a run of every suite on every runtime. */
const writeDocs = !flags.has("no-docs") && !quick && suites.length === ALL_SUITES.length &&
  ["deno", "bun", "node"].every((r) => runtimeNames.includes(r)) && !caseNames;

for (const r of runtimeNames) {
  if (!RUNTIMES[r]) throw new TypeError(`Cannot run: unknown runtime "${r}" (deno, bun, node)`);
}
if (concurrencies.some((c) => !Number.isInteger(c) || c < 1 || c > 10_000)) {
  throw new RangeError(`Cannot run: --concurrency must be integers in 1..10000`);
}
if (sizes.some((c) => !Number.isInteger(c) || c < 4 || c > 1 << 20)) {
  throw new RangeError(`Cannot run: --sizes must be integers in 4..1048576`);
}
const cases = CASES.filter((c) => !caseNames || caseNames.includes(c.name));
const skipped = new Map<string, string>();
for (const c of cases) {
  const why = c.skip(ROOT);
  if (why) skipped.set(c.name, why);
}
const active = cases.filter((c) => !skipped.has(c.name));
/** Cases that failed on a runtime are not retried in later rounds ("runtime/case" → reason). */
const broken = new Map<string, string>();

const log = (s: string): void => void process.stderr.write(s + "\n");

const applies = (c: BenchCase, suite: Suite, rt: string): boolean =>
  (c.suite ?? "rtt") === suite && (!c.runtimes || c.runtimes.includes(rt));

/** Runs one case once: server, then client; returns the client's JSON and the server's exit JSON (if any). */
async function measure<T>(
  rt: Runtime,
  c: BenchCase,
  concurrency: number,
  size: number,
  extra: { server?: string[]; client?: string[] } = {},
  seconds = duration,
): Promise<{ client: T; server?: Record<string, unknown> }> {
  const reserved = await freePorts(c.ports);
  const ports = c.arrange ? await c.arrange(reserved, dialer) : reserved;
  const params = { concurrency, duration: seconds, warmup, size, ports };
  let server: Child | undefined;
  let client: Child | undefined;
  try {
    server = start(rt, c.server(params), ROOT, serverCpu, extra.server);
    const port = await waitReady(server, 20_000);
    client = start(rt, c.client(params, port), ROOT, clientCpu, extra.client);
    const result = await waitJson<T>(client, (2 * seconds + 2 * warmup) * 1000 + 30_000);
    await stop(server, 3000);
    const line = server.stdout().trim().split("\n").filter((l) => l.startsWith("{")).at(-1);
    return { client: result, server: line ? JSON.parse(line) as Record<string, unknown> : undefined };
  } finally {
    if (client) await stop(client);
    if (server) await stop(server);
  }
}

/** Runs a single script (no server) and returns its JSON line. */
async function runScript<T>(rt: Runtime, script: string, args: string[], runtimeFlags: string[], timeoutMs: number): Promise<T> {
  const child = start(rt, { script, args }, ROOT, undefined, runtimeFlags);
  try {
    return await waitJson<T>(child, timeoutMs);
  } finally {
    await stop(child);
  }
}

/** One step of the run: a label for the progress display and the work, returning the line shown after it. */
interface Task {
  label: string;
  run(): Promise<string>;
}

async function main(): Promise<void> {
  const runtimes = runtimeNames.map((n) => RUNTIMES[n]);
  const versions: Record<string, string> = {};
  for (const rt of runtimes) versions[rt.name] = await firstLine(rt.bin, ["--version"]);
  const cpuList = cpus();
  const machine = {
    cpu: cpuList[0]?.model ?? "unknown",
    cores: cpuList.length,
    memGiB: Math.round(totalmem() / 2 ** 30),
    os: `${process.platform} ${release()}`,
    loadavg: loadavg().map((x) => Math.round(x * 100) / 100),
  };
  console.log(`machine: ${machine.cpu}, ${machine.cores} cores, ${machine.memGiB} GiB, ${machine.os}, load ${machine.loadavg.join(" ")}`);
  for (const rt of runtimes) console.log(`${rt.name.padEnd(5)}: ${versions[rt.name]}`);
  console.log(`settings: suites ${suites.join(",")}; rounds ${rounds}, duration ${duration} s, warm-up ${warmup} s, payload ${sizes.join(",")} B, concurrency ${concurrencies.join(",")}, pin ${pin}, wsgrid dialer ${dialer}`);
  for (const [name, why] of skipped) console.log(`skipping case "${name}": ${why}`);

  const runs: Run[] = [];
  const suiteRuns: SuiteRun[] = [];
  const lockargs: Record<string, { msgpackrNative: boolean; results: LockArgsBenchResult[] } | { error: string }> = {};
  const scale: Record<string, unknown>[] = [];
  const membership: Record<string, unknown>[] = [];
  const frameMicro: Record<string, Record<string, unknown>> = {};
  let profile: Record<string, { client?: ProfileSummary; server?: ProfileSummary; load?: ProfiledResult; error?: string }> | undefined;
  const tasks: Task[] = [];
  const t0 = performance.now();

  /** Waits for a quiet machine (bounded), returns the busy fraction seen. */
  const quiet = async (): Promise<number> => {
    const w0 = performance.now();
    const busy = await waitQuiet(quietBelow, Math.min(quietWaitMs, quietBudgetMs));
    quietBudgetMs = Math.max(0, quietBudgetMs - (performance.now() - w0));
    return busy;
  };
  const busyNote = (b: number | undefined): string =>
    b !== undefined && b >= quietBelow ? `  [machine busy ${Math.round(b * 100)}% before]` : "";

  // Single requests: every size × concurrency × case, cases interleaved within a round.
  if (suites.includes("rtt")) {
    for (let round = 1; round <= rounds; round++) {
      for (const rt of runtimes) {
        for (const size of sizes) {
          for (const concurrency of concurrencies) {
            for (const c of active) {
              if (!applies(c, "rtt", rt.name)) continue;
              if (c.sizes && !c.sizes.includes(size)) continue;
              if (c.concurrencies && !c.concurrencies.includes(concurrency)) continue;
              // Later rounds repeat only the primary cells (first size, concurrency 1 and 64) unless --full.
              if (round > secondaryRounds && (size !== sizes[0] || (concurrency !== 1 && concurrency !== 64))) continue;
              const key = `rtt/${rt.name}/${c.name}`;
              const run: Run = { round, runtime: rt.name, case: c.name, size, concurrency };
              runs.push(run);
              tasks.push({
                label: `rtt    r${round} ${rt.name.padEnd(4)} ${c.name.padEnd(8)} ${String(size).padStart(4)} B c=${String(concurrency).padEnd(3)}`,
                async run() {
                  if (broken.has(key)) {
                    run.error = broken.get(key);
                    return "skipped (failed earlier)";
                  }
                  try {
                    run.busyBefore = await quiet();
                    run.result = (await measure<LoadResult>(rt, c, concurrency, size)).client;
                    const r = run.result;
                    return `${fmtInt(r.rps).padStart(8)} rps  p50 ${r.p50} ms  p99 ${r.p99} ms${busyNote(run.busyBefore)}`;
                  } catch (err) {
                    run.error = (err as Error).message;
                    broken.set(key, run.error);
                    return `FAILED: ${run.error}`;
                  }
                },
              });
            }
          }
        }
      }
    }
  }

  // Stream throughput, latency under a stream, slow consumer, interceptor cost.
  for (const suite of ["stream", "loaded", "slow", "interceptors"] as const) {
    if (!suites.includes(suite)) continue;
    for (let round = 1; round <= rounds; round++) {
      for (const rt of runtimes) {
        for (const c of active) {
          if (!applies(c, suite, rt.name)) continue;
          const key = `${suite}/${rt.name}/${c.name}`;
          const run: SuiteRun = { suite, round, runtime: rt.name, case: c.name };
          suiteRuns.push(run);
          tasks.push({
            label: `${suite.padEnd(6)} r${round} ${rt.name.padEnd(4)} ${c.name.padEnd(8)}`,
            async run() {
              if (broken.has(key)) {
                run.error = broken.get(key);
                return "skipped (failed earlier)";
              }
              try {
                run.busyBefore = await quiet();
                const r = await measure<Record<string, unknown>>(rt, c, suite === "interceptors" ? 64 : 1, 64, {}, suite === "loaded" ? loadedDuration : duration);
                run.client = r.client;
                run.server = r.server;
                return describeSuiteRun(run) + busyNote(run.busyBefore);
              } catch (err) {
                run.error = (err as Error).message;
                broken.set(key, run.error);
                return `FAILED: ${run.error}`;
              }
            },
          });
        }
      }
    }
  }

  if (suites.includes("lockargs")) {
    for (const rt of runtimes) {
      tasks.push({
        label: `lockargs  ${rt.name.padEnd(4)}`,
        async run() {
          try {
            const r = await runScript<{ msgpackrNative: boolean; results: LockArgsBenchResult[] }>(
              rt,
              "scripts/bench/lockargs_json.ts",
              // The script's own defaults (9 rounds of 40 ms) take ~10 s per runtime; shorter
              // rounds let the machine's noise flip the codec's goals from run to run.
              quick ? ["--rounds", "3", "--round-ms", "10", "--warmup-ms", "30"] : [],
              [],
              120_000,
            );
            lockargs[rt.name] = r;
            return r.results.filter((x) => x.resources === 1).map((x) => `${x.codec.split(" ")[0]} ${x.nsPerOp} ns`).join(", ") + " (1 resource)";
          } catch (err) {
            lockargs[rt.name] = { error: (err as Error).message };
            return `FAILED: ${(err as Error).message}`;
          }
        },
      });
    }
  }

  if (suites.includes("frame")) {
    for (const rt of runtimes) {
      tasks.push({
        label: `frame     ${rt.name.padEnd(4)}`,
        async run() {
          try {
            const r = await runScript<Record<string, number>>(rt, "scripts/bench/frame_micro.ts", full ? ["--rounds", "9"] : [], [], 60_000);
            frameMicro[rt.name] = r;
            return `decode ${r.decodeNsPerMsg} ns/message, encode ${r.encodeNsPerMsg} ns/message (batches of ${r.batch}); one TextDecoder.decode of a handler name ${r.textDecodeNs} ns; setTimeout+clearTimeout ${r.timerPairNs} ns`;
          } catch (err) {
            frameMicro[rt.name] = { error: (err as Error).message };
            return `FAILED: ${(err as Error).message}`;
          }
        },
      });
    }
  }

  if (suites.includes("scale")) {
    for (const rt of runtimes) {
      for (const nodes of nodeCounts) {
        tasks.push({
          label: `scale     ${rt.name.padEnd(4)} ${String(nodes).padStart(3)} nodes`,
          async run() {
            const row: Record<string, unknown> = { runtime: rt.name, nodes };
            scale.push(row);
            try {
              row.busyBefore = await quiet();
              const r = await runScript<Record<string, number>>(
                rt,
                "scripts/bench/scale.ts",
                ["--nodes", String(nodes), "--duration", String(duration), "--warmup", String(warmup)],
                GC_FLAGS[rt.name] ?? [],
                (duration + warmup) * 1000 + 90_000,
              );
              Object.assign(row, r);
              return `mesh up ${r.meshUpMs} ms, ${fmtInt(r.rps)} rps, p99 ${r.p99} ms, ${r.heapPerConnKB} KB heap / ${r.rssPerConnKB} KB RSS per connection${busyNote(row.busyBefore as number)}`;
            } catch (err) {
              row.error = (err as Error).message;
              return `FAILED: ${row.error}`;
            }
          },
        });
      }
    }
  }

  if (suites.includes("membership")) {
    for (const rt of runtimes) {
      for (const nodes of membershipCounts) {
        tasks.push({
          label: `members   ${rt.name.padEnd(4)} ${String(nodes).padStart(3)} nodes`,
          async run() {
            const row: Record<string, unknown> = { runtime: rt.name, nodes };
            membership.push(row);
            try {
              row.busyBefore = await quiet();
              const r = await runScript<Record<string, number>>(
                rt,
                "scripts/bench/scale.ts",
                ["--membership", "--nodes", String(nodes)],
                GC_FLAGS[rt.name] ?? [],
                120_000,
              );
              Object.assign(row, r);
              return `setHosts → all ${r.connections} up in ${r.joinMs} ms, back to 3 in ${r.shrinkMs} ms, ${r.heapPerConnKB} KB heap / ${r.rssPerConnKB} KB RSS per connection${busyNote(row.busyBefore as number)}`;
            } catch (err) {
              row.error = (err as Error).message;
              return `FAILED: ${row.error}`;
            }
          },
        });
      }
    }
  }

  if (suites.includes("profile") && existsSync(RUNTIMES.node.bin)) {
    const dir = resolve(ROOT, ".bench/prof");
    const read = (prefix: string): ProfileSummary | undefined => {
      const f = readdirSync(dir).find((x) => x === `${prefix}.cpuprofile`);
      // Start-up (module loading, type stripping) is skipped: the summary starts 0.5 s after the first call.
      return f
        ? summarizeProfile(JSON.parse(readFileSync(join(dir, f), "utf8")), 15, {
          untilUrl: ["/src/mux/", "/node_modules/ws/", "undici"],
          thenMs: 500,
        })
        : undefined;
    };
    profile = {};
    // Bun's stream is profiled too: it is where wsgrid's stream throughput is furthest from raw.
    const targets = [
      { key: "requests", suite: "rtt", what: "wsgrid 64 B c=64", runtime: "node", raw: false },
      { key: "stream", suite: "stream", what: "wsgrid stream 16 KiB", runtime: "node", raw: false },
      { key: "rawStream", suite: "stream", what: "raw stream 16 KiB", runtime: "node", raw: true },
      { key: "bunStream", suite: "stream", what: "wsgrid stream 16 KiB", runtime: "bun", raw: false },
      { key: "bunRawStream", suite: "stream", what: "raw stream 16 KiB", runtime: "bun", raw: true },
    ] as const;
    for (const t of targets) {
      if (!existsSync(RUNTIMES[t.runtime].bin)) continue;
      tasks.push({
        label: `profile   ${t.runtime} ${t.what} (${profileSeconds} s, --cpu-prof)`,
        async run() {
          const c = CASES.find((x) => x.name === (t.raw ? "raw" : "wsgrid") && (x.suite ?? "rtt") === t.suite);
          if (!c || !profile) return "FAILED: no wsgrid case";
          try {
            if (t.key === "requests") rmSync(dir, { recursive: true, force: true });
            const r = await measureProfiled(c, dir, t.key, RUNTIMES[t.runtime]);
            const entry = { client: read(`${t.key}-client`), server: read(`${t.key}-server`), load: r };
            profile[t.key] = entry;
            if (entry.client) log(`${t.key}: caller (client process) profile:\n${formatProfile(entry.client)}`);
            if (entry.server) log(`${t.key}: handler (server process) profile:\n${formatProfile(entry.server)}`);
            return `${r.rps !== undefined ? `${fmtInt(r.rps)} rps` : `${r.mbps} MB/s`} under the profiler; profiles in ${dir}`;
          } catch (err) {
            profile[t.key] = { error: (err as Error).message };
            return `FAILED: ${(err as Error).message}`;
          }
        },
      });
    }
  }

  const width = String(tasks.length).length;
  // The lock service against Redlock and etcd: one Node 24 run (the servers it starts are the same for every runtime).
  let locks: LocksBenchResult | { error: string } | undefined;
  if (suites.includes("locks")) {
    tasks.push({
      label: "locks     node",
      async run() {
        try {
          const r = await runScript<LocksBenchResult>(RUNTIMES.node, "scripts/bench/locks.ts", ["--seconds", quick ? "1" : full ? "10" : "3"], [], 600_000);
          locks = r;
          return r.goals.filter((g) => !g.startsWith("codec")).map((g) => g.split(":")[0]).join(", ");
        } catch (err) {
          locks = { error: (err as Error).message };
          return `FAILED: ${(err as Error).message}`;
        }
      },
    });
  }
  for (let i = 0; i < tasks.length; i++) {
    const t = tasks[i];
    const head = `[${String(i + 1).padStart(width)}/${tasks.length}] ${t.label}`;
    if (process.stderr.isTTY) process.stderr.write(`${head} …\r`);
    const line = await t.run();
    log(`${head} ${line}  (${elapsed(t0)})`);
  }

  const rows = summarize(runs, runtimes, cases.filter((c) => (c.suite ?? "rtt") === "rtt"));
  const streamRows = summarizeSuites(suiteRuns, runtimes);
  if (rows.length) printTable(rows);
  for (const line of formatSuiteRows(streamRows)) console.log(line);
  const results = {
    date: new Date().toISOString(),
    durationS: Math.round((performance.now() - t0) / 1000),
    machine,
    machineAfter: { loadavg: loadavg().map((x) => Math.round(x * 100) / 100) },
    versions,
    settings: { suites, rounds, secondaryRounds, duration, loadedDuration, warmup, sizes, concurrencies, nodeCounts, membershipCounts, pin, dialer, quietBelow, quietWaitMs, full, quick },
    cases: cases.map((c) => ({ name: c.name, suite: c.suite ?? "rtt", description: c.description, baseline: c.baseline ?? null, skipped: skipped.get(c.name) ?? null })),
    rows,
    streams: streamRows,
    lockargs,
    locks,
    frame: frameMicro,
    scale,
    membership,
    profile: profile ?? null,
    runs,
    suiteRuns,
  };
  mkdirSync(dirname(outPath), { recursive: true });
  writeFileSync(outPath, JSON.stringify(results, null, 2) + "\n");
  console.log(`\nresults: ${outPath} (${elapsed(t0)} total)`);
  if (writeDocs) {
    const written = renderReport(results, ROOT);
    console.log(`docs: ${written.join(", ")}`);
  } else {
    console.log("docs: not regenerated (partial, --quick or --no-docs run); `deno run -A scripts/bench/report.ts` renders them from results.json");
  }
}

/** What a profiled run reports: rps for requests, mbps for a stream. */
interface ProfiledResult {
  rps?: number;
  mbps?: number;
}

/** One case (64 B, concurrency 64 for requests) with both processes under `--cpu-prof` (Node or Bun). */
async function measureProfiled(c: BenchCase, dir: string, prefix: string, rt: Runtime): Promise<ProfiledResult> {
  const reserved = await freePorts(c.ports);
  const ports = c.arrange ? await c.arrange(reserved, dialer) : reserved;
  const params = { concurrency: 64, duration: profileSeconds, warmup: 1, size: 64, ports };
  const prof = (name: string) => ["--cpu-prof", `--cpu-prof-dir=${dir}`, `--cpu-prof-name=${prefix}-${name}.cpuprofile`];
  const server = start(rt, c.server(params), ROOT, serverCpu, prof("server"));
  let client: Child | undefined;
  try {
    const port = await waitReady(server, 20_000);
    client = start(rt, c.client(params, port), ROOT, clientCpu, prof("client"));
    const r = await waitJson<ProfiledResult>(client, (profileSeconds + 1) * 1000 + 30_000);
    await stop(server, 5000);
    return r;
  } finally {
    if (client) await stop(client);
    await stop(server, 5000);
  }
}

function describeSuiteRun(run: SuiteRun): string {
  const c = run.client ?? {};
  const s = run.server ?? {};
  if (run.suite === "stream") {
    return `${String(c.mbps).padStart(7)} MB/s  reader RSS peak ${c.rssPeakMB} MB, writer RSS peak ${s.rssPeakMB ?? "?"} MB`;
  }
  if (run.suite === "interceptors") {
    return `${fmtInt(c.rps as number).padStart(8)} rps  p50 ${c.p50} ms  p99 ${c.p99} ms`;
  }
  if (run.suite === "loaded") {
    const idle = c.idle as LoadResult;
    const loaded = c.loaded as LoadResult;
    return `idle p99 ${idle.p99} ms, under stream p99 ${loaded.p99} ms (${c.p99Ratio}×), stream ${c.mbps} MB/s`;
  }
  const st = (s.streams as { rssStartMB: number; rssPeakMB: number; msgs: number }[] | undefined)?.[0];
  return `reader ${c.mbps} MB/s; writer RSS ${st?.rssStartMB ?? "?"} → peak ${st?.rssPeakMB ?? "?"} MB, ${st?.msgs ?? "?"} messages written`;
}


function summarizeSuites(all: SuiteRun[], runtimes: Runtime[]): SuiteRow[] {
  const rows: SuiteRow[] = [];
  const num = (x: unknown): number => (typeof x === "number" ? x : NaN);
  for (const suite of ["stream", "loaded", "slow", "interceptors"] as const) {
    for (const rt of runtimes) {
      let noneRps: number | null = null;
      const names = [...new Set(all.filter((r) => r.suite === suite && r.runtime === rt.name).map((r) => r.case))];
      let rawMbps: number | null = null;
      for (const name of names) {
        const mine = all.filter((r) => r.suite === suite && r.runtime === rt.name && r.case === name);
        const ok = mine.filter((r) => r.client);
        const pick = (f: (r: SuiteRun) => unknown): number | null => median(ok.map((r) => num(f(r))));
        const mbps = pick((r) => r.client?.mbps);
        if (suite === "stream" && name === "raw") rawMbps = mbps;
        const row: SuiteRow = {
          suite,
          runtime: rt.name,
          case: name,
          rounds: ok.length,
          mbps,
          ratio: suite === "stream" && name !== "raw" && mbps !== null && rawMbps ? round3(mbps / rawMbps) : null,
          error: ok.length < mine.length ? mine.find((r) => r.error)?.error : undefined,
        };
        const first = (r: SuiteRun) => (r.server?.streams as { rssStartMB: number; rssPeakMB: number; msgs: number }[] | undefined)?.[0];
        if (suite === "interceptors") {
          row.rps = pick((r) => r.client?.rps);
          row.p50 = pick((r) => r.client?.p50);
          row.p99 = pick((r) => r.client?.p99);
          if (name === "none") noneRps = row.rps;
          else if (row.rps !== null && noneRps) row.ratio = round3(row.rps / noneRps);
        } else if (suite === "stream") {
          row.readerRssPeakMB = pick((r) => r.client?.rssPeakMB);
          row.writerRssPeakMB = pick((r) => r.server?.rssPeakMB);
        } else if (suite === "loaded") {
          row.idleP50 = pick((r) => (r.client?.idle as LoadResult).p50);
          row.idleP99 = pick((r) => (r.client?.idle as LoadResult).p99);
          row.loadedP50 = pick((r) => (r.client?.loaded as LoadResult).p50);
          row.loadedP99 = pick((r) => (r.client?.loaded as LoadResult).p99);
          row.p99Ratio = pick((r) => r.client?.p99Ratio);
        } else {
          row.writerRssStartMB = pick((r) => first(r)?.rssStartMB);
          row.writerRssPeakMB = pick((r) => first(r)?.rssPeakMB);
          row.writerRssGrowthMB = pick((r) => {
            const f = first(r);
            return f ? Math.round((f.rssPeakMB - f.rssStartMB) * 10) / 10 : NaN;
          });
          row.messagesWritten = pick((r) => first(r)?.msgs);
        }
        rows.push(row);
      }
    }
  }
  return rows;
}

function formatSuiteRows(rows: SuiteRow[]): string[] {
  const out: string[] = [];
  const f = (x: number | null | undefined, d = 1): string => (x === null || x === undefined ? "-" : x.toFixed(d));
  const stream = rows.filter((r) => r.suite === "stream");
  if (stream.length) {
    out.push("", "stream throughput, 16 KiB messages one way:");
    out.push("| runtime | case     |   MB/s | ratio-to-raw | reader RSS peak MB | writer RSS peak MB |");
    for (const r of stream) {
      out.push(`| ${r.runtime.padEnd(7)} | ${r.case.padEnd(8)} | ${f(r.mbps).padStart(6)} | ${f(r.ratio, 2).padStart(12)} | ${f(r.readerRssPeakMB).padStart(18)} | ${f(r.writerRssPeakMB).padStart(18)} |`);
    }
  }
  const loaded = rows.filter((r) => r.suite === "loaded");
  if (loaded.length) {
    out.push("", "single-request latency (64 B, concurrency 1) idle vs while a stream runs on the same connection:");
    out.push("| runtime | case     | idle p50 | idle p99 | loaded p50 | loaded p99 | p99 ratio | stream MB/s |");
    for (const r of loaded) {
      out.push(`| ${r.runtime.padEnd(7)} | ${r.case.padEnd(8)} | ${f(r.idleP50, 3).padStart(8)} | ${f(r.idleP99, 3).padStart(8)} | ${f(r.loadedP50, 3).padStart(10)} | ${f(r.loadedP99, 3).padStart(10)} | ${f(r.p99Ratio, 1).padStart(9)} | ${f(r.mbps).padStart(11)} |`);
    }
  }
  const slow = rows.filter((r) => r.suite === "slow");
  if (slow.length) {
    out.push("", "slow consumer (one 16 KiB message per 10 ms), writer process:");
    out.push("| runtime | reader MB/s | writer RSS at start MB | writer RSS peak MB | growth MB | messages written |");
    for (const r of slow) {
      out.push(`| ${r.runtime.padEnd(7)} | ${f(r.mbps).padStart(11)} | ${f(r.writerRssStartMB).padStart(22)} | ${f(r.writerRssPeakMB).padStart(18)} | ${f(r.writerRssGrowthMB).padStart(9)} | ${f(r.messagesWritten, 0).padStart(16)} |`);
    }
  }
  const icpt = rows.filter((r) => r.suite === "interceptors");
  if (icpt.length) {
    out.push("", "interceptor cost, single requests 64 B at concurrency 64 (ratio: rps over none):");
    out.push("| runtime | case |      rps | ratio | p50 ms | p99 ms |");
    for (const r of icpt) {
      out.push(`| ${r.runtime.padEnd(7)} | ${r.case.padEnd(4)} | ${f(r.rps, 0).padStart(8)} | ${f(r.ratio, 3).padStart(5)} | ${f(r.p50, 3).padStart(6)} | ${f(r.p99, 3).padStart(6)} |`);
    }
  }
  return out;
}

function summarize(runs: Run[], runtimes: Runtime[], all: readonly BenchCase[]): Row[] {
  const rows: Row[] = [];
  for (const rt of runtimes) {
    for (const size of sizes) {
      for (const concurrency of concurrencies) {
        const medians = new Map<string, number | null>();
        for (const c of all) {
          const mine = runs.filter((r) =>
            r.runtime === rt.name && r.case === c.name && r.size === size && r.concurrency === concurrency
          );
          if (mine.length === 0) continue;
          const ok = mine.flatMap((r) => (r.result ? [r.result] : []));
          const rps = median(ok.map((r) => r.rps));
          medians.set(c.name, rps);
          const base = c.baseline ? medians.get(c.baseline) : undefined;
          const pairs = c.baseline ? pairedRatios(runs, rt.name, size, concurrency, c.baseline, c.name) : [];
          rows.push({
            runtime: rt.name,
            case: c.name,
            size,
            concurrency,
            rounds: ok.length,
            rps,
            p50: median(ok.map((r) => r.p50)),
            p99: median(ok.map((r) => r.p99)),
            rpsMin: ok.length ? Math.min(...ok.map((r) => r.rps)) : null,
            rpsMax: ok.length ? Math.max(...ok.map((r) => r.rps)) : null,
            ratio: rps !== null && base ? round3(rps / base) : null,
            pairedRatio: pairs.length ? round3(median(pairs) ?? NaN) : null,
            note: skipped.get(c.name) ? "skipped" : ok.length < mine.length ? "failed" : undefined,
          });
        }
      }
    }
  }
  return rows;
}

function printTable(rows: Row[]): void {
  const head = ["runtime", "case", "size", "conc", "rps (median)", "p50 ms", "p99 ms", "ratio-to-raw", "paired ratio", "rps min-max"];
  const body = rows.map((r) => [
    r.runtime,
    r.case,
    String(r.size),
    String(r.concurrency),
    r.rps === null ? (r.note ?? "-") : fmtInt(r.rps),
    r.p50 === null ? "-" : r.p50.toFixed(3),
    r.p99 === null ? "-" : r.p99.toFixed(3),
    r.ratio === null ? "-" : r.ratio.toFixed(2),
    r.pairedRatio === null ? "-" : r.pairedRatio.toFixed(2),
    r.rpsMin === null || r.rpsMax === null ? "-" : `${fmtInt(r.rpsMin)}-${fmtInt(r.rpsMax)}`,
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i].length)));
  const line = (cells: string[]): string =>
    "| " + cells.map((c, i) => (i < 2 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join(" | ") + " |";
  console.log("");
  console.log(line(head));
  console.log("|" + widths.map((w, i) => (i < 2 ? "-".repeat(w + 2) : "-".repeat(w + 1) + ":")).join("|") + "|");
  for (const b of body) console.log(line(b));
}

function pairedRatios(runs: Run[], runtime: string, size: number, concurrency: number, base: string, name: string): number[] {
  const ratios: number[] = [];
  for (const r of runs) {
    if (r.runtime !== runtime || r.size !== size || r.concurrency !== concurrency || r.case !== name || !r.result) continue;
    const b = runs.find((x) =>
      x.runtime === runtime && x.size === size && x.concurrency === concurrency && x.case === base && x.round === r.round
    );
    if (b?.result) ratios.push(r.result.rps / b.result.rps);
  }
  return ratios;
}

function round3(x: number): number {
  return Math.round(x * 1000) / 1000;
}

function median(xs: number[]): number | null {
  const v = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return null;
  const m = v.length >> 1;
  return v.length % 2 ? v[m] : (v[m - 1] + v[m]) / 2;
}

function fmtInt(x: number): string {
  return Math.round(x).toLocaleString("en-US");
}

function elapsed(t0: number): string {
  return `${((performance.now() - t0) / 1000).toFixed(1)} s`;
}

/** The whole run is bounded: 20 minutes by default, 90 with --full. */
const guardMinutes = full ? 90 : 20;
const guard = setTimeout(() => {
  log(`bench: giving up after ${guardMinutes} minutes`);
  killAll();
  process.exit(2);
}, guardMinutes * 60_000);
try {
  await main();
  clearTimeout(guard);
} finally {
  killAll();
}
