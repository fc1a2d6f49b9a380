/**
 * wsgrid: a cluster of servers connected over WebSockets, one connection per
 * pair, carrying single requests and two-way streams with flow control,
 * deadlines, cancellation both ways, reconnect and per-handler authorization.
 * Runs on Deno, Bun and Node from the same sources.
 *
 * @example
 * ```ts
 * import { Manager } from "wsgrid";
 * import { serve } from "wsgrid/serve";
 * const hosts = ["ws://127.0.0.1:9000", "ws://127.0.0.1:9001"];
 * const grid = new Manager({ local: hosts[0], hosts, secret: "cluster secret" });
 * grid.handle("echo", (req) => req);
 * const server = await serve(grid, { port: 9000 });
 * const res = await grid.connection(hosts[1]).request("echo", new Uint8Array([1]), { waitForConnect: true });
 * ```
 *
 * @module
 */
export * from "./src/errors.ts";
export * from "./src/types.ts";
export { Manager, type AdminOptions, type GridEventDetail, type HostsEventDetail, type ManagerOptions } from "./src/manager.ts";
export type { BroadcastOptions, BroadcastResult } from "./src/membership/broadcast.ts";
export type { PickOptions } from "./src/membership/pick.ts";
export { Connection, type ConnectionState } from "./src/connection.ts";
export { shouldDial } from "./src/dial_rule.ts";
export type {
  CallOutcome,
  IncomingCall,
  IncomingInterceptor,
  InterceptedCall,
  Interceptor,
  OutgoingCall,
  OutgoingInterceptor,
} from "./src/interceptors.ts";
export {
  defineSingle,
  defineStream,
  type CodecOrSchema,
  type DefineSingleOptions,
  type DefineSingleSchemaOptions,
  type DefineStreamOptions,
  type DefineStreamSchemaOptions,
  type SentType,
  type ServedType,
  type SingleDefinition,
  type StreamDefinition,
} from "./src/handlers/define.ts";
export type {
  InferInput,
  InferOutput,
  StandardSchemaV1,
  StandardSchemaV1Failure,
  StandardSchemaV1Issue,
  StandardSchemaV1Options,
  StandardSchemaV1PathSegment,
  StandardSchemaV1Props,
  StandardSchemaV1Result,
  StandardSchemaV1Success,
  StandardSchemaV1Types,
} from "./src/handlers/standard_schema.ts";
export { json, msgpack, raw } from "./src/handlers/codecs.ts";
export { GridStatsHandler, GridWatchHandler } from "./src/builtins.ts";
export { DEFAULT_LIMITS } from "./src/protocol/limits.ts";
export { PROTOCOL_VERSION } from "./src/protocol/ops.ts";
export type { AcceptInfo, DialLimits, GridSocket, SocketAcceptor, SocketCloseEvent, SocketMessageEvent } from "./src/socket.ts";
