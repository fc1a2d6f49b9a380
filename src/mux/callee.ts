/**
 * The callee side of the mux: calls this side serves, keyed by the caller's
 * mux id. Runs single-request handlers and hands stream opens to
 * {@link CalleeStream}. Never awaits application code on the read path.
 *
 * @module
 */
import { type GridError, InvalidError, TimeoutError } from "../errors.ts";
import type { SingleEntry, StreamEntry } from "../handlers/registry.ts";
import type { Link } from "../link.ts";
import type { Message } from "../protocol/frame.ts";
import { CallListeners, IncomingCallInfo, type IncomingInterceptor, runChain } from "../interceptors.ts";
import { copyMetadata, decodeMetadata, type Metadata, NO_METADATA } from "../protocol/metadata.ts";
import { OP_CANCEL, OP_REQUEST, OP_RESPONSE, OP_STREAM_OPEN, OP_STREAM_PING } from "../protocol/ops.ts";
import { type CalleeHost, CalleeStream } from "../stream/callee_stream.ts";
import type { CallContext } from "../types.ts";
import { cancelReason, errorCode, errorMessage, handlerErrorMessage, refusalMessage, whenPassed } from "./wire.ts";

export type { CalleeHost };

/** A single request being served; also its handler's CallContext. */
class ServedRequest implements CallContext {
  readonly id: number;
  readonly remote: string;
  readonly subroute: string;
  readonly deadline: number | undefined;
  readonly name: string;
  readonly metadata: Metadata;
  readonly start: number;
  readonly link: Link;
  private ctrl: AbortController | null = null;
  private reason: unknown = undefined;
  /** Cancels the deadline timer, once armed. */
  private stopTimer: (() => void) | undefined;
  /** When the deadline passes, `performance.now()` time. */
  private readonly expiresAt: number;
  done = false;
  /** The deadline passed while the handler ran (its signal aborted with a TimeoutError). */
  expired = false;

  constructor(id: number, m: Message, remote: string, link: Link, metadata: Metadata) {
    this.id = id;
    this.remote = remote;
    this.subroute = m.subroute;
    this.name = m.handler;
    this.metadata = metadata;
    this.link = link;
    this.start = performance.now();
    this.deadline = m.deadline > 0 ? Date.now() + m.deadline : undefined;
    this.expiresAt = m.deadline > 0 ? this.start + m.deadline : Infinity;
  }

  /** Created on first use: most handlers never look at it. */
  get signal(): AbortSignal {
    if (this.ctrl === null) {
      this.ctrl = new AbortController();
      if (this.reason !== undefined) this.ctrl.abort(this.reason);
      else if (this.expiresAt !== Infinity && !this.done) {
        this.stopTimer = whenPassed(this.expiresAt, () => {
          this.stopTimer = undefined;
          this.expired = true;
          this.abort(new TimeoutError(`Call "${this.name}" from "${this.remote}" passed its deadline`));
        });
      }
    }
    return this.ctrl.signal;
  }

  /** Aborts the handler's signal (now or when it is first read). */
  abort(reason: unknown): void {
    this.stopTimer?.();
    this.stopTimer = undefined;
    if (this.reason !== undefined) return;
    this.reason = reason;
    this.ctrl?.abort(reason);
  }

  /** Stops the deadline timer. */
  release(): void {
    this.done = true;
    this.stopTimer?.();
    this.stopTimer = undefined;
  }
}

/** Calls this side serves on one connection. */
export class MuxCallee {
  private readonly host: CalleeHost;
  private readonly requests = new Map<number, ServedRequest>();
  readonly streams = new Map<number, CalleeStream>();

  constructor(host: CalleeHost) {
    this.host = host;
  }

  /** Requests being served. */
  get requestCount(): number {
    return this.requests.size;
  }

  /** Handles a caller → callee message arriving on `link`. */
  onMessage(m: Message, link: Link): void {
    switch (m.op) {
      case OP_REQUEST:
        return this.serveRequest(m, link);
      case OP_STREAM_OPEN:
        return this.openStream(m, link);
      case OP_CANCEL: {
        const r = this.requests.get(m.mux);
        if (r !== undefined) {
          this.requests.delete(m.mux);
          const reason = cancelReason(m.payload, this.host.remote);
          r.abort(reason);
          r.release();
          this.host.handlerStats.end(r.name, r.start, false, errorCode(reason));
          return;
        }
        this.streams.get(m.mux)?.cancel(cancelReason(m.payload, this.host.remote));
        return;
      }
      default: {
        const st = this.streams.get(m.mux);
        if (st !== undefined) st.onMessage(m);
        else if (m.op === OP_STREAM_PING) {
          link.send(errorMessage(m.mux, "disconnected", `Stream ${m.mux} is not served by this node`));
        }
      }
    }
  }

  private lookup(m: Message, link: Link, kind: "single" | "stream"): SingleEntry | StreamEntry | undefined {
    const entry = this.host.registry.lookup(m.handler, m.subroute);
    if (entry === undefined || entry.kind !== kind) {
      const sub = m.subroute === "" ? "" : ` (subroute "${m.subroute}")`;
      const what = kind === "single" ? "handler" : "stream handler";
      link.send(errorMessage(m.mux, "unknown-handler", `No ${what} "${m.handler}"${sub}`));
      return undefined;
    }
    if (this.host.readOnly && !entry.readOnly) {
      link.send(
        errorMessage(m.mux, "unauthorized", `Handler "${m.handler}" is not readOnly: read-only clients cannot call it`),
      );
      return undefined;
    }
    return entry;
  }

  /**
   * The call's metadata, or undefined when it is malformed or too large: then the call is
   * answered with the error (code "too-large" or "protocol") and nothing runs.
   */
  private metadataOf(m: Message, link: Link): Metadata | undefined {
    if (m.metadata === null) return NO_METADATA;
    try {
      return decodeMetadata(m.metadata);
    } catch (e) {
      const err = e as GridError;
      link.send(errorMessage(m.mux, err.code, `Cannot serve "${m.handler}": ${err.message}`));
      return undefined;
    }
  }

  private serveRequest(m: Message, link: Link): void {
    const entry = this.lookup(m, link, "single") as SingleEntry | undefined;
    if (entry === undefined) return;
    if (this.requests.has(m.mux)) {
      link.send(errorMessage(m.mux, "protocol", `Request id ${m.mux} is already in use`));
      return;
    }
    const metadata = this.metadataOf(m, link);
    if (metadata === undefined) return;
    const chain = this.host.incoming;
    // Interceptors may add to what the handler sees: they get a copy.
    const call = new ServedRequest(m.mux, m, this.host.remote, link, chain.length === 0 ? metadata : copyMetadata(metadata));
    this.requests.set(m.mux, call);
    this.host.handlerStats.begin(entry.name);
    if (chain.length > 0) return this.intercept(call, entry, m.payload, chain);
    let result: Uint8Array | Promise<Uint8Array>;
    try {
      result = entry.fn(m.payload, call);
    } catch (e) {
      this.reply(call, e, false);
      return;
    }
    if (result instanceof Uint8Array) this.reply(call, result, true);
    else {
      Promise.resolve(result).then(
        (v) => this.reply(call, v, true),
        (e) => this.reply(call, e, false),
      );
    }
  }

  /** Serves a request through the incoming interceptors. */
  private intercept(call: ServedRequest, entry: SingleEntry, payload: Uint8Array, chain: readonly IncomingInterceptor[]): void {
    const listeners = new CallListeners();
    // The handler's own failure travels as one; anything else an interceptor threw is a refusal.
    let failure: { e: unknown } | null = null;
    const run = (): Promise<unknown> => {
      let r: Uint8Array | Promise<Uint8Array>;
      try {
        r = entry.fn(payload, call);
      } catch (e) {
        failure = { e };
        return Promise.reject(e);
      }
      return r instanceof Uint8Array ? Promise.resolve(r) : Promise.resolve(r).catch((e) => {
        failure = { e };
        throw e;
      });
    };
    runChain(chain, new IncomingCallInfo("request", entry.name, call, listeners), run).then(
      (v) => {
        listeners.end(undefined);
        this.reply(call, v, true);
      },
      (e) => {
        listeners.end(e);
        this.reply(call, e, false, failure === null || failure.e !== e);
      },
    );
  }

  private reply(call: ServedRequest, value: unknown, ok: boolean, refused = false): void {
    if (this.requests.get(call.id) !== call) return; // canceled, timed out or disconnected meanwhile
    this.requests.delete(call.id);
    call.release();
    const link = call.link;
    if (ok && !(value instanceof Uint8Array)) {
      ok = false;
      value = new TypeError(`Handler "${call.name}" returned ${typeof value}, expected Uint8Array`);
    }
    if (ok) {
      const payload = value as Uint8Array;
      if (payload.length > this.host.maxPayload) {
        this.host.handlerStats.end(call.name, call.start, false, "too-large");
        link.send(errorMessage(
          call.id,
          "too-large",
          `Response of "${call.name}" is ${payload.length} bytes: exceeds maxMessageBytes ${this.host.maxPayload}`,
        ));
        return;
      }
      this.host.handlerStats.end(call.name, call.start, true);
      link.send({ op: OP_RESPONSE, flags: 0, mux: call.id, seq: 0, deadline: 0, route: null, payload });
      return;
    }
    if (call.expired) {
      this.host.handlerStats.end(call.name, call.start, false, "timeout");
      // The handler failed because its deadline passed (typically by throwing its signal's
      // reason): that is a timeout of this call, not a handler error. The caller usually timed
      // out already, but its timer and ours race.
      link.send(errorMessage(call.id, "timeout", `Call "${call.name}" from "${this.host.remote}" passed its deadline`));
      return;
    }
    if (refused) {
      this.host.handlerStats.end(call.name, call.start, false, errorCode(value));
      link.send(refusalMessage(call.id, value));
      return;
    }
    this.host.handlerStats.end(call.name, call.start, false, value instanceof InvalidError ? "invalid" : "remote");
    link.send(handlerErrorMessage(call.id, value));
  }

  private openStream(m: Message, link: Link): void {
    const entry = this.lookup(m, link, "stream") as StreamEntry | undefined;
    if (entry === undefined) return;
    if (this.streams.has(m.mux)) {
      link.send(errorMessage(m.mux, "protocol", `Stream id ${m.mux} is already in use`));
      return;
    }
    const metadata = this.metadataOf(m, link);
    if (metadata === undefined) return;
    const copy = this.host.incoming.length === 0 ? metadata : copyMetadata(metadata);
    const st = new CalleeStream(m, entry, link, this.host, copy, (s, ok) => {
      this.streams.delete(s.id);
      // A failed stream's signal is aborted with the reason it ended.
      this.host.handlerStats.end(entry.name, s.start, ok, ok ? undefined : errorCode(s.signal.reason));
    });
    this.streams.set(m.mux, st);
    this.host.handlerStats.begin(entry.name);
    st.run();
  }

  /**
   * Drops streams whose caller sent nothing (not even a stream ping) for
   * `silenceMs`: the caller lost them while the connection stayed up.
   */
  tick(now: number, silenceMs: number): void {
    for (const st of this.streams.values()) st.tick(now, silenceMs);
  }

  /** Aborts every call served on `link` (all when null): the caller is gone. */
  failAll(err: GridError, link: Link | null = null): void {
    for (const r of [...this.requests.values()]) {
      if (link !== null && r.link !== link) continue;
      this.requests.delete(r.id);
      r.abort(err);
      r.release();
      this.host.handlerStats.end(r.name, r.start, false, err.code);
    }
    for (const st of [...this.streams.values()]) {
      if (link !== null && st.link !== link) continue;
      st.cancel(err);
    }
  }
}

