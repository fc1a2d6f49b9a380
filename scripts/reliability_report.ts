/**
 * Renders docs/RELIABILITY.md from the measured results in .tmp/reliability/*.json, which
 * tests/e2e/reliability_test.ts writes (one file per scenario and test runner) and
 * scripts/reliability.mjs adds to in long mode (the fuzz run). No figure in the page is typed by
 * hand: a scenario without a result file shows as "not measured".
 *
 * The Node run of the reliability suite calls {@link writeReport} at its end; to render again
 * from the files already there:
 *
 * ```sh
 * node_modules/.bin/node scripts/reliability_report.ts   # Node 24 (or: deno run -A scripts/reliability_report.ts)
 * ```
 *
 * @module
 */
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

/** The repository root. */
const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..");
/** Where the results are read from. */
export const RESULTS_DIR: string = join(ROOT, ".tmp", "reliability");
/** The page written. */
export const REPORT_FILE: string = join(ROOT, "docs", "RELIABILITY.md");

/** One measured figure (the shape tests/e2e/_reliability.ts writes). */
export interface Figure {
  name: string;
  value: number;
  unit: string;
  bound?: number;
  op?: "<=" | ">=" | "=";
}

/** One result file. */
export interface ScenarioResult {
  scenario: string;
  title: string;
  runner: string;
  setup: string;
  mode: "short" | "long";
  at: string;
  durationMs: number;
  bound: string;
  figures: Figure[];
  lost?: number;
  hung?: number;
  /** The seed of the scenario's random choices, when it has one. */
  seed?: number;
}

/** The scenarios of issue 7, in page order, with what each one shows. */
const SCENARIOS: { key: string; heading: string; what: string }[] = [
  {
    key: "blackhole",
    heading: "Blackholed link",
    what: "A link whose packets vanish (socket open, no bytes, no FIN/RST) is found dead by pings alone; " +
      "calls on it fail with DisconnectedError instead of waiting for their deadlines.",
  },
  {
    key: "partition",
    heading: "Partition and heal",
    what: "A 5-node grid is cut 2 | 3. Calls across the cut fail with DisconnectedError, calls inside each side keep " +
      "working, and after the heal every pair is back on exactly one socket.",
  },
  {
    key: "storm",
    heading: "Reconnect storm",
    what: "Every process of a 12-node grid is killed and restarted at once. The accepting side's handshake limit " +
      "(maxConcurrentHandshakes) turns the excess away with close code 1013, and the dialers' backoff brings the grid " +
      "back within a bound derived from the backoff cap.",
  },
  {
    key: "churn",
    heading: "Stream churn",
    what: "Streams opened and ended every way (normal end, cancelled by the caller, failed by the handler) leave nothing " +
      "behind: no calls in flight or being served, no handles, no listeners, no heap growth.",
  },
  {
    key: "soak",
    heading: "Mixed-load soak with random faults",
    what: "Requests and streams of every kind run while the links get delays, blackholes, resets and half-closes at " +
      "random. Every call resolves correctly or rejects, by its deadline: lost = 0, hung = 0; memory stays flat.",
  },
  {
    key: "soak-processes",
    heading: "Cross-runtime soak with random faults",
    what: "The same mix between a Deno, a Bun and a Node process, with faults on the proxies in front of them: each " +
      "runtime's client and server side under resets, half-closes, blackholes and delays. lost = 0, hung = 0.",
  },
  {
    key: "exit",
    heading: "Process exit after close()",
    what: "A node process of each runtime exits by itself (no kill) once its Manager and server are closed.",
  },
  {
    key: "lock-history",
    heading: "Lock history checker",
    what: "Lock nodes and clients on Deno, Bun and Node processes; lock nodes are killed (SIGKILL, state lost) and " +
      "restarted, clients are paused (SIGSTOP) past their lease. Every critical section writes its fencing token to a " +
      "fenced register: accepted tokens strictly increase, no live holder is refused, no two overlapping holds both " +
      "write, no acquire outlives its timeout or abort (tests/e2e/lock_history_test.ts).",
  },
  {
    key: "fuzz",
    heading: "Fuzzed frames",
    what: "Mutated and random frames and handshake payloads either decode or raise ProtocolError (long mode: " +
      "1,000,000 frames; tests/fuzz_test.ts).",
  },
];

const RUNNERS = ["deno", "bun", "node"];

/** Reads every result file of `dir` (none when it does not exist). */
export function readResults(dir: string = RESULTS_DIR): ScenarioResult[] {
  let names: string[];
  try {
    names = readdirSync(dir).filter((n) => n.endsWith(".json")).sort();
  } catch {
    return [];
  }
  const out: ScenarioResult[] = [];
  for (const name of names) {
    try {
      out.push(JSON.parse(readFileSync(join(dir, name), "utf8")) as ScenarioResult);
    } catch {
      // A half-written or foreign file: not a result.
    }
  }
  return out;
}

function num(v: number): string {
  return Number.isInteger(v) ? v.toLocaleString("en-US") : String(v);
}

function cell(f: Figure | undefined): string {
  if (f === undefined) return "—";
  const unit = f.unit === "" ? "" : f.unit.startsWith(" ") || f.unit.startsWith("/") ? f.unit : ` ${f.unit}`;
  const ok = f.bound === undefined || f.op === undefined ? "" : passes(f) ? " ✓" : " ✗";
  return `${num(f.value)}${unit}${ok}`;
}

function passes(f: Figure): boolean {
  if (f.bound === undefined || f.op === undefined) return true;
  if (f.op === "<=") return f.value <= f.bound;
  if (f.op === ">=") return f.value >= f.bound;
  return f.value === f.bound;
}

function boundText(f: Figure): string {
  if (f.bound === undefined || f.op === undefined) return "";
  const unit = f.unit === "" || f.unit.startsWith(" ") || f.unit.startsWith("/") ? "" : ` ${f.unit}`;
  return `${f.op === "<=" ? "≤" : f.op === ">=" ? "≥" : "="} ${num(f.bound)}${unit}`;
}

function escape(text: string): string {
  return text.replace(/\|/g, "\\|");
}

/** The page, from `results`. */
export function renderReport(results: ScenarioResult[]): string {
  const lines: string[] = [
    "# Reliability",
    "",
    "<!-- Generated by scripts/reliability_report.ts from .tmp/reliability/*.json; do not edit by hand. -->",
    "",
    "Measured by `tests/e2e/reliability_test.ts`; each scenario checks its bounds, then writes what it measured. " +
    "In-process scenarios run under each test runner (Deno, Bun, Node); the multi-process ones under the Node runner. " +
    "Every figure below comes from the last run that wrote it (time in the scenario's footer).",
    "",
    "- Short mode (CI): `npm test` (or `node scripts/run_tests.mjs tests/e2e/reliability_test.ts`).",
    "- Long mode: `node scripts/reliability.mjs` (5-minute in-process and 2-minute cross-runtime soaks, 100,000-stream churn " +
    "and 1,000,000 fuzzed frames, Node runner).",
    "- Re-render this page from the last results: `node_modules/.bin/node scripts/reliability_report.ts`.",
    "",
    "## Summary",
    "",
    "| scenario | measured under | lost | hung | bounds met |",
    "|---|---|---|---|---|",
  ];
  const byScenario = new Map<string, ScenarioResult[]>();
  for (const r of results) {
    const list = byScenario.get(r.scenario) ?? [];
    list.push(r);
    byScenario.set(r.scenario, list);
  }
  for (const s of SCENARIOS) {
    const rs = (byScenario.get(s.key) ?? []).sort((a, b) => RUNNERS.indexOf(a.runner) - RUNNERS.indexOf(b.runner));
    if (rs.length === 0) {
      lines.push(`| [${s.heading}](#${anchor(s.heading)}) | not measured | — | — | — |`);
      continue;
    }
    const lost = rs.some((r) => r.lost !== undefined) ? String(rs.reduce((n, r) => n + (r.lost ?? 0), 0)) : "n/a";
    const hung = rs.some((r) => r.hung !== undefined) ? String(rs.reduce((n, r) => n + (r.hung ?? 0), 0)) : "n/a";
    const met = rs.every((r) => r.figures.every(passes)) ? "yes" : "**no**";
    const where = rs.map((r) => `${r.runner}${r.mode === "long" ? " (long)" : ""}`).join(", ");
    lines.push(`| [${s.heading}](#${anchor(s.heading)}) | ${where} | ${lost} | ${hung} | ${met} |`);
  }
  for (const s of SCENARIOS) {
    const rs = (byScenario.get(s.key) ?? []).sort((a, b) => RUNNERS.indexOf(a.runner) - RUNNERS.indexOf(b.runner));
    lines.push("", `## ${s.heading}`, "", s.what, "");
    if (rs.length === 0) {
      lines.push(s.key === "fuzz" ? "Not measured yet: run the long mode (`node scripts/reliability.mjs`)." : "Not measured yet.");
      continue;
    }
    const setups = [...new Set(rs.map((r) => r.setup))];
    const bounds = [...new Set(rs.map((r) => r.bound))];
    const titles = [...new Set(rs.map((r) => r.title))];
    if (titles.length === 1 && titles[0] !== s.heading) lines.push(`**${escape(titles[0])}.**`, "");
    for (const t of setups) lines.push(`- Setup: ${t}.`);
    for (const b of bounds) lines.push(`- Bound: ${b}.`);
    const seeded = rs.filter((r) => r.seed !== undefined);
    if (seeded.length > 0) lines.push(`- Seed of the random choices: ${seeded.map((r) => `${r.runner} ${r.seed}`).join(", ")}.`);
    lines.push("");
    const runners = rs.map((r) => r.runner);
    lines.push(`| figure | bound | ${runners.join(" | ")} |`);
    lines.push(`|---|---|${runners.map(() => "---").join("|")}|`);
    const names: string[] = [];
    for (const r of rs) for (const f of r.figures) if (!names.includes(f.name)) names.push(f.name);
    for (const name of names) {
      const figs = rs.map((r) => r.figures.find((f) => f.name === name));
      const first = figs.find((f) => f !== undefined)!;
      lines.push(`| ${escape(name)} | ${boundText(first)} | ${figs.map((f) => escape(cell(f))).join(" | ")} |`);
    }
    if (rs.some((r) => r.lost !== undefined)) lines.push(`| lost | = 0 | ${rs.map((r) => r.lost ?? "—").join(" | ")} |`);
    if (rs.some((r) => r.hung !== undefined)) lines.push(`| hung | = 0 | ${rs.map((r) => r.hung ?? "—").join(" | ")} |`);
    lines.push(`| scenario time | | ${rs.map((r) => `${num(Math.round(r.durationMs / 100) / 10)} s`).join(" | ")} |`);
    lines.push("");
    lines.push(`<sub>Measured ${rs.map((r) => `${r.runner} ${r.at.slice(0, 19).replace("T", " ")} UTC (${r.mode} mode)`).join("; ")}.</sub>`);
  }
  lines.push("");
  return lines.join("\n");
}

function anchor(heading: string): string {
  return heading.toLowerCase().replace(/[^a-z0-9 -]/g, "").replace(/ /g, "-");
}

/** Renders the results of {@link RESULTS_DIR} into {@link REPORT_FILE}; returns the file's path. */
export function writeReport(): string {
  mkdirSync(dirname(REPORT_FILE), { recursive: true });
  writeFileSync(REPORT_FILE, renderReport(readResults()));
  return REPORT_FILE;
}

if ((import.meta as { main?: boolean }).main === true) console.log(`wrote ${writeReport()}`);
