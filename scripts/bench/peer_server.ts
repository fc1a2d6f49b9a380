/**
 * Server side of the peer-library baselines (Node only): the same 64-byte echo
 * as wsgrid's, served over WebSocket by `--lib capnweb` (a WebSocket RPC
 * session on a `ws` socket; also `source(size)`, a ReadableStream of
 * `size`-byte chunks produced as fast as it is pulled), `--lib birpc` (over a
 * `ws` socket with its post/on, msgpackr-serialised so bytes stay bytes) or
 * `--lib socketio` (emit with ack, websocket transport only). Prints
 * `READY <port>`, exits when stdin closes, and then prints `{ rssPeakMB }`.
 *
 * ```sh
 * node scripts/bench/peer_server.ts --lib capnweb
 * ```
 *
 * @module
 */

import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import process from "node:process";
import { exitWithParent, makePayload, MemorySampler, numberFlag, parseFlags } from "./_load.ts";

const flags = parseFlags(process.argv.slice(2));
const lib = flags.get("lib");
const maxSeconds = numberFlag(flags, "max-seconds", 600);
const mem = new MemorySampler();
const http = createServer((_req, res) => void res.writeHead(404).end());
let closeLib: () => void = () => {};

if (lib === "capnweb") {
  const { RpcTarget, newWebSocketRpcSession } = await import("capnweb");
  const { WebSocketServer } = await import("ws");
  class Api extends RpcTarget {
    echo(b: Uint8Array): Uint8Array {
      return b;
    }
    source(size: number): ReadableStream<Uint8Array> {
      const chunk = makePayload(size, 0);
      return new ReadableStream<Uint8Array>({ pull: (c) => c.enqueue(chunk) });
    }
  }
  const wss = new WebSocketServer({ server: http, perMessageDeflate: false });
  wss.on("connection", (ws) => {
    newWebSocketRpcSession(ws as unknown as WebSocket, new Api());
  });
  closeLib = () => {
    for (const c of wss.clients) c.terminate();
  };
} else if (lib === "birpc") {
  const { createBirpc } = await import("birpc");
  const { pack, unpack } = await import("msgpackr");
  const { WebSocketServer } = await import("ws");
  const wss = new WebSocketServer({ server: http, perMessageDeflate: false });
  wss.on("connection", (ws) => {
    createBirpc({ echo: (b: Uint8Array) => b }, {
      post: (d) => ws.send(d),
      on: (fn) => void ws.on("message", (data) => fn(data)),
      serialize: (v) => pack(v),
      deserialize: (v) => unpack(v as Uint8Array),
    });
  });
  closeLib = () => {
    for (const c of wss.clients) c.terminate();
  };
} else if (lib === "socketio") {
  const { Server } = await import("socket.io");
  const io = new Server(http, { transports: ["websocket"], serveClient: false, perMessageDeflate: false });
  io.on("connection", (socket) => {
    socket.on("echo", (b: Uint8Array, ack: (r: Uint8Array) => void) => ack(b));
  });
  closeLib = () => void io.close();
} else {
  throw new TypeError(`Cannot start: --lib must be capnweb, birpc or socketio, got "${lib}"`);
}

http.listen(0, "127.0.0.1", () => {
  process.stdout.write(`READY ${(http.address() as AddressInfo).port}\n`);
});
exitWithParent(() => {
  mem.stop();
  process.stdout.write(JSON.stringify({ rssPeakMB: mem.peakMB() }) + "\n");
  closeLib();
  http.close();
}, maxSeconds);
