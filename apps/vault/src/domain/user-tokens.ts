import { SingleFlight } from '@mandate/cache';
import { MandateError, type TenantId, type UserRef } from '@mandate/contracts';
import type { EnvelopeCipher } from '@mandate/crypto';
import type { HeldLease, LeaseRecords, StoredDocument } from '@mandate/store';
import type { UserTokenRepository } from '../store/repositories.js';
import type { PendingTokens, SealedUserTokens, UserTokensDocument } from '../store/vault-records.js';
import { InvalidGrantError, type TokenSet } from './oauth-client.js';

export interface UserTokensOptions {
  /** A token is refreshed this long before it expires. */
  refreshMarginMs: number;
  /** How long a caller waits for another replica's refresh before giving up with `unavailable`. */
  waitMs: number;
  pollMs?: number;
  now?: () => number;
  sleep?: (ms: number) => Promise<void>;
}

export type UserTokenLookup =
  | { status: 'ok'; token: TokenSet; refreshed: boolean }
  | { status: 'missing' }
  | { status: 'needs-consent' };

/*
 * Refreshing one user's token, across every vault replica:
 *
 *   stale ──lease acquired──> refreshing ──provider answered──> pending (tokens in the lease)
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
  readonly #options: Required<UserTokensOptions>;

  constructor(
    private readonly tokens: UserTokenRepository,
    private readonly leases: LeaseRecords<PendingTokens>,
    private readonly cipher: EnvelopeCipher,
    options: UserTokensOptions,
  ) {
    this.#options = { pollMs: 50, now: Date.now, sleep: (ms) => new Promise((r) => setTimeout(r, ms)), ...options };
  }

  /** Stores (or replaces) a user's tokens for a provider and scope set, e.g. after consent. */
  async put(tenant: TenantId, provider: string, user: UserRef, scopes: readonly string[], token: TokenSet): Promise<void> {
    await this.tokens.put(tenant, user, provider, scopes, (id) => this.#document(tenant, id, provider, user, scopes, token));
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
    const margin = Math.max(this.#options.refreshMarginMs, options.forceRefreshWithinMs ?? 0);
    const read = () => this.tokens.get(tenant, user, provider, scopes);
    return this.#flights.run(`${tenant}/${this.tokens.idOf(user, provider, scopes)}`, async () => {
      const stored = await read();
      if (!stored) return { status: 'missing' };
      if (stored.value.needsConsent) return { status: 'needs-consent' };
      if (this.#fresh(stored.value, margin)) return { status: 'ok', token: this.#open(tenant, stored), refreshed: false };
      return this.#refresh(tenant, read, refresh, margin);
    });
  }

  /** Whether a token is stored and expires within `withinMs` (for proactive refresh). */
  async expiresWithin(tenant: TenantId, provider: string, user: UserRef, scopes: readonly string[], withinMs: number): Promise<boolean> {
    const stored = await this.tokens.get(tenant, user, provider, scopes);
    const expiresAt = stored?.value.expiresAt;
    return !!stored && !stored.value.needsConsent && expiresAt !== undefined && expiresAt - this.#options.now() < withinMs;
  }

  /**
   * Removes the stored tokens of a person for a provider (or, without one, of every user of the
   * provider: it is going away); returns them opened, so they can be revoked upstream.
   */
  async remove(tenant: TenantId, provider: string, user?: UserRef): Promise<SealedUserTokens[]> {
    const removed: SealedUserTokens[] = [];
    for await (const item of this.tokens.each(tenant, user ? { user, provider } : undefined)) {
      if (item.value.provider !== provider) continue;
      try {
        removed.push(this.#openSealed(tenant, item.id, item.value.sealed));
      } catch {
        // Unopenable (tampered) tokens are deleted all the same; there is nothing to revoke.
      }
      await this.tokens.delete(tenant, item.id);
    }
    return removed;
  }

  async #refresh(
    tenant: TenantId,
    read: () => Promise<StoredDocument<UserTokensDocument> | undefined>,
    refresh: (refreshToken: string) => Promise<TokenSet>,
    margin: number,
  ): Promise<UserTokenLookup> {
    const deadline = this.#options.now() + this.#options.waitMs;
    while (this.#options.now() < deadline) {
      const stored = await read();
      if (!stored) return { status: 'missing' };
      if (stored.value.needsConsent) return { status: 'needs-consent' };
      if (this.#fresh(stored.value, margin)) return { status: 'ok', token: this.#open(tenant, stored), refreshed: false };

      const lease = await this.leases.acquire(tenant, stored.id);
      if (!lease) {
        await this.#options.sleep(this.#options.pollMs);
        continue;
      }
      // Read again under the lease: a replica may have finished a refresh since our first read,
      // and refreshing with the refresh token it just rotated away would cost the user a consent.
      const current = await read();
      if (!current || current.value.needsConsent || this.#fresh(current.value, margin)) {
        await this.#release(lease);
        continue;
      }
      return this.#refreshHolding(tenant, current, lease, refresh);
    }
    throw new MandateError('unavailable', 'another vault replica is refreshing this token and has not finished; try again');
  }

  async #refreshHolding(
    tenant: TenantId,
    stored: StoredDocument<UserTokensDocument>,
    lease: HeldLease<PendingTokens>,
    refresh: (refreshToken: string) => Promise<TokenSet>,
  ): Promise<UserTokenLookup> {
    const { id } = stored;
    let token: TokenSet;
    let leaseNow = lease;
    const pending = lease.document.value.payload;
    if (pending) {
      token = { ...this.#openSealed(tenant, `${id}/pending`, pending.sealed), tokenType: stored.value.tokenType, ...(pending.expiresAt ? { expiresAt: pending.expiresAt } : {}) };
    } else {
      const current = this.#openSealed(tenant, id, stored.value.sealed);
      if (!current.refreshToken) {
        await this.#release(lease);
        return { status: 'needs-consent' };
      }
      try {
        token = await refresh(current.refreshToken);
      } catch (error) {
        if (error instanceof InvalidGrantError) {
          await this.tokens.update(tenant, stored, { ...stored.value, needsConsent: true, updatedAt: this.#options.now() }).catch(() => undefined);
          await this.#release(lease);
          return { status: 'needs-consent' };
        }
        await this.#release(lease);
        throw error;
      }
      // A provider that does not rotate keeps the old refresh token valid.
      token = { ...token, refreshToken: token.refreshToken ?? current.refreshToken };
      leaseNow = await this.leases.record(lease, {
        sealed: this.cipher.sealToString(JSON.stringify(sealedOf(token)), recordId(tenant, `${id}/pending`)),
        ...(token.expiresAt ? { expiresAt: token.expiresAt } : {}),
      });
    }
    const document = this.#document(tenant, id, stored.value.provider, stored.value.user, stored.value.scopes, token);
    await this.tokens.update(tenant, stored, document);
    await this.#release(leaseNow);
    return { status: 'ok', token, refreshed: true };
  }

  async #release(lease: HeldLease<PendingTokens>): Promise<void> {
    await this.leases.release(lease).catch(() => undefined);
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

  #open(tenant: TenantId, { id, value: document }: StoredDocument<UserTokensDocument>): TokenSet {
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
