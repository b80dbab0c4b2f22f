import { createHash } from 'node:crypto';
import type { AuditRecord, TrailEntry } from '@mandate/contracts';
import { canonicalJson } from './canonical-json.js';

/**
 * The hash that makes the trail tamper-evident: SHA-256 over the canonical JSON of the entry
 * without its own hash, i.e. the record, where it sits (`sequence`), when it was appended and the
 * previous entry's hash. Editing any of them, or moving a record, changes this hash, and with it
 * every later entry's `previousHash` link.
 */
export function entryHash(entry: { sequence: number; previousHash: string; appendedAt: string; record: AuditRecord }): string {
  return sha256Hex(canonicalJson({ sequence: entry.sequence, previousHash: entry.previousHash, appendedAt: entry.appendedAt, record: entry.record }));
}

export function sha256Hex(text: string): string {
  return createHash('sha256').update(text, 'utf8').digest('hex');
}

/** Builds the next entry of a chain whose last entry had `previous` (sequence and hash). */
export function chainEntry(previous: { sequence: number; hash: string }, record: AuditRecord, appendedAt: string): TrailEntry {
  return chainLink(previous, record, appendedAt).entry;
}

/** `chainEntry`, and about how many bytes the entry takes stored (to size fragments without serialising it again). */
export function chainLink(previous: { sequence: number; hash: string }, record: AuditRecord, appendedAt: string): { entry: TrailEntry; bytes: number } {
  const unhashed = { sequence: previous.sequence + 1, previousHash: previous.hash, appendedAt, record };
  const canonical = canonicalJson(unhashed);
  // The stored form adds `"hash":"<64 hex>",` to the canonical one.
  return { entry: { ...unhashed, hash: sha256Hex(canonical) }, bytes: canonical.length + 75 };
}
