import { MandateError, SYSTEM_TENANT, type TenantId, type TrailDigest, type TrailEntry } from '@mandate/contracts';
import type { CreateOutcome, DocumentCollection, DocumentStore, StoredDocument } from '@mandate/store';

/*
 * Where the trail lives, in two collections:
 *
 *   audit-trail  entries `e.<sequence>` and digests `d.<number>`, numbers zero-padded to 12
 *                digits so id order is chain order, and claims `r.<record id>[.<n>]` (the
 *                deduplication index: which sequence a record was given). Only ever created,
 *                never updated or deleted: in MongoDB the audit service's role grants insert and
 *                find only on it.
 *   audit-heads  per tenant: `chain` (last sequence, last hash, writer lease) and `digests` (last
 *                digest number and hash), both moved by compare-and-swap; under the `system`
 *                tenant, `t.<tenant>` registers every tenant that has a chain.
 *
 * Claims live next to the entries on purpose: a claim is written before its entry, in the same
 * collection (one JetStream stream, one MongoDB collection), so whatever a crash of the store
 * keeps, it never keeps an entry without its claim, and a redelivered record is never chained
 * twice. A claim whose entry was lost is stale (the entry at its sequence is missing or another
 * record's); the record is then claimed again under the next suffix.
 *
 * The heads are the only mutable documents and are trusted for nothing a verifier cannot
 * re-derive: they say where to start, the entries and the signed digests say what is true.
 */
export const TRAIL_COLLECTION = 'audit-trail';
export const HEADS_COLLECTION = 'audit-heads';
export const AUDIT_COLLECTIONS = [TRAIL_COLLECTION, HEADS_COLLECTION] as const;

/** Claims of one record tried before giving up (each stale one needs a store crash to exist). */
const MAX_CLAIMS = 16;

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

/** Which sequence a record was given. */
export interface ClaimDocument {
  claim: string;
  sequence: number;
}

export interface NewClaim {
  recordId: string;
  /** 0 for a record's first claim, n for its claim after n stale ones. */
  attempt: number;
  sequence: number;
}

/** Where a record stands: already chained at `sequence`, or not, with the suffix its claim takes. */
export type ClaimLookup = { chained: true; sequence: number } | { chained: false; attempt: number };

interface TenantRegistration {
  tenant: string;
  since: string;
}

type TrailDocument = TrailEntry | TrailDigest | ClaimDocument;

function claimId(recordId: string, attempt: number): string {
  return attempt === 0 ? `r.${recordId}` : `r.${recordId}.${attempt}`;
}

function padded(kind: 'e' | 'd', n: number): string {
  if (!Number.isSafeInteger(n) || n < 1 || n > MAX_SEQUENCE) throw new TypeError(`sequence out of range: ${n}`);
  return `${kind}.${String(n).padStart(PAD, '0')}`;
}

export class TrailRepository {
  private constructor(
    private readonly trail: DocumentCollection<TrailDocument>,
    private readonly heads: DocumentCollection<ChainHead | DigestHead | TenantRegistration>,
  ) {}

  static async open(store: DocumentStore): Promise<TrailRepository> {
    return new TrailRepository(
      await store.collection<TrailDocument>(TRAIL_COLLECTION),
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

  /** Creates entries together; `conflict` when any sequence was taken (the others may exist). */
  async createEntries(tenant: TenantId, entries: readonly TrailEntry[]): Promise<void> {
    const outcomes = await this.trail.createMany(tenant, entries.map((entry) => ({ id: padded('e', entry.sequence), value: entry })));
    if (outcomes.includes('conflict')) throw new MandateError('conflict', 'a sequence of the chain is taken');
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

  // Claims (deduplication) ------------------------------------------------------------------------

  /** Whether a record is in the chain: a claim whose sequence holds this very record. */
  async lookupClaim(tenant: TenantId, recordId: string): Promise<ClaimLookup> {
    for (let attempt = 0; attempt < MAX_CLAIMS; attempt++) {
      const claim = (await this.trail.get(tenant, claimId(recordId, attempt)))?.value as ClaimDocument | undefined;
      if (!claim) return { chained: false, attempt };
      if ((await this.entry(tenant, claim.sequence))?.record.id === recordId) return { chained: true, sequence: claim.sequence };
    }
    throw new MandateError('internal', `record ${recordId} has ${MAX_CLAIMS} stale claims; the trail store keeps losing writes`);
  }

  /** Claims `sequence` for a record, before its entry is written; `conflict` if that claim exists. */
  async createClaim(tenant: TenantId, recordId: string, attempt: number, sequence: number): Promise<void> {
    await this.trail.create(tenant, claimId(recordId, attempt), { claim: recordId, sequence });
  }

  /** Claims together: for each, whether it was made (`created`) or existed already (`conflict`). */
  createClaims(tenant: TenantId, claims: readonly NewClaim[]): Promise<CreateOutcome[]> {
    return this.trail.createMany(
      tenant,
      claims.map(({ recordId, attempt, sequence }) => ({ id: claimId(recordId, attempt), value: { claim: recordId, sequence } })),
    );
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
