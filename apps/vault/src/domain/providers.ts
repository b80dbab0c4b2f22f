import type { JWK } from 'jose';
import { MandateError, type TenantId } from '@mandate/contracts';
import type { EnvelopeCipher } from '@mandate/crypto';
import type { StoredDocument } from '@mandate/store';
import type { ProviderRepository } from '../store/repositories.js';
import type { ProviderDocument } from '../store/vault-records.js';
import type { ClientSecrets } from './oauth-client.js';

export type SecretName = keyof ProviderDocument['sealed'];

/**
 * Credential providers of every tenant. Secrets are sealed on the way in (one data key each,
 * bound to tenant, provider and field) and never leave again except to the code that uses them.
 */
export class ProviderRegistry {
  /** Providers read recently; a change here evicts at once, a change on another replica within `cacheTtlMs`. */
  readonly #cache = new Map<string, { stored: StoredDocument<ProviderDocument>; at: number }>();
  /** Opened secrets by provider revision: a hit costs no decryption; a changed provider has a new revision. */
  readonly #opened = new Map<string, string>();

  constructor(
    private readonly providers: ProviderRepository,
    private readonly cipher: EnvelopeCipher,
    private readonly now: () => Date = () => new Date(),
    private readonly cacheTtlMs = 2_000,
  ) {}

  /** Forgets what this replica cached of a provider (another replica changed it). */
  evict(tenant: string, name: string): void {
    this.#cache.delete(`${tenant}\n${name}`);
  }

  async get(tenant: TenantId, name: string): Promise<StoredDocument<ProviderDocument>> {
    const key = `${tenant}\n${name}`;
    const now = this.now().getTime();
    const cached = this.#cache.get(key);
    if (cached && now - cached.at < this.cacheTtlMs) return cached.stored;
    const stored = await this.providers.get(tenant, name);
    // A provider being deleted is gone for every use already.
    if (!stored || stored.value.retiring) {
      this.#cache.delete(key);
      throw new MandateError('not_found', `no provider named ${name} in this tenant`);
    }
    if (this.cacheTtlMs > 0) this.#cache.set(key, { stored, at: now });
    return stored;
  }

  /** Reads around the cache: for changes, which must see the latest revision. */
  fresh(tenant: TenantId, name: string): Promise<StoredDocument<ProviderDocument>> {
    this.evict(tenant, name);
    return this.get(tenant, name);
  }

  /** The client secrets of an OAuth2 provider, opened for one call. */
  clientSecrets(tenant: TenantId, provider: ProviderDocument): ClientSecrets {
    const secrets: ClientSecrets = {};
    if (provider.sealed.clientSecret) secrets.clientSecret = this.#open(tenant, provider.name, 'clientSecret', provider.sealed.clientSecret);
    if (provider.sealed.clientPrivateJwk) secrets.clientPrivateJwk = JSON.parse(this.#open(tenant, provider.name, 'clientPrivateJwk', provider.sealed.clientPrivateJwk)) as JWK;
    return secrets;
  }

  apiKey(tenant: TenantId, provider: ProviderDocument): string {
    if (!provider.sealed.apiKey) throw new MandateError('invalid_request', `${provider.name} is not an API key provider`);
    return this.#open(tenant, provider.name, 'apiKey', provider.sealed.apiKey);
  }

  seal(tenant: TenantId, provider: string, field: SecretName, value: string): string {
    return this.cipher.sealToString(value, recordId(tenant, provider, field));
  }

  /** Fails closed: a sealed value that does not open (tampered, moved, unknown key) is an internal error. */
  #open(tenant: TenantId, provider: string, field: SecretName, sealed: string): string {
    const key = `${recordId(tenant, provider, field)}\n${sealed}`;
    const opened = this.#opened.get(key);
    if (opened !== undefined) return opened;
    try {
      const plaintext = this.cipher.openString(sealed, recordId(tenant, provider, field)).toString('utf8');
      if (this.#opened.size >= 10_000) this.#opened.clear();
      this.#opened.set(key, plaintext);
      return plaintext;
    } catch (cause) {
      throw new MandateError('internal', `a stored secret of provider ${provider} cannot be opened`, { cause });
    }
  }
}

function recordId(tenant: TenantId, provider: string, field: SecretName): string {
  return `${tenant}/providers/${provider}/${field}`;
}
