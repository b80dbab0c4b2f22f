import { randomBytes, randomUUID } from 'node:crypto';
import { auditServiceAudit, GENESIS_HASH, MandateError, type AuditActionOf, type AuditRecord, type TenantId, type TrailEntry } from '@mandate/contracts';
import { Lease, type Clock, type StoredDocument } from '@mandate/store';
import type { Logger } from '@mandate/telemetry';
import { chainEntry, chainLink } from './chain.js';
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
  /**
   * Entries at the end of a chain that are claimed again whenever its head is loaded (see
   * `#repair`): at least the records that can be delivered and not acknowledged at once
   * (AUDIT_MAX_ACK_PENDING), because those are the ones a crash can bring back.
   */
  reclaimTail?: number;
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
  #closed = false;

  constructor(options: TrailAppenderOptions) {
    this.#options = { clock: Date.now, leaseMs: 30_000, maxBatch: 2_000, reclaimTail: 10_000, ...options };
  }

  /** Resolves once the record is in the chain (or was already): only then may it be acknowledged. */
  append(record: AuditRecord): Promise<AppendOutcome> {
    // A writer made after close would take a lease nobody gives back.
    if (this.#closed) return Promise.reject(new MandateError('unavailable', 'the audit service is shutting down'));
    const tenant = record.tenant;
    const writer = this.#writers.get(tenant) ?? new TenantWriter(tenant, this.#options);
    this.#writers.set(tenant, writer);
    return writer.enqueue(record);
  }

  /** Forgets every loaded chain head: the next batch of each tenant reads, repairs and re-indexes first. */
  resync(): void {
    for (const writer of this.#writers.values()) writer.forgetHead();
  }

  /** Finishes what is queued and gives up every lease, so another instance can take over at once. */
  async close(): Promise<void> {
    this.#closed = true;
    await Promise.all([...this.#writers.values()].map((writer) => writer.close()));
  }
}

/** Where the chain ends once every prepared batch is committed. */
type ChainTip = Pick<ChainHead, 'sequence' | 'hash' | 'appendedAt'>;

/** A batch whose records are claimed and whose entries are computed, waiting for its turn to be written. */
interface PreparedBatch {
  epoch: number;
  batch: Pending[];
  outcomes: AppendOutcome[];
  entries: TrailEntry[];
  /** Each entry's stored size in bytes. */
  sizes: number[];
  /** The head once the entries are written; its lease is stamped when the commit starts. */
  head: ChainHead;
}

/**
 * One tenant's chain as this instance writes it.
 *
 *   unloaded ──ready()──▶ leased ──prepare(), commit()──▶ leased
 *      ▲                    │ (lease held by another live writer: `unavailable`, retried later)
 *      └─── any failure ────┘ (forget the head; the next batch reads it again and repairs)
 *
 * Crash safety, in the order of writes of one batch:
 *   1. each record claims its sequence (`r.<id>`, in the trail collection; see #prepare);
 *   2. entries n+1..n+k are created (create fails if a sequence is taken, so nothing is overwritten);
 *   3. the head moves to n+k by compare-and-swap; only then are the records acknowledged.
 * Claims and entries share one collection (one stream), so a crash of the process or of the store
 * keeps a prefix of those writes: never an entry without its claim. A crash after 2 leaves entries
 * beyond the head: `ready()` adopts them before anything else is appended, and their redelivered
 * records find their claims. A claim whose entry was lost is stale and is claimed past. A head
 * that a store crash left ahead of its entries is moved back to the last entry that exists.
 *
 * Batches are pipelined: while batch N commits (steps 2 and 3), batch N+1 prepares (step 1, and
 * its entries are computed from the tip N leads to). Commits stay strictly one after another.
 * The rules that keep this as safe as one batch at a time:
 *   - a claim of batch N+1 that finds an earlier claim waits for N's commit before it looks the
 *     earlier one up: the record may be in N, whose entry does not exist yet, and would otherwise
 *     read as stale and be chained twice;
 *   - a failed commit (or a resync) bumps the epoch: what was prepared in an older epoch is never
 *     committed (its claims are merely stale), and the head is read and repaired again;
 *   - the lease is renewed by every head move, and otherwise only when nothing is committing (a
 *     move of its own would race the commit's compare-and-swap); a pipelined batch never passes
 *     through ready(), so its commit refuses to write entries once the lease has run low;
 *   - a resync while ready() reads the head voids the batch too (the epoch is taken before).
 */
class TenantWriter {
  #queue: Pending[] = [];
  #draining: Promise<void> | undefined;
  /** The head as this writer last read or moved it: its revision is what the next move compares. */
  #head: StoredDocument<ChainHead> | undefined;
  /** Ahead of #head while a prepared batch is not committed yet. */
  #tip: ChainTip | undefined;
  /** The commit under way, if any; it settles (never rejects) once its records are resolved or rejected. */
  #committing: Promise<void> | undefined;
  /** Bumped whenever prepared work must not be committed any more. */
  #epoch = 0;
  #closed = false;

  constructor(
    private readonly tenant: TenantId,
    private readonly options: Required<Omit<TrailAppenderOptions, 'logger'>> & { logger?: Logger | undefined },
  ) {}

  forgetHead(): void {
    this.#head = undefined;
    this.#tip = undefined;
    this.#epoch += 1;
  }

  enqueue(record: AuditRecord): Promise<AppendOutcome> {
    if (this.#closed) return Promise.reject(new MandateError('unavailable', 'the audit service is shutting down'));
    return new Promise((resolve, reject) => {
      this.#queue.push({ record, resolve, reject });
      this.#drainSoon();
    });
  }

  #drainSoon(): void {
    if (this.#draining) return;
    this.#draining = this.#drain().finally(() => {
      this.#draining = undefined;
      // Something queued after the loop last looked, before it was marked done.
      if (this.#queue.length > 0) this.#drainSoon();
    });
  }

  async close(): Promise<void> {
    this.#closed = true;
    while (this.#draining || this.#committing) {
      await this.#draining;
      await this.#committing;
    }
    const head = this.#head;
    if (!head || head.value.writer !== this.options.writerId) return;
    try {
      await this.options.repository.moveChainHead(this.tenant, { ...head.value, leaseUntil: 0 }, head.revision);
    } catch (err) {
      this.options.logger?.warn({ err, tenant: this.tenant }, 'could not release the chain lease; it expires by itself');
    }
    this.forgetHead();
  }

  /** Prepares batch after batch; each commit starts once the one before it is done. */
  async #drain(): Promise<void> {
    while (this.#queue.length > 0) {
      const batch = this.#queue.splice(0, this.options.maxBatch);
      let prepared: PreparedBatch;
      try {
        prepared = await this.#prepare(batch);
        await this.#committing;
        if (prepared.epoch !== this.#epoch) throw new MandateError('conflict', 'an earlier batch of this chain failed; the records are retried');
      } catch (error) {
        await this.#committing;
        this.forgetHead();
        for (const pending of batch) pending.reject(error);
        continue;
      }
      const commit = this.#commit(prepared).finally(() => {
        if (this.#committing === commit) this.#committing = undefined;
      });
      this.#committing = commit;
    }
  }

  /** Steps 2 and 3 for a prepared batch, then settles its records. */
  async #commit({ epoch, batch, outcomes, entries, sizes, head }: PreparedBatch): Promise<void> {
    const { repository, clock, leaseMs } = this.options;
    try {
      if (entries.length > 0) {
        const current = this.#head!;
        const now = clock();
        // A pipelined batch skips #ready(): make sure the lease still holds before writing entries
        // (the head move that follows is what renews it; a slow commit before could have let it run low).
        if (leaseOf(current.value).remainingMs(this.options.writerId, now) < leaseMs / 4) {
          throw new MandateError('unavailable', 'the chain lease ran low before the entries were written; the records are retried');
        }
        await repository.createEntries(this.tenant, entries, sizes);
        const moved = await repository.moveChainHead(this.tenant, { ...head, leaseUntil: now + leaseMs }, current.revision);
        if (epoch === this.#epoch) this.#head = moved;
      }
    } catch (error) {
      if (epoch === this.#epoch) this.forgetHead();
      for (const pending of batch) pending.reject(error);
      return;
    }
    batch.forEach((pending, i) => pending.resolve(outcomes[i]!));
  }

  /** Step 1 for a batch, and its entries computed from the tip. */
  async #prepare(batch: Pending[]): Promise<PreparedBatch> {
    const records = batch.map((p) => p.record);
    const { repository, clock, writerId, leaseMs } = this.options;
    let epoch = this.#epoch;
    if (!this.#committing || !this.#head) {
      await this.#committing;
      epoch = this.#epoch;
      await this.#ready(epoch);
    }
    const tip = this.#tip;
    // A resync between #ready() and here: what it read may be stale.
    if (epoch !== this.#epoch || !tip) throw new MandateError('conflict', 'the chain was resynchronised meanwhile; the records are retried');
    const outcomes = new Array<AppendOutcome | undefined>(records.length);

    // The same record twice in one batch (a redelivery racing its first delivery): chain it once.
    const firstOf = new Map<string, number>();
    for (const [i, record] of records.entries()) if (!firstOf.has(record.id)) firstOf.set(record.id, i);
    const unique = [...firstOf.values()];

    // Step 1, optimistically: every record claims the sequence it gets if none was seen before.
    // A claim that already exists means the record was seen: it is chained (a duplicate) or its
    // claim is stale and it is claimed again. Only then do sequences shift, and every record whose
    // sequence moved claims its final one under the next suffix, still before any entry exists.
    const base = tip.sequence;
    if (base + unique.length > MAX_SEQUENCE) throw new MandateError('internal', 'the chain is full');
    const optimistic = await repository.createClaims(
      this.tenant,
      unique.map((i, k) => ({ recordId: records[i]!.id, attempt: 0, sequence: base + 1 + k })),
    );
    if (optimistic.includes('conflict')) {
      // The earlier claim may be from the batch now committing: look it up once its entries exist.
      await this.#committing;
      if (epoch !== this.#epoch) throw new MandateError('conflict', 'an earlier batch of this chain failed; the records are retried');
    }
    const fresh: { index: number; claimedAt?: number; nextAttempt: number }[] = [];
    for (const [k, i] of unique.entries()) {
      if (optimistic[k] === 'created') {
        fresh.push({ index: i, claimedAt: base + 1 + k, nextAttempt: 1 });
        continue;
      }
      const lookup = await repository.lookupClaim(this.tenant, records[i]!.id, base);
      if (lookup.chained) outcomes[i] = { status: 'duplicate', sequence: lookup.sequence };
      else fresh.push({ index: i, nextAttempt: lookup.attempt });
    }

    const now = clock();
    const appendedAt = new Date(Math.max(now, Date.parse(tip.appendedAt))).toISOString();
    let previous = { sequence: tip.sequence, hash: tip.hash };
    const entries: TrailEntry[] = [];
    const sizes: number[] = [];
    const reclaims: NewClaim[] = [];
    for (const { index, claimedAt, nextAttempt } of fresh) {
      const { entry, bytes } = chainLink(previous, records[index]!, appendedAt);
      entries.push(entry);
      sizes.push(bytes);
      if (claimedAt !== entry.sequence) reclaims.push({ recordId: entry.record.id, attempt: nextAttempt, sequence: entry.sequence });
      outcomes[index] = { status: 'appended', sequence: entry.sequence };
      previous = entry;
    }
    // Step 1 finishes before step 2 starts: an entry must never exist without its claim.
    if ((await repository.createClaims(this.tenant, reclaims)).includes('conflict')) {
      throw new MandateError('conflict', 'a record was claimed by someone else meanwhile');
    }
    for (const [i, record] of records.entries()) outcomes[i] ??= { status: 'duplicate', sequence: outcomes[firstOf.get(record.id)!]!.sequence };
    if (epoch !== this.#epoch) throw new MandateError('conflict', 'an earlier batch of this chain failed; the records are retried');
    if (entries.length > 0) this.#tip = { sequence: previous.sequence, hash: previous.hash, appendedAt };
    return {
      epoch,
      batch,
      outcomes: outcomes as AppendOutcome[],
      entries,
      sizes,
      head: { sequence: previous.sequence, hash: previous.hash, appendedAt, writer: writerId, leaseUntil: now + leaseMs },
    };
  }

  /**
   * The head, read if need be, with the lease held by us and lagging entries adopted; kept only if
   * no resync (a new epoch) happened while it was being read.
   */
  async #ready(epoch: number): Promise<StoredDocument<ChainHead>> {
    const { repository, clock, writerId, leaseMs } = this.options;
    const loaded = this.#head === undefined;
    let head = this.#head ?? (await this.#load());
    const now = clock();
    const lease = leaseOf(head.value);
    if (lease.state(now) === 'held' && !lease.heldBy(writerId, now)) {
      throw new MandateError('unavailable', 'another audit instance is appending to this tenant; retry later');
    }
    if (lease.remainingMs(writerId, now) < leaseMs / 2) {
      const terms = lease.acquire(writerId, now, leaseMs);
      head = await repository.moveChainHead(this.tenant, { ...head.value, writer: terms.holder, leaseUntil: terms.until }, head.revision);
    }
    // Only once we hold the lease is nobody else writing, so only then is the repair safe.
    if (loaded) head = await this.#repair(head);
    if (epoch !== this.#epoch) throw new MandateError('conflict', 'the chain was resynchronised meanwhile; the records are retried');
    this.#head = head;
    this.#tip = { sequence: head.value.sequence, hash: head.value.hash, appendedAt: head.value.appendedAt };
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
      // Adopting stops at the first entry that does not link: what lies beyond it is no part of this chain.
      if (next.previousHash !== value.hash) {
        this.options.logger?.error({ tenant: this.tenant, sequence: next.sequence }, 'an entry beyond the head does not link to it: not adopted, and nothing can be appended until it is repaired');
        break;
      }
      value = { ...value, sequence: next.sequence, hash: next.hash, appendedAt: next.appendedAt > value.appendedAt ? next.appendedAt : value.appendedAt };
    }
    await this.#reclaimTail(value.sequence);
    if (value === head.value) return head;
    this.options.logger?.info({ tenant: this.tenant, from: head.value.sequence, to: value.sequence }, 'adopted entries written before a crash');
    return repository.moveChainHead(this.tenant, value, head.revision);
  }

  /**
   * Claims live in a collection of their own, with a max age, so an entry can outlast its claim:
   * a bus crash keeps a prefix of each stream, not of both together, and claims age out while the
   * service is down. The records a crash leaves unacknowledged (and so brings back) are the last
   * ones chained: the tail is claimed again before anything else is appended, so they are found.
   *
   * Newest first, a batch's length at a time, stopping at a stretch whose claims were all there:
   * claims are written batch after batch (a batch's own before the next batch's) and what the bus
   * keeps, or the max age leaves, is a contiguous run of those writes, so when the newest batch's
   * claims survived, so did every earlier one still within its retention. A restart without loss
   * costs one stretch; only lost claims make it walk the whole tail.
   */
  async #reclaimTail(last: number): Promise<void> {
    const { repository, reclaimTail, maxBatch } = this.options;
    const oldest = Math.max(1, last - reclaimTail + 1);
    let written = 0;
    for (let end = last; end >= oldest; end -= maxBatch) {
      const stretch = (await repository.entries(this.tenant, Math.max(oldest, end - maxBatch + 1), end)).filter((entry) => entry !== undefined);
      const made = await repository.reclaim(this.tenant, stretch);
      written += made;
      if (made === 0) break;
    }
    if (written > 0) this.options.logger?.info({ tenant: this.tenant, claims: written }, 'claimed the end of the chain again: its claims were gone');
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
      service: auditServiceAudit.service,
      action: 'trail-repair' satisfies AuditActionOf<typeof auditServiceAudit>,
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
    await repository.createEntries(this.tenant, [entry]);
    return { ...value, sequence: entry.sequence, hash: entry.hash, appendedAt: entry.appendedAt };
  }
}

/** The chain's writer lease, kept in the head's own fields (`writer`, `leaseUntil`). */
function leaseOf(head: ChainHead): Lease {
  return new Lease({ holder: head.writer, until: head.leaseUntil });
}
