/**
 * Benchmark harness: single-request round trips per second of wsgrid against a
 * raw WebSocket echo baseline, on Deno, Bun and Node (binaries from
 * node_modules/.bin), server and client in separate processes of the same
 * runtime. Cases are interleaved within each round (raw, wsgrid, raw, wsgrid…)
 * and the table reports medians over rounds plus the ratio to the baseline
 * (ratio of the medians, and the median of the per-round ratios, which is less
 * sensitive to load that drifts during the run).
 * Results are also written to `.bench/results.json`.
 *
 * Where the two processes run matters most at concurrency 1: on the same CPU a
 * round trip is a direct hand-off (~20 µs here), on two CPUs it pays two
 * cross-CPU wake-ups (~65 µs), and an unpinned pair flips between the two from
 * run to run. So by default (`--pin split`, when `taskset` exists and there are
 * at least 2 CPUs) the server runs on CPU 0 and the client on CPU 1;
 * `--pin same` puts both on CPU 0, `--pin none` leaves placement to the OS.
 *
 * ```sh
 * deno task bench                                   # all runtimes, defaults
 * deno run -A scripts/bench/main.ts --quick         # one short round
 * deno run -A scripts/bench/main.ts --runtimes bun,node --rounds 5 --duration 3
 * ```
 *
 * Flags: `--runtimes deno,bun,node`, `--cases raw,wsgrid`, `--concurrency 1,64`,
 * `--rounds 5`, `--duration 1.5` (s), `--warmup 0.5` (s), `--size 64`, `--quick`,
 * `--pin split|same|none`, `--dialer client|server|any` (which wsgrid process opens the
 * socket; `client`, like the raw baseline, by default), `--quiet-below 0.2` and `--quiet-wait 10` (s; each run
 * first waits up to that long for other programs to leave the CPUs below 20 %
 * busy; `--quiet-budget 40` s bounds all such waiting), `--out .bench/results.json`.
 *
 * @module
 */

import { existsSync, mkdirSync, writeFileSync } from "node:fs";
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
import { type BenchCase, CASES, type Dialer } from "./cases.ts";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const BIN = join(ROOT, "node_modules/.bin");

const RUNTIMES: Record<string, Runtime> = {
  deno: { name: "deno", bin: join(BIN, "deno"), runArgs: (s) => ["run", "-A", "--quiet", s] },
  bun: { name: "bun", bin: join(BIN, "bun"), runArgs: (s) => ["run", s] },
  node: { name: "node", bin: join(BIN, "node"), runArgs: (s) => ["--no-warnings", s] },
};

interface Run {
  round: number;
  runtime: string;
  case: string;
  concurrency: number;
  /** Fraction of all CPUs busy just before the run (other programs). */
  busyBefore?: number;
  result?: LoadResult;
  error?: string;
}

interface Row {
  runtime: string;
  case: string;
  concurrency: number;
  rounds: number;
  rps: number | null;
  p50: number | null;
  p99: number | null;
  rpsMin: number | null;
  rpsMax: number | null;
  /** Median rps over median rps of the baseline case. */
  ratio: number | null;
  /** Median of the per-round ratios (each run over the baseline run just before it). */
  pairedRatio: number | null;
  note?: string;
}

const flags = parseFlags(process.argv.slice(2));
const quick = flags.has("quick");
const runtimeNames = (flags.get("runtimes") ?? "deno,bun,node").split(",").filter(Boolean);
const caseNames = flags.get("cases")?.split(",").filter(Boolean);
const concurrencies = (flags.get("concurrency") ?? "1,64").split(",").map(Number);
const rounds = numberFlag(flags, "rounds", quick ? 1 : 5);
const duration = numberFlag(flags, "duration", quick ? 1 : 1.5);
const warmup = numberFlag(flags, "warmup", quick ? 0.3 : 0.5);
const size = numberFlag(flags, "size", 64);
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
const quietWaitMs = numberFlag(flags, "quiet-wait", quick ? 2 : 10) * 1000;
/** All waiting for quiet together is bounded, so a busy machine cannot stretch the bench unboundedly. */
let quietBudgetMs = numberFlag(flags, "quiet-budget", quick ? 10 : 40) * 1000;
const outPath = resolve(ROOT, flags.get("out") ?? ".bench/results.json");

for (const r of runtimeNames) {
  if (!RUNTIMES[r]) throw new TypeError(`Cannot run: unknown runtime "${r}" (deno, bun, node)`);
}
if (concurrencies.some((c) => !Number.isInteger(c) || c < 1 || c > 10_000)) {
  throw new RangeError(`Cannot run: --concurrency must be integers in 1..10000`);
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

async function measure(rt: Runtime, c: BenchCase, concurrency: number): Promise<LoadResult> {
  const reserved = await freePorts(c.ports);
  const ports = c.arrange ? await c.arrange(reserved, dialer) : reserved;
  const params = { concurrency, duration, warmup, size, ports };
  let server: Child | undefined;
  let client: Child | undefined;
  try {
    server = start(rt, c.server(params), ROOT, serverCpu);
    const port = await waitReady(server, 20_000);
    client = start(rt, c.client(params, port), ROOT, clientCpu);
    return await waitJson<LoadResult>(client, (duration + warmup) * 1000 + 30_000);
  } finally {
    if (client) await stop(client);
    if (server) await stop(server);
  }
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
  console.log(`settings: rounds ${rounds}, duration ${duration} s, warm-up ${warmup} s, payload ${size} B, concurrency ${concurrencies.join(",")}, pin ${pin}, wsgrid dialer ${dialer}`);
  for (const [name, why] of skipped) console.log(`skipping case "${name}": ${why}`);

  const runs: Run[] = [];
  const total = rounds * runtimes.length * concurrencies.length * active.length;
  const t0 = performance.now();
  for (let round = 1; round <= rounds; round++) {
    for (const rt of runtimes) {
      for (const concurrency of concurrencies) {
        for (const c of active) {
          const key = `${rt.name}/${c.name}`;
          const run: Run = { round, runtime: rt.name, case: c.name, concurrency };
          runs.push(run);
          const label = `[${String(runs.length).padStart(String(total).length)}/${total}] round ${round} ${rt.name.padEnd(4)} ${c.name.padEnd(7)} c=${String(concurrency).padEnd(3)}`;
          if (broken.has(key)) {
            run.error = broken.get(key);
            log(`${label} skipped (failed earlier)`);
            continue;
          }
          try {
            const w0 = performance.now();
            run.busyBefore = await waitQuiet(quietBelow, Math.min(quietWaitMs, quietBudgetMs));
            quietBudgetMs = Math.max(0, quietBudgetMs - (performance.now() - w0));
            run.result = await measure(rt, c, concurrency);
            const r = run.result;
            const busy = run.busyBefore >= quietBelow ? `  [machine busy ${Math.round(run.busyBefore * 100)}% before]` : "";
            log(`${label} ${fmtInt(r.rps).padStart(8)} rps  p50 ${r.p50} ms  p99 ${r.p99} ms  (${elapsed(t0)})${busy}`);
          } catch (err) {
            run.error = (err as Error).message;
            broken.set(key, run.error);
            log(`${label} FAILED: ${run.error}`);
          }
        }
      }
    }
  }

  const rows = summarize(runs, runtimes, cases);
  printTable(rows);
  mkdirSync(dirname(outPath), { recursive: true });
  writeFileSync(
    outPath,
    JSON.stringify(
      {
        date: new Date().toISOString(),
        machine,
        versions,
        settings: { rounds, duration, warmup, size, concurrencies, pin, dialer, quietBelow, quietWaitMs },
        cases: cases.map((c) => ({ name: c.name, description: c.description, baseline: c.baseline ?? null, skipped: skipped.get(c.name) ?? null })),
        rows,
        runs,
      },
      null,
      2,
    ) + "\n",
  );
  console.log(`\nresults: ${outPath} (${elapsed(t0)} total)`);
}

function summarize(runs: Run[], runtimes: Runtime[], all: readonly BenchCase[]): Row[] {
  const rows: Row[] = [];
  for (const rt of runtimes) {
    for (const concurrency of concurrencies) {
      const medians = new Map<string, number | null>();
      for (const c of all) {
        const mine = runs.filter((r) => r.runtime === rt.name && r.case === c.name && r.concurrency === concurrency);
        const ok = mine.flatMap((r) => (r.result ? [r.result] : []));
        const rps = median(ok.map((r) => r.rps));
        medians.set(c.name, rps);
        const base = c.baseline ? medians.get(c.baseline) : undefined;
        const pairs = c.baseline ? pairedRatios(runs, rt.name, concurrency, c.baseline, c.name) : [];
        rows.push({
          runtime: rt.name,
          case: c.name,
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
  return rows;
}

function printTable(rows: Row[]): void {
  const head = ["runtime", "case", "conc", "rps (median)", "p50 ms", "p99 ms", "ratio-to-raw", "paired ratio", "rps min-max"];
  const body = rows.map((r) => [
    r.runtime,
    r.case,
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

function pairedRatios(runs: Run[], runtime: string, concurrency: number, base: string, name: string): number[] {
  const ratios: number[] = [];
  for (const r of runs) {
    if (r.runtime !== runtime || r.concurrency !== concurrency || r.case !== name || !r.result) continue;
    const b = runs.find((x) =>
      x.runtime === runtime && x.concurrency === concurrency && x.case === base && x.round === r.round
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

const guard = setTimeout(() => {
  log("bench: giving up after 20 minutes");
  killAll();
  process.exit(2);
}, 20 * 60_000);
try {
  await main();
  clearTimeout(guard);
} finally {
  killAll();
}
