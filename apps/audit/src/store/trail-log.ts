import { promisify } from 'node:util';
import { deflateRaw, inflateRaw } from 'node:zlib';
import type { TenantId, TrailDigest, TrailEntry } from '@mandate/contracts';

/**
 * Where a tenant's entries and signed digests are stored: what the trail is, apart from its heads.
 * Two kinds: an append-only JetStream stream (stream-trail-log.ts, the embedded default) and a
 * collection of documents (document-trail-log.ts: MongoDB, and trails written on JetStream KV
 * before the stream). Both store entries in fragments, a run of consecutive entries deflated.
 */
export interface TrailLog {
  /**
   * Writes consecutive entries, a fragment per page they touch (or more, for large records);
   * `conflict` when their first sequence is taken, or (on the stream) when they do not continue
   * the chain as stored. `sizes`, when the caller knows them, are the entries' stored sizes in bytes.
   */
  createEntries(tenant: TenantId, entries: readonly TrailEntry[], sizes?: readonly number[]): Promise<void>;
  /** Entries `from`..`to` (inclusive), each at its position; a missing one is `undefined`. */
  entries(tenant: TenantId, from: number, to: number): Promise<(TrailEntry | undefined)[]>;
  /** The fragment that holds `sequence` as stored, for tools that examine the stored trail. */
  fragmentHolding(tenant: TenantId, sequence: number): Promise<StoredFragment | undefined>;
  /** Digests `from`..`to` by number; a missing one is `undefined`. */
  digests(tenant: TenantId, from: number, to: number): Promise<(TrailDigest | undefined)[]>;
  /** Whether it was written: false when a digest with its number exists. */
  createDigest(tenant: TenantId, digest: TrailDigest): Promise<boolean>;
  /** Why the store, as configured now, would not keep every entry (`''` when it would), where that can change under the service. */
  wouldLoseEntries?(): Promise<string>;
}

/** A fragment as stored: where (`id`, `revision`: a document's, or the stream message's sequence twice), from which sequence, holding what. */
export interface StoredFragment {
  id: string;
  revision: number;
  first: number;
  entries: TrailEntry[];
}

/** Sequences per page: a fragment never spans two, so reading one entry walks at most this many fragments. */
export const PAGE = 128;
/** A fragment stays well under NATS's default 1 MiB message limit (a record alone can be larger; it then gets its own fragment). */
const MAX_FRAGMENT_BYTES = 256 * 1024;
/** What a fragment may inflate to at most: a page of the largest records there can be, with room to spare. */
const MAX_INFLATED_BYTES = 64 * 1024 * 1024;

const deflate = promisify(deflateRaw);
const inflate = promisify(inflateRaw);

export function pageStart(sequence: number): number {
  return Math.floor((sequence - 1) / PAGE) * PAGE + 1;
}

/** Splits consecutive entries at page boundaries and before a fragment grows past MAX_FRAGMENT_BYTES. */
export function fragmentsOf(entries: readonly TrailEntry[], sizes: readonly number[] | undefined): TrailEntry[][] {
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

/** A fragment's entries as stored: their JSON deflated (RFC 1951), about a quarter of its size. */
export async function deflateEntries(entries: readonly TrailEntry[]): Promise<Buffer> {
  return deflate(JSON.stringify(entries));
}

/**
 * The entries a deflated fragment holds. One that does not inflate or parse (a store tampered
 * with) holds none: its entries read as missing, which `verify` reports.
 */
export async function inflateEntries(deflated: Uint8Array): Promise<TrailEntry[]> {
  try {
    const entries: unknown = JSON.parse((await inflate(deflated, { maxOutputLength: MAX_INFLATED_BYTES })).toString('utf8'));
    return Array.isArray(entries) ? (entries as TrailEntry[]) : [];
  } catch {
    return [];
  }
}
