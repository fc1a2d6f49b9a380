/**
 * Runs lock-service clean-ups when a Manager closes.
 *
 * The Manager has no close event, so `close()` is wrapped once per instance
 * and every registered clean-up runs before the original `close()`: the lock
 * server's sweep, held locks' refresh and lapse timers, and background
 * unlock retries all end with the grid, so none keeps a process alive.
 *
 * @module
 */

import type { Manager } from "../manager.ts";

interface CloseHooks {
  readonly hooks: Set<() => void>;
  closed: boolean;
}

const byGrid = new WeakMap<Manager, CloseHooks>();

function hooksOf(grid: Manager): CloseHooks {
  let entry = byGrid.get(grid);
  if (entry !== undefined) return entry;
  const created: CloseHooks = { hooks: new Set(), closed: false };
  entry = created;
  byGrid.set(grid, created);
  const close = grid.close;
  grid.close = function (this: Manager): Promise<void> {
    created.closed = true;
    for (const hook of [...created.hooks]) hook();
    created.hooks.clear();
    return close.call(this);
  };
  return created;
}

/**
 * Calls `hook` when `grid.close()` is called (at once when it already was).
 *
 * @returns a function that unregisters the hook
 */
export function onGridClose(grid: Manager, hook: () => void): () => void {
  const entry = hooksOf(grid);
  if (entry.closed) {
    hook();
    return () => {};
  }
  entry.hooks.add(hook);
  return () => entry.hooks.delete(hook);
}

/** Whether `grid.close()` was called (as seen by the wrapper). */
export function gridClosed(grid: Manager): boolean {
  return byGrid.get(grid)?.closed ?? false;
}
