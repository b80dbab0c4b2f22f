import { JetStreamApiError, jetstreamManager, StorageType } from '@nats-io/jetstream';
import { Bucket, Kvm, type KV, type KvEntry } from '@nats-io/kv';
import { nanos, type NatsConnection } from '@nats-io/transport-node';
import { MandateError, type TenantId } from '@mandate/contracts';
import { backend, openOnce } from './backend-calls.js';
import { createUnlessTaken } from './create-unless-taken.js';
import { assertValidId, assertValidPrefix, clampLimit, decodeCursor, encodeCursor, expiryOf } from './keys.js';
import { KvBulkCreator, WRONG_LAST_SEQUENCE } from './jetstream-kv-bulk.js';
import { initialRevision } from './revisions.js';
import type { Clock, CreateOutcome, DocumentCollection, DocumentStore, ListOptions, NewDocument, Page, StoredDocument, WriteOptions } from './port.js';

const encoder = new TextEncoder();

/**
 * What we put in a KV value: the document, with a TTL when it expires, and its revision (a
 * counter of its own writes: the KV's revision is the stream's sequence, shared by every tenant
 * of the collection). Records written before `r` existed use the KV revision.
 */
interface KvRecord<T> {
  v: T;
  e?: number;
  r?: number;
}

export interface JetStreamKvStoreOptions {
  /** 1 on the embedded node, 3 on a production cluster. */
  replicas?: number;
  clock?: Clock;
}

/** The KV bucket a collection lives in (`mandate_<collection>`, dashes as underscores). */
export function kvBucketOf(collection: string): string {
  return `mandate_${collection.replaceAll('-', '_')}`;
}

/** The JetStream stream behind a collection's bucket, for what must look at a bucket without opening (and so creating) it. */
export function kvStreamOf(collection: string): string {
  return `KV_${kvBucketOf(collection)}`;
}

/**
 * The embedded default store: one JetStream KV bucket per collection (`mandate_<collection>`),
 * keys `<tenant>.<id>`, history 1 so a deleted secret does not linger as an older revision.
 *
 * TTL is kept in the record and enforced on read (nats-server 2.9 has no per-message TTL);
 * `sweepExpired` removes expired records for good.
 */
export class JetStreamKvStore implements DocumentStore {
  readonly #kvm: Kvm;
  readonly #options: Required<JetStreamKvStoreOptions>;
  readonly #bulk: KvBulkCreator;

  constructor(
    private readonly nc: NatsConnection,
    options: JetStreamKvStoreOptions = {},
  ) {
    this.#kvm = new Kvm(nc);
    this.#bulk = new KvBulkCreator(nc);
    this.#options = { replicas: options.replicas ?? 1, clock: options.clock ?? Date.now };
  }

  readonly collection = openOnce(
    async (name, { maxAgeMs }) => {
      const bucket = kvBucketOf(name);
      // Replicated, a read goes to the leader: a direct get may be answered by a replica that is
      // still catching up (a node just restarted), and a stale read made a compare-and-swap lose
      // against its own last write, for ever (a scheduler run stuck `running` on the cluster).
      const existing = await jetstreamManager(this.nc).then((jsm) => jsm.streams.info(`KV_${bucket}`)).catch(() => undefined);
      const leaderReads = this.#options.replicas > 1 || (existing?.config.num_replicas ?? 1) > 1;
      const kv = await this.#kvm.create(bucket, {
        history: 1,
        replicas: this.#options.replicas,
        storage: StorageType.File,
        ...(maxAgeMs ? { ttl: maxAgeMs } : {}),
        ...(leaderReads ? { allow_direct: false } : {}),
      });
      await this.#keepConfig(`KV_${bucket}`, maxAgeMs, leaderReads);
      return new JetStreamKvCollection<unknown>(kv, this.#bulk, this.#options.clock, maxAgeMs);
    },
    (name) => `could not open the ${name} store`,
  );

  /**
   * `Kvm.create` leaves an existing bucket as it is, so a bucket made before it had a max age (or
   * with another), or with direct gets from any replica, is brought to the one asked for: both may
   * change in place.
   */
  async #keepConfig(stream: string, maxAgeMs: number | undefined, leaderReads: boolean): Promise<void> {
    if (!maxAgeMs && !leaderReads) return;
    const jsm = await jetstreamManager(this.nc);
    const { config } = await jsm.streams.info(stream);
    const maxAgeWrong = maxAgeMs !== undefined && maxAgeMs > 0 && config.max_age !== nanos(maxAgeMs);
    const directWrong = leaderReads && config.allow_direct === true;
    if (!maxAgeWrong && !directWrong) return;
    await jsm.streams.update(stream, {
      ...config,
      ...(maxAgeWrong
        ? // JetStream wants the duplicate window within the max age (KV writes carry no message ids anyway).
          { max_age: nanos(maxAgeMs!), duplicate_window: Math.min(config.duplicate_window, nanos(maxAgeMs!)) }
        : {}),
      ...(directWrong ? { allow_direct: false } : {}),
    });
  }

  async close(): Promise<void> {
    // The connection belongs to the caller; only our reply subscription is ours to close.
    this.#bulk.close();
  }
}

class JetStreamKvCollection<T> implements DocumentCollection<T> {
  constructor(
    private readonly kv: KV,
    private readonly bulk: KvBulkCreator,
    private readonly clock: Clock,
    private readonly maxAgeMs: number | undefined,
  ) {}

  async get(tenant: TenantId, id: string): Promise<StoredDocument<T> | undefined> {
    const entry = await this.#entry(tenant, assertValidId(id));
    return entry ? this.#live(id, entry) : undefined;
  }

  async create(tenant: TenantId, id: string, value: T, options: WriteOptions = {}): Promise<StoredDocument<T>> {
    const key = keyOf(tenant, assertValidId(id));
    const record = this.#record(value, options, initialRevision());
    try {
      await backend(() => this.kv.create(key, encode(record)));
      return toDocument(id, record);
    } catch (error) {
      if (!isWrongLastSequence(error)) throw error;
    }
    // The id is taken. An expired record may be replaced, but only if it is still the one we saw.
    const existing = await this.#entry(tenant, id);
    if (existing && existing.operation === 'PUT' && !this.#live(id, existing)) {
      const replacement = { ...record, r: revisionOf(existing) + 1 };
      await this.#casPut(key, replacement, existing.revision);
      return toDocument(id, replacement);
    }
    throw new MandateError('conflict', 'a record with this id already exists');
  }

  async createMany(tenant: TenantId, documents: readonly NewDocument<T>[]): Promise<CreateOutcome[]> {
    if (!(this.kv instanceof Bucket)) throw new MandateError('internal', 'the KV bucket is not a JetStream bucket');
    const bucket = this.kv;
    const writes = documents.map(({ id, value, options }) => ({
      subject: bucket.subjectForKey(bucket.encodeKey(keyOf(tenant, assertValidId(id))), true),
      data: encode(this.#record(value, options ?? {}, initialRevision())),
    }));
    const outcomes = await this.bulk.create(writes);
    // A taken id may hold an expired record, which `create` replaces; conflicts are rare enough to go one by one.
    return Promise.all(outcomes.map((outcome, i) => (outcome === 'created' ? outcome : createUnlessTaken(this, tenant, documents[i]!))));
  }

  async update(tenant: TenantId, id: string, value: T, expectedRevision: number, options: WriteOptions = {}): Promise<StoredDocument<T>> {
    const entry = await this.#entry(tenant, assertValidId(id));
    const current = entry && this.#live(id, entry);
    if (!entry || !current) throw new MandateError('not_found', 'no such record');
    if (current.revision !== expectedRevision) throw new MandateError('conflict', 'the record changed since it was read');
    const record = this.#record(value, options, expectedRevision + 1);
    await this.#casPut(keyOf(tenant, id), record, entry.revision);
    return toDocument(id, record);
  }

  async delete(tenant: TenantId, id: string, options: { expectedRevision?: number } = {}): Promise<boolean> {
    const entry = await this.#entry(tenant, assertValidId(id));
    if (!entry || entry.operation !== 'PUT') {
      if (options.expectedRevision !== undefined) throw new MandateError('not_found', 'no such record');
      return false;
    }
    if (options.expectedRevision !== undefined && revisionOf(entry) !== options.expectedRevision) {
      throw new MandateError('conflict', 'the record changed since it was read');
    }
    const wasLive = this.#live(id, entry) !== undefined;
    try {
      await backend(() => this.kv.delete(keyOf(tenant, id), { previousSeq: entry.revision }));
    } catch (error) {
      if (!isWrongLastSequence(error)) throw error;
      if (options.expectedRevision !== undefined) throw new MandateError('conflict', 'the record changed since it was read');
      return this.delete(tenant, id);
    }
    return wasLive;
  }

  async list(tenant: TenantId, options: ListOptions = {}): Promise<Page<T>> {
    const limit = clampLimit(options.limit);
    const prefix = assertValidPrefix(options.prefix ?? '');
    const after = decodeCursor(options.cursor);
    const tenantPrefix = `${tenant}.`;
    const ids: string[] = [];
    const keys = await backend(() => this.kv.keys(`${tenant}.>`));
    for await (const key of keys) {
      const id = key.slice(tenantPrefix.length);
      if (id.startsWith(prefix) && (after === undefined || id > after)) ids.push(id);
    }
    ids.sort();
    const items: StoredDocument<T>[] = [];
    let consumed = 0;
    while (items.length < limit && consumed < ids.length) {
      const batch = ids.slice(consumed, consumed + (limit - items.length));
      const docs = await Promise.all(batch.map((id) => this.get(tenant, id)));
      for (const doc of docs) if (doc) items.push(doc);
      consumed += batch.length;
    }
    const last = items.at(-1);
    return consumed < ids.length && last ? { items, nextCursor: encodeCursor(last.id) } : { items };
  }

  async sweepExpired(): Promise<number> {
    // The server removes what outlived the bucket's max age, leaving nothing behind; a delete
    // here would leave a marker per key, which is what the max age is there to avoid.
    if (this.maxAgeMs) return 0;
    let removed = 0;
    const keys = await backend(() => this.kv.keys());
    for await (const key of keys) {
      const entry = await backend(() => this.kv.get(key));
      // A PUT that reads as absent has expired.
      if (!entry || entry.operation !== 'PUT' || this.#live(key, entry)) continue;
      try {
        await backend(() => this.kv.delete(key, { previousSeq: entry.revision }));
        removed += 1;
      } catch (error) {
        if (!isWrongLastSequence(error)) throw error; // rewritten meanwhile: not expired any more
      }
    }
    return removed;
  }

  #entry(tenant: TenantId, id: string): Promise<KvEntry | null> {
    return backend(() => this.kv.get(keyOf(tenant, id)));
  }

  #live(id: string, entry: KvEntry): StoredDocument<T> | undefined {
    if (entry.operation !== 'PUT') return undefined;
    const record = decode<T>(entry);
    if (record.e !== undefined && record.e <= this.clock()) return undefined;
    return toDocument(id, { ...record, r: record.r ?? entry.revision });
  }

  #record(value: T, options: WriteOptions, revision: number): KvRecord<T> & { r: number } {
    const expiresAt = expiryOf(this.clock(), options.ttlMs, this.maxAgeMs);
    return expiresAt === undefined ? { v: value, r: revision } : { v: value, e: expiresAt, r: revision };
  }

  /** Writes `record` if the key's KV revision (its stream sequence) is still `sequence`. */
  async #casPut(key: string, record: KvRecord<T>, sequence: number): Promise<number> {
    try {
      return await backend(() => this.kv.update(key, encode(record), sequence));
    } catch (error) {
      if (isWrongLastSequence(error)) throw new MandateError('conflict', 'the record changed since it was read');
      throw error;
    }
  }
}

function keyOf(tenant: TenantId, id: string): string {
  return `${tenant}.${id}`;
}

function encode(record: KvRecord<unknown>): Uint8Array {
  return encoder.encode(JSON.stringify(record));
}

function decode<T>(entry: KvEntry): KvRecord<T> {
  try {
    return entry.json<KvRecord<T>>();
  } catch (cause) {
    throw new MandateError('internal', 'a stored record is not valid JSON', { cause });
  }
}

function toDocument<T>(id: string, record: KvRecord<T> & { r: number }): StoredDocument<T> {
  return record.e === undefined ? { id, value: record.v, revision: record.r } : { id, value: record.v, revision: record.r, expiresAt: new Date(record.e) };
}

/** A stored record's document revision. */
function revisionOf(entry: KvEntry): number {
  return decode(entry).r ?? entry.revision;
}

/** Whether JetStream refused a conditional publish because the subject's last message is another (`wrong last sequence`). */
export function isWrongLastSequence(error: unknown): boolean {
  const cause = error instanceof MandateError ? error.cause : error;
  return cause instanceof JetStreamApiError && WRONG_LAST_SEQUENCE.has(cause.code);
}
