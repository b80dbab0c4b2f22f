import { SingleFlight } from '@mandate/cache';
import { MandateError, type TenantId } from '@mandate/contracts';
import type { EnvelopeCipher } from '@mandate/crypto';
import type { HeldLease, LeaseRecords } from '@mandate/store';
import type { MachineTokenRepository } from '../store/repositories.js';
import type { MachineTokenDocument } from '../store/vault-records.js';
import type { TokenSet } from './oauth-client.js';

export interface MachineTokensOptions {
  /** A cached token is replaced this long before it expires, or after three quarters of its life if that comes later. */
  refreshMarginMs: number;
  /** How long to keep a token whose provider did not say when it expires. */
  unknownLifetimeMs: number;
  /** How long to wait for another replica's fetch before fetching anyway. */
  waitMs: number;
  pollMs?: number;
  /** Between tries to store a fetched token the store refused. */
  storeRetryMs?: number;
  now?: () => number;
  sleep?: (ms: number) => Promise<void>;
}

/**
 * Client-credentials tokens, cached sealed in the store until shortly before expiry (shared by
 * every replica), fetched once however many callers ask at the same time: one caller per
 * process (single flight), one process per deployment (a lease in the store); the others wait
 * for the cache to fill.
 */
export class MachineTokens {
  readonly #flights = new SingleFlight<{ token: TokenSet; cached: boolean }>();
  /** Opened tokens of this process, so a hit costs neither a store read nor a decryption. */
  readonly #memory = new Map<string, { token: TokenSet; staleAt: number }>();
  readonly #now: () => number;
  readonly #sleep: (ms: number) => Promise<void>;

  constructor(
    private readonly cache: MachineTokenRepository,
    private readonly leases: LeaseRecords,
    private readonly cipher: EnvelopeCipher,
    private readonly options: MachineTokensOptions,
  ) {
    this.#now = options.now ?? Date.now;
    this.#sleep = options.sleep ?? ((ms) => new Promise((resolve) => setTimeout(resolve, ms)));
  }

  get(tenant: TenantId, provider: string, scopes: readonly string[], fetch: () => Promise<TokenSet>): Promise<{ token: TokenSet; cached: boolean }> {
    const id = this.cache.idOf(provider, scopes);
    const remembered = this.#memory.get(`${tenant}/${id}`);
    if (remembered && remembered.staleAt > this.#now()) return Promise.resolve({ token: remembered.token, cached: true });
    return this.#flights.run(`${tenant}/${id}`, async () => {
      const deadline = this.#now() + this.options.waitMs;
      for (;;) {
        const cached = await this.#cached(tenant, id);
        if (cached) return { token: cached, cached: true };
        const lease = await this.leases.acquire(tenant, `m.${id}`);
        // Past the deadline, a stuck lease must not stop every agent: fetch without it.
        if (!lease && this.#now() < deadline) {
          await this.#sleep(this.options.pollMs ?? 25);
          continue;
        }
        let storing = false;
        try {
          const raced = await this.#cached(tenant, id);
          if (raced) return { token: raced, cached: true };
          const fetched = await this.#fetch(tenant, id, scopes, fetch);
          try {
            await this.cache.put(tenant, id, fetched.document, fetched.ttlMs);
          } catch {
            // The store is failing over (a node down, a leader being elected). The token is good:
            // serve it now, and keep the lease while storing it, so the other replicas wait for
            // this token instead of fetching their own.
            storing = true;
            void this.#storeUntilDeadline(tenant, id, fetched, lease);
          }
          return { token: fetched.token, cached: false };
        } finally {
          if (lease && !storing) await this.leases.release(lease).catch(() => undefined);
        }
      }
    });
  }

  /** Tries the store again until `waitMs` has passed (the lease outlives it: VAULT_LEASE_TTL_SECONDS > VAULT_REFRESH_WAIT_MS by default), then gives the lease back. */
  async #storeUntilDeadline(tenant: TenantId, id: string, fetched: FetchedToken, lease: HeldLease<never> | undefined): Promise<void> {
    const deadline = this.#now() + this.options.waitMs;
    try {
      for (;;) {
        await this.#sleep(this.options.storeRetryMs ?? 250);
        try {
          await this.cache.put(tenant, id, fetched.document, fetched.ttlMs);
          return;
        } catch {
          if (this.#now() >= deadline) return;
        }
      }
    } finally {
      if (lease) await this.leases.release(lease).catch(() => undefined);
    }
  }

  async #cached(tenant: TenantId, id: string): Promise<TokenSet | undefined> {
    const stored = await this.cache.get(tenant, id);
    const staleAt = stored && (stored.value.staleAt ?? stored.value.expiresAt - this.options.refreshMarginMs);
    if (!stored || staleAt! <= this.#now()) return undefined;
    const token = this.#open(tenant, id, stored.value);
    this.#memory.set(`${tenant}/${id}`, { token, staleAt: staleAt! });
    return token;
  }

  /** Fetches a token upstream and remembers it in this process at once, whatever the store does next. */
  async #fetch(tenant: TenantId, id: string, scopes: readonly string[], fetch: () => Promise<TokenSet>): Promise<FetchedToken> {
    const token = await fetch();
    const obtainedAt = this.#now();
    const expiresAt = token.expiresAt ?? obtainedAt + this.options.unknownLifetimeMs;
    const staleAt = staleAtOf(obtainedAt, expiresAt, this.options.refreshMarginMs);
    const document: MachineTokenDocument = {
      sealed: this.cipher.sealToString(token.accessToken, recordId(tenant, id)),
      tokenType: token.tokenType,
      scopes: token.scopes ?? [...scopes],
      expiresAt,
      staleAt,
    };
    this.#memory.set(`${tenant}/${id}`, { token: { ...token, expiresAt }, staleAt });
    return { token: { ...token, expiresAt }, document, ttlMs: Math.max(1_000, expiresAt - obtainedAt) };
  }

  /** Drops this process's opened tokens of a provider. */
  forgetInMemory(tenant: TenantId, provider: string): void {
    const prefix = `${tenant}/${this.cache.prefixOf(provider)}`;
    for (const key of this.#memory.keys()) if (key.startsWith(prefix)) this.#memory.delete(key);
  }

  /** Drops every cached token of a provider (deleted, or its secret rotated). */
  async forget(tenant: TenantId, provider: string): Promise<void> {
    this.forgetInMemory(tenant, provider);
    await this.cache.removeForProvider(tenant, provider);
  }

  #open(tenant: TenantId, id: string, document: MachineTokenDocument): TokenSet {
    try {
      return {
        accessToken: this.cipher.openString(document.sealed, recordId(tenant, id)).toString('utf8'),
        tokenType: document.tokenType,
        expiresAt: document.expiresAt,
        scopes: document.scopes,
      };
    } catch (cause) {
      throw new MandateError('internal', 'a cached token cannot be opened', { cause });
    }
  }
}

/**
 * When a token fetched at `obtainedAt` is replaced: `marginMs` before it expires, but never
 * before three quarters of its life, so a token that lives shorter than the margin (a 60 s token
 * with the default 60 s margin) is reused for most of its life instead of being stale on arrival.
 */
export function staleAtOf(obtainedAt: number, expiresAt: number, marginMs: number): number {
  const lifetime = Math.max(0, expiresAt - obtainedAt);
  return expiresAt - Math.min(marginMs, lifetime / 4);
}

interface FetchedToken {
  token: TokenSet;
  document: MachineTokenDocument;
  ttlMs: number;
}

function recordId(tenant: TenantId, id: string): string {
  return `${tenant}/machine-tokens/${id}`;
}
