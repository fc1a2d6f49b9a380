/**
 * Entry point of the browser bundle (`scripts/build_client.ts` builds it into
 * one minified ESM file, served by {@link adminPageHandler} at `<path>/client.js`):
 * the read-only {@link Client}, the error classes, typed handler definitions
 * and codecs. Web standards and msgpackr only.
 *
 * @example
 * ```ts
 * // In a browser, from a page served by adminPageHandler(grid, { path: "/admin" }):
 * const { Client } = await import("/admin/client.js");
 * const admin = new Client("ws://127.0.0.1:9000/grid/v1", { token: "read-only token" });
 * ```
 *
 * @module
 */
export { Client, type ClientOptions } from "../client.ts";
export * from "../errors.ts";
export { defineSingle, defineStream } from "../handlers/define.ts";
export { json, msgpack, raw } from "../handlers/codecs.ts";
export { GridStatsHandler, GridWatchHandler } from "../builtins.ts";
