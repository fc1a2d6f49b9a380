/**
 * The outgoing grid socket of the Deno adapter: a WebSocket client (RFC 6455,
 * binary frames, no extensions) over `Deno.connect` with TCP_NODELAY (private
 * to `src/adapters/`).
 *
 * Why not Deno's global WebSocket: its client does not disable Nagle's
 * algorithm and writes a frame's header and payload separately for messages
 * over 1 KiB, so each such request or response stalls ~40 ms on the peer's
 * delayed ACK. Why not the `ws` client (used before): it runs over Deno's
 * `node:net`, whose reads allocate so much that under a 16 KiB stream the
 * reader's V8 ran a full mark-compact every ~70 ms and a single request's
 * p99 on the same connection was 5–19× idle. Here each read goes into one
 * reused buffer and each message costs one exact-size copy.
 *
 * @module
 */

import type { DialLimits, GridSocket, SocketCloseEvent, SocketMessageEvent } from "../socket.ts";

/** The slice of a `Deno.Conn` used here. */
interface DenoConn {
  read(p: Uint8Array): Promise<number | null>;
  write(p: Uint8Array): Promise<number>;
  close(): void;
}

/** The slice of the `Deno` namespace used here, declared locally so no runtime types are needed. */
interface DenoNet {
  connect(opts: { hostname: string; port: number }): Promise<DenoConn & { setNoDelay(noDelay?: boolean): void }>;
  startTls(conn: DenoConn, opts: { hostname: string; caCerts?: string[] }): Promise<DenoConn>;
}

const GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
/** Largest frame accepted from the server unless the dialer says otherwise. */
const MAX_FRAME_BYTES = 100 << 20;
/** Largest HTTP response head accepted in the handshake. */
const MAX_HEAD_BYTES = 16 << 10;
/** How long `close()` waits for the server's close frame before cutting the connection. */
const CLOSE_GRACE_MS = 2_000;
/**
 * How long the reader may go on after a write failed (see `writeFailed`):
 * what the peer sent before it reset is read within a few ms on loopback.
 */
const WRITE_FAIL_GRACE_MS = 250;
/**
 * Reads go into a buffer of {@link FIRST_READ_BYTES} that grows, fourfold per read that
 * filled it, up to {@link READ_BYTES}: an idle connection (pings, the odd request) holds
 * 1 KiB, not 64, while a stream's reader reaches whole frames per read after three reads.
 */
const FIRST_READ_BYTES = 1 << 10;
const READ_BYTES = 64 << 10;

const encoder = new TextEncoder();
const decoder = new TextDecoder();

type Listener = (ev: never) => void;

/** `list` with `l` added, as a new array of its exact size (a push would reserve 17 slots). */
function added(list: readonly Listener[], l: Listener): readonly Listener[] {
  return list.length === 0 ? [l] : [...list, l];
}

/** Opens `url` (ws:// or wss://) with {@link DenoClientSocket}. */
export function denoDial(url: string, limits?: DialLimits): GridSocket {
  return new DenoClientSocket(url, { maxFrameBytes: limits?.maxFrameBytes });
}

/**
 * A WHATWG-shaped WebSocket client: "open", "message" (binary data as a
 * Uint8Array of its own), "error" and exactly one "close" event; `send` copies
 * (it frames and masks into a new buffer).
 */
export class DenoClientSocket implements GridSocket {
  /** Ignored: binary messages arrive as a Uint8Array of their own, which the core reads. */
  binaryType = "arraybuffer";
  /** `send` frames (and masks) the bytes into a new buffer before it returns. */
  readonly sendBuffer = "copies";
  readyState = 0;
  private conn: DenoConn | null = null;
  private readonly queue: Uint8Array[] = [];
  private queued = 0;
  private writing = false;
  private closeSent = false;
  private closeTimer: ReturnType<typeof setTimeout> | undefined;
  private finished = false;
  /** Largest message accepted: a larger frame or message closes with 1009 before it is buffered. */
  private readonly maxFrameBytes: number;
  /** Listeners by event type; an array is replaced, at its exact size, when a listener is added. */
  private listenOpen: readonly Listener[] = [];
  private listenMessage: readonly Listener[] = [];
  private listenClose: readonly Listener[] = [];
  private listenError: readonly Listener[] = [];
  private listenDrain: readonly Listener[] = [];
  /** A "drain" event follows each time the write queue empties. */
  readonly drainEvents = true;

  /**
   * Starts connecting to `url`; "open" or "error" + "close" follow.
   *
   * @param url a ws:// or wss:// URL
   * @param opts `caCerts`: PEM certificates to trust for wss:// besides Deno's
   *   own roots (and `DENO_CERT`); `maxFrameBytes`: the largest message accepted
   */
  constructor(url: string, opts: { caCerts?: string[]; maxFrameBytes?: number } = {}) {
    this.maxFrameBytes = opts.maxFrameBytes ?? MAX_FRAME_BYTES;
    void this.run(new URL(url), opts.caCerts);
  }

  /** Bytes given to `send` (framed) and not yet written to the connection. */
  get bufferedAmount(): number {
    return this.queued;
  }

  /** Adds a listener for "open", "message", "close", "error" or "drain". */
  addEventListener(type: "open", listener: () => void): void;
  addEventListener(type: "message", listener: (ev: SocketMessageEvent) => void): void;
  addEventListener(type: "close", listener: (ev: SocketCloseEvent) => void): void;
  addEventListener(type: "error", listener: (ev: unknown) => void): void;
  addEventListener(type: "drain", listener: () => void): void;
  addEventListener(type: string, listener: (ev: never) => void): void {
    const l = listener as Listener;
    if (type === "message") this.listenMessage = added(this.listenMessage, l);
    else if (type === "close") this.listenClose = added(this.listenClose, l);
    else if (type === "error") this.listenError = added(this.listenError, l);
    else if (type === "open") this.listenOpen = added(this.listenOpen, l);
    else if (type === "drain") this.listenDrain = added(this.listenDrain, l);
  }

  /** Sends one binary message; throws while connecting, drops it once closing (as WHATWG does). */
  send(data: Uint8Array): void {
    if (this.readyState === 0) throw new DOMException("Cannot send: the socket is still connecting", "InvalidStateError");
    if (this.readyState !== 1) return;
    this.enqueue(maskedFrame(0x2, data));
  }

  /** Starts the closing handshake; "close" follows once the server answers or the grace ends. */
  close(code = 1000, reason = ""): void {
    if (this.readyState >= 2) return;
    if (this.readyState === 0) {
      this.readyState = 2;
      this.finish(1006, "closed while connecting");
      return;
    }
    this.readyState = 2;
    this.sendClose(code, reason);
    this.closeTimer = setTimeout(() => this.finish(1006, "no close frame from the server"), CLOSE_GRACE_MS);
  }

  private emit(type: "open" | "message" | "close" | "error" | "drain", ev: unknown): void {
    const listeners = type === "message"
      ? this.listenMessage
      : type === "close"
      ? this.listenClose
      : type === "error"
      ? this.listenError
      : type === "open"
      ? this.listenOpen
      : this.listenDrain;
    for (const listener of listeners) {
      try {
        (listener as (ev: unknown) => void)(ev);
      } catch (err) {
        reportError(err);
      }
    }
  }

  /**
   * Connects, then hands over to {@link readFrames} without waiting for it: an open socket
   * keeps one suspended reader, not the connecting code's frame as well.
   */
  private async run(url: URL, caCerts: string[] | undefined): Promise<void> {
    let tcp: DenoConn | null = null;
    let conn: DenoConn;
    let rest: Uint8Array;
    try {
      const deno = (globalThis as unknown as { Deno: DenoNet }).Deno;
      const secure = url.protocol === "wss:";
      const port = url.port ? Number(url.port) : secure ? 443 : 80;
      // URL keeps the brackets of an IPv6 literal; Deno.connect wants the bare address.
      const hostname = url.hostname.replace(/^\[(.*)\]$/, "$1");
      const raw = await deno.connect({ hostname, port });
      tcp = raw;
      raw.setNoDelay(true);
      conn = secure ? await deno.startTls(raw, caCerts ? { hostname, caCerts } : { hostname }) : raw;
      this.conn = conn;
      if (this.readyState !== 0) throw new Error("closed while connecting");
      rest = await handshake(conn, url);
      if (this.readyState !== 0) throw new Error("closed while connecting");
      this.readyState = 1;
      this.emit("open", undefined);
    } catch (err) {
      this.failed(err, tcp);
      return;
    }
    this.readFrames(conn, rest).catch((err) => this.failed(err, null));
  }

  /** Connecting or reading failed with `err` (`tcp`: the raw connection, before `conn` was set). */
  private failed(err: unknown, tcp: DenoConn | null): void {
    if (this.finished) {
      // close() ran while connecting: the connection made since is ours to close.
      closeQuietly(this.conn ?? tcp);
      return;
    }
    if (this.conn === null) closeQuietly(tcp);
    this.emit("error", { message: err instanceof Error ? err.message : String(err) });
    this.finish(1006, "");
  }

  /**
   * Reads frames until the connection ends; messages go out as "message"
   * events. `first` (bytes read past the handshake, a buffer of its own) is
   * handled before the first read.
   */
  private async readFrames(conn: DenoConn, first: Uint8Array): Promise<void> {
    let chunk = new Uint8Array(FIRST_READ_BYTES);
    let filled = false;
    // The start of a frame not yet read in full, in a buffer of its own (`chunk` is reused).
    let pend = first;
    let pendLen = first.length;
    let buf = first;
    for (;;) {
      const at = this.parseFrames(buf);
      if (at < 0) return;
      const left = buf.length - at;
      if (left === 0) {
        pendLen = 0;
        if (pend.length > READ_BYTES * 4) pend = EMPTY; // do not keep a big message's buffer
      } else if (buf.buffer === pend.buffer) {
        pend.copyWithin(0, at, pendLen);
        pendLen = left;
      } else {
        if (pend.length < left) pend = new Uint8Array(Math.max(left, chunk.length));
        pend.set(buf.subarray(at));
        pendLen = left;
      }
      // Safe to replace here: what is left of the last read was copied into `pend` above.
      if (filled && chunk.length < READ_BYTES) chunk = new Uint8Array(Math.min(chunk.length * 4, READ_BYTES));
      const n = await conn.read(chunk);
      if (n === null) return this.finish(1006, "connection ended without a close frame");
      filled = n === chunk.length;
      if (pendLen === 0) buf = chunk.subarray(0, n);
      else {
        if (pend.length < pendLen + n) {
          const grown = new Uint8Array(Math.max(pendLen + n, pend.length * 2));
          grown.set(pend.subarray(0, pendLen));
          pend = grown;
        }
        pend.set(chunk.subarray(0, n), pendLen);
        pendLen += n;
        buf = pend.subarray(0, pendLen);
      }
    }
  }

  /** The message being assembled from fragments, with the opcode of its first frame. */
  private fragments: Uint8Array[] | null = null;
  private fragmentBytes = 0;
  private fragmentOpcode = 0;

  /**
   * Handles every whole frame in `buf`; returns how many bytes it used, or -1
   * once the socket is done (closed, or closing after a protocol error).
   */
  private parseFrames(buf: Uint8Array): number {
    let at = 0;
    for (;;) {
      const f = parseHeader(buf, at);
      if (f === null) return at;
      if (f.length > this.maxFrameBytes) return this.fail(1009, `frame of ${f.length} bytes is too large`);
      if (buf.length - f.payloadAt < f.length) return at;
      const payload = buf.subarray(f.payloadAt, f.payloadAt + f.length);
      at = f.payloadAt + f.length;
      if (f.masked || f.rsv !== 0) return this.fail(1002, "masked or extension frame from the server");
      if (f.opcode >= 0x8) {
        if (!f.fin || f.length > 125) return this.fail(1002, "fragmented or oversized control frame");
        if (f.opcode === 0x8) {
          this.onCloseFrame(payload);
          return -1;
        }
        if (f.opcode === 0x9) {
          if (this.readyState === 1) this.enqueue(maskedFrame(0xa, payload));
        } else if (f.opcode !== 0xa) return this.fail(1002, `unknown opcode ${f.opcode}`);
        continue;
      }
      const continuation = f.opcode === 0x0;
      if (continuation !== (this.fragments !== null) || (!continuation && f.opcode !== 0x1 && f.opcode !== 0x2)) {
        return this.fail(1002, `unexpected opcode ${f.opcode}`);
      }
      if (!continuation) {
        this.fragments = [];
        this.fragmentOpcode = f.opcode;
      }
      const parts = this.fragments!;
      // A copy of its own: `buf` may be the reused read buffer.
      parts.push(payload.slice());
      this.fragmentBytes += f.length;
      if (this.fragmentBytes > this.maxFrameBytes) return this.fail(1009, "message is too large");
      if (!f.fin) continue;
      const data = parts.length === 1 ? parts[0] : concat(parts, this.fragmentBytes);
      const text = this.fragmentOpcode === 0x1;
      this.fragments = null;
      this.fragmentBytes = 0;
      if (this.readyState === 1) this.emit("message", { data: text ? decoder.decode(data) : data });
      if (this.finished) return -1;
    }
  }

  private onCloseFrame(payload: Uint8Array): void {
    const code = payload.length >= 2 ? (payload[0] << 8) | payload[1] : 1005;
    const reason = payload.length > 2 ? decoder.decode(payload.subarray(2)) : "";
    if (!this.closeSent) this.sendClose(code === 1005 ? 1000 : code, "");
    this.readyState = 2;
    // Let the close frame go out before the connection closes, but not for longer than the grace:
    // a server that stopped reading must not keep this socket open.
    this.graceThenFinish(code, reason);
  }

  /** Finishes once the queued frames are written, or when the close grace ends. */
  private graceThenFinish(code: number, reason: string): void {
    this.closeTimer ??= setTimeout(() => this.finish(code, reason), CLOSE_GRACE_MS);
    void this.drained().then(() => this.finish(code, reason));
  }

  private fail(code: number, reason: string): -1 {
    this.emit("error", { message: `WebSocket protocol error: ${reason}` });
    if (!this.closeSent && this.readyState === 1) this.sendClose(code, reason);
    this.readyState = 2;
    this.graceThenFinish(code, reason);
    return -1;
  }

  private sendClose(code: number, reason: string): void {
    this.closeSent = true;
    const r = encoder.encode(reason).subarray(0, 123);
    const p = new Uint8Array(2 + r.length);
    p[0] = code >> 8;
    p[1] = code & 0xff;
    p.set(r, 2);
    this.enqueue(maskedFrame(0x8, p));
  }

  private enqueue(frame: Uint8Array): void {
    if (this.writeError !== null) return;
    this.queue.push(frame);
    this.queued += frame.length;
    if (!this.writing) void this.writeLoop();
  }

  private drainWaiters: (() => void)[] = [];

  private drained(): Promise<void> {
    if (!this.writing) return Promise.resolve();
    return new Promise((resolve) => this.drainWaiters.push(resolve));
  }

  private async writeLoop(): Promise<void> {
    const conn = this.conn;
    if (conn === null) return;
    this.writing = true;
    try {
      // Frames go out in order; the queue is emptied in one step once written (no shift() per frame).
      let head = 0;
      while (head < this.queue.length) {
        const frame = this.queue[head];
        let off = 0;
        while (off < frame.length) off += await conn.write(frame.subarray(off));
        if (this.finished) return; // finish() emptied the queue meanwhile
        this.queue[head++] = EMPTY;
        this.queued -= frame.length;
        if (head === this.queue.length) {
          this.queue.length = 0;
          head = 0;
        }
      }
    } catch (err) {
      if (!this.finished) this.writeFailed(err);
    } finally {
      this.writing = false;
      const waiters = this.drainWaiters;
      this.drainWaiters = [];
      for (const w of waiters) w();
      if (!this.finished && this.writeError === null) this.emit("drain", undefined);
    }
  }

  /** Set once a write failed: frames sent from then on are dropped. */
  private writeError: unknown = null;
  private writeFailTimer: ReturnType<typeof setTimeout> | undefined;

  /**
   * A write failed: the peer reset or closed its end. What it sent before that
   * may still be unread (its close frame, or a last message such as the grid's
   * "drained" notice, which tells which calls never ran there), so the reader
   * gets {@link WRITE_FAIL_GRACE_MS} to deliver it and end the socket; then it fails.
   */
  private writeFailed(err: unknown): void {
    this.writeError = err;
    this.queue.length = 0;
    this.queued = 0;
    this.writeFailTimer = setTimeout(() => {
      if (this.finished) return;
      this.emit("error", { message: err instanceof Error ? err.message : String(err) });
      this.finish(1006, "");
    }, WRITE_FAIL_GRACE_MS);
  }

  /** Closes the connection and fires "close" once. */
  private finish(code: number, reason: string): void {
    if (this.finished) return;
    this.finished = true;
    this.readyState = 3;
    if (this.closeTimer !== undefined) clearTimeout(this.closeTimer);
    if (this.writeFailTimer !== undefined) clearTimeout(this.writeFailTimer);
    closeQuietly(this.conn);
    this.queue.length = 0;
    this.queued = 0;
    this.emit("close", { code, reason });
  }
}

const EMPTY = new Uint8Array(0);

function closeQuietly(conn: DenoConn | null): void {
  try {
    conn?.close();
  } catch {
    // Already closed.
  }
}

interface FrameHeader {
  fin: boolean;
  rsv: number;
  opcode: number;
  masked: boolean;
  length: number;
  payloadAt: number;
}

/** The header of the frame at `at`, or null when `buf` does not hold all of it yet. */
function parseHeader(buf: Uint8Array, at: number): FrameHeader | null {
  if (buf.length - at < 2) return null;
  const b0 = buf[at];
  const b1 = buf[at + 1];
  const masked = (b1 & 0x80) !== 0;
  let length = b1 & 0x7f;
  let o = at + 2;
  if (length === 126) {
    if (buf.length - o < 2) return null;
    length = (buf[o] << 8) | buf[o + 1];
    o += 2;
  } else if (length === 127) {
    if (buf.length - o < 8) return null;
    const high = ((buf[o] << 24) | (buf[o + 1] << 16) | (buf[o + 2] << 8) | buf[o + 3]) >>> 0;
    const low = ((buf[o + 4] << 24) | (buf[o + 5] << 16) | (buf[o + 6] << 8) | buf[o + 7]) >>> 0;
    length = high > 0 ? Number.MAX_SAFE_INTEGER : low;
    o += 8;
  }
  if (masked) o += 4;
  return { fin: (b0 & 0x80) !== 0, rsv: b0 & 0x70, opcode: b0 & 0x0f, masked, length, payloadAt: o };
}

/** A client frame: FIN, `opcode`, a fresh random mask, and `payload` masked into a new buffer. */
function maskedFrame(opcode: number, payload: Uint8Array): Uint8Array {
  const n = payload.length;
  const head = n < 126 ? 2 : n < 65536 ? 4 : 10;
  const out = new Uint8Array(head + 4 + n);
  out[0] = 0x80 | opcode;
  if (n < 126) out[1] = 0x80 | n;
  else if (n < 65536) {
    out[1] = 0x80 | 126;
    out[2] = n >> 8;
    out[3] = n & 0xff;
  } else {
    out[1] = 0x80 | 127;
    // Lengths stay far below 2^32 (MAX_FRAME_BYTES), so the high 4 bytes are 0.
    out[6] = n >>> 24;
    out[7] = (n >>> 16) & 0xff;
    out[8] = (n >>> 8) & 0xff;
    out[9] = n & 0xff;
  }
  const m = head;
  takeMask(out, m);
  const m0 = out[m], m1 = out[m + 1], m2 = out[m + 2], m3 = out[m + 3];
  const p = m + 4;
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    out[p + i] = payload[i] ^ m0;
    out[p + i + 1] = payload[i + 1] ^ m1;
    out[p + i + 2] = payload[i + 2] ^ m2;
    out[p + i + 3] = payload[i + 3] ^ m3;
  }
  for (; i < n; i++) out[p + i] = payload[i] ^ out[m + (i & 3)];
  return out;
}

const maskPool = new Uint8Array(4096);
let maskAt = maskPool.length;

/** Writes 4 random mask bytes at `out[at]`, from a pool refilled by crypto.getRandomValues. */
function takeMask(out: Uint8Array, at: number): void {
  if (maskAt + 4 > maskPool.length) {
    crypto.getRandomValues(maskPool);
    maskAt = 0;
  }
  out[at] = maskPool[maskAt];
  out[at + 1] = maskPool[maskAt + 1];
  out[at + 2] = maskPool[maskAt + 2];
  out[at + 3] = maskPool[maskAt + 3];
  maskAt += 4;
}

function concat(parts: Uint8Array[], total: number): Uint8Array {
  const out = new Uint8Array(total);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/** Sends the upgrade request and checks the 101 answer; returns the bytes read past its head. */
async function handshake(conn: DenoConn, url: URL): Promise<Uint8Array> {
  const nonce = new Uint8Array(16);
  crypto.getRandomValues(nonce);
  const key = btoa(String.fromCharCode(...nonce));
  const request = `GET ${url.pathname}${url.search} HTTP/1.1\r\nHost: ${url.host}\r\nUpgrade: websocket\r\n` +
    `Connection: Upgrade\r\nSec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n\r\n`;
  const bytes = encoder.encode(request);
  let off = 0;
  while (off < bytes.length) off += await conn.write(bytes.subarray(off));
  let head = new Uint8Array(0);
  const chunk = new Uint8Array(4096);
  let end = -1;
  while (end < 0) {
    const n = await conn.read(chunk);
    if (n === null) throw new Error("Cannot open WebSocket: the server closed during the handshake");
    const merged = new Uint8Array(head.length + n);
    merged.set(head);
    merged.set(chunk.subarray(0, n), head.length);
    head = merged;
    end = indexOfHeadEnd(head);
    if (end < 0 && head.length > MAX_HEAD_BYTES) throw new Error("Cannot open WebSocket: response head too large");
  }
  const lines = decoder.decode(head.subarray(0, end)).split("\r\n");
  const status = /^HTTP\/1\.1 (\d{3})/.exec(lines[0]);
  if (status === null || status[1] !== "101") {
    throw new Error(`Cannot open WebSocket: server answered "${lines[0]}"`);
  }
  const headers = new Map<string, string>();
  for (const line of lines.slice(1)) {
    const colon = line.indexOf(":");
    if (colon > 0) headers.set(line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim());
  }
  const digest = await crypto.subtle.digest("SHA-1", encoder.encode(key + GUID));
  const accept = btoa(String.fromCharCode(...new Uint8Array(digest)));
  if (headers.get("upgrade")?.toLowerCase() !== "websocket" || headers.get("sec-websocket-accept") !== accept) {
    throw new Error("Cannot open WebSocket: the server's upgrade answer is not valid");
  }
  if (headers.has("sec-websocket-extensions")) throw new Error("Cannot open WebSocket: the server chose an extension");
  return head.slice(end + 4);
}

function indexOfHeadEnd(b: Uint8Array): number {
  for (let i = 0; i + 3 < b.length; i++) {
    if (b[i] === 13 && b[i + 1] === 10 && b[i + 2] === 13 && b[i + 3] === 10) return i;
  }
  return -1;
}
