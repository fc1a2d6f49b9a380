import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const DENO = join(ROOT, "node_modules", ".bin", "deno");
const LINT = join(ROOT, "scripts", "lint.ts");

interface LintRun {
  status: number | null;
  output: string;
}

function lint(dir: string): LintRun {
  const res = spawnSync(DENO, ["run", "-A", LINT, dir], {
    cwd: ROOT,
    encoding: "utf8",
    env: { ...process.env, DENO_NO_UPDATE_CHECK: "1", NO_COLOR: "1" },
    timeout: 120_000,
  });
  return { status: res.status, output: `${res.stdout}${res.stderr}` };
}

function write(root: string, file: string, text: string): void {
  const path = join(root, file);
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, text);
}

const CLEAN_CORE = `/**
 * Mentions Deno.serve, Bun.serve, process.env and require("x") in docs only.
 *
 * @example
 * \`\`\`ts
 * import { readFile } from "node:fs/promises";
 * Deno.serve(() => new Response("ok"));
 * \`\`\`
 */
// process.exit(1) in a line comment
const message = "Cannot run on Deno.version or process.versions: node:fs is not used";
const template = \`Bun.version \${message.length} process.env\`;
const pattern = /Deno\\.env|process\\./;
/** A queue whose members are named like runtime globals. */
export interface Queue {
  process(item: Uint8Array): void;
  any: number;
  Deno?: string;
}
export function deadline(ms: number, signal: AbortSignal): AbortSignal {
  return AbortSignal.any([signal, AbortSignal.timeout(ms / 2)]);
}
export function describe(value: unknown): string {
  return \`\${template}\${pattern.source}\${String(value)}\`;
}
`;

const ADAPTER = `import type { GridSocket } from "../socket.ts";
export function serve(port: number): unknown {
  return Deno.serve({ port }, () => new Response("ok"));
}
export const pid: number = Deno.pid;
export type { GridSocket };
`;

const VIOLATIONS = `export const env = Deno.env.get("X");
import { readFileSync } from "node:fs";
export const proc = globalThis.process;
export const argv = process.argv;
export const loaded = require("x");
export function loose(value: any): unknown {
  return value;
}
export const version = Bun.version;
`;

describe("scripts/lint.ts", () => {
  let root = "";

  before(() => {
    root = mkdtempSync(join(tmpdir(), "wsgrid-lint-"));
    write(root, "mod.ts", `export * from "./src/clean.ts";\n`);
    write(root, "src/clean.ts", CLEAN_CORE);
    write(root, "src/adapters/deno.ts", ADAPTER);
  });

  after(() => {
    rmSync(root, { recursive: true, force: true });
  });

  it("passes a clean tree where only src/adapters/ uses runtime APIs", () => {
    const res = lint(root);
    assert.equal(res.status, 0, res.output);
    assert.match(res.output, /lint: 3 files clean/);
  });

  it("fails on runtime APIs, node: imports, require and any in the core, listing file:line", () => {
    write(root, "src/protocol/bad.ts", VIOLATIONS);
    try {
      const res = lint(root);
      assert.equal(res.status, 1, res.output);
      for (const line of [1, 2, 3, 4, 5, 6, 9]) {
        assert.match(res.output, new RegExp(`^src/protocol/bad\\.ts:${line}: `, "m"), res.output);
      }
      assert.doesNotMatch(res.output, /src\/protocol\/bad\.ts:(7|8): /);
      assert.doesNotMatch(res.output, /src\/clean\.ts|src\/adapters\/deno\.ts|mod\.ts/);
    } finally {
      rmSync(join(root, "src/protocol"), { recursive: true, force: true });
    }
  });

  it("fails on any in an adapter and on runtime APIs in mod.ts", () => {
    write(
      root,
      "src/adapters/node.ts",
      `export function wrap(socket: any): unknown {\n  return socket;\n}\n`,
    );
    write(root, "mod.ts", `export * from "./src/clean.ts";\nexport const cwd = process.cwd();\n`);
    try {
      const res = lint(root);
      assert.equal(res.status, 1, res.output);
      assert.match(res.output, /^src\/adapters\/node\.ts:1: .*any/m);
      assert.match(res.output, /^mod\.ts:2: .*process/m);
    } finally {
      rmSync(join(root, "src/adapters/node.ts"), { force: true });
      write(root, "mod.ts", `export * from "./src/clean.ts";\n`);
    }
  });

  it("passes again once the violations are gone", () => {
    const res = lint(root);
    assert.equal(res.status, 0, res.output);
    assert.match(res.output, /lint: 3 files clean/);
  });
});
