/**
 * Interceptors: functions that wrap every call this node serves (`incoming`)
 * and every call it makes (`outgoing`), single requests and stream opens
 * alike. Installed with `grid.use()` (or `new Client(url, { outgoing })`).
 * With none installed, calls skip this machinery entirely.
 *
 * @module
 */
import type { CallContext } from "./types.ts";

/** How a call ended, for {@link InterceptedCall.onEnd}: `undefined` when it succeeded, else its error. */
export type CallOutcome = unknown;

/** What interceptors know about a call, on either side. */
export interface InterceptedCall {
  /** A single request, or a stream. */
  readonly kind: "request" | "stream";
  /** The handler name. */
  readonly handler: string;
  /** The subroute, or `""`. */
  readonly subroute: string;
  /**
   * The other side: for an incoming call the caller's host (`"admin"` for a read-only client),
   * for an outgoing one the called host (a `Client`'s URL).
   */
  readonly remote: string;
  /**
   * The call's metadata. An outgoing interceptor may set entries before calling `next()`: they
   * are sent (within the 4 KiB limit). An incoming interceptor may set entries too: the handler
   * sees them in `ctx.metadata`, and calls it makes with `{ parent: ctx }` carry `traceparent`
   * and `tracestate` from there.
   */
  readonly metadata: Record<string, string>;
  /** The call's deadline as epoch ms, or undefined when it has none. */
  readonly deadline: number | undefined;
  /**
   * Aborted when the call is canceled: for an incoming call the handler's `ctx.signal`, for an
   * outgoing one the caller's signal (undefined when it gave none).
   */
  readonly signal: AbortSignal | undefined;
  /**
   * Runs `listener` once when the call ends, with `undefined` for success or the error: for a
   * request when the interceptors' chain settles, for a stream when the stream ends (after
   * `next()` resolved with the open stream, or with the handler's return).
   */
  onEnd(listener: (outcome: CallOutcome) => void): void;
  /** Runs `listener` for each stream message sent or received (streams only; never for requests). */
  onMessage(listener: (direction: "sent" | "received") => void): void;
}

/** A call this node serves, as incoming interceptors see it. */
export interface IncomingCall extends InterceptedCall {
  /** The handler's context (its signal, deadline, metadata). */
  readonly context: CallContext;
}

/** A call this node makes, as outgoing interceptors see it. */
export interface OutgoingCall extends InterceptedCall {
  /** The `parent` call option, when the call was made inside a handler with `{ parent: ctx }`. */
  readonly parent: CallContext | undefined;
}

/**
 * Wraps a served call. Call `next()` to run the handler, or throw (reject) instead to refuse the
 * call: a thrown {@link GridError} reaches the caller with its code (`UnauthorizedError` →
 * `"unauthorized"`), anything else as a `RemoteError`, and the handler never runs. `next()`
 * resolves with the response bytes of a request, or when a stream's handler returned; it rejects
 * with the handler's error. Return what `next()` gave (or other bytes, for a request).
 */
export type IncomingInterceptor = (call: IncomingCall, next: () => Promise<unknown>) => Promise<unknown>;

/**
 * Wraps a call this node makes. Set metadata, then call `next()` to send it, or throw to fail it
 * before anything is sent. `next()` resolves with the response bytes of a request, or with the
 * open `Stream`; it rejects with the call's error. Return what `next()` gave.
 */
export type OutgoingInterceptor = (call: OutgoingCall, next: () => Promise<unknown>) => Promise<unknown>;

/** An interceptor pair for `grid.use()`; either side may be left out. */
export interface Interceptor {
  /** Wraps every call this node serves. */
  incoming?: IncomingInterceptor;
  /** Wraps every call this node makes. */
  outgoing?: OutgoingInterceptor;
}

/** What the stream machinery reports to the interceptors of one call. */
export interface CallObserver {
  /** A stream message went out or came in. */
  message(direction: "sent" | "received"): void;
  /** The call ended (`undefined`: success). */
  end(outcome: CallOutcome): void;
}

/** The listeners of one intercepted call: its observer, and the `onEnd`/`onMessage` of its info. */
export class CallListeners implements CallObserver {
  private ends: ((outcome: CallOutcome) => void)[] | null = null;
  private messages: ((direction: "sent" | "received") => void)[] | null = null;
  private ended = false;

  /** Adds an end listener (once the call ended, none are added any more). */
  onEnd(listener: (outcome: CallOutcome) => void): void {
    if (typeof listener !== "function") throw new TypeError("Cannot add listener: onEnd takes a function");
    if (!this.ended) (this.ends ??= []).push(listener);
  }

  /** Adds a message listener. */
  onMessage(listener: (direction: "sent" | "received") => void): void {
    if (typeof listener !== "function") throw new TypeError("Cannot add listener: onMessage takes a function");
    if (!this.ended) (this.messages ??= []).push(listener);
  }

  message(direction: "sent" | "received"): void {
    const ms = this.messages;
    if (ms !== null) for (const m of ms) guarded(() => m(direction));
  }

  end(outcome: CallOutcome): void {
    if (this.ended) return;
    this.ended = true;
    const es = this.ends;
    this.ends = this.messages = null;
    if (es !== null) for (const e of es) guarded(() => e(outcome));
  }
}

/** Listeners are observers: one that throws must not break the call or the other listeners. */
function guarded(fn: () => void): void {
  try {
    fn();
  } catch (e) {
    queueMicrotask(() => {
      throw e;
    });
  }
}

/**
 * Runs `call` through `chain` (the first installed outermost), ending in `last`. Every
 * failure, synchronous or not, is a rejection; a `next` called twice rejects.
 */
export function runChain<C>(
  chain: readonly ((call: C, next: () => Promise<unknown>) => Promise<unknown>)[],
  call: C,
  last: () => Promise<unknown>,
): Promise<unknown> {
  const step = (i: number): Promise<unknown> => {
    if (i === chain.length) return last();
    let called = false;
    const next = (): Promise<unknown> => {
      if (called) return Promise.reject(new TypeError("Cannot continue call: an interceptor called next() twice"));
      called = true;
      return step(i + 1);
    };
    try {
      return Promise.resolve(chain[i](call, next));
    } catch (e) {
      return Promise.reject(e);
    }
  };
  return step(0);
}

/** Checks an interceptor pair given to `use()` or a Client. */
export function checkInterceptor(i: Interceptor, where: string): void {
  if (typeof i !== "object" || i === null) throw new TypeError(`Cannot ${where}: an interceptor must be an object`);
  for (const side of ["incoming", "outgoing"] as const) {
    if (i[side] !== undefined && typeof i[side] !== "function") {
      throw new TypeError(`Cannot ${where}: interceptor "${side}" must be a function`);
    }
  }
}

/**
 * The info of a served call for incoming interceptors; `ctx.metadata` must be a writable copy.
 * A class, not an object literal: a literal with a getter is built slowly on every call.
 */
export class IncomingCallInfo implements IncomingCall {
  readonly kind: "request" | "stream";
  readonly handler: string;
  readonly context: CallContext;
  private readonly listeners: CallListeners;

  constructor(kind: "request" | "stream", handler: string, ctx: CallContext, listeners: CallListeners) {
    this.kind = kind;
    this.handler = handler;
    this.context = ctx;
    this.listeners = listeners;
  }

  get subroute(): string {
    return this.context.subroute;
  }

  get remote(): string {
    return this.context.remote;
  }

  get metadata(): Record<string, string> {
    return this.context.metadata as Record<string, string>;
  }

  get deadline(): number | undefined {
    return this.context.deadline;
  }

  get signal(): AbortSignal {
    return this.context.signal;
  }

  onEnd(listener: (outcome: CallOutcome) => void): void {
    this.listeners.onEnd(listener);
  }

  onMessage(listener: (direction: "sent" | "received") => void): void {
    this.listeners.onMessage(listener);
  }
}
