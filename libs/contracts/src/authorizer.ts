import { z } from 'zod';
import { defineAuditActions } from './audit-actions.js';
import { actorSchema } from './changes.js';
import { endpointsOf } from './endpoint.js';
import { defineEvent } from './event.js';
import { MandateError, type ErrorCode } from './errors.js';
import { tenantIdSchema } from './tenant.js';
import { workloadNameSchema } from './directory.js';

/**
 * The authorizer service: decides whether a user's token may invoke a workload, authenticates
 * workloads (RFC 7523 client assertions) and mints workload access tokens (WATs).
 */
export const AUTHORIZER_SERVICE = 'authorizer';

/**
 * Every reason a token, an assertion or a WAT is refused: one table, one reason per check, the
 * error code a caller gets and the message it reads. The message never quotes the token.
 */
export const DENIAL_REASONS = {
  token_too_large: { code: 'unauthenticated', message: 'the token is larger than 16 KiB' },
  malformed_token: { code: 'unauthenticated', message: 'the token is not a well-formed signed JWT' },
  wrong_token_type: { code: 'unauthenticated', message: 'the token has the wrong type (typ) for this use' },
  unsupported_critical_header: { code: 'unauthenticated', message: 'the token names a critical header this service does not understand' },
  untrusted_key_header: { code: 'unauthenticated', message: 'the token points at its own key (jku, x5u, jwk or x5c); keys come only from the IdP' },
  algorithm_not_allowed: { code: 'unauthenticated', message: 'the token is signed with an algorithm that is not allowed' },
  issuer_not_allowed: { code: 'unauthenticated', message: "the token's issuer is not the IdP configured for this workload" },
  idp_discovery_failed: { code: 'unavailable', message: "the IdP's discovery document could not be fetched or is invalid" },
  discovery_issuer_mismatch: { code: 'access_denied', message: "the IdP's discovery document names a different issuer than configured" },
  jwks_unavailable: { code: 'unavailable', message: "the IdP's signing keys could not be fetched" },
  unknown_signing_key: { code: 'unauthenticated', message: 'the token is signed with a key the IdP does not publish' },
  invalid_signature: { code: 'unauthenticated', message: 'the token signature is invalid' },
  token_expired: { code: 'unauthenticated', message: 'the token has expired' },
  token_not_yet_valid: { code: 'unauthenticated', message: 'the token is not valid yet (nbf or iat in the future)' },
  missing_claim: { code: 'unauthenticated', message: 'the token lacks a required claim (exp, iat or sub)' },
  audience_not_allowed: { code: 'access_denied', message: "the token's audience is not allowed for this workload" },
  client_not_allowed: { code: 'access_denied', message: "the token's client is not allowed for this workload" },
  scope_not_allowed: { code: 'access_denied', message: 'the token carries none of the allowed scopes' },
  claim_mismatch: { code: 'access_denied', message: 'a required custom claim does not match' },
  claim_wrong_type: { code: 'access_denied', message: 'a required custom claim has the wrong type' },
  workload_not_found: { code: 'not_found', message: 'no such workload in this tenant' },
  no_authorizer_config: { code: 'access_denied', message: 'the workload has no inbound authorizer config' },

  assertion_invalid: { code: 'unauthenticated', message: 'the client assertion is malformed or its claims are invalid' },
  assertion_wrong_subject: { code: 'unauthenticated', message: "the client assertion's iss and sub must both be the workload name" },
  assertion_wrong_audience: { code: 'unauthenticated', message: 'the client assertion is not addressed to this authorizer' },
  assertion_expired: { code: 'unauthenticated', message: 'the client assertion has expired' },
  assertion_lifetime_too_long: { code: 'unauthenticated', message: 'the client assertion lives longer than 5 minutes' },
  assertion_replayed: { code: 'unauthenticated', message: 'the client assertion (jti) was already used' },
  assertion_unknown_key: { code: 'unauthenticated', message: 'the client assertion is not signed by a key registered for the workload' },
  workload_has_no_keys: { code: 'unauthenticated', message: 'the workload has no public keys registered, so it cannot authenticate' },
  user_id_tokens_not_allowed: { code: 'access_denied', message: 'this workload may not ask for a token for a bare user id' },

  wat_invalid: { code: 'unauthenticated', message: 'the workload access token is invalid' },
  wat_expired: { code: 'unauthenticated', message: 'the workload access token has expired' },
  wat_wrong_tenant: { code: 'access_denied', message: 'the workload access token belongs to another tenant' },
  wat_wrong_workload: { code: 'access_denied', message: 'the workload access token was issued to another workload' },
  wat_wrong_user: { code: 'access_denied', message: 'the workload access token was issued for another user' },
  wat_not_user_bound: { code: 'access_denied', message: 'the workload access token is not bound to a user' },
} as const satisfies Record<string, { code: ErrorCode; message: string }>;

export type DenialReason = keyof typeof DENIAL_REASONS;

export const denialReasonSchema = z.enum(Object.keys(DENIAL_REASONS) as [DenialReason, ...DenialReason[]]);

/** The error a caller gets for a denial: the reason's code and message, the reason in `details`. */
export function denialError(reason: DenialReason, options: { cause?: unknown } = {}): MandateError {
  const { code, message } = DENIAL_REASONS[reason];
  return new MandateError(code, message, { details: { reason }, cause: options.cause });
}

/** Inbound tokens larger than this are refused before any parsing. */
export const MAX_INBOUND_TOKEN_BYTES = 16 * 1024;

/** A user as an IdP names one: its issuer and subject. */
export const userRefSchema = z.object({ iss: z.string().min(1).max(2048), sub: z.string().min(1).max(255) });
export type UserRef = z.output<typeof userRefSchema>;

/** Issuer used in WATs for users named by a trusted workload rather than proven by an IdP token. */
export const USER_ID_ISSUER = 'urn:mandate:user-id';

/** How a WAT binds its workload: alone, to a user proven by an IdP JWT, or to a user id vouched for by the workload. */
export const watBindingSchema = z.enum(['workload', 'user-jwt', 'user-id']);
export type WatBinding = z.output<typeof watBindingSchema>;

/** The `typ` header of every WAT; user tokens with it are refused, WATs without it too. */
export const WAT_TYPE = 'wat+jwt';
/**
 * The default `iss` of WATs, and so the `aud` a workload's client assertion must carry (RFC 7523:
 * the assertion names the server it is for). Deployments may set their own with `WAT_ISSUER`.
 */
export const DEFAULT_WAT_ISSUER = 'urn:mandate:authorizer';
/** Client assertions may live at most this long (exp - iat), so a leaked one is useless soon. */
export const MAX_CLIENT_ASSERTION_LIFETIME_SECONDS = 300;
/** The audience of every WAT: the Mandate services that accept them. */
export const WAT_AUDIENCE = 'urn:mandate:services';

/** The claims of a WAT beyond the registered ones (iss, aud, sub = workload, iat, exp, jti). */
export const watClaimsSchema = z.object({
  iss: z.string(),
  sub: workloadNameSchema,
  aud: z.union([z.string(), z.array(z.string())]),
  iat: z.number(),
  exp: z.number(),
  jti: z.string().min(16).max(64),
  tenant: tenantIdSchema,
  workload: workloadNameSchema,
  bnd: watBindingSchema,
  user: userRefSchema.optional(),
});

export type WatClaims = z.output<typeof watClaimsSchema>;

const inboundToken = z.string().min(1).max(256 * 1024);
const clientAssertion = z.string().min(1).max(16 * 1024);

const endpoint = endpointsOf(AUTHORIZER_SERVICE);
const workloadRef = { tenant: tenantIdSchema, workload: workloadNameSchema };

export const authorizeEndpoint = endpoint(
  'authorize',
  "Decides whether a user's bearer JWT may invoke the workload; on no, says why. With `resource`, the token must also name that resource among its audiences (RFC 8707), whatever else the workload's config allows: a gateway passes its resource URL.",
  z.strictObject({ ...workloadRef, token: inboundToken, resource: z.url().max(1024).optional() }),
  z.discriminatedUnion('allowed', [
    z.object({ allowed: z.literal(true), user: userRefSchema, clientId: z.string().optional(), scopes: z.array(z.string()), expiresAt: z.iso.datetime() }),
    z.object({ allowed: z.literal(false), reason: denialReasonSchema, message: z.string() }),
  ]),
);

const watResponse = z.object({ token: z.string(), tokenType: z.literal(WAT_TYPE), expiresAt: z.iso.datetime(), expiresIn: z.number().int() });

export type WatResponse = z.output<typeof watResponse>;

export const tokenForWorkloadEndpoint = endpoint(
  'token-for-workload',
  'Mints a WAT for the workload alone (2LO), after it proves itself with an RFC 7523 client assertion.',
  z.strictObject({ ...workloadRef, clientAssertion }),
  watResponse,
);

export const tokenForJwtEndpoint = endpoint(
  'token-for-jwt',
  "Mints a WAT binding the workload to the user of a JWT, after the workload proves itself (RFC 7523 client assertion) and the JWT passes the workload's authorizer.",
  // The user's token says who asks, the assertion which agent acts (RFC 8693's subject and actor token): a user's token alone, leaked from a front end or a log, mints nothing.
  z.strictObject({ ...workloadRef, userToken: inboundToken, clientAssertion }),
  watResponse,
);

export const tokenForUserEndpoint = endpoint(
  'token-for-user',
  'Mints a WAT for a bare user id; only for workloads allowed to, authenticated by client assertion.',
  z.strictObject({ ...workloadRef, userId: z.string().min(1).max(255), clientAssertion }),
  watResponse,
);

export const jwkSchema = z.looseObject({ kty: z.string(), kid: z.string(), alg: z.string().optional(), use: z.string().optional() });

export const jwksEndpoint = endpoint(
  'jwks',
  'The public keys that verify WATs (also served over HTTP at /.well-known/jwks.json).',
  z.strictObject({}),
  z.object({ keys: z.array(jwkSchema) }),
);

export const signingKeysRotateEndpoint = endpoint(
  'signing-keys-rotate',
  'Starts a WAT signing key rotation now: a new key is published, and signs once verifiers have had time to see it.',
  z.strictObject({ actor: actorSchema }),
  z.object({ kid: z.string(), activatesAt: z.iso.datetime() }),
);

export const authorizerEndpoints = [
  authorizeEndpoint,
  tokenForWorkloadEndpoint,
  tokenForJwtEndpoint,
  tokenForUserEndpoint,
  jwksEndpoint,
  signingKeysRotateEndpoint,
] as const;

/** Deployment-wide (published for the `system` tenant): every authorizer replica reloads the ring. */
export const signingKeysChangedEvent = defineEvent({
  service: AUTHORIZER_SERVICE,
  name: 'signing-keys-changed',
  description: 'A WAT signing key was added: authorizer replicas reload the key ring, verifiers refetch the JWKS.',
  data: z.object({ kid: z.string().min(1).max(128) }),
});

export const authorizerAudit = defineAuditActions(AUTHORIZER_SERVICE, ['authorize', 'wat-mint', 'signing-key-rotate']);
