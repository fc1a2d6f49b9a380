/**
 * A parser of the Prometheus text exposition format for tests: it reads back what
 * renderMetrics wrote, undoing the label escapes, and fails on any line that is
 * not a HELP, TYPE or sample line.
 */

/** One sample line. */
export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** A parsed exposition: families' HELP and TYPE, and every sample in order. */
export interface Exposition {
  help: Map<string, string>;
  type: Map<string, string>;
  samples: Sample[];
}

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*/;
const LABEL = /^[a-zA-Z_][a-zA-Z0-9_]*/;

function value(s: string): number {
  if (s === "+Inf") return Infinity;
  if (s === "-Inf") return -Infinity;
  if (s === "NaN") return NaN;
  const v = Number(s);
  if (s.trim() === "" || Number.isNaN(v)) throw new Error(`Bad sample value "${s}"`);
  return v;
}

/** Parses `text`; throws on a malformed line. */
export function parseExposition(text: string): Exposition {
  const out: Exposition = { help: new Map(), type: new Map(), samples: [] };
  if (!text.endsWith("\n")) throw new Error("Exposition must end with a newline");
  for (const line of text.slice(0, -1).split("\n")) {
    if (line.startsWith("# HELP ") || line.startsWith("# TYPE ")) {
      const rest = line.slice(7);
      const name = rest.match(NAME)?.[0];
      if (name === undefined || rest[name.length] !== " ") throw new Error(`Bad comment line: ${line}`);
      const text = rest.slice(name.length + 1);
      if (line[2] === "H") out.help.set(name, text.replace(/\\n/g, "\n").replace(/\\\\/g, "\\"));
      else {
        if (out.type.has(name)) throw new Error(`TYPE of ${name} given twice`);
        out.type.set(name, text);
      }
      continue;
    }
    const name = line.match(NAME)?.[0];
    if (name === undefined) throw new Error(`Bad sample line: ${line}`);
    let i = name.length;
    const labels: Record<string, string> = {};
    if (line[i] === "{") {
      i++;
      while (line[i] !== "}") {
        const key = line.slice(i).match(LABEL)?.[0];
        if (key === undefined || line[i + key.length] !== "=" || line[i + key.length + 1] !== '"') {
          throw new Error(`Bad label at ${i}: ${line}`);
        }
        i += key.length + 2;
        let v = "";
        for (;;) {
          const c = line[i++];
          if (c === undefined) throw new Error(`Unterminated label value: ${line}`);
          if (c === '"') break;
          if (c === "\\") {
            const e = line[i++];
            if (e === "n") v += "\n";
            else if (e === "\\" || e === '"') v += e;
            else throw new Error(`Bad escape \\${e}: ${line}`);
          } else v += c;
        }
        labels[key] = v;
        if (line[i] === ",") i++;
        else if (line[i] !== "}") throw new Error(`Expected , or } at ${i}: ${line}`);
      }
      i++;
    }
    if (line[i] !== " ") throw new Error(`Expected a space before the value: ${line}`);
    out.samples.push({ name, labels, value: value(line.slice(i + 1)) });
  }
  return out;
}

/** The samples named `name` whose labels include `match`. */
export function find(e: Exposition, name: string, match: Record<string, string> = {}): Sample[] {
  return e.samples.filter((s) => s.name === name && Object.entries(match).every(([k, v]) => s.labels[k] === v));
}
