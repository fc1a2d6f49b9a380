/**
 * Typed handler definitions: a name plus codecs, and optionally Standard Schema
 * validators, shared by the handler and its callers so their types are inferred
 * at both ends.
 *
 * @module
 */
import type { Codec } from "../types.ts";
import { msgpack } from "./codecs.ts";
import { type InferInput, type InferOutput, isStandardSchema, type StandardSchemaV1 } from "./standard_schema.ts";

/**
 * A typed single-request handler definition. `Req` is what callers send and
 * `Resp` what they receive; `In` is what the handler receives and `Out` what it
 * returns, which differ from `Req` and `Resp` only for schemas that transform.
 */
export interface SingleDefinition<Req, Resp, In = Req, Out = Resp> {
  /** Tells single and stream definitions apart. */
  readonly kind: "single";
  /** The handler name on the grid. */
  readonly name: string;
  /** Codec of request messages. */
  readonly request: Codec<Req>;
  /** Codec of response messages. */
  readonly response: Codec<Resp>;
  /** Validators run by the serving side: the input before the handler runs, its output before it is sent. */
  readonly schemas?: {
    readonly input?: StandardSchemaV1<Req, In>;
    readonly output?: StandardSchemaV1<Out, Resp>;
  };
}

/**
 * A typed stream handler definition. `P`, `Req` and `Resp` are the caller's
 * types of the payload, the request and the response messages; `HP`, `HReq` and
 * `HResp` the handler's, which differ only for schemas that transform.
 */
export interface StreamDefinition<P, Req, Resp, HP = P, HReq = Req, HResp = Resp> {
  /** Tells single and stream definitions apart. */
  readonly kind: "stream";
  /** The handler name on the grid. */
  readonly name: string;
  /** Codec of the initial payload. */
  readonly payload: Codec<P>;
  /** Codec of request messages. */
  readonly request: Codec<Req>;
  /** Codec of response messages. */
  readonly response: Codec<Resp>;
  /** Request messages the caller may have in flight; 0 means no requests stream. */
  readonly inCapacity: number;
  /** Response messages the handler may have in flight. */
  readonly outCapacity: number;
  /** Validators run by the serving side: payload and requests before the handler sees them, responses before they are sent. */
  readonly schemas?: {
    readonly payload?: StandardSchemaV1<P, HP>;
    readonly request?: StandardSchemaV1<Req, HReq>;
    readonly response?: StandardSchemaV1<HResp, Resp>;
  };
}

/** Options of {@link defineSingle}. */
export interface DefineSingleOptions<Req, Resp> {
  /** Codec of both request and response when they share one. @default msgpack */
  codec?: Codec<Req> & Codec<Resp>;
  /** Codec of the request. @default codec */
  request?: Codec<Req>;
  /** Codec of the response. @default codec */
  response?: Codec<Resp>;
}

/** Options of {@link defineSingle} with Standard Schema validators; values travel as msgpack. */
export interface DefineSingleSchemaOptions<I extends StandardSchemaV1, O extends StandardSchemaV1> {
  /** Validates the request on the serving side before the handler runs. */
  input?: I;
  /** Validates the handler's result before it is sent. */
  output?: O;
}

/** Options of {@link defineStream}. */
export interface DefineStreamOptions<P, Req, Resp> {
  /** Codec of the initial payload. @default msgpack */
  payload?: Codec<P>;
  /** Codec of request messages. @default msgpack */
  request?: Codec<Req>;
  /** Codec of response messages. @default msgpack */
  response?: Codec<Resp>;
  /**
   * Request messages the caller may have in flight; 0 means no requests stream (the caller's
   * `requests` is null). A stream without requests (`Req` = `never`) declares 0: types are
   * gone at run time, so the default cannot tell.
   * @default 16
   */
  inCapacity?: number;
  /** Response messages the handler may have in flight. @default 16 */
  outCapacity?: number;
}

/** A codec or a Standard Schema (whose values travel as msgpack). */
export type CodecOrSchema = Codec<unknown> | StandardSchemaV1;

/** The caller's type of a slot: what the schema accepts, or the codec's type. */
export type SentType<S> = S extends StandardSchemaV1 ? InferInput<S> : S extends Codec<infer T> ? T : never;

/** The handler's type of a slot: what the schema yields, or the codec's type. */
export type ServedType<S> = S extends StandardSchemaV1 ? InferOutput<S> : S extends Codec<infer T> ? T : never;

/** Options of {@link defineStream} where any of payload, request and response may be a Standard Schema. */
export interface DefineStreamSchemaOptions<PS extends CodecOrSchema, RS extends CodecOrSchema, SS extends CodecOrSchema> {
  /** Codec or schema of the initial payload. @default msgpack */
  payload?: PS;
  /** Codec or schema of request messages. @default msgpack */
  request?: RS;
  /** Codec or schema of response messages. @default msgpack */
  response?: SS;
  /** Request messages the caller may have in flight; 0 means no requests stream. @default 16 */
  inCapacity?: number;
  /** Response messages the handler may have in flight. @default 16 */
  outCapacity?: number;
}

/**
 * Defines a typed single-request handler.
 *
 * @param name the handler name on the grid
 * @param options codecs (msgpack by default)
 * @returns a definition to pass to `grid.handle` and `conn.request`
 * @example
 * ```ts
 * import { defineSingle } from "wsgrid";
 * const Lookup = defineSingle<{ key: string }, { value: string | null }>("kv.lookup");
 * grid.handle(Lookup, ({ key }) => ({ value: store.get(key) ?? null }), { readOnly: true });
 * const { value } = await conn.request(Lookup, { key: "a" });
 * ```
 */
export function defineSingle<Req, Resp>(name: string, options?: DefineSingleOptions<Req, Resp>): SingleDefinition<Req, Resp>;
/**
 * Defines a typed single-request handler validated by Standard Schemas (zod,
 * valibot, arktype, ...), its types inferred from them. The serving side
 * validates the input before the handler runs and the handler's result before
 * sending it; a failure rejects the call with `InvalidError` (code "invalid")
 * carrying the issues. Values travel as msgpack.
 *
 * @param name the handler name on the grid
 * @param options the input and output schemas
 * @returns a definition to pass to `grid.handle` and `conn.request`
 * @example
 * ```ts
 * import { z } from "zod";
 * import { defineSingle } from "wsgrid";
 * const CreateUser = defineSingle("user.create", {
 *   input: z.object({ name: z.string().min(1) }),
 *   output: z.object({ id: z.number().int() }),
 * });
 * grid.handle(CreateUser, ({ name }) => ({ id: users.add(name) }));
 * const { id } = await conn.request(CreateUser, { name: "ada" });
 * ```
 */
export function defineSingle<I extends StandardSchemaV1 = StandardSchemaV1, O extends StandardSchemaV1 = StandardSchemaV1>(
  name: string,
  options: DefineSingleSchemaOptions<I, O>,
): SingleDefinition<InferInput<I>, InferOutput<O>, InferOutput<I>, InferInput<O>>;
export function defineSingle(
  name: string,
  options: DefineSingleOptions<unknown, unknown> & DefineSingleSchemaOptions<StandardSchemaV1, StandardSchemaV1> = {},
): SingleDefinition<unknown, unknown> {
  const codec = options.codec;
  const def = {
    kind: "single" as const,
    name,
    request: options.request ?? codec ?? msgpack<unknown>(),
    response: options.response ?? codec ?? msgpack<unknown>(),
  };
  const { input, output } = options;
  for (const [key, s] of [["input", input], ["output", output]] as const) {
    if (s !== undefined && !isStandardSchema(s)) {
      throw new TypeError(`Cannot define handler "${name}": option "${key}" must be a Standard Schema (v1)`);
    }
  }
  if (input === undefined && output === undefined) return def;
  return { ...def, schemas: { ...(input ? { input } : {}), ...(output ? { output } : {}) } };
}

/**
 * Defines a typed stream handler. For a stream without requests use `never` as `Req` and
 * declare `inCapacity: 0`, so that the caller gets no `requests` to write to.
 *
 * @param name the handler name on the grid
 * @param options codecs (msgpack by default) and capacities
 * @returns a definition to pass to `grid.handleStream` and `conn.newStream`
 * @example
 * ```ts
 * import { defineStream } from "wsgrid";
 * const Watch = defineStream<{ prefix: string }, never, { key: string }>("kv.watch", { inCapacity: 0, outCapacity: 64 });
 * const st = await conn.newStream(Watch, { prefix: "a/" }); // st.requests is null
 * for await (const ev of st.responses) console.log(ev.key);
 * ```
 */
export function defineStream<P, Req, Resp>(
  name: string,
  options?: DefineStreamOptions<P, Req, Resp>,
): StreamDefinition<P, Req, Resp>;
/**
 * Defines a typed stream handler whose payload, requests and responses may each
 * be validated by a Standard Schema (zod, valibot, arktype, ...) instead of
 * going through a codec, its types inferred from them. The serving side
 * validates the payload before the handler runs, each request before the
 * handler reads it and each response before it is sent; a failure ends the
 * stream with `InvalidError` (code "invalid") carrying the issues. Validated
 * values travel as msgpack.
 *
 * @param name the handler name on the grid
 * @param options codecs or schemas, and capacities
 * @returns a definition to pass to `grid.handleStream` and `conn.newStream`
 * @example
 * ```ts
 * import * as v from "valibot";
 * import { defineStream } from "wsgrid";
 * const Watch = defineStream("kv.watch", {
 *   payload: v.object({ prefix: v.string() }),
 *   response: v.object({ key: v.string() }),
 *   inCapacity: 0,
 * });
 * const st = await conn.newStream(Watch, { prefix: "a/" });
 * ```
 */
export function defineStream<
  PS extends CodecOrSchema = Codec<unknown>,
  RS extends CodecOrSchema = Codec<unknown>,
  SS extends CodecOrSchema = Codec<unknown>,
>(
  name: string,
  options: DefineStreamSchemaOptions<PS, RS, SS>,
): StreamDefinition<SentType<PS>, SentType<RS>, ServedType<SS>, ServedType<PS>, ServedType<RS>, SentType<SS>>;
export function defineStream(
  name: string,
  options: DefineStreamSchemaOptions<CodecOrSchema, CodecOrSchema, CodecOrSchema> = {},
): StreamDefinition<unknown, unknown, unknown> {
  const schemas: { payload?: StandardSchemaV1; request?: StandardSchemaV1; response?: StandardSchemaV1 } = {};
  const codecOf = (key: "payload" | "request" | "response"): Codec<unknown> => {
    const v = options[key];
    if (v === undefined) return msgpack<unknown>();
    if (isStandardSchema(v)) {
      schemas[key] = v;
      return msgpack<unknown>();
    }
    return v;
  };
  const def = {
    kind: "stream" as const,
    name,
    payload: codecOf("payload"),
    request: codecOf("request"),
    response: codecOf("response"),
    inCapacity: options.inCapacity ?? 16,
    outCapacity: options.outCapacity ?? 16,
  };
  return Object.keys(schemas).length === 0 ? def : { ...def, schemas };
}
