import { randomBytes, randomUUID } from 'node:crypto';
import { GENESIS_HASH, MandateError, type AuditRecord, type TenantId, type TrailEntry } from '@mandate/contracts';
import type { Clock, StoredDocument } from '@mandate/store';
import type { Logger } from '@mandate/telemetry';
import { chainEntry } from './chain.js';
import { MAX_SEQUENCE, type ChainHead, type NewClaim, type TrailRepository } from '../store/trail-repository.js';

export interface AppendOutcome {
  status: 'appended' | 'duplicate';
  sequence: number;
}

export interface TrailAppenderOptions {
  repository: TrailRepository;
  /** Who holds a tenant's writer lease: stable across restarts of one instance (AUDIT_WRITER_ID). */
  writerId: string;
  clock?: Clock;
  /** How long a writer lease lasts; renewed by every batch once half of it is gone. */
  leaseMs?: number;
  /** Most records one batch appends (one round of parallel writes, one head move). */
  maxBatch?: number;
  logger?: Logger;
}

interface Pending {
  record: AuditRecord;
  resolve(outcome: AppendOutcome): void;
  reject(error: unknown): void;
}

const EPOCH = new Date(0).toISOString();

/**
 * Appends audit records to per-tenant hash chains. Each tenant has one writer here, which appends
 * whatever queued up while its previous batch was being written, so throughput comes from batching
 * rather than from racing writers.
 */
export class TrailAppender {
  readonly #writers = new Map<TenantId, TenantWriter>();
  readonly #options: Required<Omit<TrailAppenderOptions, 'logger'>> & { logger?: Logger | undefined };

  constructor(options: TrailAppenderOptions) {
    this.#options = { clock: Date.now, leaseMs: 30_000, maxBatch: 2_000, ...options };
  }

  /** Resolves once the record is in the chain (or was already): only then may it be acknowledged. */
  append(record: AuditRecord): Promise<AppendOutcome> {
    const tenant = record.tenant;
    let writer = this.#writers.get(tenant);
    if (!writer) {
      writer = new TenantWriter(tenant, this.#options);
      this.#writers.set(tenant, writer);
    }
    return writer.enqueue(record);
  }

  /** Forgets every loaded chain head: the next batch of each tenant reads, repairs and re-indexes first. */
  resync(): void {
    for (const writer of this.#writers.values()) writer.forgetHead();
  }

  /** Finishes what is queued and gives up every lease, so another instance can take over at once. */
  async close(): Promise<void> {
    await Promise.all([...this.#writers.values()].map((writer) => writer.close()));
  }
}

/**
 * One tenant's chain as this instance writes it.
 *
 *   unloaded ──ready()──▶ leased ──appendBatch()──▶ leased
 *      ▲                    │ (lease held by another live writer: `unavailable`, retried later)
 *      └─── any failure ────┘ (forget the head; the next batch reads it again and repairs)
 *
 * Crash safety, in the order of writes of one batch:
 *   1. each record claims its sequence (`r.<id>`, in the trail collection; see #appendBatch);
 *   2. entries n+1..n+k are created (create fails if a sequence is taken, so nothing is overwritten);
 *   3. the head moves to n+k by compare-and-swap; only then are the records acknowledged.
 * Claims and entries share one collection (one stream), so a crash of the process or of the store
 * keeps a prefix of those writes: never an entry without its claim. A crash after 2 leaves entries
 * beyond the head: `ready()` adopts them before anything else is appended, and their redelivered
 * records find their claims. A claim whose entry was lost is stale and is claimed past. A head
 * that a store crash left ahead of its entries is moved back to the last entry that exists.
 */
class TenantWriter {
  #queue: Pending[] = [];
  #draining: Promise<void> | undefined;
  #head: StoredDocument<ChainHead> | undefined;
  #closed = false;

  constructor(
    private readonly tenant: TenantId,
    private readonly options: Required<Omit<TrailAppenderOptions, 'logger'>> & { logger?: Logger | undefined },
  ) {}

  forgetHead(): void {
    this.#head = undefined;
  }

  enqueue(record: AuditRecord): Promise<AppendOutcome> {
    if (this.#closed) return Promise.reject(new MandateError('unavailable', 'the audit service is shutting down'));
    return new Promise((resolve, reject) => {
      this.#queue.push({ record, resolve, reject });
      this.#draining ??= this.#drain().finally(() => (this.#draining = undefined));
    });
  }

  async close(): Promise<void> {
    this.#closed = true;
    await this.#draining;
    const head = this.#head;
    if (!head || head.value.writer !== this.options.writerId) return;
    try {
      await this.options.repository.moveChainHead(this.tenant, { ...head.value, leaseUntil: 0 }, head.revision);
    } catch (err) {
      this.options.logger?.warn({ err, tenant: this.tenant }, 'could not release the chain lease; it expires by itself');
    }
    this.#head = undefined;
  }

  async #drain(): Promise<void> {
    while (this.#queue.length > 0) {
      const batch = this.#queue.splice(0, this.options.maxBatch);
      try {
        const outcomes = await this.#appendBatch(batch);
        batch.forEach((pending, i) => pending.resolve(outcomes[i]!));
      } catch (error) {
        this.#head = undefined;
        for (const pending of batch) pending.reject(error);
      }
    }
  }

  async #appendBatch(batch: Pending[]): Promise<AppendOutcome[]> {
    const records = batch.map((p) => p.record);
    const { repository, clock, writerId, leaseMs } = this.options;
    const head = await this.#ready();
    const outcomes = new Array<AppendOutcome | undefined>(records.length);

    // The same record twice in one batch (a redelivery racing its first delivery): chain it once.
    const firstOf = new Map<string, number>();
    records.forEach((record, i) => {
      if (!firstOf.has(record.id)) firstOf.set(record.id, i);
    });
    const unique = [...firstOf.values()];

    // Step 1, optimistically: every record claims the sequence it gets if none was seen before.
    // A claim that already exists means the record was seen: it is chained (a duplicate) or its
    // claim is stale and it is claimed again. Only then do sequences shift, and every record whose
    // sequence moved claims its final one under the next suffix, still before any entry exists.
    const base = head.value.sequence;
    if (base + unique.length > MAX_SEQUENCE) throw new MandateError('internal', 'the chain is full');
    const optimistic = await repository.createClaims(
      this.tenant,
      unique.map((i, k) => ({ recordId: records[i]!.id, attempt: 0, sequence: base + 1 + k })),
    );
    const fresh: { index: number; claimedAt?: number; nextAttempt: number }[] = [];
    for (const [k, i] of unique.entries()) {
      if (optimistic[k] === 'created') {
        fresh.push({ index: i, claimedAt: base + 1 + k, nextAttempt: 1 });
        continue;
      }
      const lookup = await repository.lookupClaim(this.tenant, records[i]!.id);
      if (lookup.chained) outcomes[i] = { status: 'duplicate', sequence: lookup.sequence };
      else fresh.push({ index: i, nextAttempt: lookup.attempt });
    }

    const now = clock();
    const appendedAt = new Date(Math.max(now, Date.parse(head.value.appendedAt))).toISOString();
    let previous = { sequence: head.value.sequence, hash: head.value.hash };
    const entries: TrailEntry[] = [];
    const reclaims: NewClaim[] = [];
    for (const { index, claimedAt, nextAttempt } of fresh) {
      const entry = chainEntry(previous, records[index]!, appendedAt);
      entries.push(entry);
      if (claimedAt !== entry.sequence) reclaims.push({ recordId: entry.record.id, attempt: nextAttempt, sequence: entry.sequence });
      outcomes[index] = { status: 'appended', sequence: entry.sequence };
      previous = entry;
    }

    if (entries.length > 0) {
      // Step 1 finished before step 2 starts: an entry must never exist without its claim.
      if ((await repository.createClaims(this.tenant, reclaims)).includes('conflict')) {
        throw new MandateError('conflict', 'a record was claimed by someone else meanwhile');
      }
      await repository.createEntries(this.tenant, entries);
      this.#head = await repository.moveChainHead(
        this.tenant,
        { sequence: previous.sequence, hash: previous.hash, appendedAt, writer: writerId, leaseUntil: now + leaseMs },
        head.revision,
      );
    }
    records.forEach((record, i) => {
      if (outcomes[i]) return;
      outcomes[i] = { status: 'duplicate', sequence: outcomes[firstOf.get(record.id)!]!.sequence };
    });
    return outcomes as AppendOutcome[];
  }

  /** The head, read if need be, with the lease held by us and lagging entries adopted. */
  async #ready(): Promise<StoredDocument<ChainHead>> {
    const { repository, clock, writerId, leaseMs } = this.options;
    let head = this.#head;
    const loaded = head === undefined;
    if (!head) head = await this.#load();
    const now = clock();
    if (head.value.writer !== writerId && head.value.leaseUntil > now) {
      throw new MandateError('unavailable', 'another audit instance is appending to this tenant; retry later');
    }
    if (head.value.writer !== writerId || head.value.leaseUntil - now < leaseMs / 2) {
      head = await repository.moveChainHead(this.tenant, { ...head.value, writer: writerId, leaseUntil: now + leaseMs }, head.revision);
    }
    // Only once we hold the lease is nobody else writing, so only then is the repair safe.
    if (loaded) head = await this.#repair(head);
    this.#head = head;
    return head;
  }

  async #load(): Promise<StoredDocument<ChainHead>> {
    const { repository, writerId, clock, leaseMs } = this.options;
    const existing = await repository.chainHead(this.tenant);
    if (existing) return existing;
    try {
      return await repository.createChainHead(this.tenant, { sequence: 0, hash: GENESIS_HASH, appendedAt: EPOCH, writer: writerId, leaseUntil: clock() + leaseMs });
    } catch (error) {
      if (error instanceof MandateError && error.code === 'conflict') {
        const raced = await repository.chainHead(this.tenant);
        if (raced) return raced;
      }
      throw error;
    }
  }

  /** Adopts entries a crashed batch wrote beyond the head; moves back a head that is ahead of its entries. */
  async #repair(head: StoredDocument<ChainHead>): Promise<StoredDocument<ChainHead>> {
    const { repository } = this.options;
    let value = head.value;
    while (value.sequence > 0 && !(await repository.entry(this.tenant, value.sequence))) {
      // Only a store that lost acknowledged writes gets here (or someone deleted the tail).
      const back = value.sequence - 1;
      const last = back > 0 ? await repository.entry(this.tenant, back) : undefined;
      value = last ? { ...value, sequence: last.sequence, hash: last.hash } : { ...value, sequence: 0, hash: GENESIS_HASH };
    }
    if (value.sequence < head.value.sequence) value = await this.#recordMovedBack(head.value.sequence, value);
    for (;;) {
      const next = await repository.entry(this.tenant, value.sequence + 1);
      if (!next) break;
      if (next.previousHash !== value.hash) {
        this.options.logger?.error({ tenant: this.tenant, sequence: next.sequence }, 'an entry beyond the head does not link to it; verify will report it');
      }
      value = { ...value, sequence: next.sequence, hash: next.hash, appendedAt: next.appendedAt > value.appendedAt ? next.appendedAt : value.appendedAt };
    }
    if (value === head.value) return head;
    this.options.logger?.info({ tenant: this.tenant, from: head.value.sequence, to: value.sequence }, 'adopted entries written before a crash');
    return repository.moveChainHead(this.tenant, value, head.revision);
  }

  /**
   * Moving a head back must not be quiet: the chain itself gets a record saying which sequences
   * were lost (an auditor sees it; signed digests that covered them no longer verify).
   */
  async #recordMovedBack(lostFrom: number, value: ChainHead): Promise<ChainHead> {
    const { repository, clock } = this.options;
    this.options.logger?.error({ tenant: this.tenant, head: lostFrom, last: value.sequence }, 'the chain head was ahead of its entries (the store lost writes, or they were deleted); recorded in the chain');
    const now = clock();
    const record: AuditRecord = {
      id: randomUUID(),
      tenant: this.tenant,
      service: 'audit',
      action: 'trail-repair',
      outcome: 'failed',
      reason: 'entries_missing',
      occurredAt: new Date(now).toISOString(),
      traceId: randomBytes(16).toString('hex'),
      spanId: randomBytes(8).toString('hex'),
      actor: { admin: `audit-writer:${this.options.writerId}` },
      details: { lastEntry: value.sequence, headWas: lostFrom },
    };
    const entry = chainEntry(value, record, new Date(Math.max(now, Date.parse(value.appendedAt))).toISOString());
    await repository.createClaim(this.tenant, record.id, 0, entry.sequence);
    await repository.createEntry(this.tenant, entry);
    return { ...value, sequence: entry.sequence, hash: entry.hash, appendedAt: entry.appendedAt };
  }
}
