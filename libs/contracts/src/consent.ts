import { z } from 'zod';
import { workloadNameSchema } from './directory.js';
import { userRefSchema } from './authorizer.js';
import { providerNameSchema, scopesSchema } from './vault.js';
import { eventSubject } from './subjects.js';
import { defineEndpoint } from './endpoint.js';
import { tenantIdSchema } from './tenant.js';

/**
 * The consent service: consent sessions (the page a person approves on, the provider redirect,
 * the code exchange) and the grants they produce.
 */
export const CONSENT_SERVICE = 'consent';

/**
 * `mandate.evt.consent.granted`: a person approved a consent session and the vault holds the
 * tokens and the grant. Agents waiting for that session resume (the SDK's `waitForConsent`).
 * The event is a wake-up call, never a credential: it carries no token, and a waiting agent asks
 * the vault again rather than trusting it.
 */
export const CONSENT_GRANTED_EVENT = 'granted';

/** The subject of {@link CONSENT_GRANTED_EVENT}. */
export const CONSENT_GRANTED_SUBJECT = eventSubject(CONSENT_SERVICE, CONSENT_GRANTED_EVENT);

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

export const consentEndpoints = [consentSessionGetEndpoint] as const;
