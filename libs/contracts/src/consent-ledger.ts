import { z } from 'zod';
import { defineAuditActions } from './audit-actions.js';
import { userRefSchema } from './authorizer.js';
import { workloadNameSchema } from './directory.js';
import { defineEndpoint } from './endpoint.js';
import { defineEvent } from './event.js';
import { tenantIdSchema } from './tenant.js';
import { traceparentSchema } from './trace.js';
import { providerNameSchema, scopesSchema, VAULT_SERVICE } from './vault.js';

/*
 * The consent ledger, owned by the vault (every release of a user's token reads it): consent
 * sessions (a pending request for a person's approval) and grants (what a person allowed one
 * workload: a provider, scopes, for once, for some days or until revoked). The consent service
 * is the person-facing web front; it calls these like anyone else, and keeps no copy.
 */

/** The consent session id the vault hands out with `consent_required` (`details.sessionId`). */
export const consentSessionIdSchema = z.string().regex(/^[A-Za-z0-9_-]{16,64}$/);

/** The name the consent ledger's events are published under (by the vault, which owns it). */
export const CONSENT_SERVICE = 'consent';

/** A consent session: who asks for what, and where it stands. Only the consent pages and operators may read one (deploy/nats). */
export const consentSessionViewSchema = z.object({
  tenant: tenantIdSchema,
  sessionId: consentSessionIdSchema,
  workload: workloadNameSchema,
  provider: providerNameSchema,
  user: userRefSchema,
  /** Every scope the token will carry (what the provider is asked for). */
  scopes: z.array(z.string()),
  /** The scopes the person has not granted yet: what the consent page asks about. */
  newScopes: z.array(z.string()),
  /** Present: the application that asked binds the session to its signed-in user (session-complete). */
  returnUrl: z.string().optional(),
  /** The workload's own state, handed back to its return URL with the outcome. */
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

export const consentSessionGetEndpoint = defineEndpoint({
  service: VAULT_SERVICE,
  operation: 'session-get',
  description: 'Where a consent session stands: workload, provider, scopes, state and expiry (not_found once it expired).',
  request: z.strictObject({ tenant: tenantIdSchema, sessionId: consentSessionIdSchema }),
  response: consentSessionViewSchema,
});

export const consentSessionFailEndpoint = defineEndpoint({
  service: VAULT_SERVICE,
  operation: 'session-fail',
  description: 'Ends a pending consent session as failed (the person denied, or the provider refused); for the consent pages.',
  request: z.strictObject({
    tenant: tenantIdSchema,
    sessionId: consentSessionIdSchema,
    reason: z.enum(['denied', 'provider_error', 'access_denied', 'binding_mismatch']),
  }),
  response: z.object({ failed: z.literal(true) }),
});

/** Where the consent pages send the browser: never a client secret. */
export const providerAuthorizationEndpoint = defineEndpoint({
  service: VAULT_SERVICE,
  operation: 'provider-authorization',
  description: "The provider's authorization endpoint, client id and extra authorize parameters (no secret); for the consent pages.",
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

/** How long an approval lasts, as the consent page sends it to the vault. */
export const grantTermSchema = z.strictObject({
  /** Absent with `once: false`: until revoked. */
  expiresAt: z.iso.datetime().optional(),
  once: z.boolean(),
});

/**
 * The authorization-code exchange, done in the vault so client secrets never leave it: validates
 * the authorization response (RFC 9207 `iss`), redeems the code with the PKCE verifier. A session
 * the person was signed in for completes at once (tokens stored, grant recorded, `consent.granted`
 * published); a session with a return URL holds the tokens sealed until the application completes it.
 */
export const codeExchangeEndpoint = defineEndpoint({
  service: VAULT_SERVICE,
  operation: 'code-exchange',
  description: 'Redeems an authorization code (PKCE) at the provider, then completes or holds the session; for the consent pages.',
  request: z.strictObject({
    tenant: tenantIdSchema,
    provider: providerNameSchema,
    sessionId: consentSessionIdSchema,
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

/**
 * Session binding by the application (sessions opened with a return URL): its return-URL handler
 * passes on the one-time `completion_code` the approving browser arrived with (so only that
 * browser's visit can complete the session, not whoever else knows its id) and proves who is
 * signed in there with a WAT for the session's workload and user. The grant exists, and
 * `consent.granted` is published, only if that user is the one the session was opened for; a
 * different user completes nothing, the held tokens are dropped, the session fails, and it is
 * audited; a wrong code changes nothing.
 */
export const sessionCompleteEndpoint = defineEndpoint({
  service: VAULT_SERVICE,
  operation: 'session-complete',
  description: "Completes a consent session from the application's return-URL handler, bound to the signed-in user by a WAT.",
  request: z.strictObject({
    tenant: tenantIdSchema,
    sessionId: consentSessionIdSchema,
    completionCode: z.string().regex(/^[A-Za-z0-9_-]{43}$/, 'the completion_code of the return URL'),
    workloadToken: z.string().min(1).max(16 * 1024),
  }),
  response: z.object({
    completed: z.literal(true),
    sessionId: consentSessionIdSchema,
    workload: workloadNameSchema,
    provider: providerNameSchema,
    user: userRefSchema,
    scopes: scopesSchema,
  }),
});

export const grantViewSchema = z.object({
  workload: workloadNameSchema,
  provider: z.string(),
  user: userRefSchema,
  scopes: z.array(z.string()),
  /** Until when each scope is granted (null: until revoked): each approval sets the term of the scopes it was asked about. */
  scopeTerms: z.record(z.string(), z.iso.datetime().nullable()),
  grantedAt: z.iso.datetime(),
  /** When the last scope runs out; absent: a scope is granted until revoked. */
  expiresAt: z.iso.datetime().optional(),
  /** "This time only": the next token release uses it up. */
  once: z.boolean(),
});

export type GrantView = z.output<typeof grantViewSchema>;

export const grantCheckEndpoint = defineEndpoint({
  service: VAULT_SERVICE,
  operation: 'grant-check',
  description: 'Whether a live grant covers these scopes for this workload, provider and user; which are missing.',
  request: z.strictObject({ tenant: tenantIdSchema, workload: workloadNameSchema, provider: providerNameSchema, user: userRefSchema, scopes: scopesSchema }),
  response: z.object({
    /** Every requested scope is within a live grant. */
    granted: z.boolean(),
    /** The requested scopes no live grant covers: what a consent page would ask for. */
    missing: z.array(z.string()),
  }),
});

export const grantListEndpoint = defineEndpoint({
  service: VAULT_SERVICE,
  operation: 'grant-list',
  description: "Live grants: a person's (the My access page asks this way), a workload's, or the tenant's.",
  request: z.strictObject({ tenant: tenantIdSchema, user: userRefSchema.optional(), workload: workloadNameSchema.optional() }),
  response: z.object({ items: z.array(grantViewSchema) }),
});

export const grantRevokeEndpoint = defineEndpoint({
  service: VAULT_SERVICE,
  operation: 'grant-revoke',
  description: "Revokes a person's grant to a workload (one provider, or all); tokens no other grant needs are deleted and revoked upstream.",
  request: z.strictObject({
    tenant: tenantIdSchema,
    user: userRefSchema,
    workload: workloadNameSchema,
    /** Absent: every grant of this person to this workload. */
    provider: providerNameSchema.optional(),
    /** Who asked (an operator name, or `user` from the "My access" page); recorded in the audit trail. */
    actor: z.string().min(1).max(255).optional(),
  }),
  response: z.object({
    /** Grants removed. */
    revoked: z.number().int().min(0),
    /** Providers whose stored tokens were deleted and revoked upstream (no other workload still had a grant for them). */
    tokensRevoked: z.array(z.string()),
  }),
});

export const consentLedgerEndpoints = [
  consentSessionGetEndpoint,
  consentSessionFailEndpoint,
  providerAuthorizationEndpoint,
  codeExchangeEndpoint,
  sessionCompleteEndpoint,
  grantCheckEndpoint,
  grantListEndpoint,
  grantRevokeEndpoint,
] as const;

/**
 * `mandate.evt.consent.granted.<tenant>`: a person approved a consent session and the vault holds
 * the tokens and the grant. Agents waiting for that session resume (the SDK's `waitForConsent`).
 * A wake-up call, never a credential: it carries no token, and a waiting agent asks the vault
 * again rather than trusting it.
 */
export const consentGrantedEvent = defineEvent({
  service: CONSENT_SERVICE,
  name: 'granted',
  description: 'A person approved a consent session; the vault holds the tokens and the grant.',
  data: z.object({ sessionId: consentSessionIdSchema, workload: workloadNameSchema, provider: providerNameSchema, user: userRefSchema, scopes: scopesSchema }),
});

export type ConsentGrantedData = z.output<typeof consentGrantedEvent.data>;
export const consentGrantedDataSchema = consentGrantedEvent.data;
export const CONSENT_GRANTED_EVENT = consentGrantedEvent.name;
export const CONSENT_GRANTED_ALL_TENANTS = consentGrantedEvent.allTenants;
export const consentGrantedSubject = consentGrantedEvent.subject;

/** The consent pages' own steps; the ledger's (sessions failed or completed, grants) are the vault's. */
export const consentAudit = defineAuditActions(CONSENT_SERVICE, ['consent-approve', 'consent-deny', 'consent-callback', 'consent-binding']);
