/**
 * What the lock history checker's processes (`_lock_history_node.ts`) and the test
 * (`lock_history_test.ts`) exchange.
 *
 * @module
 */
import { defineSingle } from "../../mod.ts";

/** Config of one history process. */
export interface HistoryNodeConfig {
  role: "lock" | "client";
  name: string;
  local: string;
  hosts: string[];
  lockHosts: string[];
  register: string;
  secret: string;
  resources: string[];
  leaseMs: number;
  acquireTimeoutMs: number;
  /** The port to serve on when `local` is a fault proxy in front of it. */
  servePort?: number;
}

/** A critical section's write to the fenced register. */
export interface HistoryWrite {
  client: string;
  runtime: string;
  uid: string;
  resource: string;
  token: number;
  /** Wall-clock ms when the lock was granted (performance.timeOrigin + now). */
  start: number;
  /** Wall-clock ms of the hold's expiresAt when writing. */
  expiresAt: number;
  /** Wall-clock ms when the write was sent. */
  at: number;
  /** Whether the hold's `lost` had fired before the write. */
  lostBeforeWrite: boolean;
}

export const HistoryWriteHandler = defineSingle<HistoryWrite, { accepted: boolean }>("history.write");
/** Sent by a client as soon as it holds a lock, before its critical section (so a pause can be aimed at a holder). */
export const HistoryHeldHandler = defineSingle<{ client: string }, null>("history.held");
export const HistoryReleaseHandler = defineSingle<{ uid: string; end: number }, null>("history.release");

/** The client's summary line. */
export interface HistoryClientSummary {
  client: string;
  runtime: string;
  acquired: number;
  timeouts: number;
  aborts: number;
  errors: number;
  /** Largest time past its timeout that a timed-out acquire settled, ms (paused ones excluded). */
  maxTimeoutOvershootMs: number;
  /** Largest time past the abort that an aborted acquire settled, ms (paused ones excluded). */
  maxAbortOvershootMs: number;
  /** Acquires left out of the overshoot figures because the process was paused meanwhile. */
  pausedAcquires: number;
}

