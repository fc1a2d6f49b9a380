/**
 * A Deno app server with the grid endpoint embedded next to its own routes (`denoHandler`),
 * plus a second grid node, its peer, started in the same process for the demo (in production
 * each node is its own server). `GET /hello?name=x` asks the peer over the grid.
 *
 *   deno run -A examples/deno_server.ts [--port 8000] [--once]
 *
 * The app listens on `--port` and the peer on the next port. `--once` makes one request to
 * the app, prints the answer and exits; without it the servers run until Ctrl-C.
 *
 * In your project, import from the package instead: `wsgrid` and `wsgrid/deno`
 * (`deno add npm:wsgrid`, or `jsr:@wsgrid/wsgrid`).
 *
 * @module
 */
import { defineSingle, Manager } from "../mod.ts";
import { denoHandler } from "../src/adapters/deno.ts";
import { serve } from "../src/adapters/serve.ts";

const args = Deno.args;
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

const gridHandler = denoHandler(app);
const server = Deno.serve(
  { port, hostname: "127.0.0.1", onListen() {} },
  (req, info) => gridHandler(req, info) ?? routes(req),
);
const peerServer = await serve(peer, { port: port + 1, hostname: "127.0.0.1" });
console.log(`app on http://127.0.0.1:${port}/hello?name=deno, grid nodes ${hosts.join(" and ")}`);

async function shutdown(): Promise<void> {
  await app.close();
  await peer.close();
  await server.shutdown();
  await peerServer.close();
}

if (once) {
  const res = await fetch(`http://127.0.0.1:${port}/hello?name=deno`);
  console.log(`GET /hello?name=deno -> ${res.status} ${await res.text()}`);
  await shutdown();
} else {
  Deno.addSignalListener("SIGINT", () => shutdown().then(() => Deno.exit(0)));
}
