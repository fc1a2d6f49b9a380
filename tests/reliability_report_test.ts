/**
 * The renderer of docs/RELIABILITY.md (scripts/reliability_report.ts), on synthetic results:
 * figures and bounds per runner, the summary's lost/hung totals, and scenarios without results.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { renderReport, type ScenarioResult } from "../scripts/reliability_report.ts";

function result(over: Partial<ScenarioResult>): ScenarioResult {
  return {
    scenario: "soak",
    title: "Mixed-load soak with random faults, 20 s",
    runner: "node",
    setup: "3 in-process nodes",
    mode: "short",
    at: "2026-01-02T03:04:05.678Z",
    durationMs: 20_400,
    bound: "every call settles by its deadline",
    figures: [
      { name: "calls", value: 7000, unit: "" },
      { name: "heap growth", value: 0.5, unit: "MB", bound: 16, op: "<=" },
    ],
    lost: 0,
    hung: 0,
    ...over,
  };
}

describe("reliability report", () => {
  it("renders one column per runner with each figure, its bound and whether it was met", () => {
    const md = renderReport([
      result({ runner: "node", seed: 7 }),
      result({ runner: "deno", seed: 9, figures: [{ name: "calls", value: 6500, unit: "" }, { name: "heap growth", value: 20, unit: "MB", bound: 16, op: "<=" }] }),
    ]);
    assert.match(md, /\| figure \| bound \| deno \| node \|/);
    assert.match(md, /\| calls \| {2}\| 6,500 \| 7,000 \|/);
    assert.match(md, /\| heap growth \| ≤ 16 MB \| 20 MB ✗ \| 0\.5 MB ✓ \|/);
    assert.match(md, /Seed of the random choices: deno 9, node 7\./);
    assert.match(md, /\| \[Mixed-load soak with random faults\]\(#mixed-load-soak-with-random-faults\) \| deno, node \| 0 \| 0 \| \*\*no\*\* \|/);
    assert.match(md, /node 2026-01-02 03:04:05 UTC \(short mode\)/);
  });

  it("sums lost and hung over runners in the summary and shows them per runner", () => {
    const md = renderReport([result({ runner: "bun", lost: 1, hung: 2 }), result({ runner: "node" })]);
    assert.match(md, /\| bun, node \| 1 \| 2 \|/);
    assert.match(md, /\| lost \| = 0 \| 1 \| 0 \|/);
    assert.match(md, /\| hung \| = 0 \| 2 \| 0 \|/);
  });

  it("lists every scenario, marking those without results as not measured", () => {
    const md = renderReport([]);
    const headings = [
      "Blackholed link",
      "Partition and heal",
      "Reconnect storm",
      "Stream churn",
      "Mixed-load soak with random faults",
      "Cross-runtime soak with random faults",
      "Process exit after close()",
      "Lock history checker",
      "Fuzzed frames",
    ];
    for (const heading of headings) {
      assert.ok(md.includes(`## ${heading}`), heading);
    }
    assert.equal(md.match(/\| not measured \|/g)?.length, headings.length);
    assert.match(md, /do not edit by hand/);
  });
});
