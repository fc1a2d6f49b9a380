/**
 * Renders docs/BENCHMARKS.md and docs/bench-ratios.svg from the results file
 * of `deno task bench` (`.bench/results.json`). Every number in those docs
 * comes from the results file; the prose here carries no measured numbers.
 * `main.ts` calls {@linkcode renderReport} at the end of a complete run; it can
 * also be run by hand:
 *
 * ```sh
 * deno run -A scripts/bench/report.ts [.bench/results.json]
 * ```
 *
 * @module
 */

import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { CHOSEN, type LockArgsBenchResult, lockArgsGoals } from "./lockargs.ts";
import type { LocksBenchResult } from "./locks.ts";

/** A round-trip row of results.json (written by main.ts, read here). */
export interface RttRow {
  runtime: string;
  case: string;
  size: number;
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

/** A stream, loaded or slow row of results.json: medians over rounds. */
export interface SuiteRow {
  suite: string;
  runtime: string;
  case: string;
  rounds: number;
  /** Throughput, MB/s (stream: the case; loaded/slow: the stream). */
  mbps: number | null;
  /** stream: mbps over the raw case's mbps. */
  ratio: number | null;
  readerRssPeakMB?: number | null;
  writerRssPeakMB?: number | null;
  idleP50?: number | null;
  idleP99?: number | null;
  loadedP50?: number | null;
  loadedP99?: number | null;
  p99Ratio?: number | null;
  writerRssStartMB?: number | null;
  writerRssGrowthMB?: number | null;
  messagesWritten?: number | null;
  /** interceptors: round trips/s and latency, ms; `ratio` is rps over the "none" case's. */
  rps?: number | null;
  p50?: number | null;
  p99?: number | null;
  error?: string;
}


interface SelfTime {
  name: string;
  ms: number;
  pct: number;
}

interface Profile {
  busyMs: number;
  idleMs: number;
  functions: SelfTime[];
  files: SelfTime[];
}

/** The shape of `.bench/results.json` that the report reads. */
export interface Results {
  date: string;
  durationS?: number;
  machine: { cpu: string; cores: number; memGiB: number; os: string; loadavg: number[] };
  machineAfter?: { loadavg: number[] };
  versions: Record<string, string>;
  settings: Record<string, unknown>;
  cases: { name: string; suite?: string; description: string; baseline: string | null; skipped: string | null }[];
  rows: RttRow[];
  streams?: SuiteRow[];
  lockargs?: Record<string, { msgpackrNative?: boolean; results?: LockArgsBenchResult[]; error?: string }>;
  locks?: LocksBenchResult | { error: string };
  scale?: Record<string, unknown>[];
  membership?: Record<string, unknown>[];
  frame?: Record<string, { decodeNsPerMsg?: number; encodeNsPerMsg?: number; textDecodeNs?: number; timerPairNs?: number; batch?: number; error?: string }>;
  profile?: Record<string, { client?: Profile; server?: Profile; load?: { rps?: number; mbps?: number }; error?: string }> | null;
  runs?: { busyBefore?: number }[];
  suiteRuns?: { busyBefore?: number }[];
}

const RUNTIME_ORDER = ["deno", "bun", "node"];
const COLORS: Record<string, string> = { deno: "#2f7d6d", bun: "#c8793b", node: "#4f6fb0", peer: "#8a8a8a" };

const fmtInt = (x: number | null | undefined): string => (x === null || x === undefined ? "-" : Math.round(x).toLocaleString("en-US"));
const fx = (x: number | null | undefined, d = 2): string => (x === null || x === undefined || !Number.isFinite(x) ? "-" : x.toFixed(d));

/** One sentence comparing each runtime's raw loaded-latency ratio with wsgrid's, from the rows. */
function rawComparison(rows: SuiteRow[]): string {
  const parts: string[] = [];
  for (const rt of RUNTIME_ORDER) {
    const w = rows.find((r) => r.runtime === rt && r.case === "wsgrid")?.p99Ratio;
    const raw = rows.find((r) => r.runtime === rt && r.case === "raw")?.p99Ratio;
    if (w == null || raw == null) continue;
    parts.push(`${raw > w ? "more" : "less"} on ${rt} (${fx(raw, 1)}× against ${fx(w, 1)}×)`);
  }
  return parts.length === 0
    ? ""
    : `The raw rows put that in proportion: a raw stream, with no window and no priority, delays an echo on a separate socket ${parts.join(", ")}. `;
}
const kib = (n: number): string => (n >= 1024 ? `${n / 1024} KiB` : `${n} B`);

function table(head: string[], rows: string[][], right: number[] = []): string {
  const align = head.map((_, i) => (right.includes(i) ? "---:" : "---"));
  return [`| ${head.join(" | ")} |`, `|${align.join("|")}|`, ...rows.map((r) => `| ${r.join(" | ")} |`)].join("\n");
}

function rtt(res: Results, runtime: string, kase: string, size: number, c: number): RttRow | undefined {
  return res.rows.find((r) => r.runtime === runtime && r.case === kase && r.size === size && r.concurrency === c);
}

/** A raw baseline whose median latency is this high is stalled (Nagle), not measuring the socket. */
const STALLED_MS = 20;

/** True when the raw baseline of this row's cell stalled, so its ratio says nothing about wsgrid. */
function rawStalled(res: Results, r: RttRow): boolean {
  const raw = rtt(res, r.runtime, "raw", r.size, r.concurrency);
  return raw?.p50 != null && raw.p50 >= STALLED_MS;
}

/** The ratio shown for a row: the paired (per-round) ratio when there is one, else the ratio of medians. */
function ratioOf(r: RttRow | undefined): number | null {
  return r ? (r.pairedRatio ?? r.ratio) : null;
}

interface Goal {
  what: string;
  goal: string;
  measured: string;
  met: boolean | null;
}

function goals(res: Results): Goal[] {
  const out: Goal[] = [];
  const runtimes = RUNTIME_ORDER.filter((r) => res.versions[r]);
  for (const rt of runtimes) {
    const r64 = ratioOf(rtt(res, rt, "wsgrid", 64, 64));
    out.push({ what: `${rt}: wsgrid / raw, 64 B, concurrency 64`, goal: "≥ 1.0×", measured: `${fx(r64)}×`, met: r64 === null ? null : r64 >= 1.0 });
    const r1 = ratioOf(rtt(res, rt, "wsgrid", 64, 1));
    out.push({ what: `${rt}: wsgrid / raw, 64 B, concurrency 1`, goal: "≥ 0.8×", measured: `${fx(r1)}×`, met: r1 === null ? null : r1 >= 0.8 });
  }
  const w = rtt(res, "node", "wsgrid", 64, 64)?.rps ?? null;
  for (const [peer, min] of [["capnweb", 3], ["socketio", 2], ["birpc", 1]] as const) {
    const p = rtt(res, "node", peer, 64, 64)?.rps ?? null;
    const x = w !== null && p ? w / p : null;
    out.push({ what: `node: wsgrid / ${peer}, 64 B, concurrency 64`, goal: `≥ ${min.toFixed(1)}×`, measured: `${fx(x)}×`, met: x === null ? null : x >= min });
  }
  const streams = res.streams ?? [];
  for (const rt of runtimes) {
    const s = streams.find((r) => r.suite === "stream" && r.runtime === rt && r.case === "wsgrid");
    out.push({ what: `${rt}: stream throughput, wsgrid / raw`, goal: "≥ 0.8×", measured: `${fx(s?.ratio)}×`, met: s?.ratio == null ? null : s.ratio >= 0.8 });
  }
  const ws = streams.find((r) => r.suite === "stream" && r.runtime === "node" && r.case === "wsgrid")?.mbps ?? null;
  const cs = streams.find((r) => r.suite === "stream" && r.runtime === "node" && r.case === "capnweb")?.mbps ?? null;
  const sx = ws !== null && cs ? ws / cs : null;
  out.push({ what: "node: stream throughput, wsgrid / capnweb ReadableStream", goal: "≥ 3.0×", measured: `${fx(sx)}×`, met: sx === null ? null : sx >= 3 });
  for (const rt of runtimes) {
    const l = streams.find((r) => r.suite === "loaded" && r.runtime === rt && r.case === "wsgrid");
    const raw = streams.find((r) => r.suite === "loaded" && r.runtime === rt && r.case === "raw");
    const floor = raw?.p99Ratio == null ? "" : ` (raw WebSocket, echo on a second socket: ${fx(raw.p99Ratio, 1)}×)`;
    out.push({ what: `${rt}: single-request p99 under a stream / idle p99`, goal: "≤ 5×", measured: `${fx(l?.p99Ratio, 1)}×${floor}`, met: l?.p99Ratio == null ? null : l.p99Ratio <= 5 });
  }
  for (const rt of runtimes) {
    const la = res.lockargs?.[rt]?.results?.filter((r) => r.codec === CHOSEN) ?? [];
    for (const r of la) {
      const goal = lockArgsGoals(rt, r.resources);
      const floor = r.vsFloor ?? null;
      out.push({ what: `${rt}: LockArgs round trip / floor, ${r.resources} resource(s)`, goal: `≤ ${goal.maxVsFloor}×`, measured: `${fx(floor)}×`, met: floor === null ? null : floor <= goal.maxVsFloor });
      out.push({ what: `${rt}: LockArgs binary vs text, ${r.resources} resource(s)`, goal: `≥ ${goal.minVsText}×`, measured: `${fx(r.speedupVsText)}×`, met: r.speedupVsText >= goal.minVsText });
      out.push({ what: `${rt}: LockArgs binary vs JSON, ${r.resources} resource(s)`, goal: `≥ ${goal.minVsJson}×`, measured: `${fx(r.speedupVsJson)}×`, met: r.speedupVsJson >= goal.minVsJson });
    }
  }
  out.push(...membershipGoals(res));
  return out;
}

/** The issue-16 goals: 64 hosts up within 5 s of `setHosts`, at most 64 KiB (RSS) per connection. */
function membershipGoals(res: Results): Goal[] {
  const out: Goal[] = [];
  for (const rt of RUNTIME_ORDER) {
    const r = res.membership?.find((m) => m.runtime === rt && m.nodes === 64 && !m.error);
    if (res.membership === undefined || !res.versions[rt]) continue;
    const join = r?.joinMs as number | undefined;
    const rss = r?.rssPerConnKB as number | undefined;
    out.push({ what: `${rt}: 64 hosts, setHosts → all 2,016 pairs up`, goal: "< 5 s", measured: join === undefined ? "-" : `${fx(join / 1000, 2)} s`, met: join === undefined ? null : join < 5000 });
    out.push({
      what: `${rt}: memory per connection at 64 hosts (RSS, both ends in one process)`,
      goal: "≤ 64 KiB",
      measured: rss === undefined ? "-" : `${fx(rss, 1)} KiB (heap ${fx(r?.heapPerConnKB as number, 1)} KiB${
        typeof r?.youngPerConnKB === "number" ? `; V8 committed ${fx(r.youngPerConnKB, 1)} KiB to its young generation, not all of it resident` : ""
      })`,
      met: rss === undefined ? null : rss <= 64,
    });
  }
  return out;
}

interface Bar {
  label: string;
  value: number;
  color: string;
}

function bars(res: Results): Bar[] {
  const out: Bar[] = [];
  for (const rt of RUNTIME_ORDER) {
    for (const r of res.rows.filter((x) => x.runtime === rt && x.case !== "raw")) {
      const v = ratioOf(r);
      if (v === null || rawStalled(res, r)) continue;
      const peer = r.case !== "wsgrid";
      out.push({ label: `${r.case} ${rt} ${kib(r.size)} c=${r.concurrency}`, value: v, color: peer ? COLORS.peer : COLORS[rt] });
    }
  }
  for (const r of (res.streams ?? []).filter((x) => x.suite === "stream" && x.ratio !== null)) {
    out.push({ label: `${r.case} ${r.runtime} stream 16 KiB`, value: r.ratio ?? 0, color: r.case === "wsgrid" ? COLORS[r.runtime] : COLORS.peer });
  }
  return out;
}

function esc(s: string): string {
  return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}

/** A horizontal bar chart of ratios to raw WebSocket, as SVG text. */
export function ratioSvg(res: Results): string {
  const data = bars(res);
  const rowH = 18;
  const left = 230;
  const plotW = 440;
  const top = 58;
  const h = top + data.length * rowH + 40;
  const w = left + plotW + 70;
  // Bars beyond the axis cap are clipped and labelled with their value.
  const cap = 6;
  const max = Math.min(cap, Math.max(1.5, ...data.map((b) => b.value))) * 1.05;
  const x = (v: number): number => left + (v / max) * plotW;
  const parts: string[] = [];
  parts.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${w}" height="${h}" viewBox="0 0 ${w} ${h}" font-family="system-ui, sans-serif" font-size="11">`);
  parts.push(`<rect width="${w}" height="${h}" fill="#ffffff"/>`);
  parts.push(`<text x="10" y="18" font-size="14" font-weight="bold">Throughput relative to a raw WebSocket on the same runtime (1.0 = raw)</text>`);
  parts.push(`<text x="10" y="34" fill="#555">${esc(`${res.date.slice(0, 16).replace("T", " ")} UTC · ${res.machine.cpu} · ${res.machine.cores} cores · colored: wsgrid per runtime, gray: peer libraries`)}</text>`);
  for (let t = 0; t <= max; t += max > 6 ? 1 : 0.5) {
    parts.push(`<line x1="${x(t).toFixed(1)}" y1="${top - 4}" x2="${x(t).toFixed(1)}" y2="${top + data.length * rowH}" stroke="#e4e4e4"/>`);
    parts.push(`<text x="${x(t).toFixed(1)}" y="${top + data.length * rowH + 14}" text-anchor="middle" fill="#555">${t.toFixed(1)}×</text>`);
  }
  data.forEach((b, i) => {
    const y = top + i * rowH;
    parts.push(`<text x="${left - 6}" y="${y + 12}" text-anchor="end">${esc(b.label)}</text>`);
    const v = Math.min(b.value, max);
    parts.push(`<rect x="${left}" y="${y + 3}" width="${Math.max(1, x(v) - left).toFixed(1)}" height="${rowH - 6}" fill="${b.color}"/>`);
    parts.push(`<text x="${(x(v) + 4).toFixed(1)}" y="${y + 12}" fill="#222">${b.value.toFixed(2)}${b.value > max ? " ▸" : ""}</text>`);
  });
  parts.push(`<line x1="${x(1).toFixed(1)}" y1="${top - 6}" x2="${x(1).toFixed(1)}" y2="${top + data.length * rowH + 2}" stroke="#c0392b" stroke-width="1.5" stroke-dasharray="4 3"/>`);
  parts.push(`<text x="${(x(1) + 3).toFixed(1)}" y="${top - 8}" fill="#c0392b">raw</text>`);
  parts.push(`</svg>`);
  return parts.join("\n") + "\n";
}

function loadNote(res: Results): string {
  const all = [...(res.runs ?? []), ...(res.suiteRuns ?? [])].map((r) => r.busyBefore).filter((b): b is number => typeof b === "number");
  const threshold = typeof res.settings.quietBelow === "number" ? res.settings.quietBelow : 0.2;
  const busy = all.filter((b) => b >= threshold);
  const maxBusy = all.length ? Math.max(...all) : 0;
  const after = res.machineAfter?.loadavg.join(" ") ?? "-";
  return `Load: the machine is shared with other engineers' test runs. Load average ${res.machine.loadavg.join(" ")} at the start and ${after} at the end; ` +
    `before each run the harness waits (within a bounded budget) until other programs keep under ${Math.round(threshold * 100)} % of the CPUs busy. ` +
    (busy.length
      ? `${busy.length} of ${all.length} runs still started on a busier machine (highest: ${Math.round(maxBusy * 100)} % busy); those numbers are lower bounds for both sides of a ratio, which is why cases are interleaved and ratios are taken per round.`
      : `All ${all.length} runs started on a quiet machine (at most ${Math.round(maxBusy * 100)} % busy just before); cases are still interleaved and ratios taken per round, since load can change during a run.`);
}

/** Renders the Markdown report. */
export function renderMarkdown(res: Results): string {
  const L: string[] = [];
  const runtimes = RUNTIME_ORDER.filter((r) => res.versions[r]);
  const st = res.settings;
  L.push("# Benchmarks");
  L.push("");
  L.push(`<!-- Generated by \`deno task bench\` (scripts/bench/report.ts) from .bench/results.json. Do not edit by hand. -->`);
  L.push("");
  L.push(`Measured ${res.date.slice(0, 19).replace("T", " ")} UTC in one run of \`deno task bench\`${st.full ? " --full" : ""} (${res.durationS ?? "?"} s). ` +
    `Every number below comes from that run's results file; rerun the command to regenerate this page and the chart.`);
  L.push("");
  L.push(`- Machine: ${res.machine.cpu}, ${res.machine.cores} cores, ${res.machine.memGiB} GiB, ${res.machine.os}`);
  for (const rt of runtimes) L.push(`- ${rt}: ${res.versions[rt]}`);
  L.push(`- Settings: ${st.rounds} round(s), ${st.duration} s measured after ${st.warmup} s warm-up per run${st.loadedDuration && st.loadedDuration !== st.duration ? ` (${st.loadedDuration} s, idle and under the stream, in the latency-under-a-stream suite)` : ""}; server and client pinned ${st.pin === "split" ? "to different CPUs" : st.pin === "same" ? "to the same CPU" : "by the OS"}; the wsgrid client process dials.`);
  L.push(`- ${loadNote(res)}`);
  L.push("");
  L.push("## Goals");
  L.push("");
  L.push(table(["what", "goal", "measured", "met"], goals(res).map((g) => [g.what, g.goal, g.measured, g.met === null ? "not measured" : g.met ? "yes" : "**no**"]), [2]));
  L.push("");
  L.push("![Ratio to raw WebSocket per case and runtime](bench-ratios.svg)");
  L.push("");
  L.push("## Single requests");
  L.push("");
  L.push("Round trips per second with `concurrency` calls outstanding (each worker awaits its reply before the next call), and latency percentiles in ms. " +
    "raw is a WebSocket echo that sends one WebSocket message per request (the runtime's global `WebSocket` as client, the runtime's own server); " +
    "wsgrid is `conn.request(\"echo\")` between two Manager processes. Ratio is wsgrid over raw measured in the same round (median over rounds).");
  L.push("");
  for (const rt of runtimes) {
    const rows = res.rows.filter((r) => r.runtime === rt && (r.case === "raw" || r.case === "wsgrid"));
    if (!rows.length) continue;
    L.push(`### ${rt}`);
    L.push("");
    L.push(table(
      ["payload", "concurrency", "case", "round trips/s", "p50 ms", "p99 ms", "ratio to raw"],
      rows.map((r) => [
        kib(r.size),
        String(r.concurrency),
        r.case,
        r.rps === null ? (r.note ?? "-") : fmtInt(r.rps),
        fx(r.p50, 3),
        fx(r.p99, 3),
        r.case === "raw" ? (rawStalled(res, r) ? "stalled †" : "") : rawStalled(res, r) ? `(${fx(ratioOf(r))}×) †` : `${fx(ratioOf(r))}×`,
      ]),
      [1, 3, 4, 5, 6],
    ));
    L.push("");
    if (rows.some((r) => rawStalled(res, r))) {
      L.push(`† The raw baseline's median latency here is ${STALLED_MS} ms or more: the runtime's global WebSocket client sends without TCP_NODELAY, so a message over about 1 KiB waits for the peer's delayed ACK. ` +
        "That is a property of the client, not of the socket, so this ratio is left out of the goals and the chart (wsgrid's Deno adapter dials with its own client over `Deno.connect`, with TCP_NODELAY, for this reason).");
      L.push("");
    }
  }
  const peers = res.rows.filter((r) => r.runtime === "node" && r.size === 64 && ["raw", "wsgrid", "capnweb", "birpc", "socketio"].includes(r.case) && [1, 64].includes(r.concurrency));
  if (peers.some((r) => !["raw", "wsgrid"].includes(r.case))) {
    L.push("## Peer libraries (Node)");
    L.push("");
    L.push("The same 64-byte echo, server and client in separate Node processes over WebSocket: " +
      "capnweb's WebSocket RPC session (`api.echo(bytes)`), birpc over a `ws` socket with its post/on (msgpackr serialisation, so the payload stays binary), " +
      "socket.io emit with ack (websocket transport only, binary payload).");
    L.push("");
    const w = (c: number) => rtt(res, "node", "wsgrid", 64, c)?.rps ?? null;
    L.push(table(
      ["concurrency", "library", "round trips/s", "p50 ms", "p99 ms", "ratio to raw", "wsgrid is ×"],
      peers.map((r) => {
        const ww = w(r.concurrency);
        return [String(r.concurrency), r.case, fmtInt(r.rps), fx(r.p50, 3), fx(r.p99, 3), r.case === "raw" ? "" : `${fx(ratioOf(r))}×`, ww !== null && r.rps ? `${fx(ww / r.rps)}×` : "-"];
      }),
      [0, 2, 3, 4, 5, 6],
    ));
    L.push("");
  }
  const streams = res.streams ?? [];
  const sRows = streams.filter((r) => r.suite === "stream");
  if (sRows.length) {
    L.push("## Stream throughput");
    L.push("");
    L.push("16 KiB messages one way, from the serving process to the dialing process. wsgrid: a stream handler writes as fast as credits allow (`await writer.ready`, the default outCapacity of 16), the caller reads. " +
      "wsgrid-1MiB: the same with `outCapacity: 64`, so that 64 × 16 KiB = 1 MiB is in flight, as much as the raw sender allows itself. " +
      "raw: the server sends on its WebSocket while `bufferedAmount` is under 1 MiB (above it, looking again after each of up to 4 event-loop turns, then every 2 ms: the same rule as wsgrid's writer), the client counts. " +
      "capnweb (Node): an RPC returns a `ReadableStream` that produces a chunk per pull. Peak RSS is of each whole process. " +
      "The raw reader is the runtime's global `WebSocket`; on Deno wsgrid dials with its own client over `Deno.connect` instead (its adapter does, for TCP_NODELAY), so on Deno the two readers differ.");
    L.push("");
    L.push(table(
      ["runtime", "case", "MB/s", "ratio to raw", "reader peak RSS MB", "writer peak RSS MB"],
      sRows.map((r) => [r.runtime, r.case, fx(r.mbps, 1), r.case === "raw" ? "" : `${fx(r.ratio)}×`, fx(r.readerRssPeakMB, 1), fx(r.writerRssPeakMB, 1)]),
      [2, 3, 4, 5],
    ));
    L.push("");
  }
  const lRows = streams.filter((r) => r.suite === "loaded");
  if (lRows.length) {
    const wRows = lRows.filter((r) => r.case === "wsgrid");
    L.push("## Single requests while a stream runs");
    L.push("");
    L.push("Latency of 64-byte requests at concurrency 1, first on an idle connection, then while the 16 KiB stream above runs at full speed on the same connection (goal: p99 within 5× of idle). " +
      "raw has no wsgrid in it: the raw echo client times a 64-byte echo on one socket, idle and then while a raw stream (as in the stream table, no flow control beyond `bufferedAmount`) runs on a second socket between the same two processes. Nothing queues that echo behind stream data, so it shows how much two processes moving a stream at full speed delay a small request by themselves.");
    L.push("");
    L.push(table(
      ["runtime", "case", "idle p50 ms", "idle p99 ms", "under stream p50 ms", "under stream p99 ms", "p99 ratio", "stream MB/s meanwhile"],
      lRows.map((r) => [r.runtime, r.case, fx(r.idleP50, 3), fx(r.idleP99, 3), fx(r.loadedP50, 3), fx(r.loadedP99, 3), `${fx(r.p99Ratio, 1)}×`, fx(r.mbps, 1)]),
      [2, 3, 4, 5, 6, 7],
    ));
    L.push("");
    const windowMs = wRows.map((r) => (r.mbps ? `${fx((256 * 1024) / (r.mbps * 1e6) * 1000, 2)} ms on ${r.runtime}` : "")).filter(Boolean).join(", ");
    L.push("Where the time goes: a reply is queued behind the stream data already handed to the socket, up to the stream's window of 16 credits × 16 KiB = 256 KiB " +
      `(${windowMs} at the stream rates measured meanwhile), which is what moves the median. ` +
      "Single requests already jump the queue inside wsgrid (control and call messages go out before queued stream data), so the tail beyond that is the processes themselves. " +
      "Under the stream the reading process's V8 runs full mark-compacts, driven by the external memory of the buffers its socket reads allocate; how often depends on how much the runtime's socket layer allocates per read (see the changes below). " +
      (!wRows.some((r) => r.runtime === "deno") ? "" :
      "On Deno (2.9, V8 15) what is left is the one copy of each received frame, which the consumer owns: V8 frees such buffers only in a collection, and starts a mark-compact whenever some 15–20 MB of them are waiting for one, which at ~750 MB/s is 30–48 mark-compacts a second (traced, 2026-12-06). " +
      "The same build handing out views of its reused read buffer instead (unsafe, later reads overwrite them; an experiment, not a mode) ran none and measured 1.6× idle at 1.3–1.4 GB/s, and with a smaller young generation (`--v8-flags=--max-semi-space-size=1` on the reading process, so scavenges free the buffers first) 11–18 in the run instead of ~130 and 1.3–2.3×. " +
      "Without handing out buffers it later reuses, the library has no lever on this. ") +
      rawComparison(lRows) +
      (wRows.every((r) => r.p99Ratio != null && r.p99Ratio <= 5)
        ? "In this run the p99 goal is met on every runtime."
        : `In this run the p99 goal is missed on ${wRows.filter((r) => !(r.p99Ratio != null && r.p99Ratio <= 5)).map((r) => r.runtime).join(", ")}.`));
    L.push("");
  }
  const slRows = streams.filter((r) => r.suite === "slow");
  if (slRows.length) {
    L.push("## Slow consumer");
    L.push("");
    L.push("The caller reads one 16 KiB message every 10 ms while the handler tries to write as fast as it can. The writer process's RSS stays bounded because the writer waits for credits.");
    L.push("");
    L.push(table(
      ["runtime", "reader MB/s", "writer RSS at stream start MB", "writer peak RSS MB", "growth MB", "messages written"],
      slRows.map((r) => [r.runtime, fx(r.mbps, 1), fx(r.writerRssStartMB, 1), fx(r.writerRssPeakMB, 1), fx(r.writerRssGrowthMB, 1), fmtInt(r.messagesWritten)]),
      [1, 2, 3, 4, 5],
    ));
    L.push("");
  }
  const iRows = streams.filter((r) => r.suite === "interceptors");
  if (iRows.length) {
    L.push("## Interceptor cost");
    L.push("");
    L.push("Single 64-byte requests at concurrency 64 between two processes, the three cases interleaved in each round: `none` installs no interceptor (calls skip the machinery), " +
      "`noop` an incoming and an outgoing interceptor that only call `next()` on both processes, `otel` wsgrid/otel's pair on the OpenTelemetry SDK (BatchSpanProcessor into an exporter that drops the spans). " +
      "Goal: the interceptor machinery costs ≤ 5 % of throughput with no interceptor installed. `none` has no interceptor code on its path at all, so its cost is that of the rtt table's wsgrid row, measured against a build without interceptors when the feature came in (see the changes below); the `noop` row is what installing the machinery costs.");
    L.push("");
    L.push(table(
      ["runtime", "case", "round trips/s", "ratio to none", "p50 ms", "p99 ms"],
      iRows.map((r) => [r.runtime, r.case, fmtInt(r.rps), r.case === "none" ? "" : `${fx(r.ratio, 3)}×`, fx(r.p50, 3), fx(r.p99, 3)]),
      [2, 3, 4, 5],
    ));
    L.push("");
  }
  if (res.lockargs && Object.keys(res.lockargs).length) {
    L.push("## LockArgs codec");
    L.push("");
    L.push("Encode + decode round trip of one `LockArgs` message (median over rounds), bytes per encoded message: the binary `lockArgsCodec`, msgpackr records, MinIO's old line-scanned text format, JSON, and the floor. " +
      "“/ floor” is each codec's time over the floor's on the same shape.");
    L.push("");
    L.push("### Codec");
    L.push("");
    L.push("The floor is what the binary format cannot do without: one `TextEncoder.encodeInto` into a pooled slab, one `TextDecoder.decode`, plain `Uint8Array` reads and `slice`s, no checks, writing the same bytes as `lockArgsCodec` (the bench verifies that). " +
      "The codec keeps its wire format, strict UTF-8 validation, exact round trips and every error message, and takes a fast path for the common message (all ASCII, every varint one byte): " +
      "the encoder writes the header inline through one persistent array over the slab and makes one view per message; " +
      "the decoder reads the header inline, checks all string lengths with one sum against the bytes left, and decodes the whole message leniently once, header included (it starts with the version byte, so no BOM is stripped), taking the result as-is when it has one UTF-16 unit per byte and no U+FFFD. " +
      "Any mismatch goes to the general path, which checks field by field and decodes each string strictly, so errors are unchanged. " +
      "On JavaScriptCore (detected by a feature of its `Error` objects at module load, not by a runtime global) text of up to 256 units is copied unit by unit, which there beats a native `encodeInto`. " +
      "`tests/lock_args_fuzz_test.ts` checks the fast paths against the previous field-by-field codec as an oracle (lone surrogates, U+FFFD, BOM, NUL, astral text, mutated, truncated and random bytes). " +
      "Goals: within 1.25× of the floor on every runtime; ≥ 5× text and ≥ 2× JSON on Deno and Node; on Bun, whose `JSON.parse` and allocation are fast, ≥ 2× text and ≥ 1.3× JSON at 1 resource, ≥ 4× and ≥ 2× at 16.");
    L.push("");
    for (const rt of runtimes) {
      const la = res.lockargs[rt];
      if (!la) continue;
      L.push(`### ${rt}${la.msgpackrNative !== undefined ? ` (msgpackr native acceleration ${la.msgpackrNative ? "on" : "off"})` : ""}`);
      L.push("");
      if (la.error || !la.results) {
        L.push(`Failed: ${la.error ?? "no results"}`);
      } else {
        L.push(table(
          ["resources", "codec", "bytes", "ns/op", "min–max ns", "× vs text", "× vs JSON", "/ floor"],
          la.results.map((r) => [String(r.resources), r.codec, String(r.bytes), String(r.nsPerOp), `${r.minNs}–${r.maxNs}`, fx(r.speedupVsText), fx(r.speedupVsJson), fx(r.vsFloor)]),
          [0, 2, 3, 5, 6, 7],
        ));
      }
      L.push("");
    }
  }
  if (res.locks) {
    L.push("## Locks: wsgrid/locks vs Redlock and etcd");
    L.push("");
    L.push("`scripts/bench/locks.ts` under Node 24: wsgrid/locks on 3 lock-node processes (with `lockArgsCodec`, then with MinIO's newline text format plugged in), " +
      "Redlock on 3 `redis-server`, the `etcd3` client's lock on one `etcd` member, every server started by the bench; the load runs in one more process " +
      "(a grid member that is not a lock node). Throughput: acquire+release per second; latency: the acquire, ms. Write workers of the uncontended case each lock their own resource; " +
      "the contended case has 64 workers on 4 resources; the read cases share one resource (Redlock and etcd have no read locks).");
    L.push("");
    if ("error" in res.locks) {
      L.push(`Failed: ${res.locks.error}`);
    } else {
      const lk = res.locks;
      const rounds = lk.rounds ?? 1;
      L.push(rounds === 1
        ? `${lk.seconds} s per cell, one run.`
        : `${lk.seconds} s per cell; every system up for the whole run, each warmed up unmeasured, then ${rounds} interleaved rounds (each case on every system in turn); a row is its cell's median round by throughput (all rounds' ops/s in the last column).`);
      L.push("");
      L.push(table(
        ["system", "case", "ops/s", "p50 ms", "p99 ms", "errors", "CPU µs/op client + servers", "rounds, ops/s"],
        lk.rows.map((r) => [
          r.system,
          r.case,
          fmtInt(r.opsPerSec),
          r.p50Ms.toFixed(2),
          r.p99Ms.toFixed(2),
          String(r.errors),
          r.clientCpuUsPerOp === undefined ? "n/a" : `${r.clientCpuUsPerOp.toFixed(0)} + ${r.serverCpuUsPerOp.toFixed(0)}`,
          (r.roundsOpsPerSec ?? [r.opsPerSec]).map(fmtInt).join(", "),
        ]),
        [2, 3, 4, 5, 6],
      ));
      L.push("");
      for (const s of lk.skipped) L.push(`- ${s}`);
      for (const g of lk.goals) L.push(`- ${g}`);
    }
    L.push("");
  }
  if (res.scale?.length) {
    L.push("## Scale: a full mesh in one process");
    L.push("");
    L.push("N Managers in one process, each served on its own loopback port, every pair connected by one socket (N·(N−1)/2 connections, both ends in the process). " +
      "Mesh up: from constructing the Managers until every connection is up. Memory per connection: RSS and JS heap growth from before the Managers to after the mesh is up (after a GC), divided by the connections; it includes each Manager's own fixed cost, so it reads high for small meshes, and RSS moves in steps (a GC can return memory to the OS, so small meshes can even show a negative RSS delta): the heap column is the steadier one. " +
      "Then 64 workers in total each call a random node → random other node with a 64-byte echo.");
    L.push("");
    L.push(table(
      ["runtime", "nodes", "connections", "mesh up ms", "round trips/s (cluster)", "p50 ms", "p99 ms", "heap KB / connection", "RSS KB / connection"],
      res.scale.map((r) => [
        String(r.runtime),
        String(r.nodes),
        String(r.connections ?? "-"),
        r.error ? `failed: ${String(r.error).slice(0, 60)}` : String(r.meshUpMs),
        fmtInt(r.rps as number),
        fx(r.p50 as number, 3),
        fx(r.p99 as number, 3),
        fx(r.heapPerConnKB as number, 1),
        fx(r.rssPerConnKB as number, 1),
      ]),
      [1, 2, 3, 4, 5, 6, 7, 8],
    ));
    L.push("");
  }
  if (res.membership?.length) {
    L.push("## Membership: a mesh formed with setHosts");
    L.push("");
    L.push("N Managers in one process (`scripts/bench/scale.ts --membership`), each served on its own loopback port and started knowing only itself; then every one is given the full list with `setHosts`. " +
      "Join: from those calls until every one of the N·(N−1)/2 pairs is up (goal for 64 hosts: < 5 s). Memory per connection: RSS and JS heap growth over the join (after a GC), divided by the connections, both ends of each in this process (goal at 64 hosts: ≤ 64 KiB). " +
      "Young gen: how much V8's young generation (`new_space`, Node and Deno) grew over the join, per connection. V8 sizes it by the allocation and survival rate (here up to ~128 MB on Node, ~52 MB on Deno, whatever the mesh size past ~48 hosts), not by what is live: it is empty after the GC, but its pages stay resident, so they are part of the RSS column; the goal is judged on RSS all the same. " +
      "Shrink: every Manager but the first 3 is then removed (`setHosts` on all of them), until the 3 pairs left are up and every other connection is gone.");
    L.push("");
    L.push(table(
      ["runtime", "nodes", "connections", "join ms", "shrink to 3 ms", "heap KB / connection", "young gen KB / connection", "RSS KB / connection"],
      res.membership.map((r) => [
        String(r.runtime),
        String(r.nodes),
        String(r.connections ?? "-"),
        r.error ? `failed: ${String(r.error).slice(0, 60)}` : String(r.joinMs),
        fx(r.shrinkMs as number, 1),
        fx(r.heapPerConnKB as number, 1),
        typeof r.youngPerConnKB === "number" ? fx(r.youngPerConnKB, 1) : "-",
        fx(r.rssPerConnKB as number, 1),
      ]),
      [1, 2, 3, 4, 5, 6, 7],
    ));
    L.push("");
  }
  L.push("## Where the time goes");
  L.push("");
  const profs = res.profile ?? {};
  const titles: Record<string, string> = {
    requests: "Single requests (64 B, concurrency 64)",
    stream: "wsgrid stream (16 KiB messages, one way)",
    rawStream: "raw WebSocket stream (16 KiB messages, one way), for comparison",
    bunStream: "wsgrid stream on Bun (16 KiB messages, one way)",
    bunRawStream: "raw WebSocket stream on Bun (16 KiB messages, one way), for comparison",
  };
  if (!Object.keys(profs).length) L.push("No profile in this run.");
  L.push("Both processes of a case ran under `--cpu-prof` (Node, and Bun for the Bun stream cases); start-up is left out (the summary starts half a second after the first call). " +
    "Self time is time in the function itself, not its callees; `(garbage collector)`, `(program)` and `(native)` are V8 and native work (socket reads and writes, the event loop). Percentages are of busy (non-idle) time; idle is time spent waiting for the other process.");
  L.push("");
  for (const [key, p] of Object.entries(profs)) {
    L.push(`### ${titles[key] ?? key}`);
    L.push("");
    if (p.error || (!p.client && !p.server)) {
      L.push(`No profile${p.error ? `: ${p.error}` : ""}.`);
      L.push("");
      continue;
    }
    L.push(`Under the profiler: ${p.load?.rps !== undefined ? `${fmtInt(p.load.rps)} round trips/s` : `${fx(p.load?.mbps, 1)} MB/s`}.`);
    L.push("");
    for (const [side, prof] of [["caller (client process)", p.client], ["handler (server process)", p.server]] as const) {
      if (!prof) continue;
      L.push(`**${side}**: busy ${fmtInt(prof.busyMs)} ms, idle ${fmtInt(prof.idleMs)} ms`);
      L.push("");
      L.push(table(["file", "self ms", "%"], prof.files.slice(0, 8).map((f) => [`\`${f.name}\``, fx(f.ms, 1), fx(f.pct, 1)]), [1, 2]));
      L.push("");
      L.push(table(["function", "self ms", "%"], prof.functions.slice(0, 10).map((f) => [`\`${f.name}\``, fx(f.ms, 1), fx(f.pct, 1)]), [1, 2]));
      L.push("");
    }
    const raw = key === "bunStream" ? profs.bunRawStream : profs.rawStream;
    L.push(profileProse(key, p.client, p.server, raw?.server, raw?.load?.mbps, p.load?.mbps));
    L.push("");
  }
  L.push("## Changes made from the profiles");
  L.push("");
  L.push("- **Handler names on the decode path** (src/protocol/frame.ts). The request profile of the handler process showed `TextDecoder.decode` of the route (native `decodeUTF8` plus its JS wrapper) on every request message, though a batch almost always names the same handler. " +
    "`decodeFrame` now keeps the last decoded handler name with its bytes and reuses the string while the bytes match (validation and errors unchanged: a new name still goes through the strict decoder). " +
    "What it saves per request message is one decoder call; in this run, per runtime:");
  L.push("");
  const fm = res.frame ?? {};
  if (Object.keys(fm).length) {
    L.push(table(
      ["runtime", "one TextDecoder.decode of a handler name, ns (saved per message)", "decodeFrame, ns per message", "encodeFrame, ns per message"],
      RUNTIME_ORDER.filter((r) => fm[r]).map((r) => [r, fx(fm[r].textDecodeNs, 1), fx(fm[r].decodeNsPerMsg, 1), fx(fm[r].encodeNsPerMsg, 1)]),
      [1, 2, 3],
    ));
    L.push("");
    L.push("(Batch frames of 64 single requests with 64-byte payloads, scripts/bench/frame_micro.ts.) The end-to-end effect on round trips is within the run-to-run noise of this shared machine, because the request loop is bound by the wake-ups between the two processes rather than by CPU (see the idle times above).");
  } else {
    L.push("(The `frame` suite did not run.)");
  }
  L.push("");
  L.push("- **Request timeouts** (src/mux/caller.ts). Every request armed its own `setTimeout` for its timeout and cleared it on the reply; on Deno that pair was a visible share of the caller's time. " +
    "Requests with the same timeout are now kept in one queue in the order sent (so in deadline order) with a single timer armed for the oldest live one; a reply marks its entry finished, the timer is cleared when the queue empties, and the queue drops finished entries as it goes (semantics unchanged: a request still fails with `TimeoutError` once its own timeout has passed, never earlier). " +
    "What it saves per request at concurrency above one is a timer pair, in this run:");
  L.push("");
  if (Object.keys(fm).length) {
    L.push(table(
      ["runtime", "setTimeout + clearTimeout, ns"],
      RUNTIME_ORDER.filter((r) => fm[r]).map((r) => [r, fx(fm[r].timerPairNs, 0)]),
      [1],
    ));
    L.push("");
  }
  L.push("- **Stream data shares frames; requests go first** (src/link.ts, src/stream/credits.ts). The stream profile showed one frame per 16 KiB message, each writer `write()` waiting until its message was handed to the socket, and close to one credit message back per message. " +
    "Now a write returns at once while less than `bulkQueueBytes` (256 KiB) of stream data waits in the link, so queued messages share 64 KiB frames; stream data waits once the socket holds `bulkHighWaterBytes` (128 KiB) while requests and control messages still go out; and credits go back in batches. " +
    "A stream's end (and a handler's error after its data) queues behind that data, never ahead of it.");
  L.push("");
  L.push("- **Credits at a quarter of the window** (src/stream/credits.ts). With credits back at half the window, Deno's stream reached 0.61–0.81× raw (median 0.70×) with the default window of 16: the writer waited for credit that was still on its way. " +
    "A quarter, measured in alternating runs as this went in: Deno median 0.90×, Bun 0.97–0.99× (was 0.87–0.92×), Node unchanged (1.01–1.05×), request p99 under the stream on Deno 5.9–6.3× idle (was 6.2–8.5×).");
  L.push("");
  L.push("- **One reused send buffer, frames that wait for writers, credits at half the window** (src/link.ts, src/protocol/frame.ts, src/stream/credits.ts). " +
    "Bun's stream profile had its writer at full CPU in `send`, with every frame a new 64 KiB array (fresh memory each time) and a `DataView` per frame, and the reader counted exactly one message per frame: a writer's `await writer.ready; writer.write()` loop let the link flush after every message. " +
    "Now every frame is encoded into one shared buffer when the socket's `send` copies (the WHATWG WebSocket, Bun's server socket) or, on a `ws` socket, while nothing waits in its buffer (it keeps what it could not write, and then keeps the buffer too); headers are written byte by byte; on sockets that copy, a flush with only stream data waits a few microtask turns while writers keep adding, up to a frame's worth; and credits go back once half the window is read instead of a quarter (every credit message is a socket write; three quarters starved the writer). " +
    "Measured in the stream suite as this went in: Bun 0.50× → 0.95–1.01× raw, request p99 under the stream on Bun 6.6× → 4.5–4.8× idle, Deno's writer RSS 131 → 78 MB. " +
    "Waiting for writers stays off on Node's `ws` server socket: there 2–3 messages per frame made the Node reader's V8 run 97 mark-compacts in 4 s instead of 1, and the stream fell from 0.91× to 0.58× raw.");
  L.push("");
  L.push("- **Node dials with the `ws` client, and `ws` sockets keep `binaryType` \"nodebuffer\"** (src/adapters/_ws_dial.ts, src/link.ts). Node's global WebSocket copies every message it receives into a new ArrayBuffer; with \"nodebuffer\" `ws` hands over a view of the bytes read. " +
    "Under the stream that copy kept the reader's V8 in full mark-compacts: the stream went from ~0.6 to ~1.0–1.6 GB/s while requests ran, and a request's p99 from 4.2–5.6 ms to 0.25–3.7 ms. " +
    "Node's p99 under the stream was still bimodal after that (0.25–0.4 ms in some runs, 1.4–4 ms in others, same code).");
  L.push("");
  L.push("- **Benchmark harness: latencies in chunks** (scripts/bench/_load.ts). The load loop recorded latencies into one `Float32Array` sized for its request cap: 16 MB of external memory in the measured process, allocated twice per loaded run. " +
    "That changed how V8 collected the Node reader: with it, 4 of 5 runs of the loaded case ended with p99 at 1.4–2.1 ms and the stream at ~1.2 GB/s; with latencies in 256 KiB chunks taken as needed, 5 of 5 ran at p99 0.25–0.27 ms (2.6–3.2× idle) and ~2 GB/s. It applies to raw and wsgrid alike.");
  L.push("");
  L.push("- **Deno dials with its own client over `Deno.connect`** (src/adapters/_deno_dial.ts). Deno's global WebSocket client has no TCP_NODELAY (a 4 KiB request waits ~44 ms, see the request table), which is why its adapter dialed with the `ws` package over Deno's `node:net`. " +
    "That reader allocated so much per read that under the stream its V8 ran a full mark-compact every ~70 ms, and a request's p99 on the same connection was 5–19× idle. " +
    "Deno's native client, tried as the dialer, measured 2.5–3.7× and a 2 GB/s stream, so the reader was the whole difference. The adapter now opens a TCP connection itself with TCP_NODELAY (`Deno.startTls` for wss://), does the upgrade handshake and reads frames into one reused buffer, one exact-size copy per message. " +
    "Measured (3 rounds): requests 64 B 0.85× → 0.98× raw at concurrency 1 and 1.89× → 2.17× at 64, no stall at 4 KiB, stream 2.26× → 3.42× raw with reader RSS 147 → 87 MB, request p99 under the stream 2.3× idle.");
  L.push("");
  L.push("The stream and loaded-latency tables above are measured with all of these changes.");
  L.push("");
  L.push("- **Metadata and interceptors stay off the path of plain calls** (src/connection.ts, src/mux/callee.ts, src/mux/outgoing.ts). A call without metadata or `parent`, on a node with no interceptor installed, takes the path it took before (one length check on each side, no flag, no section on the wire). " +
    "A/B against a worktree of the build before the feature, alternating runs on the shared 2-core machine: in one process (two Managers over loopback, 64 B at concurrency 64, node 6 runs, bun and deno 5 each), medians before → after were node 254k → 267k, bun 352k → 372k, deno 231k → 245k requests/s, no cost measurable; " +
    "the two-process rtt suite (3 alternating runs each) was too noisy that day to separate the builds (c=64 medians within ±35 % in both directions). " +
    "The first profile of a served call through a no-op interceptor showed 10 % of the handler process in building the call's info: an object literal with a getter, which V8 builds slowly on every call; it is a class now. Metadata keys and values that are short ASCII skip TextEncoder and TextDecoder, whose fixed cost per call dominated a request with one metadata entry.");
  L.push("- **Benchmark harness**: payloads are now built with index writes instead of a `DataView` on `.buffer` (which moves a small typed array off the V8 heap), and RSS sampling is off in round-trip runs; both were harness costs showing in the caller's profile, and they applied to the raw baseline and wsgrid alike.");
  L.push("");
  L.push("## Cases");
  L.push("");
  for (const c of res.cases) L.push(`- **${c.suite ?? "rtt"} / ${c.name}**: ${c.description}${c.skipped ? ` (skipped: ${c.skipped})` : ""}`);
  L.push("");
  L.push("Reproduce with `deno task bench` (under 5 minutes on 2 cores; `--full` for 5 rounds of every cell with 3 s windows, about half an hour). Results: `.bench/results.json`; flags are listed at the top of scripts/bench/main.ts.");
  L.push("");
  return L.join("\n");
}

/** A short reading of the profile: which groups dominate (computed, not typed). */
function profileProse(key: string, client?: Profile, server?: Profile, rawWriter?: Profile, rawMbps?: number, mbps?: number): string {
  const share = (prof: Profile | undefined, test: (name: string) => boolean): number =>
    prof ? Math.round(prof.files.filter((f) => test(f.name)).reduce((a, f) => a + f.pct, 0)) : 0;
  const parts: string[] = [];
  for (const [side, prof] of [["caller", client], ["handler", server]] as const) {
    if (!prof) continue;
    const wsgrid = share(prof, (n) => n.startsWith("src/"));
    const ws = share(prof, (n) => n === "npm:ws");
    const native = share(prof, (n) => n === "(program)" || n === "(garbage collector)" || n.startsWith("node:"));
    const top = prof.functions[0];
    parts.push(`On the ${side} side wsgrid's own code (src/) accounts for ${wsgrid} % of busy self time, the \`ws\` package for ${ws} %, and V8/Node internals (event loop, socket writes, GC) for ${native} %; ` +
      `the single largest entry is \`${top?.name ?? "-"}\` (${fx(top?.pct, 1)} %).`);
  }
  if (key === "requests") {
    parts.push("Per call, the work is one message header to encode and decode, one promise, one map entry and one timeout-queue slot in the caller's mux table, and one handler invocation on the other side; " +
      "batching turns many of those into one WebSocket message, so the remaining cost is spread thinly over framing and dispatch." +
      (client && server && client.idleMs > client.busyMs && server.idleMs > server.busyMs
        ? " Both processes were idle more than busy: at this concurrency the loop is bound by the round trip of each batch between the two processes (wake-ups across CPUs), not by CPU in either."
        : ""));
  } else if (key === "rawStream" || key === "bunRawStream") {
    return "The raw writer's time is almost all the socket write itself; this is the floor the wsgrid writer is compared with above.";
  } else {
    if (rawWriter && server && rawMbps && mbps) {
      // CPU ms per GB moved: busy (or writev) ms over the GB sent in the profiled window (busy + idle).
      const perGB = (ms: number, p: Profile, rate: number): number => ms / ((rate / 1000) * ((p.busyMs + p.idleMs) / 1000));
      // The socket write: `writev` under Node, the WebSocket's native `send` under Bun.
      const writev = (p: Profile): number =>
        p.functions.find((f) => f.name.startsWith("writev") || f.name.startsWith("send (native)"))?.ms ?? 0;
      parts.push(`CPU per GB sent: wsgrid's writer (handler process) spent ${fmtInt(perGB(server.busyMs, server, mbps))} ms, the raw writer ${fmtInt(perGB(rawWriter.busyMs, rawWriter, rawMbps))} ms; ` +
        `of that, the socket write itself (\`writev\`, or Bun's \`send\`) took ${fmtInt(perGB(writev(server), server, mbps))} and ${fmtInt(perGB(writev(rawWriter), rawWriter, rawMbps))} ms, so the difference is wsgrid's own per-message work listed above ` +
        "(framing copy, web streams, credit messages, GC). Neither writer is busy all the time; idle time is time waiting for the reader's credits or for the socket to drain.");
    }
    const wb = client?.functions.find((f) => f.name.startsWith("writeBuffer"));
    if (wb) {
      parts.push(`On the reader, \`writeBuffer\` (writing credit messages back, half a window at a time) takes ${fx(wb.pct, 1)} % of busy time; the raw reader writes nothing.`);
    }
    parts.push("A stream message is copied once into its frame (header + payload in one WebSocket message) and once more by the socket layer, and the reader gets a view into the received frame; " +
      "the raw baseline sends the same buffer without the frame copy and has no credit messages or web-streams machinery, which is the gap between the two.");
  }
  return parts.join("\n\n");
}

/**
 * Writes docs/BENCHMARKS.md and docs/bench-ratios.svg under `root`.
 *
 * @example
 * ```ts
 * renderReport(JSON.parse(readFileSync(".bench/results.json", "utf8")), ".");
 * ```
 */
export function renderReport(res: Results, root: string): string[] {
  const md = join(root, "docs/BENCHMARKS.md");
  const svg = join(root, "docs/bench-ratios.svg");
  mkdirSync(dirname(md), { recursive: true });
  writeFileSync(md, renderMarkdown(res));
  writeFileSync(svg, ratioSvg(res));
  return [md, svg];
}

const argv1 = process.argv[1];
if (argv1 && resolve(argv1) === fileURLToPath(import.meta.url)) {
  const root = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
  const file = resolve(root, process.argv[2] ?? ".bench/results.json");
  const written = renderReport(JSON.parse(readFileSync(file, "utf8")) as Results, root);
  console.log(`wrote ${written.join(", ")}`);
}
