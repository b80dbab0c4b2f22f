import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { grantListEndpoint, providerCreateEndpoint, type UserRef } from '@mandate/contracts';
import { VaultSeed } from './testing/seed.js';
import { natsServerMissing } from '@mandate/testing';
import { startTestIdp, type TestIdp } from '@mandate/testing/idp';
import { Vault } from './vault.assembly.js';
import { startSystem, type TestSystem } from '@mandate/testing/system';

const missing = natsServerMissing('vault expiry sweep');

describe.skipIf(missing)('the vault removes what has expired for good', () => {
  let h: TestSystem;
  let seed: VaultSeed;
  let idp: TestIdp;
  const user: UserRef = { iss: 'https://idp.example', sub: 'sweep-user' };

  beforeAll(async () => {
    h = await startSystem({ services: ['directory', 'authorizer', 'vault'] });
    seed = await VaultSeed.open(h);
    idp = await startTestIdp();
    await h.workload('sweep-agent');
    await h.bus.request(providerCreateEndpoint, {
      kind: 'oauth2', tenant: 'acme', name: 'sweep-crm', vendor: 'custom', discoveryUrl: idp.discoveryUrl, clientId: 'test-app', clientSecret: 'test-app-secret', allowedWorkloads: ['sweep-agent'],
    });
  });

  afterAll(async () => {
    await h?.stop();
    await idp?.stop();
  });

  it('a grant whose every term ran out is swept; one until revoked, or with a term left, stays', async () => {
    const vault = h.service('vault').app.get(Vault);
    const soon = () => new Date(Date.now() + 300).toISOString();
    const later = new Date(Date.now() + 3_600_000).toISOString();
    const record = (workload: string, scopes: string[], expiresAt?: string) =>
      seed.grant('acme', { workload, provider: 'sweep-crm', user, scopes, ...(expiresAt ? { expiresAt } : {}) });
    await record('sweep-agent', ['lapses'], soon());
    // Another workload's grant: one scope lapses, the other does not; so the document stays.
    await h.workload('mixed-agent');
    await record('mixed-agent', ['short'], soon());
    await record('mixed-agent', ['long'], later);
    await h.workload('forever-agent');
    await record('forever-agent', ['always']);
    const scopesOf = async () =>
      Object.fromEntries((await h.bus.request(grantListEndpoint, { tenant: 'acme', user })).items.map((g) => [g.workload, g.scopes]));
    expect(await scopesOf()).toEqual({ 'sweep-agent': ['lapses'], 'mixed-agent': ['long', 'short'], 'forever-agent': ['always'] });

    await new Promise((resolve) => setTimeout(resolve, 400));
    expect(await scopesOf()).toEqual({ 'mixed-agent': ['long'], 'forever-agent': ['always'] });
    expect((await vault.sweepExpired())['grants']).toBe(1);
    expect((await vault.sweepExpired())['grants']).toBe(0);
    expect(await scopesOf()).toEqual({ 'mixed-agent': ['long'], 'forever-agent': ['always'] });
    // A new approval after the sweep starts a fresh grant.
    await record('sweep-agent', ['lapses'], later);
    expect((await scopesOf())['sweep-agent']).toEqual(['lapses']);
  });
});
