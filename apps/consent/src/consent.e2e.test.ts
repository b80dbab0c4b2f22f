import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import type { JWK } from 'jose';
import { headers as natsHeaders } from '@nats-io/transport-node';
import { metrics } from '@opentelemetry/api';
import { AggregationTemporality, InMemoryMetricExporter, MeterProvider, PeriodicExportingMetricReader } from '@opentelemetry/sdk-metrics';
import {
  CONSENT_GRANTED_ALL_TENANTS,
  consentSessionGetEndpoint,
  oauth2TokenEndpoint,
  providerCreateEndpoint,
  sessionCompleteEndpoint,
  grantCheckEndpoint,
  grantListEndpoint,
  tokenForJwtEndpoint,
  type DomainEvent,
  type ConsentGrantedData,
} from '@mandate/contracts';
import { freePort, natsServerMissing, failure } from '@mandate/testing';
import { chromiumMissing, launchChromium } from '@mandate/testing/browser';
import { startTestIdp, type TestIdp } from '@mandate/testing/idp';
import { HttpBrowser as Browser } from '@mandate/testing/http-browser';
import { startSystem, workloadKeyPair, type TestSystem } from '@mandate/testing/system';
import { signClientAssertion } from '@mandate/wat';

const missing = natsServerMissing('consent service');
const RETURN_URL = 'https://app.example/consent/done';
const SCOPES = ['openid', 'crm.read'];
const RESOURCE = 'https://crm.example';

/** The one-time completion code the approving browser was sent to the return URL with. */
function completionCodeOf(response: Response): string {
  const code = new URL(response.headers.get('location')!).searchParams.get('completion_code');
  if (!code) throw new Error('no completion_code in the redirect to the return URL');
  return code;
}

describe.skipIf(missing)('the consent service: page, provider, callback, vault', () => {
  let h: TestSystem;
  let idp: TestIdp;
  let consentUrl: string;
  let agentKey: JWK;
  const granted: DomainEvent<ConsentGrantedData>[] = [];

  // The consent service's counters, as an exporter would see them.
  const exporter = new InMemoryMetricExporter(AggregationTemporality.CUMULATIVE);
  const reader = new PeriodicExportingMetricReader({ exporter, exportIntervalMillis: 3_600_000 });

  /** `<counter> <outcome>` -> count so far, for the consent service's counters. */
  async function consentCounts(): Promise<Record<string, number>> {
    exporter.reset();
    await reader.forceFlush();
    const counts: Record<string, number> = {};
    for (const metric of exporter.getMetrics().flatMap((m) => m.scopeMetrics.flatMap((scope) => scope.metrics))) {
      if (!metric.descriptor.name.startsWith('mandate.consent.')) continue;
      for (const point of metric.dataPoints) {
        const key = `${metric.descriptor.name.slice('mandate.consent.'.length)} ${String(point.attributes['outcome'])}`;
        counts[key] = (counts[key] ?? 0) + (point.value as number);
      }
    }
    return counts;
  }

  beforeAll(async () => {
    metrics.setGlobalMeterProvider(new MeterProvider({ readers: [reader] }));
    const port = await freePort();
    consentUrl = `http://127.0.0.1:${port}`;
    h = await startSystem({
      services: ['directory', 'authorizer', 'vault', 'consent'],
      env: { CONSENT_BASE_URL: consentUrl, CONSENT_HTTP_PORT: String(port), CONSENT_PUBLIC_URL: consentUrl },
    });
    idp = await startTestIdp({ redirectUris: [`${consentUrl}/callback`] });
    h.nc.subscribe(CONSENT_GRANTED_ALL_TENANTS, { callback: (_e, msg) => void granted.push(msg.json<DomainEvent<ConsentGrantedData>>()) });
    agentKey = await h.workload('crm-agent', { allowUserIdTokens: true, returnUrls: [RETURN_URL] });
    await h.bus.request(providerCreateEndpoint, {
      kind: 'oauth2',
      tenant: 'acme',
      name: 'crm',
      description: 'CRM',
      vendor: 'custom',
      discoveryUrl: idp.discoveryUrl,
      clientId: 'test-app',
      clientSecret: 'test-app-secret',
      allowedWorkloads: ['crm-agent'],
    });
  });

  afterAll(async () => {
    metrics.disable();
    await h?.stop();
    await idp?.stop();
  });

  /** The agent asks for a token and gets a consent session (the vault's `consent_required`). */
  async function openSession(userId: string, extra: { returnUrl?: string } = { returnUrl: RETURN_URL }) {
    const { wat } = await h.userWat('crm-agent', agentKey, userId);
    const error = await failure(
      h.bus.request(oauth2TokenEndpoint, { tenant: 'acme', workloadToken: wat, provider: 'crm', flow: 'USER_FEDERATION', scopes: SCOPES, customParameters: { resource: RESOURCE }, ...extra }),
    );
    expect(error.code).toBe('consent_required');
    const details = error.details as { sessionId: string; authorizationUrl: string };
    return { wat, ...details };
  }

  async function consentPage(browser: Browser, authorizationUrl: string) {
    const page = await browser.request(authorizationUrl);
    expect(page.status).toBe(200);
    const html = await page.text();
    const csrf = /name="csrf" value="([^"]+)"/.exec(html)?.[1];
    expect(csrf).toBeTruthy();
    return { page, html, csrf: csrf! };
  }

  /** Approve on the consent page, then log in and consent at the provider like a person would; returns the callback URL. */
  async function approveAtProvider(browser: Browser, authorizationUrl: string, sub: string, duration = '7'): Promise<string> {
    const { csrf } = await consentPage(browser, authorizationUrl);
    const approve = await browser.request(authorizationUrl, { csrf, decision: 'approve', duration });
    expect(approve.status).toBe(303);
    const location = approve.headers.get('location')!;
    const authorize = new URL(location);
    expect(authorize.origin).toBe(idp.issuer);
    expect(authorize.searchParams.get('code_challenge_method')).toBe('S256');
    expect(authorize.searchParams.get('redirect_uri')).toBe(`${consentUrl}/callback`);
    expect(authorize.searchParams.get('client_id')).toBe('test-app');
    return browser.throughIdp(location, idp.issuer, sub, `${consentUrl}/callback`);
  }

  it('shows who asks for what, with the security headers, and sets an HttpOnly SameSite=Lax cookie', async () => {
    const { authorizationUrl } = await openSession('sarah');
    expect(authorizationUrl.startsWith(`${consentUrl}/consent/`)).toBe(true);
    const browser = new Browser();
    const first = await browser.request(authorizationUrl);
    expect(first.headers.getSetCookie()[0]).toMatch(/^mandate-consent=[A-Za-z0-9_-]{43}; Path=\/; HttpOnly; SameSite=Lax/);
    const { page, html } = await consentPage(browser, authorizationUrl);
    const csp = page.headers.get('content-security-policy')!;
    expect(csp).toContain("frame-ancestors 'none'");
    expect(csp).not.toContain('script-src');
    expect(csp).toContain("default-src 'none'");
    expect(page.headers.get('referrer-policy')).toBe('no-referrer');
    expect(page.headers.get('cache-control')).toBe('no-store');
    expect(page.headers.get('x-content-type-options')).toBe('nosniff');
    expect(html).toContain('crm-agent');
    expect(html).toContain('crm.read');
    expect(html).toContain('For 7 days');
    expect(html).not.toContain('<script');
    expect(html).not.toContain('test-app-secret');
    // Headers on error pages too.
    const notFound = await browser.request(`${consentUrl}/nothing`);
    expect(notFound.status).toBe(404);
    expect(notFound.headers.get('content-security-policy')).toContain("frame-ancestors 'none'");
  });

  it('one browser, two tabs: a reload keeps the trip under way; approving again supersedes it, and the earlier answer is refused without ending the session', async () => {
    const reloaded = await openSession('reloading-user');
    const browser = new Browser();
    const underWay = await approveAtProvider(browser, reloaded.authorizationUrl, 'reloading-user');
    await consentPage(browser, reloaded.authorizationUrl);
    expect((await browser.request(underWay)).status).toBe(303);

    const { authorizationUrl, sessionId } = await openSession('two-tabs-user');
    const first = await approveAtProvider(browser, authorizationUrl, 'two-tabs-user');
    const second = await approveAtProvider(browser, authorizationUrl, 'two-tabs-user');
    expect((await browser.request(first)).status).toBe(403);
    await expect.poll(() => h.audit.find((r) => r.action === 'consent-callback' && r.reason === 'superseded' && r.details?.['sessionId'] === sessionId)).toBeTruthy();
    expect((await h.bus.request(consentSessionGetEndpoint, { tenant: 'acme', sessionId })).state).toBe('pending');
    const done = await browser.request(second);
    expect(done.status).toBe(303);
    expect(new URL(done.headers.get('location')!).searchParams.get('completion_code')).toBeTruthy();
  });

  it('refuses a POST without the CSRF token, or with one from another browser', async () => {
    const { authorizationUrl, wat, sessionId } = await openSession('csrf-user');
    const victim = new Browser();
    const { csrf } = await consentPage(victim, authorizationUrl);
    expect((await victim.request(authorizationUrl, { decision: 'approve', duration: '7' })).status).toBe(403);
    const attacker = new Browser();
    await consentPage(attacker, authorizationUrl);
    expect((await attacker.request(authorizationUrl, { csrf, decision: 'deny' })).status).toBe(403);
    // Nothing changed: the session is still pending.
    expect((await h.bus.request(consentSessionGetEndpoint, { tenant: 'acme', sessionId })).state).toBe('pending');
    const still = await failure(h.bus.request(oauth2TokenEndpoint, { tenant: 'acme', workloadToken: wat, provider: 'crm', flow: 'USER_FEDERATION', scopes: SCOPES, sessionId }));
    expect(still.code).toBe('consent_required');
  });

  it('approve → provider (PKCE, state) → callback → 303 to the return URL → the application completes it: tokens in the vault, grant recorded, consent.granted published', async () => {
    const { authorizationUrl, wat, sessionId } = await openSession('sarah-approves');
    const browser = new Browser();
    const callback = await approveAtProvider(browser, authorizationUrl, 'sarah-approves');
    expect(new URL(callback).searchParams.get('iss')).toBe(idp.issuer);
    const done = await browser.request(callback);
    expect(done.status).toBe(303);
    const back = new URL(done.headers.get('location')!);
    expect(`${back.origin}${back.pathname}`).toBe(RETURN_URL);
    expect(back.searchParams.get('session_id')).toBe(sessionId);
    expect(back.searchParams.has('error')).toBe(false);
    // Until the application binds it to its signed-in user, nothing is granted.
    const waiting = await failure(h.bus.request(oauth2TokenEndpoint, { tenant: 'acme', workloadToken: wat, provider: 'crm', flow: 'USER_FEDERATION', scopes: SCOPES, sessionId }));
    expect(waiting).toMatchObject({ code: 'consent_required', details: { status: 'pending' } });
    expect(granted.some((e) => e.data.sessionId === sessionId)).toBe(false);
    expect(await h.bus.request(sessionCompleteEndpoint, { tenant: 'acme', sessionId, completionCode: completionCodeOf(done), workloadToken: wat })).toMatchObject({
      completed: true,
      workload: 'crm-agent',
      provider: 'crm',
      scopes: SCOPES,
    });

    const token = await h.bus.request(oauth2TokenEndpoint, { tenant: 'acme', workloadToken: wat, provider: 'crm', flow: 'USER_FEDERATION', scopes: SCOPES, sessionId });
    expect(token.accessToken.length).toBeGreaterThan(20);
    // Asked again without a session: within the grant, nobody is asked.
    const again = await h.bus.request(oauth2TokenEndpoint, { tenant: 'acme', workloadToken: wat, provider: 'crm', flow: 'USER_FEDERATION', scopes: SCOPES });
    expect(again.accessToken).toBe(token.accessToken);
    expect((await h.bus.request(consentSessionGetEndpoint, { tenant: 'acme', sessionId })).state).toBe('completed');

    await expect.poll(() => granted.find((e) => e.data.sessionId === sessionId)).toBeTruthy();
    expect(granted.find((e) => e.data.sessionId === sessionId)!.data).toMatchObject({ workload: 'crm-agent', provider: 'crm', scopes: SCOPES });
    await expect.poll(() => h.audit.find((r) => r.service === 'vault' && r.action === 'consent-grant' && r.details?.['sessionId'] === sessionId)).toBeTruthy();
    const record = h.audit.find((r) => r.service === 'vault' && r.action === 'consent-grant' && r.details?.['sessionId'] === sessionId)!;
    expect(record.details?.['boundBy']).toBe('application');
    const answered = h.audit.find((r) => r.action === 'consent-callback' && r.details?.['sessionId'] === sessionId)!;
    expect(answered.details).toMatchObject({ duration: '7d', awaiting: 'application' });
    expect(JSON.stringify(h.audit)).not.toContain(token.accessToken);

    // The same callback again (a replayed state) is refused and changes nothing.
    const replay = await browser.request(callback);
    expect(replay.status).toBe(403);
    expect(await replay.text()).not.toContain(new URL(callback).searchParams.get('code')!);
  });

  it('the consent steps continue the trace of the agent request that asked: one trace id from the request to the grant', async () => {
    const traceId = randomBytes(16).toString('hex');
    const traced = natsHeaders();
    traced.set('traceparent', `00-${traceId}-${randomBytes(8).toString('hex')}-01`);
    const { wat } = await h.userWat('crm-agent', agentKey, 'tracy');
    // A plain NATS client, as an agent in any language would call it, passing its own traceparent.
    const request = { tenant: 'acme', workloadToken: wat, provider: 'crm', flow: 'USER_FEDERATION', scopes: SCOPES, returnUrl: RETURN_URL };
    const reply = await h.nc.request(oauth2TokenEndpoint.subject, JSON.stringify(request), { headers: traced, timeout: 5_000 });
    const { error } = reply.json<{ error: { code: string; details: { sessionId: string; authorizationUrl: string } } }>();
    expect(error.code).toBe('consent_required');
    const { sessionId, authorizationUrl } = error.details;
    const browser = new Browser();
    const done = await browser.request(await approveAtProvider(browser, authorizationUrl, 'tracy'));
    expect(done.status).toBe(303);
    // The application completes it in a request of its own (another trace): the grant still joins the agent's.
    await h.bus.request(sessionCompleteEndpoint, { tenant: 'acme', sessionId, completionCode: completionCodeOf(done), workloadToken: wat });
    const steps = ['consent/consent-approve', 'vault/code-exchange', 'consent/consent-callback', 'vault/consent-grant'];
    await expect.poll(() => steps.filter((step) => h.audit.some((r) => `${r.service}/${r.action}` === step && r.details?.['sessionId'] === sessionId))).toEqual(steps);
    const ofSession = h.audit.filter((r) => steps.includes(`${r.service}/${r.action}`) && r.details?.['sessionId'] === sessionId);
    expect(ofSession.map((r) => r.traceId)).toEqual(ofSession.map(() => traceId));
  });

  it('counts consent prompts and grants by outcome', async () => {
    const before = await consentCounts();
    const approved = await openSession('counted-approves');
    const browser = new Browser();
    const done = await browser.request(await approveAtProvider(browser, approved.authorizationUrl, 'counted-approves'));
    await h.bus.request(sessionCompleteEndpoint, { tenant: 'acme', sessionId: approved.sessionId, completionCode: completionCodeOf(done), workloadToken: approved.wat });
    const denied = await openSession('counted-denies');
    const other = new Browser();
    const { csrf } = await consentPage(other, denied.authorizationUrl);
    expect((await other.request(denied.authorizationUrl, { csrf, decision: 'deny' })).status).toBe(303);
    const after = await consentCounts();
    const added = Object.fromEntries(Object.entries(after).map(([key, n]) => [key, n - (before[key] ?? 0)]).filter(([, n]) => n !== 0));
    expect(added).toEqual({ 'prompts shown': 2, 'prompts approved': 1, 'prompts denied': 1, 'grants awaiting-application': 1, 'grants granted': 1 });
  });

  it('deny → the session fails, 303 to the return URL with access_denied, audited', async () => {
    const { authorizationUrl, wat, sessionId } = await openSession('sarah-denies');
    const browser = new Browser();
    const { csrf } = await consentPage(browser, authorizationUrl);
    // A return URL in the form is ignored: only the session's counts.
    const denied = await browser.request(authorizationUrl, { csrf, decision: 'deny', returnUrl: 'https://evil.example/', return_url: '//evil.example' });
    expect(denied.status).toBe(303);
    const back = new URL(denied.headers.get('location')!);
    expect(`${back.origin}${back.pathname}`).toBe(RETURN_URL);
    expect(back.searchParams.get('error')).toBe('access_denied');
    const error = await failure(h.bus.request(oauth2TokenEndpoint, { tenant: 'acme', workloadToken: wat, provider: 'crm', flow: 'USER_FEDERATION', scopes: SCOPES, sessionId }));
    expect(error.code).toBe('access_denied');
    // The page of a finished session is gone.
    expect((await browser.request(authorizationUrl)).status).toBe(409);
    await expect.poll(() => h.audit.find((r) => r.service === 'consent' && r.action === 'consent-deny' && r.details?.['sessionId'] === sessionId)).toBeTruthy();
  });

  it('session binding by the application: another user completes nothing, the held tokens are dropped, audited', async () => {
    const { authorizationUrl, wat, sessionId } = await openSession('mallory-opened');
    // Mallory's session reaches Sarah, who approves it at the provider with her own account...
    const browser = new Browser();
    const callback = await approveAtProvider(browser, authorizationUrl, 'sarah-tricked');
    const back = await browser.request(callback);
    expect(back.status).toBe(303);
    // Mallory knows the session id (it was in her link) but not the code Sarah's browser got: refused, nothing changes.
    for (const completionCode of ['A'.repeat(43), 'not-even-the-right-shape']) {
      const guessed = await failure(h.bus.request(sessionCompleteEndpoint, { tenant: 'acme', sessionId, completionCode, workloadToken: wat }));
      expect(guessed.code).toMatch(/access_denied|invalid_request/);
    }
    expect((await h.bus.request(consentSessionGetEndpoint, { tenant: 'acme', sessionId })).state).toBe('pending');
    // The application, where Sarah is signed in, completes it with the code, for Sarah: refused.
    const { wat: sarahWat } = await h.userWat('crm-agent', agentKey, 'sarah-tricked');
    const revokedBefore = idp.revocationRequests;
    const refused = await failure(h.bus.request(sessionCompleteEndpoint, { tenant: 'acme', sessionId, completionCode: completionCodeOf(back), workloadToken: sarahWat }));
    expect(refused).toMatchObject({ code: 'access_denied', details: { reason: 'binding_mismatch' } });
    // Sarah's tokens, handed over at the provider, are revoked there, not just dropped here.
    expect(idp.revocationRequests).toBe(revokedBefore + 1);
    expect((await h.bus.request(consentSessionGetEndpoint, { tenant: 'acme', sessionId })).state).toBe('failed');
    // Nothing was stored for Mallory, and Mallory cannot complete it afterwards either, code or not.
    expect((await failure(h.bus.request(sessionCompleteEndpoint, { tenant: 'acme', sessionId, completionCode: completionCodeOf(back), workloadToken: wat }))).code).toBe('conflict');
    expect((await failure(h.bus.request(oauth2TokenEndpoint, { tenant: 'acme', workloadToken: wat, provider: 'crm', flow: 'USER_FEDERATION', scopes: SCOPES }))).code).toBe('consent_required');
    await expect.poll(() => h.audit.find((r) => r.action === 'consent-session-complete' && r.reason === 'binding_mismatch' && r.details?.['sessionId'] === sessionId)).toBeTruthy();
    expect(granted.some((e) => e.data.sessionId === sessionId)).toBe(false);
  });

  it('a session without a return URL for a user no IdP here can sign in is refused on the page, changing nothing', async () => {
    const { authorizationUrl, sessionId } = await openSession('no-return', {});
    const page = await new Browser().request(authorizationUrl);
    expect(page.status).toBe(403);
    expect(await page.text()).toContain('through the application');
    expect((await h.bus.request(consentSessionGetEndpoint, { tenant: 'acme', sessionId })).state).toBe('pending');
  });

  it('refuses a forged state, and a real state from another browser, changing nothing', async () => {
    const stranger = new Browser();
    const forged = await stranger.request(`${consentUrl}/callback?state=acme.${'A'.repeat(43)}&code=abc&iss=${encodeURIComponent(idp.issuer)}`);
    expect(forged.status).toBe(403);
    expect((await stranger.request(`${consentUrl}/callback?code=abc`)).status).toBe(403);

    const { authorizationUrl, sessionId } = await openSession('sarah-state');
    const victim = new Browser();
    const callback = await approveAtProvider(victim, authorizationUrl, 'sarah-state');
    const elsewhere = await new Browser().request(callback);
    expect(elsewhere.status).toBe(403);
    expect((await h.bus.request(consentSessionGetEndpoint, { tenant: 'acme', sessionId })).state).toBe('pending');
    await expect.poll(() => h.audit.find((r) => r.action === 'consent-callback' && r.reason === 'browser_mismatch' && r.details?.['sessionId'] === sessionId)).toBeTruthy();
    // The right browser still completes it.
    const back = await victim.request(callback);
    expect(back.status).toBe(303);
    const { wat } = await h.userWat('crm-agent', agentKey, 'sarah-state');
    await h.bus.request(sessionCompleteEndpoint, { tenant: 'acme', sessionId, completionCode: completionCodeOf(back), workloadToken: wat });
    expect((await h.bus.request(consentSessionGetEndpoint, { tenant: 'acme', sessionId })).state).toBe('completed');
  });

  it.each([
    ['the provider says access_denied', (state: string) => `state=${state}&error=access_denied`, 'access_denied'],
    ['a bad code', (state: string) => `state=${state}&code=not-a-code&iss=${encodeURIComponent(idp.issuer)}`, 'provider_error'],
  ])('ends the session cleanly when %s', async (_what, query, reason) => {
    const { authorizationUrl, wat, sessionId } = await openSession(`err-${reason}-${Math.random().toString(36).slice(2, 8)}`);
    const browser = new Browser();
    const { csrf } = await consentPage(browser, authorizationUrl);
    const approve = await browser.request(authorizationUrl, { csrf, decision: 'approve', duration: 'once' });
    const state = new URL(approve.headers.get('location')!).searchParams.get('state')!;
    const done = await browser.request(`${consentUrl}/callback?${query(encodeURIComponent(state))}`);
    expect(done.status).toBe(303);
    expect(new URL(done.headers.get('location')!).searchParams.get('error')).toBe(reason);
    expect((await h.bus.request(consentSessionGetEndpoint, { tenant: 'acme', sessionId })).state).toBe('failed');
    expect((await failure(h.bus.request(oauth2TokenEndpoint, { tenant: 'acme', workloadToken: wat, provider: 'crm', flow: 'USER_FEDERATION', scopes: SCOPES, sessionId }))).code).toBe('access_denied');
  });

  it.each([
    ['the iss of another server', 'https://evil.example'],
    ['no iss, where the provider advertises it', undefined],
  ])('RFC 9207: a genuine code with %s is never redeemed, and the session fails', async (_what, iss) => {
    const { authorizationUrl, sessionId } = await openSession(`iss-${Math.random().toString(36).slice(2, 8)}`);
    const browser = new Browser();
    const callback = new URL(await approveAtProvider(browser, authorizationUrl, 'iss-user'));
    if (iss) callback.searchParams.set('iss', iss);
    else callback.searchParams.delete('iss');
    const redeemed = () => idp.tokenRequests.filter((r) => r.grantType === 'authorization_code').length;
    const before = redeemed();
    const done = await browser.request(callback.href);
    expect(new URL(done.headers.get('location')!).searchParams.get('error')).toBe('provider_error');
    expect(redeemed()).toBe(before);
    expect((await h.bus.request(consentSessionGetEndpoint, { tenant: 'acme', sessionId })).state).toBe('failed');
  });

  it('PKCE: a stolen authorization code cannot be redeemed without the verifier, which never leaves the consent service', async () => {
    const { authorizationUrl, wat, sessionId } = await openSession('pkce-user');
    const browser = new Browser();
    const callback = new URL(await approveAtProvider(browser, authorizationUrl, 'pkce-user'));
    const stolen = callback.searchParams.get('code')!;
    const redeem = (extra: Record<string, string>) =>
      fetch(idp.tokenEndpoint, {
        method: 'POST',
        headers: { authorization: `Basic ${Buffer.from('test-app:test-app-secret').toString('base64')}`, 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ grant_type: 'authorization_code', code: stolen, redirect_uri: `${consentUrl}/callback`, ...extra }),
      });
    for (const extra of [{}, { code_verifier: 'x'.repeat(43) }] as Record<string, string>[]) {
      const response = await redeem(extra);
      expect(response.status).toBe(400);
      expect(((await response.json()) as { error: string }).error).toMatch(/invalid_grant|invalid_request/);
    }
    // Nothing reached the vault: the session is still waiting for the person.
    expect((await failure(h.bus.request(oauth2TokenEndpoint, { tenant: 'acme', workloadToken: wat, provider: 'crm', flow: 'USER_FEDERATION', scopes: SCOPES, sessionId }))).code).toBe('consent_required');
  });

  it('"this time only" lets the agent fetch its token once; the next request asks again', async () => {
    const { authorizationUrl, wat, sessionId } = await openSession('once-user');
    const browser = new Browser();
    const callback = await approveAtProvider(browser, authorizationUrl, 'once-user', 'once');
    const back = await browser.request(callback);
    expect(back.status).toBe(303);
    await h.bus.request(sessionCompleteEndpoint, { tenant: 'acme', sessionId, completionCode: completionCodeOf(back), workloadToken: wat });
    const user = { iss: 'urn:mandate:user-id', sub: 'once-user' };
    expect((await h.bus.request(grantListEndpoint, { tenant: 'acme', user })).items).toMatchObject([{ provider: 'crm', once: true }]);
    const token = await h.bus.request(oauth2TokenEndpoint, { tenant: 'acme', workloadToken: wat, provider: 'crm', flow: 'USER_FEDERATION', scopes: SCOPES, sessionId });
    expect(token.accessToken.length).toBeGreaterThan(20);
    expect((await failure(h.bus.request(oauth2TokenEndpoint, { tenant: 'acme', workloadToken: wat, provider: 'crm', flow: 'USER_FEDERATION', scopes: SCOPES }))).code).toBe('consent_required');
    expect((await h.bus.request(grantListEndpoint, { tenant: 'acme', user })).items).toEqual([]);
  });

  it('a request for a new scope asks only for what is new, and the token then carries all of them', async () => {
    const first = await openSession('more-scopes');
    const browser = new Browser();
    const back = await browser.request(await approveAtProvider(browser, first.authorizationUrl, 'more-scopes'));
    expect(back.status).toBe(303);
    await h.bus.request(sessionCompleteEndpoint, { tenant: 'acme', sessionId: first.sessionId, completionCode: completionCodeOf(back), workloadToken: first.wat });
    const more = [...SCOPES, 'crm.write'];
    const error = await failure(h.bus.request(oauth2TokenEndpoint, { tenant: 'acme', workloadToken: first.wat, provider: 'crm', flow: 'USER_FEDERATION', scopes: more, customParameters: { resource: RESOURCE }, returnUrl: RETURN_URL }));
    const { authorizationUrl, sessionId } = error.details as { authorizationUrl: string; sessionId: string };
    const { html, csrf } = await consentPage(browser, authorizationUrl);
    const [asked, already] = html.split('You already allowed');
    expect(asked).toContain('crm.write');
    expect(asked).not.toContain('<code>crm.read</code>');
    expect(already).toContain('crm.read');
    const approve = await browser.request(authorizationUrl, { csrf, decision: 'approve', duration: '7' });
    expect(new URL(approve.headers.get('location')!).searchParams.get('scope')).toBe(more.join(' '));
    const user = { iss: 'urn:mandate:user-id', sub: 'more-scopes' };
    expect(await h.bus.request(grantCheckEndpoint, { tenant: 'acme', workload: 'crm-agent', provider: 'crm', user, scopes: more })).toEqual({ granted: false, missing: ['crm.write'] });
    expect((await h.bus.request(consentSessionGetEndpoint, { tenant: 'acme', sessionId })).scopes).toEqual(more);
    // Approved "for 1 day": the new scope gets that term, the earlier ones keep their 7 days.
    const done = await browser.request(await approveAtProvider(browser, authorizationUrl, 'more-scopes', '1'));
    await h.bus.request(sessionCompleteEndpoint, { tenant: 'acme', sessionId, completionCode: completionCodeOf(done), workloadToken: first.wat });
    const [grant] = (await h.bus.request(grantListEndpoint, { tenant: 'acme', user })).items;
    const daysLeft = (scope: string) => Math.round((Date.parse(grant!.scopeTerms[scope]!) - Date.now()) / 86_400_000);
    expect([daysLeft('crm.read'), daysLeft('crm.write')]).toEqual([7, 1]);
    const token = await h.bus.request(oauth2TokenEndpoint, { tenant: 'acme', workloadToken: first.wat, provider: 'crm', flow: 'USER_FEDERATION', scopes: more, sessionId });
    expect(token.accessToken.length).toBeGreaterThan(20);
  });

  it('open redirects are impossible: the vault refuses return URLs off the allow-list', async () => {
    for (const returnUrl of ['//evil.example/', '/\\evil.example', 'https://app.example@evil.example/', 'javascript:alert(1)', 'https://app.example/consent/done/../../x', 'https://evil.example/consent/done', 'https%3A%2F%2Fevil.example']) {
      const { wat } = await h.userWat('crm-agent', agentKey, 'redirector');
      const error = await failure(h.bus.request(oauth2TokenEndpoint, { tenant: 'acme', workloadToken: wat, provider: 'crm', flow: 'USER_FEDERATION', scopes: SCOPES, returnUrl }));
      expect(error.code, returnUrl).toBe('invalid_request');
    }
  });

  describe('the pages: who is signed in, the agent, the IdP by name, revoking with a confirmation, an empty "My access"', () => {
    const TENANT = 'pages';
    const AGENT = 'brief-agent';
    const DESCRIPTION = 'Writes your weekly account brief from your CRM notes.';
    const APP_AUDIENCE = 'https://brief-app.example';
    let corp: TestIdp;
    let briefKey: JWK;

    beforeAll(async () => {
      // Sarah's company IdP: it signs her in to the consent pages (session binding by sign-in).
      corp = await startTestIdp({
        extraClients: [{ client_id: 'mandate-consent', token_endpoint_auth_method: 'none', grant_types: ['authorization_code'], response_types: ['code'], redirect_uris: [`${consentUrl}/login/callback`] }],
      });
      const keys = await workloadKeyPair(`${AGENT}-key`);
      briefKey = keys.privateJwk;
      await h.createWorkload({ tenant: TENANT, name: AGENT, description: DESCRIPTION, publicKeys: { keys: [keys.publicJwk as never] } });
      await h.setAuthorizer(TENANT, AGENT, { discoveryUrl: corp.discoveryUrl, allowedAudiences: [APP_AUDIENCE] });
      await h.bus.request(providerCreateEndpoint, {
        kind: 'oauth2',
        tenant: TENANT,
        name: 'crm',
        description: 'CRM',
        vendor: 'custom',
        discoveryUrl: idp.discoveryUrl,
        clientId: 'test-app',
        clientSecret: 'test-app-secret',
        allowedWorkloads: [AGENT],
      });
    });

    afterAll(async () => {
      await corp?.stop();
    });

    /** The agent asks for Sarah's token with her IdP token (no return URL): a session this service binds by signing her in. */
    async function openSignInSession(sub: string): Promise<{ authorizationUrl: string; sessionId: string }> {
      const userToken = await corp.userAccessToken({ sub, audience: APP_AUDIENCE });
      const clientAssertion = await signClientAssertion({ workload: AGENT, privateJwk: briefKey });
      const { token: wat } = await h.bus.request(tokenForJwtEndpoint, { tenant: TENANT, workload: AGENT, userToken, clientAssertion });
      const error = await failure(h.bus.request(oauth2TokenEndpoint, { tenant: TENANT, workloadToken: wat, provider: 'crm', flow: 'USER_FEDERATION', scopes: SCOPES }));
      expect(error.code).toBe('consent_required');
      return error.details as { authorizationUrl: string; sessionId: string };
    }

    /** Opens the consent page in a browser that is not signed in: to the IdP, signed in as `sub`, back to the page. */
    async function signInThroughConsentPage(browser: Browser, authorizationUrl: string, sub: string): Promise<void> {
      const toIdp = await browser.request(authorizationUrl);
      expect(toIdp.status).toBe(303);
      const callback = await browser.throughIdp(toIdp.headers.get('location')!, corp.issuer, sub, `${consentUrl}/login/callback`);
      const backToPage = await browser.request(callback);
      expect(backToPage.status).toBe(303);
      expect(new URL(backToPage.headers.get('location')!, consentUrl).href).toBe(authorizationUrl);
    }

    /** Sarah signs in, approves for 7 days at the consent page and at the provider: a grant of `crm` to the agent. */
    async function grantThroughSignIn(browser: Browser, sub: string): Promise<void> {
      const { authorizationUrl } = await openSignInSession(sub);
      await signInThroughConsentPage(browser, authorizationUrl, sub);
      const { csrf } = await consentPage(browser, authorizationUrl);
      const approve = await browser.request(authorizationUrl, { csrf, decision: 'approve', duration: '7' });
      expect(approve.status).toBe(303);
      const done = await browser.request(await browser.throughIdp(approve.headers.get('location')!, idp.issuer, sub, `${consentUrl}/callback`));
      expect(done.status).toBe(200);
      expect(await done.text()).toContain('Access granted');
    }

    const grantsOf = async (sub: string) => (await h.bus.request(grantListEndpoint, { tenant: TENANT, user: { iss: corp.issuer, sub } })).items;

    it('the consent page says who is signed in, at which IdP, and shows the agent’s description', async () => {
      const { authorizationUrl } = await openSignInSession('sarah-pages');
      const browser = new Browser();
      await signInThroughConsentPage(browser, authorizationUrl, 'sarah-pages');
      const { html } = await consentPage(browser, authorizationUrl);
      expect(html).toContain(`Signed in as <code>sarah-pages</code> at ${new URL(corp.issuer).host}.`);
      expect(html).toContain(DESCRIPTION);
      expect(html).toContain(AGENT);
    });

    it('a page bound by its application says nobody is signed in here, and an agent without a description says so', async () => {
      const { authorizationUrl } = await openSession('sarah-app-bound');
      const { html } = await consentPage(new Browser(), authorizationUrl);
      expect(html).not.toContain('Signed in as');
      expect(html).toContain('This agent has no description.');
    });

    it('the sign-in links of "My access" name each IdP, not its host', async () => {
      const idps = { 'okta-agent': 'https://initech.okta.com/.well-known/openid-configuration', 'google-agent': 'https://accounts.google.com/.well-known/openid-configuration' };
      for (const [name, discoveryUrl] of Object.entries(idps)) {
        await h.workload(name, { tenant: 'pages-idps' });
        await h.setAuthorizer('pages-idps', name, { discoveryUrl, allowedAudiences: [APP_AUDIENCE] });
      }
      const page = await new Browser().request(`${consentUrl}/access?tenant=pages-idps`);
      expect(page.status).toBe(200);
      const links = [...(await page.text()).matchAll(/<a href="\/access\/sign-in[^"]*">([^<]*)<\/a>/g)].map(([, text]) => text);
      expect(links.sort()).toEqual(['Sign in at Google', 'Sign in at Okta (initech)']);
    });

    it('revoking in "My access" asks to confirm first (a page that changes nothing); only its CSRF-protected form revokes', async () => {
      const browser = new Browser();
      await grantThroughSignIn(browser, 'sarah-revokes');
      const access = await (await browser.request(`${consentUrl}/access?tenant=${TENANT}`)).text();
      expect(access).toContain('Signed in as <code>sarah-revokes</code>');
      expect(access).toContain('This agent may act for you:');
      // The revoke button only leads to the confirmation: a GET form, no token, nothing changes.
      expect(access).toMatch(/<form method="get" action="\/access\/revoke"><input type="hidden" name="tenant" value="pages"><input type="hidden" name="workload" value="brief-agent"><input type="hidden" name="provider" value="crm"><button type="submit">Revoke crm<\/button><\/form>/);
      const confirmUrl = `${consentUrl}/access/revoke?tenant=${TENANT}&workload=${AGENT}&provider=crm`;
      const confirm = await browser.request(confirmUrl);
      expect(confirm.status).toBe(200);
      const confirmHtml = await confirm.text();
      expect(confirmHtml).toContain(`<h1>Revoke ${AGENT}’s access to crm?</h1>`);
      for (const scope of SCOPES) expect(confirmHtml).toContain(`<code>${scope}</code>`);
      // The way back changes nothing (`=` arrives HTML-escaped in the attribute).
      expect(confirmHtml).toMatch(/<a href="\/access\?tenant&#61;pages">Keep it and go back<\/a>/);
      expect(await grantsOf('sarah-revokes')).toHaveLength(1);
      const csrf = /name="csrf" value="([^"]+)"/.exec(confirmHtml)![1]!;
      // Without the confirmation page's token (or from another browser), nothing is revoked.
      expect((await browser.request(`${consentUrl}/access?tenant=${TENANT}`, { workload: AGENT, provider: 'crm' })).status).toBe(403);
      const stranger = new Browser();
      expect((await stranger.request(confirmUrl)).status).toBe(303);
      expect((await stranger.request(`${consentUrl}/access?tenant=${TENANT}`, { csrf, workload: AGENT, provider: 'crm' })).status).toBe(403);
      expect(await grantsOf('sarah-revokes')).toHaveLength(1);
      // Confirmed: revoked, and back to "My access".
      const revoked = await browser.request(`${consentUrl}/access?tenant=${TENANT}`, { csrf, workload: AGENT, provider: 'crm' });
      expect(revoked.status).toBe(303);
      expect(revoked.headers.get('location')).toBe(`/access?tenant=${TENANT}`);
      expect(await grantsOf('sarah-revokes')).toEqual([]);
      // Nothing left to confirm: the confirmation sends the browser back to "My access".
      const gone = await browser.request(confirmUrl);
      expect(gone.status).toBe(303);
      expect(gone.headers.get('location')).toBe(`/access?tenant=${TENANT}`);
    });

    it('an empty "My access" reads naturally: who is signed in, and that no agent has access, without an empty list', async () => {
      const browser = new Browser();
      await grantThroughSignIn(browser, 'sarah-empties');
      const confirm = await (await browser.request(`${consentUrl}/access/revoke?tenant=${TENANT}&workload=${AGENT}`)).text();
      expect(confirm).toContain(`<h1>Revoke all of ${AGENT}’s access?</h1>`);
      const csrf = /name="csrf" value="([^"]+)"/.exec(confirm)![1]!;
      expect((await browser.request(`${consentUrl}/access?tenant=${TENANT}`, { csrf, workload: AGENT })).status).toBe(303);
      const empty = await (await browser.request(`${consentUrl}/access?tenant=${TENANT}`)).text();
      const main = /<main>([\s\S]*)<\/main>/.exec(empty)![1]!.replace(/<[^>]+>/g, '');
      expect(main).toContain(`Signed in as sarah-empties at ${new URL(corp.issuer).host}.`);
      expect(main).toContain('You have not given any agent access.');
      expect(main).not.toContain('may act for you');
      expect(empty).not.toContain('<table');
    });
  });

  it('in a real browser (chromium), on a phone-sized screen, with the keyboard only', async (ctx) => {
    const noBrowser = chromiumMissing('consent in a real browser');
    if (noBrowser) return ctx.skip(noBrowser);
    const browser = await launchChromium();
    try {
      const { authorizationUrl, wat, sessionId } = await openSession('sarah-chromium');
      const page = await browser.newPage({ viewport: { width: 360, height: 640 } });
      await page.goto(authorizationUrl);
      await expect.poll(() => page.getByRole('heading', { level: 1 }).textContent()).toContain('crm-agent');
      // Nothing wider than the phone: no sideways scrolling.
      expect(await page.evaluate('document.documentElement.scrollWidth <= window.innerWidth')).toBe(true);
      // Keyboard: Tab reaches the durations (the first is checked), arrows pick one, Tab reaches Approve, Enter sends.
      await page.keyboard.press('Tab');
      expect(await page.evaluate('document.activeElement && document.activeElement.value')).toBe('once');
      for (let i = 0; i < 2; i++) await page.keyboard.press('ArrowDown');
      expect(await page.getByLabel('For 7 days').isChecked()).toBe(true);
      await page.keyboard.press('Tab');
      expect(await page.evaluate('document.activeElement && document.activeElement.textContent')).toBe('Approve');
      await page.keyboard.press('Enter');
      // At the provider: oidc-provider's dev login, then its consent.
      await page.waitForURL((url) => url.origin === idp.issuer);
      await page.locator('input[name="login"]').fill('sarah-chromium');
      await page.locator('input[name="password"]').fill('any');
      await page.locator('button[type="submit"]').click();
      const returned = page.waitForRequest((request) => request.url().startsWith(RETURN_URL));
      await page.locator('button[type="submit"]').click();
      const landed = new URL((await returned).url());
      expect(landed.searchParams.get('session_id')).toBe(sessionId);
      await h.bus.request(sessionCompleteEndpoint, { tenant: 'acme', sessionId, completionCode: landed.searchParams.get('completion_code')!, workloadToken: wat });
      const token = await h.bus.request(oauth2TokenEndpoint, { tenant: 'acme', workloadToken: wat, provider: 'crm', flow: 'USER_FEDERATION', scopes: SCOPES, sessionId });
      expect(token.accessToken.length).toBeGreaterThan(20);
    } finally {
      await browser.close();
    }
  }, 60_000);
});
