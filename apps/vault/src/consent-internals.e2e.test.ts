import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { JWK } from 'jose';
import {
  codeExchangeEndpoint,
  oauth2TokenEndpoint,
  providerAuthorizationEndpoint,
  providerCreateEndpoint,
  consentSessionFailEndpoint,
  consentSessionGetEndpoint,
} from '@mandate/contracts';
import { natsServerMissing, failure } from '@mandate/testing';
import { startTestIdp, type TestIdp } from '@mandate/testing/idp';
import { startSystem, type TestSystem } from '@mandate/testing/system';

const missing = natsServerMissing('vault consent internals');

describe.skipIf(missing)("the vault's internal endpoints for the consent service", () => {
  let h: TestSystem;
  let idp: TestIdp;
  let key: JWK;

  beforeAll(async () => {
    h = await startSystem({ services: ['directory', 'authorizer', 'vault'] });
    idp = await startTestIdp();
    key = await h.workload('mail-agent', { allowUserIdTokens: true, returnUrls: ['https://app.example/back'] });
    await h.bus.request(providerCreateEndpoint, {
      kind: 'oauth2', tenant: 'acme', name: 'mail', vendor: 'custom', discoveryUrl: idp.discoveryUrl, clientId: 'test-app', clientSecret: 'test-app-secret', allowedWorkloads: ['mail-agent'],
    });
  });

  afterAll(async () => {
    await h?.stop();
    await idp?.stop();
  });

  async function open(userId: string) {
    const { wat, user } = await h.userWat('mail-agent', key, userId);
    const error = await failure(h.bus.request(oauth2TokenEndpoint, { tenant: 'acme', workloadToken: wat, provider: 'mail', flow: 'USER_FEDERATION', scopes: ['mail.read'], returnUrl: 'https://app.example/back', customState: 'xyz' }));
    const { sessionId, authorizationUrl } = error.details as { sessionId: string; authorizationUrl: string };
    return { wat, user, sessionId, authorizationUrl };
  }

  it('reads a session (with its tenant in the authorization URL), and not in another tenant', async () => {
    const { sessionId, authorizationUrl, user } = await open('u1');
    expect(authorizationUrl).toBe(`http://127.0.0.1:4490/consent/${sessionId}?tenant=acme`);
    const session = await h.bus.request(consentSessionGetEndpoint, { tenant: 'acme', sessionId });
    expect(session).toMatchObject({ workload: 'mail-agent', provider: 'mail', user, scopes: ['mail.read'], returnUrl: 'https://app.example/back', customState: 'xyz', state: 'pending' });
    expect((await failure(h.bus.request(consentSessionGetEndpoint, { tenant: 'globex', sessionId }))).code).toBe('not_found');
  });

  it('fails a pending session once; the agent then hears access_denied', async () => {
    const { sessionId, wat } = await open('u2');
    await h.bus.request(consentSessionFailEndpoint, { tenant: 'acme', sessionId, reason: 'denied' });
    expect((await failure(h.bus.request(consentSessionFailEndpoint, { tenant: 'acme', sessionId, reason: 'denied' }))).code).toBe('conflict');
    expect((await failure(h.bus.request(oauth2TokenEndpoint, { tenant: 'acme', workloadToken: wat, provider: 'mail', flow: 'USER_FEDERATION', scopes: ['mail.read'], sessionId }))).code).toBe('access_denied');
    await expect.poll(() => h.audit.find((r) => r.action === 'consent-session-fail' && r.reason === 'denied')).toBeTruthy();
  });

  it('hands out the authorization endpoint and client id, never the secret', async () => {
    const info = await h.bus.request(providerAuthorizationEndpoint, { tenant: 'acme', provider: 'mail' });
    expect(info).toMatchObject({ authorizationEndpoint: `${idp.issuer}/auth`, clientId: 'test-app', issuer: idp.issuer, issParameterSupported: true });
    expect(JSON.stringify(info)).not.toContain('test-app-secret');
  });

  it('refuses a code exchange for another user, or a session already ended, before calling the provider', async () => {
    const { sessionId } = await open('u3');
    const exchange = { tenant: 'acme', provider: 'mail', sessionId, code: 'c', codeVerifier: 'v'.repeat(43), redirectUri: 'http://127.0.0.1:4490/callback', grant: { once: false }, completionHash: 'h'.repeat(43) };
    const calls = idp.tokenRequests.length;
    expect((await failure(h.bus.request(codeExchangeEndpoint, { ...exchange, user: { iss: 'urn:mandate:user-id', sub: 'mallory' } }))).code).toBe('not_found');
    await h.bus.request(consentSessionFailEndpoint, { tenant: 'acme', sessionId, reason: 'denied' });
    expect((await failure(h.bus.request(codeExchangeEndpoint, { ...exchange, user: { iss: 'urn:mandate:user-id', sub: 'u3' } }))).code).toBe('conflict');
    expect(idp.tokenRequests.length).toBe(calls);
  });
});
