import { promisify } from 'node:util';
import { deflateRaw, inflateRaw } from 'node:zlib';
import { MandateError, SYSTEM_TENANT, type TenantId, type TrailDigest, type TrailEntry } from '@mandate/contracts';
import { createUnlessTaken, type DocumentCollection, type DocumentStore, type StoredDocument } from '@mandate/store';

/*
 * Where the trail lives, in two collections:
 *
 *   audit-trail  entry fragments `e.<first sequence>` (a run of consecutive entries, never across a
 *                page of PAGE sequences, so every page begins with a fragment; their JSON
 *                deflated, a quarter of its size) and digests
 *                `d.<number>`, numbers zero-padded to 12 digits so id order is chain order. Only
 *                ever created, never updated or deleted: in MongoDB the audit service's role
 *                grants insert and find only on it. (Dedup claims `r.<record id>[.<n>]` written
 *                by earlier versions stay here, inert.)
 *   audit-heads  per tenant: `chain` (last sequence, last hash, writer lease) and `digests` (last
 *                digest number and hash), both moved by compare-and-swap; under the `system`
 *                tenant, `t.<tenant>` registers every tenant that has a chain.
 *
 * Entries are stored a batch at a time (one document per page a batch touches) rather than one
 * document each: the per-document write was most of the cost of appending. A page is read by
 * walking its fragments from its first sequence; a gap (a fragment removed by someone with store
 * access) is probed past, so the entries after it are still found and the gap reads as missing.
 *
 * Which record has which sequence, for deduplication, is not stored apart: the appender keeps an
 * index of the recent records in memory and learns it from the entries (trail-appender.ts).
 * Earlier versions wrote a claim per record, in a collection `audit-claims` with a max age: a
 * bucket they left empties itself and can be deleted.
 *
 * The heads are the only mutable documents and are trusted for nothing a verifier cannot
 * re-derive: they say where to start, the entries and the signed digests say what is true.
 */
const deflate = promisify(deflateRaw);
const inflate = promisify(inflateRaw);

export const TRAIL_COLLECTION = 'audit-trail';
export const HEADS_COLLECTION = 'audit-heads';
export const AUDIT_COLLECTIONS = [TRAIL_COLLECTION, HEADS_COLLECTION] as const;

const PAD = 12;
export const MAX_SEQUENCE = 10 ** PAD - 1;

/** Sequences per page: a fragment never spans two, so reading one entry walks at most this many fragments. */
export const PAGE = 128;
/** A fragment stays well under NATS's default 1 MiB message limit (a record alone can be larger; it then gets its own fragment). */
const MAX_FRAGMENT_BYTES = 256 * 1024;
/** What a fragment may inflate to at most: a page of the largest records there can be, with room to spare. */
const MAX_INFLATED_BYTES = 64 * 1024 * 1024;
/** Pages read at once by `entries`. */
const PAGES_IN_PARALLEL = 16;

/** Consecutive entries stored as one document, the first at the sequence in its id. */
export interface TrailFragment {
  entries: TrailEntry[];
}

/**
 * A fragment as written now: its entries' JSON, deflated (RFC 1951), in base64. About a quarter
 * of the JSON's size: the hex of every hash, id and trace id is stored as text, each hash twice
 * (as the next entry's `previousHash`), and every key of every record again.
 */
export interface DeflatedFragment {
  deflated: string;
}

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

/** `TrailEntry` alone: a fragment of one, as written before fragments existed; `TrailFragment`, as written before they were deflated. */
type TrailDocument = DeflatedFragment | TrailFragment | TrailEntry | TrailDigest;

/**
 * The entries a stored fragment holds, whichever way it was written. One that does not inflate or
 * parse (a store tampered with) holds none: its entries read as missing, which `verify` reports.
 */
async function entriesOf(value: TrailDocument): Promise<TrailEntry[]> {
  if ('deflated' in value && typeof value.deflated === 'string') {
    try {
      const entries: unknown = JSON.parse((await inflate(Buffer.from(value.deflated, 'base64'), { maxOutputLength: MAX_INFLATED_BYTES })).toString('utf8'));
      return Array.isArray(entries) ? (entries as TrailEntry[]) : [];
    } catch {
      return [];
    }
  }
  if ('entries' in value && Array.isArray(value.entries)) return value.entries;
  return [value as TrailEntry];
}

async function deflated(entries: readonly TrailEntry[]): Promise<DeflatedFragment> {
  return { deflated: (await deflate(JSON.stringify(entries))).toString('base64') };
}

function pageStart(sequence: number): number {
  return Math.floor((sequence - 1) / PAGE) * PAGE + 1;
}

/** Splits consecutive entries at page boundaries and before a fragment grows past MAX_FRAGMENT_BYTES. */
function fragmentsOf(entries: readonly TrailEntry[], sizes: readonly number[] | undefined): TrailEntry[][] {
  const fragments: TrailEntry[][] = [];
  let current: TrailEntry[] = [];
  let bytes = 0;
  for (const [i, entry] of entries.entries()) {
    const size = sizes?.[i] ?? JSON.stringify(entry).length;
    if (current.length > 0 && (pageStart(entry.sequence) === entry.sequence || bytes + size > MAX_FRAGMENT_BYTES)) {
      fragments.push(current);
      current = [];
      bytes = 0;
    }
    current.push(entry);
    bytes += size;
  }
  if (current.length > 0) fragments.push(current);
  return fragments;
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

  async entry(tenant: TenantId, sequence: number): Promise<TrailEntry | undefined> {
    return (await this.entries(tenant, sequence, sequence))[0];
  }

  /**
   * Writes consecutive entries, a fragment per page they touch (or more, for large records);
   * `conflict` when a fragment's first sequence is taken (the others may exist). `sizes`, when the
   * caller knows them, are the entries' stored sizes in bytes (as `chainLink` tells them).
   */
  async createEntries(tenant: TenantId, entries: readonly TrailEntry[], sizes?: readonly number[]): Promise<void> {
    const fragments = fragmentsOf(entries, sizes);
    const values = await Promise.all(fragments.map(deflated));
    const documents = fragments.map((fragment, i) => ({ id: padded('e', fragment[0]!.sequence), value: values[i]! }));
    // The first fragment alone, then the rest: two writers that both read head n (a handover while
    // one of them stalled) both start at n + 1, so the first fragment decides between them. Written
    // together, the loser's later fragments could land beyond the winner's and block the chain.
    const [first, ...rest] = documents;
    if (!first) return;
    if ((await this.trail.createMany(tenant, [first])).includes('conflict')) throw new MandateError('conflict', 'a sequence of the chain is taken');
    if (rest.length > 0 && (await this.trail.createMany(tenant, rest)).includes('conflict')) throw new MandateError('conflict', 'a sequence of the chain is taken');
  }

  /** Entries `from`..`to` (inclusive), `PAGES_IN_PARALLEL` pages at a time; a missing one is `undefined`. */
  async entries(tenant: TenantId, from: number, to: number): Promise<(TrailEntry | undefined)[]> {
    const result = new Array<TrailEntry | undefined>(Math.max(0, to - from + 1)).fill(undefined);
    const pages: number[] = [];
    for (let page = pageStart(from); page <= to; page += PAGE) pages.push(page);
    for (let i = 0; i < pages.length; i += PAGES_IN_PARALLEL) {
      await Promise.all(
        pages.slice(i, i + PAGES_IN_PARALLEL).map(async (page) => {
          for (const entry of await this.#page(tenant, page, Math.min(to, page + PAGE - 1))) {
            if (entry.position >= from && entry.position <= to) result[entry.position - from] = entry.entry;
          }
        }),
      );
    }
    return result;
  }

  /**
   * The fragment that holds `sequence` as stored (id, revision, entries), for tools that examine
   * the stored trail; `undefined` when no fragment covers it.
   */
  async fragmentHolding(tenant: TenantId, sequence: number): Promise<{ id: string; revision: number; first: number; entries: TrailEntry[] } | undefined> {
    for (let first = sequence; first >= pageStart(sequence); first -= 1) {
      const doc = await this.trail.get(tenant, padded('e', first));
      if (!doc) continue;
      const entries = await entriesOf(doc.value);
      return first + entries.length > sequence ? { id: doc.id, revision: doc.revision, first, entries } : undefined;
    }
    return undefined;
  }

  /** The entries of one page up to `last`, each at its position (its place in the page, which the verifier compares with the sequence it names). */
  async #page(tenant: TenantId, page: number, last: number): Promise<{ position: number; entry: TrailEntry }[]> {
    const found: { position: number; entry: TrailEntry }[] = [];
    let next = page;
    while (next <= last) {
      const doc = await this.trail.get(tenant, padded('e', next));
      if (doc) {
        const entries = await entriesOf(doc.value);
        entries.forEach((entry, i) => found.push({ position: next + i, entry }));
        next += Math.max(1, entries.length);
        continue;
      }
      // A gap: the next fragment, if any, starts somewhere before `last`.
      const candidates = Array.from({ length: last - next }, (_, i) => next + 1 + i);
      const docs = await Promise.all(candidates.map((sequence) => this.trail.get(tenant, padded('e', sequence))));
      const at = docs.findIndex((d) => d !== undefined);
      if (at < 0) break;
      next = candidates[at]!;
    }
    return found;
  }

  async digest(tenant: TenantId, number: number): Promise<TrailDigest | undefined> {
    return (await this.trail.get(tenant, padded('d', number)))?.value as TrailDigest | undefined;
  }

  /** Whether it was written: false when a digest with its number exists. */
  async createDigest(tenant: TenantId, digest: TrailDigest): Promise<boolean> {
    return (await createUnlessTaken(this.trail, tenant, { id: padded('d', digest.number), value: digest })) === 'created';
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
