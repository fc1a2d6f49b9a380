/**
 * adminPageHandler: the page and bundles as a web-standard handler, and the page
 * served next to the grid endpoint on one port with each runtime's embedding helper
 * (denoHandler, bunHandlers, attachNode + a Request conversion; tests/_serve_app.ts).
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { Manager } from "../mod.ts";
import type { GridStats } from "../mod.ts";
import { Client } from "../src/client.ts";
import { detectRuntime } from "../src/adapters/serve.ts";
import { adminPageHandler, type AdminPageHandler } from "../src/admin/serve_page.ts";
import { CLIENT_JS, PAGE_JS } from "../src/admin/_bundle.ts";
import { freePort } from "./_net.ts";
import { serveWithApp } from "./_serve_app.ts";

const runtime = detectRuntime();
const HOST = "127.0.0.1";

const grid = { local: "ws://127.0.0.1:9000", hosts: ["ws://127.0.0.1:9000", "wss://node-2.example:9443"], path: "/grid/v1" };

function get(h: AdminPageHandler, path: string, method = "GET"): Response | undefined {
  return h(new Request(`http://127.0.0.1:9000${path}`, { method }));
}

describe(`admin page handler on ${runtime}`, () => {
  it("serves the page, its script and the client bundle under its path, and nothing else", async () => {
    const h = adminPageHandler(grid, { path: "/admin/" });
    for (const p of ["/admin", "/admin/"]) {
      const r = get(h, p)!;
      assert.equal(r.status, 200);
      assert.match(r.headers.get("content-type")!, /^text\/html/);
      const html = await r.text();
      assert.ok(html.includes('src="/admin/page.js"'), "script path filled in");
      assert.ok(!html.includes("__WSGRID_"), "every placeholder filled in");
    }
    assert.equal(await get(h, "/admin/page.js")!.text(), PAGE_JS);
    assert.equal(await get(h, "/admin/client.js")!.text(), CLIENT_JS);
    assert.match(get(h, "/admin/client.js")!.headers.get("content-type")!, /javascript/);
    for (const p of ["/", "/grid/v1", "/admin/x", "/adminx", "/admin/client.js/x"]) assert.equal(get(h, p), undefined, p);
    assert.equal(get(h, "/admin", "POST")!.status, 405);
    const head = get(h, "/admin", "HEAD")!;
    assert.equal(head.status, 200);
    assert.equal(head.body, null);
  });

  it("lists every node in the CSP and embeds the config without breaking out of its script element", async () => {
    const hostile = { ...grid, local: "ws://127.0.0.1:9000/</script><script>alert(1)</script>" };
    hostile.hosts = [hostile.local, grid.hosts[1]];
    const r = get(adminPageHandler(hostile), "/admin")!;
    const csp = r.headers.get("content-security-policy")!;
    assert.match(csp, /connect-src 'self' ws:\/\/127\.0\.0\.1:9000 wss:\/\/node-2\.example:9443;/);
    assert.match(csp, /script-src 'self';/);
    const html = await r.text();
    assert.ok(!html.includes("<script>alert(1)"), "config escaped");
    const json = html.match(/<script id="wsgrid-config" type="application\/json">(.*?)<\/script>/)![1];
    assert.equal(JSON.parse(json).local, hostile.local);
    assert.equal(JSON.parse(json).gridPath, "/grid/v1");
  });

  it("makes the page's host list and CSP from the grid's current hosts at each request (after setHosts)", async () => {
    const [a, b] = ["ws://127.0.0.1:9000", "ws://127.0.0.1:9001"];
    const g = new Manager({ local: a, hosts: [a], secret: "s" });
    try {
      const h = adminPageHandler(g);
      const hostsOf = async () => {
        const html = await get(h, "/admin")!.text();
        return JSON.parse(html.match(/<script id="wsgrid-config" type="application\/json">(.*?)<\/script>/)![1]).hosts;
      };
      assert.deepEqual(await hostsOf(), [a]);
      g.setHosts([a, b]);
      assert.deepEqual(await hostsOf(), [a, b]);
      assert.match(get(h, "/admin")!.headers.get("content-security-policy")!, /connect-src 'self' ws:\/\/127\.0\.0\.1:9000 ws:\/\/127\.0\.0\.1:9001;/);
    } finally {
      await g.close();
    }
  });

  it("refuses a path that is not absolute or is the grid endpoint's", () => {
    assert.throws(() => adminPageHandler(grid, { path: "admin" }), TypeError);
    assert.throws(() => adminPageHandler(grid, { path: "/grid/v1" }), TypeError);
  });

  it(`serves the page next to the grid endpoint on one port (${runtime}'s embedding helper)`, async () => {
    const port = await freePort();
    const host = `ws://${HOST}:${port}`;
    const g = new Manager({ local: host, hosts: [host], secret: "s", admin: { tokens: ["t"] } });
    const stop = await serveWithApp(g, adminPageHandler(g), port);
    const c = new Client(`${host}/grid/v1`, { token: "t", backoff: { base: 20, cap: 200 } });
    try {
      const page = await fetch(`http://${HOST}:${port}/admin`);
      assert.equal(page.status, 200);
      assert.ok((await page.text()).includes(JSON.stringify(host)));
      const stats = await c.request("grid.stats", undefined, { waitForConnect: true, timeout: 10_000 }) as GridStats;
      assert.equal(stats.local, host);
      assert.equal((await fetch(`http://${HOST}:${port}/elsewhere`)).status, 404);
    } finally {
      await c.close();
      await g.close();
      await stop();
    }
  });
});
