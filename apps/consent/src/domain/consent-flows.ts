import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import * as oauth from 'oauth4webapi';
import {
  MandateError,
  type codeExchangeEndpoint,
  type RequestOf,
  type AuditRecordInput,
  type ConsentGrantedData,
  type ConsentSessionView,
  type TenantId,
  type UserRef,
} from '@mandate/contracts';
import type { DocumentCollection, StoredDocument } from '@mandate/store';
import { lazyInstruments } from '@mandate/telemetry';
import type { ConsentFlowDocument, GrantDuration } from '../store/flows.js';
import { inSessionTrace } from './session-trace.js';
import { browserKey, issuerOf, parseState, type SignIn } from './sign-in.js';

const instruments = lazyInstruments('@mandate/consent', (meter) => ({
  prompts: meter.createCounter('mandate.consent.prompts', {
    description: 'Consent prompts by what became of them: shown, approved, denied, refused (the wrong person, or not signed in)',
  }),
  grants: meter.createCounter('mandate.consent.grants', {
    description: 'Consents by how they ended at the provider: granted, awaiting-application (held for the application to bind), failed',
  }),
}));

/** What the consent flow needs from the rest of Mandate (the vault, the directory, JetStream). */
export interface ConsentPorts {
  session(tenant: TenantId, sessionId: string): Promise<ConsentSessionView>;
  failSession(tenant: TenantId, sessionId: string, reason: 'denied' | 'provider_error' | 'access_denied'): Promise<void>;
  /** A workload as the page shows it, and the IdP its users sign in at (its authorizer's). */
  workload(tenant: TenantId, name: string): Promise<WorkloadInfo>;
  providerAuthorization(tenant: TenantId, provider: string): Promise<{ authorizationEndpoint: string; clientId: string; scopeSeparator: string; extraParams: Record<string, string> }>;
  exchangeCode(request: RequestOf<typeof codeExchangeEndpoint>): Promise<{ status: 'completed' | 'awaiting-application' }>;
  completeSession(tenant: TenantId, sessionId: string, completionCode: string, workloadToken: string): Promise<ConsentGrantedData>;
  granted(tenant: TenantId, data: ConsentGrantedData): Promise<void>;
  audit(record: Omit<AuditRecordInput, 'id' | 'occurredAt' | 'traceId' | 'spanId'>): Promise<unknown>;
}

export interface WorkloadInfo {
  name: string;
  description: string;
  /** The OIDC discovery URL of the IdP its users come from; absent when it has no authorizer. */
  discoveryUrl?: string | undefined;
}

export interface ConsentFlowOptions {
  /** `<CONSENT_PUBLIC_URL>/callback`, exactly. */
  redirectUri: string;
  onceGrantMs: number;
  now?: () => number;
}

/** The durations a person may pick, as form values. */
export const DURATION_CHOICES = ['once', '1', '7', '30', '90', 'until-revoked'] as const;

export function parseDuration(value: string | undefined): GrantDuration {
  if (value === 'once') return { kind: 'once' };
  if (value === 'until-revoked') return { kind: 'until-revoked' };
  if (value && (DURATION_CHOICES as readonly string[]).includes(value)) return { kind: 'days', days: Number(value) };
  throw new MandateError('invalid_request', 'choose how long the agent may have this access');
}

/** Authorization request parameters an agent's custom parameters may not set (scope, request objects, response routing, PKCE, state). */
const RESERVED_PARAMETERS = new Set([
  'scope',
  'request',
  'request_uri',
  'response_type',
  'response_mode',
  'redirect_uri',
  'client_id',
  'state',
  'nonce',
  'code_challenge',
  'code_challenge_method',
  'claims',
  'authorization_details',
]);

/** Where the browser goes next: a redirect (303) or a page. */
export type Outcome = { redirect: string } | { page: 'granted' | 'denied' | 'failed'; session?: ConsentSessionView };

/**
 * One consent, from the page to the grant:
 *
 *   bound? ──no: sign in at the IdP first; someone else signed in: refused, audited, nothing changes
 *     │yes
 *   page shown ──approve (CSRF ok)──> at provider (flow stored: state, PKCE verifier, browser)
 *        │                                 │──callback, same browser, code exchanged──> granted
 *        │                                 │     (with a return URL: held until the application
 *        │                                 │      completes it for the same user, see `complete`)
 *        │                                 └──provider error / bad code──> failed
 *        └──deny (CSRF ok)──> failed
 *
 * Session binding: the person approving must be the user the session was opened for. A session
 * with a return URL is bound by its application (`session-complete` with a WAT for the user
 * signed in there); any other is bound by signing the person in at the workload's IdP here. A
 * callback whose `state` is unknown, used, or from another browser changes nothing.
 */
export class ConsentFlows {
  readonly #now: () => number;

  constructor(
    private readonly flows: DocumentCollection<ConsentFlowDocument>,
    private readonly signIn: SignIn,
    private readonly ports: ConsentPorts,
    private readonly options: ConsentFlowOptions,
  ) {
    this.#now = options.now ?? Date.now;
  }

  /** What the consent page shows (only a pending session has one), or where to sign in first. */
  async page(tenant: TenantId, sessionId: string, browserId: string): Promise<{ session: ConsentSessionView; workload: WorkloadInfo } | { redirect: string }> {
    const session = await this.#pending(tenant, sessionId);
    return inSessionTrace(session.traceparent, 'page', async () => {
      const workload = await this.ports.workload(tenant, session.workload);
      const bound = await this.#bound(tenant, session, workload, browserId);
      if (bound !== true) return { redirect: await this.signIn.start(tenant, bound.signInAt, browserId, `/consent/${sessionId}?tenant=${tenant}`) };
      instruments().prompts.add(1, { outcome: 'shown', provider: session.provider });
      return { session, workload };
    });
  }

  /** Approve: remembers this browser's trip and returns the provider's authorization URL. */
  async approve(tenant: TenantId, sessionId: string, browserId: string, duration: GrantDuration): Promise<string> {
    const session = await this.#pending(tenant, sessionId);
    return inSessionTrace(session.traceparent, 'approve', () => this.#approve(tenant, session, browserId, duration));
  }

  async #approve(tenant: TenantId, session: ConsentSessionView, browserId: string, duration: GrantDuration): Promise<string> {
    const sessionId = session.sessionId;
    await this.#requireBound(tenant, session, browserId);
    const provider = await this.ports.providerAuthorization(tenant, session.provider);
    const codeVerifier = oauth.generateRandomCodeVerifier();
    const nonce = oauth.generateRandomState();
    const remainingMs = Date.parse(session.expiresAt) - this.#now();
    if (remainingMs <= 0) throw new MandateError('not_found', 'this consent request has expired');
    await this.flows.create(
      tenant,
      nonce,
      {
        sessionId,
        workload: session.workload,
        provider: session.provider,
        user: session.user,
        scopes: session.scopes,
        browser: browserKey(browserId),
        codeVerifier,
        duration,
        redirectUri: this.options.redirectUri,
        createdAt: this.#now(),
        ...(session.traceparent ? { traceparent: session.traceparent } : {}),
      },
      { ttlMs: remainingMs },
    );
    const url = new URL(provider.authorizationEndpoint);
    // The workload's extra parameters first, so nothing it sends can replace a protocol parameter;
    // those that would change what the person approves, or where the answer goes, never pass.
    for (const [name, value] of Object.entries({ ...session.customParameters, ...provider.extraParams })) {
      if (!RESERVED_PARAMETERS.has(name.toLowerCase())) url.searchParams.set(name, value);
    }
    const protocol = {
      response_type: 'code',
      client_id: provider.clientId,
      redirect_uri: this.options.redirectUri,
      state: `${tenant}.${nonce}`,
      code_challenge: await oauth.calculatePKCECodeChallenge(codeVerifier),
      code_challenge_method: 'S256',
      ...(session.scopes.length > 0 ? { scope: session.scopes.join(provider.scopeSeparator) } : {}),
    };
    for (const [name, value] of Object.entries(protocol)) url.searchParams.set(name, value);
    await this.#audit(tenant, session, 'consent-approve', 'allowed', undefined, { duration: describe(duration) });
    instruments().prompts.add(1, { outcome: 'approved', provider: session.provider });
    return url.href;
  }

  /** Deny: the session fails; the workload learns it from its return URL or by asking the vault. */
  async deny(tenant: TenantId, sessionId: string, browserId: string): Promise<Outcome> {
    const session = await this.#pending(tenant, sessionId);
    return inSessionTrace(session.traceparent, 'deny', async () => {
      await this.#requireBound(tenant, session, browserId);
      await this.ports.failSession(tenant, sessionId, 'denied');
      await this.#audit(tenant, session, 'consent-deny', 'denied', 'denied');
      instruments().prompts.add(1, { outcome: 'denied', provider: session.provider });
      return returnTo(session, { error: 'access_denied' }) ?? { page: 'denied', session };
    });
  }

  /**
   * The provider's redirect back. `state` must name a trip this browser started and not yet
   * finished; then an error ends the session, a code is exchanged (in the vault) and the grant
   * recorded.
   */
  async callback(params: URLSearchParams, browserId: string | undefined): Promise<Outcome> {
    const { tenant, key: nonce } = parseState(params.get('state'));
    const stored = await this.flows.get(tenant, nonce);
    return inSessionTrace(stored?.value.traceparent, 'callback', () => this.#callback(params, browserId, tenant, nonce, stored));
  }

  async #callback(params: URLSearchParams, browserId: string | undefined, tenant: TenantId, nonce: string, stored: StoredDocument<ConsentFlowDocument> | undefined): Promise<Outcome> {
    if (!stored || !browserId || !sameText(stored.value.browser, browserKey(browserId))) {
      if (stored) await this.#audit(tenant, stored.value, 'consent-callback', 'denied', 'browser_mismatch');
      throw new MandateError('access_denied', 'this sign-in response does not belong to this browser, or was already used');
    }
    // Single use: whoever deletes it first goes on; a replay finds nothing.
    if (!(await this.flows.delete(tenant, nonce, { expectedRevision: stored.revision }))) {
      throw new MandateError('access_denied', 'this sign-in response was already used');
    }
    const flow = stored.value;
    const session = await this.ports.session(tenant, flow.sessionId);
    const providerError = params.get('error');
    if (providerError !== null) {
      const reason = providerError === 'access_denied' ? 'access_denied' : 'provider_error';
      await this.ports.failSession(tenant, flow.sessionId, reason);
      await this.#audit(tenant, flow, 'consent-callback', 'failed', /^[a-z_]{1,64}$/.test(providerError) ? providerError : 'provider_error');
      instruments().grants.add(1, { outcome: 'failed', provider: flow.provider });
      return returnTo(session, { error: reason }) ?? { page: 'failed', session };
    }
    const code = params.get('code');
    if (!code) throw new MandateError('invalid_request', 'the provider sent neither a code nor an error');
    let status: 'completed' | 'awaiting-application';
    const expiresAt = this.#expiry(flow.duration);
    // Sent to the return URL with this browser only; the application must present it to complete.
    const completionCode = randomBytes(32).toString('base64url');
    try {
      const iss = params.get('iss');
      const grant = { once: flow.duration.kind === 'once', ...(expiresAt ? { expiresAt } : {}) };
      ({ status } = await this.ports.exchangeCode({
        tenant,
        provider: flow.provider,
        sessionId: flow.sessionId,
        user: flow.user,
        code,
        codeVerifier: flow.codeVerifier,
        redirectUri: flow.redirectUri,
        grant,
        completionHash: createHash('sha256').update(completionCode).digest('base64url'),
        ...(iss !== null ? { iss } : {}),
      }));
    } catch (error) {
      await this.ports.failSession(tenant, flow.sessionId, 'provider_error').catch(() => undefined);
      await this.#audit(tenant, flow, 'consent-callback', 'failed', error instanceof MandateError ? error.code : 'internal');
      instruments().grants.add(1, { outcome: 'failed', provider: flow.provider });
      return returnTo(session, { error: 'provider_error' }) ?? { page: 'failed', session };
    }
    if (status === 'awaiting-application') {
      await this.#audit(tenant, flow, 'consent-callback', 'succeeded', undefined, { duration: describe(flow.duration), awaiting: 'application' });
      instruments().grants.add(1, { outcome: 'awaiting-application', provider: flow.provider });
      return returnTo(session, { completion_code: completionCode }) ?? { page: 'failed', session };
    }
    await this.#granted(tenant, { sessionId: flow.sessionId, workload: flow.workload, provider: flow.provider, user: flow.user, scopes: flow.scopes }, { duration: describe(flow.duration), ...(expiresAt ? { expiresAt } : {}) });
    return returnTo(session, {}) ?? { page: 'granted', session };
  }

  /**
   * The application's half of session binding: the vault completes the session only if the WAT
   * names its workload and user (a mismatch fails it there, audited); then the agent is woken.
   */
  async complete(tenant: TenantId, sessionId: string, completionCode: string, workloadToken: string): Promise<ConsentGrantedData> {
    const { traceparent } = await this.ports.session(tenant, sessionId);
    return inSessionTrace(traceparent, 'complete', async () => {
      const granted = await this.ports.completeSession(tenant, sessionId, completionCode, workloadToken);
      await this.#granted(tenant, granted, { boundBy: 'application' });
      return granted;
    });
  }

  async #granted(tenant: TenantId, data: ConsentGrantedData, details: Record<string, string>): Promise<void> {
    await this.ports.granted(tenant, data);
    await this.#audit(tenant, data, 'consent-grant', 'succeeded', undefined, details);
    instruments().grants.add(1, { outcome: 'granted', provider: data.provider });
  }

  /** Signed in here as the session's user, or the session is the application's to bind; else where to sign in. */
  async #bound(tenant: TenantId, session: ConsentSessionView, workload: WorkloadInfo, browserId: string | undefined): Promise<true | { signInAt: string }> {
    if (session.returnUrl) return true;
    const discoveryUrl = workload.discoveryUrl;
    if (!discoveryUrl || issuerOf(discoveryUrl) !== session.user.iss) {
      instruments().prompts.add(1, { outcome: 'refused', provider: session.provider });
      throw new MandateError('access_denied', 'this consent request can only be completed through the application that asked for it', { details: { reason: 'no_sign_in' } });
    }
    const user = await this.signIn.current(tenant, browserId);
    if (!user || user.iss !== session.user.iss) return { signInAt: discoveryUrl };
    if (user.sub !== session.user.sub) {
      await this.ports.audit({
        tenant,
        service: 'consent',
        action: 'consent-binding',
        outcome: 'denied',
        reason: 'binding_mismatch',
        actor: { workload: session.workload, user },
        target: { provider: session.provider, scopes: session.scopes },
        details: { sessionId: session.sessionId, askedFor: session.user.sub },
      });
      instruments().prompts.add(1, { outcome: 'refused', provider: session.provider });
      throw new MandateError('access_denied', 'this consent request was made for another account', { details: { reason: 'binding_mismatch' } });
    }
    return true;
  }

  async #requireBound(tenant: TenantId, session: ConsentSessionView, browserId: string): Promise<void> {
    if ((await this.#bound(tenant, session, await this.ports.workload(tenant, session.workload), browserId)) !== true) {
      instruments().prompts.add(1, { outcome: 'refused', provider: session.provider });
      throw new MandateError('access_denied', 'sign in first', { details: { reason: 'not_signed_in' } });
    }
  }

  async #pending(tenant: TenantId, sessionId: string): Promise<ConsentSessionView> {
    const session = await this.ports.session(tenant, sessionId);
    if (session.state !== 'pending' || session.awaitingApplication) throw new MandateError('conflict', `this consent request is already ${session.state === 'pending' ? 'answered' : session.state}`);
    return session;
  }

  #expiry(duration: GrantDuration): string | undefined {
    switch (duration.kind) {
      case 'once':
        return new Date(this.#now() + this.options.onceGrantMs).toISOString();
      case 'days':
        return new Date(this.#now() + duration.days * 86_400_000).toISOString();
      case 'until-revoked':
        return undefined;
    }
  }

  #audit(
    tenant: TenantId,
    subject: { workload: string; provider: string; user: UserRef; scopes: string[]; sessionId: string },
    action: string,
    outcome: 'allowed' | 'denied' | 'succeeded' | 'failed',
    reason?: string,
    details: Record<string, string> = {},
  ) {
    return this.ports.audit({
      tenant,
      service: 'consent',
      action,
      outcome,
      ...(reason ? { reason } : {}),
      actor: { workload: subject.workload, user: subject.user },
      target: { provider: subject.provider, scopes: subject.scopes },
      details: { sessionId: subject.sessionId, ...details },
    });
  }
}

function describe(duration: GrantDuration): string {
  return duration.kind === 'days' ? `${duration.days}d` : duration.kind;
}

function sameText(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

/**
 * The workload's return URL (which the vault checked against its allow-list when it opened the
 * session; it never comes from the browser), with the outcome added.
 */
function returnTo(session: ConsentSessionView, extra: Record<string, string>): Outcome | undefined {
  if (!session.returnUrl) return undefined;
  const url = new URL(session.returnUrl);
  url.searchParams.set('session_id', session.sessionId);
  if (session.customState) url.searchParams.set('state', session.customState);
  for (const [name, value] of Object.entries(extra)) url.searchParams.set(name, value);
  return { redirect: url.href };
}

/** A fresh browser id (the session cookie's value). */
export function newBrowserId(): string {
  return randomBytes(32).toString('base64url');
}

