/**
 * The caller's end of a stream: a WritableStream of requests and a
 * ReadableStream of responses, mapped onto the wire's credits.
 *
 * @module
 */
import { DisconnectedError, GridError, PayloadTooLargeError, ProtocolError, TimeoutError } from "../errors.ts";
import type { CallObserver } from "../interceptors.ts";
import type { Link } from "../link.ts";
import type { Message } from "../protocol/frame.ts";
import { DEFAULT_LIMITS } from "../protocol/limits.ts";
import {
  OP_ERROR,
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
import type { Codec, Stream } from "../types.ts";
import { CANCEL_ABORTED, CANCEL_FAILED, CANCEL_TIMEOUT, cancelMessage, decodeError, msg, REQUESTS_STOPPED } from "../mux/wire.ts";
import { CreditGate, creditsToReturn } from "./credits.ts";

/** Codecs of a stream's request and response messages. */
export interface StreamCodecs<Req, Resp> {
  request: Codec<Req>;
  response: Codec<Resp>;
}

/** What a caller's stream (and the mux that holds it) needs from its connection. */
export interface MuxHost {
  /** The remote's name, for messages. */
  readonly remote: string;
  /** Largest payload of one message. */
  readonly maxPayload: number;
  /** Connection ping interval; streams are pinged as often. */
  readonly pingInterval: number;
}

const OPENING = 0;
const OPEN = 1;
const DONE = 2;

/** One stream this side opened. */
export class CallerStream<Req, Resp> {
  readonly id: number;
  readonly link: Link;
  private readonly name: string;
  private readonly host: MuxHost;
  private readonly codecs: StreamCodecs<Req, Resp>;
  /** The interceptors' listeners of this call, or null when none are installed. */
  private readonly observer: CallObserver | null;
  private readonly onDone: (s: CallerStream<Req, Resp>) => void;
  private state = OPENING;
  private openResolve: ((s: Stream<Req, Resp>) => void) | null = null;
  private openReject: ((e: unknown) => void) | null = null;
  private respCtrl: ReadableStreamDefaultController<Resp> | null = null;
  private reqCtrl: WritableStreamDefaultController | null = null;
  private gate: CreditGate | null = null;
  private outCap = 0;
  private received = 0;
  private returned = 0;
  private sendSeq = 0;
  private recvSeq = 0;
  private lastHeard = performance.now();
  private lastPing = performance.now();
  private timer: ReturnType<typeof setTimeout> | undefined;
  /** When the stream's deadline passes (`performance.now()` time); Infinity when it has none. */
  private expiresAt = Infinity;
  private timeout = 0;
  private signal: AbortSignal | undefined;
  private onAbort: (() => void) | undefined;
  /** A remote error that waits for the responses received before it to be read. */
  private errorAfterQueue: { err: unknown } | null = null;

  constructor(
    id: number,
    name: string,
    link: Link,
    host: MuxHost,
    codecs: StreamCodecs<Req, Resp>,
    observer: CallObserver | null,
    onDone: (s: CallerStream<Req, Resp>) => void,
  ) {
    this.id = id;
    this.name = name;
    this.link = link;
    this.host = host;
    this.codecs = codecs;
    this.observer = observer;
    this.onDone = onDone;
  }

  /** Resolves with the stream once the handler acknowledged it. */
  open(timeout: number | undefined, signal: AbortSignal | undefined): Promise<Stream<Req, Resp>> {
    return new Promise((resolve, reject) => {
      this.openResolve = resolve;
      this.openReject = reject;
      if (timeout !== undefined) {
        this.timeout = timeout;
        this.expiresAt = performance.now() + timeout;
        this.timer = setTimeout(() => this.timedOut(), timeout);
      }
      if (signal !== undefined) {
        this.signal = signal;
        this.onAbort = () => {
          const reason = abortReason(signal);
          this.fail(reason, true, reason instanceof TimeoutError ? CANCEL_TIMEOUT : CANCEL_ABORTED);
        };
        signal.addEventListener("abort", this.onAbort, { once: true });
      }
    });
  }

  private timedOut(): void {
    this.fail(
      new TimeoutError(`Stream "${this.name}" to "${this.host.remote}" timed out after ${this.timeout} ms`),
      true,
      CANCEL_TIMEOUT,
    );
  }

  /** Handles a callee → caller message for this stream. */
  onMessage(m: Message): void {
    if (this.state === DONE) return;
    const now = performance.now();
    // A message at or after the deadline must not end (or extend) the stream normally, even
    // when it beats our own timer (the remote's timer fires at the same moment).
    if (now >= this.expiresAt) return this.timedOut();
    this.lastHeard = now;
    switch (m.op) {
      case OP_STREAM_ACK:
        if (this.state !== OPENING) return this.violation("duplicate ack");
        return this.accept(m.payload);
      case OP_ERROR:
        return this.fail(decodeError(m.payload), false, CANCEL_ABORTED, false, true);
      case OP_STREAM_PONG:
        return;
    }
    if (this.state !== OPEN) return this.violation(`op ${m.op} before ack`);
    switch (m.op) {
      case OP_STREAM_RESP: {
        if (m.seq !== this.recvSeq) return this.violation(`response seq ${m.seq}, expected ${this.recvSeq}`);
        this.recvSeq = (this.recvSeq + 1) >>> 0;
        if (this.received - this.returned >= this.outCap) return this.violation("response without credit");
        this.received++;
        let v: Resp;
        try {
          v = this.codecs.response.decode(m.payload);
        } catch (e) {
          return this.fail(new ProtocolError(`Cannot decode response of stream "${this.name}"`, { cause: e }), true);
        }
        this.respCtrl!.enqueue(v);
        this.observer?.message("received");
        return;
      }
      case OP_STREAM_RESP_END:
        this.finish(undefined);
        this.respCtrl!.close();
        this.reqCtrl?.error(new GridError("closed", `Cannot write: stream "${this.name}" ended`));
        this.gate?.fail(new GridError("closed", `Cannot write: stream "${this.name}" ended`));
        return;
      case OP_STREAM_REQ_CREDIT:
        if (m.payload.length > 0 && m.payload[0] === REQUESTS_STOPPED) return this.requestsStopped();
        this.gate?.grant(m.seq);
        return;
      default:
        return this.violation(`unexpected op ${m.op}`);
    }
  }

  /** The handler canceled its requests: pending and later writes reject, the responses go on. */
  private requestsStopped(): void {
    const err = new GridError("closed", `Cannot write: the handler of stream "${this.name}" stopped reading its requests`);
    this.gate?.fail(err);
    try {
      this.reqCtrl?.error(err);
    } catch {
      // Already closed by the caller.
    }
  }

  private accept(p: Uint8Array): void {
    if (p.length !== 8) return this.violation("ack payload must be 8 bytes");
    const dv = new DataView(p.buffer, p.byteOffset, 8);
    const inCap = dv.getUint32(0);
    const outCap = dv.getUint32(4);
    if (inCap > DEFAULT_LIMITS.maxCapacity || outCap < 1 || outCap > DEFAULT_LIMITS.maxCapacity) {
      return this.violation(`capacities ${inCap}/${outCap} out of range`);
    }
    this.state = OPEN;
    this.outCap = outCap;
    const responses = new ReadableStream<Resp>({
      start: (c) => {
        this.respCtrl = c;
      },
      pull: (c) => {
        const queued = outCap - (c.desiredSize ?? 0);
        if (this.errorAfterQueue !== null && queued <= 0) {
          c.error(this.errorAfterQueue.err);
          this.errorAfterQueue = null;
          return;
        }
        const n = creditsToReturn(this.received, this.returned, queued, outCap);
        if (n > 0 && this.state === OPEN) {
          this.returned += n;
          this.link.send(msg(OP_STREAM_RESP_CREDIT, this.id, n));
        }
      },
      cancel: (reason) => {
        this.fail(reason ?? new DOMException("Responses canceled", "AbortError"), true, CANCEL_ABORTED, true);
      },
    }, { highWaterMark: outCap, size: () => 1 });
    let requests: WritableStream<Req> | null = null;
    if (inCap > 0) {
      const gate = new CreditGate(inCap);
      this.gate = gate;
      requests = new WritableStream<Req>({
        start: (c) => {
          this.reqCtrl = c;
          // The sink's abort() runs only after the write in progress settles, and that
          // write may wait for credit forever: act on the abort at once instead (after
          // abort() has set the stream erroring, so that its promise resolves).
          c.signal.addEventListener("abort", () => {
            queueMicrotask(() => {
              this.fail(c.signal.reason ?? new DOMException("Requests aborted", "AbortError"), true, CANCEL_ABORTED);
            });
          }, { once: true });
        },
        write: async (chunk) => {
          const wait = gate.take();
          if (wait !== undefined) await wait;
          let payload: Uint8Array;
          try {
            payload = this.codecs.request.encode(chunk);
            if (payload.length > this.host.maxPayload) {
              throw new PayloadTooLargeError(
                `Cannot send request message of ${payload.length} bytes: exceeds maxMessageBytes ${this.host.maxPayload}`,
              );
            }
          } catch (e) {
            // The writable errors now, so the handler would wait for requests that never come:
            // the write's failure ends the call on both sides.
            this.fail(e, true, CANCEL_FAILED);
            throw e;
          }
          if (this.state !== OPEN) throw new DisconnectedError(`Cannot write: stream "${this.name}" ended`);
          const seq = this.sendSeq;
          this.sendSeq = (seq + 1) >>> 0;
          await this.link.sendBulk(msg(OP_STREAM_REQ, this.id, seq, payload));
          this.observer?.message("sent");
        },
        close: () => {
          // Behind the requests still queued in the link: the end must not overtake them.
          if (this.state === OPEN) this.link.sendAfterBulk(msg(OP_STREAM_REQ_END, this.id, this.sendSeq));
        },
        abort: (reason) => {
          this.fail(reason ?? new DOMException("Requests aborted", "AbortError"), true, CANCEL_ABORTED);
        },
      }, { highWaterMark: inCap, size: () => 1 });
    }
    const resolve = this.openResolve!;
    this.openResolve = this.openReject = null;
    const dispose = () => {
      this.fail(new DOMException(`Stream "${this.name}" disposed`, "AbortError"), true, CANCEL_ABORTED);
      return Promise.resolve();
    };
    resolve({ requests, responses: iterable(responses), [Symbol.asyncDispose]: dispose });
  }

  /** Sends a stream ping, or fails the stream when the handler stopped answering. */
  tick(now: number): void {
    if (this.state === DONE) return;
    const interval = this.host.pingInterval;
    if (now - this.lastHeard > 2 * interval) {
      this.fail(
        new DisconnectedError(`Stream "${this.name}" lost: "${this.host.remote}" stopped answering for ${
          Math.round(now - this.lastHeard)
        } ms`),
        true,
      );
      return;
    }
    if (now - this.lastPing >= interval * 0.9) {
      this.lastPing = now;
      this.link.send(msg(OP_STREAM_PING, this.id, 0));
    }
  }

  private violation(what: string): void {
    this.fail(new ProtocolError(`Stream "${this.name}" broke the protocol: ${what}`), true);
  }

  private finish(outcome: unknown): boolean {
    if (this.state === DONE) return false;
    this.state = DONE;
    if (this.timer !== undefined) clearTimeout(this.timer);
    if (this.onAbort !== undefined) this.signal!.removeEventListener("abort", this.onAbort);
    this.onDone(this);
    this.observer?.end(outcome);
    return true;
  }

  /** Ends the stream with `err` on both of its web streams. */
  fail(err: unknown, sendCancel: boolean, reason = CANCEL_ABORTED, fromConsumer = false, afterQueued = false): void {
    const wasOpening = this.state === OPENING;
    if (!this.finish(err)) return;
    if (sendCancel && !this.link.closed) this.link.send(cancelMessage(this.id, reason, err));
    if (wasOpening) {
      const reject = this.openReject!;
      this.openResolve = this.openReject = null;
      reject(err);
      return;
    }
    this.gate?.fail(err);
    if (afterQueued && this.respCtrl !== null && (this.respCtrl.desiredSize ?? 0) < this.outCap) {
      // The handler wrote these responses before it failed: they are read first, in order.
      this.errorAfterQueue = { err };
    } else if (!fromConsumer) {
      try {
        this.respCtrl!.error(err);
      } catch {
        // Already closed by the consumer.
      }
    }
    try {
      this.reqCtrl?.error(err);
    } catch {
      // Already closed.
    }
  }
}

/**
 * The error a call aborted through `signal` rejects with: its reason, except that the reason of
 * `AbortSignal.timeout()` (a DOMException named "TimeoutError") becomes a {@link TimeoutError}.
 */
export function abortReason(signal: AbortSignal): unknown {
  const r = signal.reason;
  if (r instanceof DOMException && r.name === "TimeoutError") {
    return new TimeoutError(`Call timed out: ${r.message}`, { cause: r });
  }
  return r;
}

/**
 * `stream` with `Symbol.asyncIterator`, added where the runtime's ReadableStream lacks it (Safari):
 * the iterator reads through a reader, and leaving the loop early cancels the stream.
 */
function iterable<T>(stream: ReadableStream<T>): ReadableStream<T> & AsyncIterable<T> {
  const s = stream as ReadableStream<T> & Partial<AsyncIterable<T>>;
  if (typeof s[Symbol.asyncIterator] === "function") return stream as ReadableStream<T> & AsyncIterable<T>;
  return Object.defineProperty(stream, Symbol.asyncIterator, {
    value(): AsyncIterator<T> {
      const reader = s.getReader();
      return {
        next: () => reader.read() as Promise<IteratorResult<T>>,
        return: async (): Promise<IteratorResult<T>> => {
          await reader.cancel();
          return { done: true, value: undefined };
        },
      };
    },
  }) as ReadableStream<T> & AsyncIterable<T>;
}
