import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { JWK } from 'jose';
import {
  oauth2TokenEndpoint,
  providerCreateEndpoint,
  providerDeleteEndpoint,
  providerGetEndpoint,
  providerListEndpoint,
  tokenRevokeEndpoint,
  type UserRef,
} from '@mandate/contracts';
import { JetStreamKvStore, type DocumentCollection, type DocumentStore } from '@mandate/store';
import { natsServerMissing, failure } from '@mandate/testing';
import { startTestIdp, type TestIdp } from '@mandate/testing/idp';
import { startSystem, type TestSystem } from '@mandate/testing/system';
import { ProactiveRefresh } from './domain/proactive-refresh.js';
import { VaultSeed } from './testing/seed.js';

const missing = natsServerMissing('vault refresh and revocation');
const AUDIENCE = 'https://crm.acme.example';
const SCOPES = ['crm:read'];

/** Marks a stored user token as expired, directly in the store (the sealed tokens stay as they are). */
async function expireStoredTokens(h: TestSystem, user: UserRef): Promise<void> {
  const tokens = await new JetStreamKvStore(h.nc).collection<{ user: UserRef; expiresAt?: number }>('user-tokens');
  for (const item of (await tokens.list('acme' as never, { limit: 1000 })).items) {
    if (item.value.user.sub === user.sub) await tokens.update('acme' as never, item.id, { ...item.value, expiresAt: Date.now() - 1_000 }, item.revision);
  }
}

describe.skipIf(missing)('user token refresh against a real OAuth server with refresh-token rotation', () => {
  let h: TestSystem;
  let seed: VaultSeed;
  let idp: TestIdp;
  let agentKey: JWK;
  let crashes = 0;
  let providerDeleteCrashes = 0;

  const refreshCalls = () => idp.tokenRequests.filter((r) => r.grantType === 'refresh_token').length;

  /** A user with a real token set from the IdP, stored in the vault, expired, and a grant for the agent. */
  async function connectedUser(sub: string) {
    const { wat, user } = await h.userWat('crm-agent', agentKey, sub);
    const tokens = await idp.userTokens({ sub, audience: AUDIENCE, scope: SCOPES.join(' ') });
    await seed.userTokens('acme', 'crm', user, SCOPES, { accessToken: tokens.accessToken, refreshToken: tokens.refreshToken, expiresIn: 0 });
    await seed.grant('acme', { workload: 'crm-agent', provider: 'crm', user, scopes: SCOPES });
    return { wat, user, tokens };
  }

  const ask = (wat: string) => h.bus.request(oauth2TokenEndpoint, { tenant: 'acme', workloadToken: wat, provider: 'crm', flow: 'USER_FEDERATION', scopes: SCOPES });

  beforeAll(async () => {
    // Whichever replica refreshes next dies (when told to) between the provider's answer and the store:
    // the write of the refreshed token record fails, after the provider's answer is in the lease.
    const crashingStore = (store: DocumentStore): DocumentStore => ({
      close: () => store.close(),
      async collection<T>(name: string): Promise<DocumentCollection<T>> {
        const c = await store.collection<T>(name);
        if (name !== 'user-tokens' && name !== 'providers') return c;
        const update: DocumentCollection<T>['update'] = (...args) => {
          if (crashes === 0 || name !== 'user-tokens') return c.update(...args);
          crashes--;
          return Promise.reject(new Error('simulated crash after the upstream refresh'));
        };
        // And a provider delete that stops after its users' tokens were retired, before the record goes.
        const remove: DocumentCollection<T>['delete'] = (...args) => {
          if (providerDeleteCrashes === 0 || name !== 'providers') return c.delete(...args);
          providerDeleteCrashes--;
          return Promise.reject(new Error('simulated crash before the provider record is deleted'));
        };
        return { get: c.get.bind(c), create: c.create.bind(c), createMany: c.createMany.bind(c), update, delete: remove, list: c.list.bind(c), sweepExpired: c.sweepExpired.bind(c) };
      },
    });
    h = await startSystem({ services: ['directory', 'authorizer'], env: { VAULT_LEASE_TTL_SECONDS: '3', VAULT_REFRESH_WAIT_MS: '10000' } });
    await h.add('vault', { wrapStore: crashingStore });
    await h.add('vault', { wrapStore: crashingStore });
    seed = await VaultSeed.open(h);
    idp = await startTestIdp();
    agentKey = await h.workload('crm-agent', { allowUserIdTokens: true });
    await h.bus.request(providerCreateEndpoint, {
      kind: 'oauth2',
      tenant: 'acme',
      name: 'crm',
      vendor: 'custom',
      discoveryUrl: idp.discoveryUrl,
      clientId: 'test-app',
      clientSecret: 'test-app-secret',
      allowedWorkloads: ['crm-agent'],
    });
  });

  afterEach(() => {
    crashes = 0;
  });

  afterAll(async () => {
    await h?.stop();
    await idp?.stop();
  });

  it('a thousand concurrent callers on two replicas cause exactly one upstream refresh, and the rotated token is saved', async () => {
    const { wat, user, tokens } = await connectedUser('storm-user');
    const before = refreshCalls();
    const results = await Promise.all(Array.from({ length: 1000 }, () => ask(wat)));
    expect(refreshCalls() - before).toBe(1);
    expect(new Set(results.map((r) => r.accessToken)).size).toBe(1);
    expect(results[0]!.accessToken).not.toBe(tokens.accessToken);

    // The old refresh token was rotated away at the provider; the vault refreshes with the new one.
    await expireStoredTokens(h, user);
    const next = await ask(wat);
    expect(refreshCalls() - before).toBe(2);
    expect(next.accessToken).not.toBe(results[0]!.accessToken);
    expect(idp.tokenRequests.filter((r) => r.grantType === 'refresh_token').every((r) => r.status === 200)).toBe(true);
  });

  it('invalid_grant marks the connection as needing consent, announces it, and does not retry', async () => {
    const { wat, user, tokens } = await connectedUser('revoked-user');
    await idp.revokeRefreshToken(tokens.refreshToken);
    const events: unknown[] = [];
    const sub = h.nc.subscribe('mandate.evt.vault.consent-needed.acme', { callback: (_e, msg) => void events.push(msg.json()) });
    const before = refreshCalls();
    const first = await failure(ask(wat));
    expect(first.code).toBe('consent_required');
    expect(first.details).toMatchObject({ status: 'pending' });
    expect(refreshCalls() - before).toBe(1);
    for (let i = 0; i < 5; i++) expect((await failure(ask(wat))).code).toBe('consent_required');
    expect(refreshCalls() - before).toBe(1);
    await expect.poll(() => events.length).toBe(1);
    expect(events[0]).toMatchObject({ tenant: 'acme', data: { provider: 'crm', user } });
    await expect.poll(() => h.audit.some((r) => r.action === 'token-refresh' && r.reason === 'invalid_grant' && r.actor.user?.sub === 'revoked-user')).toBe(true);
    sub.unsubscribe();
  });

  it('a crash between the upstream refresh and the store leaves a state the next caller recovers from', async () => {
    const { wat } = await connectedUser('crash-user');
    const before = refreshCalls();
    crashes = 1;
    const crashed = await failure(ask(wat));
    expect(crashes).toBe(0);
    expect(crashed.code).toBe('internal');
    // The next caller waits out the dead holder's lease and applies the tokens it left there.
    const recovered = (await ask(wat)).accessToken;
    // The provider's answer was kept in the lease and applied; the rotated refresh token was never spent twice.
    expect(refreshCalls() - before).toBe(1);
    expect((await ask(wat)).accessToken).toBe(recovered);
  });

  it('revocation deletes the tokens and revokes them at the provider', async () => {
    const { wat, user } = await connectedUser('leaving-user');
    await ask(wat);
    const revocationsBefore = idp.revocationRequests;
    const result = await h.bus.request(tokenRevokeEndpoint, { tenant: 'acme', provider: 'crm', user, actor: 'ops' });
    expect(result).toEqual({ deleted: 1, upstream: 'revoked' });
    expect(idp.revocationRequests).toBeGreaterThan(revocationsBefore);
    expect((await failure(ask(wat))).code).toBe('consent_required');
    await expect.poll(() => h.audit.some((r) => r.action === 'token-revoke' && r.actor.user?.sub === 'leaving-user' && r.details?.['upstream'] === 'revoked')).toBe(true);
  });

  it('deleting a provider revokes and deletes its users\' tokens and grants', async () => {
    await h.bus.request(providerCreateEndpoint, { kind: 'oauth2', tenant: 'acme', name: 'short-lived', vendor: 'custom', discoveryUrl: idp.discoveryUrl, clientId: 'test-app', clientSecret: 'test-app-secret', allowedWorkloads: ['crm-agent'] });
    const { wat, user } = await h.userWat('crm-agent', agentKey, 'departing-user');
    const tokens = await idp.userTokens({ sub: 'departing-user', audience: AUDIENCE, scope: 'crm:read' });
    await seed.userTokens('acme', 'short-lived', user, SCOPES, { accessToken: tokens.accessToken, refreshToken: tokens.refreshToken, expiresIn: 600 });
    await seed.grant('acme', { workload: 'crm-agent', provider: 'short-lived', user, scopes: SCOPES });
    const revocations = idp.revocationRequests;
    await h.bus.request(providerDeleteEndpoint, { tenant: 'acme', name: 'short-lived' });
    expect(idp.revocationRequests).toBeGreaterThan(revocations);
    // Re-created under the same name, it starts from nothing: no token, no grant.
    await h.bus.request(providerCreateEndpoint, { kind: 'oauth2', tenant: 'acme', name: 'short-lived', vendor: 'custom', discoveryUrl: idp.discoveryUrl, clientId: 'test-app', clientSecret: 'test-app-secret', allowedWorkloads: ['crm-agent'] });
    const again = await failure(h.bus.request(oauth2TokenEndpoint, { tenant: 'acme', workloadToken: wat, provider: 'short-lived', flow: 'USER_FEDERATION', scopes: SCOPES }));
    expect(again.code).toBe('consent_required');
  });

  it('a provider delete that stops half-way: the provider is unusable at once, and the next delete finishes it', async () => {
    const create = () => h.bus.request(providerCreateEndpoint, { kind: 'oauth2', tenant: 'acme', name: 'halfway', vendor: 'custom', discoveryUrl: idp.discoveryUrl, clientId: 'test-app', clientSecret: 'test-app-secret', allowedWorkloads: ['crm-agent'] });
    await create();
    const { wat, user } = await h.userWat('crm-agent', agentKey, 'halfway-user');
    const tokens = await idp.userTokens({ sub: 'halfway-user', audience: AUDIENCE, scope: 'crm:read' });
    await seed.userTokens('acme', 'halfway', user, SCOPES, { accessToken: tokens.accessToken, refreshToken: tokens.refreshToken, expiresIn: 600 });
    await seed.grant('acme', { workload: 'crm-agent', provider: 'halfway', user, scopes: SCOPES });
    const token = (request: object = {}) => h.bus.request(oauth2TokenEndpoint, { tenant: 'acme', workloadToken: wat, provider: 'halfway', flow: 'USER_FEDERATION', scopes: SCOPES, ...request });
    expect((await token()).accessToken).toBe(tokens.accessToken);
    const revocations = idp.revocationRequests;
    providerDeleteCrashes = 1;
    expect((await failure(h.bus.request(providerDeleteEndpoint, { tenant: 'acme', name: 'halfway' }))).code).toBe('internal');
    expect(providerDeleteCrashes).toBe(0);
    // Retired already: revoked upstream, nothing more released, nothing shown; the name is still taken until the delete is finished.
    expect(idp.revocationRequests).toBeGreaterThan(revocations);
    expect((await failure(token())).code).toBe('not_found');
    expect((await failure(h.bus.request(providerGetEndpoint, { tenant: 'acme', name: 'halfway' }))).code).toBe('not_found');
    expect((await h.bus.request(providerListEndpoint, { tenant: 'acme' })).items.map((p) => p.name)).not.toContain('halfway');
    expect((await failure(create())).code).toBe('conflict');
    expect(await h.bus.request(providerDeleteEndpoint, { tenant: 'acme', name: 'halfway' })).toEqual({ deleted: true });
    await create();
    expect((await failure(token())).code).toBe('consent_required');
  });

  it('refreshes recently used tokens ahead of expiry', async () => {
    const { wat, user } = await connectedUser('busy-user');
    await ask(wat);
    // Close to expiry, but not stale yet: the background refresh (not a caller) renews it.
    const tokens = await new JetStreamKvStore(h.nc).collection<{ user: UserRef; expiresAt?: number }>('user-tokens');
    const stored = (await tokens.list('acme' as never, { limit: 1000 })).items.find((i) => i.value.user.sub === user.sub)!;
    await tokens.update('acme' as never, stored.id, { ...stored.value, expiresAt: Date.now() + 90_000 }, stored.revision);
    const before = refreshCalls();
    let refreshed = 0;
    // Only the replica that served the request knows the token is in use.
    for (const replica of h.replicas.vault!) refreshed += await replica.app.get(ProactiveRefresh).refreshAhead(120_000);
    expect(refreshed).toBe(1);
    expect(refreshCalls() - before).toBe(1);
  });
});
