import type { TenantId, UserRef } from '@mandate/contracts';
import type { ProviderRegistry } from './providers.js';
import type { UpstreamRefresh } from './upstream-refresh.js';
import type { UserTokens } from './user-tokens.js';

interface RecentUse {
  tenant: TenantId;
  provider: string;
  user: UserRef;
  scopes: string[];
  usedAt: number;
}

/**
 * Refreshes user tokens this replica released recently before they expire, so callers rarely
 * wait for a refresh. Only the replica that served a request knows the token is in use.
 */
export class ProactiveRefresh {
  readonly #recentlyUsed = new Map<string, RecentUse>();

  constructor(
    private readonly providers: ProviderRegistry,
    private readonly userTokens: UserTokens,
    private readonly upstream: UpstreamRefresh,
    /** How recently used a token must be to be refreshed ahead of expiry. */
    private readonly windowMs = 10 * 60_000,
    private readonly now: () => number = Date.now,
  ) {}

  noteUse(tenant: TenantId, provider: string, user: UserRef, scopes: string[]): void {
    this.#recentlyUsed.set(`${tenant}\n${provider}\n${user.iss}\n${user.sub}\n${scopes.join(' ')}`, { tenant, provider, user, scopes, usedAt: this.now() });
  }

  /** Refreshes recently used user tokens that expire within `withinMs`; how many it refreshed. */
  async refreshAhead(withinMs: number): Promise<number> {
    let refreshed = 0;
    for (const [key, used] of this.#recentlyUsed) {
      if (this.now() - used.usedAt > this.windowMs) {
        this.#recentlyUsed.delete(key);
        continue;
      }
      if (!(await this.userTokens.expiresWithin(used.tenant, used.provider, used.user, used.scopes, withinMs))) continue;
      const provider = await this.providers.get(used.tenant, used.provider).catch(() => undefined);
      if (!provider) continue;
      const lookup = await this.userTokens
        .get(used.tenant, used.provider, used.user, used.scopes, (refreshToken) => this.upstream.refresh(used.tenant, provider, used.user, used.scopes, refreshToken), { forceRefreshWithinMs: withinMs })
        .catch(() => undefined);
      if (lookup?.status === 'ok' && lookup.refreshed) refreshed++;
    }
    return refreshed;
  }
}
