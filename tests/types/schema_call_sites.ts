/**
 * Type-level test: definitions built from Standard Schemas (zod, valibot, arktype)
 * infer the caller's and the handler's types from them, transforms included, and
 * wsgrid's copy of the StandardSchemaV1 interface matches @standard-schema/spec's
 * both ways. Never run, only checked (tests/type_check_test.ts); its counterpart
 * with wrong types is tests/type_errors/wrong_schema_payload.ts.
 */
import type { StandardSchemaV1 as SpecSchema } from "@standard-schema/spec";
import { type } from "arktype";
import * as v from "valibot";
import { z } from "zod";
import {
  type Connection,
  defineSingle,
  defineStream,
  type InferInput,
  type InferOutput,
  json,
  type Manager,
  type StandardSchemaV1,
} from "../../mod.ts";

/** True when X and Y are the same type (not merely assignable). */
type Equal<X, Y> = (<T>() => T extends X ? 1 : 2) extends (<T>() => T extends Y ? 1 : 2) ? true : false;

function expectType<T extends true>(): T | undefined {
  return undefined;
}

// The copy and the specification accept each other's schemas.
const fromSpec = (s: SpecSchema<string, number>): StandardSchemaV1<string, number> => s;
const toSpec = (s: StandardSchemaV1<string, number>): SpecSchema<string, number> => s;

const zUser = z.object({ name: z.string(), age: z.number() });
const vUser = v.object({ name: v.string(), age: v.number() });
const aUser = type({ name: "string", age: "number" });
type User = { name: string; age: number };
expectType<Equal<InferOutput<typeof zUser>, User>>();
expectType<Equal<InferOutput<typeof vUser>, User>>();
expectType<Equal<InferOutput<typeof aUser>, User>>();

const Create = defineSingle("user.create", { input: zUser, output: v.object({ id: v.number() }) });
const Length = defineSingle("str.length", { input: z.string().transform((s) => s.length), output: z.number() });
expectType<Equal<InferInput<typeof Length extends { schemas?: { input?: infer S } } ? NonNullable<S> : never>, string>>();
const Feed = defineStream("feed", { payload: aUser, request: v.number(), response: json<{ n: number }>(), inCapacity: 4 });
const Plain = defineStream("plain", { payload: z.object({ prefix: z.string() }) });

/** Call sites as an application writes them; the checker infers every type below. */
export async function callSites(grid: Manager, conn: Connection): Promise<void> {
  grid.handle(Create, (req) => {
    expectType<Equal<typeof req, User>>();
    return { id: req.age };
  });
  const created = await conn.request(Create, { name: "ada", age: 36 });
  expectType<Equal<typeof created, { id: number }>>();

  grid.handle(Length, (n) => {
    expectType<Equal<typeof n, number>>();
    return n;
  });
  const len = await conn.request(Length, "abc");
  expectType<Equal<typeof len, number>>();

  grid.handleStream(Feed, async (call) => {
    expectType<Equal<typeof call.payload, User>>();
    const w = call.responses.getWriter();
    for await (const n of call.requests!) {
      expectType<Equal<typeof n, number>>();
      await w.write({ n });
    }
  });
  const st = await conn.newStream(Feed, { name: "a", age: 1 });
  await st.requests!.getWriter().write(5);
  for await (const r of st.responses) expectType<Equal<typeof r, { n: number }>>();

  grid.handleStream(Plain, (call) => {
    expectType<Equal<typeof call.payload, { prefix: string }>>();
  });
  void fromSpec;
  void toSpec;
}
