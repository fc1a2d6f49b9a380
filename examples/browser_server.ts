/**
 * Serves a page that talks to the grid from a browser (examples/browser/) next to a grid node
 * on one port, with a read-only token for the page. Open the printed URL in a browser.
 *
 *   node examples/browser_server.ts [--port 8300]        (Node 22.6+ runs .ts files)
 *
 * The page loads the client bundle from the admin page handler (`/admin/client.js`), calls a
 * `readOnly` handler and `grid.stats`, and shows that a write handler is refused.
 *
 * In your project, import from the package instead: `wsgrid`, `wsgrid/node`, `wsgrid/admin`.
 *
 * @module
 */
import { readFileSync } from "node:fs";
import { createServer } from "node:http";
import process from "node:process";
import { defineSingle, Manager } from "../mod.ts";
import { attachNode } from "../src/adapters/node.ts";
import { adminPageHandler } from "../src/admin/serve_page.ts";

const args = process.argv.slice(2);
const port = Number(args[args.indexOf("--port") + 1] || 8300);
const token = "example read-only token";
const host = `ws://127.0.0.1:${port}`;
const grid = new Manager({ local: host, hosts: [host], secret: "example secret", admin: { tokens: [token] } });

const Time = defineSingle<{ zone: string }, { iso: string; servedBy: string }>("example.time");
grid.handle(Time, () => ({ iso: new Date().toISOString(), servedBy: grid.local }), { readOnly: true });
const Write = defineSingle<{ key: string }, { ok: boolean }>("example.write");
grid.handle(Write, () => ({ ok: true })); // not readOnly: the page's client is refused

const page = adminPageHandler(grid, { path: "/admin" });
const files: Record<string, [string, string]> = {
  "/": ["browser/index.html", "text/html; charset=utf-8"],
  "/app.js": ["browser/app.js", "text/javascript; charset=utf-8"],
};
const server = createServer(async (req, res) => {
  const url = new URL(req.url ?? "/", `http://127.0.0.1:${port}`);
  const file = files[url.pathname];
  if (file !== undefined) {
    res.writeHead(200, { "content-type": file[1] }).end(readFileSync(new URL(file[0], import.meta.url)));
    return;
  }
  const answer = page(new Request(url));
  if (answer === undefined) {
    res.writeHead(404).end("Not found\n");
    return;
  }
  const headers: Record<string, string> = {};
  answer.headers.forEach((v, k) => (headers[k] = v));
  res.writeHead(answer.status, headers).end(new Uint8Array(await answer.arrayBuffer()));
});
const attached = attachNode(grid, server);
await new Promise<void>((resolve) => server.listen(port, "127.0.0.1", resolve));
console.log(`open http://127.0.0.1:${port}/#token=${encodeURIComponent(token)}`);

process.once("SIGINT", async () => {
  await grid.close();
  await attached.close();
  server.close();
});
process.once("SIGTERM", () => process.emit("SIGINT"));
