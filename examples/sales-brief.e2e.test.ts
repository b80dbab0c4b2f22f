import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { JetStreamPublisher } from '@mandate/bus';
import { authorizerSetEndpoint, consentGrantedEvent, providerCreateEndpoint, workloadCreateEndpoint } from '@mandate/contracts';
import { MandateClient } from '@mandate/sdk';
import { natsServerMissing } from '@mandate/testing';
import { startTestIdp, type TestIdp } from '@mandate/testing/idp';
import { startSystem, workloadKeyPair, type TestSystem } from '@mandate/testing/system';
import { VaultSeed } from '@mandate/vault/testing';
import { startCrmApi } from './crm-api.js';
import { salesBrief } from './sales-brief.js';

const missing = natsServerMissing('the sales brief example');
const APP_AUDIENCE = 'https://sales-app.example';
const CRM_AUDIENCE = 'https://crm.example';

describe.skipIf(missing)('example: the sales brief (three-legged OAuth, consent once)', () => {
  let h: TestSystem;
  let seed: VaultSeed;
  let idp: TestIdp;
  let crm: Awaited<ReturnType<typeof startCrmApi>>;
  let agentKey: Awaited<ReturnType<typeof workloadKeyPair>>;

  beforeAll(async () => {
    h = await startSystem({ services: ['directory', 'authorizer', 'vault'] });
    seed = await VaultSeed.open(h);
    idp = await startTestIdp();
    crm = await startCrmApi({ issuer: idp.issuer, jwksUri: idp.jwksUri, audience: CRM_AUDIENCE });
    agentKey = await workloadKeyPair('sales-brief-agent-key');
    await h.bus.request(workloadCreateEndpoint, { tenant: 'examples', name: 'sales-brief-agent', description: 'Prepares account briefs', publicKeys: { keys: [agentKey.publicJwk as never] } });
    await h.bus.request(authorizerSetEndpoint, { tenant: 'examples', name: 'sales-brief-agent', authorizer: { discoveryUrl: idp.discoveryUrl, allowedAudiences: [APP_AUDIENCE] } });
    await h.bus.request(providerCreateEndpoint, {
      kind: 'oauth2',
      tenant: 'examples',
      name: 'crm',
      vendor: 'custom',
      discoveryUrl: idp.discoveryUrl,
      clientId: 'test-app',
      clientSecret: 'test-app-secret',
      allowedWorkloads: ['sales-brief-agent'],
    });
  });

  afterAll(async () => {
    await crm?.stop();
    await idp?.stop();
    await h?.stop();
  });

  /** What the vault holds and announces once Sarah approved on the consent page (the consent tests go through the pages). */
  async function sarahApproves(sessionId: string): Promise<void> {
    const tokens = await idp.userTokens({ sub: 'sarah', audience: CRM_AUDIENCE, scope: 'crm:read' });
    const user = { iss: idp.issuer, sub: 'sarah' };
    await seed.consented('examples', sessionId, { accessToken: tokens.accessToken, refreshToken: tokens.refreshToken, expiresIn: tokens.expiresIn });
    await new JetStreamPublisher(h.nc).publishEvent(consentGrantedEvent, 'examples', { sessionId, workload: 'sales-brief-agent', provider: 'crm', user, scopes: ['crm:read'] });
  }

  it('asks Sarah once, then briefs from her CRM notes with her token; next time nobody is asked', async () => {
    const mandate = new MandateClient(h.nc, { tenant: 'examples', workload: 'sales-brief-agent' });
    const userJwt = await idp.userAccessToken({ sub: 'sarah', audience: APP_AUDIENCE });
    const shown: string[] = [];
    const onAuthUrl = (url: string, sessionId: string) => {
      shown.push(url);
      setTimeout(() => void sarahApproves(sessionId), 50);
    };
    const first = await salesBrief(mandate, { userJwt, privateJwk: agentKey.privateJwk, account: 'ACME Corp', crmUrl: crm.url, onAuthUrl });
    expect(first).toContain('- ACME Corp: renewal due in March');
    expect(shown).toHaveLength(1);
    expect(shown[0]).toMatch(/\/consent\/[A-Za-z0-9_-]+\?tenant=examples$/);
    const second = await salesBrief(mandate, { userJwt, privateJwk: agentKey.privateJwk, account: 'Globex', crmUrl: crm.url, onAuthUrl });
    expect(second).toContain('- Globex: asked for SSO pricing');
    expect(shown).toHaveLength(1);
    expect(crm.readers).toEqual(['sarah', 'sarah']);
  });
});
