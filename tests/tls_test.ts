/**
 * TLS end to end: a CA and node certificates made with `openssl` in a temp dir, Managers
 * on `wss://` hosts served with `tls: { cert, key }`, peers and the read-only Client over
 * wss, and a certificate from another CA refused. Skipped when openssl is missing.
 *
 * How the CA reaches each runtime's client side:
 * - Grid dials and the Client, in process, on all three: a `webSocket` factory (Manager and
 *   Client option) opening the `ws` package's client with `{ ca }`; `ws` runs on Node's
 *   node:tls, Deno's node:tls (rustls, the CA as an extra root) and Bun's (BoringSSL).
 * - The runtime's own global WebSocket, in a child process of the same runtime: Deno reads
 *   `DENO_CERT` (same as `--cert`), Node and Bun read `NODE_EXTRA_CA_CERTS`, at start-up only.
 * - Bun's global WebSocket also takes it per socket: `new WebSocket(url, { tls: { ca } })`.
 */
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { execFile, execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { WebSocket as WsClient } from "ws";
import { GridError, Manager, shouldDial } from "../mod.ts";
import type { GridSocket, GridStats } from "../mod.ts";
import { Client } from "../src/client.ts";
import { detectRuntime, type GridServer, serve } from "../src/adapters/serve.ts";
import { freePort } from "./_net.ts";
import { withTimeout } from "./_wait.ts";

const runtime = detectRuntime();
const HOST = "127.0.0.1";
const SECRET = "tls-test secret";
const TOKEN = "tls-admin-token";
const WAIT_MS = 10_000;

function hasOpenssl(): boolean {
  try {
    execFileSync("openssl", ["version"], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}

const skip = hasOpenssl() ? false : "openssl is missing: install it (apt-get install -y openssl) to run the TLS tests";
if (skip) console.log(`# skipping TLS tests: ${skip}`);

interface Pki {
  ca: string;
  cert: string;
  key: string;
}

/** A CA and a certificate for 127.0.0.1 / localhost signed by it, in `dir/name-*`. */
function makePki(dir: string, name: string): Pki {
  const p = (f: string) => join(dir, `${name}-${f}`);
  const ssl = (...args: string[]) => execFileSync("openssl", args, { stdio: ["ignore", "ignore", "pipe"] });
  const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
  ssl("req", "-x509", ...ec, "-keyout", p("ca.key"), "-out", p("ca.pem"), "-days", "2", "-subj", `/CN=wsgrid test CA ${name}`,
    "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign");
  ssl("req", ...ec, "-keyout", p("node.key"), "-out", p("node.csr"), "-subj", "/CN=127.0.0.1");
  writeFileSync(
    p("ext.cnf"),
    "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n" +
      "keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n",
  );
  ssl("x509", "-req", "-in", p("node.csr"), "-CA", p("ca.pem"), "-CAkey", p("ca.key"), "-CAcreateserial",
    "-out", p("node.pem"), "-days", "2", "-extfile", p("ext.cnf"));
  return { ca: readFileSync(p("ca.pem"), "utf8"), cert: readFileSync(p("node.pem"), "utf8"), key: readFileSync(p("node.key"), "utf8") };
}

/** A `webSocket` factory trusting `ca` (the `ws` client; works on Deno, Bun and Node). */
function dialerTrusting(ca: string | undefined): (url: string) => GridSocket {
  return (url) => new WsClient(url, { ca, perMessageDeflate: false }) as unknown as GridSocket;
}

/** A dial that never came up: waitForConnect gave up (timeout) or saw the socket fail (disconnected). */
function refusedDial(e: unknown): boolean {
  return e instanceof GridError && (e.code === "timeout" || e.code === "disconnected");
}

/**
 * Opens the runtime's own global WebSocket to `url` in a child process of this runtime,
 * with `env` added (the runtime's start-up way to trust a CA), and returns what it printed:
 * "open" or "error".
 */
function childAttempt(dir: string, url: string, env: Record<string, string>): Promise<string> {
  const script = join(dir, "child_ws.mjs");
  writeFileSync(
    script,
    `const ws = new WebSocket(${JSON.stringify(url)});
const t = setTimeout(() => { console.log("timeout"); ws.close(); }, 8000);
ws.onopen = () => { clearTimeout(t); console.log("open"); ws.close(); };
ws.onerror = () => { clearTimeout(t); console.log("error"); };
`,
  );
  const args = runtime === "deno" ? ["run", "--no-config", "--allow-net", script] : [script];
  const clean: Record<string, string | undefined> = { ...process.env, DENO_CERT: undefined, NODE_EXTRA_CA_CERTS: undefined };
  return new Promise((resolve, reject) => {
    execFile(process.execPath, args, { cwd: dir, env: { ...clean, ...env }, timeout: 20_000 }, (err, stdout) => {
      const out = String(stdout).trim().split("\n")[0] ?? "";
      if (out === "" && err) reject(err);
      else resolve(out);
    });
  });
}

/** Resolves "open" or "error" for a plain socket attempt. */
function attempt(socket: GridSocket): Promise<"open" | "error"> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve("error"), WAIT_MS);
    socket.addEventListener("open", () => {
      clearTimeout(timer);
      socket.close();
      resolve("open");
    });
    socket.addEventListener("error", () => {
      clearTimeout(timer);
      resolve("error");
    });
  });
}

describe(`TLS (wss://) on ${runtime}`, () => {
  let dir = "";
  let good: Pki;
  let rogue: Pki;
  const grids: Manager[] = [];
  const servers: GridServer[] = [];
  const clients: Client[] = [];
  let hosts: string[] = [];
  let rogueUrl = "";

  async function node(local: string, all: string[], pki: Pki, ca: string): Promise<Manager> {
    const grid = new Manager({
      local,
      hosts: all,
      secret: SECRET,
      pingInterval: 500,
      backoff: { base: 20, cap: 200 },
      admin: { tokens: [TOKEN] },
      webSocket: dialerTrusting(ca),
    });
    grid.handle("echo", (req) => req);
    grids.push(grid);
    servers.push(await serve(grid, { port: Number(new URL(local).port), hostname: HOST, tls: { cert: pki.cert, key: pki.key } }));
    return grid;
  }

  before(async () => {
    if (skip) return;
    dir = mkdtempSync(join(tmpdir(), "wsgrid-tls-"));
    good = makePki(dir, "good");
    rogue = makePki(dir, "rogue");
    hosts = [`wss://${HOST}:${await freePort()}`, `wss://${HOST}:${await freePort()}`];
    await node(hosts[0], hosts, good, good.ca);
    await node(hosts[1], hosts, good, good.ca);
  });

  after(async () => {
    for (const c of clients) await c.close();
    for (const g of grids) await g.close();
    for (const s of servers) await s.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("peers connect over wss:// and carry requests", { skip }, async () => {
    const [a, b] = grids;
    await a.connection(hosts[1]).waitForConnect({ timeout: WAIT_MS });
    await b.connection(hosts[0]).waitForConnect({ timeout: WAIT_MS });
    const big = new Uint8Array(200_000).map((_, i) => i % 251);
    assert.deepEqual(await a.connection(hosts[1]).request("echo", big), big);
    assert.deepEqual([...await b.connection(hosts[0]).request("echo", new Uint8Array([1, 2]))], [1, 2]);
  });

  it("the read-only Client connects over wss:// with the CA", { skip }, async () => {
    const c = new Client(`${hosts[0]}/grid/v1`, { token: TOKEN, webSocket: dialerTrusting(good.ca), backoff: { base: 20, cap: 200 } });
    clients.push(c);
    const stats = await c.request("grid.stats", undefined, { waitForConnect: true, timeout: WAIT_MS }) as GridStats;
    assert.equal(stats.local, hosts[0]);
    assert.equal(stats.connections[hosts[1]].state, "up");
  });

  it("Deno's dialer (Deno.connect + startTls) opens wss:// with the CA and refuses another CA", {
    skip: skip || (runtime === "deno" ? false : "Deno only"),
  }, async () => {
    const { DenoClientSocket } = await import("../src/adapters/_deno_dial.ts");
    const open = (ca: string): Promise<string> =>
      new Promise((resolve) => {
        const ws = new DenoClientSocket(`${hosts[0]}/grid/v1`, { caCerts: [ca] });
        ws.addEventListener("open", () => {
          ws.close(1000);
          resolve("open");
        });
        ws.addEventListener("close", () => resolve("closed"));
        ws.addEventListener("error", () => {});
      });
    assert.equal(await withTimeout(open(good.ca), "wss open", WAIT_MS), "open");
    assert.equal(await withTimeout(open(rogue.ca), "wss refused", WAIT_MS), "closed");
  });

  it("Bun's own WebSocket takes the CA as { tls: { ca } }", { skip: skip || (runtime === "bun" ? false : "Bun only") }, async () => {
    type BunWebSocket = new (url: string, opts: { tls: { ca: string } }) => GridSocket;
    const BunWs = globalThis.WebSocket as unknown as BunWebSocket;
    const c = new Client(`${hosts[1]}/grid/v1`, {
      token: TOKEN,
      webSocket: (url) => new BunWs(url, { tls: { ca: good.ca } }),
      backoff: { base: 20, cap: 200 },
    });
    clients.push(c);
    const stats = await c.request("grid.stats", undefined, { waitForConnect: true, timeout: WAIT_MS }) as GridStats;
    assert.equal(stats.local, hosts[1]);
    assert.equal(await attempt(new BunWs(`${hosts[1]}/grid/v1`, { tls: { ca: rogue.ca } })), "error");
  });

  it(`${runtime}'s own WebSocket trusts the CA handed over at start-up (${runtime === "deno" ? "DENO_CERT" : "NODE_EXTRA_CA_CERTS"})`, {
    skip,
  }, async () => {
    const caFile = join(dir, "good-ca.pem");
    const env = runtime === "deno" ? "DENO_CERT" : "NODE_EXTRA_CA_CERTS";
    const url = `${hosts[0]}/grid/v1`;
    assert.equal(await childAttempt(dir, url, { [env]: caFile }), "open");
    assert.equal(await childAttempt(dir, url, {}), "error");
    assert.equal(await childAttempt(dir, url, { [env]: join(dir, "rogue-ca.pem") }), "error");
  });

  it("a certificate from another CA is refused (peer dial, Client, plain socket)", { skip }, async () => {
    // Without the CA at all, the good node is refused too: the checks below are not vacuous.
    assert.equal(await attempt(dialerTrusting(undefined)(`${hosts[0]}/grid/v1`)), "error");
    assert.equal(await attempt(dialerTrusting(good.ca)(`${hosts[0]}/grid/v1`)), "open");

    // A node whose certificate comes from the rogue CA, in a grid with a node trusting the good CA only.
    const ports = [await freePort(), await freePort()];
    let pair = ports.map((p) => `wss://${HOST}:${p}`);
    if (!shouldDial(pair[0], pair[1])) pair = [pair[1], pair[0]];
    const [dialerHost, rogueHost] = pair;
    rogueUrl = `${rogueHost}/grid/v1`;
    await node(rogueHost, pair, rogue, rogue.ca);
    const dialer = await node(dialerHost, pair, good, good.ca);
    const conn = dialer.connection(rogueHost);
    assert.equal(conn.dialer, true);
    const err = await conn.waitForConnect({ timeout: 1_500 }).then(() => null, (e: unknown) => e);
    assert.ok(refusedDial(err), `peer dial: ${err}`);
    assert.notEqual(conn.state, "up");

    const c = new Client(rogueUrl, { token: TOKEN, webSocket: dialerTrusting(good.ca), backoff: { base: 20, cap: 200 } });
    clients.push(c);
    const cerr = await c.waitForConnect({ timeout: 1_500 }).then(() => null, (e: unknown) => e);
    assert.ok(refusedDial(cerr), `client: ${cerr}`);
    assert.notEqual(c.state, "up");
    assert.equal(await attempt(dialerTrusting(good.ca)(rogueUrl)), "error");
    // The rogue node itself is fine for whoever trusts its CA.
    assert.equal(await attempt(dialerTrusting(rogue.ca)(rogueUrl)), "open");
  });
});
