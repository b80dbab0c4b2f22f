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

/**
 * The inbound pipeline, in order. Everything that can be decided from the token alone and the
 * configuration comes first, so a hostile token is refused before any network request; the
 * issuer is compared with the configured one before its keys are fetched (no SSRF: the token
 * never picks a URL).
 */
export const INBOUND_CHECKS: readonly Check<InboundContext, DenialReason>[] = [
  {
    name: 'size',
    reasons: ['token_too_large'],
    run: (ctx) => {
      if (Buffer.byteLength(ctx.token, 'utf8') > MAX_INBOUND_TOKEN_BYTES) throw fail('token_too_large');
    },
  },
  {
    name: 'structure',
    reasons: ['malformed_token'],
    run: (ctx) => {
      try {
        if (ctx.token.split('.').length !== 3) throw new Error('not a compact JWS');
        ctx.header = decodeProtectedHeader(ctx.token);
        ctx.claims = decodeJwt(ctx.token);
      } catch (cause) {
        throw fail('malformed_token', cause);
      }
      const { kid } = ctx.header;
      if (kid !== undefined && (typeof kid !== 'string' || !PRINTABLE_KID.test(kid))) throw fail('malformed_token');
    },
  },
  {
    name: 'type',
    reasons: ['wrong_token_type'],
    run: (ctx) => {
      const typ = header(ctx).typ;
      if (typ !== undefined && (typeof typ !== 'string' || OWN_TOKEN_TYPES.has(typ.toLowerCase()))) throw fail('wrong_token_type');
    },
  },
  {
    name: 'critical-headers',
    reasons: ['unsupported_critical_header'],
    run: (ctx) => {
      // We understand no JWS extension, so any `crit` is one we must refuse (RFC 7515 4.1.11).
      if (header(ctx).crit !== undefined) throw fail('unsupported_critical_header');
    },
  },
  {
    name: 'key-source-headers',
    reasons: ['untrusted_key_header'],
    run: (ctx) => {
      if (KEY_SOURCE_HEADERS.some((name) => header(ctx)[name] !== undefined)) throw fail('untrusted_key_header');
    },
  },
  {
    name: 'asymmetric-algorithm',
    reasons: ['algorithm_not_allowed'],
    run: (ctx) => {
      if (!(ASYMMETRIC_JWS_ALGORITHMS as readonly unknown[]).includes(header(ctx).alg)) throw fail('algorithm_not_allowed');
    },
  },
  {
    name: 'configured-issuer',
    reasons: ['issuer_not_allowed'],
    run: (ctx) => {
      if (claims(ctx).iss !== issuerOf(ctx.config.discoveryUrl)) throw fail('issuer_not_allowed');
    },
  },
  {
    name: 'discovery',
    reasons: ['idp_discovery_failed', 'discovery_issuer_mismatch'],
    run: async (ctx) => {
      ctx.idp = await ctx.resolveIdp(ctx.config.discoveryUrl);
    },
  },
  {
    name: 'advertised-algorithm',
    reasons: ['algorithm_not_allowed'],
    run: (ctx) => {
      if (!ctx.idp!.algorithms.includes(header(ctx).alg!)) throw fail('algorithm_not_allowed');
    },
  },
  {
    name: 'signature',
    reasons: ['jwks_unavailable', 'unknown_signing_key', 'invalid_signature'],
    run: async (ctx) => {
      try {
        await compactVerify(ctx.token, ctx.idp!.keys, { algorithms: [...ctx.idp!.algorithms] });
      } catch (cause) {
        throw fail(signatureFailure(cause), cause);
      }
    },
  },
  {
    name: 'required-claims',
    reasons: ['missing_claim'],
    run: (ctx) => {
      const { exp, iat, sub } = claims(ctx);
      if (typeof exp !== 'number' || typeof iat !== 'number' || typeof sub !== 'string' || sub.length === 0) throw fail('missing_claim');
    },
  },
  {
    name: 'expiry',
    reasons: ['token_expired'],
    run: (ctx) => {
      if (claims(ctx).exp! <= ctx.now - ctx.clockToleranceSeconds) throw fail('token_expired');
    },
  },
  {
    name: 'not-before',
    reasons: ['token_not_yet_valid'],
    run: (ctx) => {
      const { nbf, iat } = claims(ctx);
      const latest = ctx.now + ctx.clockToleranceSeconds;
      if (nbf !== undefined && (typeof nbf !== 'number' || nbf > latest)) throw fail('token_not_yet_valid');
      if (iat! > latest) throw fail('token_not_yet_valid');
    },
  },
  {
    name: 'audience',
    reasons: ['audience_not_allowed'],
    run: (ctx) => {
      const allowed = ctx.config.allowedAudiences;
      if (allowed.length > 0 && !audiences(claims(ctx)).some((aud) => allowed.includes(aud))) throw fail('audience_not_allowed');
    },
  },
  {
    name: 'client',
    reasons: ['client_not_allowed'],
    run: (ctx) => {
      const allowed = ctx.config.allowedClients;
      const client = clientOf(claims(ctx));
      if (allowed.length > 0 && (client === undefined || !allowed.includes(client))) throw fail('client_not_allowed');
    },
  },
  {
    name: 'scopes',
    reasons: ['scope_not_allowed'],
    run: (ctx) => {
      const allowed = ctx.config.allowedScopes;
      if (allowed.length > 0 && !scopesOf(claims(ctx)).some((scope) => allowed.includes(scope))) throw fail('scope_not_allowed');
    },
  },
  {
    name: 'custom-claims',
    reasons: ['claim_mismatch', 'claim_wrong_type'],
    run: (ctx) => {
      for (const rule of ctx.config.requiredClaims) {
        const failure = claimRuleFailure(rule, claims(ctx));
        if (failure) throw fail(failure);
      }
    },
  },
];
