/**
 * Raw WebSocket echo server, the baseline wsgrid is compared against. Runs
 * under Deno (`Deno.serve` + `upgradeWebSocket`), Bun (`Bun.serve`) and Node
 * (`node:http` + `ws`); each message is echoed back as its own message.
 * With `--mode source` it instead sends `--msg-size`-byte messages (default
 * 16 KiB) to each client as fast as the socket's buffered amount allows (below
 * 1 MiB, polled every 2 ms when above: the same rule as wsgrid's writer), and
 * on exit prints one JSON line `{ rssPeakMB }`; a socket opened on the path
 * `/echo` echoes instead, so a client can time requests on a second socket
 * while the first one streams (the raw baseline of the `loaded` suite).
 * Listens on 127.0.0.1, prints `READY <port>` on stdout, and exits when stdin
 * closes (the harness went away) or after `--max-seconds` (default 600).
 *
 * ```sh
 * node scripts/bench/raw_server.ts --port 0
 * ```
 *
 * @module
 */

import type { Server } from "node:http";
import process from "node:process";
import { exitWithParent, makePayload, MemorySampler, numberFlag, parseFlags } from "./_load.ts";

/** The slice of Deno's API used here (declared locally so the file type-checks anywhere). */
interface DenoSlice {
  serve(
    opts: { port: number; hostname: string; onListen(addr: { port: number }): void },
    handler: (req: Request) => Response,
  ): { shutdown(): Promise<void> };
  upgradeWebSocket(req: Request): { socket: WebSocket; response: Response };
}

/** The slice of Bun's API used here. */
interface BunSocketSlice {
  data: { echo: boolean };
  send(data: string | ArrayBufferView | ArrayBuffer): number;
  getBufferedAmount(): number;
  readyState: number;
}
interface BunSlice {
  serve(opts: {
    port: number;
    hostname: string;
    fetch(req: Request, srv: { upgrade(req: Request, opts: { data: { echo: boolean } }): boolean }): Response | undefined;
    websocket: {
      perMessageDeflate: boolean;
      message(ws: BunSocketSlice, msg: string | Uint8Array): void;
      open?(ws: BunSocketSlice): void;
    };
  }): { port: number; stop(force?: boolean): void };
}

/** The slice of the `ws` package used here (it ships no types). */
interface WsSocketSlice {
  readonly bufferedAmount: number;
  readonly readyState: number;
  on(ev: "message", fn: (data: Uint8Array, isBinary: boolean) => void): void;
  send(data: Uint8Array, opts: { binary: boolean }): void;
  terminate(): void;
}
interface WsModuleSlice {
  WebSocketServer: new (opts: { server: Server; perMessageDeflate: boolean }) => {
    clients: Set<WsSocketSlice>;
    on(ev: "connection", fn: (ws: WsSocketSlice, req: { url?: string }) => void): void;
  };
}

const flags = parseFlags(process.argv.slice(2));
const port = numberFlag(flags, "port", 0);
const hostname = flags.get("hostname") ?? "127.0.0.1";
const maxSeconds = numberFlag(flags, "max-seconds", 600);
const g = globalThis as unknown as { Deno?: DenoSlice; Bun?: BunSlice };
const mode = flags.get("mode") ?? "echo";
if (mode !== "echo" && mode !== "source") throw new TypeError(`Cannot start: --mode must be echo or source, got "${mode}"`);
const chunk = makePayload(numberFlag(flags, "msg-size", 16 << 10), 0);
const HIGH_WATER = 1 << 20;
/** In source mode, sockets opened on this path echo instead. */
const ECHO_PATH = "/echo";
const mem = mode === "source" ? new MemorySampler() : undefined;

/**
 * Sends `chunk` while the socket buffers less than HIGH_WATER; above it, looks
 * again after each of up to 4 turns of the event loop, then every 2 ms, until
 * it sent again: the same rule as wsgrid's writer (src/link.ts, FAST_POLLS).
 */
function pump(send: () => void, buffered: () => number, open: () => boolean): void {
  let polls = 0;
  const step = (): void => {
    if (!open()) return;
    try {
      if (buffered() < HIGH_WATER) polls = 0;
      while (buffered() < HIGH_WATER) send();
    } catch {
      return;
    }
    if (polls++ < 4) setImmediate(step);
    else setTimeout(step, 2);
  };
  step();
}

function exitStats(): void {
  mem?.stop();
  if (mem) process.stdout.write(JSON.stringify({ rssPeakMB: mem.peakMB() }) + "\n");
}

function ready(p: number): void {
  process.stdout.write(`READY ${p}\n`);
}

if (g.Deno) {
  const Deno = g.Deno;
  const server = Deno.serve({ port, hostname, onListen: (a) => ready(a.port) }, (req) => {
    if (req.headers.get("upgrade") !== "websocket") return new Response("echo", { status: 426 });
    const { socket, response } = Deno.upgradeWebSocket(req);
    socket.binaryType = "arraybuffer";
    if (mode === "source" && new URL(req.url).pathname !== ECHO_PATH) {
      socket.onopen = () => pump(() => socket.send(chunk), () => socket.bufferedAmount, () => socket.readyState === 1);
    } else socket.onmessage = (e) => socket.send(e.data);
    return response;
  });
  exitWithParent(async () => {
    exitStats();
    await server.shutdown();
  }, maxSeconds);
} else if (g.Bun) {
  const server = g.Bun.serve({
    port,
    hostname,
    fetch(req, srv) {
      if (srv.upgrade(req, { data: { echo: mode === "echo" || new URL(req.url).pathname === ECHO_PATH } })) return undefined;
      return new Response("echo", { status: 426 });
    },
    websocket: {
      perMessageDeflate: false,
      open(ws) {
        if (!ws.data.echo) pump(() => void ws.send(chunk), () => ws.getBufferedAmount(), () => ws.readyState === 1);
      },
      message(ws, msg) {
        if (ws.data.echo) ws.send(msg);
      },
    },
  });
  ready(server.port);
  exitWithParent(() => {
    exitStats();
    server.stop(true);
  }, maxSeconds);
} else {
  const { createServer } = await import("node:http");
  const { WebSocketServer } = (await import("ws")) as unknown as WsModuleSlice;
  const server = createServer((_req, res) => res.writeHead(426).end("echo"));
  const wss = new WebSocketServer({ server, perMessageDeflate: false });
  wss.on("connection", (ws, req) => {
    if (mode === "source" && req.url !== ECHO_PATH) {
      pump(() => ws.send(chunk, { binary: true }), () => ws.bufferedAmount, () => ws.readyState === 1);
    } else ws.on("message", (data, isBinary) => ws.send(data, { binary: isBinary }));
  });
  server.listen(port, hostname, () => {
    const addr = server.address();
    ready(typeof addr === "object" && addr ? addr.port : port);
  });
  exitWithParent(() => {
    exitStats();
    for (const c of wss.clients) c.terminate();
    server.close();
  }, maxSeconds);
}
