/**
 * The fault-injecting TCP proxy of the reliability suites (tests/e2e/_fault_proxy.ts): each
 * mode, on open and on new connections, against a loopback echo server.
 */
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { connect, createServer, type Server, type Socket } from "node:net";
import { FaultProxy } from "./e2e/_fault_proxy.ts";

const WAIT = 5_000;
const enc = new TextEncoder();
const dec = new TextDecoder();

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

async function until(cond: () => boolean, what: string, ms = WAIT): Promise<void> {
  const end = performance.now() + ms;
  while (!cond()) {
    if (performance.now() > end) throw new Error(`Timed out after ${ms} ms waiting for ${what}`);
    await sleep(5);
  }
}

/** A client socket that records what happens to it. */
interface Probe {
  socket: Socket;
  received: string;
  ended: boolean;
  closed: boolean;
  error: string | null;
}

function open(port: number): Promise<Probe> {
  return new Promise((resolve, reject) => {
    const socket = connect({ port, host: "127.0.0.1", allowHalfOpen: true });
    const p: Probe = { socket, received: "", ended: false, closed: false, error: null };
    socket.on("data", (c: Uint8Array) => p.received += dec.decode(c));
    socket.on("end", () => p.ended = true);
    socket.on("close", () => p.closed = true);
    socket.on("error", (e: Error & { code?: string }) => {
      p.error = e.code ?? e.message;
      reject(e);
    });
    socket.once("connect", () => resolve(p));
  });
}

describe("FaultProxy", () => {
  let echo: Server;
  let echoPort = 0;
  /** Server-side sockets of the echo server, with what each saw. */
  const served: { socket: Socket; bytes: number; ended: boolean; error: string | null }[] = [];
  const proxies: FaultProxy[] = [];
  const clients: Socket[] = [];

  async function proxy(): Promise<FaultProxy> {
    const p = await FaultProxy.start({ targetPort: echoPort });
    proxies.push(p);
    return p;
  }

  async function client(port: number): Promise<Probe> {
    const p = await open(port);
    clients.push(p.socket);
    return p;
  }

  before(async () => {
    // allowHalfOpen: the echo server keeps writing after the client's FIN, so a FIN can be seen
    // passing through the proxy on its own.
    echo = createServer({ allowHalfOpen: true }, (s) => {
      const rec = { socket: s, bytes: 0, ended: false, error: null as string | null };
      served.push(rec);
      s.on("data", (c: Uint8Array) => {
        rec.bytes += c.length;
        s.write(c);
      });
      s.on("end", () => {
        rec.ended = true;
        s.end();
      });
      s.on("error", (e: Error & { code?: string }) => rec.error = e.code ?? e.message);
    });
    await new Promise<void>((resolve) => echo.listen(0, "127.0.0.1", () => resolve()));
    const addr = echo.address();
    if (addr === null || typeof addr === "string") throw new Error("no address");
    echoPort = addr.port;
  });

  after(async () => {
    for (const c of clients) c.destroy();
    await Promise.all(proxies.map((p) => p.close()));
    for (const s of served) s.socket.destroy();
    await new Promise<void>((resolve) => echo.close(() => resolve()));
  });

  it("refuses a target that is not a loopback host", async () => {
    await assert.rejects(FaultProxy.start({ targetPort: 80, targetHost: "10.0.0.1" }), RangeError);
    await assert.rejects(FaultProxy.start({ targetPort: 0 }), RangeError);
  });

  it("passes bytes both ways, and a FIN from the client reaches the server and back", async () => {
    const p = await proxy();
    assert.equal(p.url("/grid/v1"), `ws://127.0.0.1:${p.port}/grid/v1`);
    const c = await client(p.port);
    c.socket.write(enc.encode("hello"));
    await until(() => c.received === "hello", "echo through the proxy");
    c.socket.end();
    await until(() => c.ended, "the echo server's FIN");
    await until(() => c.closed, "the client socket to close");
    await until(() => p.stats().active === 0, "the proxy to forget the connection");
    const st = p.stats();
    assert.equal(st.accepted, 1);
    assert.equal(st.bytesForwarded, 10);
    assert.equal(st.bytesDropped, 0);
  });

  it("delays every chunk by the set time, in order", async () => {
    const p = await proxy();
    const c = await client(p.port);
    p.set("delay", 150);
    assert.equal(p.mode, "delay");
    assert.equal(p.delayMs, 150);
    const started = performance.now();
    for (let i = 0; i < 10; i++) c.socket.write(enc.encode(String(i)));
    await until(() => c.received.length === 10, "delayed echo");
    // Two legs of 150 ms each; only a lower bound is checked (timers may fire late, never early).
    assert.ok(performance.now() - started >= 290, `echo came back after ${performance.now() - started} ms`);
    assert.equal(c.received, "0123456789");
    p.set("pass");
    c.socket.write(enc.encode("x"));
    await until(() => c.received.endsWith("x"), "echo after switching back to pass");
  });

  it("blackholes open and new connections: sockets stay open, bytes are dropped both ways", async () => {
    const p = await proxy();
    const c = await client(p.port);
    c.socket.write(enc.encode("a"));
    await until(() => c.received === "a", "echo before the blackhole");
    const srv = served[served.length - 1];
    p.set("blackhole");
    c.socket.write(enc.encode("lost"));
    srv.socket.write(enc.encode("lost too"));
    const fresh = await client(p.port);
    fresh.socket.write(enc.encode("never"));
    await sleep(300);
    assert.equal(c.received, "a", "no byte reached the client");
    assert.equal(srv.bytes, 1, "no byte reached the server");
    assert.equal(fresh.received, "");
    assert.equal(c.closed || fresh.closed, false, "the sockets stay open");
    let st = p.stats();
    assert.equal(st.active, 2);
    assert.equal(st.live, 0);
    assert.equal(st.blackholed, 2);
    assert.equal(st.bytesDropped, "lost".length + "lost too".length + "never".length);
    // A connection that lost bytes stays broken after the blackhole ends; new ones work.
    p.set("pass");
    c.socket.write(enc.encode("b"));
    const healed = await client(p.port);
    healed.socket.write(enc.encode("ok"));
    await until(() => healed.received === "ok", "echo on a new connection after the blackhole");
    assert.equal(c.received, "a");
    st = p.stats();
    assert.equal(st.live, 1);
  });

  it("resets open connections and new ones with a TCP RST", async () => {
    const p = await proxy();
    const c = await client(p.port);
    c.socket.write(enc.encode("a"));
    await until(() => c.received === "a", "echo before the reset");
    const srv = served[served.length - 1];
    p.set("reset");
    await until(() => c.closed, "the client socket to close");
    assert.equal(c.error, "ECONNRESET");
    await until(() => srv.socket.destroyed, "the server socket to close");
    const fresh = open(p.port).then((probe) => {
      clients.push(probe.socket);
      return until(() => probe.closed, "the new socket to close").then(() => probe.error);
    });
    const err = await fresh.catch((e: Error & { code?: string }) => e.code ?? e.message);
    assert.equal(err, "ECONNRESET");
    await until(() => p.stats().active === 0, "no connection left");
    assert.equal(p.stats().resets, 2);
  });

  it("half-closes open connections and new ones: each peer gets a FIN and may still write", async () => {
    const p = await proxy();
    const c = await client(p.port);
    c.socket.write(enc.encode("a"));
    await until(() => c.received === "a", "echo before the half-close");
    const srv = served[served.length - 1];
    p.set("half-close");
    await until(() => c.ended, "the client to get a FIN");
    await until(() => srv.ended, "the server to get a FIN");
    assert.equal(c.error, null);
    assert.equal(c.socket.writable, true, "the client's write side stays open");
    c.socket.write(enc.encode("dropped"));
    const fresh = await client(p.port);
    await until(() => fresh.ended, "a new connection to get a FIN");
    assert.equal(fresh.socket.writable, true);
    await until(() => p.stats().bytesDropped >= "dropped".length, "the late write to be dropped");
    assert.equal(p.stats().halfClosed, 2);
    c.socket.end();
    fresh.socket.end();
    await until(() => p.stats().active === 0, "the half-closed connections to finish");
  });

  it("close() destroys open connections and frees the port", async () => {
    const p = await FaultProxy.start({ targetPort: echoPort });
    const c = await client(p.port);
    await until(() => p.stats().active === 1, "the proxy to accept the connection");
    await p.close();
    await until(() => c.ended || c.closed, "the client socket to get a FIN");
    await assert.rejects(open(p.port));
  });
});
