import { MandateError, type TenantId, type TrailDigest, type TrailEntry } from '@mandate/contracts';
import { createUnlessTaken, type DocumentCollection } from '@mandate/store';
import { deflateEntries, fragmentsOf, inflateEntries, PAGE, pageStart, type StoredFragment, type TrailLog } from './trail-log.js';

/*
 * The trail as documents in one collection (`audit-trail`): entry fragments `e.<first sequence>`
 * (a run of consecutive entries, never across a page of PAGE sequences, so every page begins with
 * a fragment; their JSON deflated, in base64) and digests `d.<number>`, numbers zero-padded to 12
 * digits so id order is chain order. Only ever created, never updated or deleted: in MongoDB the
 * audit service's role grants insert and find only on it. (Dedup claims `r.<record id>[.<n>]`
 * written by earlier versions stay here, inert.)
 *
 * A page is read by walking its fragments from its first sequence; a gap (a fragment removed by
 * someone with store access) is probed past, so the entries after it are still found and the gap
 * reads as missing.
 */

const PAD = 12;
export const MAX_SEQUENCE = 10 ** PAD - 1;

/** Pages read at once by `entries`. */
const PAGES_IN_PARALLEL = 16;

/** Consecutive entries stored as one document, the first at the sequence in its id, as written before fragments were deflated. */
export interface TrailFragment {
  entries: TrailEntry[];
}

/** A fragment as written now: its entries' JSON, deflated (RFC 1951), in base64. */
export interface DeflatedFragment {
  deflated: string;
}

/** `TrailEntry` alone: a fragment of one, as written before fragments existed. */
export type TrailDocument = DeflatedFragment | TrailFragment | TrailEntry | TrailDigest;

/** The entries a stored fragment holds, whichever way it was written. */
async function entriesOf(value: TrailDocument): Promise<TrailEntry[]> {
  if ('deflated' in value && typeof value.deflated === 'string') return inflateEntries(Buffer.from(value.deflated, 'base64'));
  if ('entries' in value && Array.isArray(value.entries)) return value.entries;
  return [value as TrailEntry];
}

export function trailDocumentId(kind: 'e' | 'd', n: number): string {
  if (!Number.isSafeInteger(n) || n < 1 || n > MAX_SEQUENCE) throw new TypeError(`sequence out of range: ${n}`);
  return `${kind}.${String(n).padStart(PAD, '0')}`;
}

export class DocumentTrailLog implements TrailLog {
  constructor(private readonly trail: DocumentCollection<TrailDocument>) {}

  async createEntries(tenant: TenantId, entries: readonly TrailEntry[], sizes?: readonly number[]): Promise<void> {
    const fragments = fragmentsOf(entries, sizes);
    const values = await Promise.all(fragments.map(async (fragment) => ({ deflated: (await deflateEntries(fragment)).toString('base64') })));
    const documents = fragments.map((fragment, i) => ({ id: trailDocumentId('e', fragment[0]!.sequence), value: values[i]! }));
    // The first fragment alone, then the rest: two writers that both read head n (a handover while
    // one of them stalled) both start at n + 1, so the first fragment decides between them. Written
    // together, the loser's later fragments could land beyond the winner's and block the chain.
    const [first, ...rest] = documents;
    if (!first) return;
    if ((await this.trail.createMany(tenant, [first])).includes('conflict')) throw new MandateError('conflict', 'a sequence of the chain is taken');
    if (rest.length > 0 && (await this.trail.createMany(tenant, rest)).includes('conflict')) throw new MandateError('conflict', 'a sequence of the chain is taken');
  }

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

  async fragmentHolding(tenant: TenantId, sequence: number): Promise<StoredFragment | undefined> {
    for (let first = sequence; first >= pageStart(sequence); first -= 1) {
      const doc = await this.trail.get(tenant, trailDocumentId('e', first));
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
      const doc = await this.trail.get(tenant, trailDocumentId('e', next));
      if (doc) {
        const entries = await entriesOf(doc.value);
        entries.forEach((entry, i) => found.push({ position: next + i, entry }));
        next += Math.max(1, entries.length);
        continue;
      }
      // A gap: the next fragment, if any, starts somewhere before `last`.
      const candidates = Array.from({ length: last - next }, (_, i) => next + 1 + i);
      const docs = await Promise.all(candidates.map((sequence) => this.trail.get(tenant, trailDocumentId('e', sequence))));
      const at = docs.findIndex((d) => d !== undefined);
      if (at < 0) break;
      next = candidates[at]!;
    }
    return found;
  }

  async digests(tenant: TenantId, from: number, to: number): Promise<(TrailDigest | undefined)[]> {
    const numbers = Array.from({ length: Math.max(0, to - from + 1) }, (_, i) => from + i);
    return Promise.all(numbers.map(async (number) => (await this.trail.get(tenant, trailDocumentId('d', number)))?.value as TrailDigest | undefined));
  }

  async createDigest(tenant: TenantId, digest: TrailDigest): Promise<boolean> {
    return (await createUnlessTaken(this.trail, tenant, { id: trailDocumentId('d', digest.number), value: digest })) === 'created';
  }
}
