/**
 * The caller side of the mux: calls this side made, keyed by mux id. Single
 * requests live here; streams are {@link CallerStream}s registered in the same
 * table.
 *
 * @module
 */
import { DisconnectedError, type GridError, ProtocolError, TimeoutError } from "../errors.ts";
import type { CallObserver } from "../interceptors.ts";
import type { Link } from "../link.ts";
import { encodeRoute, type Message } from "../protocol/frame.ts";
import { routeWithMetadata } from "../protocol/metadata.ts";
import { FLAG_METADATA, OP_ERROR, OP_REQUEST, OP_RESPONSE, OP_STREAM_OPEN } from "../protocol/ops.ts";
import { abortReason, CallerStream, type MuxHost, type StreamCodecs } from "../stream/caller_stream.ts";
import type { Stream } from "../types.ts";
import { CANCEL_ABORTED, CANCEL_TIMEOUT, cancelMessage, decodeError } from "./wire.ts";

export type { MuxHost };

interface PendingRequest {
  readonly id: number;
  readonly name: string;
  readonly link: Link;
  resolve: (v: Uint8Array) => void;
  reject: (e: unknown) => void;
  /** The request's timeout, ms, and when it passes (`performance.now()` time); Infinity for none. */
  readonly timeout: number;
  readonly expiresAt: number;
  /** The queue of requests with the same timeout that this one waits in; null without a deadline. */
  readonly queue: TimeoutQueue | null;
  finished: boolean;
  signal: AbortSignal | undefined;
  onAbort: (() => void) | undefined;
}

/**
 * Requests with the same timeout, in the order they were sent, so their
 * deadlines are in order too: one timer, armed for the oldest live request,
 * serves the whole queue instead of a timer per request (timers cost from
 * ~0.1 µs to ~1 µs per request depending on the runtime). Finished requests
 * leave the queue when they reach its head, or when it is compacted.
 */
interface TimeoutQueue {
  readonly timeout: number;
  calls: PendingRequest[];
  head: number;
  live: number;
  timer: ReturnType<typeof setTimeout> | undefined;
}

/** Calls this side made on one connection. */
export class MuxCaller {
  private readonly host: MuxHost;
  private readonly requests = new Map<number, PendingRequest>();
  readonly streams = new Map<number, CallerStream<unknown, unknown>>();
  private readonly timeouts = new Map<number, TimeoutQueue>();
  private nextId = 1;

  constructor(host: MuxHost) {
    this.host = host;
  }

  /** Requests in flight. */
  get requestCount(): number {
    return this.requests.size;
  }

  private allocId(): number {
    for (;;) {
      const id = this.nextId;
      this.nextId = id >= 0xffffffff ? 1 : id + 1;
      if (!this.requests.has(id) && !this.streams.has(id)) return id;
    }
  }

  /**
   * Sends a single request on `link` and resolves with the response payload. `timeout` is a
   * whole number of ms up to MAX_TIMEOUT, or Infinity for no deadline; `meta` is the encoded
   * metadata section, or null for none.
   */
  request(
    link: Link,
    name: string,
    subroute: string,
    payload: Uint8Array,
    timeout: number,
    signal: AbortSignal | undefined,
    meta: Uint8Array | null,
  ): Promise<Uint8Array> {
    let route: Uint8Array;
    try {
      route = encodeRoute(name, subroute);
    } catch (e) {
      return Promise.reject(e);
    }
    const flags = meta === null ? 0 : FLAG_METADATA;
    if (meta !== null) route = routeWithMetadata(route, meta);
    const id = this.allocId();
    const finite = timeout !== Infinity;
    return new Promise<Uint8Array>((resolve, reject) => {
      let queue: TimeoutQueue | undefined = undefined;
      if (finite) {
        queue = this.timeouts.get(timeout);
        if (queue === undefined) {
          queue = { timeout, calls: [], head: 0, live: 0, timer: undefined };
          this.timeouts.set(timeout, queue);
        }
      }
      const call: PendingRequest = {
        id,
        name,
        link,
        resolve,
        reject,
        timeout,
        expiresAt: performance.now() + timeout,
        queue: queue ?? null,
        finished: false,
        signal,
        onAbort: undefined,
      };
      this.requests.set(id, call);
      link.send({ op: OP_REQUEST, flags, mux: id, seq: 0, deadline: finite ? timeout : 0, route, payload });
      if (queue !== undefined) {
        queue.calls.push(call);
        queue.live++;
        if (queue.timer === undefined) this.armTimeout(queue);
      }
      if (signal !== undefined) {
        call.onAbort = () => {
          if (this.finish(call)) {
            const reason = abortReason(signal);
            link.send(cancelMessage(id, reason instanceof TimeoutError ? CANCEL_TIMEOUT : CANCEL_ABORTED));
            reject(reason);
          }
        };
        signal.addEventListener("abort", call.onAbort, { once: true });
      }
    });
  }

  /** Opens a stream on `link`; resolves when the handler accepted it. `meta` as for {@link request}. */
  openStream<Req, Resp>(
    link: Link,
    name: string,
    subroute: string,
    payload: Uint8Array,
    timeout: number | undefined,
    signal: AbortSignal | undefined,
    codecs: StreamCodecs<Req, Resp>,
    meta: Uint8Array | null,
    observer: CallObserver | null,
  ): Promise<Stream<Req, Resp>> {
    let route: Uint8Array;
    try {
      route = encodeRoute(name, subroute);
    } catch (e) {
      return Promise.reject(e);
    }
    if (meta !== null) route = routeWithMetadata(route, meta);
    const id = this.allocId();
    const st = new CallerStream<Req, Resp>(id, name, link, this.host, codecs, observer, (s) => {
      this.streams.delete(s.id);
    });
    this.streams.set(id, st as unknown as CallerStream<unknown, unknown>);
    const flags = meta === null ? 0 : FLAG_METADATA;
    link.send({ op: OP_STREAM_OPEN, flags, mux: id, seq: 0, deadline: timeout ?? 0, route, payload });
    return st.open(timeout, signal);
  }

  private finish(call: PendingRequest): boolean {
    if (this.requests.get(call.id) !== call) return false;
    this.requests.delete(call.id);
    this.leaveQueue(call);
    if (call.onAbort !== undefined) call.signal!.removeEventListener("abort", call.onAbort);
    return true;
  }

  /** Marks `call` finished in its timeout queue; the queue's timer stops once no call in it is live. */
  private leaveQueue(call: PendingRequest): void {
    const q = call.queue;
    call.finished = true;
    if (q === null) return;
    q.live--;
    if (q.live === 0) {
      if (q.timer !== undefined) clearTimeout(q.timer);
      q.timer = undefined;
      q.calls.length = 0;
      q.head = 0;
      // Queues of the few timeouts in use are kept; one-off timeouts do not accumulate.
      if (this.timeouts.size > 8 && this.timeouts.get(q.timeout) === q) this.timeouts.delete(q.timeout);
      return;
    }
    const calls = q.calls;
    while (q.head < calls.length && calls[q.head].finished) q.head++;
    const held = calls.length - q.head;
    if (held > 1024 && held > 4 * q.live) {
      // A slow request at the head keeps finished ones behind it: compact when they dominate.
      q.calls = calls.slice(q.head).filter((c) => !c.finished);
      q.head = 0;
    } else if (q.head >= 1024 && q.head >= held) {
      // Under steady load the queue never empties: drop the finished prefix.
      q.calls = calls.slice(q.head);
      q.head = 0;
    }
  }

  /** Arms the queue's timer for its oldest live request. */
  private armTimeout(q: TimeoutQueue): void {
    const calls = q.calls;
    while (q.head < calls.length && calls[q.head].finished) q.head++;
    if (q.head >= calls.length) return;
    const wait = Math.max(0, Math.ceil(calls[q.head].expiresAt - performance.now()));
    q.timer = setTimeout(() => this.expire(q), wait);
  }

  /** Times out every request of the queue whose deadline has passed, then re-arms. */
  private expire(q: TimeoutQueue): void {
    q.timer = undefined;
    const now = performance.now();
    while (q.head < q.calls.length) {
      const call = q.calls[q.head];
      if (call.finished) {
        q.head++;
        continue;
      }
      // A timer may fire a little early against performance.now(): then it is armed again.
      if (call.expiresAt > now) break;
      if (this.finish(call)) {
        call.link.send(cancelMessage(call.id, CANCEL_TIMEOUT));
        call.reject(this.timeoutError(call));
      }
      if (q.live === 0) return;
    }
    if (q.timer === undefined && q.live > 0) this.armTimeout(q);
  }

  private timeoutError(call: PendingRequest): TimeoutError {
    return new TimeoutError(`Request "${call.name}" to "${this.host.remote}" timed out after ${call.timeout} ms`);
  }

  /** Handles a callee → caller message. */
  onMessage(m: Message): void {
    const call = this.requests.get(m.mux);
    if (call !== undefined) {
      if (performance.now() >= call.expiresAt) {
        // The reply beat our timer, but the deadline has passed: the remote aborted its handler
        // at the same moment, so whatever it answered is not a result (DESIGN.md, deadlines).
        this.finish(call);
        call.reject(this.timeoutError(call));
      } else if (m.op === OP_RESPONSE) {
        this.finish(call);
        call.resolve(m.payload);
      } else if (m.op === OP_ERROR) {
        this.finish(call);
        call.reject(decodeError(m.payload));
      } else {
        this.finish(call);
        call.reject(new ProtocolError(`Unexpected op ${m.op} for request "${call.name}"`));
      }
      return;
    }
    const st = this.streams.get(m.mux);
    if (st !== undefined) st.onMessage(m);
    // Messages for calls that already ended (canceled, timed out) are dropped.
  }

  /** Pings open streams and fails those whose handler stopped answering. */
  tick(now: number): void {
    for (const st of this.streams.values()) st.tick(now);
  }

  /** Fails every call made on `link` (all calls when `link` is null). */
  failAll(err: GridError, link: Link | null = null): void {
    for (const call of [...this.requests.values()]) {
      if (link !== null && call.link !== link) continue;
      if (this.finish(call)) call.reject(err);
    }
    for (const st of [...this.streams.values()]) {
      if (link !== null && st.link !== link) continue;
      st.fail(err, false);
    }
  }
}

/**
 * The error for a call made while the connection is down: always a
 * DisconnectedError, with the connection's last error as its cause. (Whether a
 * refused handshake fails calls with its own error instead is the
 * Connection's decision: a client's refusal does, a peer's never does.)
 */
export function downError(remote: string, last: GridError | null): GridError {
  if (last === null) return new DisconnectedError(`Cannot call "${remote}": connection is down`);
  return new DisconnectedError(`Cannot call "${remote}": connection is down (last error: ${last.message})`, { cause: last });
}
