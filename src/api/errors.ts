// The one catalogue of Ward's errors. Every failure that crosses a process boundary is one of these
// classes; each carries a stable code, and the table below gives each code its HTTP status (the web API)
// and ConnectRPC code (the Auth API). The places that answer a request read those two fields and
// decide nothing themselves. Clients print `err.message` as one line; they never see a stack trace.
// docs/auth-api.md lists the table (errors.test.ts keeps the two in step).
import type { Code } from '@connectrpc/connect';

interface CatalogueEntry {
  /** The HTTP status the web API (and any plain-HTTP surface) answers with. */
  readonly http: number;
  /** The ConnectRPC/gRPC status the Auth API answers with (numeric values of @connectrpc/connect's Code). */
  readonly rpc: Code;
}

// Numbers rather than the Code enum: this file is the wire contract, and stays free of run-time imports.
export const ERROR_CATALOGUE = {
  ERR_ACCESS_DENIED: { http: 403, rpc: 7 }, // PermissionDenied
  ERR_NOT_SIGNED_IN: { http: 401, rpc: 16 }, // Unauthenticated
  ERR_NOT_FOUND: { http: 404, rpc: 5 }, // NotFound
  ERR_ALREADY_EXISTS: { http: 409, rpc: 6 }, // AlreadyExists
  ERR_COMPARE_FAILED: { http: 412, rpc: 10 }, // Aborted
  ERR_BAD_PARAMETER: { http: 400, rpc: 3 }, // InvalidArgument
  ERR_LIMIT_EXCEEDED: { http: 429, rpc: 8 }, // ResourceExhausted
  ERR_BODY_TOO_LARGE: { http: 413, rpc: 8 }, // ResourceExhausted
  ERR_CONNECTION_PROBLEM: { http: 503, rpc: 14 }, // Unavailable
  ERR_STORAGE_UNAVAILABLE: { http: 503, rpc: 14 }, // Unavailable
  ERR_STORAGE_LOCKED: { http: 503, rpc: 14 }, // Unavailable
  ERR_NOT_IMPLEMENTED: { http: 501, rpc: 12 }, // Unimplemented
  ERR_INTERNAL: { http: 500, rpc: 13 }, // Internal
} as const satisfies Record<string, CatalogueEntry>;

export type ErrorCode = keyof typeof ERROR_CATALOGUE;

export abstract class WardError extends Error {
  abstract readonly code: ErrorCode;
  override get name(): string {
    return this.constructor.name;
  }
  /** The HTTP status for this error, from the catalogue. */
  get httpStatus(): number {
    return ERROR_CATALOGUE[this.code].http;
  }
  /** The ConnectRPC code for this error, from the catalogue. */
  get rpcCode(): Code {
    return ERROR_CATALOGUE[this.code].rpc;
  }
}

/** The caller may not do this. Never says whether the target exists. */
export class AccessDenied extends WardError {
  readonly code = 'ERR_ACCESS_DENIED';
  constructor(message = 'access denied') {
    super(message);
  }
}
/** No web session (no cookie, or one that ended): the browser goes back to the sign-in page. */
export class NotSignedIn extends WardError {
  readonly code = 'ERR_NOT_SIGNED_IN';
  constructor(message = 'sign in first') {
    super(message);
  }
}
export class NotFound extends WardError {
  readonly code = 'ERR_NOT_FOUND';
}
export class AlreadyExists extends WardError {
  readonly code = 'ERR_ALREADY_EXISTS';
}
/** A compare-and-swap or revision-checked update lost a race. */
export class CompareFailed extends WardError {
  readonly code = 'ERR_COMPARE_FAILED';
}
export class BadParameter extends WardError {
  readonly code = 'ERR_BAD_PARAMETER';
}
/** A rate or attempt limit was hit. */
export class LimitExceeded extends WardError {
  readonly code = 'ERR_LIMIT_EXCEEDED';
  /** When the caller may try again, if the limit knows (HTTP Retry-After, RFC 9110 §10.2.3). */
  readonly retryAfterSeconds: number | undefined;
  constructor(message?: string, opts: { retryAfterSeconds?: number } = {}) {
    super(message);
    this.retryAfterSeconds = opts.retryAfterSeconds;
  }
}
/** A request body over its size limit: 413 Content Too Large (RFC 9110 §15.5.14), not the 429 of rate limits. */
export class BodyTooLarge extends WardError {
  readonly code = 'ERR_BODY_TOO_LARGE';
}
/** A peer (backend, auth server, proxy) could not be reached or went away. */
export class ConnectionProblem extends WardError {
  readonly code: ErrorCode = 'ERR_CONNECTION_PROBLEM';
}
/**
 * The storage backend cannot be reached, or refused Ward's credentials. A ConnectionProblem, so callers that
 * try another auth server on one do so here too.
 */
export class StorageUnavailable extends ConnectionProblem {
  override readonly code = 'ERR_STORAGE_UNAVAILABLE';
}
/** The storage (a SQLite file) is held by another Ward auth server. */
export class StorageLocked extends ConnectionProblem {
  override readonly code = 'ERR_STORAGE_LOCKED';
}
export class NotImplemented extends WardError {
  readonly code = 'ERR_NOT_IMPLEMENTED';
}
/** A failure the server did not expect (a bug): the details go to its log, never to the caller. */
export class Internal extends WardError {
  readonly code = 'ERR_INTERNAL';
}

/** The class of each code: the compiler refuses a code without one. */
export const ERROR_CLASSES: Record<ErrorCode, new (message?: string) => WardError> = {
  ERR_ACCESS_DENIED: AccessDenied,
  ERR_NOT_SIGNED_IN: NotSignedIn,
  ERR_NOT_FOUND: NotFound,
  ERR_ALREADY_EXISTS: AlreadyExists,
  ERR_COMPARE_FAILED: CompareFailed,
  ERR_BAD_PARAMETER: BadParameter,
  ERR_LIMIT_EXCEEDED: LimitExceeded,
  ERR_BODY_TOO_LARGE: BodyTooLarge,
  ERR_CONNECTION_PROBLEM: ConnectionProblem,
  ERR_STORAGE_UNAVAILABLE: StorageUnavailable,
  ERR_STORAGE_LOCKED: StorageLocked,
  ERR_NOT_IMPLEMENTED: NotImplemented,
  ERR_INTERNAL: Internal,
};

export function isWardError(err: unknown): err is WardError {
  return err instanceof WardError;
}

/** Rebuilds a typed error from its code and message (as received over the wire). */
export function errorFromCode(code: string, message: string): WardError {
  const cls = Object.hasOwn(ERROR_CLASSES, code) ? ERROR_CLASSES[code as ErrorCode] : undefined;
  return cls ? new cls(message) : new ConnectionProblem(message);
}

/** The header (and trailer) that carries the Ward error code next to the RPC status. */
export const ERROR_CODE_HEADER = 'ward-error-code';
