/**
 * Typed handler definitions: a name plus codecs, shared by the handler and its
 * callers so their types are inferred at both ends.
 *
 * @module
 */
import type { Codec } from "../types.ts";
import { msgpack } from "./codecs.ts";

/** A typed single-request handler definition. */
export interface SingleDefinition<Req, Resp> {
  /** Tells single and stream definitions apart. */
  readonly kind: "single";
  /** The handler name on the grid. */
  readonly name: string;
  /** Codec of request messages. */
  readonly request: Codec<Req>;
  /** Codec of response messages. */
  readonly response: Codec<Resp>;
}

/** A typed stream handler definition. */
export interface StreamDefinition<P, Req, Resp> {
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

/** Options of {@link defineStream}. */
export interface DefineStreamOptions<P, Req, Resp> {
  /** Codec of the initial payload. @default msgpack */
  payload?: Codec<P>;
  /** Codec of request messages. @default msgpack */
  request?: Codec<Req>;
  /** Codec of response messages. @default msgpack */
  response?: Codec<Resp>;
  /** Request messages the caller may have in flight; 0 means no requests stream. @default 16 (0 when the stream has no requests) */
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
export function defineSingle<Req, Resp>(
  name: string,
  options: DefineSingleOptions<Req, Resp> = {},
): SingleDefinition<Req, Resp> {
  const codec = options.codec;
  return {
    kind: "single",
    name,
    request: options.request ?? codec ?? msgpack<Req>(),
    response: options.response ?? codec ?? msgpack<Resp>(),
  };
}

/**
 * Defines a typed stream handler. Use `never` as `Req` for a stream without requests.
 *
 * @param name the handler name on the grid
 * @param options codecs (msgpack by default) and capacities
 * @returns a definition to pass to `grid.handleStream` and `conn.newStream`
 * @example
 * ```ts
 * import { defineStream } from "wsgrid";
 * const Watch = defineStream<{ prefix: string }, never, { key: string }>("kv.watch", { outCapacity: 64 });
 * const st = await conn.newStream(Watch, { prefix: "a/" });
 * for await (const ev of st.responses) console.log(ev.key);
 * ```
 */
export function defineStream<P, Req, Resp>(
  name: string,
  options: DefineStreamOptions<P, Req, Resp> = {},
): StreamDefinition<P, Req, Resp> {
  return {
    kind: "stream",
    name,
    payload: options.payload ?? msgpack<P>(),
    request: options.request ?? msgpack<Req>(),
    response: options.response ?? msgpack<Resp>(),
    inCapacity: options.inCapacity ?? 16,
    outCapacity: options.outCapacity ?? 16,
  };
}
