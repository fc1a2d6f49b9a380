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
 * readable queue. Credits go back in batches of half the window (at least one),
 * as DESIGN.md suggests: every credit message is a socket write (about 16 µs
 * each in the profile of Bun's stream reader, most of it in `send`). Measured with
 * 16 KiB messages and a window of 16 (`deno task bench`, stream suite): half
 * the window beat a quarter (Bun 2.10 → 2.20 GB/s, Deno 0.86 → 1.07) and three
 * quarters (which left the sender idle while credit was on its way: Deno fell
 * to 0.11 GB/s). This cannot stall the sender: a sender out of credits has
 * `capacity` messages on their way, and once they are consumed a whole window
 * is pending.
 */
export function creditsToReturn(received: number, returned: number, queued: number, capacity: number): number {
  const pending = received - queued - returned;
  return pending >= Math.max(1, capacity >> 1) ? pending : 0;
}
