import { MandateError, type GrantView, type TenantId, type UserRef } from '@mandate/contracts';
import type { GrantRepository } from '../store/repositories.js';
import { Grant, type GrantTerms } from './grant.js';

/** What a live grant lets a token release do. */
export interface GrantCheck {
  /** Requested scopes no live grant covers (empty: all granted). */
  missing: string[];
  /** A "this time only" grant this release needs; the release must use it up first. */
  once?: { revision: number };
}

/**
 * The grants of the consent ledger. The vault releases a user's token only within one; a "this
 * time only" grant is kept apart, so using it up leaves a lasting grant for the same provider alone.
 */
export class GrantLedger {
  constructor(
    private readonly grants: GrantRepository,
    private readonly now: () => number = Date.now,
  ) {}

  async record(tenant: TenantId, workload: string, provider: string, user: UserRef, scopes: readonly string[], terms: GrantTerms): Promise<void> {
    await this.grants.change(tenant, { user, workload, provider, once: terms.once === true }, (current) =>
      new Grant(current?.value, this.now()).approve({ workload, provider, user }, scopes, terms),
    );
  }

  /** The requested scopes no live grant covers, and the one-time grant covering the rest, if needed. */
  async check(tenant: TenantId, workload: string, provider: string, user: UserRef, scopes: readonly string[]): Promise<GrantCheck> {
    const lasting = await this.grants.get(tenant, { user, workload, provider, once: false });
    const afterLasting = new Grant(lasting?.value, this.now()).missing(scopes);
    if (afterLasting.length === 0) return { missing: [] };
    const once = await this.grants.get(tenant, { user, workload, provider, once: true });
    const missing = new Grant(once?.value, this.now()).missing(afterLasting);
    return missing.length === 0 && once ? { missing, once: { revision: once.revision } } : { missing: afterLasting };
  }

  /** Uses up a "this time only" grant; false when another release got there first. */
  async useOnce(tenant: TenantId, workload: string, provider: string, user: UserRef, revision: number): Promise<boolean> {
    try {
      return await this.grants.deleteKey(tenant, { user, workload, provider, once: true }, revision);
    } catch (error) {
      if (error instanceof MandateError && (error.code === 'conflict' || error.code === 'not_found')) return false;
      throw error;
    }
  }

  /** Live grants, a person's or a workload's or all, oldest id first. */
  async list(tenant: TenantId, filter: { user?: UserRef | undefined; workload?: string | undefined }): Promise<GrantView[]> {
    const views: GrantView[] = [];
    for await (const item of this.grants.each(tenant, { user: filter.user })) {
      const view = new Grant(item.value, this.now()).view();
      if (!view || (filter.workload && view.workload !== filter.workload)) continue;
      if (filter.user && (view.user.iss !== filter.user.iss || view.user.sub !== filter.user.sub)) continue;
      views.push(view);
    }
    return views;
  }

  /** Removes a person's grants to a workload (one provider's, or all); returns the providers they were for. */
  async revoke(tenant: TenantId, user: UserRef, workload: string, provider?: string): Promise<string[]> {
    const providers = new Set<string>();
    for await (const item of this.grants.each(tenant, { user, workload })) {
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
    for await (const item of this.grants.each(tenant)) {
      if (item.value.provider === provider && (await this.grants.delete(tenant, item.id))) removed++;
    }
    return removed;
  }
}
