/**
 * Lint rules that the type checker cannot express.
 *
 * - The core (every `.ts` file under `src/` outside `src/adapters/`, and `mod.ts`) uses web
 *   standards only: no `Deno`, `Bun`, `process`, `Buffer`, `__dirname`/`__filename`, no
 *   `node:`/`bun:` or bare Node built-in imports, no `require`.
 * - No `any` type in `src/` (adapters included) or `mod.ts`.
 *
 * Comments, string literals and template text are blanked before matching, so JSDoc examples
 * and messages may mention runtime APIs freely. Prints `file:line: problem` for each finding and
 * exits 1, or prints `lint: N files clean` and exits 0.
 *
 * Usage: `deno run -A scripts/lint.ts [dir]` (default: the repository root).
 *
 * @module
 */

/** One finding: where it is and what is wrong. */
interface Finding {
  file: string;
  line: number;
  message: string;
  source: string;
}

/** A pattern applied to one line of a view of the source. */
interface Rule {
  /** Matched against the line with comments and string contents blanked, or comments only. */
  view: "code" | "imports";
  pattern: RegExp;
  message: string;
}

const NODE_BUILTINS = [
  "assert",
  "async_hooks",
  "buffer",
  "child_process",
  "cluster",
  "crypto",
  "dgram",
  "dns",
  "events",
  "fs",
  "fs/promises",
  "http",
  "http2",
  "https",
  "module",
  "net",
  "os",
  "path",
  "perf_hooks",
  "process",
  "readline",
  "stream",
  "stream/web",
  "timers",
  "tls",
  "url",
  "util",
  "vm",
  "worker_threads",
  "zlib",
];

/** Not preceded by an identifier character or a member-access dot. */
const START = String.raw`(?<![\w$.])`;
/** Not a property key, optional property, method declaration or call: `x:`, `x?:`, `x(`. */
const NOT_KEY = String.raw`(?!\s*(?:\??:|\())`;
const builtins = NODE_BUILTINS.map((name) => name.replace("/", "\\/")).join("|");

/** Rules for the web-standard core only. */
const CORE_RULES: Rule[] = [
  {
    view: "code",
    pattern: new RegExp(`${START}(Deno|Bun|process|Buffer|__dirname|__filename)\\b${NOT_KEY}`),
    message: "runtime API `$1` outside src/adapters/ (the core uses web standards only)",
  },
  {
    view: "code",
    pattern: /\b(?:globalThis|self|window)\s*\??\.\s*(Deno|Bun|process|Buffer)\b/,
    message: "runtime API `$1` outside src/adapters/ (the core uses web standards only)",
  },
  {
    view: "imports",
    pattern: /(?:\bfrom|\bimport)\s*\(?\s*["'`]((?:node|bun):[\w/.-]*)["'`]/,
    message: "runtime import `$1` outside src/adapters/ (the core uses web standards only)",
  },
  {
    view: "imports",
    pattern: new RegExp(`(?:\\bfrom|\\bimport)\\s*\\(?\\s*["'\`](${builtins})["'\`]`),
    message: "Node built-in import `$1` outside src/adapters/ (the core uses web standards only)",
  },
  {
    view: "code",
    pattern: new RegExp(`${START}require\\s*(?:\\(|\\.)`),
    message: "`require` outside src/adapters/ (the core is ESM with web standards only)",
  },
];

/** Rules for every linted file. */
const ALL_RULES: Rule[] = [
  {
    view: "code",
    pattern: new RegExp(`${START}any\\b${NOT_KEY}`),
    message: "`any` type (use `unknown`, a generic or a precise type)",
  },
];

const KEYWORDS_BEFORE_REGEX = new Set([
  "return",
  "typeof",
  "case",
  "do",
  "else",
  "in",
  "of",
  "new",
  "delete",
  "void",
  "throw",
  "instanceof",
  "yield",
  "await",
]);

/**
 * Two views of `source` with line structure preserved: `code` has comments and the contents of
 * string, template and regular-expression literals replaced by spaces (template `${}`
 * expressions stay code); `imports` has only comments blanked.
 */
function views(source: string): { code: string; imports: string } {
  const code: string[] = [];
  const imports: string[] = [];
  const blank = (ch: string) => (ch === "\n" ? "\n" : " ");
  // Brace depth of each open template `${`, so `}` knows whether it resumes template text.
  const templates: number[] = [];
  let depth = 0;
  let lastSignificant = "";
  let lastWord = "";
  let i = 0;
  const n = source.length;
  const emit = (codeCh: string, importCh: string) => {
    code.push(codeCh);
    imports.push(importCh);
  };
  const scanQuoted = (quote: string) => {
    emit(quote, quote);
    i++;
    while (i < n && source[i] !== quote && source[i] !== "\n") {
      if (source[i] === "\\" && i + 1 < n) {
        emit(" ", source[i]);
        i++;
      }
      emit(blank(source[i]), source[i]);
      i++;
    }
    if (i < n) {
      emit(source[i], source[i]);
      i++;
    }
  };
  /** Scans template text from after a backtick or `}`; stops after the closing backtick or `${`. */
  const scanTemplateText = () => {
    while (i < n) {
      const ch = source[i];
      if (ch === "\\" && i + 1 < n) {
        emit(" ", ch);
        emit(blank(source[i + 1]), source[i + 1]);
        i += 2;
      } else if (ch === "`") {
        emit(ch, ch);
        i++;
        return;
      } else if (ch === "$" && source[i + 1] === "{") {
        emit("$", "$");
        emit("{", "{");
        i += 2;
        templates.push(depth);
        depth++;
        return;
      } else {
        emit(blank(ch), ch);
        i++;
      }
    }
  };
  while (i < n) {
    const ch = source[i];
    const next = source[i + 1];
    if (ch === "/" && next === "/") {
      while (i < n && source[i] !== "\n") {
        emit(" ", " ");
        i++;
      }
      continue;
    }
    if (ch === "/" && next === "*") {
      while (i < n && !(source[i] === "*" && source[i + 1] === "/")) {
        emit(blank(source[i]), blank(source[i]));
        i++;
      }
      if (i < n) {
        emit(" ", " ");
        emit(" ", " ");
        i += 2;
      }
      continue;
    }
    if (ch === '"' || ch === "'") {
      scanQuoted(ch);
      lastSignificant = ch;
      lastWord = "";
      continue;
    }
    if (ch === "`") {
      emit(ch, ch);
      i++;
      scanTemplateText();
      lastSignificant = "`";
      lastWord = "";
      continue;
    }
    if (
      ch === "/" && (lastSignificant === "" || "(,=:[!&|?{};+-*%<>~^".includes(lastSignificant) ||
        KEYWORDS_BEFORE_REGEX.has(lastWord))
    ) {
      emit("/", "/");
      i++;
      let inClass = false;
      while (i < n && source[i] !== "\n" && (inClass || source[i] !== "/")) {
        if (source[i] === "\\" && i + 1 < n) {
          emit(" ", source[i]);
          i++;
        } else if (source[i] === "[") inClass = true;
        else if (source[i] === "]") inClass = false;
        emit(blank(source[i]), source[i]);
        i++;
      }
      if (i < n) {
        emit(source[i], source[i]);
        i++;
      }
      lastSignificant = "/";
      lastWord = "";
      continue;
    }
    if (ch === "{") depth++;
    if (ch === "}") {
      depth--;
      if (templates.length > 0 && templates[templates.length - 1] === depth) {
        templates.pop();
        emit(ch, ch);
        i++;
        scanTemplateText();
        lastSignificant = "`";
        lastWord = "";
        continue;
      }
    }
    emit(ch, ch);
    i++;
    if (/[\w$]/.test(ch)) {
      lastWord = /[\w$]/.test(lastSignificant) ? lastWord + ch : ch;
      lastSignificant = ch;
    } else if (!/\s/.test(ch)) {
      lastSignificant = ch;
      lastWord = "";
    }
  }
  return { code: code.join(""), imports: imports.join("") };
}

/** Lints one file's text; `core` selects the web-standards rules. */
function lintSource(file: string, source: string, core: boolean): Finding[] {
  const { code, imports } = views(source);
  const lines = { code: code.split("\n"), imports: imports.split("\n") };
  const sourceLines = source.split("\n");
  const rules = core ? [...CORE_RULES, ...ALL_RULES] : ALL_RULES;
  const findings: Finding[] = [];
  for (let index = 0; index < sourceLines.length; index++) {
    for (const rule of rules) {
      const match = rule.pattern.exec(lines[rule.view][index] ?? "");
      if (match) {
        findings.push({
          file,
          line: index + 1,
          message: rule.message.replace("$1", match[1] ?? ""),
          source: sourceLines[index].trim(),
        });
      }
    }
  }
  return findings;
}

async function* walk(dir: string, rel: string): AsyncGenerator<string> {
  let entries: Deno.DirEntry[];
  try {
    entries = await Array.fromAsync(Deno.readDir(dir));
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return;
    throw error;
  }
  entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  for (const entry of entries) {
    const path = `${dir}/${entry.name}`;
    const relPath = `${rel}/${entry.name}`;
    if (entry.isDirectory) yield* walk(path, relPath);
    else if (entry.isFile && entry.name.endsWith(".ts")) yield relPath;
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return false;
    throw error;
  }
}

async function main(args: string[]): Promise<number> {
  const root = (args[0] ?? decodeURIComponent(new URL("..", import.meta.url).pathname)).replace(
    /\/+$/,
    "",
  );
  const files: string[] = [];
  if (await exists(`${root}/mod.ts`)) files.push("mod.ts");
  for await (const file of walk(`${root}/src`, "src")) files.push(file);
  const findings: Finding[] = [];
  for (const file of files) {
    const source = await Deno.readTextFile(`${root}/${file}`);
    findings.push(...lintSource(file, source, !file.startsWith("src/adapters/")));
  }
  if (findings.length === 0) {
    console.log(`lint: ${files.length} files clean`);
    return 0;
  }
  for (const f of findings) console.log(`${f.file}:${f.line}: ${f.message}\n    ${f.source}`);
  console.log(`lint: ${findings.length} problem(s) in ${files.length} files`);
  return 1;
}

if (import.meta.main) Deno.exit(await main(Deno.args));
