/**
 * The closed set of error codes every Mandate reply may carry (DESIGN.md, "The wire").
 * Callers branch on the code, never on the message.
 */
export const ERROR_CODES = [
  'invalid_request',
  'unauthenticated',
  'access_denied',
  'consent_required',
  'approval_required',
  'not_found',
  'conflict',
  'provider_error',
  'rate_limited',
  'unavailable',
  'internal',
] as const;

export type ErrorCode = (typeof ERROR_CODES)[number];

/**
 * Numeric form of each code, used for the `Nats-Service-Error-Code` header (the NATS services
 * protocol wants a number) and for HTTP status codes. Chosen to match HTTP semantics so that
 * operators reading either recognise them.
 */
export const ERROR_STATUS: Readonly<Record<ErrorCode, number>> = {
  invalid_request: 400,
  unauthenticated: 401,
  access_denied: 403,
  not_found: 404,
  conflict: 409,
  consent_required: 428,
  /** A person must approve this exact call first (428 too: the request needs a precondition met elsewhere). */
  approval_required: 428,
  rate_limited: 429,
  internal: 500,
  provider_error: 502,
  unavailable: 503,
};

export function isErrorCode(value: unknown): value is ErrorCode {
  return typeof value === 'string' && (ERROR_CODES as readonly string[]).includes(value);
}

/** One problem with one field of a request, as the caller sees it. */
export interface FieldIssue {
  path: string;
  message: string;
}

export interface WireError {
  code: ErrorCode;
  message: string;
  /** Present for `invalid_request`: which fields were wrong and why. Never holds input values. */
  issues?: FieldIssue[];
  /** Machine-readable extras for some codes, e.g. the consent session for `consent_required`. */
  details?: Record<string, unknown>;
}

/**
 * The one error class of Mandate. `message` is what the caller may see; anything internal
 * (stack, upstream response, the failing value) goes in `cause`, which is never serialised.
 */
export class MandateError extends Error {
  override readonly name = 'MandateError';
  readonly code: ErrorCode;
  readonly issues: FieldIssue[] | undefined;
  readonly details: Record<string, unknown> | undefined;

  constructor(
    code: ErrorCode,
    message: string,
    options: { issues?: FieldIssue[]; details?: Record<string, unknown>; cause?: unknown } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    if (!isErrorCode(code)) throw new TypeError(`unknown Mandate error code: ${String(code)}`);
    this.code = code;
    this.issues = options.issues;
    this.details = options.details;
  }

  toWire(): WireError {
    const wire: WireError = { code: this.code, message: this.message };
    if (this.issues) wire.issues = this.issues;
    if (this.details) wire.details = this.details;
    return wire;
  }

  static fromWire(wire: WireError): MandateError {
    const options: { issues?: FieldIssue[]; details?: Record<string, unknown> } = {};
    if (wire.issues) options.issues = wire.issues;
    if (wire.details) options.details = wire.details;
    return new MandateError(wire.code, wire.message, options);
  }
}

export function isMandateError(error: unknown): error is MandateError {
  return error instanceof MandateError;
}
