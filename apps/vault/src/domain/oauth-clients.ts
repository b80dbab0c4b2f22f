import type { TenantId } from '@mandate/contracts';
import type { StoredDocument } from '@mandate/store';
import type { ProviderDocument } from '../store/vault-records.js';
import { OAuthProviderClient } from './oauth-client.js';

/**
 * One OAuth client per provider, for its latest revision (a changed provider gets fresh endpoints
 * and secrets; the client of the revision before is dropped), at most `maxEntries` in all (the
 * least recently made goes first): the map cannot grow with every provider change.
 */
export class OAuthClients {
  readonly #clients = new Map<string, { revision: number; client: OAuthProviderClient }>();

  constructor(
    private readonly timeoutMs: number,
    private readonly maxEntries = 1_000,
    private readonly now: () => number = Date.now,
  ) {}

  for(tenant: TenantId, provider: StoredDocument<ProviderDocument>): OAuthProviderClient {
    const key = `${tenant}\n${provider.value.name}`;
    const known = this.#clients.get(key);
    if (known && known.revision === provider.revision) return known.client;
    const client = new OAuthProviderClient(provider.value, this.timeoutMs, this.now);
    this.#clients.delete(key);
    if (this.#clients.size >= this.maxEntries) this.#clients.delete(this.#clients.keys().next().value!);
    this.#clients.set(key, { revision: provider.revision, client });
    return client;
  }

  /** Forgets a provider's client (it changed on another replica, or was deleted). */
  evict(tenant: string, name: string): void {
    this.#clients.delete(`${tenant}\n${name}`);
  }
}
