/**
 * Helpers of the reliability suite (tests/e2e/reliability_test.ts): in-process grids whose
 * links run through fault proxies, and the result files that scripts/reliability_report.ts
 * renders into docs/RELIABILITY.md.
 *
 * @module
 */
import { mkdirSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import process from "node:process";
import { WebSocket as WsClient } from "ws";
import { type GridSocket, Manager, type ManagerOptions, shouldDial } from "../../mod.ts";
import { type GridServer, serve } from "../../src/adapters/serve.ts";
import { FaultProxy } from "./_fault_proxy.ts";
import { freePorts, runner } from "./_subprocess.ts";
// The result format is the report's: one definition for the writer (here) and the reader.
import { type Figure, RESULTS_DIR, type ScenarioResult } from "../../scripts/reliability_report.ts";

export { type Figure, RESULTS_DIR, type ScenarioResult };

/** Long mode (`WSGRID_LONG=1`): longer soak, more churn. */
export const LONG: boolean = process.env.WSGRID_LONG === "1";

/** Writes a scenario's result for this runner (replacing an older one). */
export function record(result: Omit<ScenarioResult, "runner" | "mode" | "at">): void {
  mkdirSync(RESULTS_DIR, { recursive: true });
  const full: ScenarioResult = { ...result, runner, mode: LONG ? "long" : "short", at: new Date().toISOString() };
  writeFileSync(join(RESULTS_DIR, `${result.scenario}.${runner}.json`), JSON.stringify(full, null, 2) + "\n");
}

/** Removes this runner's older results (a failing scenario then shows as not measured). */
export function clearResults(scenarios: string[]): void {
  let names: string[];
  try {
    names = readdirSync(RESULTS_DIR);
  } catch {
    return;
  }
  for (const s of scenarios) {
    if (names.includes(`${s}.${runner}.json`)) rmSync(join(RESULTS_DIR, `${s}.${runner}.json`), { force: true });
  }
}

/** Resolves after `ms`. */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Polls `cond` every 10 ms; rejects after `ms` with `what`. */
export async function until(cond: () => boolean, what: () => string, ms: number): Promise<void> {
  const end = performance.now() + ms;
  while (!cond()) {
    if (performance.now() > end) throw new Error(`Timed out after ${ms} ms waiting for ${what()}`);
    await sleep(10);
  }
}

// --- in-process grids ----------------------------------------------------------------------------

/** Options shared by the in-process nodes: short intervals, generous handshake time. */
export const FAST: Partial<ManagerOptions> = {
  pingInterval: 300,
  backoff: { base: 20, cap: 200 },
  handshakeTimeout: 1_000,
  requestTimeout: 10_000,
};

/** Opens a client socket the way the runtime's adapter would (Deno: the `ws` client). */
export function dialSocket(url: string): GridSocket {
  if (runner === "deno") return new WsClient(url, { perMessageDeflate: false }) as unknown as GridSocket;
  return new WebSocket(url) as unknown as GridSocket;
}

/** N Managers in this process, served on loopback; every link runs through its own proxy. */
export class ProxiedGrid {
  /** The nodes' names (their real URLs). */
  readonly urls: string[];
  readonly managers: Manager[];
  readonly servers: GridServer[];
  /** The proxy of each pair, keyed `${i}-${j}` with i < j; the dialing side connects through it. */
  readonly proxies: Map<string, FaultProxy>;

  private constructor(urls: string[], managers: Manager[], servers: GridServer[], proxies: Map<string, FaultProxy>) {
    this.urls = urls;
    this.managers = managers;
    this.servers = servers;
    this.proxies = proxies;
  }

  /**
   * Starts `n` nodes. The dialing side of each pair opens its socket to the pair's proxy (a
   * `webSocket` factory that swaps the port), so each link can fail on its own.
   */
  static async start(n: number, secret: string, options: Partial<ManagerOptions> = {}): Promise<ProxiedGrid> {
    const ports = await freePorts(n);
    const urls = ports.map((p) => `ws://127.0.0.1:${p}`);
    const proxies = new Map<string, FaultProxy>();
    const managers: Manager[] = [];
    const servers: GridServer[] = [];
    const grid = new ProxiedGrid(urls, managers, servers, proxies);
    try {
      for (let i = 0; i < n; i++) {
        for (let j = i + 1; j < n; j++) proxies.set(`${i}-${j}`, await FaultProxy.start({ targetPort: ports[shouldDial(urls[i], urls[j]) ? j : i] }));
      }
      for (let i = 0; i < n; i++) {
        const webSocket = (url: string): GridSocket => {
          const u = new URL(url);
          const j = ports.indexOf(Number(u.port));
          u.port = String(grid.proxy(i, j).port);
          return dialSocket(u.href);
        };
        const m = new Manager({ secret, ...FAST, ...options, local: urls[i], hosts: urls, webSocket });
        managers.push(m);
        servers.push(await serve(m, { port: ports[i], hostname: "127.0.0.1" }));
      }
    } catch (e) {
      await grid.close();
      throw e;
    }
    return grid;
  }

  /** The proxy between nodes i and j. */
  proxy(i: number, j: number): FaultProxy {
    const p = this.proxies.get(i < j ? `${i}-${j}` : `${j}-${i}`);
    if (p === undefined) throw new RangeError(`No proxy between nodes ${i} and ${j}`);
    return p;
  }

  /** Pairs (i < j). */
  pairs(): [number, number][] {
    const out: [number, number][] = [];
    for (let i = 0; i < this.urls.length; i++) for (let j = i + 1; j < this.urls.length; j++) out.push([i, j]);
    return out;
  }

  /** Whether every node sees every other node up. */
  allUp(): boolean {
    return this.managers.every((m, i) => this.urls.every((u, j) => i === j || m.connection(u).state === "up"));
  }

  /** Waits until every connection is up. */
  async waitAllUp(ms: number): Promise<void> {
    await until(() => this.allUp(), () => `all connections up: ${this.describe()}`, ms);
  }

  /** States of the connections that are not up, for messages. */
  describe(): string {
    const down: string[] = [];
    this.managers.forEach((m, i) => {
      this.urls.forEach((u, j) => {
        if (i !== j && m.connection(u).state !== "up") down.push(`${i}→${j} ${m.connection(u).state}`);
      });
    });
    return down.length === 0 ? "all up" : down.join(", ");
  }

  /** Closes the Managers, servers and proxies. */
  async close(): Promise<void> {
    await Promise.all(this.managers.map((m) => m.close()));
    await Promise.all(this.servers.map((s) => s.close()));
    await Promise.all([...this.proxies.values()].map((p) => p.close()));
  }
}
