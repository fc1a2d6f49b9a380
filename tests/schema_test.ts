/**
 * Standard Schema validation of typed handlers with zod, valibot and arktype,
 * between two in-process nodes over real WebSockets: the serving side validates
 * input before the handler runs and output before it is sent; a failure rejects
 * with InvalidError (code "invalid") carrying the issues, and the handler never
 * runs on invalid input. Asynchronous validators and transforms work; streams
 * validate payload, requests and responses.
 */
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { z } from "zod";
import * as v from "valibot";
import { type } from "arktype";
import { pack } from "msgpackr";
import {
  defineSingle,
  defineStream,
  GridError,
  InvalidError,
  Manager,
  type StandardSchemaV1,
  type ValidationIssue,
} from "../mod.ts";
import { type GridServer, serve } from "../src/adapters/serve.ts";
import { decodeError, errorMessage, handlerErrorMessage } from "../src/mux/wire.ts";
import { freePorts } from "./_net.ts";

const WAIT = { waitForConnect: true, timeout: 10_000 };

interface Lib {
  name: string;
  user: StandardSchemaV1<{ name: string; age: number }>;
  created: StandardSchemaV1<{ id: number; name: string }>;
}

const LIBS: Lib[] = [
  {
    name: "zod",
    user: z.object({ name: z.string().min(1), age: z.number().int().min(0) }),
    created: z.object({ id: z.number().int(), name: z.string() }),
  },
  {
    name: "valibot",
    user: v.object({ name: v.pipe(v.string(), v.minLength(1)), age: v.pipe(v.number(), v.integer(), v.minValue(0)) }),
    created: v.object({ id: v.pipe(v.number(), v.integer()), name: v.string() }),
  },
  {
    name: "arktype",
    user: type({ name: "string > 0", age: "number.integer >= 0" }),
    created: type({ id: "number.integer", name: "string" }),
  },
];

/** Awaits `p`, which must reject with InvalidError with an issue at `path` (`[]`: the value itself). */
async function rejectsInvalid(p: Promise<unknown>, path: (string | number)[]): Promise<InvalidError> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof InvalidError, `expected InvalidError, got ${e}`);
    assert.equal(e.code, "invalid");
    assert.ok(e.issues.length >= 1);
    assert.ok(e.issues.some((i) => JSON.stringify(i.path ?? []) === JSON.stringify(path)), JSON.stringify(e.issues));
    for (const i of e.issues) assert.equal(typeof i.message, "string");
    return e;
  }
  assert.fail("expected the call to reject");
}

describe("schema validation over the grid", () => {
  let hosts: string[] = [];
  const grids: Manager[] = [];
  const servers: GridServer[] = [];

  before(async () => {
    const ports = await freePorts(2);
    hosts = ports.map((p) => `ws://127.0.0.1:${p}`);
    for (let i = 0; i < 2; i++) {
      const g = new Manager({ local: hosts[i], hosts, secret: "s", pingInterval: 300, backoff: { base: 20, cap: 200 } });
      grids.push(g);
      servers.push(await serve(g, { port: ports[i], hostname: "127.0.0.1" }));
    }
  });

  after(async () => {
    for (const g of grids) await g.close();
    for (const s of servers) await s.close();
  });

  for (const lib of LIBS) {
    it(`${lib.name}: validates input before the handler runs and output before it is sent`, async () => {
      const Create = defineSingle(`${lib.name}.create`, { input: lib.user, output: lib.created });
      let runs = 0;
      let nextId: unknown = 1;
      grids[1].handle(Create, ({ name }) => {
        runs++;
        return { id: nextId as number, name };
      });
      const conn = grids[0].connection(hosts[1]);
      assert.deepEqual(await conn.request(Create, { name: "ada", age: 36 }, WAIT), { id: 1, name: "ada" });
      assert.equal(runs, 1);

      await rejectsInvalid(conn.request(Create, { name: "ada", age: -1 }, WAIT), ["age"]);
      await rejectsInvalid(conn.request(Create, { name: "", age: 1 }, WAIT), ["name"]);
      await rejectsInvalid(conn.request(Create, { age: 1 } as unknown as { name: string; age: number }, WAIT), ["name"]);
      assert.equal(runs, 1, "the handler never ran on invalid input");

      nextId = "one";
      await rejectsInvalid(conn.request(Create, { name: "bob", age: 2 }, WAIT), ["id"]);
      assert.equal(runs, 2, "output is validated after the handler ran");
      const stats = grids[1].stats().handlers[`${lib.name}.create`];
      assert.equal(stats.errorsByCode.invalid, 4);
    });
  }

  it("runs asynchronous validators (zod async refine, valibot pipeAsync) as a step of their own", async () => {
    const taken = new Set(["root"]);
    const free = async (name: string) => {
      await new Promise((r) => setTimeout(r, 5));
      return !taken.has(name);
    };
    const ZodSignup = defineSingle("zod.signup", {
      input: z.object({ name: z.string().refine(free, "name is taken") }),
      output: z.boolean(),
    });
    const ValibotSignup = defineSingle("valibot.signup", {
      input: v.objectAsync({ name: v.pipeAsync(v.string(), v.checkAsync(free, "name is taken")) }),
      output: v.boolean(),
    });
    let runs = 0;
    for (const def of [ZodSignup, ValibotSignup]) {
      grids[1].handle(def, ({ name }) => {
        runs++;
        taken.add(name);
        return true;
      });
      const conn = grids[0].connection(hosts[1]);
      assert.equal(await conn.request(def, { name: `ada-${def.name}` }, WAIT), true);
      const e = await rejectsInvalid(conn.request(def, { name: "root" }, WAIT), ["name"]);
      assert.equal(e.issues[0].message, "name is taken");
    }
    assert.equal(runs, 2);
  });

  it("gives the handler the schema's output type and value (a transforming schema)", async () => {
    const Length = defineSingle("zod.length", {
      input: z.string().transform((s) => s.length),
      output: z.number().transform((n) => `${n} chars`),
    });
    grids[1].handle(Length, (n) => {
      assert.equal(typeof n, "number");
      return n * 2;
    });
    const res: string = await grids[0].connection(hosts[1]).request(Length, "abc", WAIT);
    assert.equal(res, "6 chars");
  });

  it("validates a stream's payload, each request and each response", async () => {
    const Sum = defineStream("valibot.sum", {
      payload: v.object({ start: v.number() }),
      request: v.number(),
      response: type({ total: "number" }),
      inCapacity: 4,
      outCapacity: 4,
    });
    let opened = 0;
    grids[1].handleStream(Sum, async (call) => {
      opened++;
      let total = call.payload.start;
      const w = call.responses.getWriter();
      for await (const n of call.requests!) {
        total += n;
        await w.write({ total: total > 100 ? ("big" as unknown as number) : total });
      }
      await w.close();
    });
    const conn = grids[0].connection(hosts[1]);

    const good = await conn.newStream(Sum, { start: 1 }, WAIT);
    const gw = good.requests!.getWriter();
    await gw.write(2);
    await gw.write(3);
    await gw.close();
    const totals: number[] = [];
    for await (const r of good.responses) totals.push(r.total);
    assert.deepEqual(totals, [3, 6]);

    const badPayload = await conn.newStream(Sum, { start: "x" } as unknown as { start: number }, WAIT);
    await rejectsInvalid(badPayload.responses.getReader().read(), ["start"]);
    assert.equal(opened, 1, "the handler never ran on an invalid payload");

    const badRequest = await conn.newStream(Sum, { start: 0 }, WAIT);
    const bw = badRequest.requests!.getWriter();
    await bw.write(1);
    await bw.write("two" as unknown as number);
    const reader = badRequest.responses.getReader();
    assert.deepEqual((await reader.read()).value, { total: 1 });
    await rejectsInvalid(reader.read(), []);

    const badResponse = await conn.newStream(Sum, { start: 100 }, WAIT);
    const rw = badResponse.requests!.getWriter();
    await rw.write(5);
    await rejectsInvalid(badResponse.responses.getReader().read(), ["total"]);
    await rw.close().catch(() => {});
  });
});

describe("validation issues on the wire", () => {
  it("carry message and path in the error message and come back as InvalidError", () => {
    const issues: ValidationIssue[] = [{ message: "Expected string", path: ["users", 3, "name"] }, { message: "Required" }];
    const e = decodeError(handlerErrorMessage(7, new InvalidError("Invalid input", issues)).payload);
    assert.ok(e instanceof InvalidError);
    assert.equal(e.message, "Invalid input");
    assert.deepEqual(e.issues, issues);
  });

  it("are bounded in number and size, and malformed ones are dropped when decoding", () => {
    const many = Array.from({ length: 500 }, (_, i) => ({ message: "x".repeat(5000), path: Array(100).fill(i) }));
    const e = decodeError(errorMessage(1, "invalid", "m", undefined, many).payload) as InvalidError;
    assert.equal(e.issues.length, 64);
    assert.equal(e.issues[0].message.length, 1024);
    assert.equal(e.issues[0].path!.length, 32);
    const hostile = pack({
      code: "invalid",
      message: "m",
      issues: [{ message: 5, path: [{}] }, "x", null, { message: "ok", path: ["a", {}, 2] }],
    });
    const d = decodeError(hostile) as InvalidError;
    assert.ok(d instanceof GridError);
    assert.deepEqual(d.issues, [{ message: "ok", path: ["a", 2] }]);
  });

  it("other handler errors still travel as code remote with the thrown error's code", () => {
    const thrown = Object.assign(new Error("nope"), { code: "ENOENT" });
    const e = decodeError(handlerErrorMessage(1, thrown).payload);
    assert.equal(e.code, "remote");
    assert.equal((e as { remoteCode?: string }).remoteCode, "ENOENT");
  });
});
