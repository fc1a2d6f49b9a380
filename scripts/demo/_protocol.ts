/**
 * What the demo's processes say to each other over the grid: the witness
 * handlers (served by the orchestrator) and the report/stop handlers (served by
 * every lock node).
 *
 * @module
 */
import { defineSingle } from "../../mod.ts";

/** Configuration of one lock node, passed as JSON in argv[2]. */
export interface NodeConfig {
  /** Display name, e.g. "node1". */
  name: string;
  /** This node's URL. */
  local: string;
  /** Every grid member: the lock nodes and the witness. */
  hosts: string[];
  /** The lock nodes. */
  lockHosts: string[];
  /** The orchestrator's URL (the witness). */
  witness: string;
  secret: string;
  /** Admin token accepted by the node (read-only clients, the admin page). */
  adminToken: string;
  /** Concurrent lock clients on this node. */
  clients: number;
  /** Resource names the clients contend on. */
  resources: string[];
  /** Share of read locks, 0..1. */
  readShare: number;
  /** Hold time range, ms. */
  holdMs: [number, number];
  expireAfterMs: number;
  sweepMs: number;
  refreshInterval: number;
}

/** A node's counters since its previous report (its latencies are drained). */
export interface NodeReport {
  name: string;
  runtime: string;
  pid: number;
  /** Completed lock → enter → hold → exit → unlock cycles. */
  ops: number;
  readOps: number;
  writeOps: number;
  /** Acquisition attempts refused by the quorum and retried. */
  retries: number;
  /** Acquisitions that gave up (TimeoutError). */
  timeouts: number;
  /** Holds whose lost signal fired. */
  lost: number;
  /** Other errors (witness calls, unexpected). */
  errors: number;
  /** Acquire latencies, ms, since the previous report. */
  latencies: number[];
  /** Grid peers (lock nodes and witness) this node sees up. */
  peersUp: number;
  peers: number;
  /** Locks held in this node's table now. */
  tableLocks: number;
}

/** One enter/exit report to the witness. */
export interface WitnessCall {
  resource: string;
  write: boolean;
  uid: string;
  node: string;
  /** The hold's fencing token: per resource, each writer's must exceed the previous writer's. */
  token: number;
}

export const WitnessEnter = defineSingle<WitnessCall, { violation: boolean }>("demo.enter");
export const WitnessExit = defineSingle<WitnessCall, { known: boolean }>("demo.exit");
export const NodeReportHandler = defineSingle<null, NodeReport>("demo.report");
export const NodeStopHandler = defineSingle<null, NodeReport>("demo.stop");
