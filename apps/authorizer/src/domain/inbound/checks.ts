import { compactVerify, decodeJwt, decodeProtectedHeader, errors, type JWTPayload, type ProtectedHeaderParameters } from 'jose';
import {
  ASYMMETRIC_JWS_ALGORITHMS,
  denialError,
  MandateError,
  MAX_INBOUND_TOKEN_BYTES,
  type AuthorizerConfig,
  type DenialReason,
} from '@mandate/contracts';
import type { Check } from '@mandate/checks';
import { claimRuleFailure } from './claim-rules.js';
import { issuerOf, type IdentityProvider } from './identity-providers.js';

/** What the checks see and fill in as they go. */
export interface InboundContext {
  readonly token: string;
  readonly config: AuthorizerConfig;
  /** Seconds since the epoch. */
  readonly now: number;
  readonly clockToleranceSeconds: number;
  readonly resolveIdp: (discoveryUrl: string) => Promise<IdentityProvider>;
  /** The resource the token is presented to (RFC 8707), when the caller names one: it must be among the token's audiences. */
  readonly resource?: string | undefined;
  header?: ProtectedHeaderParameters;
  /** Decoded before the signature is checked; trusted only after `signature`. */
  claims?: JWTPayload;
  idp?: IdentityProvider;
}

/** `typ` values of our own tokens: never accepted as a user's token. */
const OWN_TOKEN_TYPES = new Set(['wat+jwt', 'application/wat+jwt']);
const KEY_SOURCE_HEADERS = ['jku', 'x5u', 'jwk', 'x5c'] as const;
const PRINTABLE_KID = /^[\x21-\x7e]{1,256}$/;

const fail = (reason: DenialReason, cause?: unknown) => denialError(reason, { cause });
/** Reads back what `fail` threw; any other error is a fault, not a denial. */
export const denialReasonOf = (error: unknown) => (error instanceof MandateError ? (error.details?.['reason'] as DenialReason | undefined) : undefined);
const header = (ctx: InboundContext) => ctx.header!;
const claims = (ctx: InboundContext) => ctx.claims!;
type InboundCheck = Check<InboundContext, DenialReason>;

function audiences(payload: JWTPayload): string[] {
  if (typeof payload.aud === 'string') return [payload.aud];
  return Array.isArray(payload.aud) ? payload.aud.filter((a): a is string => typeof a === 'string') : [];
}

/** Scopes as OAuth servers put them: a space-separated `scope` string or an `scp` array. */
export function scopesOf(payload: JWTPayload): string[] {
  if (typeof payload['scope'] === 'string') return payload['scope'].split(' ').filter(Boolean);
  if (Array.isArray(payload['scp'])) return payload['scp'].filter((s): s is string => typeof s === 'string');
  return [];
}

export function clientOf(payload: JWTPayload): string | undefined {
  const client = payload['client_id'] ?? payload['azp'];
  return typeof client === 'string' ? client : undefined;
}

function signatureFailure(error: unknown): DenialReason {
  if (error instanceof errors.JWKSNoMatchingKey) return 'unknown_signing_key';
  if (error instanceof errors.JWSSignatureVerificationFailed) return 'invalid_signature';
  if (error instanceof errors.JOSEAlgNotAllowed || error instanceof errors.JOSENotSupported) return 'algorithm_not_allowed';
  // Timeouts, HTTP errors, an HTML page where a JWKS should be: the keys are unavailable.
  return 'jwks_unavailable';
}

/** When the config restricts a list (non-empty), the token must carry one of its values. */
const noneAllowed = (allowed: readonly string[], carried: readonly string[]) => allowed.length > 0 && !carried.some((value) => allowed.includes(value));

/** A check with its own body; it throws `fail(reason)` for one of `reasons`. */
const check = (name: string, reasons: readonly DenialReason[], run: InboundCheck['run']): InboundCheck => ({ name, reasons, run });
/** The usual check: one reason, refused when `refuses` says so. */
const refuseIf = (name: string, reason: DenialReason, refuses: (ctx: InboundContext) => boolean): InboundCheck =>
  check(name, [reason], (ctx) => {
    if (refuses(ctx)) throw fail(reason);
  });

/**
 * The inbound pipeline, in order. Everything that can be decided from the token alone and the
 * configuration comes first, so a hostile token is refused before any network request; the
 * issuer is compared with the configured one before its keys are fetched (no SSRF: the token
 * never picks a URL).
 */
export const INBOUND_CHECKS: readonly InboundCheck[] = [
  refuseIf('size', 'token_too_large', (ctx) => Buffer.byteLength(ctx.token, 'utf8') > MAX_INBOUND_TOKEN_BYTES),
  check('structure', ['malformed_token'], (ctx) => {
    try {
      if (ctx.token.split('.').length !== 3) throw new Error('not a compact JWS');
      ctx.header = decodeProtectedHeader(ctx.token);
      ctx.claims = decodeJwt(ctx.token);
    } catch (cause) {
      throw fail('malformed_token', cause);
    }
    const { kid } = ctx.header;
    if (kid !== undefined && (typeof kid !== 'string' || !PRINTABLE_KID.test(kid))) throw fail('malformed_token');
  }),
  refuseIf('type', 'wrong_token_type', (ctx) => {
    const typ = header(ctx).typ;
    return typ !== undefined && (typeof typ !== 'string' || OWN_TOKEN_TYPES.has(typ.toLowerCase()));
  }),
  // We understand no JWS extension, so any `crit` is one we must refuse (RFC 7515 4.1.11).
  refuseIf('critical-headers', 'unsupported_critical_header', (ctx) => header(ctx).crit !== undefined),
  refuseIf('key-source-headers', 'untrusted_key_header', (ctx) => KEY_SOURCE_HEADERS.some((name) => header(ctx)[name] !== undefined)),
  refuseIf('asymmetric-algorithm', 'algorithm_not_allowed', (ctx) => !(ASYMMETRIC_JWS_ALGORITHMS as readonly unknown[]).includes(header(ctx).alg)),
  refuseIf('configured-issuer', 'issuer_not_allowed', (ctx) => claims(ctx).iss !== issuerOf(ctx.config.discoveryUrl)),
  check('discovery', ['idp_discovery_failed', 'discovery_issuer_mismatch'], async (ctx) => {
    ctx.idp = await ctx.resolveIdp(ctx.config.discoveryUrl);
  }),
  refuseIf('advertised-algorithm', 'algorithm_not_allowed', (ctx) => !ctx.idp!.algorithms.includes(header(ctx).alg!)),
  check('signature', ['jwks_unavailable', 'unknown_signing_key', 'invalid_signature'], async (ctx) => {
    try {
      await compactVerify(ctx.token, ctx.idp!.keys, { algorithms: [...ctx.idp!.algorithms] });
    } catch (cause) {
      throw fail(signatureFailure(cause), cause);
    }
  }),
  refuseIf('required-claims', 'missing_claim', (ctx) => {
    const { exp, iat, sub } = claims(ctx);
    return typeof exp !== 'number' || typeof iat !== 'number' || typeof sub !== 'string' || sub.length === 0;
  }),
  refuseIf('expiry', 'token_expired', (ctx) => claims(ctx).exp! <= ctx.now - ctx.clockToleranceSeconds),
  refuseIf('not-before', 'token_not_yet_valid', (ctx) => {
    const { nbf, iat } = claims(ctx);
    const latest = ctx.now + ctx.clockToleranceSeconds;
    return (nbf !== undefined && (typeof nbf !== 'number' || nbf > latest)) || iat! > latest;
  }),
  refuseIf('audience', 'audience_not_allowed', (ctx) => noneAllowed(ctx.config.allowedAudiences, audiences(claims(ctx)))),
  refuseIf('resource', 'audience_not_allowed', (ctx) => ctx.resource !== undefined && !audiences(claims(ctx)).includes(ctx.resource)),
  refuseIf('client', 'client_not_allowed', (ctx) => {
    const allowed = ctx.config.allowedClients;
    const client = clientOf(claims(ctx));
    return allowed.length > 0 && (client === undefined || !allowed.includes(client));
  }),
  refuseIf('scopes', 'scope_not_allowed', (ctx) => noneAllowed(ctx.config.allowedScopes, scopesOf(claims(ctx)))),
  check('custom-claims', ['claim_mismatch', 'claim_wrong_type'], (ctx) => {
    for (const rule of ctx.config.requiredClaims) {
      const failure = claimRuleFailure(rule, claims(ctx));
      if (failure) throw fail(failure);
    }
  }),
];
