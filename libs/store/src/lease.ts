import { MandateError, type TenantId } from '@mandate/contracts';
import type { Clock, DocumentCollection, StoredDocument } from './port.js';

/** Who holds a lease, and until when (epoch ms). */
export interface LeaseTerms {
  readonly holder: string;
  readonly until: number;
}

/*
 * A lease: one holder at a time, for a while, so that replicas take turns at what only one may
 * do at once (refresh a token, fetch one, attempt a run, append to a chain).
 *
 *   free ──acquire(h)──▶ held by h ──renew(h)──▶ held by h, later
 *    ▲                      │  │
 *    └──────release(h)──────┘  └──until passes──▶ expired ──acquire(k): taken over──▶ held by k
 *
 * Transitions are pure: they return the next terms, and the caller writes them with the store's
 * compare-and-swap, so of two replicas moving one lease, one wins and the other reads again.
 */
export class Lease {
  constructor(readonly terms: LeaseTerms | undefined) {}

  state(now: number): 'free' | 'held' | 'expired' {
    if (!this.terms) return 'free';
    return this.terms.until > now ? 'held' : 'expired';
  }

  heldBy(holder: string, now: number): boolean {
    return this.state(now) === 'held' && this.terms!.holder === holder;
  }

  /** What is left of it, for `holder` (0 when another holds it or it has run out). */
  remainingMs(holder: string, now: number): number {
    return this.heldBy(holder, now) ? this.terms!.until - now : 0;
  }

  /** Free, expired, or already ours: ours until `now + ttlMs`. Another live holder: `conflict`. */
  acquire(holder: string, now: number, ttlMs: number): LeaseTerms {
    if (this.state(now) === 'held' && this.terms!.holder !== holder) {
      throw new MandateError('conflict', 'the lease is held by another holder', { details: { until: new Date(this.terms!.until).toISOString() } });
    }
    return { holder, until: now + ttlMs };
  }

  /** Only the live holder renews; a holder whose lease ran out must acquire it again. */
  renew(holder: string, now: number, ttlMs: number): LeaseTerms {
    if (!this.heldBy(holder, now)) throw new MandateError('conflict', 'the lease is no longer held by this holder');
    return { holder, until: now + ttlMs };
  }

  /** Only its holder (or the holder it lapsed from) gives it back. */
  release(holder: string): undefined {
    if (this.terms && this.terms.holder !== holder) throw new MandateError('conflict', 'the lease is held by another holder');
    return undefined;
  }
}

/** A lease kept as its own record, with what its holder wants its successor to find (`payload`). */
export interface LeaseDocument<P> {
  holder: string;
  until: number;
  payload?: P;
}

export interface HeldLease<P> {
  readonly tenant: TenantId;
  readonly id: string;
  readonly document: StoredDocument<LeaseDocument<P>>;
}

export interface LeaseRecordOptions {
  holder: string;
  ttlMs: number;
  /** Written with a store TTL this long, so leases of dead holders vanish; absent: kept until released or taken over (their payload matters). */
  recordTtlMs?: number;
  now?: Clock;
}

/** Leases as records of a collection: acquire (or take over an expired one), renew, record a payload, release. */
export class LeaseRecords<P = never> {
  readonly #now: Clock;

  constructor(
    private readonly leases: DocumentCollection<LeaseDocument<P>>,
    private readonly options: LeaseRecordOptions,
  ) {
    this.#now = options.now ?? Date.now;
  }

  /**
   * The lease, now ours (also when it was ours already: a holder is one process, which asks for
   * one id once at a time); undefined while another holder's is live. A taken-over lease keeps its payload.
   */
  async acquire(tenant: TenantId, id: string): Promise<HeldLease<P> | undefined> {
    const { holder, ttlMs } = this.options;
    const fresh = new Lease(undefined).acquire(holder, this.#now(), ttlMs);
    try {
      return { tenant, id, document: await this.leases.create(tenant, id, { ...fresh }, this.#writeOptions()) };
    } catch (error) {
      if (!isCode(error, 'conflict')) throw error;
    }
    const current = await this.leases.get(tenant, id);
    if (!current) return undefined;
    try {
      const terms = new Lease(current.value).acquire(holder, this.#now(), ttlMs);
      return { tenant, id, document: await this.leases.update(tenant, id, { ...current.value, ...terms }, current.revision, this.#writeOptions()) };
    } catch (error) {
      if (isCode(error, 'conflict') || isCode(error, 'not_found')) return undefined;
      throw error;
    }
  }

  /** Longer, for the live holder; `conflict` once it was lost. */
  async renew(held: HeldLease<P>): Promise<HeldLease<P>> {
    const terms = new Lease(held.document.value).renew(this.options.holder, this.#now(), this.options.ttlMs);
    return this.#write(held, { ...held.document.value, ...terms });
  }

  /** Stores what a successor must find should this holder die before it is done. */
  record(held: HeldLease<P>, payload: P): Promise<HeldLease<P>> {
    return this.#write(held, { ...held.document.value, payload });
  }

  /** Gives it back; a lease already lost (taken over, expired and gone) is left as it is. */
  async release(held: HeldLease<P>): Promise<void> {
    await this.leases.delete(held.tenant, held.id, { expectedRevision: held.document.revision }).catch((error: unknown) => {
      if (!isCode(error, 'conflict') && !isCode(error, 'not_found')) throw error;
    });
  }

  async #write(held: HeldLease<P>, next: LeaseDocument<P>): Promise<HeldLease<P>> {
    return { ...held, document: await this.leases.update(held.tenant, held.id, next, held.document.revision, this.#writeOptions()) };
  }

  #writeOptions(): { ttlMs?: number } {
    return this.options.recordTtlMs === undefined ? {} : { ttlMs: this.options.recordTtlMs };
  }
}

function isCode(error: unknown, code: string): boolean {
  return error instanceof MandateError && error.code === code;
}
