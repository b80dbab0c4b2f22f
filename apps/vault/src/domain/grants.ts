import { MandateError, type TenantId, type UserRef } from '@mandate/contracts';
import type { DocumentCollection } from '@mandate/store';
import { providerKey, userKey, workloadKey } from '../store/keys.js';
import type { GrantDocument } from '../store/vault-records.js';

/**
 * Consent grants: a user's permission for one workload to use one provider with some scopes.
 * The vault releases a user's token only within a grant. (The consent service records them after
 * the person approves; until it exists, `grant-record` is how they arrive.)
 */
export class Grants {
  constructor(
    private readonly grants: DocumentCollection<GrantDocument>,
    private readonly now: () => number = Date.now,
  ) {}

  /** Records a grant; scopes add to a live grant's, the later expiry wins. */
  async record(tenant: TenantId, workload: string, provider: string, user: UserRef, scopes: readonly string[], expiresAt: number | undefined): Promise<void> {
    const id = idOf(workload, provider, user);
    for (let attempt = 0; attempt < 5; attempt++) {
      const current = await this.grants.get(tenant, id);
      const live = current && !this.#expired(current.value) ? current.value : undefined;
      const untilRevoked = expiresAt === undefined || (live !== undefined && live.expiresAt === undefined);
      const document: GrantDocument = {
        workload,
        provider,
        user,
        scopes: [...new Set([...(live?.scopes ?? []), ...scopes])].sort(),
        ...(untilRevoked ? {} : { expiresAt: Math.max(expiresAt, live?.expiresAt ?? 0) }),
        grantedAt: this.now(),
      };
      try {
        if (current) await this.grants.update(tenant, id, document, current.revision);
        else await this.grants.create(tenant, id, document);
        return;
      } catch (error) {
        if (!(error instanceof MandateError && error.code === 'conflict')) throw error;
      }
    }
    throw new MandateError('conflict', 'the grant kept changing; try again');
  }

  /** The requested scopes not covered by a live grant (empty: all granted). */
  async missingScopes(tenant: TenantId, workload: string, provider: string, user: UserRef, scopes: readonly string[]): Promise<string[]> {
    const grant = await this.grants.get(tenant, idOf(workload, provider, user));
    const granted = grant && !this.#expired(grant.value) ? new Set(grant.value.scopes) : new Set<string>();
    return scopes.filter((scope) => !granted.has(scope));
  }

  /** Deletes every grant for a provider in the tenant; returns how many. */
  async removeForProvider(tenant: TenantId, provider: string): Promise<number> {
    let removed = 0;
    let cursor: string | undefined;
    do {
      const page = await this.grants.list(tenant, { limit: 1000, ...(cursor ? { cursor } : {}) });
      for (const item of page.items.filter((i) => i.value.provider === provider)) {
        if (await this.grants.delete(tenant, item.id)) removed++;
      }
      cursor = page.nextCursor;
    } while (cursor);
    return removed;
  }

  #expired(grant: GrantDocument): boolean {
    return grant.expiresAt !== undefined && grant.expiresAt <= this.now();
  }
}

function idOf(workload: string, provider: string, user: UserRef): string {
  return `${workloadKey(workload)}.${userKey(user)}.${providerKey(provider)}`;
}
