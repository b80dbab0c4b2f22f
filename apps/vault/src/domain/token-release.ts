import {
  MandateError,
  returnUrlSchema,
  type oauth2TokenEndpoint,
  type ParsedRequestOf,
  type ResponseOf,
  type TenantId,
  type WatClaims,
} from '@mandate/contracts';
import type { StoredDocument } from '@mandate/store';
import { lazyInstruments, traceparentOf } from '@mandate/telemetry';
import type { ProviderDocument } from '../store/vault-records.js';
import type { ConsentSessions } from './consent-sessions.js';
import type { GrantLedger } from './grants.js';
import type { MachineTokens } from './machine-tokens.js';
import type { OAuthClients } from './oauth-clients.js';
import type { ProactiveRefresh } from './proactive-refresh.js';
import type { ProviderRegistry } from './providers.js';
import { actorOf, codeOf, type ReleaseGate, type VaultAuditSink } from './release-gate.js';
import type { UpstreamRefresh } from './upstream-refresh.js';
import type { UserTokens } from './user-tokens.js';

type TokenRequest = ParsedRequestOf<typeof oauth2TokenEndpoint>;
type TokenResponse = ResponseOf<typeof oauth2TokenEndpoint>;

/** A workload's allowed return URLs, from the directory. */
export type ReturnUrlsOf = (tenant: TenantId, workload: string) => Promise<readonly string[]>;

export interface TokenReleaseParts {
  gate: ReleaseGate;
  providers: ProviderRegistry;
  clients: OAuthClients;
  machineTokens: MachineTokens;
  userTokens: UserTokens;
  grants: GrantLedger;
  sessions: ConsentSessions;
  upstream: UpstreamRefresh;
  recentUse: ProactiveRefresh;
  audit: VaultAuditSink;
  returnUrlsOf: ReturnUrlsOf;
}

const instruments = lazyInstruments('@mandate/vault', (meter) => ({
  tokenFetches: meter.createCounter('mandate.vault.token_fetches', { description: 'oauth2-token requests by provider, flow and outcome (success, failure, throttled)' }),
}));

/**
 * `oauth2-token`: a client-credentials token for the workload itself (M2M), or a user's token
 * within that user's consent grant (USER_FEDERATION): missing or not consented, a consent session
 * is opened and the answer is `consent_required` with where to send the person. Every release,
 * and every refusal, is an audit record without the token.
 */
export class TokenRelease {
  constructor(private readonly parts: TokenReleaseParts) {}

  async release(request: TokenRequest): Promise<TokenResponse> {
    const { tenant, flow } = request;
    let claims: WatClaims | undefined;
    let scopes: string[] = request.scopes;
    const audit = (outcome: 'succeeded' | 'failed' | 'denied', reason?: string, detail: Record<string, boolean> = {}) =>
      this.parts.audit.audit({ tenant, action: 'token-release', outcome, ...(reason ? { reason } : {}), actor: actorOf(claims!), target: { provider: request.provider, scopes }, details: { flow, ...detail } });
    try {
      claims = await this.parts.gate.verify(tenant, request.workloadToken, flow === 'USER_FEDERATION');
      const provider = await this.parts.gate.admit(tenant, claims, request.provider, 'oauth2');
      scopes = request.scopes.length > 0 ? request.scopes : (provider.value.defaultScopes ?? []);
      const { token, detail } = flow === 'M2M' ? await this.#machineToken(tenant, provider, scopes) : await this.#userToken(tenant, provider, claims, scopes, request);
      instruments().tokenFetches.add(1, { provider: request.provider, flow, outcome: 'success' });
      await audit('succeeded', undefined, detail);
      return {
        accessToken: token.accessToken,
        tokenType: token.tokenType,
        ...(token.expiresAt ? { expiresAt: new Date(token.expiresAt).toISOString() } : {}),
        scopes: token.scopes ?? scopes,
      };
    } catch (error) {
      const code = codeOf(error);
      instruments().tokenFetches.add(1, { provider: request.provider, flow, outcome: code === 'rate_limited' ? 'throttled' : 'failure' });
      if (claims) await audit(code === 'consent_required' ? 'denied' : 'failed', code);
      throw error;
    }
  }

  async #machineToken(tenant: TenantId, provider: StoredDocument<ProviderDocument>, scopes: string[]) {
    const client = this.parts.clients.for(tenant, provider);
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
      if (state === 'pending') throw consentRequired(request.sessionId, undefined);
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
    const lookup = await this.parts.userTokens.get(tenant, name, user, scopes, (refreshToken) => this.parts.upstream.refresh(tenant, provider, user, scopes, refreshToken));
    if (lookup.status !== 'ok') throw await this.#openConsent(tenant, claims, name, scopes, scopes, request);
    // A used-up one-time grant leaves nothing to refresh later: its stored tokens go (the access
    // token just released lives until it expires), unless another grant of this person needs them.
    if (grant.once && !(await this.parts.grants.anyFor(tenant, user, name))) {
      await this.parts.userTokens.remove(tenant, name, user);
      return { token: lookup.token, detail: { refreshed: lookup.refreshed, once: true } };
    }
    this.parts.recentUse.noteUse(tenant, name, user, scopes);
    return { token: lookup.token, detail: { refreshed: lookup.refreshed, once: false } };
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
    return consentRequired(session.sessionId, session.authorizationUrl);
  }
}

function consentRequired(sessionId: string, authorizationUrl: string | undefined): MandateError {
  return new MandateError('consent_required', 'the user must consent first: show them the authorization URL, then ask again with the session id', {
    details: { sessionId, status: 'pending', ...(authorizationUrl ? { authorizationUrl } : {}) },
  });
}
