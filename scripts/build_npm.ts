/**
 * Builds the npm package into `npm/`, doing what dnt would do (dnt lives on JSR, which this
 * project cannot reach) with the `typescript` package:
 *
 * - compiles every entry point of deno.json `exports` into `npm/esm/**\/*.js` + `.d.ts`
 *   (relative `.ts` import specifiers become `.js` through `rewriteRelativeImportExtensions`);
 *   an entry whose source file does not exist yet is skipped with a warning;
 * - generates `npm/package.json` from deno.json (version, license, description) and
 *   package.json (the versions of the runtime dependencies msgpackr and ws, and of the
 *   optional peer dependency `@opentelemetry/api`, which only `wsgrid/otel` imports);
 * - copies README.md and LICENSE.
 *
 * Any type error fails the build (exit code 1) with the compiler's diagnostics.
 *
 * `ws` ships no types, and the adapters only use it through local interfaces (casting its
 * exports), so the build declares a minimal `ws` module shim instead of depending on
 * `@types/ws`; the emitted `.d.ts` files never mention `ws`.
 *
 * Runs under Deno (`deno task build:npm`) and Node 24 (`node scripts/build_npm.ts`).
 *
 * Usage: deno run -A scripts/build_npm.ts [--out DIR] [--quiet]
 *
 * @module
 */
import { cpSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";
import ts from "typescript";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");

/** The npm package's name; the JSR name (deno.json `name`) is scoped, the npm one is not. */
const NPM_NAME = "wsgrid";
/** Packages the built code imports at run time; their version ranges come from package.json. */
const RUNTIME_DEPENDENCIES = ["msgpackr", "ws"];
/** Packages only some entry points import: optional peer dependencies, ranges from package.json. */
const OPTIONAL_PEER_DEPENDENCIES = ["@opentelemetry/api"];
/** Files copied next to package.json. */
const EXTRA_FILES = ["README.md", "LICENSE"];
/** The output directory for compiled files, relative to the package root. */
const ESM_DIR = "esm";

/**
 * Type declarations for `ws` (which has no bundled types): just what the adapters import.
 * They cast these exports to local interfaces, so constructors are all they need.
 */
const WS_SHIM_FILE = join(ROOT, "__build_npm_ws_shim.d.ts");
const WS_SHIM = `declare module "ws" {
  export class WebSocket {
    constructor(url: string, options?: { perMessageDeflate?: boolean });
  }
  export class WebSocketServer {
    constructor(options: { noServer: true; maxPayload: number });
  }
}
`;

/** What a build produced. */
export interface BuildResult {
  /** The package directory. */
  outDir: string;
  /** The generated package.json. */
  packageJson: NpmPackageJson;
  /** The deno.json export keys that were skipped because their source file is missing. */
  skipped: string[];
  /** Wall-clock time of the build, ms. */
  ms: number;
}

/** The fields of the generated npm package.json. */
export interface NpmPackageJson {
  name: string;
  version: string;
  description: string;
  license: string;
  type: "module";
  main: string;
  types: string;
  exports: Record<string, { types: string; import: string }>;
  files: string[];
  sideEffects: false;
  engines: { node: string };
  dependencies: Record<string, string>;
  peerDependencies?: Record<string, string>;
  peerDependenciesMeta?: Record<string, { optional: true }>;
  keywords?: string[];
  repository?: { type: string; url: string };
  homepage?: string;
  bugs?: { url: string };
}

interface DenoJson {
  name?: string;
  version?: string;
  license?: string;
  description?: string;
  exports?: string | Record<string, string>;
}

interface DevPackageJson {
  dependencies?: Record<string, string>;
  devDependencies?: Record<string, string>;
  repository?: { type: string; url: string };
  homepage?: string;
  bugs?: { url: string };
}

/** Thrown for a build that cannot complete; `main` prints its message and exits 1. */
export class BuildError extends Error {
  override name = "BuildError";
}

function readJson<T>(file: string): T {
  return JSON.parse(readFileSync(file, "utf8")) as T;
}

/** `./src/x.ts` -> `./esm/src/x.js` (or `.d.ts`). */
function outputPath(source: string, ext: ".js" | ".d.ts"): string {
  return `./${ESM_DIR}/${source.replace(/^\.\//, "").replace(/\.ts$/, ext)}`;
}

/** The first sentence of mod.ts's `@module` doc block, as a fallback description. */
function moduleDocSummary(): string | undefined {
  const modTs = join(ROOT, "mod.ts");
  if (!existsSync(modTs)) return undefined;
  const block = /\/\*\*([\s\S]*?)\*\//.exec(readFileSync(modTs, "utf8"))?.[1];
  if (!block?.includes("@module")) return undefined;
  const text = block.split("\n").map((l) => l.replace(/^\s*\*\s?/, "")).join(" ");
  const summary = /^\s*(.+?\.)(\s|$)/.exec(text.split("@")[0])?.[1];
  return summary?.replace(/\s+/g, " ").trim();
}

function compilerOptions(outDir: string): ts.CompilerOptions {
  return {
    target: ts.ScriptTarget.ES2022,
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
    // esnext.disposable: Symbol.asyncDispose (`await using` on Manager, Client, servers, streams).
    lib: ["lib.es2023.d.ts", "lib.esnext.disposable.d.ts", "lib.dom.d.ts", "lib.dom.iterable.d.ts"],
    types: ["node"],
    typeRoots: [join(ROOT, "node_modules", "@types")],
    strict: true,
    verbatimModuleSyntax: true,
    erasableSyntaxOnly: true,
    rewriteRelativeImportExtensions: true,
    declaration: true,
    // Members marked @internal (Connection.close(), the Manager's ConnectionOwner methods, ...)
    // are left out of the published .d.ts: only what API.md names is public.
    stripInternal: true,
    rootDir: ROOT,
    outDir: join(outDir, ESM_DIR),
    newLine: ts.NewLineKind.LineFeed,
    removeComments: false,
    sourceMap: false,
    skipLibCheck: true,
    noEmitOnError: true,
  };
}

/** `./x.ts` -> `./x.js` for relative specifiers; others unchanged. */
function rewriteSpecifier(specifier: string): string {
  return /^\.\.?\//.test(specifier) && /\.[cm]?ts$/.test(specifier) && !specifier.endsWith(".d.ts")
    ? specifier.replace(/\.([cm]?)ts$/, ".$1js")
    : specifier;
}

/**
 * `rewriteRelativeImportExtensions` rewrites the emitted JavaScript only: declaration emit keeps
 * `./x.ts`. This transformer does the same for the `.d.ts` files (imports, re-exports and
 * `import("./x.ts")` types), so they read like any published package's.
 */
const rewriteDeclarationSpecifiers: ts.TransformerFactory<ts.SourceFile | ts.Bundle> = (context) => {
  const { factory } = context;
  const literal = (node: ts.Expression | undefined) =>
    node && ts.isStringLiteral(node) && rewriteSpecifier(node.text) !== node.text
      ? factory.createStringLiteral(rewriteSpecifier(node.text))
      : undefined;
  const visit = (node: ts.Node): ts.Node => {
    if (ts.isImportDeclaration(node)) {
      const spec = literal(node.moduleSpecifier);
      if (spec) {
        return factory.updateImportDeclaration(node, node.modifiers, node.importClause, spec, node.attributes);
      }
    } else if (ts.isExportDeclaration(node)) {
      const spec = literal(node.moduleSpecifier);
      if (spec) {
        return factory.updateExportDeclaration(
          node,
          node.modifiers,
          node.isTypeOnly,
          node.exportClause,
          spec,
          node.attributes,
        );
      }
    } else if (ts.isImportTypeNode(node) && ts.isLiteralTypeNode(node.argument)) {
      const spec = literal(node.argument.literal as ts.Expression);
      if (spec) {
        return factory.updateImportTypeNode(
          node,
          factory.updateLiteralTypeNode(node.argument, spec),
          node.attributes,
          node.qualifier,
          node.typeArguments?.map((t) => ts.visitNode(t, visit, ts.isTypeNode)),
          node.isTypeOf,
        );
      }
    }
    return ts.visitEachChild(node, visit, context);
  };
  return (file) => ts.visitNode(file, visit) as ts.SourceFile | ts.Bundle;
};

/** Compiles `entries` (absolute paths) into `outDir/esm`; throws BuildError on any diagnostic. */
function compile(entries: string[], outDir: string): number {
  const options = compilerOptions(outDir);
  const host = ts.createCompilerHost(options);
  const getSourceFile = host.getSourceFile.bind(host);
  const fileExists = host.fileExists.bind(host);
  const readFile = host.readFile.bind(host);
  host.getSourceFile = (file, lang, onError, create) =>
    file === WS_SHIM_FILE
      ? ts.createSourceFile(file, WS_SHIM, lang)
      : getSourceFile(file, lang, onError, create);
  host.fileExists = (file) => file === WS_SHIM_FILE || fileExists(file);
  host.readFile = (file) => (file === WS_SHIM_FILE ? WS_SHIM : readFile(file));

  const program = ts.createProgram({ rootNames: [...entries, WS_SHIM_FILE], options, host });
  const diagnostics = [...ts.getPreEmitDiagnostics(program)];
  const emitted = program.emit(undefined, undefined, undefined, false, {
    afterDeclarations: [rewriteDeclarationSpecifiers],
  });
  // With noEmitOnError, emit() repeats the pre-emit diagnostics.
  if (diagnostics.length === 0) diagnostics.push(...emitted.diagnostics);
  if (diagnostics.length > 0 || emitted.emitSkipped) {
    const format = process.stderr.isTTY ? ts.formatDiagnosticsWithColorAndContext : ts.formatDiagnostics;
    const text = format(diagnostics, {
      getCanonicalFileName: (f) => f,
      getCurrentDirectory: () => ROOT,
      getNewLine: () => "\n",
    });
    throw new BuildError(`Cannot build the npm package: the compiler reported ${diagnostics.length} error(s)\n\n${text}`);
  }
  return program.getSourceFiles().filter((f) => !f.isDeclarationFile).length;
}

/**
 * Builds the package into `outDir`, replacing what was there.
 *
 * @param outDir the package directory (default `npm/` in the repository)
 * @param log where progress lines go
 * @returns what was built
 * @throws BuildError on type errors or a missing mod.ts
 */
export function buildNpm(outDir = join(ROOT, "npm"), log: (line: string) => void = console.log): BuildResult {
  const started = performance.now();
  const denoJson = readJson<DenoJson>(join(ROOT, "deno.json"));
  const devPackage = readJson<DevPackageJson>(join(ROOT, "package.json"));
  if (!denoJson.version) throw new BuildError("Cannot build the npm package: deno.json has no \"version\"");
  const exportsMap = typeof denoJson.exports === "string" ? { ".": denoJson.exports } : denoJson.exports ?? {};
  if (!exportsMap["."]) throw new BuildError("Cannot build the npm package: deno.json exports has no \".\" entry");

  const present: [string, string][] = [];
  const skipped: string[] = [];
  for (const [key, source] of Object.entries(exportsMap)) {
    if (existsSync(join(ROOT, source))) present.push([key, source]);
    else {
      skipped.push(key);
      console.warn(`build_npm: warning: skipping export "${key}": ${source} does not exist`);
    }
  }
  if (skipped.includes(".")) throw new BuildError(`Cannot build the npm package: ${exportsMap["."]} does not exist`);

  rmSync(outDir, { recursive: true, force: true });
  mkdirSync(outDir, { recursive: true });
  let compiled: number;
  try {
    compiled = compile(present.map(([, source]) => join(ROOT, source)), outDir);
  } catch (err) {
    rmSync(outDir, { recursive: true, force: true }); // no half-built package left behind
    throw err;
  }

  const dependencies: Record<string, string> = {};
  for (const name of RUNTIME_DEPENDENCIES) {
    const range = devPackage.dependencies?.[name] ?? devPackage.devDependencies?.[name];
    if (!range) throw new BuildError(`Cannot build the npm package: package.json does not list "${name}"`);
    dependencies[name] = range;
  }
  const peerDependencies: Record<string, string> = {};
  const peerDependenciesMeta: Record<string, { optional: true }> = {};
  for (const name of OPTIONAL_PEER_DEPENDENCIES) {
    const range = devPackage.devDependencies?.[name];
    if (!range) throw new BuildError(`Cannot build the npm package: package.json does not list "${name}"`);
    peerDependencies[name] = range;
    peerDependenciesMeta[name] = { optional: true };
  }
  const exports: NpmPackageJson["exports"] = {};
  for (const [key, source] of present) {
    exports[key] = { types: outputPath(source, ".d.ts"), import: outputPath(source, ".js") };
  }
  const description = denoJson.description ?? moduleDocSummary() ?? "";
  const copied = EXTRA_FILES.filter((f) => existsSync(join(ROOT, f)));
  for (const f of EXTRA_FILES.filter((f) => !copied.includes(f))) {
    console.warn(`build_npm: warning: ${f} does not exist; the package goes without it`);
  }
  const packageJson: NpmPackageJson = {
    name: NPM_NAME,
    version: denoJson.version,
    description,
    license: denoJson.license ?? "UNLICENSED",
    type: "module",
    main: exports["."].import,
    types: exports["."].types,
    exports,
    files: [ESM_DIR, ...copied],
    sideEffects: false,
    engines: { node: ">=22" },
    dependencies,
    peerDependencies,
    peerDependenciesMeta,
  };
  // Where the package comes from: taken from the development manifest, where they are kept.
  for (const key of ["repository", "homepage", "bugs"] as const) {
    if (devPackage[key] === undefined) throw new BuildError(`Cannot build the npm package: package.json has no "${key}"`);
  }
  packageJson.repository = devPackage.repository;
  packageJson.homepage = devPackage.homepage;
  packageJson.bugs = devPackage.bugs;
  writeFileSync(join(outDir, "package.json"), JSON.stringify(packageJson, null, 2) + "\n");
  for (const f of copied) cpSync(join(ROOT, f), join(outDir, f));

  const ms = performance.now() - started;
  log(
    `build_npm: built ${NPM_NAME}@${packageJson.version} from ${compiled} source files into ` +
      `${relative(process.cwd(), outDir) || "."} in ${(ms / 1000).toFixed(1)}s ` +
      `(exports: ${Object.keys(exports).join(", ")})`,
  );
  return { outDir, packageJson, skipped, ms };
}

function main(): void {
  const args = process.argv.slice(2);
  let outDir = join(ROOT, "npm");
  let quiet = false;
  for (let i = 0; i < args.length; i++) {
    if (args[i] === "--out" && i + 1 < args.length) outDir = resolve(args[++i]);
    else if (args[i] === "--quiet") quiet = true;
    else {
      console.error(`build_npm: unknown argument "${args[i]}"\nUsage: build_npm.ts [--out DIR] [--quiet]`);
      process.exit(2);
    }
  }
  try {
    buildNpm(outDir, quiet ? () => {} : console.log);
  } catch (err) {
    if (!(err instanceof BuildError)) throw err;
    console.error(err.message);
    process.exit(1);
  }
}

if (import.meta.main) main();
