/**
 * Starts grid nodes (tests/e2e/_node.ts) as real OS processes of Deno, Bun and Node, and
 * drives them over the node's line-based JSON control protocol. Works from any of the
 * three test runners: it only uses `node:child_process`, `node:net`, `node:readline` and
 * `node:fs`, which all three provide.
 *
 * @module
 */
import { type ChildProcess, spawn } from "node:child_process";
import { readdirSync, readFileSync, readlinkSync } from "node:fs";
import { freePorts } from "./_subprocess.ts";
import { join } from "node:path";
import process from "node:process";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import type { Command, NodeConfig, NodeEvent, WireError } from "./_node.ts";
import { FaultProxy } from "./_fault_proxy.ts";

/** The runtimes a node can run on. */
export type Runtime = "deno" | "bun" | "node";

/** The repository root. */
export const ROOT: string = fileURLToPath(new URL("../../", import.meta.url));
const BIN = join(ROOT, "node_modules", ".bin");
const NODE_PROGRAM = "tests/e2e/_node.ts";
/** How long a node has to print READY (Deno's first start may compile). */
const READY_TIMEOUT_MS = 30_000;
/** Default time a command has to answer. */
const COMMAND_TIMEOUT_MS = 10_000;
/** Output lines kept per node for error messages. */
const TAIL_LINES = 30;

/** `deno run -A`, `bun run` or `node`, with the binary from node_modules/.bin. */
function commandLine(runtime: Runtime, config: NodeConfig): { cmd: string; args: string[] } {
  const json = JSON.stringify(config);
  switch (runtime) {
    case "deno":
      return { cmd: join(BIN, "deno"), args: ["run", "-A", NODE_PROGRAM, json] };
    case "bun":
      return { cmd: join(BIN, "bun"), args: ["run", NODE_PROGRAM, json] };
    case "node":
      return { cmd: join(BIN, "node"), args: [NODE_PROGRAM, json] };
  }
}

/** How a child process ended. */
export interface Exit {
  code: number | null;
  signal: string | null;
  /** Epoch ms when the parent saw it. */
  at: number;
}

/** A reply or event line from a node. */
interface Line {
  id: number | null;
  ok?: boolean;
  value?: unknown;
  error?: WireError;
  event?: string;
  [k: string]: unknown;
}

/** An error answer of a node, as a rejection. */
export class NodeCommandError extends Error {
  readonly wire: WireError;
  constructor(what: string, wire: WireError) {
    super(`${what} failed: ${wire.name} (${wire.code}): ${wire.message}`);
    this.name = "NodeCommandError";
    this.wire = wire;
  }
}

type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;
/** A command without its id (the NodeProc numbers them). */
export type CommandBody = DistributiveOmit<Command, "id">;

/** One running node process. */
export class NodeProc {
  readonly runtime: Runtime;
  readonly url: string;
  readonly child: ChildProcess;
  readonly pid: number;
  /** Resolves when the process has exited. */
  readonly exited: Promise<Exit>;
  exit: Exit | null = null;
  private readonly tail: string[] = [];
  /** Answers of posted commands, by id; settled by the answer line or the process's exit. */
  private readonly answers = new Map<number, { promise: Promise<Line>; resolve: (l: Line) => void; reject: (e: Error) => void }>();
  private readonly eventWaiters: { id: number; event: string; resolve: (l: Line) => void }[] = [];
  private readonly eventLines: Line[] = [];
  private nextId = 1;
  private readyResolve: (() => void) | null = null;
  private readonly ready: Promise<void>;

  constructor(runtime: Runtime, config: NodeConfig) {
    this.runtime = runtime;
    this.url = config.local;
    const { cmd, args } = commandLine(runtime, config);
    this.child = spawn(cmd, args, {
      cwd: ROOT,
      stdio: ["pipe", "pipe", "pipe"],
      env: { ...process.env, DENO_NO_UPDATE_CHECK: "1", NO_COLOR: "1" },
    });
    // Without a listener, a spawn failure (binary missing) would be an uncaught error.
    this.child.on("error", (e) => this.keep(`spawn: ${e.message}`));
    if (this.child.pid === undefined) {
      throw new Error(`Cannot start ${runtime} node: ${cmd} did not start (run npm install first?)`);
    }
    this.pid = this.child.pid;
    this.ready = new Promise<void>((resolve) => {
      this.readyResolve = resolve;
    });
    this.exited = new Promise<Exit>((resolve) => {
      this.child.once("exit", (code, signal) => {
        this.exit = { code, signal, at: Date.now() };
        const err = new Error(`${this.name} exited (code ${code}, signal ${signal})${this.describeTail()}`);
        for (const a of this.answers.values()) a.reject(err);
        resolve(this.exit);
      });
    });
    // A write to a dead child's stdin fails with EPIPE; the exit handler reports it.
    this.child.stdin!.on("error", () => {});
    createInterface({ input: this.child.stdout! }).on("line", (l) => this.onLine(l));
    createInterface({ input: this.child.stderr! }).on("line", (l) => this.keep(`stderr: ${l}`));
  }

  /** "deno node ws://127.0.0.1:PORT (pid N)". */
  get name(): string {
    return `${this.runtime} node ${this.url} (pid ${this.pid})`;
  }

  private keep(line: string): void {
    this.tail.push(line);
    if (this.tail.length > TAIL_LINES) this.tail.shift();
  }

  private describeTail(): string {
    return this.tail.length === 0 ? "" : `; its last output:\n  ${this.tail.join("\n  ")}`;
  }

  private onLine(text: string): void {
    if (text === "READY") {
      this.readyResolve?.();
      return;
    }
    let line: Line;
    try {
      line = JSON.parse(text) as Line;
    } catch {
      this.keep(`stdout: ${text}`);
      return;
    }
    if (line.event !== undefined) {
      const i = this.eventWaiters.findIndex((w) => w.id === line.id && w.event === line.event);
      if (i >= 0) this.eventWaiters.splice(i, 1)[0].resolve(line);
      else this.eventLines.push(line);
      return;
    }
    const a = line.id === null ? undefined : this.answers.get(line.id);
    if (a === undefined) this.keep(`stdout: ${text}`);
    else a.resolve(line);
  }

  /** Resolves once the node printed READY; rejects when it exits first or takes too long. */
  waitReady(timeoutMs = READY_TIMEOUT_MS): Promise<void> {
    return withTimeout(
      Promise.race([
        this.ready,
        this.exited.then((e) => {
          throw new Error(`${this.name} exited before READY (code ${e.code}, signal ${e.signal})${this.describeTail()}`);
        }),
      ]),
      timeoutMs,
      () => `${this.name} did not print READY${this.describeTail()}`,
    );
  }

  /** Sends a command without waiting; returns its id for {@link answer} and {@link waitEvent}. */
  post(body: CommandBody): number {
    const id = this.nextId++;
    let resolve!: (l: Line) => void;
    let reject!: (e: Error) => void;
    const promise = new Promise<Line>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    // Posted commands whose answer nobody awaits must not become unhandled rejections.
    promise.catch(() => {});
    this.answers.set(id, { promise, resolve, reject });
    if (this.exit !== null) reject(new Error(`Cannot send ${body.cmd}: ${this.name} has exited`));
    else this.child.stdin!.write(JSON.stringify({ ...body, id }) + "\n");
    return id;
  }

  /** Resolves with the answer line of posted command `id`, error answers included. */
  answer(id: number, timeoutMs = COMMAND_TIMEOUT_MS): Promise<Line> {
    const a = this.answers.get(id);
    if (a === undefined) return Promise.reject(new Error(`No command ${id} was posted to ${this.name}`));
    return withTimeout(a.promise, timeoutMs, () => `${this.name} did not answer command ${id} within ${timeoutMs} ms${this.describeTail()}`)
      .finally(() => this.answers.delete(id));
  }

  /** Sends a command and resolves with its answer's `value`; rejects with NodeCommandError on an error answer. */
  async command<T = unknown>(body: CommandBody, timeoutMs = COMMAND_TIMEOUT_MS): Promise<T> {
    const line = await this.commandLine(body, timeoutMs);
    if (line.ok !== true) throw new NodeCommandError(`${this.name}: ${body.cmd}`, line.error!);
    return line.value as T;
  }

  /** Sends a command and resolves with its raw answer line, error answers included. */
  commandLine(body: CommandBody, timeoutMs = COMMAND_TIMEOUT_MS): Promise<Line> {
    return this.answer(this.post(body), timeoutMs).catch((e: Error) => {
      throw new Error(`${JSON.stringify(body)}: ${e.message}`);
    });
  }

  /** Resolves with the first `{ id, event }` line of command `id`. */
  waitEvent(id: number, event: string, timeoutMs = COMMAND_TIMEOUT_MS): Promise<Line> {
    const i = this.eventLines.findIndex((l) => l.id === id && l.event === event);
    if (i >= 0) return Promise.resolve(this.eventLines.splice(i, 1)[0]);
    const got = new Promise<Line>((resolve) => this.eventWaiters.push({ id, event, resolve }));
    return withTimeout(got, timeoutMs, () => `${this.name} sent no "${event}" for command ${id} within ${timeoutMs} ms`);
  }

  /** The node's recorded events (Manager events and handler aborts). */
  events(): Promise<NodeEvent[]> {
    return this.command<NodeEvent[]>({ cmd: "events" });
  }

  /** Polls the node's events until one matches; resolves with it. */
  async waitForNodeEvent(match: (e: NodeEvent) => boolean, what: string, timeoutMs = COMMAND_TIMEOUT_MS): Promise<NodeEvent> {
    const until = Date.now() + timeoutMs;
    for (;;) {
      const found = (await this.events()).find(match);
      if (found !== undefined) return found;
      if (Date.now() > until) throw new Error(`${this.name} recorded no ${what} within ${timeoutMs} ms`);
      await sleep(50);
    }
  }

  /**
   * Sends a signal while the process lives. Uses `process.kill(pid)`: Deno's
   * `ChildProcess.kill` sends nothing after its first signal (so no SIGCONT after SIGSTOP).
   */
  signal(sig: "SIGKILL" | "SIGSTOP" | "SIGCONT" | "SIGTERM"): void {
    if (this.exit !== null) return;
    try {
      process.kill(this.pid, sig);
    } catch {
      // It exited meanwhile.
    }
  }

  /** Sends SIGKILL; returns the epoch ms it was sent. */
  kill9(): number {
    const at = Date.now();
    this.signal("SIGKILL");
    return at;
  }

  /** Kills the process (if alive) and waits for its exit, bounded. */
  async destroy(): Promise<void> {
    if (this.exit === null) {
      this.signal("SIGKILL");
      await withTimeout(this.exited, 5_000, () => `${this.name} did not die on SIGKILL`).catch(() => {});
    }
    this.child.stdin?.destroy();
    this.child.stdout?.destroy();
    this.child.stderr?.destroy();
  }
}

/** Options of {@link Cluster.start}. */
export interface ClusterOptions {
  secret?: string;
  pingInterval?: number;
  backoff?: { base?: number; cap?: number };
  maxConcurrentHandshakes?: number;
  handshakeTimeout?: number;
  /** See {@link NodeConfig.countAccepts}. */
  countAccepts?: boolean;
  /**
   * Put a fault proxy (tests/e2e/_fault_proxy.ts, in this process) in front of each node: the
   * node's URL on the grid is its proxy's, and it serves on another port behind it, so every
   * link dialed to it runs through the proxy.
   */
  frontProxies?: boolean;
  /** See {@link NodeConfig.gracefulSigterm}. */
  gracefulSigterm?: boolean;
}

/** N nodes, one runtime each, forming one grid on 127.0.0.1. */
export class Cluster {
  readonly urls: string[];
  readonly nodes: NodeProc[];
  /** The fault proxy in front of each node (option `frontProxies`), else empty. */
  readonly proxies: FaultProxy[];
  private readonly configs: NodeConfig[];
  private readonly all: NodeProc[];

  private constructor(urls: string[], configs: NodeConfig[], nodes: NodeProc[], proxies: FaultProxy[]) {
    this.urls = urls;
    this.configs = configs;
    this.nodes = nodes;
    this.proxies = proxies;
    this.all = [...nodes];
  }

  /** Starts one node per runtime in `runtimes` and waits until each printed READY. */
  static async start(runtimes: Runtime[], options: ClusterOptions = {}): Promise<Cluster> {
    const ports = await freePorts(runtimes.length);
    const proxies = options.frontProxies === true
      ? await Promise.all(ports.map((p) => FaultProxy.start({ targetPort: p })))
      : [];
    const urls = proxies.length > 0 ? proxies.map((p) => p.url()) : ports.map((p) => `ws://127.0.0.1:${p}`);
    const configs = urls.map((local, i) => ({
      local,
      ...(proxies.length > 0 ? { port: ports[i] } : {}),
      hosts: urls,
      secret: options.secret ?? "e2e cluster secret",
      pingInterval: options.pingInterval ?? 500,
      backoff: options.backoff ?? { base: 20, cap: 200 },
      ...(options.maxConcurrentHandshakes !== undefined ? { maxConcurrentHandshakes: options.maxConcurrentHandshakes } : {}),
      ...(options.handshakeTimeout !== undefined ? { handshakeTimeout: options.handshakeTimeout } : {}),
      ...(options.countAccepts !== undefined ? { countAccepts: options.countAccepts } : {}),
      ...(options.gracefulSigterm !== undefined ? { gracefulSigterm: options.gracefulSigterm } : {}),
    }));
    const nodes = runtimes.map((r, i) => new NodeProc(r, configs[i]));
    const cluster = new Cluster(urls, configs, nodes, proxies);
    try {
      await Promise.all(nodes.map((n) => n.waitReady()));
    } catch (e) {
      await cluster.destroy();
      throw e;
    }
    return cluster;
  }

  /**
   * Starts node `i` again (same runtime, same URL) once the old process has exited;
   * `overrides` change its config for this start only (say, `startAt`).
   */
  async restart(i: number, overrides: Partial<NodeConfig> = {}): Promise<NodeProc> {
    const old = this.nodes[i];
    await withTimeout(old.exited, 5_000, () => `${old.name} has not exited; cannot restart it`);
    const node = new NodeProc(old.runtime, { ...this.configs[i], ...overrides });
    this.nodes[i] = node;
    this.all.push(node);
    await node.waitReady();
    return node;
  }

  /**
   * Starts one more node on a free port (not part of `urls` and `nodes` until it is in every
   * list: add it with the `setHosts` command), configured like the others but with `hosts`
   * (which must include its URL, given to the function that builds them).
   */
  async spawnExtra(runtime: Runtime, hosts: (url: string) => string[]): Promise<NodeProc> {
    const [port] = await freePorts(1);
    const local = `ws://127.0.0.1:${port}`;
    const node = new NodeProc(runtime, { ...this.configs[0], port: undefined, local, hosts: hosts(local) });
    this.all.push(node);
    await node.waitReady();
    return node;
  }

  /** Waits until every node reports every other node connected. */
  async waitConnected(timeoutMs = 10_000): Promise<void> {
    await Promise.all(this.nodes.map((n) =>
      n.command({ cmd: "wait", to: this.urls.filter((u) => u !== n.url), timeout: timeoutMs }, timeoutMs + 2_000)
    ));
  }

  /** Kills every process this cluster ever started that is still alive. */
  async destroy(): Promise<void> {
    await Promise.all(this.all.map((n) => n.destroy()));
    await Promise.all(this.proxies.map((p) => p.close()));
  }
}

/**
 * Established TCP connections between two processes on 127.0.0.1, from /proc (Linux):
 * sockets of `a` connected to `portB` plus sockets of `b` connected to `portA`. Returns
 * null where /proc cannot tell (not Linux, or no access).
 */
export function establishedBetween(pidA: number, portA: number, pidB: number, portB: number): number | null {
  const inodesA = socketInodes(pidA);
  const inodesB = socketInodes(pidB);
  const table = tcpTable();
  if (inodesA === null || inodesB === null || table === null) return null;
  let n = 0;
  for (const e of table) {
    if (inodesA.has(e.inode) && e.remotePort === portB) n++;
    if (inodesB.has(e.inode) && e.remotePort === portA) n++;
  }
  return n;
}

function socketInodes(pid: number): Set<string> | null {
  try {
    const out = new Set<string>();
    for (const fd of readdirSync(`/proc/${pid}/fd`)) {
      try {
        const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
        if (m !== null) out.add(m[1]);
      } catch {
        // The fd closed while we looked.
      }
    }
    return out;
  } catch {
    return null;
  }
}

function tcpTable(): { remotePort: number; inode: string }[] | null {
  const rows: { remotePort: number; inode: string }[] = [];
  let any = false;
  for (const file of ["/proc/net/tcp", "/proc/net/tcp6"]) {
    let text: string;
    try {
      text = readFileSync(file, "utf8");
    } catch {
      continue;
    }
    any = true;
    for (const line of text.split("\n").slice(1)) {
      const f = line.trim().split(/\s+/);
      // sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode; st 01 = ESTABLISHED
      if (f.length < 10 || f[3] !== "01") continue;
      rows.push({ remotePort: parseInt(f[2].split(":")[1], 16), inode: f[9] });
    }
  }
  return any ? rows : null;
}

/** Resolves after `ms`. */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Races `p` against a timer; the timer is cleared either way. */
export function withTimeout<T>(p: Promise<T>, ms: number, what: () => string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(what())), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}
