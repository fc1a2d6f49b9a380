/**
 * A parser of the Prometheus text exposition format and of OpenMetrics text for
 * tests: it reads back what renderMetrics wrote, undoing the escapes, and fails on
 * any line that is not a HELP, TYPE, UNIT (OpenMetrics), EOF (OpenMetrics, last
 * line only) or sample line.
 */

/** One sample line. */
export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** A parsed exposition: families' HELP, TYPE and UNIT, and every sample in order. */
export interface Exposition {
  help: Map<string, string>;
  type: Map<string, string>;
  unit: Map<string, string>;
  samples: Sample[];
  /** Ended with `# EOF`, as OpenMetrics does. */
  openMetrics: boolean;
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
  const out: Exposition = { help: new Map(), type: new Map(), unit: new Map(), samples: [], openMetrics: false };
  if (!text.endsWith("\n")) throw new Error("Exposition must end with a newline");
  const lines = text.slice(0, -1).split("\n");
  if (lines.at(-1) === "# EOF") {
    out.openMetrics = true;
    lines.pop();
  }
  for (const line of lines) {
    if (line === "# EOF") throw new Error("# EOF before the last line");
    if (line.startsWith("# UNIT ")) {
      if (!out.openMetrics) throw new Error(`UNIT line outside OpenMetrics: ${line}`);
      const [name, unit] = line.slice(7).split(" ");
      out.unit.set(name, unit);
      continue;
    }
    if (line.startsWith("# HELP ") || line.startsWith("# TYPE ")) {
      const rest = line.slice(7);
      const name = rest.match(NAME)?.[0];
      if (name === undefined || rest[name.length] !== " ") throw new Error(`Bad comment line: ${line}`);
      const text = rest.slice(name.length + 1);
      if (line[2] === "H") {
        out.help.set(name, text.replace(/\\(["n\\])/g, (_, c: string) => (c === "n" ? "\n" : c)));
      } else {
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

/** The family a sample belongs to: its name less the suffix its family type adds, per format. */
export function familyOf(e: Exposition, sample: string): string | undefined {
  const suffixes = e.openMetrics ? ["_bucket", "_sum", "_count", "_total", "_info"] : ["_bucket", "_sum", "_count"];
  if (e.type.has(sample) && !(e.openMetrics && /_(total|info)$/.test(sample))) return sample;
  for (const suffix of suffixes) {
    if (!sample.endsWith(suffix)) continue;
    const family = sample.slice(0, -suffix.length);
    const type = e.type.get(family);
    if (type === undefined) continue;
    const fits = suffix === "_total" ? type === "counter" : suffix === "_info" ? type === "info" : type === "histogram";
    if (fits) return family;
  }
  return undefined;
}
