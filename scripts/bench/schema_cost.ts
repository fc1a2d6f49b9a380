/**
 * Per-request cost of Standard Schema validation: typed single requests between
 * two Managers in one process (real WebSockets on loopback), concurrency 64, with
 * a plain typed definition (the baseline, measured in the same run) against the
 * same definition validated on input and output by a minimal hand-written
 * Standard Schema, answering synchronously or through a promise. This measures
 * wsgrid's validation step, not a schema library (validators are test-only
 * dependencies); the library's own cost adds to it. Cases are interleaved in each
 * round; the table shows median requests/s, the ratio to the baseline and the
 * added µs per request.
 *
 * Usage: deno run -A scripts/bench/schema_cost.ts [--rounds 5] [--duration 1]   (also bun, node)
 *
 * @module
 */
import process from "node:process";
import { createServer } from "node:net";
import { defineSingle, Manager, type StandardSchemaV1 } from "../../mod.ts";
import { serve } from "../../src/adapters/serve.ts";

interface User {
  name: string;
  age: number;
}

function arg(name: string, dflt: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : dflt;
}

/** A schema checking the fields of a value, as a small library would. */
function schema<T>(check: (v: unknown) => boolean, async: boolean): StandardSchemaV1<T> {
  const run = (value: unknown) => check(value) ? { value: value as T } : { issues: [{ message: "Invalid value" }] };
  return {
    "~standard": {
      version: 1,
      vendor: "bench",
      validate: (value) => async ? Promise.resolve(run(value)) : run(value),
    },
  };
}

const isUser = (v: unknown) =>
  typeof v === "object" && v !== null && typeof (v as User).name === "string" && typeof (v as User).age === "number";
const isId = (v: unknown) => typeof v === "object" && v !== null && typeof (v as { id: unknown }).id === "number";

const CASES = {
  plain: defineSingle<User, { id: number }>("plain"),
  "schema (sync)": defineSingle("sync", { input: schema<User>(isUser, false), output: schema<{ id: number }>(isId, false) }),
  "schema (async)": defineSingle("async", { input: schema<User>(isUser, true), output: schema<{ id: number }>(isId, true) }),
};

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

const rounds = arg("rounds", 5);
const durationMs = arg("duration", 1) * 1000;
const CONCURRENCY = 64;
const ports = [await freePort(), await freePort()];
const hosts = ports.map((p) => `ws://127.0.0.1:${p}`);
const grids = hosts.map((local) => new Manager({ local, hosts, secret: "bench" }));
const servers = [await serve(grids[0], { port: ports[0], hostname: "127.0.0.1" }), await serve(grids[1], { port: ports[1], hostname: "127.0.0.1" })];
for (const def of Object.values(CASES)) grids[1].handle(def, (u: User) => ({ id: u.age }));
const conn = grids[0].connection(hosts[1]);
await conn.waitForConnect({ timeout: 10_000 });

async function measure(def: (typeof CASES)[keyof typeof CASES], ms: number): Promise<number> {
  const end = performance.now() + ms;
  let done = 0;
  const payload = { name: "ada", age: 36 };
  await Promise.all(Array.from({ length: CONCURRENCY }, async () => {
    while (performance.now() < end) {
      await conn.request(def, payload);
      done++;
    }
  }));
  return done / (ms / 1000);
}

const results = new Map<string, number[]>(Object.keys(CASES).map((k) => [k, []]));
for (const def of Object.values(CASES)) await measure(def, 300);
for (let r = 0; r < rounds; r++) {
  for (const [name, def] of Object.entries(CASES)) results.get(name)!.push(await measure(def, durationMs));
}
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const base = median(results.get("plain")!);
const runtime = "Deno" in globalThis ? "deno" : "Bun" in globalThis ? "bun" : "node";
console.log(`schema validation cost on ${runtime}: concurrency ${CONCURRENCY}, ${rounds} rounds of ${durationMs / 1000} s`);
console.log("| case | req/s (median) | ratio to plain | added µs/request |");
console.log("|---|---|---|---|");
for (const [name, xs] of results) {
  const m = median(xs);
  const added = (1e6 / m - 1e6 / base).toFixed(2);
  console.log(`| ${name} | ${Math.round(m)} | ${(m / base).toFixed(3)} | ${name === "plain" ? "—" : added} |`);
}
for (const g of grids) await g.close();
for (const s of servers) await s.close();
