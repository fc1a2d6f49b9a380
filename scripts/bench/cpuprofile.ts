/**
 * Reads a V8 `.cpuprofile` (from `node --cpu-prof` or `deno run --cpu-prof`)
 * and sums self time per function and per file, so the benchmark can say
 * where the time goes without a profiler UI.
 *
 * ```sh
 * node scripts/bench/cpuprofile.ts .bench/prof/client.cpuprofile
 * ```
 *
 * @module
 */

import { readFileSync } from "node:fs";
import process from "node:process";

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
}

interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples?: number[];
  timeDeltas?: number[];
}

/** Self time of one function or file. */
export interface SelfTime {
  name: string;
  /** Self time, ms. */
  ms: number;
  /** Share of all sampled time, percent (idle excluded). */
  pct: number;
}

/** What {@linkcode summarizeProfile} returns. */
export interface ProfileSummary {
  /** Sampled time excluding idle, ms. */
  busyMs: number;
  /** Idle (waiting for I/O), ms. */
  idleMs: number;
  functions: SelfTime[];
  files: SelfTime[];
}

function shortUrl(url: string): string {
  if (!url) return "(native)";
  const u = url.replace(/^file:\/\//, "");
  const nm = u.lastIndexOf("node_modules/");
  if (nm >= 0) {
    const rest = u.slice(nm + 13).split("/");
    return `npm:${rest[0].startsWith("@") ? rest.slice(0, 2).join("/") : rest[0]}`;
  }
  const src = u.lastIndexOf("/src/");
  if (src >= 0) return u.slice(src + 1);
  const sc = u.lastIndexOf("/scripts/");
  if (sc >= 0) return u.slice(sc + 1);
  return u.startsWith("node:") ? u : u.split("/").slice(-2).join("/");
}

/**
 * Self time per function and per file, top `top` each.
 *
 * @example
 * ```ts
 * const s = summarizeProfile(JSON.parse(text), 15);
 * console.log(s.functions[0]);
 * ```
 */
export function summarizeProfile(profile: CpuProfile, top = 15, skip?: { untilUrl: string[]; thenMs: number }): ProfileSummary {
  const byId = new Map<number, ProfileNode>();
  for (const n of profile.nodes) byId.set(n.id, n);
  const self = new Map<number, number>();
  if (profile.samples && profile.timeDeltas) {
    // Skip start-up: samples before the first one in a file matching `untilUrl` (the first call), plus `thenMs`.
    let from = 0;
    if (skip) {
      const first = profile.samples.findIndex((id) => {
        const url = byId.get(id)?.callFrame.url ?? "";
        return skip.untilUrl.some((u) => url.includes(u));
      });
      if (first >= 0) {
        from = first;
        for (let t = 0; from < profile.samples.length && t < skip.thenMs * 1000; from++) t += profile.timeDeltas[from] ?? 0;
      }
    }
    for (let i = from; i < profile.samples.length; i++) {
      const id = profile.samples[i];
      self.set(id, (self.get(id) ?? 0) + Math.max(0, profile.timeDeltas[i] ?? 0));
    }
  } else {
    const total = profile.endTime - profile.startTime;
    const hits = profile.nodes.reduce((a, n) => a + (n.hitCount ?? 0), 0) || 1;
    for (const n of profile.nodes) self.set(n.id, ((n.hitCount ?? 0) / hits) * total);
  }
  const fns = new Map<string, number>();
  const files = new Map<string, number>();
  let idle = 0;
  let busy = 0;
  for (const [id, us] of self) {
    const n = byId.get(id);
    if (!n) continue;
    const f = n.callFrame;
    if (f.functionName === "(idle)") {
      idle += us;
      continue;
    }
    busy += us;
    const file = f.functionName.startsWith("(") ? f.functionName : shortUrl(f.url);
    const key = f.functionName.startsWith("(") ? f.functionName : `${f.functionName || "(anonymous)"} ${file}:${f.lineNumber + 1}`;
    fns.set(key, (fns.get(key) ?? 0) + us);
    files.set(file, (files.get(file) ?? 0) + us);
  }
  const list = (m: Map<string, number>): SelfTime[] =>
    [...m].sort((a, b) => b[1] - a[1]).slice(0, top).map(([name, us]) => ({
      name,
      ms: Math.round(us / 100) / 10,
      pct: Math.round((us / (busy || 1)) * 1000) / 10,
    }));
  return { busyMs: Math.round(busy / 1000), idleMs: Math.round(idle / 1000), functions: list(fns), files: list(files) };
}

/** Formats a summary as plain text. */
export function formatProfile(s: ProfileSummary): string {
  const rows = (xs: SelfTime[]) => xs.map((x) => `  ${x.pct.toFixed(1).padStart(5)} %  ${x.ms.toFixed(1).padStart(8)} ms  ${x.name}`);
  return [`busy ${s.busyMs} ms, idle ${s.idleMs} ms`, "by file:", ...rows(s.files), "by function:", ...rows(s.functions)].join("\n");
}

const argv1 = process.argv[1];
if (argv1 && import.meta.url.endsWith(argv1.split("/").pop() ?? "\0") && process.argv[2]) {
  const s = summarizeProfile(JSON.parse(readFileSync(process.argv[2], "utf8")) as CpuProfile);
  console.log(formatProfile(s));
}
