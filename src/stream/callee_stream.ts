/**
 * The handler's end of a stream: a ReadableStream of requests and a
 * WritableStream of responses, mapped onto the wire's credits. The call lives
 * as long as the handler runs: when it returns, the responses it wrote are
 * flushed and the caller's stream ends; when it throws, the caller's stream
 * errors with a RemoteError.
 *
 * @module
 */
import { DisconnectedError, GridError, PayloadTooLargeError, ProtocolError, TimeoutError } from "../errors.ts";
import type { HandlerRegistry, StreamEntry } from "../handlers/registry.ts";
import type { Link } from "../link.ts";
import type { Message } from "../protocol/frame.ts";
import type { Metadata } from "../protocol/metadata.ts";
import {
  OP_STREAM_ACK,
  OP_STREAM_PING,
  OP_STREAM_PONG,
  OP_STREAM_REQ,
  OP_STREAM_REQ_CREDIT,
  OP_STREAM_REQ_END,
  OP_STREAM_RESP,
  OP_STREAM_RESP_CREDIT,
  OP_STREAM_RESP_END,
} from "../protocol/ops.ts";
import { type CallObserver, CallListeners, IncomingCallInfo, type IncomingInterceptor, runChain } from "../interceptors.ts";
import type { StreamCall } from "../types.ts";
import type { HandlerStatsTable } from "../stats/handler_stats.ts";
import { describe, errorMessage, handlerErrorMessage, msg, refusalMessage, REQUESTS_STOPPED, whenPassed } from "../mux/wire.ts";
import { CreditGate, creditsToReturn } from "./credits.ts";

/** What the callee side (streams and the mux that holds them) needs from its connection. */
export interface CalleeHost {
  readonly remote: string;
  readonly maxPayload: number;
  /** Only handlers registered readOnly may be called (admin connections). */
  readonly readOnly: boolean;
  readonly registry: HandlerRegistry;
  readonly handlerStats: HandlerStatsTable;
  /** Interceptors of served calls, outermost first. */
  readonly incoming: readonly IncomingInterceptor[];
}

const STOPPED_PAYLOAD = Uint8Array.of(REQUESTS_STOPPED);

/** Whether a handler's return value is an async iterable of responses (an `async function*`). */
function isAsyncIterable(v: unknown): v is AsyncIterable<unknown> {
  return typeof v === "object" && v !== null && typeof (v as AsyncIterable<unknown>)[Symbol.asyncIterator] === "function";
}

/** One stream this side serves; also the handler's StreamCall. */
export class CalleeStream implements StreamCall<unknown, unknown, unknown> {
  readonly id: number;
  readonly link: Link;
  readonly start = performance.now();
  readonly remote: string;
  readonly subroute: string;
  readonly deadline: number | undefined;
  readonly metadata: Metadata;
  /** Epoch ms when the stream opened, which `deadline` counts from. */
  private readonly openedAt: number;
  readonly payload: unknown;
  readonly requests: ReadableStream<unknown> | null;
  readonly responses: WritableStream<unknown>;
  private readonly ctrl = new AbortController();
  private readonly entry: StreamEntry;
  private readonly host: CalleeHost;
  private readonly onDone: (s: CalleeStream, ok: boolean) => void;
  private readonly rawPayload: Uint8Array;
  private reqCtrl: ReadableStreamDefaultController<unknown> | null = null;
  private respCtrl: WritableStreamDefaultController | null = null;
  private readonly gate: CreditGate;
  private received = 0;
  private returned = 0;
  private sendSeq = 0;
  private recvSeq = 0;
  /** A response write is in the sink (waiting for credit or the link). */
  private sinkBusy = false;
  /** Writes that reached the sink, to tell an idle sink from one between two queued writes. */
  private writesStarted = 0;
  /** The error of a response write that failed (too large, not encodable): the writable is errored. */
  private writeFailure: { err: unknown } | null = null;
  private idle: (() => void) | null = null;
  private responsesClosed = false;
  private requestsEnded = false;
  private requestsCanceled = false;
  private done = false;
  /** Cancels the deadline timer, once armed. */
  private stopTimer: (() => void) | undefined;
  private lastHeard = performance.now();
  /** The interceptors' listeners of this call, or null when none are installed. */
  private observer: CallObserver | null = null;

  constructor(
    m: Message,
    entry: StreamEntry,
    link: Link,
    host: CalleeHost,
    metadata: Metadata,
    onDone: (s: CalleeStream, ok: boolean) => void,
  ) {
    this.id = m.mux;
    this.metadata = metadata;
    this.link = link;
    this.entry = entry;
    this.host = host;
    this.onDone = onDone;
    this.remote = host.remote;
    this.subroute = m.subroute;
    this.openedAt = Date.now();
    this.deadline = m.deadline > 0 ? this.openedAt + m.deadline : undefined;
    this.rawPayload = m.payload;
    this.payload = undefined;
    this.gate = new CreditGate(entry.outCapacity);
    const inCap = entry.inCapacity;
    this.requests = inCap === 0 ? null : new ReadableStream<unknown>({
      start: (c) => {
        this.reqCtrl = c;
      },
      pull: (c) => {
        const queued = inCap - (c.desiredSize ?? 0);
        const n = creditsToReturn(this.received, this.returned, queued, inCap);
        if (n > 0 && !this.done) {
          this.returned += n;
          this.link.send(msg(OP_STREAM_REQ_CREDIT, this.id, n));
        }
      },
      cancel: () => {
        // The handler stopped reading (a `break` out of `for await` does this): later requests
        // are dropped, and the caller is told, so that its writes fail instead of waiting for
        // credit that never comes. The responses go on.
        this.requestsCanceled = true;
        if (!this.done && !this.requestsEnded) this.link.send(msg(OP_STREAM_REQ_CREDIT, this.id, 0, STOPPED_PAYLOAD));
      },
    }, { highWaterMark: inCap, size: () => 1 });
    this.responses = new WritableStream<unknown>({
      start: (c) => {
        this.respCtrl = c;
        // The sink's abort() runs only after the write in progress settles, and that
        // write may wait for credit forever: act on the abort at once instead (after
        // abort() has set the stream erroring, so that its promise resolves).
        c.signal.addEventListener("abort", () => queueMicrotask(() => this.handlerAborted(c.signal.reason)), {
          once: true,
        });
      },
      write: async (chunk) => {
        // Counted here, not in the strategy's size(): size() also runs for writes the stream
        // rejects without calling the sink (after close() or an error), which would never end.
        this.sinkBusy = true;
        this.writesStarted++;
        try {
          const wait = this.gate.take();
          if (wait !== undefined) await wait;
          const payload = this.entry.response.encode(chunk);
          if (payload.length > this.host.maxPayload) {
            throw new PayloadTooLargeError(
              `Cannot send response message of ${payload.length} bytes: exceeds maxMessageBytes ${this.host.maxPayload}`,
            );
          }
          const seq = this.sendSeq;
          this.sendSeq = (seq + 1) >>> 0;
          await this.link.sendBulk(msg(OP_STREAM_RESP, this.id, seq, payload));
          this.observer?.message("sent");
        } catch (e) {
          // The writable is errored now: writes queued behind this one are rejected
          // without reaching this sink, so none is pending any more.
          this.writeFailure ??= { err: e };
          throw e;
        } finally {
          this.sinkBusy = false;
          this.wakeIdle();
        }
      },
      close: () => {
        this.responsesClosed = true;
        this.wakeIdle();
      },
      abort: (reason) => this.handlerAborted(reason),
    }, { highWaterMark: entry.outCapacity, size: () => 1 });
  }

  private wakeIdle(): void {
    const idle = this.idle;
    this.idle = null;
    idle?.();
  }

  /**
   * Waits until every response the handler wrote before returning reached the wire (or failed).
   * The writable hands the next queued chunk to the sink within microtasks of the previous
   * write settling, so a sink that is idle across a task boundary with no new write started has
   * an empty queue. A handler that closed its responses skips this: close() follows the queue.
   */
  private async drained(): Promise<void> {
    while (!this.done && !this.responsesClosed && this.writeFailure === null) {
      if (this.sinkBusy) {
        await new Promise<void>((resolve) => {
          this.idle = resolve;
        });
        continue;
      }
      const started = this.writesStarted;
      await new Promise<void>((resolve) => setTimeout(resolve, 0));
      if (!this.sinkBusy && this.writesStarted === started) return;
    }
  }

  /** Writes what an `async function*` handler yields, with the credits' backpressure, then closes. */
  private async pump(responses: AsyncIterable<unknown>): Promise<void> {
    const w = this.responses.getWriter();
    for await (const v of responses) await w.write(v);
    await w.close();
  }

  /** The handler aborted its responses: the caller's stream errors with the reason. */
  private handlerAborted(reason: unknown): void {
    this.end(handlerErrorMessage(this.id, reason ?? new Error("Responses aborted by the handler")), false, reason, true);
  }

  /** Runs the stream: through the incoming interceptors, when any are installed. */
  run(): void {
    const chain = this.host.incoming;
    if (chain.length === 0) {
      this.begin().catch(() => {}); // the failure ended the stream already
      return;
    }
    const listeners = new CallListeners();
    this.observer = listeners;
    let begun = false;
    const begin = () => {
      begun = true;
      return this.begin();
    };
    runChain(chain, new IncomingCallInfo("stream", this.entry.name, this, listeners), begin).then(() => {
      // An interceptor that returned without next() would leave the caller's open waiting.
      if (!begun) this.end(refusalMessage(this.id, new Error(`Stream "${this.entry.name}" was not started by its interceptors`)), false, undefined);
    }, (e) => {
      // A refusal: nothing ran, the caller's open rejects with it. After the handler's own
      // failure the stream has ended already, and this does nothing.
      this.end(refusalMessage(this.id, e), false, e);
    });
  }

  /**
   * Acknowledges the stream and starts the handler; resolves when it returned, rejects with its
   * error (the stream has ended with it then).
   */
  private begin(): Promise<void> {
    if (this.done) return Promise.resolve(); // canceled while interceptors ran
    const ack = new Uint8Array(8);
    const dv = new DataView(ack.buffer);
    dv.setUint32(0, this.entry.inCapacity);
    dv.setUint32(4, this.entry.outCapacity);
    this.link.send(msg(OP_STREAM_ACK, this.id, 0, ack));
    try {
      (this as { payload: unknown }).payload = this.entry.payload.decode(this.rawPayload);
    } catch (e) {
      const d = describe(e);
      this.end(errorMessage(this.id, "remote", `Cannot decode stream payload: ${d.message}`), false, e);
      return Promise.reject(e);
    }
    if (this.deadline !== undefined) {
      this.stopTimer = whenPassed(this.start + (this.deadline - this.openedAt), () => {
        const err = new TimeoutError(`Stream "${this.entry.name}" from "${this.remote}" passed its deadline`);
        this.end(errorMessage(this.id, "timeout", err.message), false, err);
      });
    }
    return Promise.resolve()
      .then(() => this.entry.fn(this))
      .then((r) => isAsyncIterable(r) ? this.pump(r) : undefined)
      .then(
        () => this.returned_(),
        (e) => {
          this.end(handlerErrorMessage(this.id, e), false, e, true);
          throw e;
        },
      );
  }

  get signal(): AbortSignal {
    return this.ctrl.signal;
  }

  private async returned_(): Promise<void> {
    if (this.done) return;
    await this.drained();
    if (this.done) return;
    if (this.writeFailure !== null) {
      // Responses were lost: the caller must not see a normal end.
      const d = describe(this.writeFailure.err);
      this.end(errorMessage(this.id, "remote", d.message, d.code), false, this.writeFailure.err, true);
      return;
    }
    this.end(msg(OP_STREAM_RESP_END, this.id, this.sendSeq), true, undefined, true);
  }

  /** Handles a caller → callee message for this stream. */
  onMessage(m: Message): void {
    if (this.done) return;
    this.lastHeard = performance.now();
    switch (m.op) {
      case OP_STREAM_REQ: {
        if (this.reqCtrl === null || this.requestsEnded) return this.violation("request message not expected");
        if (m.seq !== this.recvSeq) return this.violation(`request seq ${m.seq}, expected ${this.recvSeq}`);
        this.recvSeq = (this.recvSeq + 1) >>> 0;
        if (this.received - this.returned >= this.entry.inCapacity) return this.violation("request without credit");
        this.received++;
        if (this.requestsCanceled) return;
        let v: unknown;
        try {
          v = this.entry.request.decode(m.payload);
        } catch (e) {
          return this.violation(`cannot decode request: ${describe(e).message}`);
        }
        this.reqCtrl.enqueue(v);
        this.observer?.message("received");
        return;
      }
      case OP_STREAM_REQ_END:
        if (this.reqCtrl !== null && !this.requestsEnded) {
          this.requestsEnded = true;
          if (!this.requestsCanceled) this.reqCtrl.close();
        }
        return;
      case OP_STREAM_RESP_CREDIT:
        this.gate.grant(m.seq);
        return;
      case OP_STREAM_PING:
        this.link.send(msg(OP_STREAM_PONG, this.id, 0));
        return;
      default:
        return this.violation(`unexpected op ${m.op}`);
    }
  }

  /** Ends the stream when the caller has been silent for `silenceMs` (it pings every interval). */
  tick(now: number, silenceMs: number): void {
    if (this.done || now - this.lastHeard <= silenceMs) return;
    const err = new DisconnectedError(
      `Stream "${this.entry.name}" from "${this.remote}" lost: no message or ping for ${Math.round(now - this.lastHeard)} ms`,
    );
    this.end(errorMessage(this.id, "disconnected", err.message), false, err);
  }

  private violation(what: string): void {
    const err = new ProtocolError(`Stream "${this.entry.name}" broke the protocol: ${what}`);
    this.end(errorMessage(this.id, "protocol", err.message), false, err);
  }

  /** The caller canceled, or the connection is gone: abort the handler, send nothing. */
  cancel(reason: unknown): void {
    this.end(null, false, reason);
  }

  /**
   * Ends the call, sending `final` if given: `afterData` queues it behind the
   * responses already written (an end or a handler's error), otherwise it goes
   * ahead of them (deadline, protocol errors, liveness).
   */
  private end(final: ReturnType<typeof msg> | null, ok: boolean, reason: unknown, afterData = false): void {
    if (this.done) return;
    this.done = true;
    this.stopTimer?.();
    this.wakeIdle();
    this.observer?.end(ok ? undefined : reason ?? new GridError("closed", "Stream ended"));
    if (final !== null && !this.link.closed) {
      if (afterData) this.link.sendAfterBulk(final);
      else this.link.send(final);
    }
    if (!ok) {
      const err = reason ?? new GridError("closed", "Stream ended");
      this.ctrl.abort(err);
      this.gate.fail(err);
      if (!this.requestsEnded) {
        try {
          this.reqCtrl?.error(err);
        } catch {
          // Already closed.
        }
      }
      try {
        this.respCtrl?.error(err);
      } catch {
        // Already closed.
      }
    } else {
      const err = new GridError("closed", `Stream "${this.entry.name}" has ended`);
      this.gate.fail(err);
      if (!this.requestsEnded) {
        try {
          this.reqCtrl?.error(err);
        } catch {
          // Already closed.
        }
      }
    }
    this.onDone(this, ok);
  }
}
