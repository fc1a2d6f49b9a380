/**
 * Type-level test that must FAIL `deno check`: wrong payload, request and
 * response types at typed call sites. Each line marked `// error: TSnnnn` must be
 * reported with that code, and no other line may be; tests/type_check_test.ts
 * checks both. This folder is excluded from the project's normal type check.
 */
import { type Connection, defineSingle, defineStream, json, type Manager } from "../../mod.ts";

const Lookup = defineSingle<{ key: string }, { value: string | null }>("kv.lookup");
const Watch = defineStream<{ prefix: string }, never, { key: string }>("kv.watch", { inCapacity: 0 });
const Scan = defineStream<{ prefix: string }, { key: string }, { key: string; size: number }>("kv.scan");

/** Call sites with wrong types. */
export async function wrongCallSites(grid: Manager, conn: Connection): Promise<void> {
  await conn.request(Lookup, { key: 1 }); // error: TS2769
  await conn.request(Lookup, { name: "a" }); // error: TS2769
  const bad: { value: number } = await conn.request(Lookup, { key: "a" }); // error: TS2322
  await conn.request("raw.echo", { key: "a" }); // error: TS2769
  grid.handle(Lookup, ({ key }) => ({ value: key.length })); // error: TS2769

  await conn.newStream(Watch, { prefix: 5 }); // error: TS2769
  const st = await conn.newStream(Watch, { prefix: "a/" });
  await st.requests?.getWriter().write({ key: "a" }); // error: TS2345
  for await (const ev of st.responses) ev.size; // error: TS2339
  await conn.newStream(Scan, "a/"); // error: TS2769

  grid.handleStream(Scan, async (call) => {
    const w = call.responses.getWriter();
    await w.write({ key: call.payload.prefix, size: "big" }); // error: TS2322
    for await (const req of call.requests!) req.prefix; // error: TS2339
  });

  defineSingle<{ a: number }, { b: string }>("x", { codec: json<{ c: boolean }>() }); // error: TS2322
  void bad;
}
