import { createHash } from 'node:crypto';
import { sameText } from '@mandate/crypto';
import {
  consentGrantedEvent,
  MandateError,
  type codeExchangeEndpoint,
  type consentSessionFailEndpoint,
  type EventSink,
  type ParsedRequestOf,
  type ResponseOf,
  type sessionCompleteEndpoint,
  type TenantId,
  type WatClaims,
} from '@mandate/contracts';
import { inTraceOf, lazyInstruments } from '@mandate/telemetry';
import type { ConsentSession } from './consent-session.js';
import type { ConsentSessions } from './consent-sessions.js';
import type { GrantLedger } from './grants.js';
import type { TokenSet } from './oauth-client.js';
import type { OAuthClients } from './oauth-clients.js';
import type { ProviderRegistry } from './providers.js';
import { codeOf, type VaultAuditSink, type WatCheck } from './release-gate.js';
import type { TokenRevocation } from './token-revocation.js';
import type { UserTokens } from './user-tokens.js';

export interface ConsentCeremonyParts {
  wats: WatCheck;
  sessions: ConsentSessions;
  providers: ProviderRegistry;
  clients: OAuthClients;
  userTokens: UserTokens;
  grants: GrantLedger;
  revocation: TokenRevocation;
  audit: VaultAuditSink;
  events: EventSink;
}

const instruments = lazyInstruments('@mandate/vault', (meter) => ({
  grants: meter.createCounter('mandate.consent.grants', {
    description: 'Consents by how they ended: granted, awaiting-application (held for the application to bind), failed (at the provider)',
  }),
}));

const sha256 = (text: string) => createHash('sha256').update(text).digest('base64url');

/**
 * A consent session carried to its end: where the consent pages send the browser, the
 * authorization-code exchange (client secrets are opened only here), completion by the
 * application for sessions with a return URL (session binding), and failure. A grant, once
 * recorded, is announced (`consent.granted`) and audited here, where it is recorded.
 */
export class ConsentCeremony {
  constructor(private readonly parts: ConsentCeremonyParts) {}

  /** Where the consent pages send the browser for this provider; never a secret. */
  async authorizationInfo(tenant: TenantId, providerName: string) {
    const provider = await this.parts.providers.get(tenant, providerName);
    if (provider.value.kind !== 'oauth2' || !provider.value.clientId) {
      throw new MandateError('invalid_request', `provider ${providerName} is not an OAuth2 provider`, { issues: [{ path: 'provider', message: 'not an oauth2 provider' }] });
    }
    const client = this.parts.clients.for(tenant, provider);
    const info = await client.authorizationInfo();
    return { authorizationEndpoint: info.url, clientId: provider.value.clientId, issuer: info.issuer, issParameterSupported: info.issParameterSupported, scopeSeparator: client.scopeSeparator, extraParams: { ...info.extraParams } };
  }

  /**
   * The code exchange: the session must be pending and opened for this provider and user. A
   * session the person signed in for completes now; one with a return URL holds the tokens sealed
   * until its application completes it.
   */
  async exchangeCode(request: ParsedRequestOf<typeof codeExchangeEndpoint>): Promise<ResponseOf<typeof codeExchangeEndpoint>> {
    const { tenant, user, sessionId } = request;
    const session = await this.parts.sessions.requirePending(tenant, sessionId, { provider: request.provider, user });
    const { workload, scopes } = session.document;
    const provider = await this.parts.providers.get(tenant, request.provider);
    let token: TokenSet;
    try {
      token = await this.parts.clients
        .for(tenant, provider)
        .authorizationCode({ code: request.code, iss: request.iss }, request.redirectUri, request.codeVerifier, scopes, this.parts.providers.clientSecrets(tenant, provider.value));
    } catch (error) {
      await this.parts.audit.audit({ tenant, action: 'code-exchange', outcome: 'failed', reason: codeOf(error), actor: { workload, user }, target: { provider: request.provider, scopes } });
      throw error;
    }
    const terms = { once: request.grant.once, ...(request.grant.expiresAt ? { expiresAt: Date.parse(request.grant.expiresAt) } : {}) };
    if (session.document.returnUrl) {
      const held = { sealed: this.parts.userTokens.sealForSession(tenant, sessionId, token), once: terms.once, completionHash: request.completionHash, ...(terms.expiresAt ? { grantExpiresAt: terms.expiresAt } : {}) };
      await this.parts.sessions.transition(tenant, sessionId, (current, now) => current.hold(held, now));
      await this.parts.audit.audit({ tenant, action: 'code-exchange', outcome: 'succeeded', reason: 'awaiting_application', actor: { workload, user }, target: { provider: request.provider, scopes }, details: { sessionId } });
      instruments().grants.add(1, { outcome: 'awaiting-application', provider: request.provider });
      return { status: 'awaiting-application', scopes };
    }
    // Completed first (compare-and-set): of two racing exchanges for one session, one stores.
    await this.parts.sessions.transition(tenant, sessionId, (current, now) => current.complete(now));
    await this.#grant(tenant, session, token, terms, { boundBy: 'sign-in' });
    return { status: 'completed', scopes };
  }

  /**
   * The application's half of session binding: the WAT must name the session's workload and the
   * very user it was opened for. Anyone else completes nothing: the held tokens are dropped (and
   * revoked upstream), the session fails, and the mismatch is audited.
   */
  async complete(request: ParsedRequestOf<typeof sessionCompleteEndpoint>): Promise<ResponseOf<typeof sessionCompleteEndpoint>> {
    const { tenant, sessionId } = request;
    const claims = await this.parts.wats.verify(request.workloadToken, { tenant, requireUser: true });
    const session = await this.parts.sessions.get(tenant, sessionId);
    // The application completes it in a request of its own: the grant still joins the agent's trace.
    return inTraceOf(session.document.traceparent, '@mandate/vault', 'consent complete', () => this.#complete(request, claims, session));
  }

  async #complete(request: ParsedRequestOf<typeof sessionCompleteEndpoint>, claims: WatClaims, session: ConsentSession): Promise<ResponseOf<typeof sessionCompleteEndpoint>> {
    const { tenant, sessionId } = request;
    const { workload, provider, scopes, held } = session.document;
    if (workload !== claims.workload) throw new MandateError('not_found', 'no such consent session for this workload');
    if (session.document.state !== 'pending') throw new MandateError('conflict', `the consent session is already ${session.document.state}`);
    if (!held) throw new MandateError('conflict', 'the person has not approved at the provider yet');
    // Only the browser that approved was sent back with this code; knowing the session id is not enough.
    if (!sameText(held.completionHash, sha256(request.completionCode))) {
      throw new MandateError('access_denied', 'this completion code does not belong to this consent session', { details: { reason: 'completion_code_mismatch' } });
    }
    const user = claims.user!;
    if (user.iss !== session.document.user.iss || user.sub !== session.document.user.sub) {
      const failed = await this.parts.sessions.transition(tenant, sessionId, (current, now) => current.fail(now));
      // Whoever approved at the provider handed over live tokens: they are revoked there, not just forgotten here.
      const upstream = failed.document.held ? await this.#revokeHeld(tenant, sessionId, provider, failed.document.held.sealed) : 'nothing_to_revoke';
      await this.parts.audit.audit({ tenant, action: 'consent-session-complete', outcome: 'denied', reason: 'binding_mismatch', actor: { workload: claims.workload, user }, target: { provider, scopes }, details: { sessionId, upstream } });
      throw new MandateError('access_denied', 'the signed-in user is not the one this consent was asked for; nothing was stored', { details: { reason: 'binding_mismatch' } });
    }
    // Completed first (compare-and-set, dropping the held tokens): of two racing completions, one stores.
    const before = await this.parts.sessions.transition(tenant, sessionId, (current, now) => current.complete(now));
    if (!before.document.held) throw new MandateError('conflict', 'the consent session is already answered');
    const token = this.parts.userTokens.openForSession(tenant, sessionId, before.document.held.sealed);
    const { once, grantExpiresAt } = before.document.held;
    await this.#grant(tenant, session, token, { once, ...(grantExpiresAt ? { expiresAt: grantExpiresAt } : {}) }, { boundBy: 'application' });
    return { completed: true, sessionId, workload, provider, user: session.document.user, scopes };
  }

  /** The person denied, or the provider refused: the session fails; where the browser goes back to. */
  async fail(request: ParsedRequestOf<typeof consentSessionFailEndpoint>): Promise<ResponseOf<typeof consentSessionFailEndpoint>> {
    const session = await this.parts.sessions.transition(request.tenant, request.sessionId, (current, now) => current.fail(now));
    const { workload, user, provider, scopes } = session.document;
    await this.parts.audit.audit({ tenant: request.tenant, action: 'consent-session-fail', outcome: 'succeeded', reason: request.reason, actor: { workload, user }, target: { provider, scopes } });
    if (request.reason === 'provider_error' || request.reason === 'access_denied') instruments().grants.add(1, { outcome: 'failed', provider });
    return { failed: true };
  }

  /** After the session completed: the tokens under the scopes the agent asked for (how it looks them up), the grant of what the person was asked. */
  async #grant(tenant: TenantId, session: ConsentSession, token: TokenSet, terms: { once: boolean; expiresAt?: number }, details: Record<string, string>): Promise<void> {
    const { workload, provider, user, scopes, newScopes } = session.document;
    await this.parts.providers.get(tenant, provider);
    await this.parts.userTokens.put(tenant, provider, user, scopes, token);
    await this.parts.audit.audit({ tenant, action: 'user-tokens-store', outcome: 'succeeded', actor: { user }, target: { provider, scopes } });
    await this.parts.grants.record(tenant, workload, provider, user, newScopes ?? scopes, terms);
    // A wake-up call only: an agent that misses it finds the grant when it asks again (the SDK re-checks on a backoff).
    await this.parts.events.publishEvent(consentGrantedEvent, tenant, { sessionId: session.id, workload, provider, user, scopes }).catch(() => undefined);
    await this.parts.audit.audit({
      tenant,
      action: 'consent-grant',
      outcome: 'succeeded',
      actor: { workload, user },
      target: { provider, scopes },
      details: { sessionId: session.id, once: terms.once, ...(terms.expiresAt ? { expiresAt: new Date(terms.expiresAt).toISOString() } : {}), ...details },
    });
    instruments().grants.add(1, { outcome: 'granted', provider });
  }

  async #revokeHeld(tenant: TenantId, sessionId: string, providerName: string, sealed: string): Promise<'revoked' | 'not_supported' | 'failed'> {
    try {
      const provider = await this.parts.providers.get(tenant, providerName);
      const upstream = await this.parts.revocation.upstream(tenant, provider, [this.parts.userTokens.openForSession(tenant, sessionId, sealed)]);
      return upstream === 'nothing_to_revoke' ? 'not_supported' : upstream;
    } catch {
      return 'failed';
    }
  }
}
