/**
 * Accept-side checks that do not need the Manager's state.
 *
 * @module
 */
import { shouldDial } from "./dial_rule.ts";

/** Null when `from` is the side that should dial `local`, else why not. */
export function dialRuleCheck(from: string, local: string): string | null {
  if (from === local) return `host "${from}" cannot dial itself`;
  if (!shouldDial(from, local)) return `"${local}" dials "${from}", not the other way round`;
  return null;
}
