/**
 * Loopback ports for tests. Grid nodes need their URLs before they listen, so a
 * test picks a free port and listens on it a moment later. Ports come from
 * below the kernel's ephemeral range (Linux: 32768–60999): the kernel hands
 * that range to every `listen(0)` and every outgoing socket, so a port taken
 * from it and released could be given away before the test listens on it.
 *
 * Below that range only our own test processes bind, and several run at once:
 * two of them could pick the same free port and race to listen on it. So a
 * port is also claimed in a directory shared by every test process on the
 * machine (one file per port, created exclusively); a claim older than
 * `CLAIM_MS` is stale and can be taken over.
 */
import { mkdirSync, statSync, unlinkSync, writeFileSync } from "node:fs";
import { connect, createServer, type Server, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** Below the ephemeral range and above the ports services usually take. */
const LOW = 20_000;
const HIGH = 32_000;
const TRIES = 200;
/** How long a claimed port stays out of other test processes' reach: longer than any test leaves a port unbound. */
const CLAIM_MS = 5 * 60_000;
const CLAIMS = join(tmpdir(), "wsgrid-test-ports");

/** Claims `port` for this process; false when another test process claimed it recently. */
function claim(port: number): boolean {
  const file = join(CLAIMS, String(port));
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      mkdirSync(CLAIMS, { recursive: true });
      writeFileSync(file, "", { flag: "wx" });
      return true;
    } catch (e) {
      if ((e as { code?: string }).code !== "EEXIST") return true; // no shared directory: no claims
      try {
        if (Date.now() - statSync(file).mtimeMs < CLAIM_MS) return false;
        unlinkSync(file); // stale: take it over
      } catch {
        // removed or replaced meanwhile: try once more
      }
    }
  }
  return false;
}

/** Resolves true when `port` can be bound on 127.0.0.1 right now (it is released again). */
function bindable(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createServer();
    s.once("error", () => resolve(false));
    s.listen(port, "127.0.0.1", () => s.close(() => resolve(true)));
  });
}

/** `n` distinct ports that were free on 127.0.0.1 a moment ago (and `port + 1` too, with `pairs`). */
export async function freePorts(n: number, pairs = false): Promise<number[]> {
  const out = new Set<number>();
  for (let i = 0; i < TRIES && out.size < n; i++) {
    const port = LOW + Math.floor(Math.random() * (HIGH - LOW - 1));
    if (out.has(port) || (pairs && out.has(port + 1)) || !claim(port)) continue;
    if (pairs && !claim(port + 1)) continue;
    if (!(await bindable(port)) || (pairs && !(await bindable(port + 1)))) continue;
    out.add(port);
  }
  if (out.size < n) throw new Error(`Cannot pick ${n} free ports in ${LOW}–${HIGH} after ${TRIES} tries`);
  return [...out];
}

/** A port that was free on 127.0.0.1 a moment ago. */
export async function freePort(): Promise<number> {
  return (await freePorts(1))[0];
}

/** `n` distinct free ports as `ws://127.0.0.1:PORT` URLs. */
export async function freeUrls(n: number): Promise<string[]> {
  return (await freePorts(n)).map((p) => `ws://127.0.0.1:${p}`);
}

/** A free URL `u` for which `pred(u)` holds (the dial rule depends on the names), not yet in `taken`. */
export async function urlWhere(pred: (u: string) => boolean, taken: Set<string>): Promise<string> {
  for (let i = 0; i < 200; i++) {
    const u = `ws://127.0.0.1:${await freePort()}`;
    if (!taken.has(u) && pred(u)) {
      taken.add(u);
      return u;
    }
  }
  throw new Error("Cannot find a free port whose URL satisfies the dial rule");
}

/** A TCP forwarder whose `cut()` drops every forwarded connection at once (no close frame). */
export interface CuttingProxy {
  readonly port: number;
  cut(): void;
  close(): Promise<void>;
}

/** Forwards TCP from `port` on 127.0.0.1 (a free one when 0) to `target` there, Nagle off. */
export function startCuttingProxy(target: number, port = 0): Promise<CuttingProxy> {
  const host = "127.0.0.1";
  const sockets = new Set<Socket>();
  const server: Server = createServer((client) => {
    const upstream = connect(target, host);
    const pair = [client, upstream];
    for (const s of pair) {
      sockets.add(s);
      s.setNoDelay(true);
      s.on("error", () => {});
      s.on("close", () => {
        sockets.delete(s);
        for (const o of pair) o.destroy();
      });
    }
    client.pipe(upstream);
    upstream.pipe(client);
  });
  const cut = () => {
    for (const s of [...sockets]) s.destroy();
    sockets.clear();
  };
  return new Promise((resolve, reject) => {
    server.on("error", reject);
    server.listen(port, host, () => {
      resolve({
        port: (server.address() as { port: number }).port,
        cut,
        close: () => {
          cut();
          return new Promise<void>((res) => server.close(() => res()));
        },
      });
    });
  });
}
