/**
 * Standard Schema v1 (https://standardschema.dev), the validator interface that
 * zod, valibot, arktype and others implement: its types, copied here as the
 * specification invites so that the core depends on no package, and the
 * validation step of typed handlers, which runs apart from the (synchronous)
 * codecs so that asynchronous validators work.
 *
 * @module
 */
import { InvalidError, type ValidationIssue } from "../errors.ts";

/**
 * A Standard Schema v1 validator: zod, valibot and arktype schemas are ones.
 * `Input` is what it accepts, `Output` what it yields (they differ for schemas
 * that transform).
 *
 * @example
 * ```ts
 * import { z } from "zod";
 * import type { StandardSchemaV1 } from "wsgrid";
 * const schema: StandardSchemaV1<{ name: string }> = z.object({ name: z.string() });
 * ```
 */
export interface StandardSchemaV1<Input = unknown, Output = Input> {
  /** The Standard Schema properties. */
  readonly "~standard": StandardSchemaV1Props<Input, Output>;
}

/** The `~standard` property of a {@link StandardSchemaV1}. */
export interface StandardSchemaV1Props<Input = unknown, Output = Input> {
  /** The version of the standard: 1. */
  readonly version: 1;
  /** The schema library's name. */
  readonly vendor: string;
  /** Validates an unknown value, at once or asynchronously. */
  readonly validate: (
    value: unknown,
    options?: StandardSchemaV1Options | undefined,
  ) => StandardSchemaV1Result<Output> | Promise<StandardSchemaV1Result<Output>>;
  /** The schema's input and output types, for inference only (absent at run time). */
  readonly types?: StandardSchemaV1Types<Input, Output> | undefined;
}

/** Options a caller may pass to `validate`. */
export interface StandardSchemaV1Options {
  /** Vendor-specific parameters. */
  readonly libraryOptions?: Record<string, unknown> | undefined;
}

/** What `validate` yields: the value, or the issues. */
export type StandardSchemaV1Result<Output> = StandardSchemaV1Success<Output> | StandardSchemaV1Failure;

/** A successful validation. */
export interface StandardSchemaV1Success<Output> {
  /** The validated (possibly transformed) value. */
  readonly value: Output;
  /** Absent (or undefined) on success. */
  readonly issues?: undefined;
}

/** A failed validation. */
export interface StandardSchemaV1Failure {
  /** What is wrong. */
  readonly issues: ReadonlyArray<StandardSchemaV1Issue>;
}

/** One problem a schema found. */
export interface StandardSchemaV1Issue {
  /** The schema library's message. */
  readonly message: string;
  /** Where in the value, from the root. */
  readonly path?: ReadonlyArray<PropertyKey | StandardSchemaV1PathSegment> | undefined;
}

/** A path segment given as an object. */
export interface StandardSchemaV1PathSegment {
  /** The property name or index. */
  readonly key: PropertyKey;
}

/** The input and output types of a schema. */
export interface StandardSchemaV1Types<Input = unknown, Output = Input> {
  /** What the schema accepts. */
  readonly input: Input;
  /** What the schema yields. */
  readonly output: Output;
}

/**
 * The type a schema accepts.
 *
 * @example
 * ```ts
 * import { z } from "zod";
 * import type { InferInput } from "wsgrid";
 * type In = InferInput<typeof schema>; // for const schema = z.string().transform(Number): string
 * ```
 */
export type InferInput<S extends StandardSchemaV1> = NonNullable<S["~standard"]["types"]>["input"];

/**
 * The type a schema yields.
 *
 * @example
 * ```ts
 * import { z } from "zod";
 * import type { InferOutput } from "wsgrid";
 * type Out = InferOutput<typeof schema>; // for const schema = z.string().transform(Number): number
 * ```
 */
export type InferOutput<S extends StandardSchemaV1> = NonNullable<S["~standard"]["types"]>["output"];

/** Whether `v` is a Standard Schema (rather than a codec). */
export function isStandardSchema(v: unknown): v is StandardSchemaV1 {
  if (typeof v !== "object" && typeof v !== "function") return false;
  if (v === null) return false;
  const props = (v as { "~standard"?: { version?: unknown; validate?: unknown } })["~standard"];
  return typeof props === "object" && props !== null && props.version === 1 && typeof props.validate === "function";
}

function pathKey(k: PropertyKey | StandardSchemaV1PathSegment): string | number {
  const key = typeof k === "object" && k !== null ? k.key : k;
  if (typeof key === "symbol") return key.description ?? "Symbol()";
  return key;
}

function toIssues(issues: ReadonlyArray<StandardSchemaV1Issue>): ValidationIssue[] {
  return issues.map((i) => {
    const message = typeof i.message === "string" ? i.message : String(i.message);
    return i.path === undefined ? { message } : { message, path: i.path.map(pathKey) };
  });
}

function settle<T>(r: StandardSchemaV1Result<T>, what: string): T {
  if (r.issues !== undefined) {
    const first = r.issues[0];
    const where = first?.path !== undefined && first.path.length > 0 ? ` at ${first.path.map(pathKey).join(".")}` : "";
    const detail = first === undefined ? "" : `: ${first.message}${where}`;
    const more = r.issues.length > 1 ? ` (and ${r.issues.length - 1} more)` : "";
    throw new InvalidError(`Invalid ${what}${detail}${more}`, toIssues(r.issues));
  }
  return r.value;
}

/**
 * Validates `value` with `schema`: the value it yields, at once when the schema
 * answers synchronously (no promise on the fast path), else a promise.
 *
 * @throws {InvalidError} the issues, with `what` ("input of \"name\"") in the message
 */
export function validate<T>(schema: StandardSchemaV1<unknown, T>, value: unknown, what: string): T | Promise<T> {
  const r = schema["~standard"].validate(value);
  if (r instanceof Promise) return r.then((x) => settle(x, what));
  return settle(r, what);
}

/** Applies `f` to `v` now, or once it resolves. */
export function andThen<T, U>(v: T | Promise<T>, f: (x: T) => U | Promise<U>): U | Promise<U> {
  return v instanceof Promise ? v.then(f) : f(v);
}
