/**
 * A Link is one open socket speaking the wire protocol: it batches outgoing
 * messages into frames, decodes incoming frames, answers and sends pings, and
 * applies backpressure through the socket's `bufferedAmount`. A Connection owns
 * at most one Link at a time; a new socket means a new Link.
 *
 * Until {@link Link.establish} (the handshake completed) a link accepts only
 * small frames and hands every message, pings included, to its receiver,
 * which allows the handshake's and nothing else: an unauthenticated socket
 * gets no answer from the link itself.
 *
 * Memory is bounded: every queued byte counts against `maxQueuedBytes`
 * (queues and the socket's `bufferedAmount`); callers that can wait do so
 * ({@link Link.room}) past a quarter of it; past all of it, or when the socket
 * wrote nothing for `writeTimeout` while data waited, the peer is not reading
 * and the link is dropped.
 *
 * @module
 */
import { DisconnectedError, type GridError, ProtocolError, TimeoutError } from "./errors.ts";
import { decodeFrame, encodeFrame, type Message, messageSize, type OutMessage } from "./protocol/frame.ts";
import { DEFAULT_LIMITS } from "./protocol/limits.ts";
import { OP_PING, OP_PONG } from "./protocol/ops.ts";
import type { GridSocket, SocketMessageEvent } from "./socket.ts";

/** Receives what a Link decodes. `onMessage` must not await application code. */
export interface LinkReceiver {
  onMessage(m: Message): void;
  onClose(err: GridError): void;
}

/** Counters of one Link. */
export interface LinkCounters {
  bytesIn: number;
  bytesOut: number;
  messagesIn: number;
  messagesOut: number;
  framesIn: number;
  framesOut: number;
}

interface BulkEntry {
  m: OutMessage;
  resolve: () => void;
  reject: (e: GridError) => void;
}

/** Limits of one link. */
export interface LinkLimits {
  /** Largest payload accepted once the link is established. */
  readonly maxPayload: number;
  /** Bytes the link may hold queued for the socket, its `bufferedAmount` included. */
  readonly maxQueuedBytes: number;
  /** Ms the socket may write nothing while data waits before the link is dropped. */
  readonly writeTimeout: number;
}

interface RoomWaiter {
  readonly bytes: number;
  resolve: () => void;
  reject: (e: unknown) => void;
}

/** WebSocket close code of a link dropped because its peer does not read (private range). */
export const CLOSE_NOT_READING = 4001;

const EMPTY = new Uint8Array(0);
const NOOP = (): void => {};
/**
 * How often a waiting link looks at `bufferedAmount` again. Kept even on
 * sockets with drain events: Bun reports a drain only after a `send` that hit
 * its own backpressure limit, while the link waits from its lower thresholds
 * on, and a 20 ms fallback poll cost Bun's stream a fifth of its throughput.
 * The events make the wake-up prompt; the poll makes it certain.
 */
const DRAIN_POLL_MS = 2;
/**
 * Looks before the first {@link DRAIN_POLL_MS} timer, each after one turn of
 * the event loop: a socket often drains as soon as the runtime ran the I/O the
 * frames just sent started (Node's `ws` counts a written frame in
 * `bufferedAmount` until its next tick, Deno's server socket until its send op
 * completed), and a timer is at least 1 ms (Node, Bun) or 2 ms (Deno). Measured
 * with 16 KiB messages and `outCapacity: 64` (1 MiB in flight), where the
 * writer fills the socket past `bulkHighWaterBytes` in one turn and nothing but
 * this wait wakes it, Node's stream went from 494 MB/s to 2,388–2,669 (Deno's
 * from 48–629 to 595–1,839; both still vary run to run on their readers).
 * At most this many per frame written, so a peer that does not read costs
 * the 2 ms polls and the write deadline as before.
 */
const FAST_POLLS = 4;
const timers = globalThis as {
  setImmediate?: (f: () => void) => unknown;
  clearImmediate?: (h: unknown) => void;
};
/** One turn of the event loop where the runtime has it (Node, Deno, Bun); browsers poll by the timer only. */
const nextTurn = typeof timers.setImmediate === "function" && typeof timers.clearImmediate === "function"
  ? { set: (f: () => void) => timers.setImmediate!(f), clear: (h: unknown) => timers.clearImmediate!(h) }
  : undefined;
/**
 * A flush with only stream data waits while writers are still adding to it:
 * until a frame's worth is queued, or the queue stayed the same for this many
 * microtask turns in a row (a writer's `await writer.ready; writer.write()`
 * loop takes a few turns per message)...
 */
const QUIET_TURNS = 4;
/** ...but never more turns than this in all, so a flush is never put off for long. */
const MAX_DEFER_TURNS = 64;
/** Frames up to this size may be encoded into {@link scratch}. */
const SCRATCH_BYTES = 2 * DEFAULT_LIMITS.batchBytes;
/**
 * One send buffer shared by every Link (see `GridSocket.sendBuffer`): a frame
 * is encoded into it and sent, and on a socket that copies the bytes are free
 * again before `send` returns, so stream data costs no new array per frame
 * (fresh memory, and GC work). A socket that kept them gets to keep the
 * buffer; the next frame makes a new one.
 */
let scratch: Uint8Array<ArrayBuffer> | undefined;

/** What the socket's `send` does with its bytes: its own say, else "copies" for a WHATWG WebSocket. */
function sendBufferOf(socket: GridSocket): "copies" | "until-written" | "unknown" {
  if (socket.sendBuffer !== undefined) return socket.sendBuffer;
  return typeof WebSocket === "function" && socket instanceof WebSocket ? "copies" : "unknown";
}

/** One open socket speaking the wire protocol. */
export class Link {
  readonly socket: GridSocket;
  /** Where decoded messages go; swapped from the handshake to the connection. */
  receiver: LinkReceiver;
  readonly counters: LinkCounters = { bytesIn: 0, bytesOut: 0, messagesIn: 0, messagesOut: 0, framesIn: 0, framesOut: 0 };
  closed = false;
  /** The close code this side closed the socket with; 0 while open or when the other side closed it. */
  closeCode = 0;
  rttMs: number | null = null;
  /**
   * Call and control messages queued by `send`, and how many of them were handed to the
   * socket: a request whose number is above `handedOver` when the link closed never left
   * this process (what `retryOn: "disconnected"` retries).
   */
  queuedCount = 0;
  handedOver = 0;
  private readonly limits: LinkLimits;
  /** Payload limit of incoming messages: small until established. */
  private maxPayload: number = DEFAULT_LIMITS.handshakeFrameBytes;
  /** The handshake completed: pings are answered, large frames accepted. */
  established = false;
  /** `send` copies its bytes: every frame may use the scratch buffer, and stream data waits for writers. */
  private readonly copies: boolean;
  /** `send` keeps its bytes until written, and `bufferedAmount` tells when that is done. */
  private readonly keepsUntilWritten: boolean;
  private urgent: OutMessage[] = [];
  private urgentHead = 0;
  private urgentBytes = 0;
  /** The answer to the latest ping, not yet written: at most one is ever queued. */
  private pong: OutMessage | null = null;
  private roomWaiters: RoomWaiter[] = [];
  /** When the socket was last seen writing (its `bufferedAmount` going down) while data waited. */
  private progressAt = 0;
  private lastBuffered = 0;
  private bulk: BulkEntry[] = [];
  private bulkHead = 0;
  private bulkBytes = 0;
  private readonly batch: OutMessage[] = [];
  private scheduled = false;
  /** Microtask turns the pending flush has waited, and for how many of them stream data stayed the same. */
  private deferTurns = 0;
  private quietTurns = 0;
  private deferBulkBytes = 0;
  private drainTimer: unknown;
  /** `drainTimer` is a {@link nextTurn} handle, not a timer. */
  private drainTurn = false;
  /** {@link FAST_POLLS} used since the socket last took a frame. */
  private fastPolls = 0;
  /** The socket dispatches "drain" (see `GridSocket.drainEvents`). */
  private readonly drainEvents: boolean;
  /** Ping interval once {@link startPing} ran, ms; 0 before. */
  private pingEvery = 0;
  private lastPing = 0;
  private lastPong = 0;
  private closeError: GridError | null = null;

  constructor(socket: GridSocket, receiver: LinkReceiver, limits: LinkLimits) {
    this.socket = socket;
    this.receiver = receiver;
    this.limits = limits;
    const sendBuffer = sendBufferOf(socket);
    this.copies = sendBuffer === "copies";
    this.keepsUntilWritten = sendBuffer === "until-written";
    // ws's "nodebuffer" stays: a copy less per message, and on Node that copy is what tips V8
    // into a full mark-compact every ~25 ms under a stream (see GridSocket.binaryType).
    if (socket.binaryType !== "nodebuffer") socket.binaryType = "arraybuffer";
    socket.addEventListener("message", (ev) => this.onFrame(ev));
    socket.addEventListener("close", (ev) => {
      this.shutdown(new DisconnectedError(`Connection closed: code ${ev.code}${ev.reason ? ` (${ev.reason})` : ""}`));
    });
    socket.addEventListener("error", () => {
      this.shutdown(new DisconnectedError("Connection failed: socket error"));
    });
    this.drainEvents = socket.drainEvents === true;
    if (this.drainEvents) socket.addEventListener("drain", () => this.onDrain());
  }

  /** The socket said it drained: resume now rather than at the next poll. */
  private onDrain(): void {
    if (this.drainTimer === undefined) return;
    this.stopDrainTimer();
    this.drained();
  }

  private stopDrainTimer(): void {
    const t = this.drainTimer;
    if (t === undefined) return;
    this.drainTimer = undefined;
    if (this.drainTurn) nextTurn!.clear(t);
    else clearTimeout(t as ReturnType<typeof setTimeout>);
  }

  private readonly polled = (): void => {
    this.drainTimer = undefined;
    this.drained();
  };

  private drained(): void {
    this.wakeRoom();
    this.flush();
    if (this.roomWaiters.length > 0) this.waitDrain();
  }

  /** The handshake completed: accept full-size frames and answer pings from now on. */
  establish(): void {
    this.established = true;
    this.maxPayload = this.limits.maxPayload;
  }

  /** Queues a control or call message; it goes out before stream data. */
  send(m: OutMessage): void {
    if (this.closed) return;
    this.queuedCount++;
    this.urgent.push(m);
    this.urgentBytes += messageSize(m);
    if (!this.scheduled) this.schedule();
    // Our queues grow only while the socket holds more than highWaterBytes: the cheap test first.
    const max = this.limits.maxQueuedBytes;
    if (this.urgentBytes + DEFAULT_LIMITS.highWaterBytes > max && this.queuedBytes > max) this.notReading();
  }

  /** Bytes queued here and in the socket. */
  get queuedBytes(): number {
    return this.urgentBytes + this.bulkBytes + this.socket.bufferedAmount;
  }

  /**
   * Undefined when a message of `bytes` may be queued now; else a promise that
   * resolves once it may (a quarter of `maxQueuedBytes` in use at most, or the
   * queues empty), rejecting at `timeout` ms with a TimeoutError, when `signal`
   * aborts with its reason, or with the link's error when it closes.
   */
  room(bytes: number, timeout: number, signal: AbortSignal | undefined, what: string): Promise<void> | undefined {
    if (this.closed) return Promise.reject(this.closeError ?? new DisconnectedError("Connection closed"));
    if (this.hasRoom(bytes)) return undefined;
    return new Promise<void>((resolve, reject) => {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const onAbort = () => done(signal!.reason);
      const done = (err?: unknown) => {
        const i = this.roomWaiters.indexOf(w);
        if (i < 0) return;
        this.roomWaiters.splice(i, 1);
        if (timer !== undefined) clearTimeout(timer);
        signal?.removeEventListener("abort", onAbort);
        if (err === undefined) resolve();
        else reject(err);
      };
      const w: RoomWaiter = { bytes, resolve: () => done(), reject: (e) => done(e) };
      this.roomWaiters.push(w);
      if (Number.isFinite(timeout)) {
        timer = setTimeout(() => {
          done(new TimeoutError(`${what} timed out after ${timeout} ms waiting for the peer to read (${this.queuedBytes} bytes queued)`));
        }, timeout);
      }
      signal?.addEventListener("abort", onAbort, { once: true });
      this.waitDrain();
    });
  }

  /** Room for `bytes` more, on top of `reserved` bytes that callers let go are about to queue. */
  private hasRoom(bytes: number, reserved = 0): boolean {
    const queued = this.queuedBytes + reserved;
    return queued === 0 || queued + bytes <= this.limits.maxQueuedBytes / 4;
  }

  /**
   * Lets waiting callers go, oldest first, while there is room. Each one sends
   * only when its promise continuation runs, so the bytes of those let go
   * count as queued already: otherwise one drain would release every waiter.
   */
  private wakeRoom(): void {
    let reserved = 0;
    while (this.roomWaiters.length > 0 && this.hasRoom(this.roomWaiters[0].bytes, reserved)) {
      const w = this.roomWaiters[0];
      reserved += w.bytes;
      w.resolve();
    }
  }

  /** Drops the link: its peer does not read what it is sent. */
  private notReading(): void {
    this.close(
      new DisconnectedError(`Connection dropped: the peer does not read (${this.queuedBytes} bytes queued)`),
      CLOSE_NOT_READING,
    );
  }

  /**
   * Queues a stream data message. While less than `bulkQueueBytes` of stream
   * data waits here it returns nothing (the writer may go on, and queued
   * messages share frames); beyond that it returns a promise that resolves
   * once the message is handed to the socket. Rejects if the link closes.
   */
  sendBulk(m: OutMessage): Promise<void> | undefined {
    if (this.closed) return Promise.reject(this.closeError ?? new DisconnectedError("Connection closed"));
    const size = messageSize(m);
    const queued = this.bulkBytes;
    this.bulkBytes = queued + size;
    if (!this.scheduled) this.schedule();
    if (queued < DEFAULT_LIMITS.bulkQueueBytes) {
      this.bulk.push({ m, resolve: NOOP, reject: NOOP });
      return undefined;
    }
    return new Promise((resolve, reject) => {
      this.bulk.push({ m, resolve, reject });
    });
  }

  /**
   * Queues a message behind the stream data already queued, never ahead of it:
   * a stream's end (or a handler's error after its data) must not overtake the
   * stream's last messages. Dropped if the link is closed.
   */
  sendAfterBulk(m: OutMessage): void {
    if (this.closed) return;
    this.bulkBytes += messageSize(m);
    this.bulk.push({ m, resolve: NOOP, reject: NOOP });
    if (!this.scheduled) this.schedule();
  }

  /** Starts connection pings, sent by {@link pingTick}; the link closes when no pong came for 2 intervals. */
  startPing(interval: number): void {
    this.pingEvery = interval;
    this.lastPing = this.lastPong = performance.now();
  }

  /**
   * The owner's clock, at least twice per ping interval once pings started (the connection's
   * one timer drives this, rather than a timer per link): closes the link when no pong came
   * for 2 intervals, else sends a ping when one is due.
   */
  pingTick(now: number): void {
    const every = this.pingEvery;
    if (every === 0 || this.closed) return;
    if (now - this.lastPong > 2 * every) {
      this.close(new DisconnectedError(`Connection lost: no pong for ${Math.round(now - this.lastPong)} ms`), 4000);
      return;
    }
    // Every second tick: ticks come each half interval, and a timer fires late, not early.
    if (now - this.lastPing < 0.75 * every) return;
    this.lastPing = now;
    const p = new Uint8Array(8);
    new DataView(p.buffer).setFloat64(0, now);
    this.send({ op: OP_PING, flags: 0, mux: 0, seq: 0, deadline: 0, route: null, payload: p });
  }

  /** Writes what is queued now (before a close, say), without waiting for writers. */
  flushNow(): void {
    this.resetDefer();
    this.writeQueued();
  }

  /** Closes the socket and reports `err` to the receiver (once). */
  close(err: GridError, code = 1000): void {
    if (this.closed) return;
    this.closeCode = code;
    this.shutdown(err);
    try {
      this.socket.close(code, err.message.slice(0, 120));
    } catch {
      // A WHATWG client WebSocket (browsers, Node's and Deno's global) accepts only 1000 and
      // 3000-4999 and throws on 1001/1002/1008: close with 1000 rather than leave it open.
      try {
        this.socket.close(1000);
      } catch {
        // The socket is already gone; shutdown above has reported the error.
      }
    }
  }

  private schedule(): void {
    this.scheduled = true;
    queueMicrotask(this.flush);
  }

  private readonly flush = (): void => {
    this.scheduled = false;
    if (this.copies && !this.closed && this.deferForWriters()) return;
    this.writeQueued();
  };

  /** Writes queued messages as frames, control and calls first, while the socket takes them. */
  private writeQueued(): void {
    if (this.closed) return;
    const socket = this.socket;
    const limitBytes = DEFAULT_LIMITS.batchBytes;
    const limitMsgs = DEFAULT_LIMITS.batchMessages;
    while (this.pong !== null || this.urgentHead < this.urgent.length || this.bulkHead < this.bulk.length) {
      const buffered = socket.bufferedAmount;
      const bulkOk = buffered <= DEFAULT_LIMITS.bulkHighWaterBytes;
      if (
        buffered > DEFAULT_LIMITS.highWaterBytes ||
        (!bulkOk && this.pong === null && this.urgentHead === this.urgent.length)
      ) {
        this.waitDrain();
        return;
      }
      const batch = this.batch;
      let count = 0;
      let size = 0;
      const urgentStart = this.urgentHead;
      if (this.pong !== null) {
        batch[count++] = this.pong;
        size += messageSize(this.pong);
        this.pong = null;
      }
      while (this.urgentHead < this.urgent.length && count < limitMsgs) {
        const m = this.urgent[this.urgentHead];
        const s = messageSize(m);
        if (count > 0 && size + s > limitBytes) break;
        batch[count++] = m;
        size += s;
        this.urgentBytes -= s;
        this.urgentHead++;
      }
      const bulkStart = this.bulkHead;
      while (bulkOk && this.bulkHead < this.bulk.length && count < limitMsgs && size < limitBytes) {
        const m = this.bulk[this.bulkHead].m;
        const s = messageSize(m);
        if (count > 0 && size + s > limitBytes) break;
        batch[count++] = m;
        size += s;
        this.bulkBytes -= s;
        this.bulkHead++;
      }
      // On a socket that keeps the bytes until written, the scratch buffer is used only while
      // nothing waits in it, and handed over for good when this frame had to wait too.
      const useScratch = size <= SCRATCH_BYTES && (this.copies || (this.keepsUntilWritten && buffered === 0));
      const frame = useScratch
        ? encodeFrame(batch, 0, count, size, scratch ??= new Uint8Array(SCRATCH_BYTES))
        : encodeFrame(batch, 0, count, size);
      for (let i = 0; i < count; i++) batch[i] = EMPTY_MESSAGE;
      try {
        socket.send(frame);
      } catch (e) {
        // The frame's stream data was never handed over: its writers are rejected by shutdown.
        this.bulkHead = bulkStart;
        this.urgentHead = urgentStart;
        this.shutdown(new DisconnectedError("Cannot send: socket is closed", { cause: e }));
        return;
      }
      if (useScratch && !this.copies && socket.bufferedAmount > 0) scratch = undefined;
      this.handedOver += this.urgentHead - urgentStart;
      this.fastPolls = 0;
      const c = this.counters;
      c.framesOut++;
      c.messagesOut += count;
      c.bytesOut += size;
      for (let i = bulkStart; i < this.bulkHead; i++) this.bulk[i].resolve();
    }
    this.urgent = [];
    this.urgentHead = 0;
    this.urgentBytes = 0;
    this.bulk = [];
    this.bulkHead = 0;
    this.bulkBytes = 0;
    this.progressAt = 0;
    if (this.roomWaiters.length > 0) {
      this.wakeRoom();
      if (this.roomWaiters.length > 0) this.waitDrain();
    }
  }

  /**
   * Puts off a flush that has only stream data, less than a frame's worth,
   * while writers are still adding to it, so that their messages share frames
   * (3 × 16 KiB in one frame instead of 3 frames: fewer socket writes and
   * message events). Control messages and requests never wait: any of them
   * flushes at once. Only on sockets that copy on send, where frames are
   * encoded into the shared send buffer, so a bigger frame costs no bigger
   * allocation. Measured (`deno task bench`, stream suite, 16 KiB): Bun 0.65×
   * → 0.95× raw. On Node's `ws` server socket it made the Node reader slower
   * (0.91× → 0.58×: with 2 messages per frame its V8 ran 97 mark-compacts in
   * 4 s instead of 1, on the runtime's own read buffers), so it stays off there.
   */
  private deferForWriters(): boolean {
    if (this.urgentHead < this.urgent.length || this.bulkBytes >= DEFAULT_LIMITS.batchBytes) return this.resetDefer();
    if (this.deferTurns >= MAX_DEFER_TURNS) return this.resetDefer();
    if (this.bulkBytes === this.deferBulkBytes) {
      if (++this.quietTurns >= QUIET_TURNS) return this.resetDefer();
    } else {
      this.quietTurns = 0;
      this.deferBulkBytes = this.bulkBytes;
    }
    this.deferTurns++;
    this.scheduled = true;
    queueMicrotask(this.flush);
    return true;
  }

  private resetDefer(): false {
    this.deferTurns = 0;
    this.quietTurns = 0;
    this.deferBulkBytes = 0;
    return false;
  }

  /**
   * Polls until the socket drains. Data waits meanwhile: when the socket's
   * `bufferedAmount` has not gone down for `writeTimeout`, the peer stopped
   * reading and the link is dropped (MinIO's grid puts a write deadline on its
   * socket the same way).
   */
  private waitDrain(): void {
    if (this.drainTimer !== undefined || this.closed) return;
    const now = performance.now();
    const buffered = this.socket.bufferedAmount;
    if (this.progressAt === 0 || buffered < this.lastBuffered) this.progressAt = now;
    this.lastBuffered = buffered;
    if (buffered > 0 && now - this.progressAt > this.limits.writeTimeout) {
      this.close(
        new DisconnectedError(`Connection dropped: nothing written for ${Math.round(now - this.progressAt)} ms (${buffered} bytes buffered)`),
        CLOSE_NOT_READING,
      );
      return;
    }
    this.drainTurn = nextTurn !== undefined && this.fastPolls < FAST_POLLS;
    if (this.drainTurn) {
      this.fastPolls++;
      this.drainTimer = nextTurn!.set(this.polled);
    } else {
      this.drainTimer = setTimeout(this.polled, DRAIN_POLL_MS);
    }
  }

  private onFrame(ev: SocketMessageEvent): void {
    if (this.closed) return;
    const data = ev.data;
    let frame: Uint8Array;
    if (data instanceof ArrayBuffer) frame = new Uint8Array(data);
    else if (ArrayBuffer.isView(data)) frame = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    else {
      this.close(new ProtocolError("Cannot decode frame: text frames are not part of the protocol"), 1003);
      return;
    }
    if (!this.established && frame.length > DEFAULT_LIMITS.handshakeFrameBytes) {
      this.close(
        new ProtocolError(
          `Cannot decode frame: ${frame.length} bytes before the handshake completed (at most ${DEFAULT_LIMITS.handshakeFrameBytes})`,
        ),
        1009,
      );
      return;
    }
    let msgs: Message[];
    try {
      msgs = decodeFrame(frame, this.maxPayload);
    } catch (e) {
      this.close(e instanceof ProtocolError ? e : new ProtocolError("Cannot decode frame", { cause: e }), 1002);
      return;
    }
    const c = this.counters;
    c.framesIn++;
    c.messagesIn += msgs.length;
    c.bytesIn += frame.length;
    for (let i = 0; i < msgs.length && !this.closed; i++) {
      const m = msgs[i];
      if (!this.established) {
        this.deliver(m);
      } else if (m.op === OP_PING) {
        if (m.payload.length > DEFAULT_LIMITS.maxPingBytes) {
          this.close(new ProtocolError(`Cannot decode ping: payload of ${m.payload.length} bytes (at most ${DEFAULT_LIMITS.maxPingBytes})`), 1002);
          return;
        }
        // A later ping replaces an unwritten answer: a peer that pings without reading queues one pong at most.
        this.pong = { op: OP_PONG, flags: 0, mux: 0, seq: 0, deadline: 0, route: null, payload: m.payload.slice() };
        if (!this.scheduled) this.schedule();
      } else if (m.op === OP_PONG) {
        this.lastPong = performance.now();
        if (m.payload.length === 8) {
          const sent = new DataView(m.payload.buffer, m.payload.byteOffset, 8).getFloat64(0);
          const rtt = this.lastPong - sent;
          if (rtt >= 0 && rtt < 3_600_000) this.rttMs = Math.round(rtt * 1000) / 1000;
        }
      } else {
        this.deliver(m);
      }
    }
  }

  private deliver(m: Message): void {
    try {
      this.receiver.onMessage(m);
    } catch (e) {
      this.close(
        e instanceof ProtocolError ? e : new ProtocolError(`Cannot handle message: ${String(e)}`, { cause: e }),
        1002,
      );
    }
  }

  private shutdown(err: GridError): void {
    if (this.closed) return;
    this.closed = true;
    this.closeError = err;
    this.stopDrainTimer();
    const bulk = this.bulk;
    for (let i = this.bulkHead; i < bulk.length; i++) bulk[i].reject(err);
    this.urgent = [];
    this.bulk = [];
    this.pong = null;
    this.urgentHead = this.bulkHead = this.bulkBytes = this.urgentBytes = 0;
    for (const w of [...this.roomWaiters]) w.reject(err);
    this.receiver.onClose(err);
  }
}

const EMPTY_MESSAGE: OutMessage = { op: 0, flags: 0, mux: 0, seq: 0, deadline: 0, route: null, payload: EMPTY };
