/**
 * OpenTelemetry tracing for wsgrid: an interceptor pair that opens a client
 * span for every call this node makes and a server span for every call it
 * serves, following the OpenTelemetry RPC semantic conventions
 * (`rpc.system` "wsgrid", `rpc.method` the handler name, `server.address` and
 * `server.port` of the called node, status and `error.type` from the error
 * code). The W3C trace context travels in the call's metadata (`traceparent`,
 * `tracestate`), so a trace crosses nodes; a stream is one span, with a
 * `message` event per message sent or received.
 *
 * A handler's nested calls made with `{ parent: ctx }` are children of its
 * server span: the incoming interceptor puts the server span's `traceparent`
 * into `ctx.metadata`, which `parent` carries over. Calls made without a
 * parent use the active OpenTelemetry context (with a context manager
 * registered, spans started in a handler are children of its server span too).
 *
 * `@opentelemetry/api` is an optional peer dependency: only this entry point
 * imports it. Register a tracer provider (an SDK) as usual, or pass one.
 *
 * @example
 * ```ts
 * import { Manager } from "wsgrid";
 * import { openTelemetry } from "wsgrid/otel";
 * const grid = new Manager({ local: hosts[0], hosts, secret: "s" });
 * grid.use(openTelemetry());
 * ```
 *
 * @module
 */
import {
  type Attributes,
  context,
  type Context,
  createTraceState,
  isSpanContextValid,
  type Span,
  SpanKind,
  type SpanContext,
  SpanStatusCode,
  trace,
  type Tracer,
  type TracerProvider,
} from "@opentelemetry/api";
import { GridError } from "../errors.ts";
import type { InterceptedCall, Interceptor } from "../interceptors.ts";

export type {
  CallOutcome,
  IncomingCall,
  IncomingInterceptor,
  InterceptedCall,
  Interceptor,
  OutgoingCall,
  OutgoingInterceptor,
} from "../interceptors.ts";
export type { CallContext } from "../types.ts";

/**
 * An OpenTelemetry `TracerProvider` (declared by shape, so that this entry's types do not
 * re-export the OpenTelemetry API's).
 */
export interface TracerProviderLike {
  /** Returns the tracer of an instrumentation scope (an OpenTelemetry `Tracer`). */
  getTracer(name: string, version?: string): unknown;
}

/** Options of {@link openTelemetry}. */
export interface OpenTelemetryOptions {
  /**
   * Where spans go.
   * @default the global tracer provider (`trace.getTracerProvider()`)
   */
  tracerProvider?: TracerProviderLike;
  /**
   * Record a `message` event on a stream's span for each message sent and received.
   * @default true
   */
  messageEvents?: boolean;
}

/** The instrumentation scope name of wsgrid's spans. */
export const TRACER_NAME = "wsgrid";

const TRACEPARENT = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$/;
const ZERO_TRACE = "0".repeat(32);
const ZERO_SPAN = "0".repeat(16);

/**
 * The span context a W3C `traceparent` (and `tracestate`) names, or undefined when it is
 * absent or malformed (a malformed one is ignored, as the W3C spec asks).
 */
function parseTraceparent(traceparent: string | undefined, tracestate: string | undefined): SpanContext | undefined {
  if (typeof traceparent !== "string") return undefined;
  const m = TRACEPARENT.exec(traceparent.trim());
  if (m === null) return undefined;
  const [, version, traceId, spanId, flags, rest] = m;
  if (version === "ff" || (version === "00" && rest !== undefined)) return undefined;
  if (traceId === ZERO_TRACE || spanId === ZERO_SPAN) return undefined;
  return {
    traceId,
    spanId,
    traceFlags: parseInt(flags, 16) & 1,
    isRemote: true,
    traceState: typeof tracestate === "string" && tracestate !== "" ? createTraceState(tracestate) : undefined,
  };
}

/** Writes `sc` into `metadata` as W3C `traceparent` and `tracestate`. */
function injectTraceContext(metadata: Record<string, string>, sc: SpanContext): void {
  metadata.traceparent = `00-${sc.traceId}-${sc.spanId}-${(sc.traceFlags & 1) === 1 ? "01" : "00"}`;
  const state = sc.traceState?.serialize();
  if (state !== undefined && state !== "") metadata.tracestate = state;
  else delete metadata.tracestate;
}

/** `host` and `port` of a node URL; none for other names ("admin"). */
function addressOf(remote: string): { address: string; port: number | undefined } | null {
  let u: URL;
  try {
    u = new URL(remote);
  } catch {
    return null;
  }
  const port = u.port !== "" ? Number(u.port) : u.protocol === "wss:" ? 443 : u.protocol === "ws:" ? 80 : undefined;
  return { address: u.hostname.replace(/^\[|\]$/g, ""), port };
}

/** The attributes every span of a handler and remote shares, by side, cached (URL parsing is slow). */
const baseCache = new Map<string, Attributes>();

function attributesOf(call: InterceptedCall, side: "client" | "server"): Attributes {
  const key = `${side}\u0000${call.kind}\u0000${call.handler}\u0000${call.remote}`;
  let base = baseCache.get(key);
  if (base === undefined) {
    base = { "rpc.system": "wsgrid", "rpc.method": call.handler, "wsgrid.call.kind": call.kind };
    const at = addressOf(call.remote);
    const prefix = side === "client" ? "server" : "client";
    if (side === "server") base["wsgrid.remote"] = call.remote;
    if (at !== null) {
      base[`${prefix}.address`] = at.address;
      if (at.port !== undefined) base[`${prefix}.port`] = at.port;
    }
    if (baseCache.size >= 4096) baseCache.clear();
    baseCache.set(key, base);
  }
  // The SDK copies attributes into the span, so the cached object can be handed over as it is.
  return call.subroute === "" ? base : { ...base, "wsgrid.subroute": call.subroute };
}

/** The `error.type` of an outcome: a GridError's code, "canceled" for an abort, else the error's name. */
function errorType(e: unknown): string {
  if (e instanceof GridError) return e.code;
  if (e instanceof DOMException && e.name === "AbortError") return "canceled";
  return e instanceof Error ? e.name : "error";
}

/** Ends `span` with the call's outcome. */
function finish(span: Span, outcome: unknown): void {
  if (outcome !== undefined) {
    span.setAttribute("error.type", errorType(outcome));
    span.setStatus({ code: SpanStatusCode.ERROR, message: outcome instanceof Error ? outcome.message : String(outcome) });
  }
  span.end();
}

/** A `message` event per stream message, numbered per direction as the RPC conventions say. */
function recordMessages(call: InterceptedCall, span: Span): void {
  let sent = 0;
  let received = 0;
  call.onMessage((direction) => {
    const id = direction === "sent" ? ++sent : ++received;
    span.addEvent("message", { "rpc.message.type": direction === "sent" ? "SENT" : "RECEIVED", "rpc.message.id": id });
  });
}

/** The context a span of `call` starts in: the trace context its metadata carries, else the active one. */
function parentContext(call: InterceptedCall): Context {
  const sc = parseTraceparent(call.metadata.traceparent, call.metadata.tracestate);
  return sc === undefined ? context.active() : trace.setSpanContext(context.active(), sc);
}

function tracerOf(options: OpenTelemetryOptions): Tracer {
  const provider = (options.tracerProvider ?? trace.getTracerProvider()) as TracerProvider;
  return provider.getTracer(TRACER_NAME);
}

/**
 * The interceptor pair for `grid.use()` (or the `outgoing` side for a `Client`): a client span
 * per call made, a server span per call served.
 *
 * @param options the tracer provider and whether streams record message events
 * @returns `{ incoming, outgoing }`
 * @example
 * ```ts
 * import { openTelemetry } from "wsgrid/otel";
 * grid.use(openTelemetry());
 * const client = new Client(url, { token, outgoing: [openTelemetry().outgoing!] });
 * ```
 */
export function openTelemetry(options: OpenTelemetryOptions = {}): Interceptor {
  const messageEvents = options.messageEvents ?? true;
  let tracer: Tracer | undefined;
  // Looked up at the first call, so that a provider registered after `use()` is the one used.
  const getTracer = () => (tracer ??= tracerOf(options));
  return {
    outgoing: (call, next) => {
      const parent = parentContext(call);
      const span = getTracer().startSpan(call.handler, { kind: SpanKind.CLIENT, attributes: attributesOf(call, "client") }, parent);
      const sc = span.spanContext();
      if (isSpanContextValid(sc)) injectTraceContext(call.metadata, sc);
      if (messageEvents && call.kind === "stream") recordMessages(call, span);
      call.onEnd((outcome) => finish(span, outcome));
      return context.with(trace.setSpan(parent, span), next);
    },
    incoming: (call, next) => {
      const parent = parentContext(call);
      const span = getTracer().startSpan(call.handler, { kind: SpanKind.SERVER, attributes: attributesOf(call, "server") }, parent);
      const sc = span.spanContext();
      // The handler's nested calls with { parent: ctx } carry this span as their parent.
      if (isSpanContextValid(sc)) injectTraceContext(call.metadata, sc);
      if (messageEvents && call.kind === "stream") recordMessages(call, span);
      call.onEnd((outcome) => finish(span, outcome));
      return context.with(trace.setSpan(parent, span), next);
    },
  };
}
