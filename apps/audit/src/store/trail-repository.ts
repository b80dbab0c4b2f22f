import { MandateError, SYSTEM_TENANT, type TenantId, type TrailDigest, type TrailEntry } from '@mandate/contracts';
import type { DocumentCollection, DocumentStore, StoredDocument } from '@mandate/store';

/*
 * Where the trail lives, in three collections:
 *
 *   audit-trail  entries `e.<sequence>` and digests `d.<number>`, numbers zero-padded to 12
 *                digits so id order is chain order. Only ever created, never updated or deleted:
 *                in MongoDB the audit service's role grants insert and find only on it.
 *   audit-index  one document per record id (`<uuid>` → its sequence): the deduplication index.
 *                Insert and find only, too.
 *   audit-heads  per tenant: `chain` (last sequence, last hash, writer lease) and `digests` (last
 *                digest number and hash), both moved by compare-and-swap; under the `system`
 *                tenant, `t.<tenant>` registers every tenant that has a chain.
 *
 * The heads are the only mutable documents and are trusted for nothing a verifier cannot
 * re-derive: they say where to start, the entries and the signed digests say what is true.
 */
export const TRAIL_COLLECTION = 'audit-trail';
export const INDEX_COLLECTION = 'audit-index';
export const HEADS_COLLECTION = 'audit-heads';
export const AUDIT_COLLECTIONS = [TRAIL_COLLECTION, INDEX_COLLECTION, HEADS_COLLECTION] as const;

const PAD = 12;
export const MAX_SEQUENCE = 10 ** PAD - 1;

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

export interface IndexDocument {
  sequence: number;
}

interface TenantRegistration {
  tenant: string;
  since: string;
}

type TrailDocument = TrailEntry | TrailDigest;

function padded(kind: 'e' | 'd', n: number): string {
  if (!Number.isSafeInteger(n) || n < 1 || n > MAX_SEQUENCE) throw new TypeError(`sequence out of range: ${n}`);
  return `${kind}.${String(n).padStart(PAD, '0')}`;
}

export class TrailRepository {
  private constructor(
    private readonly trail: DocumentCollection<TrailDocument>,
    private readonly index: DocumentCollection<IndexDocument>,
    private readonly heads: DocumentCollection<ChainHead | DigestHead | TenantRegistration>,
  ) {}

  static async open(store: DocumentStore): Promise<TrailRepository> {
    return new TrailRepository(
      await store.collection<TrailDocument>(TRAIL_COLLECTION),
      await store.collection<IndexDocument>(INDEX_COLLECTION),
      await store.collection<ChainHead | DigestHead | TenantRegistration>(HEADS_COLLECTION),
    );
  }

  // Entries ------------------------------------------------------------------------------------

  async entry(tenant: TenantId, sequence: number): Promise<TrailEntry | undefined> {
    return (await this.trail.get(tenant, padded('e', sequence)))?.value as TrailEntry | undefined;
  }

  /** `conflict` when the sequence is taken. */
  async createEntry(tenant: TenantId, entry: TrailEntry): Promise<void> {
    await this.trail.create(tenant, padded('e', entry.sequence), entry);
  }

  /** Entries `from`..`to` (inclusive), fetched `parallel` at a time; a missing one is `undefined`. */
  async entries(tenant: TenantId, from: number, to: number, parallel = 256): Promise<(TrailEntry | undefined)[]> {
    const result: (TrailEntry | undefined)[] = [];
    for (let start = from; start <= to; start += parallel) {
      const end = Math.min(to, start + parallel - 1);
      const batch = await Promise.all(Array.from({ length: end - start + 1 }, (_, i) => this.entry(tenant, start + i)));
      result.push(...batch);
    }
    return result;
  }

  // Dedup index ----------------------------------------------------------------------------------

  async indexed(tenant: TenantId, recordId: string): Promise<IndexDocument | undefined> {
    return (await this.index.get(tenant, recordId))?.value;
  }

  /** Records that `recordId` is at `sequence`; an existing index document is left as it is. */
  async addToIndex(tenant: TenantId, recordId: string, sequence: number): Promise<void> {
    try {
      await this.index.create(tenant, recordId, { sequence });
    } catch (error) {
      if (!(error instanceof MandateError && error.code === 'conflict')) throw error;
    }
  }

  // Digests --------------------------------------------------------------------------------------

  async digest(tenant: TenantId, number: number): Promise<TrailDigest | undefined> {
    return (await this.trail.get(tenant, padded('d', number)))?.value as TrailDigest | undefined;
  }

  async createDigest(tenant: TenantId, digest: TrailDigest): Promise<void> {
    await this.trail.create(tenant, padded('d', digest.number), digest);
  }

  // Heads ----------------------------------------------------------------------------------------

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

  // Tenants --------------------------------------------------------------------------------------

  async registerTenant(tenant: TenantId): Promise<void> {
    try {
      await this.heads.create(SYSTEM_TENANT, `t.${tenant}`, { tenant, since: new Date().toISOString() });
    } catch (error) {
      if (!(error instanceof MandateError && error.code === 'conflict')) throw error;
    }
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
