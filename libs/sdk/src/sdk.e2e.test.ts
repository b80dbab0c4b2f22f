import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { JWK } from 'jose';
import { JetStreamPublisher } from '@mandate/bus/client';
import {
  CONSENT_GRANTED_EVENT,
  CONSENT_SERVICE,
  consentGrantedDataSchema,
  oauth2TokenEndpoint,
  providerCreateEndpoint,
  tokenForWorkloadEndpoint,
  USER_ID_ISSUER,
  type ConsentGrantedData,
} from '@mandate/contracts';
import { JetStreamKvStore } from '@mandate/store';
import { natsServerMissing, failure } from '@mandate/testing';
import { startTestIdp, type TestIdp } from '@mandate/testing/idp';
import { startSystem, type TestSystem } from '@mandate/testing/system';
import { VaultSeed } from '@mandate/vault/testing';
import { MandateClient, waitForConsent, withAccessToken, withApiKey } from './index.js';

const missing = natsServerMissing('agent SDK');

const API_KEY = 'sdk-test-api-key-9d41';

describe.skipIf(missing)('the agent SDK against the real services', () => {
  let h: TestSystem;
  let seed: VaultSeed;
  let idp: TestIdp;
  let reporterKey: JWK;
  let strangerKey: JWK;
  let mandate: MandateClient;
  let publisher: JetStreamPublisher;
  /** Every oauth2-token request body and WAT mint seen on the bus, in order. */
  const tokenRequests: { sessionId?: string; at: number }[] = [];
  let workloadMints = 0;

  beforeAll(async () => {
    h = await startSystem({ services: ['directory', 'authorizer', 'vault'] });
    seed = await VaultSeed.open(h);
    idp = await startTestIdp();
    reporterKey = await h.workload('report-agent', { allowUserIdTokens: true });
    strangerKey = await h.workload('stranger-agent');
    await h.bus.request(providerCreateEndpoint, {
      kind: 'oauth2',
      tenant: 'acme',
      name: 'reporting',
      vendor: 'custom',
      discoveryUrl: idp.discoveryUrl,
      clientId: 'test-app',
      clientSecret: 'test-app-secret',
      allowedWorkloads: ['report-agent'],
    });
    await h.bus.request(providerCreateEndpoint, { kind: 'api-key', tenant: 'acme', name: 'weather', apiKey: API_KEY, allowedWorkloads: ['report-agent'] });
    h.nc.subscribe(oauth2TokenEndpoint.subject, { callback: (_e, msg) => void tokenRequests.push({ ...msg.json<{ sessionId?: string }>(), at: Date.now() }) });
    h.nc.subscribe(tokenForWorkloadEndpoint.subject, { callback: () => void workloadMints++ });
    await h.nc.flush();
    publisher = new JetStreamPublisher(h.nc);
    mandate = await MandateClient.connect({ servers: h.nats.url, tenant: 'acme', workload: 'report-agent' });
  });

  afterAll(async () => {
    await mandate?.close();
    await h?.stop();
    await idp?.stop();
  });

  /** What the vault does when a person approves: tokens, grant, event. */
  async function playConsentService(sessionId: string, userId: string, scopes: string[], accessToken: string): Promise<void> {
    const user = { iss: USER_ID_ISSUER, sub: userId };
    await seed.userTokens('acme', 'reporting', user, scopes, { accessToken, expiresIn: 3600 });
    await seed.grant('acme', { workload: 'report-agent', provider: 'reporting', user, scopes });
    const data: ConsentGrantedData = consentGrantedDataSchema.parse({ sessionId, workload: 'report-agent', provider: 'reporting', user, scopes });
    await publisher.tenantEvent(CONSENT_SERVICE, CONSENT_GRANTED_EVENT, 'acme', data);
  }

  describe('MandateClient', () => {
    it('caches the workload WAT until a minute before it expires, one mint for concurrent callers', async () => {
      const before = workloadMints;
      const [a, b, c] = await Promise.all([1, 2, 3].map(() => mandate.workloadToken({ privateJwk: reporterKey })));
      expect(new Set([a, b, c]).size).toBe(1);
      expect(await mandate.workloadToken({ privateJwk: reporterKey })).toBe(a);
      await h.nc.flush();
      expect(workloadMints - before).toBe(1);

      // A clock 14.5 minutes on: the 15-minute WAT is inside its last minute, so a new one is minted.
      let now = Date.now();
      const clocked = new MandateClient(h.nc, { tenant: 'acme', workload: 'report-agent', now: () => now });
      const first = await clocked.workloadToken({ privateJwk: reporterKey });
      expect(await clocked.workloadToken({ privateJwk: reporterKey })).toBe(first);
      now += 14.5 * 60_000;
      expect(await clocked.workloadToken({ privateJwk: reporterKey })).not.toBe(first);
      await h.nc.flush();
      expect(workloadMints - before).toBe(3);
      await clocked.close();
      expect(h.nc.isClosed()).toBe(false); // a client given a connection leaves it open
    });

    it('keeps the services error codes', async () => {
      const stranger = new MandateClient(h.nc, { tenant: 'acme', workload: 'stranger-agent' });
      const strangerWat = await stranger.workloadToken({ privateJwk: strangerKey });
      const denied = await failure(stranger.oauth2Token({ workloadToken: strangerWat, provider: 'reporting', flow: 'M2M' }));
      expect(denied).toMatchObject({ code: 'access_denied', details: { reason: 'workload_not_allowed' } });
      expect((await failure(stranger.apiKey({ workloadToken: strangerWat, provider: 'weather' }))).code).toBe('access_denied');
      expect((await failure(stranger.tokenForUser('sarah', { privateJwk: strangerKey }))).details).toEqual({ reason: 'user_id_tokens_not_allowed' });
      // The stranger's key is not registered for report-agent.
      expect((await failure(mandate.tokenForUser('sarah', { privateJwk: strangerKey }))).code).toBe('unauthenticated');
      // report-agent has no inbound authorizer config, so no user JWT may invoke it.
      expect((await failure(mandate.tokenForJwt('Bearer not-a-jwt', { privateJwk: reporterKey }))).details).toEqual({ reason: 'no_authorizer_config' });
      expect((await failure(mandate.apiKey({ workloadToken: 'not.a.wat', provider: 'weather' }))).code).toBe('unauthenticated');
      const wat = await mandate.workloadToken({ privateJwk: reporterKey });
      expect((await failure(mandate.apiKey({ workloadToken: wat, provider: 'no-such-provider' }))).code).toBe('not_found');
      const wrapped = withAccessToken(stranger, { provider: 'reporting', flow: 'M2M', workloadToken: strangerWat }, () => 'ran');
      expect((await failure(wrapped())).code).toBe('access_denied');
    });
  });

  describe('withAccessToken and withApiKey', () => {
    it('M2M: hands fn a real client-credentials token from the IdP, with the call arguments', async () => {
      const seen: string[] = [];
      const report = withAccessToken(
        mandate,
        { provider: 'reporting', flow: 'M2M', workloadToken: () => mandate.workloadToken({ privateJwk: reporterKey }) },
        async (token, week: number) => {
          seen.push(token);
          return `report for week ${week}`;
        },
      );
      expect(await report(42)).toBe('report for week 42');
      expect(seen[0]!.length).toBeGreaterThan(10);
      expect(idp.tokenRequests.some((r) => r.grantType === 'client_credentials' && r.clientId === 'test-app' && r.status === 200)).toBe(true);
      // The vault caches it: a second call gets the same token.
      await report(43);
      expect(seen[1]).toBe(seen[0]);
    });

    it('withApiKey hands fn the key', async () => {
      const call = withApiKey(mandate, { provider: 'weather', workloadToken: await mandate.workloadToken({ privateJwk: reporterKey }) }, (key, city: string) => `${city}:${key}`);
      expect(await call('Oslo')).toBe(`Oslo:${API_KEY}`);
    });

    it('USER_FEDERATION without onAuthUrl is a programming error', () => {
      expect(() => withAccessToken(mandate, { provider: 'reporting', flow: 'USER_FEDERATION', workloadToken: 'x' }, () => 1)).toThrow(TypeError);
    });

    it('USER_FEDERATION: shows the consent URL once and resumes on the consent.granted event', async () => {
      const userWat = await mandate.tokenForUser('sarah', { privateJwk: reporterKey });
      const urls: { url: string; sessionId: string; at: number }[] = [];
      const firstRequest = tokenRequests.length;
      const brief = withAccessToken(
        mandate,
        {
          provider: 'reporting',
          scopes: ['crm:read'],
          flow: 'USER_FEDERATION',
          workloadToken: userWat,
          onAuthUrl: (url, sessionId) => {
            urls.push({ url, sessionId, at: Date.now() });
            // The person approves a moment later, after the agent has started waiting.
            setTimeout(() => void playConsentService(sessionId, 'sarah', ['crm:read'], 'at-sarah-crm'), 100);
          },
        },
        async (token, account: string) => ({ account, token, at: Date.now() }),
      );
      const result = await brief('ACME Corp');
      expect(result).toMatchObject({ account: 'ACME Corp', token: 'at-sarah-crm' });
      expect(urls).toHaveLength(1);
      expect(urls[0]!.url).toBe(`http://127.0.0.1:4490/consent/${urls[0]!.sessionId}?tenant=acme`);
      // Resumed by the event: well before the first re-check (2 s), and no re-check with the session id was made.
      expect(result.at - urls[0]!.at).toBeLessThan(1_500);
      await h.nc.flush();
      const asked = tokenRequests.slice(firstRequest);
      expect(asked).toHaveLength(2);
      expect(asked.every((r) => r.sessionId === undefined)).toBe(true);

      // Next time, within the grant, nobody is asked.
      expect((await brief('Globex')).token).toBe('at-sarah-crm');
      expect(urls).toHaveLength(1);
    });

    it('USER_FEDERATION: gives up after the timeout with consent_required and the session id', async () => {
      const userWat = await mandate.tokenForUser('tom', { privateJwk: reporterKey });
      const sessions: string[] = [];
      let ran = false;
      const call = withAccessToken(
        mandate,
        { provider: 'reporting', scopes: ['crm:read'], flow: 'USER_FEDERATION', workloadToken: userWat, consentTimeoutMs: 400, onAuthUrl: (_url, id) => void sessions.push(id) },
        () => (ran = true),
      );
      const error = await failure(call());
      expect(error.code).toBe('consent_required');
      expect(error.details).toMatchObject({ sessionId: sessions[0], status: 'pending' });
      expect(sessions).toHaveLength(1);
      expect(ran).toBe(false);
    });

    it('USER_FEDERATION: a refused consent, found by the backoff re-check, ends with access_denied', async () => {
      const userWat = await mandate.tokenForUser('una', { privateJwk: reporterKey });
      const sessions = await new JetStreamKvStore(h.nc).collection<{ state: string }>('consent-sessions');
      const call = withAccessToken(
        mandate,
        {
          provider: 'reporting',
          scopes: ['crm:read'],
          flow: 'USER_FEDERATION',
          workloadToken: userWat,
          consentTimeoutMs: 10_000,
          recheckBackoff: { initialMs: 100, maxMs: 200 },
          // The person refuses: the consent service marks the session failed (and publishes no event).
          onAuthUrl: async (_url, id) => {
            const stored = (await sessions.get('acme' as never, id))!;
            await sessions.update('acme' as never, id, { ...stored.value, state: 'failed' }, stored.revision);
          },
        },
        () => 'ran',
      );
      const error = await failure(call());
      expect(error).toMatchObject({ code: 'access_denied', details: { status: 'failed' } });
    });
  });

  describe('waitForConsent', () => {
    it('resolves on the event for its session only, ignoring other sessions, tenants and junk', async () => {
      const sessionId = 'session-wait-0123456789';
      const user = { iss: USER_ID_ISSUER, sub: 'vera' };
      const data = { sessionId, workload: 'report-agent', provider: 'reporting', user, scopes: ['crm:read'] };
      const waiting = waitForConsent(mandate, { sessionId, timeoutMs: 5_000 });
      let settled = false;
      void waiting.finally(() => (settled = true));
      await mandate.connection.flush();
      await publisher.tenantEvent(CONSENT_SERVICE, CONSENT_GRANTED_EVENT, 'acme', { ...data, sessionId: 'another-session-0123456789' });
      await publisher.tenantEvent(CONSENT_SERVICE, CONSENT_GRANTED_EVENT, 'globex', data);
      await publisher.tenantEvent(CONSENT_SERVICE, CONSENT_GRANTED_EVENT, 'acme', { ...data, workload: 'stranger-agent' });
      await publisher.tenantEvent(CONSENT_SERVICE, CONSENT_GRANTED_EVENT, 'acme', { sessionId });
      await mandate.connection.flush();
      expect(settled).toBe(false);
      await publisher.tenantEvent(CONSENT_SERVICE, CONSENT_GRANTED_EVENT, 'acme', data);
      expect(await waiting).toEqual(data);
    });

    it('times out with consent_required', async () => {
      const error = await failure(waitForConsent(mandate, { sessionId: 'session-never-0123456789', timeoutMs: 200 }));
      expect(error).toMatchObject({ code: 'consent_required', details: { sessionId: 'session-never-0123456789' } });
    });
  });
});
