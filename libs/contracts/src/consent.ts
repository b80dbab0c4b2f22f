import { z } from 'zod';
import { workloadNameSchema } from './directory.js';
import { userRefSchema } from './authorizer.js';
import { providerNameSchema, scopesSchema } from './vault.js';
import { eventSubject, tenantEventSubject } from './subjects.js';
import { defineEndpoint } from './endpoint.js';
import { tenantIdSchema } from './tenant.js';
import {
  grantCheckRequestSchema,
  grantCheckResponseSchema,
  grantListRequestSchema,
  grantListResponseSchema,
  grantRevokeRequestSchema,
  grantRevokeResponseSchema,
} from './grants.js';
import { sessionCompleteRequestSchema } from './vault-consent.js';

/**
 * The consent service: consent sessions (the page a person approves on, the provider redirect,
 * the code exchange) and the grants they produce.
 */
export const CONSENT_SERVICE = 'consent';

/**
 * `mandate.evt.consent.granted.<tenant>`: a person approved a consent session and the vault holds
 * the tokens and the grant. Agents waiting for that session resume (the SDK's `waitForConsent`).
 * The event is a wake-up call, never a credential: it carries no token, and a waiting agent asks
 * the vault again rather than trusting it. The tenant is in the subject so that an agent's NATS
 * user can be allowed its own tenant's events only.
 */
export const CONSENT_GRANTED_EVENT = 'granted';

/** The subject of {@link CONSENT_GRANTED_EVENT} for one tenant. */
export function consentGrantedSubject(tenant: string): string {
  return tenantEventSubject(CONSENT_SERVICE, CONSENT_GRANTED_EVENT, tenant);
}

/** Every tenant's {@link CONSENT_GRANTED_EVENT} (a subscription wildcard). */
export const CONSENT_GRANTED_ALL_TENANTS = `${eventSubject(CONSENT_SERVICE, CONSENT_GRANTED_EVENT)}.*`;

/** The consent session id the vault hands out with `consent_required` (`details.sessionId`). */
export const consentSessionIdSchema = z.string().regex(/^[A-Za-z0-9_-]{16,64}$/);

/** The `data` of a `consent.granted` event (inside the `domainEventSchema` envelope). */
export const consentGrantedDataSchema = z.object({
  sessionId: consentSessionIdSchema,
  workload: workloadNameSchema,
  provider: providerNameSchema,
  user: userRefSchema,
  scopes: scopesSchema,
});

export type ConsentGrantedData = z.output<typeof consentGrantedDataSchema>;

/** A consent session as anyone on the bus may read it: who asks for what, and where it stands. */
export const consentSessionGetEndpoint = defineEndpoint({
  service: CONSENT_SERVICE,
  operation: 'session-get',
  description: 'Where a consent session stands: workload, provider, scopes, state and expiry (never custom state).',
  request: z.strictObject({ tenant: tenantIdSchema, sessionId: consentSessionIdSchema }),
  response: z.object({
    sessionId: consentSessionIdSchema,
    workload: workloadNameSchema,
    provider: providerNameSchema,
    user: userRefSchema,
    scopes: z.array(z.string()),
    state: z.enum(['pending', 'completed', 'failed']),
    expiresAt: z.iso.datetime(),
  }),
});

/**
 * Session binding by the application (sessions opened with a return URL): the handler at the
 * return URL calls this with a WAT for the session's workload and the user signed in there. The
 * grant exists, and `consent.granted` is published, only if that user is the one the session was
 * opened for; a mismatch completes nothing, stores nothing and is audited.
 */
export const sessionCompleteEndpoint = defineEndpoint({
  service: CONSENT_SERVICE,
  operation: 'session-complete',
  description: 'Completes a consent session from the application\'s return-URL handler, bound to the signed-in user by a WAT.',
  request: sessionCompleteRequestSchema,
  response: z.object({ completed: z.literal(true), workload: workloadNameSchema, provider: providerNameSchema, scopes: scopesSchema }),
});

export const grantCheckEndpoint = defineEndpoint({
  service: CONSENT_SERVICE,
  operation: 'grant-check',
  description: 'Whether a live grant covers these scopes for this workload, provider and user; which are missing.',
  request: grantCheckRequestSchema,
  response: grantCheckResponseSchema,
});

export const grantListEndpoint = defineEndpoint({
  service: CONSENT_SERVICE,
  operation: 'grant-list',
  description: "Live grants: a person's, a workload's, or the tenant's.",
  request: grantListRequestSchema,
  response: grantListResponseSchema,
});

export const grantRevokeEndpoint = defineEndpoint({
  service: CONSENT_SERVICE,
  operation: 'grant-revoke',
  description: "Revokes a person's grant to a workload (one provider, or all); tokens no other grant needs are deleted and revoked upstream.",
  request: grantRevokeRequestSchema,
  response: grantRevokeResponseSchema,
});

export const consentEndpoints = [consentSessionGetEndpoint, sessionCompleteEndpoint, grantCheckEndpoint, grantListEndpoint, grantRevokeEndpoint] as const;
