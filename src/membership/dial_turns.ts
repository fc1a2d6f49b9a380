/**
 * Turns to dial. A node runs at most `limit` dials in their handshake at once, and the rest
 * wait their turn, so that joining a large grid, or a whole grid restarting at once, does not
 * open every socket in one burst: the memory of a burst stays with the process after it (V8's
 * young generation and the allocator's arenas grow to the peak and are not given back), and
 * its handshakes compete for the one thread that runs them all. A turn ends when its dial
 * settles, or after `turnMs` at the latest, so that a silent or slow host delays the dials
 * behind it by no more than that. A redial after a dial that failed only once its turn ran
 * out takes no turn (Connection.dialLoop): hosts that stay down like that must not queue up
 * ahead of the live ones, and backoff spreads their redials.
 *
 * @module
 */

const NOOP = (): void => {};

/** Hands out turns to dial, `limit` at once. */
export class DialTurns {
  private running = 0;
  private readonly waiting: Array<() => void> = [];
  private readonly limit: number;
  private readonly turnMs: number;

  constructor(limit: number, turnMs: number) {
    this.limit = limit;
    this.turnMs = turnMs;
  }

  /** Dials waiting for a turn now. */
  get queued(): number {
    return this.waiting.length;
  }

  /**
   * Resolves when it is the caller's turn, or at once when `signal` is (or becomes) aborted
   * (the caller is closing: no turn is taken). The result ends the turn; calling it twice,
   * or after the turn ran out, does nothing.
   */
  take(signal: AbortSignal): Promise<() => void> {
    if (signal.aborted) return Promise.resolve(NOOP);
    if (this.running < this.limit) {
      this.running++;
      return Promise.resolve(this.turn());
    }
    return new Promise((resolve) => {
      const go = (): void => {
        signal.removeEventListener("abort", quit);
        resolve(this.turn());
      };
      const quit = (): void => {
        const i = this.waiting.indexOf(go);
        if (i >= 0) this.waiting.splice(i, 1);
        resolve(NOOP);
      };
      this.waiting.push(go);
      signal.addEventListener("abort", quit, { once: true });
    });
  }

  /** A running turn: ends by its result or after `turnMs`, and passes on to the next waiter. */
  private turn(): () => void {
    let running = true;
    const end = (): void => {
      if (!running) return;
      running = false;
      clearTimeout(timer);
      const next = this.waiting.shift();
      if (next !== undefined) next(); // the turn passes on: `running` stays as it is
      else this.running--;
    };
    const timer = setTimeout(end, this.turnMs);
    return end;
  }
}
