import { createHash } from 'node:crypto';
import { denialError, MandateError, MAX_CLIENT_ASSERTION_LIFETIME_SECONDS, type TenantId } from '@mandate/contracts';
import type { DocumentCollection, DocumentStore } from '@mandate/store';
import type { ReplayGuard } from '../domain/workload-authentication.js';

export const ASSERTION_IDS_COLLECTION = 'assertion-ids';

/** The most CLOCK_TOLERANCE_SECONDS may be (the authorizer's config refuses more). */
const MAX_CLOCK_TOLERANCE_SECONDS = 60;

/**
 * How long an assertion id can matter: an assertion lives at most its maximum lifetime, accepted
 * up to the clock tolerance before its `iat` and after its `exp`. The collection's max age, so
 * the store drops ids by itself once no assertion carrying them can be valid.
 */
export const ASSERTION_ID_RETENTION_MS = (MAX_CLIENT_ASSERTION_LIFETIME_SECONDS + 2 * MAX_CLOCK_TOLERANCE_SECONDS) * 1000;

/**
 * Seen client-assertion ids, each kept until its assertion expires (its `exp` plus the clock
 * tolerance, as the caller passes it). `create` is atomic in both store adapters, so two replicas
 * racing on the same `jti` cannot both accept it.
 */
export class StoreReplayGuard implements ReplayGuard {
  private constructor(
    private readonly collection: DocumentCollection<{ seenAt: string }>,
    private readonly now: () => number,
  ) {}

  static async open(store: DocumentStore, now: () => number = Date.now): Promise<StoreReplayGuard> {
    return new StoreReplayGuard(await store.collection(ASSERTION_IDS_COLLECTION, { maxAgeMs: ASSERTION_ID_RETENTION_MS }), now);
  }

  async firstUse(tenant: TenantId, workload: string, jti: string, expiresAtSeconds: number): Promise<boolean> {
    // Hashed: a jti is caller-chosen text and must not shape a store key.
    const id = createHash('sha256').update(`${workload}\n${jti}`).digest('base64url');
    const ttlMs = Math.max(1_000, expiresAtSeconds * 1000 - this.now());
    // An assertion still valid after the retention (an `iat` set in the future lets `exp` be far
    // off) would outlive the memory of its id and could be replayed: refused outright.
    if (ttlMs > ASSERTION_ID_RETENTION_MS) throw denialError('assertion_lifetime_too_long');
    try {
      await this.collection.create(tenant, id, { seenAt: new Date(this.now()).toISOString() }, { ttlMs });
      return true;
    } catch (error) {
      if (error instanceof MandateError && error.code === 'conflict') return false;
      throw error;
    }
  }

  /** Only MongoDB may hold expired ids for a while (its TTL monitor runs once a minute); JetStream drops them by the bucket's max age. */
  sweep(): Promise<number> {
    return this.collection.sweepExpired();
  }
}
