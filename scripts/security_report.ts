/**
 * Renders the measured table of docs/SECURITY.md from .tmp/security/*.json, which
 * tests/e2e/attack_test.ts writes (one file per scenario and runtime). The table sits between
 * the markers `<!-- attack-table:begin -->` and `<!-- attack-table:end -->`; the rest of the page
 * is prose. No figure is typed by hand: a scenario without a result shows as "not measured".
 *
 * The Node run of the suite calls {@link writeSecurityReport} at its end; to render again:
 *
 * ```sh
 * node_modules/.bin/deno run -A scripts/security_report.ts
 * ```
 *
 * @module
 */
import { existsSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..");
/** Where the results are read from. */
export const RESULTS_DIR: string = join(ROOT, ".tmp", "security");
/** The page whose table is rewritten. */
export const REPORT_FILE: string = join(ROOT, "docs", "SECURITY.md");
const BEGIN = "<!-- attack-table:begin -->";
const END = "<!-- attack-table:end -->";

/** One scenario's measurement on one runtime. */
export interface SecurityResult {
  scenario: string;
  title: string;
  runtime: string;
  at: string;
  durationMs: number;
  /** Bytes the attacker wrote to its sockets (or, for impostors, to the node's). */
  bytesSent: number;
  /** Node memory (heap + array buffers after GC) at the height of the attack, over the start. */
  growthBytes: number;
  growthBound: number;
  /** Resident set size at the same moment, over the start: socket buffers included, never given back promptly. */
  rssGrowthBytes: number;
  /** Ms until the node closed the (slowest) offending socket. */
  closeMs: number | null;
  closeBoundMs: number | null;
  legitOk: number;
  legitFailed: number;
  attackerHandlerRuns: number;
  gc: boolean;
}

/** Scenarios in page order. */
const ORDER = [
  "ping-before-hello",
  "ping-after-hello",
  "oversize-first",
  "idle-slots",
  "non-reading-peer",
  "non-reading-admin",
  "impostor-dial",
  "impostor-silent",
  "forged-during-restart",
  "replay",
  "replay-after-restart",
  "tampered-limits",
];
const RUNTIMES = ["deno", "bun", "node"];

function mb(n: number): string {
  return (n / (1 << 20)).toFixed(1);
}

function kib(n: number): string {
  return n >= 1 << 20 ? `${mb(n)} MiB` : `${(n / 1024).toFixed(1)} KiB`;
}

/** The markdown table of every result in {@link RESULTS_DIR}. */
export function renderTable(results: SecurityResult[]): string {
  const by = new Map(results.map((r) => [`${r.scenario}.${r.runtime}`, r]));
  const lines = [
    "| scenario | runtime | attacker sent | node memory growth (bound) | RSS growth | time to close (bound) | legit calls ok / failed | handler runs for the attacker |",
    "|---|---|---|---|---|---|---|---|",
  ];
  for (const key of ORDER) {
    for (const rt of RUNTIMES) {
      const r = by.get(`${key}.${rt}`);
      if (r === undefined) {
        lines.push(`| ${key} | ${rt} | not measured | | | | | |`);
        continue;
      }
      const close = r.closeMs === null ? "—" : `${r.closeMs} ms (${r.closeBoundMs ?? "—"} ms)`;
      lines.push(
        `| ${r.title} | ${rt} | ${kib(r.bytesSent)} | ${mb(r.growthBytes)} MB (${mb(r.growthBound)} MB)${r.gc ? "" : " no GC"} | ${mb(r.rssGrowthBytes ?? 0)} MB | ${close} | ${r.legitOk} / ${r.legitFailed} | ${r.attackerHandlerRuns} |`,
      );
    }
  }
  const when = results.map((r) => r.at).sort().at(-1) ?? "never";
  return `${lines.join("\n")}\n\nLast measured ${when} by \`tests/e2e/attack_test.ts\`. Goal: 0 legitimate calls failed, 0 handler runs.`;
}

/** Reads every result file and rewrites the table of docs/SECURITY.md. */
export function writeSecurityReport(): void {
  const results: SecurityResult[] = existsSync(RESULTS_DIR)
    ? readdirSync(RESULTS_DIR).filter((f) => f.endsWith(".json")).map((f) => JSON.parse(readFileSync(join(RESULTS_DIR, f), "utf8")))
    : [];
  const page = readFileSync(REPORT_FILE, "utf8");
  const a = page.indexOf(BEGIN);
  const b = page.indexOf(END);
  if (a < 0 || b < a) throw new Error(`Cannot render ${REPORT_FILE}: the table markers are missing`);
  writeFileSync(REPORT_FILE, `${page.slice(0, a + BEGIN.length)}\n${renderTable(results)}\n${page.slice(b)}`);
}

if (import.meta.main) writeSecurityReport();
