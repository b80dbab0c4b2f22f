import { randomBytes } from 'node:crypto';
import { PassThrough } from 'node:stream';
import { headers } from '@nats-io/transport-node';
import { signClientAssertion } from '@mandate/wat';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { JWK } from 'jose';
import {
  apiKeyEndpoint,
  type MandateError,
  oauth2TokenEndpoint,
  providerCreateEndpoint,
  providerDeleteEndpoint,
  providerGetEndpoint,
  providerListEndpoint,
  providerUpdateEndpoint,
  tokenForWorkloadEndpoint,
  tokenRevokeEndpoint,
  type RequestOf,
} from '@mandate/contracts';
import { encodeKeySegment, JetStreamKvStore } from '@mandate/store';
import { createLogger } from '@mandate/telemetry';
import { natsServerMissing, failure } from '@mandate/testing';
import { startTestIdp, type TestIdp } from '@mandate/testing/idp';
import { startSystem, type TestSystem } from '@mandate/testing/system';
import { VaultSeed } from './testing/seed.js';

const missing = natsServerMissing('vault service');

const CANARY_SECRET = 'canary-client-secret-7f3a9c';
const CANARY_KEY = 'canary-api-key-51c2e8';

describe.skipIf(missing)('the vault over NATS, against a real OAuth server', () => {
  let h: TestSystem;
  let seed: VaultSeed;
  let idp: TestIdp;
  let reporter: JWK;
  let stranger: JWK;
  const logLines: string[] = [];

  const token = (request: Omit<RequestOf<typeof oauth2TokenEndpoint>, 'tenant'> & { tenant?: string }) =>
    h.bus.request(oauth2TokenEndpoint, { tenant: 'acme', ...request });
  const tokenEndpointCalls = () => idp.requests.filter((path) => path === '/token').length;

  beforeAll(async () => {
    h = await startSystem({ services: ['directory', 'authorizer', 'vault'] });
    seed = await VaultSeed.open(h);
    // A second replica logging everything, to prove no secret reaches a log line.
    const sink = new PassThrough();
    sink.on('data', (chunk: Buffer) => logLines.push(chunk.toString()));
    await h.add('vault', { logger: createLogger('vault', { level: 'trace', destination: sink }) });
    idp = await startTestIdp();
    reporter = await h.workload('report-agent', { allowUserIdTokens: true });
    stranger = await h.workload('stranger-agent', { allowUserIdTokens: true });
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
    await h.bus.request(providerCreateEndpoint, { kind: 'api-key', tenant: 'acme', name: 'weather', apiKey: CANARY_KEY, allowedWorkloads: ['report-agent'] });
  });

  afterAll(async () => {
    await h?.stop();
    await idp?.stop();
  });

  describe('providers', () => {
    it('never returns a secret, only which secrets are set', async () => {
      const view = await h.bus.request(providerGetEndpoint, { tenant: 'acme', name: 'reporting' });
      expect(view).toMatchObject({ kind: 'oauth2', vendor: 'custom', clientId: 'test-app', secrets: ['clientSecret'], allowedWorkloads: ['report-agent'] });
      expect(JSON.stringify(view)).not.toContain('test-app-secret');
      const apiKey = await h.bus.request(providerGetEndpoint, { tenant: 'acme', name: 'weather' });
      expect(apiKey.secrets).toEqual(['apiKey']);
      expect(JSON.stringify(apiKey)).not.toContain(CANARY_KEY);
    });

    it('creates presets with their parameters, lists, updates and deletes', async () => {
      const microsoft = await h.bus.request(providerCreateEndpoint, {
        kind: 'oauth2',
        tenant: 'acme',
        name: 'outlook',
        vendor: 'microsoft',
        vendorParams: { tenantId: 'contoso.onmicrosoft.com' },
        clientId: 'app',
        clientSecret: CANARY_SECRET,
      });
      expect(microsoft.vendorParams).toEqual({ tenantId: 'contoso.onmicrosoft.com' });
      const names = (await h.bus.request(providerListEndpoint, { tenant: 'acme' })).items.map((p) => p.name);
      expect(names).toEqual(expect.arrayContaining(['outlook', 'reporting', 'weather']));
      const updated = await h.bus.request(providerUpdateEndpoint, { tenant: 'acme', name: 'outlook', set: { clientSecret: `${CANARY_SECRET}-2`, description: 'mail' }, expectedRevision: microsoft.revision });
      expect(updated.description).toBe('mail');
      expect((await failure(h.bus.request(providerUpdateEndpoint, { tenant: 'acme', name: 'outlook', set: { description: 'x' }, expectedRevision: microsoft.revision }))).code).toBe('conflict');
      expect((await failure(h.bus.request(providerUpdateEndpoint, { tenant: 'acme', name: 'outlook', set: { apiKey: 'x' } }))).code).toBe('invalid_request');
      await h.bus.request(providerDeleteEndpoint, { tenant: 'acme', name: 'outlook' });
      expect((await failure(h.bus.request(providerGetEndpoint, { tenant: 'acme', name: 'outlook' }))).code).toBe('not_found');
      expect((await failure(h.bus.request(providerGetEndpoint, { tenant: 'globex', name: 'reporting' }))).code).toBe('not_found');
    });

    it.each([
      ['a preset without its parameter', { vendor: 'okta', clientId: 'c', clientSecret: 's' }],
      ['a preset with a malformed parameter', { vendor: 'okta', vendorParams: { domain: 'evil.com/x?' }, clientId: 'c', clientSecret: 's' }],
      ['a custom provider without endpoints', { vendor: 'custom', clientId: 'c', clientSecret: 's' }],
      ['a discovery URL over plain http', { vendor: 'custom', discoveryUrl: 'http://idp.example.com/.well-known/openid-configuration', clientId: 'c', clientSecret: 's' }],
      ['a client secret method without a secret', { vendor: 'github', clientId: 'c' }],
      ['private_key_jwt without a key', { vendor: 'github', clientId: 'c', clientAuthMethod: 'private_key_jwt' }],
      ['an unknown vendor', { vendor: 'myspace', clientId: 'c', clientSecret: 's' }],
    ])('refuses %s with invalid_request and stores nothing', async (_what, fields) => {
      const error = await failure(h.bus.request(providerCreateEndpoint, { kind: 'oauth2', tenant: 'acme', name: 'bad-provider', ...(fields as object) } as never));
      expect(error.code).toBe('invalid_request');
      expect((await failure(h.bus.request(providerGetEndpoint, { tenant: 'acme', name: 'bad-provider' }))).code).toBe('not_found');
    });
  });

  describe('M2M', () => {
    it('gets a client-credentials token and serves it from the cache', async () => {
      const wat = await h.machineWat('report-agent', reporter);
      const before = tokenEndpointCalls();
      const first = await token({ workloadToken: wat, provider: 'reporting', flow: 'M2M' });
      expect(first.accessToken.length).toBeGreaterThan(10);
      expect(first.tokenType.toLowerCase()).toBe('bearer');
      const second = await token({ workloadToken: wat, provider: 'reporting', flow: 'M2M' });
      expect(second.accessToken).toBe(first.accessToken);
      expect(tokenEndpointCalls()).toBe(before + 1);
    });

    it('a thousand concurrent callers for one (provider, scopes) cause one upstream request', async () => {
      await h.bus.request(providerCreateEndpoint, { kind: 'oauth2', tenant: 'acme', name: 'storm', vendor: 'custom', discoveryUrl: idp.discoveryUrl, clientId: 'test-app', clientSecret: 'test-app-secret', allowedWorkloads: ['report-agent'] });
      const wat = await h.machineWat('report-agent', reporter);
      const before = tokenEndpointCalls();
      const results = await Promise.all(Array.from({ length: 1000 }, () => token({ workloadToken: wat, provider: 'storm', flow: 'M2M' })));
      // Two replicas serve the queue group; a lease in the store lets only one of them fetch.
      expect(new Set(results.map((r) => r.accessToken)).size).toBe(1);
      expect(tokenEndpointCalls() - before).toBe(1);
    });

    it('authenticates to the provider with private_key_jwt', async () => {
      await h.bus.request(providerCreateEndpoint, {
        kind: 'oauth2',
        tenant: 'acme',
        name: 'jwt-auth',
        vendor: 'custom',
        metadata: { issuer: idp.issuer, tokenEndpoint: idp.tokenEndpoint },
        clientId: 'jwt-client',
        clientAuthMethod: 'private_key_jwt',
        clientPrivateJwk: idp.jwtClientKey as never,
        allowedWorkloads: ['report-agent'],
      });
      const view = await h.bus.request(providerGetEndpoint, { tenant: 'acme', name: 'jwt-auth' });
      expect(view.secrets).toEqual(['clientPrivateJwk']);
      const issued = await token({ workloadToken: await h.machineWat('report-agent', reporter), provider: 'jwt-auth', flow: 'M2M' });
      expect(issued.accessToken.length).toBeGreaterThan(10);
      expect(idp.tokenRequests.at(-1)).toMatchObject({ grantType: 'client_credentials', clientId: 'jwt-client', status: 200 });
    });

    it('reports a provider that refuses the client as provider_error, without its response body', async () => {
      await h.bus.request(providerCreateEndpoint, { kind: 'oauth2', tenant: 'acme', name: 'wrong-secret', vendor: 'custom', discoveryUrl: idp.discoveryUrl, clientId: 'test-app', clientSecret: 'not-the-secret', allowedWorkloads: ['report-agent'] });
      const error = await failure(token({ workloadToken: await h.machineWat('report-agent', reporter), provider: 'wrong-secret', flow: 'M2M' }));
      expect(error.code).toBe('provider_error');
      expect(error.details).toEqual({ providerError: 'invalid_client' });
      expect(error.message).not.toContain('not-the-secret');
    });

    it('gives nothing to a workload the provider does not list, or to a bad WAT', async () => {
      const wat = await h.machineWat('stranger-agent', stranger);
      const denied = await failure(token({ workloadToken: wat, provider: 'reporting', flow: 'M2M' }));
      expect(denied.code).toBe('access_denied');
      expect((await failure(token({ workloadToken: 'not.a.wat', provider: 'reporting', flow: 'M2M' }))).code).toBe('unauthenticated');
      const reporterWat = await h.machineWat('report-agent', reporter);
      expect((await failure(token({ tenant: 'globex', workloadToken: reporterWat, provider: 'reporting', flow: 'M2M' }))).details).toEqual({ reason: 'wat_wrong_tenant' });
    });
  });

  it('a provider change reaches every replica at once (no waiting out a cache)', async () => {
    await h.bus.request(providerCreateEndpoint, { kind: 'api-key', tenant: 'acme', name: 'fleeting', apiKey: 'k-fleeting', allowedWorkloads: ['report-agent'] });
    const wat = await h.machineWat('report-agent', reporter);
    const ask = () => h.bus.request(apiKeyEndpoint, { tenant: 'acme', workloadToken: wat, provider: 'fleeting' }).then(() => 'ok', (e: MandateError) => e.code);
    // Both replicas serve (queue group) and cache the provider.
    expect(new Set(await Promise.all(Array.from({ length: 20 }, ask)))).toEqual(new Set(['ok']));
    await h.bus.request(providerUpdateEndpoint, { tenant: 'acme', name: 'fleeting', set: { allowedWorkloads: [] } });
    // Well inside the 2 s cache lifetime, every replica refuses.
    await expect.poll(async () => new Set(await Promise.all(Array.from({ length: 20 }, ask))), { timeout: 500, interval: 50 }).toEqual(new Set(['access_denied']));
  });

  describe('API keys', () => {
    it('returns the key to an allowed workload only', async () => {
      expect(await h.bus.request(apiKeyEndpoint, { tenant: 'acme', workloadToken: await h.machineWat('report-agent', reporter), provider: 'weather' })).toEqual({ apiKey: CANARY_KEY });
      const denied = await failure(h.bus.request(apiKeyEndpoint, { tenant: 'acme', workloadToken: await h.machineWat('stranger-agent', stranger), provider: 'weather' }));
      expect(denied.code).toBe('access_denied');
      const wrongKind = await failure(token({ workloadToken: await h.machineWat('report-agent', reporter), provider: 'weather', flow: 'M2M' }));
      expect(wrongKind.code).toBe('invalid_request');
    });
  });

  describe('USER_FEDERATION', () => {
    it('answers consent_required with a session and an authorization URL when there is no grant', async () => {
      const { wat } = await h.userWat('report-agent', reporter, 'sarah');
      const error = await failure(token({ workloadToken: wat, provider: 'reporting', flow: 'USER_FEDERATION', scopes: ['crm:read'] }));
      expect(error.code).toBe('consent_required');
      const details = error.details as { sessionId: string; authorizationUrl: string; status: string };
      expect(details.authorizationUrl).toBe(`http://127.0.0.1:4490/consent/${details.sessionId}?tenant=acme`);
      const again = await failure(token({ workloadToken: wat, provider: 'reporting', flow: 'USER_FEDERATION', scopes: ['crm:read'], sessionId: details.sessionId }));
      expect(again).toMatchObject({ code: 'consent_required', details: { sessionId: details.sessionId, status: 'pending' } });
      // Another workload cannot read this session.
      const other = await h.userWat('stranger-agent', stranger, 'sarah');
      expect((await failure(token({ workloadToken: other.wat, provider: 'reporting', flow: 'USER_FEDERATION', sessionId: details.sessionId }))).code).toBe('access_denied');
    });

    it('refuses a return URL that is not on the workload allow-list', async () => {
      const { wat } = await h.userWat('report-agent', reporter, 'sarah');
      const error = await failure(token({ workloadToken: wat, provider: 'reporting', flow: 'USER_FEDERATION', returnUrl: 'https://evil.example/cb' }));
      expect(error.code).toBe('invalid_request');
    });

    it('releases a stored token within the grant, to that workload and user only', async () => {
      const { wat, user } = await h.userWat('report-agent', reporter, 'fiona');
      await seed.userTokens('acme', 'reporting', user, ['crm:read'], { accessToken: 'at-fiona-1', refreshToken: 'rt-fiona-1', expiresIn: 3600 });
      await seed.grant('acme', { workload: 'report-agent', provider: 'reporting', user, scopes: ['crm:read'] });
      expect((await token({ workloadToken: wat, provider: 'reporting', flow: 'USER_FEDERATION', scopes: ['crm:read'] })).accessToken).toBe('at-fiona-1');

      // Another user of the same workload, and the same user through another workload, get nothing of Fiona's.
      const otherUser = await h.userWat('report-agent', reporter, 'george');
      expect((await failure(token({ workloadToken: otherUser.wat, provider: 'reporting', flow: 'USER_FEDERATION', scopes: ['crm:read'] }))).code).toBe('consent_required');
      const otherWorkload = await h.userWat('stranger-agent', stranger, 'fiona');
      expect((await failure(token({ workloadToken: otherWorkload.wat, provider: 'reporting', flow: 'USER_FEDERATION', scopes: ['crm:read'] }))).code).toBe('access_denied');
      // A scope beyond the grant asks only for what is new.
      const wider = await failure(token({ workloadToken: wat, provider: 'reporting', flow: 'USER_FEDERATION', scopes: ['crm:read', 'crm:write'] }));
      expect(wider.code).toBe('consent_required');
      // A workload-only WAT cannot ask for a user's token.
      expect((await failure(token({ workloadToken: await h.machineWat('report-agent', reporter), provider: 'reporting', flow: 'USER_FEDERATION' }))).details).toEqual({ reason: 'wat_not_user_bound' });
    });

    it('revokes: the tokens are gone and the user is asked again', async () => {
      const { wat, user } = await h.userWat('report-agent', reporter, 'harry');
      await seed.userTokens('acme', 'reporting', user, ['crm:read'], { accessToken: 'at-harry', expiresIn: 3600 });
      await seed.grant('acme', { workload: 'report-agent', provider: 'reporting', user, scopes: ['crm:read'] });
      expect((await token({ workloadToken: wat, provider: 'reporting', flow: 'USER_FEDERATION', scopes: ['crm:read'] })).accessToken).toBe('at-harry');
      const revoked = await h.bus.request(tokenRevokeEndpoint, { tenant: 'acme', provider: 'reporting', user, actor: 'ops' });
      expect(revoked.deleted).toBe(1);
      expect(['revoked', 'failed']).toContain(revoked.upstream);
      expect((await failure(token({ workloadToken: wat, provider: 'reporting', flow: 'USER_FEDERATION', scopes: ['crm:read'] }))).code).toBe('consent_required');
    });
  });

  describe('sealed secrets', () => {
    it('fails closed when a stored secret was tampered with', async () => {
      await h.bus.request(providerCreateEndpoint, { kind: 'api-key', tenant: 'acme', name: 'tampered', apiKey: 'original-key', allowedWorkloads: ['report-agent'] });
      const providers = await new JetStreamKvStore(h.nc).collection<{ sealed: { apiKey: string } }>('providers');
      const stored = (await providers.get('acme' as never, encodeKeySegment('tampered')))!;
      const bytes = Buffer.from(stored.value.sealed.apiKey, 'base64url');
      bytes[bytes.length - 5]! ^= 0x01;
      await providers.update('acme' as never, encodeKeySegment('tampered'), { ...stored.value, sealed: { apiKey: bytes.toString('base64url') } }, stored.revision);
      const error = await failure(h.bus.request(apiKeyEndpoint, { tenant: 'acme', workloadToken: await h.machineWat('report-agent', reporter), provider: 'tampered' }));
      expect(error.code).toBe('internal');
      expect(error.message).not.toContain('original-key');
    });

    it('stores no secret in plaintext', async () => {
      const providers = await new JetStreamKvStore(h.nc).collection('providers');
      const all = JSON.stringify((await providers.list('acme' as never)).items);
      for (const secret of [CANARY_KEY, 'test-app-secret', CANARY_SECRET]) expect(all).not.toContain(secret);
      const userTokens = await new JetStreamKvStore(h.nc).collection('user-tokens');
      expect(JSON.stringify((await userTokens.list('acme' as never)).items)).not.toContain('at-fiona-1');
    });
  });

  it('a request through authorizer and vault leaves records from both that share its trace id', async () => {
    const traceId = randomBytes(16).toString('hex');
    const traced = () => {
      const h1 = headers();
      h1.set('traceparent', `00-${traceId}-${randomBytes(8).toString('hex')}-01`);
      return h1;
    };
    // A plain NATS client, as a Python agent would call it, passing its own traceparent.
    const clientAssertion = await signClientAssertion({ workload: 'report-agent', privateJwk: reporter });
    const minted = await h.nc.request(tokenForWorkloadEndpoint.subject, JSON.stringify({ tenant: 'acme', workload: 'report-agent', clientAssertion }), { headers: traced(), timeout: 5_000 });
    const wat = minted.json<{ result: { token: string } }>().result.token;
    const released = await h.nc.request(apiKeyEndpoint.subject, JSON.stringify({ tenant: 'acme', workloadToken: wat, provider: 'weather' }), { headers: traced(), timeout: 5_000 });
    expect(released.json()).toMatchObject({ ok: true });
    await expect.poll(() => new Set(h.audit.filter((r) => r.traceId === traceId).map((r) => `${r.service}/${r.action}`))).toEqual(new Set(['authorizer/wat-mint', 'vault/api-key-release']));
  });

  it('puts canary secrets in no log line, error, audit record or event', async () => {
    const seen: string[] = [];
    // Every message on mandate.> except the admin request that carries the secret in by design.
    const sub = h.nc.subscribe('mandate.>', {
      callback: (_e, msg) => void (msg.subject === providerCreateEndpoint.subject || seen.push(`${msg.subject} ${msg.string()}`)),
    });
    const { wat } = await h.userWat('report-agent', reporter, 'canary-user');
    await h.bus.request(providerCreateEndpoint, { kind: 'oauth2', tenant: 'acme', name: 'canary', vendor: 'okta', vendorParams: { domain: '127.0.0.1' }, clientId: 'c', clientSecret: CANARY_SECRET, allowedWorkloads: ['report-agent'] });
    for (let i = 0; i < 4; i++) {
      // Through both replicas: the M2M call fails upstream (nothing listens on 127.0.0.1:443), the API key succeeds.
      await token({ workloadToken: await h.machineWat('report-agent', reporter), provider: 'canary', flow: 'M2M' }).catch((e: unknown) => seen.push(JSON.stringify((e as MandateError).toWire())));
      await h.bus.request(apiKeyEndpoint, { tenant: 'acme', workloadToken: wat, provider: 'weather' });
    }
    await h.nc.flush();
    sub.unsubscribe();
    const everything = [...seen, ...h.audit.map((r) => JSON.stringify(r)), ...logLines].join('\n');
    expect(logLines.length).toBeGreaterThan(0);
    expect(everything).not.toContain(CANARY_SECRET);
    expect(everything).not.toContain(CANARY_KEY);
    expect(h.audit.some((r) => r.action === 'api-key-release' && r.outcome === 'succeeded')).toBe(true);
  });
});
