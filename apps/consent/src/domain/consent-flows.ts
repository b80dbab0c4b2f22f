import { createHash, randomBytes } from 'node:crypto';
import { sameText } from '@mandate/crypto';
import * as oauth from 'oauth4webapi';
import { MandateError, type AuditActionOf, type AuditSink, type consentAudit, type ConsentSessionView, type TenantId, type UserRef } from '@mandate/contracts';
import type { StoredDocument } from '@mandate/store';
import { inTraceOf, lazyInstruments } from '@mandate/telemetry';
import type { MandateLedger, WorkloadInfo } from '../clients/ledger.js';
import type { ConsentFlowDocument, GrantDuration, BrowserRecords } from '../store/repositories.js';
import { idpName } from './idp-names.js';
import { browserKey, issuerOf, parseState, type SignIn } from './sign-in.js';

const TRACER = '@mandate/consent';

const instruments = lazyInstruments('@mandate/consent', (meter) => ({
  prompts: meter.createCounter('mandate.consent.prompts', {
    description: 'Consent prompts by what became of them: shown, approved, denied, refused (the wrong person, or not signed in)',
  }),
}));

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

/** What the consent page shows: the session, its agent, and who is signed in here when a sign-in binds it. */
export interface ConsentPageView {
  session: ConsentSessionView;
  workload: WorkloadInfo;
  signedIn?: { user: UserRef; idp: string };
}

/** Where the browser goes next: a redirect (303) or a page. */
export type Outcome = { redirect: string } | { page: 'granted' | 'denied' | 'failed' };

type ConsentAction = AuditActionOf<typeof consentAudit>;

/**
 * One consent, as one browser goes through it, from the page to the provider and back:
 *
 *   bound? ──no: sign in at the IdP first; someone else signed in: refused, audited, nothing changes
 *     │yes
 *   page shown (the session read from the vault once; this browser's flow stored)
 *        │──approve (CSRF ok)──> at provider (flow: PKCE verifier, term)
 *        │                          │──callback, same browser, code exchanged in the vault──> granted
 *        │                          │     (with a return URL: held until the application completes it)
 *        │                          └──provider error / bad code──> failed
 *        └──deny (CSRF ok)──> failed
 *
 * Session binding: the person approving must be the user the session was opened for. A session
 * with a return URL is bound by its application (`session-complete` at the vault, with a WAT for
 * the user signed in there); any other by signing the person in at the workload's IdP here. A
 * callback whose `state` is unknown, used, or from another browser changes nothing. The vault
 * decides every move of the session; this service keeps only where the browser is.
 */
export class ConsentFlows {
  readonly #now: () => number;

  constructor(
    private readonly flows: BrowserRecords<ConsentFlowDocument>,
    private readonly signIn: SignIn,
    private readonly ledger: MandateLedger,
    private readonly audit: AuditSink<ConsentAction>,
    private readonly options: ConsentFlowOptions,
  ) {
    this.#now = options.now ?? Date.now;
  }

  /** What the consent page shows (only a pending session has one), or where to sign in first. */
  async page(tenant: TenantId, sessionId: string, browserId: string): Promise<ConsentPageView | { redirect: string }> {
    const session = await this.ledger.session(tenant, sessionId);
    if (session.state !== 'pending' || session.awaitingApplication) throw new MandateError('conflict', `this consent request is already ${session.state === 'pending' ? 'answered' : session.state}`);
    return inTraceOf(session.traceparent, TRACER, 'consent page', async () => {
      const workload = await this.ledger.workload(tenant, session.workload);
      const bound = await this.#bound(tenant, session, workload, browserId);
      if (typeof bound !== 'string') return { redirect: await this.signIn.start(tenant, bound.signInAt, browserId, `/consent/${sessionId}?tenant=${tenant}`) };
      const expiresAt = Date.parse(session.expiresAt);
      const { workload: name, provider, user, scopes, customParameters, returnUrl, customState, traceparent } = session;
      const flow: ConsentFlowDocument = {
        sessionId,
        workload: name,
        provider,
        user,
        scopes,
        boundBy: bound,
        browser: browserKey(browserId),
        expiresAt,
        ...(customParameters ? { customParameters } : {}),
        ...(returnUrl ? { returnUrl } : {}),
        ...(customState ? { customState } : {}),
        ...(traceparent ? { traceparent } : {}),
      };
      // Shown again (a reload, another tab), it keeps a trip to the provider already under way.
      await this.flows.write(tenant, flowKey(browserId, sessionId), (current) => ({ ...flow, ...(current?.approved ? { approved: current.approved } : {}) }), Math.max(1, expiresAt - this.#now()));
      instruments().prompts.add(1, { outcome: 'shown', provider });
      // Bound by a sign-in here, the signed-in person is the session's user (#bound refused anyone else).
      return { session, workload, ...(bound === 'sign-in' && workload.discoveryUrl ? { signedIn: { user, idp: idpName(workload.discoveryUrl) } } : {}) };
    });
  }

  /**
   * Approve: remembers this browser's trip and returns the provider's authorization URL. Approving
   * again (another tab) starts a new trip; the provider's answer to an earlier one is then refused,
   * and the session stays open.
   */
  async approve(tenant: TenantId, sessionId: string, browserId: string, duration: GrantDuration): Promise<string> {
    const stored = await this.#flow(tenant, sessionId, browserId);
    return inTraceOf(stored.value.traceparent, TRACER, 'consent approve', async () => {
      const flow = stored.value;
      await this.#requireBound(tenant, flow, browserId);
      const remainingMs = flow.expiresAt - this.#now();
      if (remainingMs <= 0) throw new MandateError('not_found', 'this consent request has expired');
      const provider = await this.ledger.providerAuthorization(tenant, flow.provider);
      const codeVerifier = oauth.generateRandomCodeVerifier();
      const trip = randomBytes(12).toString('base64url');
      await this.flows.update(tenant, stored, { ...flow, approved: { codeVerifier, duration, redirectUri: this.options.redirectUri, trip } }, remainingMs);
      const url = new URL(provider.authorizationEndpoint);
      // The workload's extra parameters first, so nothing it sends can replace a protocol parameter;
      // those that would change what the person approves, or where the answer goes, never pass.
      for (const [name, value] of Object.entries({ ...flow.customParameters, ...provider.extraParams })) {
        if (!RESERVED_PARAMETERS.has(name.toLowerCase())) url.searchParams.set(name, value);
      }
      const protocol = {
        response_type: 'code',
        client_id: provider.clientId,
        redirect_uri: this.options.redirectUri,
        state: `${tenant}.${stored.id}${trip}`,
        code_challenge: await oauth.calculatePKCECodeChallenge(codeVerifier),
        code_challenge_method: 'S256',
        ...(flow.scopes.length > 0 ? { scope: flow.scopes.join(provider.scopeSeparator) } : {}),
      };
      for (const [name, value] of Object.entries(protocol)) url.searchParams.set(name, value);
      await this.#audit(tenant, flow, 'consent-approve', 'allowed', undefined, { duration: describe(duration) });
      instruments().prompts.add(1, { outcome: 'approved', provider: flow.provider });
      return url.href;
    });
  }

  /** Deny: the session fails; the workload learns it from its return URL or by asking the vault. */
  async deny(tenant: TenantId, sessionId: string, browserId: string): Promise<Outcome> {
    const stored = await this.#flow(tenant, sessionId, browserId);
    return inTraceOf(stored.value.traceparent, TRACER, 'consent deny', async () => {
      await this.#requireBound(tenant, stored.value, browserId);
      await this.ledger.failSession(tenant, sessionId, 'denied');
      await this.flows.delete(tenant, stored.id);
      await this.#audit(tenant, stored.value, 'consent-deny', 'denied', 'denied');
      instruments().prompts.add(1, { outcome: 'denied', provider: stored.value.provider });
      return returnTo(stored.value, { error: 'access_denied' }) ?? { page: 'denied' };
    });
  }

  /**
   * The provider's redirect back. `state` must name a trip this browser started and not yet
   * finished; then an error ends the session, a code is exchanged (in the vault) and the grant
   * recorded there.
   */
  async callback(params: URLSearchParams, browserId: string | undefined): Promise<Outcome> {
    const { tenant, key } = parseState(params.get('state'));
    const stored = await this.flows.get(tenant, key.slice(0, FLOW_KEY_LENGTH));
    return inTraceOf(stored?.value.traceparent, TRACER, 'consent callback', () => this.#callback(params, browserId, tenant, stored, key.slice(FLOW_KEY_LENGTH)));
  }

  async #callback(params: URLSearchParams, browserId: string | undefined, tenant: TenantId, stored: StoredDocument<ConsentFlowDocument> | undefined, trip: string): Promise<Outcome> {
    if (!stored || !stored.value.approved || !browserId || !sameText(stored.value.browser, browserKey(browserId))) {
      if (stored?.value.approved) await this.#audit(tenant, stored.value, 'consent-callback', 'denied', 'browser_mismatch');
      throw new MandateError('access_denied', 'this sign-in response does not belong to this browser, or was already used');
    }
    // An earlier trip of this browser, superseded by a later approve: refused; the later one goes on.
    if (!sameText(stored.value.approved.trip, trip)) {
      await this.#audit(tenant, stored.value, 'consent-callback', 'denied', 'superseded');
      throw new MandateError('access_denied', 'this sign-in response is for an earlier attempt; finish the latest one');
    }
    // Single use: whoever deletes it first goes on; a replay finds nothing.
    if (!(await this.flows.delete(tenant, stored.id, stored.revision))) throw new MandateError('access_denied', 'this sign-in response was already used');
    const flow = stored.value;
    const { codeVerifier, duration, redirectUri } = flow.approved!;
    const providerError = params.get('error');
    if (providerError !== null) {
      const reason = providerError === 'access_denied' ? 'access_denied' : 'provider_error';
      await this.ledger.failSession(tenant, flow.sessionId, reason);
      await this.#audit(tenant, flow, 'consent-callback', 'failed', /^[a-z_]{1,64}$/.test(providerError) ? providerError : 'provider_error');
      return returnTo(flow, { error: reason }) ?? { page: 'failed' };
    }
    const code = params.get('code');
    if (!code) throw new MandateError('invalid_request', 'the provider sent neither a code nor an error');
    const expiresAt = this.#expiry(duration);
    // Sent to the return URL with this browser only; the application must present it to complete.
    const completionCode = randomBytes(32).toString('base64url');
    let exchanged: { status: 'completed' | 'awaiting-application' };
    try {
      const iss = params.get('iss');
      exchanged = await this.ledger.exchangeCode({
        tenant,
        provider: flow.provider,
        sessionId: flow.sessionId,
        user: flow.user,
        code,
        codeVerifier,
        redirectUri,
        grant: { once: duration.kind === 'once', ...(expiresAt ? { expiresAt } : {}) },
        completionHash: createHash('sha256').update(completionCode).digest('base64url'),
        ...(iss !== null ? { iss } : {}),
      });
    } catch (error) {
      await this.ledger.failSession(tenant, flow.sessionId, 'provider_error').catch(() => undefined);
      await this.#audit(tenant, flow, 'consent-callback', 'failed', error instanceof MandateError ? error.code : 'internal');
      return returnTo(flow, { error: 'provider_error' }) ?? { page: 'failed' };
    }
    const awaiting = exchanged.status === 'awaiting-application';
    await this.#audit(tenant, flow, 'consent-callback', 'succeeded', undefined, { duration: describe(duration), ...(awaiting ? { awaiting: 'application' } : {}) });
    if (awaiting) return returnTo(flow, { completion_code: completionCode }) ?? { page: 'failed' };
    return returnTo(flow, {}) ?? { page: 'granted' };
  }

  /** Bound by its application, or signed in here as the session's user; else where to sign in. */
  async #bound(tenant: TenantId, session: ConsentSessionView, workload: WorkloadInfo, browserId: string | undefined): Promise<ConsentFlowDocument['boundBy'] | { signInAt: string }> {
    if (session.returnUrl) return 'application';
    const discoveryUrl = workload.discoveryUrl;
    if (!discoveryUrl || issuerOf(discoveryUrl) !== session.user.iss) {
      instruments().prompts.add(1, { outcome: 'refused', provider: session.provider });
      throw new MandateError('access_denied', 'this consent request can only be completed through the application that asked for it', { details: { reason: 'no_sign_in' } });
    }
    const user = await this.signIn.current(tenant, browserId);
    if (!user || user.iss !== session.user.iss) return { signInAt: discoveryUrl };
    if (user.sub !== session.user.sub) await this.#refuseBinding(tenant, session, user);
    return 'sign-in';
  }

  /** Still signed in as the session's user (when this service binds it). */
  async #requireBound(tenant: TenantId, flow: ConsentFlowDocument, browserId: string): Promise<void> {
    if (flow.boundBy === 'application') return;
    const user = await this.signIn.current(tenant, browserId);
    if (user && user.iss === flow.user.iss && user.sub !== flow.user.sub) await this.#refuseBinding(tenant, flow, user);
    if (!user || user.iss !== flow.user.iss) {
      instruments().prompts.add(1, { outcome: 'refused', provider: flow.provider });
      throw new MandateError('access_denied', 'sign in first', { details: { reason: 'not_signed_in' } });
    }
  }

  async #refuseBinding(tenant: TenantId, session: { sessionId: string; workload: string; provider: string; scopes: string[]; user: UserRef }, signedIn: UserRef): Promise<never> {
    await this.audit.audit({
      tenant,
      action: 'consent-binding',
      outcome: 'denied',
      reason: 'binding_mismatch',
      actor: { workload: session.workload, user: signedIn },
      target: { provider: session.provider, scopes: session.scopes },
      details: { sessionId: session.sessionId, askedFor: session.user.sub },
    });
    instruments().prompts.add(1, { outcome: 'refused', provider: session.provider });
    throw new MandateError('access_denied', 'this consent request was made for another account', { details: { reason: 'binding_mismatch' } });
  }

  /** This browser's flow of the session, stored when the page was shown to it. */
  async #flow(tenant: TenantId, sessionId: string, browserId: string): Promise<StoredDocument<ConsentFlowDocument>> {
    const stored = await this.flows.get(tenant, flowKey(browserId, sessionId));
    if (!stored || stored.value.sessionId !== sessionId) throw new MandateError('not_found', 'this consent request has expired, or its page was not opened in this browser');
    return stored;
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
    action: ConsentAction,
    outcome: 'allowed' | 'denied' | 'succeeded' | 'failed',
    reason?: string,
    details: Record<string, string> = {},
  ) {
    return this.audit.audit({
      tenant,
      action,
      outcome,
      ...(reason ? { reason } : {}),
      actor: { workload: subject.workload, user: subject.user },
      target: { provider: subject.provider, scopes: subject.scopes },
      details: { sessionId: subject.sessionId, ...details },
    });
  }
}

/** The flow's key (43 characters), the first part of its trips' `state`: unguessable without the browser's cookie. */
const FLOW_KEY_LENGTH = 43;
function flowKey(browserId: string, sessionId: string): string {
  return createHash('sha256').update(`consent-flow\n${browserId}\n${sessionId}`).digest('base64url');
}

function describe(duration: GrantDuration): string {
  return duration.kind === 'days' ? `${duration.days}d` : duration.kind;
}


/**
 * The workload's return URL (which the vault checked against its allow-list when it opened the
 * session; it never comes from the browser), with the outcome added.
 */
function returnTo(flow: ConsentFlowDocument, extra: Record<string, string>): Outcome | undefined {
  if (!flow.returnUrl) return undefined;
  const url = new URL(flow.returnUrl);
  url.searchParams.set('session_id', flow.sessionId);
  if (flow.customState) url.searchParams.set('state', flow.customState);
  for (const [name, value] of Object.entries(extra)) url.searchParams.set(name, value);
  return { redirect: url.href };
}

/** A fresh browser id (the session cookie's value). */
export function newBrowserId(): string {
  return randomBytes(32).toString('base64url');
}
