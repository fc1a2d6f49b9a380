/**
 * The outgoing grid socket of the Node adapter, a client of the `ws` package,
 * and what the core is told about `ws` sockets (private to `src/adapters/`).
 *
 * Why not Node's global WebSocket (undici): it copies every message into a
 * new ArrayBuffer after assembling it, where `ws` with its default
 * `binaryType` "nodebuffer" hands over a view of the bytes read (the core
 * keeps "nodebuffer", see `GridSocket.binaryType`). Under a 16 KiB stream
 * that copy kept V8 in full mark-compacts every ~25 ms: a single request's
 * p99 on the same connection went from 0.85–6.7 ms (median ~2.9) to
 * 0.65–2.0 ms (median ~0.68), and the stream from 0.54–1.08 to
 * 0.93–1.35 GB/s (4 runs each, Node 24, loopback).
 *
 * @module
 */

import { WebSocket as WsClient } from "ws";
import type { DialLimits, GridSocket } from "../socket.ts";

/**
 * Opens `url` with the `ws` client (no compression: frames are binary and
 * mostly small), refusing messages over `maxFrameBytes` before buffering them.
 */
export function wsDial(url: string, limits?: DialLimits): GridSocket {
  // Left out rather than undefined: ws spreads its options over the defaults, and 0 means no limit.
  const opts = limits === undefined ? { perMessageDeflate: false } : { perMessageDeflate: false, maxPayload: limits.maxFrameBytes };
  return markWsSocket(new WsClient(url, opts));
}

/**
 * Tells the core how a `ws` socket's `send` treats its bytes: it may keep a
 * reference until they are written (a server socket always, a client whose
 * random mask came out all zero), and counts them in `bufferedAmount` until
 * then (see `GridSocket.sendBuffer`).
 */
export function markWsSocket(ws: object): GridSocket {
  Object.defineProperty(ws, "sendBuffer", { value: "until-written" });
  return ws as GridSocket;
}
