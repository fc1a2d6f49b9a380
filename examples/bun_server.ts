/**
 * A Bun app server with the grid endpoint embedded next to its own routes (`bunHandlers`),
 * plus a second grid node, its peer, started in the same process for the demo (in production
 * each node is its own server). `GET /hello?name=x` asks the peer over the grid.
 *
 *   bun examples/bun_server.ts [--port 8000] [--once]
 *
 * The app listens on `--port` and the peer on the next port. `--once` makes one request to
 * the app, prints the answer and exits; without it the servers run until Ctrl-C.
 *
 * In your project, import from the package instead: `wsgrid`, `wsgrid/bun` and
 * `wsgrid/serve` (`bun add wsgrid`).
 *
 * @module
 */
import process from "node:process";
import { defineSingle, Manager } from "../mod.ts";
import { bunHandlers, type BunServer, type BunWebSocketHandler } from "../src/adapters/bun.ts";
import { serve } from "../src/adapters/serve.ts";

/**
 * The slice of Bun's global used here, so the file also type-checks without `bun-types`
 * (with `@types/bun` installed, delete this declaration).
 */
declare const Bun: {
  serve(options: {
    port: number;
    hostname?: string;
    fetch(req: Request, server: BunServer): Response | Promise<Response>;
    websocket: BunWebSocketHandler;
  }): { port: number; stop(closeActiveConnections?: boolean): Promise<void> };
};

const args = process.argv.slice(2);
const port = Number(args[args.indexOf("--port") + 1] || 8000);
const once = args.includes("--once");

const hosts = [`ws://127.0.0.1:${port}`, `ws://127.0.0.1:${port + 1}`];
const secret = "example cluster secret";
const app = new Manager({ local: hosts[0], hosts, secret });
const peer = new Manager({ local: hosts[1], hosts, secret });

/** A typed handler: the payload and the result travel as msgpack. */
const Greet = defineSingle<{ name: string }, { greeting: string; servedBy: string }>("example.greet");
peer.handle(Greet, ({ name }) => ({ greeting: `Hello, ${name}!`, servedBy: peer.local }));

/** The app's own routes; this one calls the peer over the grid. */
async function routes(req: Request): Promise<Response> {
  const url = new URL(req.url);
  if (url.pathname !== "/hello") return new Response("Not found\n", { status: 404 });
  const name = url.searchParams.get("name") ?? "world";
  const answer = await app.connection(hosts[1]).request(Greet, { name }, { waitForConnect: true, timeout: 5_000 });
  return Response.json(answer);
}

const grid = bunHandlers(app);
const server = Bun.serve({
  port,
  hostname: "127.0.0.1",
  fetch: (req, srv) => grid.fetch(req, srv) ?? routes(req),
  websocket: grid.websocket,
});
const peerServer = await serve(peer, { port: port + 1, hostname: "127.0.0.1" });
console.log(`app on http://127.0.0.1:${port}/hello?name=bun, grid nodes ${hosts.join(" and ")}`);

async function shutdown(): Promise<void> {
  await app.close();
  await peer.close();
  await server.stop(true);
  await peerServer.close();
}

if (once) {
  const res = await fetch(`http://127.0.0.1:${port}/hello?name=bun`);
  console.log(`GET /hello?name=bun -> ${res.status} ${await res.text()}`);
  await shutdown();
} else {
  process.once("SIGINT", () => void shutdown().then(() => process.exit(0)));
}
