import { randomBytes, randomUUID } from 'node:crypto';
import { auditServiceAudit, GENESIS_HASH, MandateError, type AuditActionOf, type AuditRecord, type TenantId, type TrailEntry } from '@mandate/contracts';
import { Lease, type Clock, type StoredDocument } from '@mandate/store';
import type { Logger } from '@mandate/telemetry';
import { chainEntry, chainLink } from './chain.js';
import { RecentRecords } from './recent-records.js';
import { MAX_SEQUENCE, PAGE, type ChainHead, type TrailRepository } from '../store/trail-repository.js';

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
  /** How long a chained record is remembered for deduplication (AUDIT_DEDUP_WINDOW_SECONDS): while it can still come again. */
  dedupWindowMs?: number;
  /**
   * Entries at the end of a chain remembered whenever its head is loaded, however old: at least the
   * records that can be delivered and not acknowledged at once (AUDIT_MAX_ACK_PENDING), because
   * those are the ones a crash brings back, after any downtime.
   */
  loadTail?: number;
  /**
   * The most entries a head load reads back, whatever the window says: a clock that once ran far
   * ahead stamps every later entry with its time (`appendedAt` never goes back), which would make
   * the whole chain since then look recent.
   */
  maxLoad?: number;
  /**
   * How long a record may wait for others to join its batch, while fewer are queued than fill the
   * chain's current page of fragments (0: never waits). Chaining is not on any caller's path (a
   * release waits for JetStream's acknowledgement of the intake, not for the chain), and fewer,
   * larger batches cost less per record and store fewer, larger fragments: a fragment never
   * crosses a page, each one is a key, and keys cost nats-server memory for as long as they exist.
   * At a low rate this is what decides how many records a fragment holds. Default 10 ms here; the
   * service passes AUDIT_CHAIN_LINGER_MS (1 s), and its intake consumer calls `flushQueued()`
   * when nothing more can come (intake-window.ts).
   */
  lingerMs?: number;
  logger?: Logger;
}

interface Pending {
  record: AuditRecord;
  /** `performance.now()` when it was queued. */
  queuedAt: number;
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
  readonly #options: WriterOptions;
  #closed = false;

  constructor(options: TrailAppenderOptions) {
    this.#options = { clock: Date.now, leaseMs: 30_000, maxBatch: 2_000, dedupWindowMs: 120_000, loadTail: 10_000, maxLoad: 2_000_000, lingerMs: 10, ...options };
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

  /** Forgets the records whose window is over, in every chain, appending or not (a quiet tenant's too). */
  forgetExpired(): void {
    for (const writer of this.#writers.values()) writer.forgetExpired();
  }

  /** Every batch waiting for more records goes now: no more can come until some are acknowledged. */
  flushQueued(): void {
    for (const writer of this.#writers.values()) writer.stopLingering();
  }

  /**
   * From now on no batch waits for more records (the service is stopping: what is in hand must be
   * chained and acknowledged quickly, or the intake delivers it again only after an ack wait).
   */
  hurry(): void {
    this.#options.lingerMs = 0;
    for (const writer of this.#writers.values()) writer.stopLingering();
  }

  /** Forgets every loaded chain head: the next batch of each tenant reads, repairs and re-checks its index first. */
  resync(): void {
    for (const writer of this.#writers.values()) writer.forgetHead();
  }

  /** Finishes what is queued and gives up every lease, so another instance can take over at once. */
  async close(): Promise<void> {
    this.#closed = true;
    await Promise.all([...this.#writers.values()].map((writer) => writer.close()));
  }
}

type WriterOptions = Required<Omit<TrailAppenderOptions, 'logger'>> & { logger?: Logger | undefined };

/** Where the chain ends once every prepared batch is committed. */
type ChainTip = Pick<ChainHead, 'sequence' | 'hash' | 'appendedAt'>;

/** A batch whose duplicates are found and whose entries are computed, waiting for its turn to be written. */
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
 * Deduplication: the writer remembers which sequence each recently chained record has
 * (`RecentRecords`, in memory: nothing is written per record). The index describes the chain up to
 * the committed head (`#indexed`) plus the batches prepared since; it is learnt from the chain
 * whenever a head is loaded: read again in full when the chain is not what the index knew (a
 * first load, another writer appended, the bus lost writes), extended by what another writer
 * appended after a point it still agrees with, or kept as it is when the head did not move.
 * A full read covers the dedup window by `appendedAt` and at least the last `loadTail` entries
 * however old: the records a crash leaves unacknowledged, the only ones that come back after
 * the window, are among the last chained.
 *
 * Crash safety, in the order of writes of one batch:
 *   1. entries n+1..n+k are created (create fails if a sequence is taken, so nothing is overwritten);
 *   2. the head moves to n+k by compare-and-swap; only then are the records acknowledged.
 * A crash after 1 leaves entries beyond the head: `ready()` adopts them (and learns them) before
 * anything else is appended, so their redelivered records are found. A head that a store crash
 * left ahead of its entries is moved back to the last entry that exists.
 *
 * Batches are pipelined: while batch N commits, batch N+1 is prepared (its duplicates found in the
 * index, which already holds N's records, and its entries computed from the tip N leads to).
 * Commits stay strictly one after another. The rules that keep this as safe as one batch at a time:
 *   - a record of N+1 found among N's is a duplicate only if N commits: a failed commit (or a
 *     resync) bumps the epoch, what was prepared in an older epoch is never committed nor settled
 *     as appended or duplicate, and the index forgets every batch after the committed head;
 *   - preparing is synchronous from the epoch check on, so a batch of an old epoch never reaches
 *     the index;
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
  /** Recently chained records, by id: the committed chain up to `#indexed`, and prepared batches after it. */
  readonly #recent: RecentRecords;
  /** The committed head the index agrees with; `undefined` until it has been learnt from the chain. */
  #indexed: Pick<ChainHead, 'sequence' | 'hash'> | undefined;
  /** Bumped whenever prepared work must not be committed any more. */
  #epoch = 0;
  /** Ends the wait for a batch to fill, if one is under way. */
  #stopLingering: (() => void) | undefined;
  #closed = false;

  constructor(
    private readonly tenant: TenantId,
    private readonly options: WriterOptions,
  ) {
    this.#recent = new RecentRecords(options.dedupWindowMs);
  }

  forgetExpired(): void {
    this.#recent.expire(this.options.clock(), this.#indexed?.sequence ?? 0);
  }

  forgetHead(): void {
    this.#head = undefined;
    this.#tip = undefined;
    this.#epoch += 1;
    // What was prepared and not committed will never be: its records are not in the chain.
    this.#recent.unlearnAfter(this.#indexed?.sequence ?? 0);
  }

  enqueue(record: AuditRecord): Promise<AppendOutcome> {
    if (this.#closed) return Promise.reject(new MandateError('unavailable', 'the audit service is shutting down'));
    return new Promise((resolve, reject) => {
      this.#queue.push({ record, queuedAt: performance.now(), resolve, reject });
      if (this.#queue.length >= this.#pageRoom()) this.#stopLingering?.();
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
    this.#stopLingering?.();
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
      await this.#linger();
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

  /** Records that would fill the chain's current page from its tip (a whole page before the tip is known). */
  #pageRoom(): number {
    return this.#tip ? PAGE - (this.#tip.sequence % PAGE) : PAGE;
  }

  /** Ends a wait for the batch to fill, if one is under way. */
  stopLingering(): void {
    this.#stopLingering?.();
  }

  /**
   * Waits, while fewer records are queued than fill the current page, until more are, the oldest
   * has waited `lingerMs` or `flushQueued()` says no more can come.
   */
  async #linger(): Promise<void> {
    const { lingerMs } = this.options;
    const waited = performance.now() - this.#queue[0]!.queuedAt;
    if (lingerMs <= 0 || this.#closed || this.#queue.length >= this.#pageRoom() || waited >= lingerMs) return;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => this.#stopLingering?.(), lingerMs - waited);
      this.#stopLingering = () => {
        clearTimeout(timer);
        this.#stopLingering = undefined;
        resolve();
      };
    });
  }

  /** Writes a prepared batch (its entries, then the head) and settles its records. */
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
        if (epoch === this.#epoch) {
          this.#head = moved;
          this.#indexed = { sequence: head.sequence, hash: head.hash };
          // Remembered a window from when it is chained, not from when it was prepared.
          this.#recent.renew(entries[0]!.sequence, clock());
        }
      }
    } catch (error) {
      if (epoch === this.#epoch) this.forgetHead();
      for (const pending of batch) pending.reject(error);
      return;
    }
    batch.forEach((pending, i) => pending.resolve(outcomes[i]!));
  }

  /** A batch's duplicates found and its entries computed from the tip. */
  async #prepare(batch: Pending[]): Promise<PreparedBatch> {
    const records = batch.map((p) => p.record);
    const { clock, writerId, leaseMs } = this.options;
    let epoch = this.#epoch;
    if (!this.#committing || !this.#head) {
      await this.#committing;
      epoch = this.#epoch;
      await this.#ready(epoch);
    }
    const tip = this.#tip;
    // A resync between #ready() and here: what it read may be stale.
    if (epoch !== this.#epoch || !tip) throw new MandateError('conflict', 'the chain was resynchronised meanwhile; the records are retried');
    // From here on nothing awaits: no resync can come between this check and the index learning the batch.
    const now = clock();
    // Only what is committed is forgotten: a record of the batch committing must still be found.
    this.#recent.expire(now, this.#indexed?.sequence ?? 0);
    const outcomes = new Array<AppendOutcome | undefined>(records.length);
    // A record the index holds is chained (or is in the batch now committing, and then is a
    // duplicate only if that commit succeeds: otherwise this batch is voided with it). The same
    // record twice in one batch (a redelivery racing its first delivery) is chained once.
    const fresh: AuditRecord[] = [];
    const inBatch = new Map<string, number>();
    for (const [i, record] of records.entries()) {
      const sequence = this.#recent.sequenceOf(record.id);
      if (sequence !== undefined) outcomes[i] = { status: 'duplicate', sequence };
      else if (!inBatch.has(record.id)) {
        inBatch.set(record.id, i);
        fresh.push(record);
      }
    }
    if (tip.sequence + fresh.length > MAX_SEQUENCE) throw new MandateError('internal', 'the chain is full');

    const appendedAt = new Date(Math.max(now, Date.parse(tip.appendedAt))).toISOString();
    let previous = { sequence: tip.sequence, hash: tip.hash };
    const entries: TrailEntry[] = [];
    const sizes: number[] = [];
    for (const record of fresh) {
      const { entry, bytes } = chainLink(previous, record, appendedAt);
      entries.push(entry);
      sizes.push(bytes);
      outcomes[inBatch.get(record.id)!] = { status: 'appended', sequence: entry.sequence };
      previous = entry;
    }
    for (const [i, record] of records.entries()) outcomes[i] ??= { status: 'duplicate', sequence: outcomes[inBatch.get(record.id)!]!.sequence };
    if (entries.length > 0) {
      this.#recent.learn(entries[0]!.sequence, fresh.map((record) => record.id), now);
      this.#tip = { sequence: previous.sequence, hash: previous.hash, appendedAt };
    }
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
    // A lease that ran out is a head to load again: whatever happened meanwhile (another writer, an
    // outage of JetStream that left the connection up, so no resync), the index must be brought to
    // the chain and its end remembered again, as after a restart.
    if (this.#head && leaseOf(this.#head.value).remainingMs(writerId, clock()) <= 0) this.#head = undefined;
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
    if (loaded) {
      head = await this.#repair(head);
      await this.#learnChain(head.value, epoch);
    }
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
    if (value === head.value) return head;
    this.options.logger?.info({ tenant: this.tenant, from: head.value.sequence, to: value.sequence }, 'adopted entries written before a crash');
    return repository.moveChainHead(this.tenant, value, head.revision);
  }

  /**
   * Brings the index to the loaded head (see the class comment): kept when the head did not move,
   * extended when the chain still holds the head it knew, otherwise read again from the chain's
   * end. Either way the end of the chain (`loadTail` entries) is then remembered a whole window
   * from now: a load follows a restart, a reconnect or a failure, after which what was in flight
   * comes back a few ack waits later, however long ago it was chained. What it read is learnt
   * only if no resync came meanwhile.
   */
  async #learnChain(head: ChainHead, epoch: number): Promise<void> {
    const { repository, loadTail, clock } = this.options;
    const known = this.#indexed;
    let current = known !== undefined && known.sequence === head.sequence && known.hash === head.hash;
    if (!current && known && head.sequence > known.sequence && head.sequence - known.sequence <= loadTail) {
      // From the entry the index ends at (it must still be there, the same), to the head.
      const read = await repository.entries(this.tenant, Math.max(1, known.sequence), head.sequence);
      const agrees = (known.sequence === 0 || read[0]?.hash === known.hash) && read.at(-1)?.hash === head.hash;
      const appended = known.sequence === 0 ? read : read.slice(1);
      if (agrees && appended.every((entry) => entry !== undefined)) {
        if (epoch !== this.#epoch) return;
        this.#recent.unlearnAfter(known.sequence);
        this.#recent.learn(known.sequence + 1, appended.map((entry) => entry!.record.id), clock());
        this.#indexed = { sequence: head.sequence, hash: head.hash };
        current = true;
      }
    }
    const tail = Math.max(1, head.sequence - loadTail + 1);
    // The index may have forgotten part of the tail (its window ran out): read it again then.
    if (current && head.sequence > 0 && (this.#recent.first === 0 || this.#recent.first > tail)) current = false;
    if (!current) await this.#relearnChain(head, epoch);
    if (epoch === this.#epoch) this.#recent.renew(tail, clock());
  }

  /**
   * Reads the chain's end, newest first, a batch's length at a time, until it has covered the dedup
   * window (by `appendedAt`) and at least `loadTail` entries (at most `maxLoad`). Everything read is
   * remembered for a whole window from now.
   */
  async #relearnChain(head: ChainHead, epoch: number): Promise<void> {
    const { repository, loadTail, maxLoad, maxBatch, dedupWindowMs, clock } = this.options;
    const started = performance.now();
    const since = clock() - dedupWindowMs;
    // Only what the index needs of each entry: its position in the chain and its record's id.
    const stretches: { sequence: number; id: string }[][] = [];
    let read = 0;
    let capped = false;
    for (let end = head.sequence; end >= 1; end -= maxBatch) {
      const from = Math.max(1, end - maxBatch + 1);
      const entries = await repository.entries(this.tenant, from, end);
      const stretch = entries.flatMap((entry, i) => (entry ? [{ sequence: from + i, id: entry.record.id }] : []));
      stretches.push(stretch);
      read += stretch.length;
      const oldest = entries.find((entry) => entry !== undefined);
      if (read >= loadTail && (!oldest || Date.parse(oldest.appendedAt) < since)) break;
      if (read >= maxLoad) {
        capped = true;
        break;
      }
    }
    if (epoch !== this.#epoch) return;
    this.#recent.clear();
    const now = clock();
    // Learnt in runs of consecutive sequences: a gap (an entry removed from the store) splits them.
    let run: { sequence: number; id: string }[] = [];
    const flush = () => {
      if (run.length > 0) this.#recent.learn(run[0]!.sequence, run.map((entry) => entry.id), now);
      run = [];
    };
    for (const stretch of stretches.reverse()) {
      for (const entry of stretch) {
        if (run.length > 0 && entry.sequence !== run.at(-1)!.sequence + 1) flush();
        run.push(entry);
      }
    }
    flush();
    this.#indexed = { sequence: head.sequence, hash: head.hash };
    const tookMs = Math.round(performance.now() - started);
    if (capped) this.options.logger?.warn({ tenant: this.tenant, entries: read, tookMs }, 'read the most entries a load may to deduplicate what can come again; the chain looks recent further back (entries stamped by a clock that ran ahead?)');
    else if (read > loadTail || tookMs > 1_000) this.options.logger?.info({ tenant: this.tenant, entries: read, tookMs }, 'read the end of the chain to deduplicate what can come again');
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
    await repository.createEntries(this.tenant, [entry]);
    return { ...value, sequence: entry.sequence, hash: entry.hash, appendedAt: entry.appendedAt };
  }
}

/** The chain's writer lease, kept in the head's own fields (`writer`, `leaseUntil`). */
function leaseOf(head: ChainHead): Lease {
  return new Lease({ holder: head.writer, until: head.leaseUntil });
}
