import { createHash, timingSafeEqual } from 'node:crypto';
import {
  CONSENT_NEEDED_EVENT,
  MandateError,
  returnUrlSchema,
  VAULT_SERVICE,
  type ParsedRequestOf,
  type ResponseOf,
  type TenantId,
  type UserRef,
  type codeExchangeEndpoint,
  type WatClaims,
  type apiKeyEndpoint,
  type oauth2TokenEndpoint,
} from '@mandate/contracts';
import type { StoredDocument } from '@mandate/store';
import { lazyInstruments, traceparentOf } from '@mandate/telemetry';
import type { ConsentSessionDocument, ProviderDocument } from '../store/vault-records.js';
import type { ConsentSessions } from './consent-sessions.js';
import type { Grants } from './grants.js';
import type { MachineTokens } from './machine-tokens.js';
import { OAuthProviderClient, type TokenSet } from './oauth-client.js';
import type { AuditSink, ProviderRegistry } from './providers.js';
import type { RateLimiter } from './rate-limiter.js';
import type { UserTokens } from './user-tokens.js';

/** Verifies a WAT for a tenant (libs/wat `WatVerifier` in production). */
export interface WatCheck {
  verify(token: string, expected: { tenant: string; requireUser?: boolean }): Promise<WatClaims>;
}

/** A workload's allowed return URLs, from the directory. */
export type ReturnUrlsOf = (tenant: TenantId, workload: string) => Promise<readonly string[]>;

export interface VaultServiceParts {
  wats: WatCheck;
  providers: ProviderRegistry;
  machineTokens: MachineTokens;
  userTokens: UserTokens;
  grants: Grants;
  sessions: ConsentSessions;
  limiter: RateLimiter;
  audit: AuditSink;
  events: { event(service: string, name: string, tenant: string, data: unknown): Promise<unknown> };
  returnUrlsOf: ReturnUrlsOf;
  providerTimeoutMs: number;
  /** How recently used a user token must be to be refreshed ahead of expiry. */
  proactiveWindowMs?: number;
  now?: () => number;
}

type TokenRequest = ParsedRequestOf<typeof oauth2TokenEndpoint>;
type TokenResponse = ResponseOf<typeof oauth2TokenEndpoint>;

const instruments = lazyInstruments('@mandate/vault', (meter) => ({
  tokenFetches: meter.createCounter('mandate.vault.token_fetches', { description: 'oauth2-token requests by provider, flow and outcome (success, failure, throttled)' }),
  apiKeyFetches: meter.createCounter('mandate.vault.api_key_fetches', { description: 'api-key requests by provider and outcome' }),
  refreshes: meter.createCounter('mandate.vault.refreshes', { description: 'upstream refreshes of user tokens by provider and outcome' }),
}));

const sha256 = (text: string) => createHash('sha256').update(text).digest('base64url');

function sameHash(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

function codeOf(error: unknown): string {
  return error instanceof MandateError ? error.code : 'internal';
}

/**
 * The vault's decisions: who gets which credential. A WAT opens it; the provider must list the
 * workload; a user's token is released only within a consent grant. Every release, and every
 * refusal, is an audit record without the secret.
 */
export class VaultService {
  readonly #clients = new Map<string, OAuthProviderClient>();
  readonly #recentlyUsed = new Map<string, { tenant: TenantId; provider: string; user: UserRef; scopes: string[]; usedAt: number }>();
  readonly #now: () => number;

  constructor(private readonly parts: VaultServiceParts) {
    this.#now = parts.now ?? Date.now;
  }

  async oauth2Token(request: TokenRequest): Promise<TokenResponse> {
    const { tenant, flow } = request;
    let claims: WatClaims | undefined;
    let scopes: string[] = request.scopes;
    try {
      claims = await this.parts.wats.verify(request.workloadToken, { tenant, requireUser: flow === 'USER_FEDERATION' });
      this.#throttle(tenant, claims.workload);
      const provider = await this.#providerFor(tenant, request.provider, claims.workload, 'oauth2');
      scopes = request.scopes.length > 0 ? request.scopes : (provider.value.defaultScopes ?? []);
      const { token, detail } =
        flow === 'M2M' ? await this.#machineToken(tenant, provider, scopes) : await this.#userToken(tenant, provider, claims, scopes, request);
      instruments().tokenFetches.add(1, { provider: request.provider, flow, outcome: 'success' });
      await this.#auditRelease(tenant, claims, request.provider, scopes, flow, 'succeeded', undefined, detail);
      return {
        accessToken: token.accessToken,
        tokenType: token.tokenType,
        ...(token.expiresAt ? { expiresAt: new Date(token.expiresAt).toISOString() } : {}),
        scopes: token.scopes ?? scopes,
      };
    } catch (error) {
      const code = codeOf(error);
      instruments().tokenFetches.add(1, { provider: request.provider, flow, outcome: code === 'rate_limited' ? 'throttled' : 'failure' });
      if (claims) await this.#auditRelease(tenant, claims, request.provider, scopes, flow, code === 'consent_required' ? 'denied' : 'failed', code);
      throw error;
    }
  }

  async apiKey(request: ParsedRequestOf<typeof apiKeyEndpoint>): Promise<ResponseOf<typeof apiKeyEndpoint>> {
    const { tenant } = request;
    let claims: WatClaims | undefined;
    try {
      claims = await this.parts.wats.verify(request.workloadToken, { tenant });
      this.#throttle(tenant, claims.workload);
      const provider = await this.#providerFor(tenant, request.provider, claims.workload, 'api-key');
      const apiKey = this.parts.providers.apiKey(tenant, provider.value);
      instruments().apiKeyFetches.add(1, { provider: request.provider, outcome: 'success' });
      await this.#audit(tenant, claims, 'api-key-release', 'succeeded', undefined, { provider: request.provider });
      return { apiKey };
    } catch (error) {
      const code = codeOf(error);
      instruments().apiKeyFetches.add(1, { provider: request.provider, outcome: code === 'rate_limited' ? 'throttled' : 'failure' });
      if (claims) await this.#audit(tenant, claims, 'api-key-release', 'failed', code, { provider: request.provider });
      throw error;
    }
  }

  /** Stores a user's tokens (the consent service calls this after the code exchange). */
  async putUserTokens(tenant: TenantId, providerName: string, user: UserRef, scopes: string[], token: TokenSet): Promise<void> {
    await this.parts.providers.get(tenant, providerName);
    await this.parts.userTokens.put(tenant, providerName, user, scopes, token);
    await this.parts.audit.audit({ tenant, service: VAULT_SERVICE, action: 'user-tokens-store', outcome: 'succeeded', actor: { user }, target: { provider: providerName, scopes } });
  }

  /** Where the consent service sends the browser for this provider; never a secret. */
  async authorizationInfo(tenant: TenantId, providerName: string) {
    const provider = await this.parts.providers.get(tenant, providerName);
    if (provider.value.kind !== 'oauth2' || !provider.value.clientId) {
      throw new MandateError('invalid_request', `provider ${providerName} is not an OAuth2 provider`, { issues: [{ path: 'provider', message: 'not an oauth2 provider' }] });
    }
    const client = this.#client(tenant, provider);
    const info = await client.authorizationInfo();
    return {
      authorizationEndpoint: info.url,
      clientId: provider.value.clientId,
      issuer: info.issuer,
      issParameterSupported: info.issParameterSupported,
      scopeSeparator: client.scopeSeparator,
      extraParams: { ...info.extraParams },
    };
  }

  /**
   * The code exchange of a consent session: the session must be pending and opened for this
   * provider and user; the client secret is opened only here, for the call. A session the person
   * signed in for completes now (tokens stored under the session's scopes, grant recorded); one
   * with a return URL holds the tokens sealed until its application completes it.
   */
  async exchangeCode(request: ParsedRequestOf<typeof codeExchangeEndpoint>): Promise<{ status: 'completed' | 'awaiting-application'; scopes: string[] }> {
    const { tenant, user, sessionId } = request;
    const session = await this.parts.sessions.requirePending(tenant, sessionId, { provider: request.provider, user });
    const provider = await this.parts.providers.get(tenant, request.provider);
    const client = this.#client(tenant, provider);
    let token: TokenSet;
    try {
      token = await client.authorizationCode({ code: request.code, iss: request.iss }, request.redirectUri, request.codeVerifier, session.scopes, this.parts.providers.clientSecrets(tenant, provider.value));
    } catch (error) {
      await this.parts.audit.audit({ tenant, service: VAULT_SERVICE, action: 'code-exchange', outcome: 'failed', reason: codeOf(error), actor: { workload: session.workload, user }, target: { provider: request.provider, scopes: session.scopes } });
      throw error;
    }
    const term = { once: request.grant.once, ...(request.grant.expiresAt ? { expiresAt: Date.parse(request.grant.expiresAt) } : {}) };
    if (session.returnUrl) {
      await this.parts.sessions.hold(tenant, sessionId, {
        sealed: this.parts.userTokens.sealForSession(tenant, sessionId, token),
        once: term.once,
        completionHash: request.completionHash,
        ...(term.expiresAt ? { grantExpiresAt: term.expiresAt } : {}),
      });
      await this.parts.audit.audit({ tenant, service: VAULT_SERVICE, action: 'code-exchange', outcome: 'succeeded', reason: 'awaiting_application', actor: { workload: session.workload, user }, target: { provider: request.provider, scopes: session.scopes }, details: { sessionId } });
      return { status: 'awaiting-application', scopes: session.scopes };
    }
    // Completed first (compare-and-set): of two racing exchanges for one session, one stores.
    await this.parts.sessions.complete(tenant, sessionId, { workload: session.workload, provider: session.provider, user: session.user });
    await this.#grantSession(tenant, session, token, term);
    return { status: 'completed', scopes: session.scopes };
  }

  /**
   * The application's half of session binding: the WAT must name the session's workload and the
   * very user it was opened for. Anyone else completes nothing: the held tokens are dropped, the
   * session fails, and the mismatch is audited.
   */
  async completeSession(tenant: TenantId, sessionId: string, completionCode: string, workloadToken: string) {
    const claims = await this.parts.wats.verify(workloadToken, { tenant, requireUser: true });
    const session = await this.parts.sessions.get(tenant, sessionId);
    if (session.workload !== claims.workload) throw new MandateError('not_found', 'no such consent session for this workload');
    if (session.state !== 'pending') throw new MandateError('conflict', `the consent session is already ${session.state}`);
    if (!session.held) throw new MandateError('conflict', 'the person has not approved at the provider yet');
    // Only the browser that approved was sent back with this code; knowing the session id is not enough.
    if (!sameHash(session.held.completionHash, sha256(completionCode))) {
      throw new MandateError('access_denied', 'this completion code does not belong to this consent session', { details: { reason: 'completion_code_mismatch' } });
    }
    const user = claims.user!;
    if (user.iss !== session.user.iss || user.sub !== session.user.sub) {
      const { held } = await this.parts.sessions.fail(tenant, sessionId);
      // Whoever approved at the provider handed over live tokens: they are revoked there, not just forgotten here.
      const upstream = held ? await this.#revokeHeld(tenant, sessionId, session.provider, held.sealed) : 'nothing_to_revoke';
      await this.parts.audit.audit({
        tenant,
        service: VAULT_SERVICE,
        action: 'consent-session-complete',
        outcome: 'denied',
        reason: 'binding_mismatch',
        actor: { workload: claims.workload, user },
        target: { provider: session.provider, scopes: session.scopes },
        details: { sessionId, upstream },
      });
      throw new MandateError('access_denied', 'the signed-in user is not the one this consent was asked for; nothing was stored', { details: { reason: 'binding_mismatch' } });
    }
    // Completed first (compare-and-set, dropping the held tokens): of two racing completions, one stores.
    const { held } = await this.parts.sessions.complete(tenant, sessionId, { workload: session.workload, provider: session.provider, user: session.user });
    if (!held) throw new MandateError('conflict', 'the consent session is already answered');
    const token = this.parts.userTokens.openForSession(tenant, sessionId, held.sealed);
    await this.#grantSession(tenant, session, token, { once: held.once, ...(held.grantExpiresAt ? { expiresAt: held.grantExpiresAt } : {}) });
    return { completed: true as const, sessionId, workload: session.workload, provider: session.provider, user: session.user, scopes: session.scopes };
  }

  /** The grant store's answers: live grants, and what a request would still need. */
  listGrants(tenant: TenantId, filter: { user?: UserRef | undefined; workload?: string | undefined }) {
    return this.parts.grants.list(tenant, filter);
  }

  async checkGrant(tenant: TenantId, workload: string, provider: string, user: UserRef, scopes: string[]): Promise<{ granted: boolean; missing: string[] }> {
    const { missing } = await this.parts.grants.check(tenant, workload, provider, user, scopes);
    return { granted: missing.length === 0, missing };
  }

  /**
   * Revokes a person's grants to a workload. A provider's stored tokens go too (deleted, and
   * revoked upstream) once no other workload holds a grant of this person for it: tokens are kept
   * per person and provider, not per workload.
   */
  async revokeGrants(tenant: TenantId, user: UserRef, workload: string, provider: string | undefined, actor: string | undefined): Promise<{ revoked: number; tokensRevoked: string[] }> {
    const providers = await this.parts.grants.revoke(tenant, user, workload, provider);
    const tokensRevoked: string[] = [];
    for (const name of providers) {
      if (await this.parts.grants.anyFor(tenant, user, name)) continue;
      await this.revoke(tenant, name, user, actor);
      tokensRevoked.push(name);
    }
    await this.parts.audit.audit({
      tenant,
      service: VAULT_SERVICE,
      action: 'grant-revoke',
      outcome: 'succeeded',
      actor: { workload, user, ...(actor ? { admin: actor } : {}) },
      target: { ...(provider ? { provider } : {}) },
      details: { revoked: providers.length, tokensRevoked },
    });
    return { revoked: providers.length, tokensRevoked };
  }

  async #revokeHeld(tenant: TenantId, sessionId: string, providerName: string, sealed: string): Promise<'revoked' | 'not_supported' | 'failed'> {
    try {
      const provider = await this.parts.providers.get(tenant, providerName);
      const token = this.parts.userTokens.openForSession(tenant, sessionId, sealed);
      const revoked = await this.#client(tenant, provider).revoke(token.refreshToken ?? token.accessToken, this.parts.providers.clientSecrets(tenant, provider.value));
      return revoked ? 'revoked' : 'not_supported';
    } catch {
      return 'failed';
    }
  }

  /** After the session completed: the tokens, under the scopes the agent asked for (how it looks them up), and the grant of what the person was asked. */
  async #grantSession(tenant: TenantId, session: ConsentSessionDocument, token: TokenSet, term: { once: boolean; expiresAt?: number }): Promise<void> {
    await this.putUserTokens(tenant, session.provider, session.user, session.scopes, token);
    await this.parts.grants.record(tenant, session.workload, session.provider, session.user, session.newScopes ?? session.scopes, term);
  }

  /** Deletes a user's tokens for a provider and revokes them upstream where the provider can. */
  async revoke(tenant: TenantId, providerName: string, user: UserRef, actor: string | undefined): Promise<{ deleted: number; upstream: 'revoked' | 'not_supported' | 'failed' | 'nothing_to_revoke' }> {
    const provider = await this.parts.providers.get(tenant, providerName);
    const removed = await this.parts.userTokens.remove(tenant, providerName, user);
    let upstream: 'revoked' | 'not_supported' | 'failed' | 'nothing_to_revoke' = 'nothing_to_revoke';
    if (removed.length > 0 && provider.value.kind === 'oauth2') {
      const client = this.#client(tenant, provider);
      const secrets = this.parts.providers.clientSecrets(tenant, provider.value);
      try {
        let supported = true;
        for (const tokens of removed) {
          // The refresh token ends the whole grant (RFC 7009 2.1); without one, the access token.
          supported &&= await client.revoke(tokens.refreshToken ?? tokens.accessToken, secrets);
          // Some providers cannot revoke self-contained access tokens: best effort, they expire soon.
          if (supported && tokens.refreshToken) await client.revoke(tokens.accessToken, secrets).catch(() => undefined);
        }
        upstream = supported ? 'revoked' : 'not_supported';
      } catch {
        upstream = 'failed';
      }
    }
    await this.parts.audit.audit({
      tenant,
      service: VAULT_SERVICE,
      action: 'token-revoke',
      outcome: upstream === 'failed' ? 'failed' : 'succeeded',
      actor: { user, admin: actor ?? 'admin-api' },
      target: { provider: providerName },
      details: { deleted: removed.length, upstream },
    });
    return { deleted: removed.length, upstream };
  }

  /**
   * Before a provider is deleted: its users' tokens are revoked upstream (best effort) and
   * deleted, and its grants removed, so a new provider of the same name starts from nothing.
   */
  async retireProvider(tenant: TenantId, providerName: string): Promise<{ tokens: number; grants: number }> {
    const provider = await this.parts.providers.get(tenant, providerName);
    const removed = await this.parts.userTokens.removeForProvider(tenant, providerName);
    if (removed.length > 0 && provider.value.kind === 'oauth2') {
      const client = this.#client(tenant, provider);
      const secrets = this.parts.providers.clientSecrets(tenant, provider.value);
      for (const tokens of removed) await client.revoke(tokens.refreshToken ?? tokens.accessToken, secrets).catch(() => false);
    }
    const grants = await this.parts.grants.removeForProvider(tenant, providerName);
    await this.parts.machineTokens.forget(tenant, providerName);
    return { tokens: removed.length, grants };
  }

  /** Refreshes recently used user tokens that expire within `withinMs`, so callers rarely wait. */
  async refreshAhead(withinMs: number): Promise<number> {
    const window = this.parts.proactiveWindowMs ?? 10 * 60_000;
    let refreshed = 0;
    for (const [key, used] of this.#recentlyUsed) {
      if (this.#now() - used.usedAt > window) {
        this.#recentlyUsed.delete(key);
        continue;
      }
      if (!(await this.parts.userTokens.expiresWithin(used.tenant, used.provider, used.user, used.scopes, withinMs))) continue;
      const provider = await this.parts.providers.get(used.tenant, used.provider).catch(() => undefined);
      if (!provider) continue;
      const lookup = await this.parts.userTokens
        .get(used.tenant, used.provider, used.user, used.scopes, (refreshToken) => this.#refreshUpstream(used.tenant, provider, used.user, used.scopes, refreshToken), { forceRefreshWithinMs: withinMs })
        .catch(() => undefined);
      if (lookup?.status === 'ok' && lookup.refreshed) refreshed++;
    }
    return refreshed;
  }

  async #machineToken(tenant: TenantId, provider: StoredDocument<ProviderDocument>, scopes: string[]) {
    const client = this.#client(tenant, provider);
    const { token, cached } = await this.parts.machineTokens.get(tenant, provider.value.name, scopes, () =>
      client.clientCredentials(scopes, this.parts.providers.clientSecrets(tenant, provider.value)),
    );
    return { token, detail: { cached } };
  }

  async #userToken(tenant: TenantId, provider: StoredDocument<ProviderDocument>, claims: WatClaims, scopes: string[], request: TokenRequest) {
    const user = claims.user!;
    const name = provider.value.name;
    if (request.sessionId) {
      const state = await this.parts.sessions.status(tenant, request.sessionId, claims.workload, user);
      if (state === 'pending') throw consentRequired(request.sessionId, undefined, 'pending');
      if (state === 'failed') throw new MandateError('access_denied', 'the person did not consent (or the provider refused)', { details: { sessionId: request.sessionId, status: 'failed' } });
    }
    const grant = await this.parts.grants.check(tenant, claims.workload, name, user, scopes);
    if (request.forceAuthentication || grant.missing.length > 0) {
      throw await this.#openConsent(tenant, claims, name, scopes, request.forceAuthentication ? scopes : grant.missing, request);
    }
    // "This time only": whoever deletes the one-time grant gets the token; everyone else is asked again.
    if (grant.once && !(await this.parts.grants.useOnce(tenant, claims.workload, name, user, grant.once.revision))) {
      throw await this.#openConsent(tenant, claims, name, scopes, scopes, request);
    }
    const lookup = await this.parts.userTokens.get(tenant, name, user, scopes, (refreshToken) => this.#refreshUpstream(tenant, provider, user, scopes, refreshToken));
    if (lookup.status !== 'ok') throw await this.#openConsent(tenant, claims, name, scopes, scopes, request);
    // A used-up one-time grant leaves nothing to refresh later: its stored tokens go (the access
    // token just released lives until it expires), unless another grant of this person needs them.
    if (grant.once && !(await this.parts.grants.anyFor(tenant, user, name))) {
      await this.parts.userTokens.remove(tenant, name, user);
      return { token: lookup.token, detail: { refreshed: lookup.refreshed, once: true } };
    }
    this.#recentlyUsed.set(`${tenant}\n${name}\n${user.iss}\n${user.sub}\n${scopes.join(' ')}`, { tenant, provider: name, user, scopes, usedAt: this.#now() });
    return { token: lookup.token, detail: { refreshed: lookup.refreshed, once: false } };
  }

  async #refreshUpstream(tenant: TenantId, provider: StoredDocument<ProviderDocument>, user: UserRef, scopes: string[], refreshToken: string): Promise<TokenSet> {
    try {
      const token = await this.#client(tenant, provider).refresh(refreshToken, scopes, this.parts.providers.clientSecrets(tenant, provider.value));
      instruments().refreshes.add(1, { provider: provider.value.name, outcome: 'success' });
      return token;
    } catch (error) {
      const invalidGrant = error instanceof Error && error.name === 'InvalidGrantError';
      instruments().refreshes.add(1, { provider: provider.value.name, outcome: invalidGrant ? 'invalid_grant' : 'failure' });
      if (invalidGrant) {
        await this.parts.events.event(VAULT_SERVICE, CONSENT_NEEDED_EVENT, tenant, { provider: provider.value.name, user, scopes });
        await this.parts.audit.audit({
          tenant,
          service: VAULT_SERVICE,
          action: 'token-refresh',
          outcome: 'failed',
          reason: 'invalid_grant',
          actor: { user },
          target: { provider: provider.value.name, scopes },
        });
      }
      throw error;
    }
  }

  /** Opens a consent session for the whole scope set (what the token will carry), asking the person about `newScopes`. */
  async #openConsent(tenant: TenantId, claims: WatClaims, provider: string, scopes: string[], newScopes: string[], request: TokenRequest): Promise<MandateError> {
    let returnUrl: string | undefined;
    if (request.returnUrl !== undefined) {
      const parsed = returnUrlSchema.safeParse(request.returnUrl);
      const allowed = await this.parts.returnUrlsOf(tenant, claims.workload);
      if (!parsed.success || !allowed.includes(parsed.data)) {
        throw new MandateError('invalid_request', 'invalid request', { issues: [{ path: 'returnUrl', message: "not one of the workload's allowed return URLs" }] });
      }
      returnUrl = parsed.data;
    }
    const traceparent = traceparentOf();
    const session = await this.parts.sessions.open(tenant, {
      workload: claims.workload,
      provider,
      user: claims.user!,
      scopes,
      newScopes,
      ...(returnUrl ? { returnUrl } : {}),
      ...(request.customState ? { customState: request.customState } : {}),
      ...(request.customParameters ? { customParameters: request.customParameters } : {}),
      ...(traceparent ? { traceparent } : {}),
    });
    return consentRequired(session.sessionId, session.authorizationUrl, 'pending');
  }

  async #providerFor(tenant: TenantId, name: string, workload: string, kind: ProviderDocument['kind']): Promise<StoredDocument<ProviderDocument>> {
    const provider = await this.parts.providers.get(tenant, name);
    if (!provider.value.allowedWorkloads.includes(workload)) {
      throw new MandateError('access_denied', `workload ${workload} may not use provider ${name}`, { details: { reason: 'workload_not_allowed' } });
    }
    if (provider.value.kind !== kind) {
      throw new MandateError('invalid_request', `provider ${name} is an ${provider.value.kind} provider`, { issues: [{ path: 'provider', message: `not an ${kind} provider` }] });
    }
    return provider;
  }

  #throttle(tenant: TenantId, workload: string): void {
    if (!this.parts.limiter.take(`${tenant}\n${workload}`)) {
      throw new MandateError('rate_limited', `workload ${workload} is sending too many requests; slow down`);
    }
  }

  /** One client per provider revision: a changed provider gets fresh endpoints and secrets. */
  #client(tenant: TenantId, provider: StoredDocument<ProviderDocument>): OAuthProviderClient {
    const key = `${tenant}\n${provider.value.name}\n${provider.revision}`;
    let client = this.#clients.get(key);
    if (!client) {
      client = new OAuthProviderClient(provider.value, this.parts.providerTimeoutMs, this.#now);
      this.#clients.set(key, client);
    }
    return client;
  }

  #auditRelease(tenant: TenantId, claims: WatClaims, provider: string, scopes: string[], flow: string, outcome: 'succeeded' | 'failed' | 'denied', reason?: string, detail: Record<string, boolean> = {}) {
    return this.#audit(tenant, claims, 'token-release', outcome, reason, { provider, scopes }, { flow, ...detail });
  }

  #audit(
    tenant: TenantId,
    claims: WatClaims,
    action: string,
    outcome: 'succeeded' | 'failed' | 'denied',
    reason: string | undefined,
    target: { provider: string; scopes?: string[] },
    details?: Record<string, string | boolean>,
  ) {
    return this.parts.audit.audit({
      tenant,
      service: VAULT_SERVICE,
      action,
      outcome,
      ...(reason ? { reason } : {}),
      actor: { workload: claims.workload, ...(claims.user ? { user: claims.user } : {}) },
      target,
      ...(details ? { details } : {}),
    });
  }
}

function consentRequired(sessionId: string, authorizationUrl: string | undefined, status: string): MandateError {
  return new MandateError('consent_required', 'the user must consent first: show them the authorization URL, then ask again with the session id', {
    details: { sessionId, status, ...(authorizationUrl ? { authorizationUrl } : {}) },
  });
}
