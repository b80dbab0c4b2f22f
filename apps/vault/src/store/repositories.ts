import { MandateError, type TenantId, type UserRef } from '@mandate/contracts';
import {
  encodeKeySegment,
  LeaseRecords,
  updateWithRetry,
  type Change,
  type DocumentCollection,
  type DocumentStore,
  type LeaseDocument,
  type Page,
  type StoredDocument,
  type SweptCollection,
} from '@mandate/store';
import { providerKey, scopeSetKey, userKey, userTokensId, userTokensPrefix, workloadKey } from './keys.js';
import type { ConsentSessionDocument, GrantDocument, MachineTokenDocument, PendingTokens, ProviderDocument, UserTokensDocument } from './vault-records.js';

/*
 * The only code of the vault that touches persistence: one repository per record kind, ids built
 * here from user input that never shapes a key directly (see keys.ts).
 */

export class ProviderRepository {
  constructor(private readonly providers: DocumentCollection<ProviderDocument>) {}

  get(tenant: TenantId, name: string): Promise<StoredDocument<ProviderDocument> | undefined> {
    return this.providers.get(tenant, encodeKeySegment(name));
  }

  create(tenant: TenantId, document: ProviderDocument): Promise<StoredDocument<ProviderDocument>> {
    return this.providers.create(tenant, encodeKeySegment(document.name), document);
  }

  update(tenant: TenantId, document: ProviderDocument, expectedRevision: number): Promise<StoredDocument<ProviderDocument>> {
    return this.providers.update(tenant, encodeKeySegment(document.name), document, expectedRevision);
  }

  delete(tenant: TenantId, name: string, expectedRevision: number): Promise<boolean> {
    return this.providers.delete(tenant, encodeKeySegment(name), { expectedRevision });
  }

  list(tenant: TenantId, limit: number, cursor: string | undefined): Promise<Page<ProviderDocument>> {
    return this.providers.list(tenant, { limit, ...(cursor ? { cursor } : {}) });
  }
}

/** Which grant: a person's to one workload for one provider, lasting or "this time only". */
export interface GrantKey {
  user: UserRef;
  workload: string;
  provider: string;
  once: boolean;
}

/** Grants; ids start with the user, so one person's grants are one prefix. */
export class GrantRepository {
  constructor(private readonly grants: DocumentCollection<GrantDocument>) {}

  get(tenant: TenantId, key: GrantKey): Promise<StoredDocument<GrantDocument> | undefined> {
    return this.grants.get(tenant, grantId(key));
  }

  change(tenant: TenantId, key: GrantKey, change: (current: StoredDocument<GrantDocument> | undefined) => Change<GrantDocument>): Promise<StoredDocument<GrantDocument> | undefined> {
    return updateWithRetry(this.grants, tenant, grantId(key), change);
  }

  delete(tenant: TenantId, id: string, expectedRevision?: number): Promise<boolean> {
    return this.grants.delete(tenant, id, expectedRevision === undefined ? {} : { expectedRevision });
  }

  deleteKey(tenant: TenantId, key: GrantKey, expectedRevision: number): Promise<boolean> {
    return this.delete(tenant, grantId(key), expectedRevision);
  }

  /** Every grant of the tenant, a person's (`user`), or a person's to one workload. */
  each(tenant: TenantId, of: { user?: UserRef | undefined; workload?: string | undefined } = {}): AsyncGenerator<StoredDocument<GrantDocument>> {
    const prefix = of.user ? `${userKey(of.user)}.${of.workload ? `${workloadKey(of.workload)}.` : ''}` : '';
    return eachOf(this.grants, tenant, prefix);
  }
}

function grantId(key: GrantKey): string {
  return `${userKey(key.user)}.${workloadKey(key.workload)}.${providerKey(key.provider)}${key.once ? '.once' : ''}`;
}

export class ConsentSessionRepository {
  constructor(private readonly sessions: DocumentCollection<ConsentSessionDocument>) {}

  get(tenant: TenantId, id: string): Promise<StoredDocument<ConsentSessionDocument> | undefined> {
    return this.sessions.get(tenant, id);
  }

  create(tenant: TenantId, id: string, document: ConsentSessionDocument, ttlMs: number): Promise<StoredDocument<ConsentSessionDocument>> {
    return this.sessions.create(tenant, id, document, { ttlMs });
  }

  update(tenant: TenantId, id: string, document: ConsentSessionDocument, expectedRevision: number, ttlMs: number): Promise<StoredDocument<ConsentSessionDocument>> {
    return this.sessions.update(tenant, id, document, expectedRevision, { ttlMs });
  }
}

/** A user's tokens per provider and scope set; the prefix without the scope set finds them all. */
export class UserTokenRepository {
  constructor(private readonly tokens: DocumentCollection<UserTokensDocument>) {}

  idOf(user: UserRef, provider: string, scopes: readonly string[]): string {
    return userTokensId(user, provider, scopes);
  }

  get(tenant: TenantId, user: UserRef, provider: string, scopes: readonly string[]): Promise<StoredDocument<UserTokensDocument> | undefined> {
    return this.tokens.get(tenant, userTokensId(user, provider, scopes));
  }

  /** Writes (creating or replacing) under compare-and-swap, again on a lost race. */
  put(tenant: TenantId, user: UserRef, provider: string, scopes: readonly string[], document: (id: string) => UserTokensDocument): Promise<unknown> {
    const id = userTokensId(user, provider, scopes);
    return updateWithRetry(this.tokens, tenant, id, () => ({ value: document(id) }));
  }

  update(tenant: TenantId, stored: StoredDocument<UserTokensDocument>, document: UserTokensDocument): Promise<StoredDocument<UserTokensDocument>> {
    return this.tokens.update(tenant, stored.id, document, stored.revision);
  }

  delete(tenant: TenantId, id: string): Promise<boolean> {
    return this.tokens.delete(tenant, id);
  }

  /** A person's tokens for one provider, or every user's of the tenant. */
  each(tenant: TenantId, of?: { user: UserRef; provider: string }): AsyncGenerator<StoredDocument<UserTokensDocument>> {
    return eachOf(this.tokens, tenant, of ? userTokensPrefix(of.user, of.provider) : '');
  }
}

/** Client-credentials tokens per provider and scope set, each with a store TTL of its lifetime. */
export class MachineTokenRepository {
  constructor(private readonly tokens: DocumentCollection<MachineTokenDocument>) {}

  idOf(provider: string, scopes: readonly string[]): string {
    return `${this.prefixOf(provider)}${scopeSetKey(scopes)}`;
  }

  prefixOf(provider: string): string {
    return `${providerKey(provider)}.`;
  }

  get(tenant: TenantId, id: string): Promise<StoredDocument<MachineTokenDocument> | undefined> {
    return this.tokens.get(tenant, id);
  }

  /** Stores a fetched token; another replica's, stored meanwhile past a stuck lease, is as good. */
  async put(tenant: TenantId, id: string, document: MachineTokenDocument, ttlMs: number): Promise<void> {
    await updateWithRetry(this.tokens, tenant, id, () => ({ value: document, options: { ttlMs } }), 1).catch((error: unknown) => {
      if (!(error instanceof MandateError && error.code === 'conflict')) throw error;
    });
  }

  async removeForProvider(tenant: TenantId, provider: string): Promise<void> {
    for await (const item of eachOf(this.tokens, tenant, this.prefixOf(provider))) await this.tokens.delete(tenant, item.id);
  }
}

async function* eachOf<T>(collection: DocumentCollection<T>, tenant: TenantId, prefix: string): AsyncGenerator<StoredDocument<T>> {
  let cursor: string | undefined;
  do {
    const page = await collection.list(tenant, { limit: 1000, ...(prefix ? { prefix } : {}), ...(cursor ? { cursor } : {}) });
    yield* page.items;
    cursor = page.nextCursor;
  } while (cursor);
}

export interface VaultRepositories {
  providers: ProviderRepository;
  grants: GrantRepository;
  sessions: ConsentSessionRepository;
  userTokens: UserTokenRepository;
  machineTokens: MachineTokenRepository;
  /** Who refreshes a user's token (and the tokens a dead refresher already got). */
  refreshLeases: LeaseRecords<PendingTokens>;
  /** Who fetches a client-credentials token; these vanish with their holder. */
  fetchLeases: LeaseRecords;
  /** What the expiry sweeper removes for good. */
  expiring: SweptCollection[];
}

/** The vault's collections, opened once. */
export async function openVaultRepositories(store: DocumentStore, leases: { holder: string; ttlMs: number }): Promise<VaultRepositories> {
  const leaseRecords = await store.collection<LeaseDocument<PendingTokens>>('refresh-leases');
  const sessions = await store.collection<ConsentSessionDocument>('consent-sessions');
  const grants = await store.collection<GrantDocument>('grants');
  const machineTokens = await store.collection<MachineTokenDocument>('machine-tokens');
  return {
    providers: new ProviderRepository(await store.collection('providers')),
    grants: new GrantRepository(grants),
    sessions: new ConsentSessionRepository(sessions),
    userTokens: new UserTokenRepository(await store.collection('user-tokens')),
    machineTokens: new MachineTokenRepository(machineTokens),
    refreshLeases: new LeaseRecords(leaseRecords, leases),
    fetchLeases: new LeaseRecords(leaseRecords as DocumentCollection<LeaseDocument<never>>, { ...leases, recordTtlMs: leases.ttlMs }),
    expiring: [
      { name: 'consent-sessions', collection: sessions },
      { name: 'grants', collection: grants },
      { name: 'machine-tokens', collection: machineTokens },
      { name: 'refresh-leases', collection: leaseRecords },
    ],
  };
}
