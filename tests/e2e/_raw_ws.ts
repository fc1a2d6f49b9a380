/**
 * A bare WebSocket client over `node:net` (Deno, Bun and Node all have it), for
 * the hostile-client suite: it can bind a chosen loopback source address, stop
 * reading (so the server's sends back up), send frames of any size and count
 * the bytes it sent. Frames from the server are parsed only as far as the
 * suite needs (binary messages and the close code).
 *
 * @module
 */
import { connect, type Socket } from "node:net";

/** One raw client connection. */
export class RawWs {
  /** Bytes written to the TCP socket, upgrade request included. */
  bytesSent = 0;
  /** Resolves with the close code: the server's close frame, or 1006 when TCP ended without one. */
  readonly closed: Promise<number>;
  private readonly sock: Socket;
  private buf = new Uint8Array(0);
  private upgraded = false;
  private readonly messages: Uint8Array[] = [];
  private readonly waiters: ((m: Uint8Array | null) => void)[] = [];
  private closeCode: number | null = null;
  private resolveClosed!: (code: number) => void;
  private readonly opened: Promise<boolean>;

  private constructor(url: URL, localAddress: string | undefined) {
    this.closed = new Promise((r) => (this.resolveClosed = r));
    let resolveOpen!: (ok: boolean) => void;
    this.opened = new Promise((r) => (resolveOpen = r));
    this.sock = connect({ host: url.hostname, port: Number(url.port), localAddress });
    this.sock.on("connect", () => {
      const key = btoa(String.fromCharCode(...crypto.getRandomValues(new Uint8Array(16))));
      this.write(new TextEncoder().encode(
        `GET ${url.pathname} HTTP/1.1\r\nHost: ${url.host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
          `Sec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n\r\n`,
      ));
    });
    this.sock.on("data", (chunk: Uint8Array) => {
      const b = new Uint8Array(this.buf.length + chunk.length);
      b.set(this.buf);
      b.set(chunk, this.buf.length);
      this.buf = b;
      if (!this.upgraded) {
        const end = indexOfHeadEnd(this.buf);
        if (end < 0) return;
        const head = new TextDecoder().decode(this.buf.subarray(0, end));
        this.buf = this.buf.subarray(end + 4);
        this.upgraded = / 101 /.test(head.split("\r\n")[0]);
        resolveOpen(this.upgraded);
        if (!this.upgraded) {
          this.sock.destroy();
          return;
        }
      }
      this.parse();
    });
    const end = () => {
      resolveOpen(false);
      this.finish(this.closeCode ?? 1006);
    };
    this.sock.on("close", end);
    this.sock.on("error", end);
  }

  /** Connects and upgrades; rejects when the server does not answer 101. */
  static async open(url: string, opts: { localAddress?: string } = {}): Promise<RawWs> {
    const ws = new RawWs(new URL(url), opts.localAddress);
    if (!(await ws.opened)) throw new Error(`Cannot open ${url}: the upgrade was refused`);
    return ws;
  }

  /** Sends one masked binary frame with `payload`. */
  send(payload: Uint8Array): void {
    const n = payload.length;
    const headLen = n < 126 ? 2 : n < 65_536 ? 4 : 10;
    const f = new Uint8Array(headLen + 4 + n);
    f[0] = 0x82;
    if (n < 126) f[1] = 0x80 | n;
    else if (n < 65_536) {
      f[1] = 0x80 | 126;
      f[2] = n >> 8;
      f[3] = n & 255;
    } else {
      f[1] = 0x80 | 127;
      new DataView(f.buffer).setUint32(6, n);
    }
    const mask = crypto.getRandomValues(new Uint8Array(4));
    f.set(mask, headLen);
    for (let i = 0; i < n; i++) f[headLen + 4 + i] = payload[i] ^ mask[i & 3];
    this.write(f);
  }

  /** Stops reading from the socket: what the server sends piles up in its buffers. */
  pause(): void {
    this.sock.pause();
  }

  /** The next binary message, or null once closed or after `ms`. */
  next(ms = 10_000): Promise<Uint8Array | null> {
    const m = this.messages.shift();
    if (m !== undefined) return Promise.resolve(m);
    if (this.closeCode !== null) return Promise.resolve(null);
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        const i = this.waiters.indexOf(done);
        if (i >= 0) this.waiters.splice(i, 1);
        resolve(null);
      }, ms);
      const done = (v: Uint8Array | null) => {
        clearTimeout(timer);
        resolve(v);
      };
      this.waiters.push(done);
    });
  }

  /** Ends the TCP connection at once. */
  destroy(): void {
    this.sock.destroy();
  }

  private write(b: Uint8Array): void {
    if (this.sock.destroyed) return;
    this.bytesSent += b.length;
    this.sock.write(b);
  }

  private parse(): void {
    for (;;) {
      const b = this.buf;
      if (b.length < 2) return;
      let len = b[1] & 0x7f;
      let at = 2;
      if (len === 126) {
        if (b.length < 4) return;
        len = (b[2] << 8) | b[3];
        at = 4;
      } else if (len === 127) {
        if (b.length < 10) return;
        len = new DataView(b.buffer, b.byteOffset + 6, 4).getUint32(0);
        at = 10;
      }
      if (b.length < at + len) return;
      const op = b[0] & 0x0f;
      const payload = b.slice(at, at + len);
      this.buf = b.subarray(at + len);
      if (op === 0x8) {
        this.closeCode = payload.length >= 2 ? (payload[0] << 8) | payload[1] : 1005;
        this.sock.end();
        this.finish(this.closeCode);
        return;
      }
      if (op === 0x2) {
        const w = this.waiters.shift();
        if (w !== undefined) w(payload);
        else this.messages.push(payload);
      }
    }
  }

  private finish(code: number): void {
    if (this.closeCode === null) this.closeCode = code;
    for (const w of this.waiters.splice(0)) w(null);
    this.resolveClosed(this.closeCode);
  }
}

function indexOfHeadEnd(b: Uint8Array): number {
  for (let i = 0; i + 3 < b.length; i++) {
    if (b[i] === 13 && b[i + 1] === 10 && b[i + 2] === 13 && b[i + 3] === 10) return i;
  }
  return -1;
}
