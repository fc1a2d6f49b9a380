/**
 * HTTP helpers shared by the Deno and Bun adapters.
 *
 * @module
 */

/** True for an HTTP request asking to upgrade to WebSocket. */
export function isWebSocketUpgrade(req: Request): boolean {
  return req.headers.get("upgrade")?.toLowerCase() === "websocket";
}

/** The 426 answer to a plain HTTP request on the grid path. */
export function upgradeRequired(): Response {
  return new Response("Upgrade required: the grid endpoint only accepts WebSocket upgrades\n", {
    status: 426,
    headers: { upgrade: "websocket", "content-type": "text/plain; charset=utf-8" },
  });
}
