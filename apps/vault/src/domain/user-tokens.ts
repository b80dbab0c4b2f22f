import { MandateError, type TenantId, type UserRef } from '@mandate/contracts';
import type { EnvelopeCipher } from '@mandate/crypto';
import type { DocumentCollection, StoredDocument } from '@mandate/store';
import { userTokensId, userTokensPrefix } from '../store/keys.js';
import type { RefreshLeaseDocument, SealedUserTokens, UserTokensDocument } from '../store/vault-records.js';
import { InvalidGrantError, type TokenSet } from './oauth-client.js';
import { SingleFlight } from './single-flight.js';

export interface UserTokensOptions {
  /** Who holds a lease: this process. */
  instanceId: string;
  /** A token is refreshed this long before it expires. */
  refreshMarginMs: number;
  /** A lease not released within this long is taken over (its holder is presumed dead). */
  leaseTtlMs: number;
  /** How long a caller waits for another replica's refresh before giving up with `unavailable`. */
  waitMs: number;
  pollMs?: number;
  now?: () => number;
  sleep?: (ms: number) => Promise<void>;
  /** Fault-injection seam for tests: runs after the provider answered, before anything is stored. */
  afterUpstreamRefresh?: () => Promise<void>;
}

export type UserTokenLookup =
  | { status: 'ok'; token: TokenSet; refreshed: boolean }
  | { status: 'missing' }
  | { status: 'needs-consent' };

/*
 * Refreshing one user's token, across every vault replica:
 *
 *   stale ──lease created──> refreshing ──provider answered──> pending (tokens in the lease)
 *     ^                          │                                   │
 *     │                          │ invalid_grant                     │ token record written (CAS)
 *     │                          v                                   v
 *     │                     needs consent                        released ──> fresh
 *     └── lease expired, holder dead: taken over; its pending tokens are applied, not refetched
 *
 * Whoever does not hold the lease waits for the record to change. The rotated refresh token is in
 * the store (lease, then record) before any caller sees the new access token.
 */
export class UserTokens {
  readonly #flights = new SingleFlight<UserTokenLookup>();
  readonly #options: Required<Omit<UserTokensOptions, 'afterUpstreamRefresh'>> & Pick<UserTokensOptions, 'afterUpstreamRefresh'>;

  constructor(
    private readonly tokens: DocumentCollection<UserTokensDocument>,
    private readonly leases: DocumentCollection<RefreshLeaseDocument>,
    private readonly cipher: EnvelopeCipher,
    options: UserTokensOptions,
  ) {
    this.#options = { pollMs: 50, now: Date.now, sleep: (ms) => new Promise((r) => setTimeout(r, ms)), ...options };
  }

  /** Stores (or replaces) a user's tokens for a provider and scope set, e.g. after consent. */
  async put(tenant: TenantId, provider: string, user: UserRef, scopes: readonly string[], token: TokenSet): Promise<void> {
    const id = userTokensId(user, provider, scopes);
    for (let attempt = 0; attempt < 5; attempt++) {
      const current = await this.tokens.get(tenant, id);
      const document = this.#document(tenant, id, provider, user, scopes, token);
      try {
        if (current) await this.tokens.update(tenant, id, document, current.revision);
        else await this.tokens.create(tenant, id, document);
        return;
      } catch (error) {
        if (!(error instanceof MandateError && error.code === 'conflict')) throw error;
      }
    }
    throw new MandateError('conflict', 'the stored tokens kept changing; try again');
  }

  /** A whole token set sealed for a consent session, to be stored once the application completes it. */
  sealForSession(tenant: TenantId, sessionId: string, token: TokenSet): string {
    return this.cipher.sealToString(JSON.stringify(token), `${tenant}/consent-sessions/${sessionId}/held`);
  }

  openForSession(tenant: TenantId, sessionId: string, sealed: string): TokenSet {
    try {
      return JSON.parse(this.cipher.openString(sealed, `${tenant}/consent-sessions/${sessionId}/held`).toString('utf8')) as TokenSet;
    } catch (cause) {
      throw new MandateError('internal', 'held tokens cannot be opened', { cause });
    }
  }

  /** The user's token, refreshed first if it is stale (once, however many callers and replicas race). */
  get(
    tenant: TenantId,
    provider: string,
    user: UserRef,
    scopes: readonly string[],
    refresh: (refreshToken: string) => Promise<TokenSet>,
    options: { forceRefreshWithinMs?: number } = {},
  ): Promise<UserTokenLookup> {
    const id = userTokensId(user, provider, scopes);
    const margin = Math.max(this.#options.refreshMarginMs, options.forceRefreshWithinMs ?? 0);
    return this.#flights.run(`${tenant}/${id}`, async () => {
      const stored = await this.tokens.get(tenant, id);
      if (!stored) return { status: 'missing' };
      if (stored.value.needsConsent) return { status: 'needs-consent' };
      if (this.#fresh(stored.value, margin)) return { status: 'ok', token: this.#open(tenant, id, stored.value), refreshed: false };
      return this.#refresh(tenant, id, refresh, margin);
    });
  }

  /** Whether a token is stored and expires within `withinMs` (for proactive refresh). */
  async expiresWithin(tenant: TenantId, provider: string, user: UserRef, scopes: readonly string[], withinMs: number): Promise<boolean> {
    const stored = await this.tokens.get(tenant, userTokensId(user, provider, scopes));
    const expiresAt = stored?.value.expiresAt;
    return !!stored && !stored.value.needsConsent && expiresAt !== undefined && expiresAt - this.#options.now() < withinMs;
  }

  /** Removes every stored token of a user for a provider; returns them (opened) so they can be revoked upstream. */
  async remove(tenant: TenantId, provider: string, user: UserRef): Promise<SealedUserTokens[]> {
    const removed: SealedUserTokens[] = [];
    const page = await this.tokens.list(tenant, { prefix: userTokensPrefix(user, provider), limit: 1000 });
    for (const item of page.items) {
      try {
        removed.push(this.#openSealed(tenant, item.id, item.value.sealed));
      } catch {
        // Unopenable (tampered) tokens are deleted all the same; there is nothing to revoke.
      }
      await this.tokens.delete(tenant, item.id);
    }
    return removed;
  }

  /** Removes every stored token of a provider, of every user of the tenant (the provider is going away). */
  async removeForProvider(tenant: TenantId, provider: string): Promise<SealedUserTokens[]> {
    const removed: SealedUserTokens[] = [];
    let cursor: string | undefined;
    do {
      const page = await this.tokens.list(tenant, { limit: 1000, ...(cursor ? { cursor } : {}) });
      for (const item of page.items.filter((i) => i.value.provider === provider)) {
        try {
          removed.push(this.#openSealed(tenant, item.id, item.value.sealed));
        } catch {
          // Unopenable tokens are deleted all the same.
        }
        await this.tokens.delete(tenant, item.id);
      }
      cursor = page.nextCursor;
    } while (cursor);
    return removed;
  }

  async #refresh(tenant: TenantId, id: string, refresh: (refreshToken: string) => Promise<TokenSet>, margin: number): Promise<UserTokenLookup> {
    const deadline = this.#options.now() + this.#options.waitMs;
    while (this.#options.now() < deadline) {
      const stored = await this.tokens.get(tenant, id);
      if (!stored) return { status: 'missing' };
      if (stored.value.needsConsent) return { status: 'needs-consent' };
      if (this.#fresh(stored.value, margin)) return { status: 'ok', token: this.#open(tenant, id, stored.value), refreshed: false };

      const lease = await this.#acquire(tenant, id);
      if (!lease) {
        await this.#options.sleep(this.#options.pollMs);
        continue;
      }
      // Read again under the lease: a replica may have finished a refresh since our first read,
      // and refreshing with the refresh token it just rotated away would cost the user a consent.
      const current = await this.tokens.get(tenant, id);
      if (!current || current.value.needsConsent || this.#fresh(current.value, margin)) {
        await this.#release(tenant, id, lease);
        continue;
      }
      return this.#refreshHolding(tenant, id, current, lease, refresh);
    }
    throw new MandateError('unavailable', 'another vault replica is refreshing this token and has not finished; try again');
  }

  /** Takes the lease: creates it, or takes over one whose holder let it expire. */
  async #acquire(tenant: TenantId, id: string): Promise<StoredDocument<RefreshLeaseDocument> | undefined> {
    const now = this.#options.now();
    const mine: RefreshLeaseDocument = { owner: this.#options.instanceId, expiresAt: now + this.#options.leaseTtlMs };
    try {
      return await this.leases.create(tenant, id, mine);
    } catch (error) {
      if (!(error instanceof MandateError && error.code === 'conflict')) throw error;
    }
    const held = await this.leases.get(tenant, id);
    if (!held || held.value.expiresAt > now) return undefined;
    // Abandoned: take it over, keeping whatever tokens its holder already got.
    try {
      return await this.leases.update(tenant, id, { ...held.value, ...mine }, held.revision);
    } catch (error) {
      if (error instanceof MandateError && error.code === 'conflict') return undefined;
      throw error;
    }
  }

  async #refreshHolding(
    tenant: TenantId,
    id: string,
    stored: StoredDocument<UserTokensDocument>,
    lease: StoredDocument<RefreshLeaseDocument>,
    refresh: (refreshToken: string) => Promise<TokenSet>,
  ): Promise<UserTokenLookup> {
    let token: TokenSet;
    let leaseNow = lease;
    if (lease.value.pendingSealed) {
      token = { ...this.#openSealed(tenant, `${id}/pending`, lease.value.pendingSealed), tokenType: stored.value.tokenType, ...(lease.value.pendingExpiresAt ? { expiresAt: lease.value.pendingExpiresAt } : {}) };
    } else {
      const current = this.#openSealed(tenant, id, stored.value.sealed);
      if (!current.refreshToken) {
        await this.#release(tenant, id, lease);
        return { status: 'needs-consent' };
      }
      try {
        token = await refresh(current.refreshToken);
      } catch (error) {
        if (error instanceof InvalidGrantError) {
          await this.tokens.update(tenant, id, { ...stored.value, needsConsent: true, updatedAt: this.#options.now() }, stored.revision).catch(() => undefined);
          await this.#release(tenant, id, lease);
          return { status: 'needs-consent' };
        }
        await this.#release(tenant, id, lease);
        throw error;
      }
      // A provider that does not rotate keeps the old refresh token valid.
      token = { ...token, refreshToken: token.refreshToken ?? current.refreshToken };
      const pending: RefreshLeaseDocument = {
        ...lease.value,
        pendingSealed: this.cipher.sealToString(JSON.stringify(sealedOf(token)), recordId(tenant, `${id}/pending`)),
        ...(token.expiresAt ? { pendingExpiresAt: token.expiresAt } : {}),
      };
      leaseNow = await this.leases.update(tenant, id, pending, lease.revision);
      await this.#options.afterUpstreamRefresh?.();
    }
    const document = this.#document(tenant, id, stored.value.provider, stored.value.user, stored.value.scopes, token);
    await this.tokens.update(tenant, id, document, stored.revision);
    await this.#release(tenant, id, leaseNow);
    return { status: 'ok', token, refreshed: true };
  }

  async #release(tenant: TenantId, id: string, lease: StoredDocument<RefreshLeaseDocument>): Promise<void> {
    await this.leases.delete(tenant, id, { expectedRevision: lease.revision }).catch(() => undefined);
  }

  #fresh(document: UserTokensDocument, margin = this.#options.refreshMarginMs): boolean {
    return document.expiresAt === undefined || document.expiresAt - margin > this.#options.now();
  }

  #document(tenant: TenantId, id: string, provider: string, user: UserRef, scopes: readonly string[], token: TokenSet): UserTokensDocument {
    return {
      user,
      provider,
      scopes: [...new Set(scopes)].sort(),
      sealed: this.cipher.sealToString(JSON.stringify(sealedOf(token)), recordId(tenant, id)),
      tokenType: token.tokenType,
      ...(token.expiresAt ? { expiresAt: token.expiresAt } : {}),
      updatedAt: this.#options.now(),
    };
  }

  #open(tenant: TenantId, id: string, document: UserTokensDocument): TokenSet {
    const sealed = this.#openSealed(tenant, id, document.sealed);
    return { accessToken: sealed.accessToken, tokenType: document.tokenType, ...(document.expiresAt ? { expiresAt: document.expiresAt } : {}), scopes: document.scopes };
  }

  /** Fails closed: tampered, moved or unknown-key ciphertext never yields a token. */
  #openSealed(tenant: TenantId, id: string, sealed: string): SealedUserTokens {
    try {
      return JSON.parse(this.cipher.openString(sealed, recordId(tenant, id)).toString('utf8')) as SealedUserTokens;
    } catch (cause) {
      throw new MandateError('internal', 'stored tokens cannot be opened', { cause });
    }
  }
}

function sealedOf(token: TokenSet): SealedUserTokens {
  return { accessToken: token.accessToken, ...(token.refreshToken ? { refreshToken: token.refreshToken } : {}) };
}

function recordId(tenant: TenantId, id: string): string {
  return `${tenant}/user-tokens/${id}`;
}
