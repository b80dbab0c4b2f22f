import { describe, expect, it } from 'vitest';
import { tenantId } from '@mandate/contracts';
import type { ProviderDocument } from '../store/vault-records.js';
import { OAuthClients } from './oauth-clients.js';

const acme = tenantId('acme');
const provider = (name: string, revision: number) => ({
  id: name,
  revision,
  value: { name, kind: 'oauth2', description: '', metadata: { tokenEndpoint: 'https://idp.example/token' }, clientId: 'c', allowedWorkloads: [], sealed: {}, createdAt: '', updatedAt: '' } satisfies ProviderDocument,
});

describe('OAuthClients (bounded)', () => {
  it('one client per provider: the same for a revision, a fresh one for the next, the old one dropped', () => {
    const clients = new OAuthClients(1_000);
    const first = clients.for(acme, provider('crm', 1));
    expect(clients.for(acme, provider('crm', 1))).toBe(first);
    const second = clients.for(acme, provider('crm', 2));
    expect(second).not.toBe(first);
    expect(clients.for(acme, provider('crm', 2))).toBe(second);
    clients.evict(acme, 'crm');
    expect(clients.for(acme, provider('crm', 2))).not.toBe(second);
  });

  it('holds at most maxEntries providers, dropping the one made longest ago', () => {
    const clients = new OAuthClients(1_000, 2);
    const a = clients.for(acme, provider('a', 1));
    const b = clients.for(acme, provider('b', 1));
    clients.for(acme, provider('c', 1));
    expect(clients.for(acme, provider('b', 1))).toBe(b);
    expect(clients.for(acme, provider('a', 1))).not.toBe(a);
  });
});
