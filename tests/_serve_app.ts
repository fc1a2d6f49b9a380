/**
 * Serves a grid endpoint and a web-standard app handler (admin page, metrics) on
 * one port with the running runtime's embedding helper: denoHandler, bunHandlers,
 * or attachNode plus a Request conversion on Node.
 */
import { createServer as createHttpServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { Manager } from "../mod.ts";
import { detectRuntime } from "../src/adapters/serve.ts";

/** An app handler: a Response for its own paths, undefined for the rest. */
export type AppHandler = (req: Request) => Response | undefined;

/** Listens on 127.0.0.1:`port`; resolves with a function that stops the server. */
export async function serveWithApp(g: Manager, app: AppHandler, port: number): Promise<() => Promise<void>> {
  const host = "127.0.0.1";
  const runtime = detectRuntime();
  if (runtime === "deno") {
    const { denoHandler } = await import("../src/adapters/deno.ts");
    type DenoServe = (
      init: { port: number; hostname: string; onListen(): void },
      h: (req: Request) => Response,
    ) => { shutdown(): Promise<void> };
    const serveFn = (globalThis as unknown as { Deno: { serve: DenoServe } }).Deno.serve;
    const endpoint = denoHandler(g);
    const s = serveFn(
      { port, hostname: host, onListen() {} },
      (req) => endpoint(req) ?? app(req) ?? new Response("Not found", { status: 404 }),
    );
    return () => s.shutdown();
  }
  if (runtime === "bun") {
    const { bunHandlers } = await import("../src/adapters/bun.ts");
    const h = bunHandlers(g);
    type BunServe = (init: {
      port: number;
      hostname: string;
      fetch(req: Request, srv: Parameters<typeof h.fetch>[1]): Response;
      websocket: typeof h.websocket;
    }) => { stop(force: boolean): Promise<void> };
    const serveFn = (globalThis as unknown as { Bun: { serve: BunServe } }).Bun.serve;
    const s = serveFn({
      port,
      hostname: host,
      fetch: (req, srv) => h.fetch(req, srv) ?? app(req) ?? new Response("Not found", { status: 404 }),
      websocket: h.websocket,
    });
    return () => s.stop(true);
  }
  const { attachNode } = await import("../src/adapters/node.ts");
  const server = createHttpServer(async (req: IncomingMessage, res: ServerResponse) => {
    const headers = new Headers();
    for (const [k, v] of Object.entries(req.headers)) if (v !== undefined) headers.set(k, Array.isArray(v) ? v.join(", ") : v);
    const r = app(new Request(`http://${req.headers.host}${req.url}`, { method: req.method, headers }));
    if (r === undefined) return void res.writeHead(404).end();
    res.writeHead(r.status, Object.fromEntries(r.headers));
    res.end(new Uint8Array(await r.arrayBuffer()));
  });
  const attached = attachNode(g, server);
  await new Promise<void>((resolve) => server.listen(port, host, resolve));
  return async () => {
    await attached.close();
    await new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    });
  };
}
