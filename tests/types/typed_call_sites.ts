/**
 * Type-level test: typed definitions infer request, response and stream types at
 * call sites and in handlers. Never run, only checked (`deno check`, driven by
 * tests/type_check_test.ts); every `expectType` fails the check if an inferred
 * type drifts. Its counterpart with wrong payloads is tests/type_errors/wrong_payload.ts.
 */
import {
  type CallContext,
  type Connection,
  defineSingle,
  defineStream,
  json,
  type Manager,
  msgpack,
  raw,
  type Stream,
  type StreamCall,
} from "../../mod.ts";

/** True when X and Y are the same type (not merely assignable). */
type Equal<X, Y> = (<T>() => T extends X ? 1 : 2) extends (<T>() => T extends Y ? 1 : 2) ? true : false;

function expectType<T extends true>(): T | undefined {
  return undefined;
}

const Lookup = defineSingle<{ key: string }, { value: string | null }>("kv.lookup");
const Sum = defineSingle<{ a: number; b: number }, { sum: number }>("math.sum", {
  request: json<{ a: number; b: number }>(),
  response: msgpack<{ sum: number }>(),
});
const Echo = defineSingle<Uint8Array, Uint8Array>("echo", { codec: raw });
const Watch = defineStream<{ prefix: string }, never, { key: string }>("kv.watch", { inCapacity: 0, outCapacity: 64 });
const Upload = defineStream<{ name: string }, Uint8Array, { written: number }>("fs.upload", { request: raw });

/** Call sites as an application writes them; the checker infers every type below. */
export async function callSites(grid: Manager, conn: Connection): Promise<void> {
  grid.handle(Lookup, async ({ key }, ctx) => {
    expectType<Equal<typeof key, string>>();
    expectType<Equal<typeof ctx, CallContext>>();
    await Promise.resolve();
    return { value: key.length > 0 ? key : null };
  }, { readOnly: true });
  grid.handle(Sum, ({ a, b }) => ({ sum: a + b }));
  grid.handle(Echo, (bytes) => bytes.slice());
  grid.handle("raw.echo", (req, ctx) => {
    expectType<Equal<typeof req, Uint8Array>>();
    expectType<Equal<typeof ctx.signal, AbortSignal>>();
    return req;
  });

  const found = await conn.request(Lookup, { key: "a" });
  expectType<Equal<typeof found, { value: string | null }>>();
  const { sum } = await conn.request(Sum, { a: 1, b: 2 }, { timeout: 1_000, subroute: "x" });
  expectType<Equal<typeof sum, number>>();
  const echoed = await conn.request(Echo, new Uint8Array(3));
  expectType<Equal<typeof echoed, Uint8Array>>();
  const bytes = await conn.request("raw.echo", new Uint8Array([1, 2, 3]));
  expectType<Equal<typeof bytes, Uint8Array>>();

  grid.handleStream(Watch, async (call) => {
    expectType<Equal<typeof call, StreamCall<{ prefix: string }, never, { key: string }>>>();
    expectType<Equal<typeof call.payload.prefix, string>>();
    const w = call.responses.getWriter();
    await w.write({ key: `${call.payload.prefix}1` });
    await w.close();
  });
  grid.handleStream(Upload, async (call) => {
    let written = 0;
    for await (const chunk of call.requests!) {
      expectType<Equal<typeof chunk, Uint8Array>>();
      written += chunk.length;
    }
    await call.responses.getWriter().write({ written });
  });
  grid.handleStream("raw.tail", (call) => {
    expectType<Equal<typeof call, StreamCall<Uint8Array, Uint8Array, Uint8Array>>>();
  }, { inCapacity: 16, outCapacity: 16 });

  const watch = await conn.newStream(Watch, { prefix: "a/" });
  expectType<Equal<typeof watch, Stream<never, { key: string }>>>();
  expectType<Equal<typeof watch.requests, WritableStream<never> | null>>();
  for await (const ev of watch.responses) {
    expectType<Equal<typeof ev, { key: string }>>();
  }
  const upload = await conn.newStream(Upload, { name: "f" });
  await upload.requests?.getWriter().write(new Uint8Array(8));
  for await (const { written } of upload.responses) expectType<Equal<typeof written, number>>();
  const tail = await conn.newStream("raw.tail", new Uint8Array(), { signal: AbortSignal.timeout(1_000) });
  expectType<Equal<typeof tail, Stream<Uint8Array, Uint8Array>>>();
}
