/**
 * Credit bookkeeping shared by both ends of a stream.
 *
 * The sender holds credits and spends one per message; {@link CreditGate.take}
 * waits while it has none. The receiver counts messages it took out of its
 * readable queue and returns them in batches ({@link creditsToReturn}).
 *
 * @module
 */
import type { GridError } from "../errors.ts";

/** Sender-side credits: how many more messages may be sent. */
export class CreditGate {
  credits: number;
  private waiter: { resolve: () => void; reject: (e: unknown) => void } | null = null;
  private failure: unknown = null;
  private failed = false;

  constructor(initial: number) {
    this.credits = initial;
  }

  /** Waits for a credit and spends it. Rejects once the gate failed. */
  take(): Promise<void> | undefined {
    if (this.failed) return Promise.reject(this.failure);
    if (this.credits > 0) {
      this.credits--;
      return undefined;
    }
    return new Promise<void>((resolve, reject) => {
      this.waiter = {
        resolve: () => {
          this.credits--;
          resolve();
        },
        reject,
      };
    });
  }

  /** Adds credits granted by the receiver. */
  grant(n: number): void {
    this.credits += n;
    const w = this.waiter;
    if (w !== null && this.credits > 0) {
      this.waiter = null;
      w.resolve();
    }
  }

  /** Fails the gate: the pending and every later take rejects with `err`. */
  fail(err: GridError | unknown): void {
    if (this.failed) return;
    this.failed = true;
    this.failure = err;
    const w = this.waiter;
    this.waiter = null;
    w?.reject(err);
  }
}

/**
 * Receiver side: how many credits to return now. `received` counts messages that
 * arrived, `returned` credits already sent back, `queued` messages still in the
 * readable queue. Credits go back in batches of a quarter of the window (at least
 * one); DESIGN.md suggests half, to save messages (every credit message is a socket
 * write). Measured with 16 KiB messages and a window of 16 (`deno task bench`, stream
 * suite, alternating runs on one machine, 2026-12): a quarter against half, Deno
 * 0.61–1.21× (median 0.90×) against 0.61–0.81× (median 0.70×) raw, Bun 0.97–0.99×
 * against 0.87–0.92×, Node 1.01–1.05× against 1.01–1.03×, request p99 under the stream
 * on Deno 5.9–6.3× against 6.2–8.5× idle: with half, the writer waited for credit
 * that was still on its way. The cost is on Node's reader, which writes twice as many
 * credit messages: there a request's p99 under the stream rose from 1.1–1.7× to
 * 1.9–3.4× idle (the goal is 5×), and the stream meanwhile from ~1,300 to ~1,100 MB/s.
 * Returning credit sooner only while the reader has caught up (its queue empty) was
 * tried and could not be told apart from noise on that machine. Three quarters starves the writer (Deno fell to 0.11 GB/s
 * in an earlier measurement). This cannot stall the sender: a sender out of credits
 * has `capacity` messages on their way, and once they are consumed credit is pending.
 */
export function creditsToReturn(received: number, returned: number, queued: number, capacity: number): number {
  const pending = received - queued - returned;
  return pending >= Math.max(1, capacity >> 2) ? pending : 0;
}
