/**
 * The admin page in a real Chromium (Debian's /usr/bin/chromium driven by
 * playwright-core): a 3-node grid serves the page; it must show every node live,
 * run a read-only call, refuse a write call and a bad token, and show a closed node
 * as down within 2 ping intervals. Saves a screenshot to .tmp/admin-page.png (WSGRID_SCREENSHOT=docs writes docs/admin-page.png, the one the docs show).
 *
 * Node runner only (playwright-core drives the browser over a pipe with Node APIs);
 * skipped elsewhere and where /usr/bin/chromium is missing (`apt-get install chromium`).
 */
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
import process from "node:process";
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { defineSingle, Manager } from "../../mod.ts";
import type { GridServer } from "../../src/adapters/serve.ts";
import { adminPageHandler, type AdminPageHandler } from "../../src/admin/serve_page.ts";
import { chromiumSkip, launchChromium } from "./_chromium.ts";
import { freePort } from "../_net.ts";

const skip = chromiumSkip();
if (skip) console.log(`# skipping browser tests: ${skip}`);

const HOST = "127.0.0.1";
const TOKEN = "page-token-71c2e9";
const PING_MS = 1_000;
const WATCH_MS = 200;
const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const SCREENSHOT = process.env.WSGRID_SCREENSHOT === "docs"
  ? join(ROOT, "docs", "admin-page.png")
  : join(ROOT, ".tmp", "admin-page.png");

const Read = defineSingle<{ key: string }, { value: string }>("kv.read");
const Write = defineSingle<{ key: string; value: string }, boolean>("kv.write");

/** Answers plain HTTP requests through a web-standard handler (the app side of a Node server). */
function nodeApp(handler: AdminPageHandler) {
  return async (req: IncomingMessage, res: ServerResponse) => {
    const r = handler(new Request(`http://${req.headers.host}${req.url}`, { method: req.method }));
    if (r === undefined) {
      res.writeHead(404, { "content-type": "text/plain" }).end("Not found\n");
      return;
    }
    res.writeHead(r.status, Object.fromEntries(r.headers));
    res.end(new Uint8Array(await r.arrayBuffer()));
  };
}

/** One grid node: a Manager on a node:http server that also serves the admin page. */
interface GridNode {
  host: string;
  port: number;
  grid: Manager;
  server: Server;
  attached: GridServer;
  closed: boolean;
}

async function closeNode(n: GridNode): Promise<void> {
  if (n.closed) return;
  n.closed = true;
  await n.grid.close();
  await n.attached.close();
  await new Promise<void>((resolve) => {
    n.server.close(() => resolve());
    n.server.closeAllConnections();
  });
}

describe("admin page in Chromium", () => {
  const nodes: GridNode[] = [];
  let writes = 0;
  let browser: Awaited<ReturnType<typeof launchChromium>> | undefined;
  // Types come from playwright-core, loaded only when the suite runs (Node runner).
  let context: import("playwright-core").BrowserContext | undefined;

  /** Node `i` of the grid on `port`, serving the admin page next to the grid endpoint. */
  async function startGridNode(i: number, port: number, hosts: string[]): Promise<GridNode> {
    const { attachNode } = await import("../../src/adapters/node.ts");
    const grid = new Manager({
      local: hosts[i],
      hosts,
      secret: "browser-test secret",
      pingInterval: PING_MS,
      backoff: { base: 20, cap: 200 },
      admin: { tokens: [TOKEN] },
    });
    grid.handle(Read, ({ key }) => ({ value: `hello ${key} from node ${i}` }), { readOnly: true });
    grid.handle(Write, () => {
      writes++;
      return true;
    });
    const server = createHttpServer(nodeApp(adminPageHandler(grid, { path: "/admin", watchIntervalMs: WATCH_MS })));
    const attached = attachNode(grid, server);
    await new Promise<void>((resolve) => server.listen(port, HOST, resolve));
    return { host: hosts[i], port, grid, server, attached, closed: false };
  }

  before(async () => {
    if (skip) return;
    const ports = [await freePort(), await freePort(), await freePort()];
    const hosts = ports.map((p) => `ws://${HOST}:${p}`);
    for (let i = 0; i < 3; i++) nodes.push(await startGridNode(i, ports[i], hosts));
    for (const n of nodes) {
      for (const h of hosts) if (h !== n.host) await n.grid.connection(h).waitForConnect({ timeout: 10_000 });
    }
    browser = await launchChromium();
    context = browser.context;
  });

  after(async () => {
    await browser?.close();
    for (const n of nodes) await closeNode(n);
  });

  it("serves the page and the client bundle next to the grid endpoint", { skip }, async () => {
    const base = `http://${HOST}:${nodes[0].port}/admin`;
    const page = await fetch(base);
    assert.equal(page.status, 200);
    assert.match(page.headers.get("content-type") ?? "", /text\/html/);
    assert.match(page.headers.get("content-security-policy") ?? "", /connect-src 'self' ws:\/\/127\.0\.0\.1:/);
    const html = await page.text();
    assert.ok(html.includes(JSON.stringify(nodes[0].host)), "the page names its node");
    const js = await fetch(`${base}/client.js`);
    assert.equal(js.status, 200);
    assert.match(js.headers.get("content-type") ?? "", /javascript/);
    assert.match(await js.text(), /export\{/);
    assert.equal((await fetch(`${base}/nope`)).status, 404);
  });

  it("shows a host joining and leaving the serving node's list live (setHosts)", { skip }, async () => {
    const page = await context!.newPage();
    const consoleErrors: string[] = [];
    page.on("pageerror", (e) => consoleErrors.push(e.message));
    await page.goto(`http://${HOST}:${nodes[0].port}/admin#token=${TOKEN}`);
    await page.waitForFunction(() => document.querySelectorAll('#nodes tr[data-status="up"]').length === 3, null, {
      timeout: 10_000,
    });
    const three = nodes.map((n) => n.host);
    const port = await freePort();
    const four = [...three, `ws://${HOST}:${port}`];
    const extra = await startGridNode(3, port, four);
    try {
      nodes[0].grid.setHosts(four);
      await page.waitForSelector(`#membership li[data-change="joined"][data-host="${extra.host}"]`, { timeout: 10_000 });
      await page.waitForSelector(`#nodes tr[data-node="${extra.host}"][data-status="up"]`, { timeout: 10_000 });
      await page.waitForSelector(`#matrix tr[data-from="${nodes[0].host}"] td[data-to="${extra.host}"][data-state="up"]`, {
        timeout: 10_000,
      });
      nodes[0].grid.setHosts(three);
      await page.waitForSelector(`#membership li[data-change="left"][data-host="${extra.host}"]`, { timeout: 10_000 });
      await page.waitForFunction((host) => document.querySelector(`#nodes tr[data-node="${host}"]`) === null, extra.host, {
        timeout: 10_000,
      });
      assert.equal(await page.locator("#nodes tbody tr").count(), 3);
      assert.deepEqual(consoleErrors, []);
    } finally {
      await closeNode(extra);
      await page.close();
    }
  });

  it("shows every node live, runs a read-only call, refuses a write, shows a closed node as down", { skip }, async () => {
    const page = await context!.newPage();
    const consoleErrors: string[] = [];
    page.on("pageerror", (e) => consoleErrors.push(e.message));
    await page.goto(`http://${HOST}:${nodes[0].port}/admin#token=${TOKEN}`);
    await page.waitForSelector('#banner[data-state="live"]', { timeout: 10_000 });
    await page.waitForFunction(() => document.querySelectorAll('#nodes tr[data-status="up"]').length === 3, null, {
      timeout: 10_000,
    });
    // The token leaves the address bar once read.
    assert.ok(!page.url().includes(TOKEN), `token still in URL: ${page.url()}`);
    // Every node reports its two connections up, with a round trip (after the first pong): 6 cells of the matrix.
    await page.waitForFunction(
      () => [...document.querySelectorAll('#matrix td[data-state="up"]')].filter((td) => / · [\d.]+ ms$/.test(td.textContent ?? "")).length === 6,
      null,
      { timeout: 10_000 },
    );
    const cellText = await page.textContent(`#matrix tr[data-from="${nodes[0].host}"] td[data-to="${nodes[1].host}"]`);
    assert.match(cellText ?? "", /^up · [\d.]+ ms$/);

    await page.fill("#call-handler", "kv.read");
    await page.fill("#call-payload", '{"key":"a"}');
    await page.click('#call button[type="submit"]');
    await page.waitForSelector('#call-result[data-outcome="ok"]', { timeout: 10_000 });
    assert.match((await page.textContent("#call-result")) ?? "", /hello a from node 0/);

    await page.fill("#call-handler", "kv.write");
    await page.fill("#call-payload", '{"key":"a","value":"b"}');
    await page.click('#call button[type="submit"]');
    await page.waitForSelector('#call-result[data-outcome="error"]', { timeout: 10_000 });
    assert.equal(await page.getAttribute("#call-result", "data-code"), "unauthorized");
    assert.equal(writes, 0, "the write handler never ran");

    // Handler table shows the calls just made (kv.read on node 0).
    await page.waitForSelector(`#handlers tr[data-node="${nodes[0].host}"][data-handler="kv.read"]`, { timeout: 10_000 });
    mkdirSync(dirname(SCREENSHOT), { recursive: true });
    await page.screenshot({ path: SCREENSHOT, fullPage: true });

    const victim = nodes[2];
    const shownDown = page.waitForSelector(`#nodes tr[data-node="${victim.host}"][data-status="down"]`, { timeout: 10_000 })
      .then(() => performance.now());
    const started = performance.now();
    const closing = closeNode(victim);
    const elapsed = (await shownDown) - started;
    await closing;
    console.log(`# closed node shown down after ${elapsed.toFixed(0)} ms`);
    assert.ok(elapsed <= 2 * PING_MS, `node shown down after ${elapsed.toFixed(0)} ms (limit ${2 * PING_MS} ms)`);
    assert.equal(await page.getAttribute("#banner", "data-state"), "live");
    await page.waitForFunction(
      (host) => document.querySelector(`#matrix tr[data-from="${host}"]`)?.textContent?.includes("down") ?? false,
      nodes[0].host,
      { timeout: 10_000 },
    );

    // The serving node going away turns the banner into "reconnecting".
    await closeNode(nodes[0]);
    await page.waitForSelector('#banner[data-state="reconnecting"]', { timeout: 2 * PING_MS + 2_000 });
    assert.match((await page.textContent("#banner")) ?? "", /reconnecting/i);
    assert.deepEqual(consoleErrors, []);
    await page.close();
  });

  it("refuses a bad token and offers the form", { skip }, async () => {
    const page = await context!.newPage();
    await page.goto(`http://${HOST}:${nodes[1].port}/admin#token=not-the-token`);
    await page.waitForSelector('#banner[data-state="unauthorized"]', { timeout: 10_000 });
    assert.match((await page.textContent("#error")) ?? "", /unauthorized/);
    assert.equal(await page.isVisible("#login"), true);
    // The form works with the right token.
    await page.fill("#token", TOKEN);
    await page.click('#login button[type="submit"]');
    await page.waitForSelector('#banner[data-state="live"]', { timeout: 10_000 });
    await page.close();
  });
});
