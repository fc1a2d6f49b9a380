/**
 * Typed handlers with Standard Schema validation, as the registry runs them:
 * the serving side validates what arrives before the handler sees it, and what
 * the handler produces before it is sent. Validation is a step of its own
 * between the codec and the handler, so asynchronous validators work; a
 * synchronous one adds no promise to a single request.
 *
 * @module
 */
import type { CallContext, StreamCall } from "../types.ts";
import type { SingleDefinition, StreamDefinition } from "./define.ts";
import { andThen, type StandardSchemaV1, validate } from "./standard_schema.ts";

/** The raw handler of a single-request definition with schemas. */
export function validatedSingle<Req, Resp, In, Out>(
  def: SingleDefinition<Req, Resp, In, Out>,
  fn: (req: In, ctx: CallContext) => Out | Promise<Out>,
): (bytes: Uint8Array, ctx: CallContext) => Uint8Array | Promise<Uint8Array> {
  const input = def.schemas?.input as StandardSchemaV1<unknown, In> | undefined;
  const output = def.schemas?.output as StandardSchemaV1<unknown, Resp> | undefined;
  const inWhat = `input of "${def.name}"`;
  const outWhat = `output of "${def.name}"`;
  const enc = (v: Resp) => def.response.encode(v);
  const sendOut = (v: Out): Uint8Array | Promise<Uint8Array> =>
    output === undefined ? enc(v as unknown as Resp) : andThen(validate(output, v, outWhat), enc);
  return (bytes, ctx) => {
    const decoded = def.request.decode(bytes);
    const req = input === undefined ? decoded as unknown as In : validate(input, decoded, inWhat);
    return andThen(andThen(req, (v) => fn(v, ctx)), sendOut);
  };
}

type Schemas = NonNullable<StreamDefinition<unknown, unknown, unknown>["schemas"]>;

/** Requests as the handler reads them: each validated, the stream erroring with InvalidError at the first bad one. */
function validatedRequests(
  requests: ReadableStream<unknown>,
  schema: StandardSchemaV1,
  what: string,
): ReadableStream<unknown> {
  // No extra buffer: a request is taken from the wire's stream (returning its
  // credit) only when the handler reads, as without a schema.
  const reader = requests.getReader();
  return new ReadableStream<unknown>({
    pull: async (c) => {
      const r = await reader.read();
      if (r.done) return c.close();
      c.enqueue(await validate(schema, r.value, what));
    },
    cancel: (reason) => reader.cancel(reason),
  }, { highWaterMark: 0 });
}

/**
 * Responses as the handler writes them: each validated, then written to the
 * wire's stream. `settled()` resolves once every accepted write went through,
 * and rejects with the first validation failure.
 */
function validatedResponses(
  responses: WritableStream<unknown>,
  schema: StandardSchemaV1,
  what: string,
): { stream: WritableStream<unknown>; settled(): Promise<void> } {
  const writer = responses.getWriter();
  let pending = 0;
  let idle: (() => void) | null = null;
  let failure: { err: unknown } | null = null;
  const stream = new WritableStream<unknown>({
    write: async (chunk) => {
      try {
        await writer.write(await validate(schema, chunk, what));
      } catch (e) {
        failure ??= { err: e };
        throw e;
      } finally {
        if (--pending === 0 && idle !== null) idle();
      }
    },
    close: () => writer.close(),
    abort: (reason) => {
      // Writes still queued are dropped by the abort and never reach write().
      pending = 0;
      idle?.();
      return writer.abort(reason);
    },
  }, {
    highWaterMark: 1,
    size: () => {
      pending++;
      return 1;
    },
  });
  return {
    stream,
    settled: async () => {
      if (pending > 0 && failure === null) await new Promise<void>((r) => (idle = r));
      if (failure !== null) throw failure.err;
    },
  };
}

/** The raw-typed handler of a stream definition with schemas. */
export function validatedStream(
  name: string,
  schemas: Schemas,
  fn: (call: StreamCall<unknown, unknown, unknown>) => void | Promise<void> | AsyncIterable<unknown>,
): (call: StreamCall<unknown, unknown, unknown>) => Promise<void> {
  return async (call) => {
    const payload = schemas.payload === undefined
      ? call.payload
      : await validate(schemas.payload, call.payload, `payload of "${name}"`);
    const requests = call.requests === null || schemas.request === undefined
      ? call.requests
      : validatedRequests(call.requests, schemas.request, `request of "${name}"`);
    const responses = schemas.response === undefined
      ? undefined
      : validatedResponses(call.responses, schemas.response, `response of "${name}"`);
    const out = responses?.stream ?? call.responses;
    const r = await fn({
      get signal() {
        return call.signal;
      },
      remote: call.remote,
      deadline: call.deadline,
      subroute: call.subroute,
      metadata: call.metadata,
      payload,
      requests,
      responses: out,
    });
    // An `async function*` handler: its yields are the responses, each validated on its way out.
    if (typeof r === "object" && r !== null && typeof (r as AsyncIterable<unknown>)[Symbol.asyncIterator] === "function") {
      const w = out.getWriter();
      for await (const v of r as AsyncIterable<unknown>) await w.write(v);
      await w.close();
    }
    // The wire's stream ends when this returns: responses still being validated must reach it first.
    await responses?.settled();
  };
}
