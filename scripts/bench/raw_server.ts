/**
 * Raw WebSocket echo server, the baseline wsgrid is compared against. Runs
 * under Deno (`Deno.serve` + `upgradeWebSocket`), Bun (`Bun.serve`) and Node
 * (`node:http` + `ws`); each message is echoed back as its own message.
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
import { exitWithParent, numberFlag, parseFlags } from "./_load.ts";

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
  send(data: string | ArrayBufferView | ArrayBuffer): number;
}
interface BunSlice {
  serve(opts: {
    port: number;
    hostname: string;
    fetch(req: Request, srv: { upgrade(req: Request): boolean }): Response | undefined;
    websocket: {
      perMessageDeflate: boolean;
      message(ws: BunSocketSlice, msg: string | Uint8Array): void;
    };
  }): { port: number; stop(force?: boolean): void };
}

/** The slice of the `ws` package used here (it ships no types). */
interface WsSocketSlice {
  on(ev: "message", fn: (data: Uint8Array, isBinary: boolean) => void): void;
  send(data: Uint8Array, opts: { binary: boolean }): void;
  terminate(): void;
}
interface WsModuleSlice {
  WebSocketServer: new (opts: { server: Server; perMessageDeflate: boolean }) => {
    clients: Set<WsSocketSlice>;
    on(ev: "connection", fn: (ws: WsSocketSlice) => void): void;
  };
}

const flags = parseFlags(process.argv.slice(2));
const port = numberFlag(flags, "port", 0);
const hostname = flags.get("hostname") ?? "127.0.0.1";
const maxSeconds = numberFlag(flags, "max-seconds", 600);
const g = globalThis as unknown as { Deno?: DenoSlice; Bun?: BunSlice };

function ready(p: number): void {
  process.stdout.write(`READY ${p}\n`);
}

if (g.Deno) {
  const Deno = g.Deno;
  const server = Deno.serve({ port, hostname, onListen: (a) => ready(a.port) }, (req) => {
    if (req.headers.get("upgrade") !== "websocket") return new Response("echo", { status: 426 });
    const { socket, response } = Deno.upgradeWebSocket(req);
    socket.binaryType = "arraybuffer";
    socket.onmessage = (e) => socket.send(e.data);
    return response;
  });
  exitWithParent(() => server.shutdown(), maxSeconds);
} else if (g.Bun) {
  const server = g.Bun.serve({
    port,
    hostname,
    fetch(req, srv) {
      if (srv.upgrade(req)) return undefined;
      return new Response("echo", { status: 426 });
    },
    websocket: {
      perMessageDeflate: false,
      message(ws, msg) {
        ws.send(msg);
      },
    },
  });
  ready(server.port);
  exitWithParent(() => server.stop(true), maxSeconds);
} else {
  const { createServer } = await import("node:http");
  const { WebSocketServer } = (await import("ws")) as unknown as WsModuleSlice;
  const server = createServer((_req, res) => res.writeHead(426).end("echo"));
  const wss = new WebSocketServer({ server, perMessageDeflate: false });
  wss.on("connection", (ws) => {
    ws.on("message", (data, isBinary) => ws.send(data, { binary: isBinary }));
  });
  server.listen(port, hostname, () => {
    const addr = server.address();
    ready(typeof addr === "object" && addr ? addr.port : port);
  });
  exitWithParent(() => {
    for (const c of wss.clients) c.terminate();
    server.close();
  }, maxSeconds);
}
