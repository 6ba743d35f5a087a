// The one catalogue of Ward's errors. Every failure that crosses a process boundary is one of these
// classes; each carries a stable code, and is mapped here (and only here) to an HTTP status and a
// ConnectRPC code. Clients print `err.message` as one line; they never see a stack trace.

export type ErrorCode =
  | 'ERR_ACCESS_DENIED'
  | 'ERR_NOT_FOUND'
  | 'ERR_ALREADY_EXISTS'
  | 'ERR_COMPARE_FAILED'
  | 'ERR_BAD_PARAMETER'
  | 'ERR_LIMIT_EXCEEDED'
  | 'ERR_CONNECTION_PROBLEM'
  | 'ERR_NOT_IMPLEMENTED';

export abstract class WardError extends Error {
  abstract readonly code: ErrorCode;
  override get name(): string {
    return this.constructor.name;
  }
}

/** The caller may not do this. Never says whether the target exists. */
export class AccessDenied extends WardError {
  readonly code = 'ERR_ACCESS_DENIED';
  constructor(message = 'access denied') {
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
/** A rate, size or attempt limit was hit. */
export class LimitExceeded extends WardError {
  readonly code = 'ERR_LIMIT_EXCEEDED';
}
/** A peer (backend, auth server, proxy) could not be reached or went away. */
export class ConnectionProblem extends WardError {
  readonly code = 'ERR_CONNECTION_PROBLEM';
}
export class NotImplemented extends WardError {
  readonly code = 'ERR_NOT_IMPLEMENTED';
}

const classes: Record<ErrorCode, new (message?: string) => WardError> = {
  ERR_ACCESS_DENIED: AccessDenied,
  ERR_NOT_FOUND: NotFound,
  ERR_ALREADY_EXISTS: AlreadyExists,
  ERR_COMPARE_FAILED: CompareFailed,
  ERR_BAD_PARAMETER: BadParameter,
  ERR_LIMIT_EXCEEDED: LimitExceeded,
  ERR_CONNECTION_PROBLEM: ConnectionProblem,
  ERR_NOT_IMPLEMENTED: NotImplemented,
};

/** HTTP status for each code: the web API and any plain-HTTP surface use this. */
export const httpStatus: Record<ErrorCode, number> = {
  ERR_ACCESS_DENIED: 403,
  ERR_NOT_FOUND: 404,
  ERR_ALREADY_EXISTS: 409,
  ERR_COMPARE_FAILED: 412,
  ERR_BAD_PARAMETER: 400,
  ERR_LIMIT_EXCEEDED: 429,
  ERR_CONNECTION_PROBLEM: 503,
  ERR_NOT_IMPLEMENTED: 501,
};

export function isWardError(err: unknown): err is WardError {
  return err instanceof WardError;
}

/** Rebuilds a typed error from its code and message (as received over the wire). */
export function errorFromCode(code: string, message: string): WardError {
  const cls = classes[code as ErrorCode];
  return cls ? new cls(message) : new ConnectionProblem(message);
}

/** ConnectRPC/gRPC status for each code (numeric values of @connectrpc/connect's Code enum). */
export const rpcCode: Record<ErrorCode, number> = {
  ERR_ACCESS_DENIED: 7, // PermissionDenied
  ERR_NOT_FOUND: 5, // NotFound
  ERR_ALREADY_EXISTS: 6, // AlreadyExists
  ERR_COMPARE_FAILED: 10, // Aborted
  ERR_BAD_PARAMETER: 3, // InvalidArgument
  ERR_LIMIT_EXCEEDED: 8, // ResourceExhausted
  ERR_CONNECTION_PROBLEM: 14, // Unavailable
  ERR_NOT_IMPLEMENTED: 12, // Unimplemented
};

/** The header (and trailer) that carries the Ward error code next to the RPC status. */
export const ERROR_CODE_HEADER = 'ward-error-code';
