import type { TenantId } from '@mandate/contracts';

/** A record as stored: its id within the tenant and collection, its value and its revision. */
export interface StoredDocument<T> {
  readonly id: string;
  readonly value: T;
  /**
   * Changes on every write. Pass it back to `update` or `delete` to make the write conditional:
   * it succeeds only if nobody wrote in between (compare-and-swap).
   */
  readonly revision: number;
  /** When the record stops being visible, if it was written with a TTL. */
  readonly expiresAt?: Date;
}

export interface WriteOptions {
  /** Time to live in milliseconds: after it, the record reads as absent. */
  ttlMs?: number;
}

export interface ListOptions {
  /** Only ids that start with this (validated like an id, but may be empty). */
  prefix?: string;
  /** Page size, 1 to 1000; default 100. */
  limit?: number;
  /** The `nextCursor` of the previous page. */
  cursor?: string;
}

/** One record for `createMany`. */
export interface NewDocument<T> {
  readonly id: string;
  readonly value: T;
  readonly options?: WriteOptions;
}

/** What became of one record of `createMany`. */
export type CreateOutcome = 'created' | 'conflict';

export interface Page<T> {
  readonly items: readonly StoredDocument<T>[];
  /** Present when more records follow; pass it as `cursor`. */
  readonly nextCursor?: string;
}

/**
 * One named collection of JSON documents, partitioned by tenant. Every method takes a
 * `TenantId`, so no code path can read or write without naming the tenant.
 *
 * Errors (as `MandateError`): `invalid_request` for a bad id, prefix or cursor; `conflict` when
 * `create` finds the id taken or a revision does not match; `not_found` when `update` finds no
 * record; `unavailable` when the backend cannot be reached.
 */
export interface DocumentCollection<T> {
  get(tenant: TenantId, id: string): Promise<StoredDocument<T> | undefined>;
  /** Creates the record; `conflict` if a live record with this id exists. */
  create(tenant: TenantId, id: string, value: T, options?: WriteOptions): Promise<StoredDocument<T>>;
  /**
   * Creates several records of one tenant as `create` would one by one, in as few round trips as
   * the backend allows. Resolves, in input order, to `created` or `conflict` (a live record with
   * that id exists; of one id given twice, at most one is created). Any other failure rejects the
   * whole call, and some of the records may then exist.
   */
  createMany(tenant: TenantId, documents: readonly NewDocument<T>[]): Promise<CreateOutcome[]>;
  /** Replaces the record only if its revision is still `expectedRevision`. */
  update(tenant: TenantId, id: string, value: T, expectedRevision: number, options?: WriteOptions): Promise<StoredDocument<T>>;
  /**
   * Removes the record; with `expectedRevision`, only if nobody wrote since. Returns whether a
   * live record was removed.
   */
  delete(tenant: TenantId, id: string, options?: { expectedRevision?: number }): Promise<boolean>;
  /** Records in id order, one page at a time. */
  list(tenant: TenantId, options?: ListOptions): Promise<Page<T>>;
  /** Physically removes expired records of every tenant; returns how many. */
  sweepExpired(): Promise<number>;
}

/** How a collection is prepared when it is first opened. */
export interface CollectionOptions {
  /**
   * No record outlives this many milliseconds after its last write: a longer TTL (or none) is cut
   * to it. For records that stop mattering by age alone, many of them (dedup claims, replay
   * guards): the backend removes them by itself, with nothing left behind and no sweep (the
   * bucket's max age on JetStream KV, the TTL index on MongoDB).
   */
  maxAgeMs?: number;
}

export interface DocumentStore {
  /**
   * Opens (and at first use prepares) a collection; the name is ours, not user input. Opened with
   * a `maxAgeMs`, the collection keeps it from then on (an open without one does not take it away).
   */
  collection<T>(name: string, options?: CollectionOptions): Promise<DocumentCollection<T>>;
  close(): Promise<void>;
}

/** Milliseconds since the epoch; injectable so tests freeze time instead of sleeping. */
export type Clock = () => number;
