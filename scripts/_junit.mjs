/**
 * Reads the JUnit reports of `deno test --junit-path`, `bun test --reporter=junit` and
 * `node --test --test-reporter=junit` into one list of leaf tests for scripts/run_tests.mjs.
 *
 * The three differ: Node and Bun nest `describe` blocks as `<testsuite>` elements (Bun also has
 * one suite per file); Deno reports each top-level `describe` as a `<testcase>` in its file's
 * suite and every nested `it` as a further `<testcase>` named "describe > it" in a suite of its
 * node:test shim. Skipped and todo tests carry `<skipped>`; failures `<failure>` or `<error>`.
 */

/**
 * @typedef {object} TestCase
 * @property {string} name the testcase name as reported
 * @property {string} title describe path and name, joined with " > "
 * @property {string} classname the testcase classname as reported
 * @property {string} file the test file, as reported (relative or absolute), or ""
 * @property {boolean} failed
 * @property {boolean} skipped
 */

/**
 * A lenient XML reader, enough for these reports: elements and attributes; text, comments,
 * CDATA and processing instructions are skipped. A truncated file (a killed run) yields the
 * elements seen so far.
 *
 * @param {string} text
 */
export function parseXml(text) {
  const root = { name: "#root", attrs: {}, children: [] };
  const stack = [root];
  const tag =
    /<!--[\s\S]*?-->|<!\[CDATA\[[\s\S]*?\]\]>|<[?!][^>]*>|<\/([\w:.-]+)\s*>|<([\w:.-]+)((?:\s+[\w:.-]+\s*=\s*(?:"[^"]*"|'[^']*'))*)\s*(\/?)>/g;
  for (const m of text.matchAll(tag)) {
    if (m[1]) {
      const at = stack.findLastIndex((el) => el.name === m[1]);
      if (at > 0) stack.length = at;
    } else if (m[2]) {
      const el = { name: m[2], attrs: {}, children: [] };
      for (const a of m[3].matchAll(/([\w:.-]+)\s*=\s*(?:"([^"]*)"|'([^']*)')/g)) {
        el.attrs[a[1]] = decodeEntities(a[2] ?? a[3]);
      }
      stack[stack.length - 1].children.push(el);
      if (!m[4]) stack.push(el);
    }
  }
  return root;
}

const NAMED_ENTITIES = { lt: "<", gt: ">", amp: "&", quot: '"', apos: "'" };

function decodeEntities(s) {
  return s.replace(/&(#x[0-9a-f]+|#\d+|lt|gt|amp|quot|apos);/gi, (_, e) => {
    const named = NAMED_ENTITIES[e.toLowerCase()];
    if (named) return named;
    const hex = e[1] === "x" || e[1] === "X";
    return String.fromCodePoint(hex ? parseInt(e.slice(2), 16) : parseInt(e.slice(1), 10));
  });
}

/**
 * Every `<testcase>` under `node`, with its describe path (enclosing suites that are not files)
 * and the nearest file name known for it.
 *
 * @returns {TestCase[]}
 */
function testcases(node, file = "", suites = [], out = []) {
  for (const child of node.children) {
    if (child.name === "testcase") {
      const name = child.attrs.name ?? "";
      out.push({
        name,
        title: [...suites, name].join(" > "),
        classname: child.attrs.classname ?? "",
        file: child.attrs.file ?? file,
        failed: child.children.some((c) => c.name === "failure" || c.name === "error"),
        skipped: child.children.some((c) => c.name === "skipped"),
      });
    } else if (child.name === "testsuite") {
      const name = child.attrs.name ?? "";
      const isFile = /\.[cm]?[jt]sx?$/.test(name) || name.startsWith("ext:");
      const suiteFile = child.attrs.file ?? (isFile ? name : file);
      testcases(child, suiteFile, isFile ? suites : [...suites, name], out);
    } else {
      testcases(child, file, suites, out);
    }
  }
  return out;
}

/**
 * Deno's parents ("describe" testcases with "describe > it" steps) are not tests themselves; a
 * failing parent counts only when none of its steps failed (its hook or body threw). Steps get
 * the file of their top-level parent.
 *
 * @param {TestCase[]} cases
 * @returns {TestCase[]}
 */
function denoLeaves(cases) {
  const isStep = (c) => c.classname.startsWith("ext:");
  const fileOf = new Map(cases.filter((c) => !isStep(c)).map((c) => [c.name, c.file]));
  const leaves = [];
  for (const c of cases) {
    const prefix = `${c.name} > `;
    const steps = cases.filter((d) => d.name.startsWith(prefix));
    const file = isStep(c) ? fileOf.get(c.name.split(" > ")[0]) ?? "" : c.file;
    const leaf = { ...c, file };
    if (steps.length === 0) leaves.push(leaf);
    else if (c.failed && !steps.some((d) => d.failed)) leaves.push(leaf);
  }
  return leaves;
}

/**
 * The leaf tests in a JUnit report of `runtime`.
 *
 * @param {string} xml the report ("" when there is none)
 * @param {"deno" | "bun" | "node"} runtime
 * @returns {TestCase[]}
 */
export function leafTests(xml, runtime) {
  const cases = testcases(parseXml(xml));
  return runtime === "deno" ? denoLeaves(cases) : cases;
}
