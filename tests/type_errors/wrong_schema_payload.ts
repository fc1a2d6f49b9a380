/**
 * Type-level test that must FAIL `deno check`: wrong types at call sites of
 * definitions built from Standard Schemas. Each line marked `// error: TSnnnn`
 * must be reported with that code, and no other line may be (tests/type_check_test.ts).
 */
import * as v from "valibot";
import { z } from "zod";
import { type Connection, defineSingle, defineStream, type Manager } from "../../mod.ts";

const Create = defineSingle("user.create", {
  input: z.object({ name: z.string() }),
  output: v.object({ id: v.number() }),
});
const Length = defineSingle("str.length", { input: z.string().transform((s) => s.length), output: z.number() });
const Feed = defineStream("feed", { payload: v.object({ start: v.number() }), request: v.number(), response: z.string() });

/** Call sites with wrong types. */
export async function wrongCallSites(grid: Manager, conn: Connection): Promise<void> {
  await conn.request(Create, { name: 1 }); // error: TS2769
  const bad: { id: string } = await conn.request(Create, { name: "a" }); // error: TS2322
  grid.handle(Create, (req) => ({ id: req.name })); // error: TS2769
  grid.handle(Length, (n) => n.toUpperCase()); // error: TS2339
  await conn.request(Length, 3); // error: TS2769
  await conn.newStream(Feed, { start: "x" }); // error: TS2769
  const st = await conn.newStream(Feed, { start: 1 });
  await st.requests!.getWriter().write("x"); // error: TS2345
  grid.handleStream(Feed, async (call) => {
    await call.responses.getWriter().write(5); // error: TS2345
  });
  defineSingle("x", { input: { parse: (s: string) => s } }); // error: TS2769
  void bad;
}
