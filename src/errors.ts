/**
 * Errors raised by wsgrid. Every error the library throws or rejects with is a
 * {@link GridError} subclass carrying a stable `code`; tests and callers should
 * branch on `code` (or `instanceof`), never on the message text.
 *
 * @module
 */

/** The stable error codes of wsgrid. */
export type GridErrorCode =
  | "remote"
  | "disconnected"
  | "timeout"
  | "unknown-handler"
  | "unauthorized"
  | "too-large"
  | "protocol"
  | "unknown-host"
  | "closed"
  | "busy"
  | "invalid"
  | "exists";

/**
 * Base class of every wsgrid error.
 *
 * @example
 * ```ts
 * import { GridError } from "wsgrid";
 * try { await conn.request("echo", new Uint8Array()); }
 * catch (e) { if (e instanceof GridError) console.log(e.code); }
 * ```
 */
export class GridError extends Error {
  /** Stable machine-readable code. */
  readonly code: GridErrorCode | string;
  /**
   * Creates an error with a code.
   *
   * @param code stable machine-readable code
   * @param message human-readable message
   * @param options standard error options (`cause`)
   */
  constructor(code: GridErrorCode | string, message: string, options?: ErrorOptions) {
    super(message, options);
    this.code = code;
    this.name = "GridError";
  }
}

/**
 * The remote handler threw. `message` is the thrown error's message and
 * `remoteCode` its `code` property, if it had one.
 *
 * @example
 * ```ts
 * import { RemoteError } from "wsgrid";
 * const e = new RemoteError("bucket not found", "ENOENT");
 * console.log(e.code, e.remoteCode); // "remote" "ENOENT"
 * ```
 */
export class RemoteError extends GridError {
  /** The `code` property of the error thrown by the remote handler, if any. */
  readonly remoteCode: string | undefined;
  /**
   * Creates the error.
   *
   * @param message the remote error's message
   * @param remoteCode the remote error's `code`, if any
   */
  constructor(message: string, remoteCode?: string) {
    super("remote", message);
    this.name = "RemoteError";
    this.remoteCode = remoteCode;
  }
}

/**
 * The connection was lost while the call was in flight, or was down when the
 * call was made.
 *
 * @example
 * ```ts
 * import { DisconnectedError } from "wsgrid";
 * const e = new DisconnectedError("Cannot send request: connection to \"ws://b:9000\" is down");
 * console.log(e.code); // "disconnected"
 * ```
 */
export class DisconnectedError extends GridError {
  /**
   * Creates the error.
   *
   * @param message what was lost
   * @param options standard error options (`cause`)
   */
  constructor(message: string, options?: ErrorOptions) {
    super("disconnected", message, options);
    this.name = "DisconnectedError";
  }
}

/**
 * The call's deadline passed, on either side.
 *
 * @example
 * ```ts
 * import { TimeoutError } from "wsgrid";
 * console.log(new TimeoutError("Request \"echo\" timed out after 5000 ms").code); // "timeout"
 * ```
 */
export class TimeoutError extends GridError {
  /**
   * Creates the error.
   *
   * @param message what timed out
   * @param options standard error options (`cause`)
   */
  constructor(message: string, options?: ErrorOptions) {
    super("timeout", message, options);
    this.name = "TimeoutError";
  }
}

/**
 * The remote has no handler of that name (and subroute).
 *
 * @example
 * ```ts
 * import { UnknownHandlerError } from "wsgrid";
 * console.log(new UnknownHandlerError("No handler \"nope\"").code); // "unknown-handler"
 * ```
 */
export class UnknownHandlerError extends GridError {
  /**
   * Creates the error.
   *
   * @param message which handler is unknown
   */
  constructor(message: string) {
    super("unknown-handler", message);
    this.name = "UnknownHandlerError";
  }
}

/**
 * Bad credentials, or a read-only client calling a handler that is not
 * registered `readOnly`.
 *
 * @example
 * ```ts
 * import { UnauthorizedError } from "wsgrid";
 * console.log(new UnauthorizedError("Handshake refused").code); // "unauthorized"
 * ```
 */
export class UnauthorizedError extends GridError {
  /**
   * Creates the error.
   *
   * @param message why access was refused (never contains a secret or token)
   */
  constructor(message: string) {
    super("unauthorized", message);
    this.name = "UnauthorizedError";
  }
}

/**
 * A message was larger than `maxMessageBytes`.
 *
 * @example
 * ```ts
 * import { PayloadTooLargeError } from "wsgrid";
 * console.log(new PayloadTooLargeError("Payload of 9000000 bytes exceeds 4194304").code); // "too-large"
 * ```
 */
export class PayloadTooLargeError extends GridError {
  /**
   * Creates the error.
   *
   * @param message the size and the limit
   */
  constructor(message: string) {
    super("too-large", message);
    this.name = "PayloadTooLargeError";
  }
}

/**
 * A malformed frame or message, or an incompatible protocol version.
 *
 * @example
 * ```ts
 * import { ProtocolError } from "wsgrid";
 * console.log(new ProtocolError("Cannot decode frame: truncated header").code); // "protocol"
 * ```
 */
export class ProtocolError extends GridError {
  /**
   * Creates the error.
   *
   * @param message what was malformed
   * @param options standard error options (`cause`)
   */
  constructor(message: string, options?: ErrorOptions) {
    super("protocol", message, options);
    this.name = "ProtocolError";
  }
}

/**
 * The remote refused the call because a per-connection limit is reached (the
 * calls or streams it serves at once for this caller): nothing ran, so the call
 * may be retried after a backoff.
 *
 * @example
 * ```ts
 * import { BusyError } from "wsgrid";
 * console.log(new BusyError("Too many requests in service").code); // "busy"
 * ```
 */
export class BusyError extends GridError {
  /**
   * Creates the error.
   *
   * @param message which limit was reached
   */
  constructor(message: string) {
    super("busy", message);
    this.name = "BusyError";
  }
}

/** One problem found by a schema: what is wrong and where in the value. */
export interface ValidationIssue {
  /** What is wrong, in the schema library's words. */
  readonly message: string;
  /** Where in the value: property names and array indexes from the root; absent for the root itself. */
  readonly path?: readonly (string | number)[];
}

/**
 * A value failed its handler definition's Standard Schema: the input on the
 * serving side before the handler ran, or the handler's output before it was
 * sent. `issues` lists the schema's findings, carried across the wire.
 *
 * @example
 * ```ts
 * import { InvalidError } from "wsgrid";
 * const e = new InvalidError("Invalid input of \"user.create\"", [{ message: "Expected string", path: ["name"] }]);
 * console.log(e.code, e.issues[0].path); // "invalid" ["name"]
 * ```
 */
export class InvalidError extends GridError {
  /** The schema's findings. */
  readonly issues: readonly ValidationIssue[];
  /**
   * Creates the error.
   *
   * @param message which value of which handler failed
   * @param issues the schema's findings
   */
  constructor(message: string, issues: readonly ValidationIssue[]) {
    super("invalid", message);
    this.name = "InvalidError";
    this.issues = issues;
  }
}

/** Builds the error class matching a wire error code. */
export function errorFromCode(
  code: string,
  message: string,
  remoteCode?: string,
  issues: readonly ValidationIssue[] = [],
): GridError {
  switch (code) {
    case "invalid":
      return new InvalidError(message, issues);
    case "remote":
      return new RemoteError(message, remoteCode);
    case "disconnected":
      return new DisconnectedError(message);
    case "timeout":
      return new TimeoutError(message);
    case "unknown-handler":
      return new UnknownHandlerError(message);
    case "unauthorized":
      return new UnauthorizedError(message);
    case "too-large":
      return new PayloadTooLargeError(message);
    case "protocol":
      return new ProtocolError(message);
    case "busy":
      return new BusyError(message);
    default:
      return new GridError(code, message);
  }
}
