import { z } from 'zod';
import { userRefSchema } from './authorizer.js';
import { workloadNameSchema } from './directory.js';
import { defineEndpoint } from './endpoint.js';
import {
  grantCheckRequestSchema,
  grantCheckResponseSchema,
  grantListRequestSchema,
  grantListResponseSchema,
  grantRevokeRequestSchema,
  grantRevokeResponseSchema,
  grantTermSchema,
} from './grants.js';
import { tenantIdSchema } from './tenant.js';
import { traceparentSchema } from './trace.js';
import { providerNameSchema, scopesSchema, VAULT_SERVICE } from './vault.js';

/*
 * The vault's internal endpoints for the consent service: consent sessions, where to send the
 * browser, the code exchange (client secrets never leave the vault), session completion by the
 * application, and the grant store. Only the consent service's NATS user may call them
 * (deploy/nats/permissions.conf).
 */

const sessionIdSchema = z.string().regex(/^[A-Za-z0-9_-]{16,64}$/);

/** A consent session as the consent service sees it (internal; the custom state is the workload's, not shown). */
export const consentSessionViewSchema = z.object({
  tenant: tenantIdSchema,
  sessionId: sessionIdSchema,
  workload: workloadNameSchema,
  provider: providerNameSchema,
  user: userRefSchema,
  /** Every scope the token will carry (what the provider is asked for). */
  scopes: z.array(z.string()),
  /** The scopes the person has not granted yet: what the consent page asks about. */
  newScopes: z.array(z.string()),
  returnUrl: z.string().optional(),
  customState: z.string().optional(),
  customParameters: z.record(z.string(), z.string()).optional(),
  state: z.enum(['pending', 'completed', 'failed']),
  /** The provider answered; the tokens wait (sealed) for the application to complete the session. */
  awaitingApplication: z.boolean(),
  createdAt: z.iso.datetime(),
  expiresAt: z.iso.datetime(),
  /** The trace of the agent's request that opened the session: the consent steps continue it. */
  traceparent: traceparentSchema.optional(),
});

export type ConsentSessionView = z.output<typeof consentSessionViewSchema>;

export const vaultSessionGetEndpoint = defineEndpoint({
  service: VAULT_SERVICE,
  operation: 'session-get',
  description: 'Reads a consent session (not_found once it expired); internal: the consent service calls it.',
  request: z.strictObject({ tenant: tenantIdSchema, sessionId: sessionIdSchema }),
  response: consentSessionViewSchema,
});

export const vaultSessionFailEndpoint = defineEndpoint({
  service: VAULT_SERVICE,
  operation: 'session-fail',
  description: 'Ends a pending consent session as failed (the person denied, or the provider refused); internal.',
  request: z.strictObject({
    tenant: tenantIdSchema,
    sessionId: sessionIdSchema,
    reason: z.enum(['denied', 'provider_error', 'access_denied', 'binding_mismatch']),
  }),
  response: z.object({ failed: z.literal(true) }),
});

/** Where the consent service sends the browser: never a client secret. */
export const providerAuthorizationEndpoint = defineEndpoint({
  service: VAULT_SERVICE,
  operation: 'provider-authorization',
  description: "The provider's authorization endpoint, client id and extra authorize parameters (no secret); internal.",
  request: z.strictObject({ tenant: tenantIdSchema, provider: providerNameSchema }),
  response: z.object({
    authorizationEndpoint: z.string(),
    clientId: z.string(),
    issuer: z.string(),
    /** RFC 9207: the provider puts `iss` in its authorization responses. */
    issParameterSupported: z.boolean(),
    scopeSeparator: z.string(),
    extraParams: z.record(z.string(), z.string()),
  }),
});

/**
 * The authorization-code exchange, done in the vault so client secrets never leave it: validates
 * the authorization response (RFC 9207 `iss`), redeems the code with the PKCE verifier. A session
 * the person was signed in for completes at once (tokens stored, grant recorded); a session with a
 * return URL holds the tokens sealed until the application completes it (`session-complete`).
 */
export const codeExchangeEndpoint = defineEndpoint({
  service: VAULT_SERVICE,
  operation: 'code-exchange',
  description: 'Redeems an authorization code (PKCE) at the provider, then completes or holds the session; internal.',
  request: z.strictObject({
    tenant: tenantIdSchema,
    provider: providerNameSchema,
    sessionId: sessionIdSchema,
    user: userRefSchema,
    code: z.string().min(1).max(4096),
    codeVerifier: z.string().regex(/^[A-Za-z0-9._~-]{43,128}$/),
    redirectUri: z.string().url().max(2048),
    /** The `iss` of the authorization response, when there was one (RFC 9207). */
    iss: z.string().max(2048).optional(),
    grant: grantTermSchema,
    /**
     * For a session with a return URL: SHA-256 (base64url) of the one-time completion code that
     * only the approving browser is sent back with; `session-complete` must present the code.
     */
    completionHash: z.string().regex(/^[A-Za-z0-9_-]{43}$/),
  }),
  response: z.object({ status: z.enum(['completed', 'awaiting-application']), scopes: z.array(z.string()) }),
});

const completedSessionSchema = z.object({
  completed: z.literal(true),
  sessionId: sessionIdSchema,
  workload: workloadNameSchema,
  provider: providerNameSchema,
  user: userRefSchema,
  scopes: scopesSchema,
});

/**
 * Session binding by the application: its return-URL handler passes on the one-time
 * `completion_code` the approving browser arrived with (so only that browser's visit can complete
 * the session, not whoever else knows its id) and proves who is signed in there with a WAT for
 * the session's workload and user (from `token-for-jwt` with the user's token, or `token-for-user`
 * with the user's id). A different user completes nothing, the held tokens are dropped, the
 * session fails, and it is audited; a wrong code changes nothing.
 */
export const sessionCompleteRequestSchema = z.strictObject({
  tenant: tenantIdSchema,
  sessionId: sessionIdSchema,
  completionCode: z.string().regex(/^[A-Za-z0-9_-]{43}$/, 'the completion_code of the return URL'),
  workloadToken: z.string().min(1).max(16 * 1024),
});

export const vaultSessionCompleteEndpoint = defineEndpoint({
  service: VAULT_SERVICE,
  operation: 'session-complete',
  description: 'Completes a consent session held for the application, if the WAT names its workload and user; internal.',
  request: sessionCompleteRequestSchema,
  response: completedSessionSchema,
});

export const vaultGrantListEndpoint = defineEndpoint({
  service: VAULT_SERVICE,
  operation: 'grant-list',
  description: "Lists live grants (a person's, a workload's, or all of the tenant's); internal.",
  request: grantListRequestSchema,
  response: grantListResponseSchema,
});

export const vaultGrantRevokeEndpoint = defineEndpoint({
  service: VAULT_SERVICE,
  operation: 'grant-revoke',
  description: "Removes a person's grants to a workload; tokens no other grant needs are deleted and revoked upstream; internal.",
  request: grantRevokeRequestSchema,
  response: grantRevokeResponseSchema,
});

export const vaultGrantCheckEndpoint = defineEndpoint({
  service: VAULT_SERVICE,
  operation: 'grant-check',
  description: 'Which requested scopes no live grant covers; internal.',
  request: grantCheckRequestSchema,
  response: grantCheckResponseSchema,
});

export const vaultConsentEndpoints = [
  vaultSessionGetEndpoint,
  vaultSessionFailEndpoint,
  providerAuthorizationEndpoint,
  codeExchangeEndpoint,
  vaultSessionCompleteEndpoint,
  vaultGrantListEndpoint,
  vaultGrantRevokeEndpoint,
  vaultGrantCheckEndpoint,
] as const;
