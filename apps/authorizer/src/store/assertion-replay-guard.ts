import { createHash } from 'node:crypto';
import { MandateError, type TenantId } from '@mandate/contracts';
import type { DocumentCollection, DocumentStore } from '@mandate/store';
import type { ReplayGuard } from '../domain/workload-authentication.js';

export const ASSERTION_IDS_COLLECTION = 'assertion-ids';

/**
 * Seen client-assertion ids, each kept until its assertion expires. `create` is atomic in both
 * store adapters, so two replicas racing on the same `jti` cannot both accept it.
 */
export class StoreReplayGuard implements ReplayGuard {
  private constructor(
    private readonly collection: DocumentCollection<{ seenAt: string }>,
    private readonly now: () => number,
  ) {}

  static async open(store: DocumentStore, now: () => number = Date.now): Promise<StoreReplayGuard> {
    return new StoreReplayGuard(await store.collection(ASSERTION_IDS_COLLECTION), now);
  }

  async firstUse(tenant: TenantId, workload: string, jti: string, expiresAtSeconds: number): Promise<boolean> {
    // Hashed: a jti is caller-chosen text and must not shape a store key.
    const id = createHash('sha256').update(`${workload}\n${jti}`).digest('base64url');
    const ttlMs = Math.max(1_000, expiresAtSeconds * 1000 - this.now());
    try {
      await this.collection.create(tenant, id, { seenAt: new Date(this.now()).toISOString() }, { ttlMs });
      return true;
    } catch (error) {
      if (error instanceof MandateError && error.code === 'conflict') return false;
      throw error;
    }
  }

  sweep(): Promise<number> {
    return this.collection.sweepExpired();
  }
}
