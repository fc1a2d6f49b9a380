/**
 * Typed definitions are checked at call sites: `deno check` accepts
 * tests/types/typed_call_sites.ts and schema_call_sites.ts, and rejects
 * tests/type_errors/wrong_payload.ts and wrong_schema_payload.ts with exactly the
 * errors their `// error: TSnnnn` comments announce.
 *
 * tests/type_errors/ is excluded from the project's type check (deno.json
 * "exclude"), and Deno skips excluded files even when named on the command line,
 * so the failing file is checked from a copy under .tmp/ at the same depth (its
 * `../../mod.ts` import resolves the same).
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { copyFileSync, existsSync, mkdirSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const DENO = join(ROOT, "node_modules", ".bin", process.platform === "win32" ? "deno.cmd" : "deno");
/** Type checking the library from a cold cache takes a while on a shared 2-core machine. */
const CHECK_TIMEOUT_MS = 120_000;

interface CheckResult {
  status: number | null;
  output: string;
}

function denoCheck(file: string): CheckResult {
  const res = spawnSync(DENO, ["check", file], {
    cwd: ROOT,
    encoding: "utf8",
    timeout: CHECK_TIMEOUT_MS,
    env: { ...process.env, NO_COLOR: "1", DENO_NO_UPDATE_CHECK: "1" },
  });
  if (res.error) throw res.error;
  return { status: res.status, output: `${res.stdout}${res.stderr}` };
}

/** `TSnnnn@line` for each error whose location is in `file`, in output order. */
function reportedErrors(output: string, file: string): string[] {
  const found: string[] = [];
  let code: string | null = null;
  for (const line of output.split("\n")) {
    const header = /^(TS\d+) \[ERROR\]/.exec(line);
    if (header) {
      code = header[1];
      continue;
    }
    const at = /^\s+at (file:\/\/\S+):(\d+):\d+\s*$/.exec(line);
    if (at && code !== null) {
      // The first location after a header is the error's own; later ones are related information.
      if (fileURLToPath(at[1]) === file) found.push(`${code}@${at[2]}`);
      code = null;
    }
  }
  return found;
}

/** `TSnnnn@line` for each line of `source` ending in `// error: TSnnnn`. */
function announcedErrors(source: string): string[] {
  const out: string[] = [];
  source.split("\n").forEach((line, i) => {
    const m = /\/\/ error: (TS\d+)\s*$/.exec(line);
    if (m) out.push(`${m[1]}@${i + 1}`);
  });
  return out;
}

describe("typed call sites (deno check)", { timeout: 4 * CHECK_TIMEOUT_MS + 10_000 }, () => {
  for (const file of ["typed_call_sites.ts", "schema_call_sites.ts"]) {
    it(`accepts valid typed call sites with the inferred types (${file})`, { timeout: CHECK_TIMEOUT_MS + 5_000 }, () => {
      const res = denoCheck(`tests/types/${file}`);
      assert.equal(res.status, 0, `deno check failed:\n${res.output}`);
    });
  }

  for (const [file, min] of [["wrong_payload.ts", 10], ["wrong_schema_payload.ts", 9]] as const) {
    it(`rejects wrong payload, request and response types, at exactly the announced lines (${file})`, {
      timeout: CHECK_TIMEOUT_MS + 5_000,
    }, () => rejectsAnnounced(file, min));
  }
});

/** Checks a copy of tests/type_errors/`file`: it must fail with exactly its announced errors. */
function rejectsAnnounced(file: string, min: number): void {
  const source = join(ROOT, "tests", "type_errors", file);
  const dir = join(ROOT, ".tmp", `type_errors_${process.pid}`);
  const copy = join(dir, file);
  mkdirSync(dir, { recursive: true });
  copyFileSync(source, copy);
  try {
    const res = denoCheck(copy);
    assert.equal(res.status, 1, `deno check should fail:\n${res.output}`);
    assert.match(res.output, /Type checking failed/);
    const expected = announcedErrors(readFileSync(source, "utf8"));
    assert.ok(expected.length >= min, `only ${expected.length} announced errors`);
    const reported = reportedErrors(res.output, copy);
    assert.deepEqual([...new Set(reported)].sort(), [...expected].sort(), `deno check reported:\n${res.output}`);
  } finally {
    if (existsSync(dir)) rmSync(dir, { recursive: true, force: true });
  }
}
