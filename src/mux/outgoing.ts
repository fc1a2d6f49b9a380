/**
 * The path of a call made with metadata, a `parent`, or outgoing interceptors
 * installed: it resolves the parent's deadline, signal and trace context into
 * the call's options, runs the interceptors, and encodes the metadata last
 * (so that what interceptors add is within the limit too). Calls with none of
 * these never come here.
 *
 * @module
 */
import { TimeoutError } from "../errors.ts";
import { CallListeners, type CallObserver, type OutgoingCall, type OutgoingInterceptor, runChain } from "../interceptors.ts";
import { copyMetadata, encodeMetadata } from "../protocol/metadata.ts";
import { abortReason } from "../stream/caller_stream.ts";
import type { CallContext, CallOptions } from "../types.ts";
import { callTimeout, timeLeft } from "./wire.ts";

/** Metadata keys of the W3C trace context, which `parent` carries over to nested calls. */
export const TRACE_KEYS: readonly string[] = ["traceparent", "tracestate"];

/** Sends the call once its options are resolved: `meta` is the encoded metadata section (or null). */
export type SendCall<T> = (options: CallOptions, meta: Uint8Array | null, observer: CallObserver | null) => Promise<T>;

/** Whether a call must take this path: it has metadata or a parent, or interceptors are installed. */
export function needsOutgoing(options: CallOptions | undefined, chain: readonly OutgoingInterceptor[]): boolean {
  return chain.length > 0 || (options !== undefined && (options.metadata !== undefined || options.parent !== undefined));
}

/**
 * Makes a call to `remote` through the outgoing interceptors.
 *
 * @param defaultTimeout the timeout of a call that names none (Infinity for streams)
 */
export function outgoingCall<T>(
  kind: "request" | "stream",
  remote: string,
  name: string,
  options: CallOptions | undefined,
  chain: readonly OutgoingInterceptor[],
  defaultTimeout: number,
  send: SendCall<T>,
): Promise<T> {
  const what = kind === "request" ? `send request "${name}"` : `open stream "${name}"`;
  const parent = options?.parent;
  let timeout: number;
  let signal = options?.signal;
  let metadata: Record<string, string>;
  try {
    timeout = callTimeout(options?.timeout, defaultTimeout);
    const given = options?.metadata;
    if (given !== undefined && (typeof given !== "object" || given === null || Array.isArray(given))) {
      throw new TypeError(`Cannot ${what}: option "metadata" must be an object of strings`);
    }
    metadata = copyMetadata(given);
    if (parent !== undefined) {
      if (typeof parent !== "object" || parent === null || !(parent.signal instanceof AbortSignal)) {
        throw new TypeError(`Cannot ${what}: option "parent" must be a handler's CallContext`);
      }
      timeout = inherit(parent, timeout, what);
      signal = signal === undefined ? parent.signal : AbortSignal.any([signal, parent.signal]);
      if (!TRACE_KEYS.some((k) => Object.hasOwn(metadata, k))) {
        for (const k of TRACE_KEYS) {
          const v = parent.metadata?.[k];
          if (typeof v === "string") metadata[k] = v;
        }
      }
    }
  } catch (e) {
    return Promise.reject(e);
  }
  if (signal?.aborted) return Promise.reject(abortReason(signal));
  if (chain.length === 0) {
    let meta: Uint8Array | null;
    try {
      meta = encodeMetadata(metadata, what);
    } catch (e) {
      return Promise.reject(e);
    }
    return send({ signal, timeout, subroute: options?.subroute, waitForConnect: options?.waitForConnect }, meta, null);
  }
  const call = new OutgoingCallInfo(kind, remote, name, options, metadata, timeout, signal);
  const listeners = call.listeners;
  const last = (): Promise<unknown> => {
    try {
      return send(call.options(), encodeMetadata(metadata, what), kind === "stream" ? listeners : null);
    } catch (e) {
      return Promise.reject(e);
    }
  };
  // A request ends when the chain settles; a stream when it ends, which the stream reports
  // (one that never opened, or that an interceptor failed, ends here).
  return runChain(chain, call, last).then((v) => {
    // An interceptor that answers without next() must still answer what next() would.
    const ok = kind === "request" ? v instanceof Uint8Array : typeof v === "object" && v !== null && "responses" in v;
    if (!ok) throw new TypeError(`Cannot ${what}: an interceptor returned ${typeof v} instead of what next() gave`);
    if (kind === "request") listeners.end(undefined);
    return v as T;
  }, (e) => {
    listeners.end(e);
    throw e;
  });
}

/**
 * A call as outgoing interceptors see it. A class, so that building one per call allocates one
 * object (an object literal with closures and getters costs several).
 */
class OutgoingCallInfo implements OutgoingCall {
  readonly kind: "request" | "stream";
  readonly remote: string;
  readonly handler: string;
  readonly metadata: Record<string, string>;
  readonly signal: AbortSignal | undefined;
  readonly listeners = new CallListeners();
  private readonly given: CallOptions | undefined;
  private readonly timeout: number;
  /** `performance.now()` when the call was made: interceptors' time counts against its deadline. */
  private readonly started = performance.now();

  constructor(
    kind: "request" | "stream",
    remote: string,
    handler: string,
    given: CallOptions | undefined,
    metadata: Record<string, string>,
    timeout: number,
    signal: AbortSignal | undefined,
  ) {
    this.kind = kind;
    this.remote = remote;
    this.handler = handler;
    this.given = given;
    this.metadata = metadata;
    this.timeout = timeout;
    this.signal = signal;
  }

  get subroute(): string {
    return this.given?.subroute ?? "";
  }

  get parent(): CallContext | undefined {
    return this.given?.parent;
  }

  get deadline(): number | undefined {
    return this.timeout === Infinity ? undefined : Math.round(performance.timeOrigin + this.started + this.timeout);
  }

  onEnd(listener: (outcome: unknown) => void): void {
    this.listeners.onEnd(listener);
  }

  onMessage(listener: (direction: "sent" | "received") => void): void {
    this.listeners.onMessage(listener);
  }

  /** The options the call is sent with, its timeout less the time the interceptors took. */
  options(): CallOptions {
    const g = this.given;
    return {
      signal: this.signal,
      timeout: timeLeft(this.timeout, performance.now() - this.started),
      subroute: g?.subroute,
      waitForConnect: g?.waitForConnect,
    };
  }
}

/** The shorter of `timeout` and what is left of the parent's deadline. */
function inherit(parent: CallContext, timeout: number, what: string): number {
  if (parent.deadline === undefined) return timeout;
  const left = parent.deadline - Date.now();
  if (left <= 0) throw new TimeoutError(`Cannot ${what}: the parent call passed its deadline`);
  return left < timeout ? Math.max(1, Math.floor(left)) : timeout;
}
