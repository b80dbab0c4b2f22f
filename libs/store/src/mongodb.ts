import { MongoBulkWriteError, MongoClient, MongoServerError, type Collection, type Db } from 'mongodb';
import { MandateError, type TenantId } from '@mandate/contracts';
import { backend, openOnce } from './backend-calls.js';
import { createUnlessTaken } from './create-unless-taken.js';
import { assertValidId, assertValidPrefix, clampLimit, decodeCursor, encodeCursor, expiryOf } from './keys.js';
import { initialRevision } from './revisions.js';
import type { Clock, CreateOutcome, DocumentCollection, DocumentStore, ListOptions, NewDocument, Page, StoredDocument, WriteOptions } from './port.js';

/**
 * How a record sits in MongoDB. The document travels as a JSON string: field names from user
 * input (`$where`, `a.b`) can then never be read as operators or paths, and the adapter stays a
 * key-value store with the same semantics as the JetStream one.
 */
interface MongoRecord {
  _id: string;
  tenant: string;
  key: string;
  rev: number;
  doc: string;
  expiresAt?: Date;
  updatedAt: Date;
}

const DUPLICATE_KEY = 11000;
/** Writes that must survive a primary failover are acknowledged by a majority, journaled. */
const DURABLE = { writeConcern: { w: 'majority' as const, j: true } };

export interface MongoDocumentStoreOptions {
  uri: string;
  database: string;
  clock?: Clock;
  /** Collections to prepare (indexes) at start-up rather than at first use. */
  collections?: readonly string[];
}

/** The production store: one MongoDB collection per store collection, `w: majority, j: true`. */
export class MongoDocumentStore implements DocumentStore {
  readonly #client: MongoClient;
  readonly #db: Db;
  readonly #clock: Clock;

  private constructor(client: MongoClient, db: Db, clock: Clock) {
    this.#client = client;
    this.#db = db;
    this.#clock = clock;
  }

  static async connect(options: MongoDocumentStoreOptions): Promise<MongoDocumentStore> {
    const client = new MongoClient(options.uri, { serverSelectionTimeoutMS: 10_000, retryWrites: true, readConcernLevel: 'majority' });
    try {
      await client.connect();
    } catch (cause) {
      throw new MandateError('unavailable', 'could not connect to MongoDB', { cause });
    }
    const store = new MongoDocumentStore(client, client.db(options.database), options.clock ?? Date.now);
    await Promise.all((options.collections ?? []).map((name) => store.collection(name)));
    return store;
  }

  readonly collection = openOnce(
    (name, { maxAgeMs }) => {
      const collection = this.#db.collection<MongoRecord>(name);
      return Promise.all([
        collection.createIndex({ tenant: 1, key: 1 }, { unique: true, name: 'tenant_key' }),
        // MongoDB's TTL monitor removes expired records about once a minute; reads filter too.
        collection.createIndex({ expiresAt: 1 }, { expireAfterSeconds: 0, name: 'ttl' }),
      ]).then(() => new MongoCollection<unknown>(collection, this.#clock, maxAgeMs));
    },
    (name) => `could not prepare the ${name} collection`,
  );

  async close(): Promise<void> {
    await this.#client.close();
  }
}

class MongoCollection<T> implements DocumentCollection<T> {
  constructor(
    private readonly collection: Collection<MongoRecord>,
    private readonly clock: Clock,
    /** Every write's TTL is cut to it, so the TTL index removes every record in time. */
    private readonly maxAgeMs: number | undefined,
  ) {}

  async get(tenant: TenantId, id: string): Promise<StoredDocument<T> | undefined> {
    const record = await backend(() => this.collection.findOne({ _id: idOf(tenant, assertValidId(id)) }));
    return record ? this.#live(record) : undefined;
  }

  async create(tenant: TenantId, id: string, value: T, options: WriteOptions = {}): Promise<StoredDocument<T>> {
    const now = this.clock();
    const record = this.#record(tenant, assertValidId(id), value, initialRevision(), now, options);
    try {
      await backend(() => this.collection.insertOne(record, DURABLE));
      return toDocument(record);
    } catch (error) {
      if (!isDuplicateKey(error)) throw error;
    }
    // Taken: replace it only if it has expired (the TTL monitor may not have run yet).
    const existing = await backend(() => this.collection.findOne({ _id: record._id }));
    if (!existing || !expiredAt(existing, now)) throw new MandateError('conflict', 'a record with this id already exists');
    const replaced = await backend(() =>
      this.collection.findOneAndReplace(
        { _id: record._id, rev: existing.rev, expiresAt: { $lte: new Date(now) } },
        { ...record, rev: existing.rev + 1 },
        { ...DURABLE, returnDocument: 'after' },
      ),
    );
    if (!replaced) throw new MandateError('conflict', 'a record with this id already exists');
    return toDocument(replaced);
  }

  async createMany(tenant: TenantId, documents: readonly NewDocument<T>[]): Promise<CreateOutcome[]> {
    if (documents.length === 0) return [];
    const now = this.clock();
    const records = documents.map(({ id, value, options }) => this.#record(tenant, assertValidId(id), value, initialRevision(), now, options ?? {}));
    let taken = new Set<number>();
    try {
      // Unordered: one taken id does not stop the others.
      await this.collection.insertMany(records, { ...DURABLE, ordered: false });
    } catch (error) {
      const writeErrors = error instanceof MongoBulkWriteError ? [error.writeErrors].flat() : [];
      if (writeErrors.length === 0 || writeErrors.some((e) => e.code !== DUPLICATE_KEY)) {
        throw new MandateError('unavailable', 'the store did not answer', { cause: error });
      }
      taken = new Set(writeErrors.map((e) => e.index));
    }
    // A taken id may hold an expired record, which `create` replaces.
    return Promise.all(documents.map((document, i) => (taken.has(i) ? createUnlessTaken(this, tenant, document) : 'created')));
  }

  async update(tenant: TenantId, id: string, value: T, expectedRevision: number, options: WriteOptions = {}): Promise<StoredDocument<T>> {
    const now = this.clock();
    const _id = idOf(tenant, assertValidId(id));
    const next = this.#record(tenant, id, value, expectedRevision + 1, now, options);
    const updated = await backend(() =>
      this.collection.findOneAndReplace({ _id, rev: expectedRevision, ...notExpired(now) }, next, { ...DURABLE, returnDocument: 'after' }),
    );
    if (updated) return toDocument(updated);
    const current = await this.get(tenant, id);
    if (!current) throw new MandateError('not_found', 'no such record');
    throw new MandateError('conflict', 'the record changed since it was read');
  }

  async delete(tenant: TenantId, id: string, options: { expectedRevision?: number } = {}): Promise<boolean> {
    const now = this.clock();
    const _id = idOf(tenant, assertValidId(id));
    if (options.expectedRevision === undefined) {
      const removed = await backend(() => this.collection.findOneAndDelete({ _id }, DURABLE));
      return removed !== null && this.#live(removed) !== undefined;
    }
    const removed = await backend(() => this.collection.findOneAndDelete({ _id, rev: options.expectedRevision }, DURABLE));
    if (removed) return expiredAt(removed, now) ? false : true;
    const current = await backend(() => this.collection.findOne({ _id }));
    if (!current) throw new MandateError('not_found', 'no such record');
    throw new MandateError('conflict', 'the record changed since it was read');
  }

  async list(tenant: TenantId, options: ListOptions = {}): Promise<Page<T>> {
    const limit = clampLimit(options.limit);
    const prefix = assertValidPrefix(options.prefix ?? '');
    const after = decodeCursor(options.cursor);
    const now = this.clock();
    // A range on `key` instead of a regex: no pattern built from input ever reaches the server.
    const key: Record<string, string> = { $gte: prefix, $lt: `${prefix}\uffff` };
    if (after !== undefined && after >= prefix) key['$gt'] = after;
    const records = await backend(() =>
      this.collection
        .find({ tenant, key, ...notExpired(now) })
        .sort({ key: 1 })
        .limit(limit + 1)
        .toArray(),
    );
    const items = records.slice(0, limit).map((record) => toDocument<T>(record));
    const last = items.at(-1);
    return records.length > limit && last ? { items, nextCursor: encodeCursor(last.id) } : { items };
  }

  async sweepExpired(): Promise<number> {
    const result = await backend(() => this.collection.deleteMany({ expiresAt: { $lte: new Date(this.clock()) } }, DURABLE));
    return result.deletedCount;
  }

  #live(record: MongoRecord): StoredDocument<T> | undefined {
    return expiredAt(record, this.clock()) ? undefined : toDocument(record);
  }

  #record(tenant: TenantId, id: string, value: T, rev: number, now: number, options: WriteOptions): MongoRecord {
    const expiresAt = expiryOf(now, options.ttlMs, this.maxAgeMs);
    const record: MongoRecord = { _id: idOf(tenant, id), tenant, key: id, rev, doc: JSON.stringify(value), updatedAt: new Date(now) };
    if (expiresAt !== undefined) record.expiresAt = new Date(expiresAt);
    return record;
  }
}

function idOf(tenant: TenantId, id: string): string {
  return `${tenant}/${id}`;
}

function notExpired(now: number) {
  return { $or: [{ expiresAt: { $exists: false } }, { expiresAt: { $gt: new Date(now) } }] };
}

function expiredAt(record: MongoRecord, now: number): boolean {
  return record.expiresAt !== undefined && record.expiresAt.getTime() <= now;
}

function toDocument<T>(record: MongoRecord): StoredDocument<T> {
  const value = JSON.parse(record.doc) as T;
  return record.expiresAt
    ? { id: record.key, value, revision: record.rev, expiresAt: record.expiresAt }
    : { id: record.key, value, revision: record.rev };
}

function isDuplicateKey(error: unknown): boolean {
  const cause = error instanceof MandateError ? error.cause : error;
  return cause instanceof MongoServerError && cause.code === DUPLICATE_KEY;
}
