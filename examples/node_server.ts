/**
 * An existing `node:http` app server with the grid endpoint attached to it (`attachNode`: the
 * grid takes WebSocket upgrades on its path, the app keeps every request), plus a second grid
 * node, its peer, started in the same process for the demo (in production each node is its
 * own server). `GET /hello?name=x` asks the peer over the grid.
 *
 *   node examples/node_server.ts [--port 8000] [--once]        (Node 22.6+ runs .ts files)
 *
 * The app listens on `--port` and the peer on the next port. `--once` makes one request to
 * the app, prints the answer and exits; without it the servers run until Ctrl-C.
 *
 * In your project, import from the package instead: `wsgrid`, `wsgrid/node` and
 * `wsgrid/serve` (`npm install wsgrid`).
 *
 * @module
 */
import { createServer } from "node:http";
import process from "node:process";
import { defineSingle, Manager } from "../mod.ts";
import { attachNode } from "../src/adapters/node.ts";
import { serve } from "../src/adapters/serve.ts";

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

/** The app, as it was before the grid came: plain `node:http`. This route calls the peer. */
const server = createServer(async (req, res) => {
  const url = new URL(req.url ?? "/", "http://localhost");
  if (url.pathname !== "/hello") {
    res.writeHead(404).end("Not found\n");
    return;
  }
  try {
    const name = url.searchParams.get("name") ?? "world";
    const answer = await app.connection(hosts[1]).request(Greet, { name }, { waitForConnect: true, timeout: 5_000 });
    res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify(answer));
  } catch (err) {
    res.writeHead(502).end(`Cannot reach the peer: ${(err as Error).message}\n`);
  }
});
const attached = attachNode(app, server);
await new Promise<void>((resolve) => server.listen(port, "127.0.0.1", resolve));
const peerServer = await serve(peer, { port: port + 1, hostname: "127.0.0.1" });
console.log(`app on http://127.0.0.1:${port}/hello?name=node, grid nodes ${hosts.join(" and ")}`);

async function shutdown(): Promise<void> {
  await app.close();
  await peer.close();
  await attached.close();
  await peerServer.close();
  const closed = new Promise<void>((resolve) => server.close(() => resolve()));
  server.closeAllConnections(); // keep-alive connections would hold close() for seconds
  await closed;
}

if (once) {
  const res = await fetch(`http://127.0.0.1:${port}/hello?name=node`);
  console.log(`GET /hello?name=node -> ${res.status} ${await res.text()}`);
  await shutdown();
} else {
  process.once("SIGINT", () => void shutdown().then(() => process.exit(0)));
}
