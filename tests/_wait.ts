/**
 * Bounds for waits in tests: every wait ends, with an error naming what did
 * not happen, instead of hanging the runner.
 */

/** Rejects with "Timed out after MS ms: WHAT" unless `p` settles first. */
export function withTimeout<T>(p: Promise<T>, what: string, ms = 10_000): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`Timed out after ${ms} ms: ${what}`)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}
