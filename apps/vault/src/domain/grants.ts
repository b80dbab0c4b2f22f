import { MandateError, type GrantView, type TenantId, type UserRef } from '@mandate/contracts';
import type { DocumentCollection } from '@mandate/store';
import { providerKey, userKey, workloadKey } from '../store/keys.js';
import type { GrantDocument } from '../store/vault-records.js';

/** What a live grant lets a token release do. */
export interface GrantCheck {
  /** Requested scopes no live grant covers (empty: all granted). */
  missing: string[];
  /** A "this time only" grant this release needs; the release must use it up first. */
  once?: { revision: number };
}

/**
 * Consent grants: a person's permission for one workload to use one provider with some scopes,
 * until a time, until revoked, or for one release ("this time only", kept apart so using it up
 * leaves a lasting grant for the same provider alone). The vault releases a user's token only
 * within a grant. Ids start with the user, so one person's grants are one prefix.
 */
export class Grants {
  constructor(
    private readonly grants: DocumentCollection<GrantDocument>,
    private readonly now: () => number = Date.now,
  ) {}

  /**
   * Records an approval: the scopes it asked about get its term (until `expiresAt`, or until
   * revoked), replacing their earlier term; the grant's other live scopes keep theirs.
   */
  async record(tenant: TenantId, workload: string, provider: string, user: UserRef, scopes: readonly string[], term: { expiresAt?: number | undefined; once?: boolean }): Promise<void> {
    const id = idOf(user, workload, provider, term.once === true);
    for (let attempt = 0; attempt < 5; attempt++) {
      const current = await this.grants.get(tenant, id);
      const scopeTerms = current ? this.#liveTerms(current.value) : {};
      for (const scope of scopes) scopeTerms[scope] = term.expiresAt ?? null;
      const document: GrantDocument = { workload, provider, user, scopeTerms, grantedAt: this.now(), ...(term.once ? { once: true } : {}) };
      // The document lapses with its last term, so the store's sweep removes grants nobody holds any more.
      const ends = Object.values(scopeTerms);
      const options = ends.length === 0 || ends.includes(null) ? {} : { ttlMs: Math.max(1, Math.max(...(ends as number[])) - this.now()) };
      try {
        if (current) await this.grants.update(tenant, id, document, current.revision, options);
        else await this.grants.create(tenant, id, document, options);
        return;
      } catch (error) {
        if (!(error instanceof MandateError && error.code === 'conflict')) throw error;
      }
    }
    throw new MandateError('conflict', 'the grant kept changing; try again');
  }

  /** The requested scopes no live grant covers, and the one-time grant covering the rest, if needed. */
  async check(tenant: TenantId, workload: string, provider: string, user: UserRef, scopes: readonly string[]): Promise<GrantCheck> {
    const lasting = await this.grants.get(tenant, idOf(user, workload, provider, false));
    const lastingTerms = lasting ? this.#liveTerms(lasting.value) : {};
    const afterLasting = scopes.filter((scope) => !(scope in lastingTerms));
    if (afterLasting.length === 0) return { missing: [] };
    const once = await this.grants.get(tenant, idOf(user, workload, provider, true));
    const onceTerms = once ? this.#liveTerms(once.value) : {};
    const missing = afterLasting.filter((scope) => !(scope in onceTerms));
    return missing.length === 0 && once ? { missing, once: { revision: once.revision } } : { missing: afterLasting };
  }

  /** Uses up a "this time only" grant; false when another release got there first. */
  async useOnce(tenant: TenantId, workload: string, provider: string, user: UserRef, revision: number): Promise<boolean> {
    try {
      return await this.grants.delete(tenant, idOf(user, workload, provider, true), { expectedRevision: revision });
    } catch (error) {
      if (error instanceof MandateError && (error.code === 'conflict' || error.code === 'not_found')) return false;
      throw error;
    }
  }

  /** Live grants, a person's or a workload's or all, oldest id first. */
  async list(tenant: TenantId, filter: { user?: UserRef | undefined; workload?: string | undefined }): Promise<GrantView[]> {
    const views: GrantView[] = [];
    let cursor: string | undefined;
    do {
      const page = await this.grants.list(tenant, { limit: 1000, ...(filter.user ? { prefix: `${userKey(filter.user)}.` } : {}), ...(cursor ? { cursor } : {}) });
      for (const item of page.items) {
        const grant = item.value;
        const terms = this.#liveTerms(grant);
        const scopes = Object.keys(terms).sort();
        if (scopes.length === 0 || (filter.workload && grant.workload !== filter.workload)) continue;
        if (filter.user && (grant.user.iss !== filter.user.iss || grant.user.sub !== filter.user.sub)) continue;
        const ends = Object.values(terms);
        views.push({
          workload: grant.workload,
          provider: grant.provider,
          user: grant.user,
          scopes,
          scopeTerms: Object.fromEntries(scopes.map((scope) => [scope, terms[scope] === null ? null : new Date(terms[scope]!).toISOString()])),
          grantedAt: new Date(grant.grantedAt).toISOString(),
          ...(ends.includes(null) ? {} : { expiresAt: new Date(Math.max(...(ends as number[]))).toISOString() }),
          once: grant.once === true,
        });
      }
      cursor = page.nextCursor;
    } while (cursor);
    return views;
  }

  /** Removes a person's grants to a workload (one provider's, or all); returns the providers they were for. */
  async revoke(tenant: TenantId, user: UserRef, workload: string, provider?: string): Promise<string[]> {
    const providers = new Set<string>();
    const page = await this.grants.list(tenant, { prefix: `${userKey(user)}.${workloadKey(workload)}.`, limit: 1000 });
    for (const item of page.items) {
      if (item.value.workload !== workload || (provider !== undefined && item.value.provider !== provider)) continue;
      if (await this.grants.delete(tenant, item.id)) providers.add(item.value.provider);
    }
    return [...providers];
  }

  /** Whether any workload still holds a live grant of this person for this provider. */
  async anyFor(tenant: TenantId, user: UserRef, provider: string): Promise<boolean> {
    return (await this.list(tenant, { user })).some((grant) => grant.provider === provider);
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

  /** The grant's scopes whose term has not run out. */
  #liveTerms(grant: GrantDocument): Record<string, number | null> {
    const now = this.now();
    return Object.fromEntries(Object.entries(grant.scopeTerms).filter(([, until]) => until === null || until > now));
  }
}

function idOf(user: UserRef, workload: string, provider: string, once: boolean): string {
  return `${userKey(user)}.${workloadKey(workload)}.${providerKey(provider)}${once ? '.once' : ''}`;
}
