/**
 * `grid.broadcast()`: one request to every host (or the given ones) in
 * parallel, settled per host the way `Promise.allSettled` settles, so that a
 * dead or slow node costs its own entry and never the whole call. The local
 * node's handler runs in-process.
 *
 * @module
 */
import type { Connection } from "../connection.ts";
import { InvalidError, RemoteError, TimeoutError, UnknownHandlerError } from "../errors.ts";
import type { SingleDefinition } from "../handlers/define.ts";
import type { HandlerRegistry } from "../handlers/registry.ts";
import { callTimeout, describe } from "../mux/wire.ts";
import type { HandlerStatsTable } from "../stats/handler_stats.ts";
import { abortReason } from "../stream/caller_stream.ts";
import type { CallContext } from "../types.ts";

/** Options of `grid.broadcast`. */
export interface BroadcastOptions {
  /**
   * Deadline of every call, ms (`Infinity` for none); the broadcast settles within it.
   * @default the Manager's requestTimeout
   */
  timeout?: number;
  /** Aborting rejects the entries still open with `signal.reason` and cancels their handlers. */
  signal?: AbortSignal;
  /** Selects a handler registered for this subroute (or one registered for any). */
  subroute?: string;
  /**
   * The hosts to call; a host not in the list gets a rejected entry (code "unknown-host").
   * @default every host of `grid.hosts`
   */
  hosts?: readonly string[];
  /**
   * `true` adds the local node, `false` leaves it out; when absent it is called if it is in `hosts`.
   */
  includeLocal?: boolean;
}

/** One host's outcome of a broadcast, shaped like a `Promise.allSettled` entry. */
export type BroadcastResult<T> =
  | { host: string; status: "fulfilled"; value: T }
  | { host: string; status: "rejected"; reason: unknown };

/** What a broadcast needs from its Manager (a Manager is one). */
export interface BroadcastHost {
  readonly local: string;
  readonly hosts: readonly string[];
  readonly settings: { readonly requestTimeout: number };
  readonly registry: HandlerRegistry;
  readonly handlerStats: HandlerStatsTable;
  /** The connection to `host`; throws GridError "unknown-host". */
  connection(host: string): Connection;
}

/** The hosts a broadcast calls, in order, without duplicates. */
function targets(host: BroadcastHost, options: BroadcastOptions): string[] {
  const given = options.hosts ?? host.hosts;
  if (!Array.isArray(given) || given.some((h) => typeof h !== "string")) {
    throw new TypeError("Cannot broadcast: option \"hosts\" must be an array of host names");
  }
  const list = [...new Set(given)];
  if (options.includeLocal === false) return list.filter((h) => h !== host.local);
  if (options.includeLocal === true && !list.includes(host.local)) list.unshift(host.local);
  return list;
}

/**
 * Calls `handler` on every target in parallel.
 *
 * @throws {TypeError} a payload that is not bytes for a handler name, bad `hosts`
 * @throws {RangeError} a `timeout` that is NaN, 0 or negative
 */
export async function broadcast<T>(
  host: BroadcastHost,
  handler: string | SingleDefinition<unknown, T, unknown, unknown>,
  payload: unknown,
  options: BroadcastOptions = {},
): Promise<BroadcastResult<T>[]> {
  const timeout = callTimeout(options.timeout, host.settings.requestTimeout);
  const list = targets(host, options);
  let name: string;
  let bytes: Uint8Array;
  let decode: (b: Uint8Array) => T;
  if (typeof handler === "string") {
    if (!(payload instanceof Uint8Array)) throw new TypeError(`Cannot broadcast "${handler}": payload must be a Uint8Array`);
    name = handler;
    bytes = payload;
    decode = (b) => b as T;
  } else if (typeof handler === "object" && handler !== null && handler.kind === "single") {
    name = handler.name;
    bytes = handler.request.encode(payload);
    decode = (b) => handler.response.decode(b);
  } else {
    throw new TypeError("Cannot broadcast: handler must be a name or a defineSingle() definition");
  }
  const call = { timeout, signal: options.signal, subroute: options.subroute };
  return await Promise.all(list.map(async (h): Promise<BroadcastResult<T>> => {
    try {
      const b = h === host.local
        ? await callLocal(host, name, bytes, call)
        : await host.connection(h).requestBytes(name, bytes, call);
      return { host: h, status: "fulfilled", value: decode(b) };
    } catch (reason) {
      return { host: h, status: "rejected", reason };
    }
  }));
}

/**
 * Runs the local handler of `name` in-process, as a remote call would: the same context
 * (`remote` is the local node), deadline, cancellation, errors and handler statistics.
 */
function callLocal(
  host: BroadcastHost,
  name: string,
  payload: Uint8Array,
  call: { timeout: number; signal: AbortSignal | undefined; subroute: string | undefined },
): Promise<Uint8Array> {
  const subroute = call.subroute ?? "";
  const entry = host.registry.lookup(name, subroute);
  if (entry === undefined || entry.kind !== "single") {
    const sub = subroute === "" ? "" : ` (subroute "${subroute}")`;
    return Promise.reject(new UnknownHandlerError(`No handler "${name}"${sub}`));
  }
  const signal = call.signal;
  if (signal?.aborted) return Promise.reject(abortReason(signal));
  const ctrl = new AbortController();
  const ctx: CallContext = {
    signal: ctrl.signal,
    remote: host.local,
    deadline: call.timeout === Infinity ? undefined : Date.now() + call.timeout,
    subroute,
    metadata: {},
  };
  const stats = host.handlerStats;
  const start = performance.now();
  stats.begin(entry.name);
  return new Promise<Uint8Array>((resolve, reject) => {
    let timer: ReturnType<typeof setTimeout> | undefined = undefined;
    let done = false;
    const finish = (ok: boolean, value: unknown, code?: string) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      signal?.removeEventListener("abort", onAbort);
      stats.end(entry.name, start, ok, code);
      if (ok) resolve(value as Uint8Array);
      else {
        if (!ctrl.signal.aborted) ctrl.abort(value);
        reject(value);
      }
    };
    const onAbort = () => finish(false, abortReason(signal!), "canceled");
    signal?.addEventListener("abort", onAbort, { once: true });
    if (call.timeout !== Infinity) {
      timer = setTimeout(() => {
        finish(false, new TimeoutError(`Request "${name}" to "${host.local}" timed out after ${call.timeout} ms`), "timeout");
      }, call.timeout);
    }
    const settle = (v: unknown) => {
      if (v instanceof Uint8Array) finish(true, v);
      else finish(false, new RemoteError(`Handler "${name}" returned ${typeof v}, expected Uint8Array`), "remote");
    };
    const fail = (e: unknown) => {
      if (e instanceof InvalidError) return finish(false, e, "invalid");
      const d = describe(e);
      finish(false, new RemoteError(d.message, d.code), "remote");
    };
    try {
      const r = entry.fn(payload, ctx);
      if (r instanceof Uint8Array) settle(r);
      else Promise.resolve(r).then(settle, fail);
    } catch (e) {
      fail(e);
    }
  });
}
