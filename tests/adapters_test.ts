import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { AcceptInfo, GridSocket, SocketAcceptor, SocketCloseEvent } from "../src/socket.ts";
import { detectRuntime, serve } from "../src/adapters/serve.ts";
import { withTimeout } from "./_wait.ts";

const runtime = detectRuntime();
const PATH = "/grid/v1";
const HOST = "127.0.0.1";

function onlyOn(r: typeof runtime): { skip: string | false } {
  return { skip: runtime === r ? false : `runs only on ${r} (this is ${runtime})` };
}

/** What the echo acceptor saw of one accepted socket. */
interface Accepted {
  socket: GridSocket;
  info: AcceptInfo | undefined;
  readyStateAtAccept: number;
  /** Messages that were neither an ArrayBuffer nor a Uint8Array view (text, Blob). */
  nonBinaryMessages: number;
  closed: Promise<SocketCloseEvent>;
}

/** A SocketAcceptor that echoes every binary message back on the socket it came from. */
class EchoAcceptor implements SocketAcceptor {
  readonly path = PATH;
  readonly maxFrameBytes: number;
  readonly accepted: Accepted[] = [];

  constructor(maxFrameBytes = 1 << 20) {
    this.maxFrameBytes = maxFrameBytes;
  }

  acceptSocket(socket: GridSocket, info?: AcceptInfo): void {
    const closed = new Promise<SocketCloseEvent>((resolve) => socket.addEventListener("close", resolve));
    const entry: Accepted = {
      socket,
      info,
      readyStateAtAccept: socket.readyState,
      nonBinaryMessages: 0,
      closed,
    };
    socket.addEventListener("message", (ev) => {
      // ArrayBuffer, or a Uint8Array view where the socket keeps ws's "nodebuffer" (Node).
      const data = ev.data;
      if (data instanceof ArrayBuffer) socket.send(new Uint8Array(data));
      else if (data instanceof Uint8Array) socket.send(new Uint8Array(data));
      else entry.nonBinaryMessages++;
    });
    socket.addEventListener("error", () => {});
    this.accepted.push(entry);
  }
}

/** A client socket with its incoming messages queued and its close event captured. */
interface TestClient {
  ws: WebSocket;
  next(): Promise<ArrayBuffer>;
  closed: Promise<{ code: number; reason: string }>;
}

function connect(url: string): Promise<TestClient> {
  const ws = new WebSocket(url);
  ws.binaryType = "arraybuffer";
  const queue: ArrayBuffer[] = [];
  const waiters: ((data: ArrayBuffer) => void)[] = [];
  ws.addEventListener("message", (ev) => {
    const data = ev.data as ArrayBuffer;
    const waiter = waiters.shift();
    if (waiter) waiter(data);
    else queue.push(data);
  });
  const closed = new Promise<{ code: number; reason: string }>((resolve) =>
    ws.addEventListener("close", (ev) => resolve({ code: ev.code, reason: ev.reason }))
  );
  const next = () => {
    const data = queue.shift();
    if (data) return Promise.resolve(data);
    return withTimeout(new Promise<ArrayBuffer>((resolve) => waiters.push(resolve)), "echo");
  };
  const opened = new Promise<TestClient>((resolve, reject) => {
    ws.addEventListener("open", () => resolve({ ws, next, closed }), { once: true });
    ws.addEventListener("error", () => reject(new Error(`Cannot connect to ${url}`)), { once: true });
  });
  return withTimeout(opened, `connect ${url}`);
}

/** Resolves with the close code when the connection fails or is closed, rejects if it opens. */
async function refused(url: string): Promise<number> {
  const ws = new WebSocket(url);
  const outcome = new Promise<number>((resolve, reject) => {
    ws.addEventListener("open", () => {
      ws.close();
      reject(new Error(`Expected ${url} to be refused, but it opened`));
    });
    ws.addEventListener("close", (ev) => resolve(ev.code));
  });
  return await withTimeout(outcome, `refusal of ${url}`);
}

async function echoOnce(client: TestClient, bytes: number[]): Promise<void> {
  client.ws.send(new Uint8Array(bytes));
  assert.deepEqual([...new Uint8Array(await client.next())], bytes);
}

async function closeClient(client: TestClient): Promise<void> {
  client.ws.close(1000, "done");
  await withTimeout(client.closed, "client close");
}

async function get(url: string): Promise<{ status: number; body: string }> {
  const res = await withTimeout(fetch(url), `GET ${url}`);
  return { status: res.status, body: await res.text() };
}

describe(`server adapters on ${runtime}`, () => {
  it("serve() echoes binary messages on the grid path and hands over open sockets", async () => {
    const grid = new EchoAcceptor();
    const server = await serve(grid, { port: 0, hostname: HOST });
    try {
      assert.ok(server.port > 0, `bound port ${server.port}`);
      const client = await connect(`ws://${HOST}:${server.port}${PATH}`);
      await echoOnce(client, [1, 2, 3]);
      await echoOnce(client, Array.from({ length: 70_000 }, (_, i) => i % 251));
      assert.equal(grid.accepted.length, 1);
      const [accepted] = grid.accepted;
      assert.equal(accepted.readyStateAtAccept, 1);
      assert.equal(accepted.nonBinaryMessages, 0);
      assert.ok(accepted.socket.bufferedAmount >= 0, `bufferedAmount ${accepted.socket.bufferedAmount}`);
      assert.match(accepted.info?.remoteAddress ?? "", /127\.0\.0\.1/);
      await closeClient(client);
      const ev = await withTimeout(accepted.closed, "grid socket close");
      assert.equal(ev.code, 1000);
    } finally {
      await server.close();
    }
  });

  it("serve() answers 404 outside the grid path and 426 to a plain request on it", async () => {
    const grid = new EchoAcceptor();
    const server = await serve(grid, { port: 0, hostname: HOST });
    try {
      assert.equal((await get(`http://${HOST}:${server.port}/other`)).status, 404);
      assert.equal((await get(`http://${HOST}:${server.port}${PATH}`)).status, 426);
      await refused(`ws://${HOST}:${server.port}/grid/v2`);
      assert.equal(grid.accepted.length, 0);
    } finally {
      await server.close();
    }
  });

  it("close() closes the accepted sockets and stops listening", async () => {
    const grid = new EchoAcceptor();
    const server = await serve(grid, { port: 0, hostname: HOST });
    const client = await connect(`ws://${HOST}:${server.port}${PATH}`);
    await echoOnce(client, [4, 5]);
    await server.close();
    const ev = await withTimeout(client.closed, "client close after server close");
    assert.equal(ev.code, 1001);
    await withTimeout(grid.accepted[0].closed, "grid socket close after server close");
    await assert.rejects(fetch(`http://${HOST}:${server.port}/other`));
    await server.close(); // a second close is harmless
  });

  it("aborting the signal closes the server", async () => {
    const grid = new EchoAcceptor();
    const abort = new AbortController();
    const server = await serve(grid, { port: 0, hostname: HOST, signal: abort.signal });
    const client = await connect(`ws://${HOST}:${server.port}${PATH}`);
    abort.abort();
    await withTimeout(client.closed, "client close after abort");
    await server.close();
    await assert.rejects(fetch(`http://${HOST}:${server.port}/other`));
  });

  it("serve() rejects with EADDRINUSE when the port is taken", async () => {
    const first = await serve(new EchoAcceptor(), { port: 0, hostname: HOST });
    try {
      await assert.rejects(
        serve(new EchoAcceptor(), { port: first.port, hostname: HOST }),
        (err: Error & { code?: string }) => err.code === "EADDRINUSE",
      );
    } finally {
      await first.close();
    }
  });

  it("serve() rejects when the signal is already aborted", async () => {
    await assert.rejects(serve(new EchoAcceptor(), { port: 0, hostname: HOST, signal: AbortSignal.abort() }));
  });

  it(
    "a message over maxFrameBytes closes the socket with 1009",
    { skip: runtime === "deno" ? "Deno.upgradeWebSocket has no payload limit; the Manager enforces it" : false },
    async () => {
      const grid = new EchoAcceptor(1024);
      const server = await serve(grid, { port: 0, hostname: HOST });
      try {
        const client = await connect(`ws://${HOST}:${server.port}${PATH}`);
        await echoOnce(client, new Array(1024).fill(7));
        client.ws.send(new Uint8Array(1025));
        const ev = await withTimeout(client.closed, "close after oversized message");
        assert.equal(ev.code, 1009);
      } finally {
        await server.close();
      }
    },
  );

  it("serves wss:// with a PEM certificate and key", async (t) => {
    let dir: string;
    try {
      dir = mkdtempSync(join(tmpdir(), "wsgrid-tls-"));
      execFileSync("openssl", [
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
        "-keyout", join(dir, "key.pem"), "-out", join(dir, "cert.pem"),
        "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
      ], { stdio: "ignore" });
    } catch {
      t.skip("openssl is not available to make a self-signed certificate");
      return;
    }
    try {
      const cert = readFileSync(join(dir, "cert.pem"), "utf8");
      const key = readFileSync(join(dir, "key.pem"), "utf8");
      const grid = new EchoAcceptor();
      const server = await serve(grid, { port: 0, hostname: HOST, tls: { cert, key } });
      try {
        // The global WebSocket cannot be told to trust a CA; the ws client can, on all three runtimes.
        const { WebSocket: WsClient } = (await import("ws")) as unknown as { WebSocket: WsClientConstructor };
        const ws = new WsClient(`wss://${HOST}:${server.port}${PATH}`, { ca: cert });
        ws.binaryType = "arraybuffer";
        const echoed = new Promise<ArrayBuffer>((resolve, reject) => {
          ws.addEventListener("open", () => ws.send(new Uint8Array([9, 8, 7])));
          ws.addEventListener("message", (ev) => resolve(ev.data as ArrayBuffer));
          ws.addEventListener("error", (ev) => reject(new Error(`Cannot connect over TLS: ${ev.message}`)));
        });
        assert.deepEqual([...new Uint8Array(await withTimeout(echoed, "wss echo"))], [9, 8, 7]);
        const closed = new Promise<void>((resolve) => ws.addEventListener("close", () => resolve()));
        ws.close();
        await withTimeout(closed, "wss client close");
        assert.match(grid.accepted[0].info?.remoteAddress ?? "", /127\.0\.0\.1/);
      } finally {
        await server.close();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

/** The slice of the `ws` client used by the TLS test. */
type WsClientConstructor = new (url: string, opts: { ca: string }) => {
  binaryType: string;
  send(data: Uint8Array): void;
  close(): void;
  addEventListener(type: "open" | "close", listener: () => void): void;
  addEventListener(type: "message", listener: (ev: { data: unknown }) => void): void;
  addEventListener(type: "error", listener: (ev: { message: string }) => void): void;
};

describe("embedding the grid endpoint next to an app", () => {
  it("denoHandler() upgrades the grid path and returns undefined elsewhere", onlyOn("deno"), async () => {
    const { denoHandler } = await import("../src/adapters/deno.ts");
    const grid = new EchoAcceptor();
    const handler = denoHandler(grid);
    let appCalls = 0;
    const app = () => {
      appCalls++;
      return new Response("app");
    };
    const server = Deno.serve({ port: 0, hostname: HOST, onListen() {} }, (req, info) => handler(req, info) ?? app());
    try {
      const base = `${HOST}:${server.addr.port}`;
      assert.deepEqual(await get(`http://${base}/other`), { status: 200, body: "app" });
      assert.equal((await get(`http://${base}${PATH}`)).status, 426);
      appCalls = 0;
      const client = await connect(`ws://${base}${PATH}`);
      await echoOnce(client, [1, 2]);
      assert.equal(appCalls, 0);
      assert.match(grid.accepted[0].info?.remoteAddress ?? "", /127\.0\.0\.1/);
      await closeClient(client);
    } finally {
      await server.shutdown();
    }
  });

  it("bunHandlers() upgrades the grid path without calling the app", onlyOn("bun"), async () => {
    const { bunHandlers } = await import("../src/adapters/bun.ts");
    type Handlers = ReturnType<typeof bunHandlers>;
    const bun = (globalThis as unknown as {
      Bun: {
        serve(init: {
          port: number;
          hostname: string;
          fetch: Handlers["fetch"];
          websocket: Handlers["websocket"];
        }): { port: number; stop(force?: boolean): Promise<void> };
      };
    }).Bun;
    const grid = new EchoAcceptor();
    const h = bunHandlers(grid);
    let appCalls = 0;
    const app = () => {
      appCalls++;
      return new Response("app");
    };
    const server = bun.serve({
      port: 0,
      hostname: HOST,
      fetch: (req, srv) => h.fetch(req, srv) ?? app(),
      websocket: h.websocket,
    });
    try {
      const base = `${HOST}:${server.port}`;
      assert.deepEqual(await get(`http://${base}/other`), { status: 200, body: "app" });
      assert.equal((await get(`http://${base}${PATH}`)).status, 426);
      appCalls = 0;
      const client = await connect(`ws://${base}${PATH}`);
      await echoOnce(client, [3, 4]);
      assert.equal(appCalls, 0);
      assert.match(grid.accepted[0].info?.remoteAddress ?? "", /127\.0\.0\.1/);
      await closeClient(client);
    } finally {
      await server.stop(true);
    }
  });

  it("attachNode() upgrades the grid path and leaves other paths to the app", onlyOn("node"), async () => {
    const { attachNode } = await import("../src/adapters/node.ts");
    const { createServer } = await import("node:http");
    const grid = new EchoAcceptor();
    const httpServer = createServer((_req, res) => res.end("app"));
    const attached = attachNode(grid, httpServer);
    await new Promise<void>((resolve) => httpServer.listen(0, HOST, resolve));
    try {
      const base = `${HOST}:${attached.port}`;
      assert.deepEqual(await get(`http://${base}/other`), { status: 200, body: "app" });
      const client = await connect(`ws://${base}${PATH}`);
      await echoOnce(client, [5, 6]);
      assert.match(grid.accepted[0].info?.remoteAddress ?? "", /127\.0\.0\.1/);

      // With no other upgrade listener, an upgrade elsewhere is refused rather than left hanging.
      await refused(`ws://${base}/other`);
      // With one, the adapter leaves the upgrade to it.
      const seen: string[] = [];
      httpServer.on("upgrade", (req, socket) => {
        seen.push(req.url ?? "");
        socket.end("HTTP/1.1 403 Forbidden\r\nConnection: close\r\nContent-Length: 0\r\n\r\n");
      });
      await refused(`ws://${base}/other`);
      assert.deepEqual(seen, ["/other"]);

      // close() detaches the grid and closes its sockets; the app's server stays up.
      await attached.close();
      const ev = await withTimeout(client.closed, "client close after detach");
      assert.equal(ev.code, 1001);
      assert.deepEqual(await get(`http://${base}/other`), { status: 200, body: "app" });
    } finally {
      await new Promise<void>((resolve) => {
        httpServer.close(() => resolve());
        httpServer.closeAllConnections();
      });
    }
  });
});

/**
 * A TCP server that answers one WebSocket upgrade correctly and then writes `after` (raw
 * frame bytes) and, with `end`, closes the connection: a misbehaving WebSocket server.
 */
async function rawWsServer(after: Uint8Array, end: boolean): Promise<{ port: number; close(): Promise<void> }> {
  const { createServer } = await import("node:net");
  const { createHash } = await import("node:crypto");
  const sockets = new Set<import("node:net").Socket>();
  const server = createServer((sock) => {
    sockets.add(sock);
    sock.on("error", () => {});
    let head = "";
    sock.on("data", (d) => {
      if (head.includes("\r\n\r\n")) return;
      head += d.toString("latin1");
      if (!head.includes("\r\n\r\n")) return;
      const key = /sec-websocket-key: *(.+)\r\n/i.exec(head)?.[1].trim() ?? "";
      const accept = createHash("sha1").update(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest("base64");
      sock.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n\r\n`);
      sock.write(after);
      if (end) sock.end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, HOST, resolve));
  const addr = server.address();
  return {
    port: typeof addr === "object" && addr ? addr.port : 0,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

describe("Deno's dialer against a misbehaving server", () => {
  const cases: { name: string; bytes: number[]; end: boolean; code: number; messages: number }[] = [
    { name: "a masked frame", bytes: [0x82, 0x81, 1, 2, 3, 4, 9], end: false, code: 1002, messages: 0 },
    { name: "reserved bits set", bytes: [0xc2, 0x01, 9], end: false, code: 1002, messages: 0 },
    { name: "an unknown opcode", bytes: [0x83, 0x01, 9], end: false, code: 1002, messages: 0 },
    { name: "a fragmented control frame", bytes: [0x09, 0x01, 9], end: false, code: 1002, messages: 0 },
    { name: "a continuation with nothing to continue", bytes: [0x80, 0x01, 9], end: false, code: 1002, messages: 0 },
    { name: "a frame longer than 100 MiB", bytes: [0x82, 0x7f, 0, 0, 0, 0, 0x10, 0, 0, 0], end: false, code: 1009, messages: 0 },
    { name: "an end of connection inside a frame", bytes: [0x82, 0x7e, 0x10, 0x00, 1, 2, 3], end: true, code: 1006, messages: 0 },
    { name: "a message split over fragments, then a close frame", bytes: [0x02, 0x01, 7, 0x80, 0x02, 8, 9, 0x88, 0x02, 0x0f, 0xa0], end: false, code: 4000, messages: 1 },
  ];
  for (const c of cases) {
    it(`closes on ${c.name} without hanging`, onlyOn("deno"), async () => {
      const { DenoClientSocket } = await import("../src/adapters/_deno_dial.ts");
      const server = await rawWsServer(new Uint8Array(c.bytes), c.end);
      try {
        const ws = new DenoClientSocket(`ws://${HOST}:${server.port}${PATH}`);
        const got: Uint8Array[] = [];
        ws.addEventListener("message", (ev) => got.push(ev.data as Uint8Array));
        ws.addEventListener("error", () => {});
        const closed = await withTimeout(
          new Promise<SocketCloseEvent>((resolve) => ws.addEventListener("close", resolve)),
          `close after ${c.name}`,
        );
        assert.equal(closed.code, c.code);
        assert.equal(ws.readyState, 3);
        assert.equal(got.length, c.messages);
        if (c.messages === 1) assert.deepEqual([...got[0]], [7, 8, 9]);
      } finally {
        await server.close();
      }
    });
  }
});

describe("Deno's dialer against a server that refuses the upgrade", () => {
  it("fires error and close 1006 when the answer is not 101", onlyOn("deno"), async () => {
    const { createServer } = await import("node:net");
    const server = createServer((sock) => {
      sock.on("error", () => {});
      sock.once("data", () => sock.end("HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"));
    });
    await new Promise<void>((resolve) => server.listen(0, HOST, resolve));
    const addr = server.address();
    const port = typeof addr === "object" && addr ? addr.port : 0;
    try {
      const { DenoClientSocket } = await import("../src/adapters/_deno_dial.ts");
      const ws = new DenoClientSocket(`ws://${HOST}:${port}${PATH}`);
      let error = "";
      ws.addEventListener("error", (ev) => error = (ev as { message: string }).message);
      const closed = await withTimeout(
        new Promise<SocketCloseEvent>((resolve) => ws.addEventListener("close", resolve)),
        "close after a refused upgrade",
      );
      assert.equal(closed.code, 1006);
      assert.match(error, /404/);
    } finally {
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });
});
