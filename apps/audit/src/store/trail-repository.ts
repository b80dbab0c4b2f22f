import { jetstreamManager } from '@nats-io/jetstream';
import { isStreamNotFound } from '@mandate/bus';
import type { NatsConnection } from '@nats-io/transport-node';
import { SYSTEM_TENANT, type TenantId, type TrailDigest, type TrailEntry } from '@mandate/contracts';
import { createUnlessTaken, kvStreamOf, type DocumentCollection, type DocumentStore, type StoredDocument } from '@mandate/store';
import { DocumentTrailLog, type TrailDocument } from './document-trail-log.js';
import { StreamTrailLog } from './stream-trail-log.js';
import type { StoredFragment, TrailLog } from './trail-log.js';

/*
 * Where the trail lives: its entries and signed digests in a trail log (trail-log.ts), which on
 * JetStream is an append-only stream and in MongoDB the collection `audit-trail`; and its heads in
 * the collection `audit-heads`: per tenant, `chain` (last sequence, last hash, writer lease) and
 * `digests` (last digest number and hash), both moved by compare-and-swap; under the `system`
 * tenant, `t.<tenant>` registers every tenant that has a chain.
 *
 * Entries are stored a batch at a time (a fragment per page a batch touches) rather than one each:
 * the per-entry write was most of the cost of appending.
 *
 * Which record has which sequence, for deduplication, is not stored apart: the appender keeps an
 * index of the recent records in memory and learns it from the entries (trail-appender.ts).
 * Earlier versions wrote a claim per record, in a collection `audit-claims` with a max age: a
 * bucket they left empties itself and can be deleted.
 *
 * The heads are the only mutable documents and are trusted for nothing a verifier cannot
 * re-derive: they say where to start, the entries and the signed digests say what is true.
 */

export const TRAIL_COLLECTION = 'audit-trail';
export const HEADS_COLLECTION = 'audit-heads';
export const AUDIT_COLLECTIONS = [TRAIL_COLLECTION, HEADS_COLLECTION] as const;
/** Opened only where it is the trail (MongoDB) or holds an older one (JetStream KV): a new JetStream deployment has no such bucket. */
export const AUDIT_COLLECTIONS_OPENED_ON_USE = [TRAIL_COLLECTION] as const;

export { PAGE } from './trail-log.js';
export { MAX_SEQUENCE } from './document-trail-log.js';

export interface ChainHead {
  sequence: number;
  hash: string;
  /** `appendedAt` of the last entry; the next is never earlier. */
  appendedAt: string;
  /** The instance allowed to append until `leaseUntil` (epoch ms): one writer per tenant at a time. */
  writer: string;
  leaseUntil: number;
}

export interface DigestHead {
  number: number;
  toSequence: number;
  hash: string;
}

interface TenantRegistration {
  tenant: string;
  since: string;
}

/** Where the entries and digests go: the stream (JetStream) or the `audit-trail` collection (MongoDB). */
export type TrailStorage = { kind: 'stream'; nc: NatsConnection; replicas: number } | { kind: 'documents' };

export class TrailRepository {
  private constructor(
    private readonly log: TrailLog,
    private readonly heads: DocumentCollection<ChainHead | DigestHead | TenantRegistration>,
  ) {}

  /**
   * On the stream, a trail an earlier version wrote on JetStream KV (the bucket of `audit-trail`)
   * is read on through the store for what lies below the stream; the bucket is only looked at,
   * never made, so a new deployment has none.
   */
  static async open(store: DocumentStore, storage: TrailStorage): Promise<TrailRepository> {
    const heads = await store.collection<ChainHead | DigestHead | TenantRegistration>(HEADS_COLLECTION);
    const documents = async () => new DocumentTrailLog(await store.collection<TrailDocument>(TRAIL_COLLECTION));
    if (storage.kind === 'documents') return new TrailRepository(await documents(), heads);
    const legacy = (await hasStream(storage.nc, kvStreamOf(TRAIL_COLLECTION))) ? await documents() : undefined;
    return new TrailRepository(await StreamTrailLog.open(storage.nc, { replicas: storage.replicas, ...(legacy ? { legacy } : {}) }), heads);
  }

  async entry(tenant: TenantId, sequence: number): Promise<TrailEntry | undefined> {
    return (await this.entries(tenant, sequence, sequence))[0];
  }

  /** See {@link TrailLog.createEntries}. */
  createEntries(tenant: TenantId, entries: readonly TrailEntry[], sizes?: readonly number[]): Promise<void> {
    return this.log.createEntries(tenant, entries, sizes);
  }

  /** Entries `from`..`to` (inclusive); a missing one is `undefined`. */
  entries(tenant: TenantId, from: number, to: number): Promise<(TrailEntry | undefined)[]> {
    return this.log.entries(tenant, from, to);
  }

  /** The fragment that holds `sequence` as stored, for tools that examine the stored trail; `undefined` when none does. */
  fragmentHolding(tenant: TenantId, sequence: number): Promise<StoredFragment | undefined> {
    return this.log.fragmentHolding(tenant, sequence);
  }

  async digest(tenant: TenantId, number: number): Promise<TrailDigest | undefined> {
    return (await this.log.digests(tenant, number, number))[0];
  }

  /** Digests `from`..`to` by number; a missing one is `undefined`. */
  digests(tenant: TenantId, from: number, to: number): Promise<(TrailDigest | undefined)[]> {
    return this.log.digests(tenant, from, to);
  }

  /** Whether it was written: false when a digest with its number exists. */
  createDigest(tenant: TenantId, digest: TrailDigest): Promise<boolean> {
    return this.log.createDigest(tenant, digest);
  }

  /** Why the trail's store would not keep every entry, as configured now; `''` when it would. */
  async storageProblem(): Promise<string> {
    return (await this.log.wouldLoseEntries?.()) ?? '';
  }

  async chainHead(tenant: TenantId): Promise<StoredDocument<ChainHead> | undefined> {
    return (await this.heads.get(tenant, 'chain')) as StoredDocument<ChainHead> | undefined;
  }

  /** Creates the head of a new chain (and registers the tenant); `conflict` if it exists. */
  async createChainHead(tenant: TenantId, head: ChainHead): Promise<StoredDocument<ChainHead>> {
    await this.registerTenant(tenant);
    return (await this.heads.create(tenant, 'chain', head)) as StoredDocument<ChainHead>;
  }

  /** Compare-and-swap; `conflict` when someone else moved it. */
  async moveChainHead(tenant: TenantId, head: ChainHead, expectedRevision: number): Promise<StoredDocument<ChainHead>> {
    return (await this.heads.update(tenant, 'chain', head, expectedRevision)) as StoredDocument<ChainHead>;
  }

  async digestHead(tenant: TenantId): Promise<StoredDocument<DigestHead> | undefined> {
    return (await this.heads.get(tenant, 'digests')) as StoredDocument<DigestHead> | undefined;
  }

  async moveDigestHead(tenant: TenantId, head: DigestHead, expectedRevision: number | undefined): Promise<void> {
    if (expectedRevision === undefined) await this.heads.create(tenant, 'digests', head);
    else await this.heads.update(tenant, 'digests', head, expectedRevision);
  }

  async registerTenant(tenant: TenantId): Promise<void> {
    await createUnlessTaken(this.heads, SYSTEM_TENANT, { id: `t.${tenant}`, value: { tenant, since: new Date().toISOString() } });
  }

  /** Every tenant that has a chain. */
  async tenants(): Promise<TenantId[]> {
    const tenants: TenantId[] = [];
    let cursor: string | undefined;
    do {
      const page = await this.heads.list(SYSTEM_TENANT, { prefix: 't.', limit: 1000, ...(cursor ? { cursor } : {}) });
      for (const item of page.items) tenants.push((item.value as TenantRegistration).tenant as TenantId);
      cursor = page.nextCursor;
    } while (cursor);
    return tenants;
  }
}

async function hasStream(nc: NatsConnection, name: string): Promise<boolean> {
  const jsm = await jetstreamManager(nc);
  try {
    await jsm.streams.info(name);
    return true;
  } catch (error) {
    // Anything but "no such stream" is no answer: starting as if there were no older trail would hide it.
    if (isStreamNotFound(error)) return false;
    throw error;
  }
}
