/**
 * The handler registry: raw single and stream handlers by name and subroute.
 * A registration with a subroute serves only that subroute and wins over one
 * without, which serves any subroute.
 *
 * @module
 */
import type { CallContext, Codec, StreamCall } from "../types.ts";
import { raw } from "./codecs.ts";
import { GridError } from "../errors.ts";

/** A registered single-request handler (bytes in, bytes out). */
export interface SingleEntry {
  readonly kind: "single";
  readonly name: string;
  readonly readOnly: boolean;
  readonly fn: (req: Uint8Array, ctx: CallContext) => Uint8Array | Promise<Uint8Array>;
}

/** A registered stream handler with its codecs and capacities. */
export interface StreamEntry {
  readonly kind: "stream";
  readonly name: string;
  readonly readOnly: boolean;
  readonly inCapacity: number;
  readonly outCapacity: number;
  readonly payload: Codec<unknown>;
  readonly request: Codec<unknown>;
  readonly response: Codec<unknown>;
  /** Writes `call.responses`, or returns an async iterable (an `async function*`) of the responses. */
  readonly fn: (call: StreamCall<unknown, unknown, unknown>) => void | Promise<void> | AsyncIterable<unknown>;
}

/** Either kind of entry. */
export type HandlerEntry = SingleEntry | StreamEntry;

interface Slot {
  any: HandlerEntry | undefined;
  bySubroute: Map<string, HandlerEntry> | undefined;
}

/** Handlers by name and subroute. */
export class HandlerRegistry {
  private readonly slots = new Map<string, Slot>();

  /**
   * Registers an entry. A second registration of a name and subroute is refused, as MinIO's
   * grid refuses it (ErrHandlerAlreadyExists): silently replacing a handler hides a wiring bug.
   */
  add(entry: HandlerEntry, subroute: string | undefined): void {
    if (typeof entry.name !== "string" || entry.name.length === 0) {
      throw new TypeError("Cannot register handler: name must be a non-empty string");
    }
    let slot = this.slots.get(entry.name);
    if (slot === undefined) {
      slot = { any: undefined, bySubroute: undefined };
      this.slots.set(entry.name, slot);
    }
    const taken = subroute === undefined ? slot.any !== undefined : slot.bySubroute?.has(subroute) === true;
    if (taken) {
      const sub = subroute === undefined ? "" : ` (subroute "${subroute}")`;
      throw new GridError("exists", `Cannot register handler "${entry.name}"${sub}: it is registered already`);
    }
    if (subroute === undefined) slot.any = entry;
    else (slot.bySubroute ??= new Map()).set(subroute, entry);
  }

  /** Removes the registration for a name (and subroute). */
  remove(name: string, subroute?: string): boolean {
    const slot = this.slots.get(name);
    if (slot === undefined) return false;
    if (subroute === undefined) {
      const had = slot.any !== undefined;
      slot.any = undefined;
      return had;
    }
    return slot.bySubroute?.delete(subroute) ?? false;
  }

  /** Finds the handler serving `name` with `subroute`. */
  lookup(name: string, subroute: string): HandlerEntry | undefined {
    const slot = this.slots.get(name);
    if (slot === undefined) return undefined;
    if (slot.bySubroute !== undefined && subroute !== "") {
      const e = slot.bySubroute.get(subroute);
      if (e !== undefined) return e;
    }
    return slot.any;
  }

  /** Names of all registered handlers. */
  names(): string[] {
    return [...this.slots.keys()];
  }
}

/** Codecs of a raw stream. */
export const RAW_STREAM_CODECS = { payload: raw, request: raw, response: raw } as const;
