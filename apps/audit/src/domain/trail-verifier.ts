import {
  GENESIS_HASH,
  trailDigestSchema,
  trailEntrySchema,
  type AuditVerifyReport,
  type TenantId,
  type TrailDigest,
  type TrailEntry,
  type VerifyProblem,
} from '@mandate/contracts';
import type { Clock } from '@mandate/store';
import { entryHash } from './chain.js';
import { checkDigestSignature, digestHash } from './digests.js';
import type { DigestKeyRing } from './signing-keys.js';
import type { TrailRepository } from '../store/trail-repository.js';

export interface VerifyRange {
  /** A sequence number, or an ISO time: the first record appended at or after it. */
  from?: number | string | undefined;
  /** A sequence number, or an ISO time: the last record appended before it. */
  to?: number | string | undefined;
}

const MAX_PROBLEMS = 20;

/**
 * Re-derives everything about a tenant's trail from the entries, the digests and the trusted
 * public keys, and trusts the mutable heads for nothing but where to start looking:
 *
 *   - every entry in range is present, sits at the sequence it names (else `reordered`), hashes to
 *     its stored hash (else `edited`) and links to the entry before it (`reordered` when the link
 *     points at another entry of the trail, `edited` otherwise);
 *   - digests are numbered without gaps (else `digest-missing`), signed by a trusted key (else
 *     `unknown-key`), hold a valid signature, link to the previous digest and continue its range
 *     (else `digest-edited`), and the entry each one ends at still has the hash it signed (else that
 *     entry was `edited`, or is `missing`: a deleted tail);
 *   - records appended well before now are covered by a digest: digests are written every interval
 *     while the service runs, so an uncovered old record means the newest digests were removed
 *     (`digest-missing`; also what a crash right after appending looks like).
 */
export class TrailVerifier {
  constructor(
    private readonly repository: TrailRepository,
    private readonly keys: DigestKeyRing,
    private readonly digestIntervalMs: number,
    private readonly clock: Clock = Date.now,
  ) {}

  async verify(tenant: TenantId, range: VerifyRange = {}): Promise<AuditVerifyReport> {
    const problems: VerifyProblem[] = [];
    const digests = await this.#digests(tenant);
    const head = await this.repository.chainHead(tenant);
    // Only digests that check out say how long the chain is: an edited one could claim anything.
    let last = Math.max(head?.value.sequence ?? 0, ...digests.map((d) => (d.problem ? 0 : (d.digest?.toSequence ?? 0))));
    while (await this.repository.entry(tenant, last + 1)) last += 1; // appended, head not yet moved
    const from = Math.max(1, await this.#resolve(tenant, range.from, 'from', last));
    const to = Math.min(last, await this.#resolve(tenant, range.to, 'to', last));

    // Entries, with the one before the range to check the first link against.
    const offset = Math.max(1, from - 1);
    const fetched = from <= to ? await this.repository.entries(tenant, offset, to) : [];
    const at = (sequence: number) => fetched[sequence - offset];
    const sequenceOfHash = new Map<string, number>();
    for (const entry of fetched) if (entry) sequenceOfHash.set(entry.hash, entry.sequence);
    const broken = new Set<number>();
    const recordProblem = (problem: VerifyProblem & { sequence: number }) => {
      broken.add(problem.sequence);
      problems.push(problem);
    };
    for (let sequence = from; sequence <= to; sequence += 1) {
      const problem = this.#checkEntry(sequence, at(sequence), at(sequence - 1), sequenceOfHash);
      if (problem) recordProblem(problem);
    }

    // Digests in range, and the entries they end at.
    let digestsValid = 0;
    let digestsTotal = 0;
    for (const { number, digest, problem } of digests) {
      const inRange = digest ? digest.fromSequence - 1 <= to && digest.toSequence >= from - 1 : true;
      if (!inRange) continue;
      digestsTotal += 1;
      if (problem) {
        problems.push(problem);
        continue;
      }
      digestsValid += 1;
      if (digest && digest.toSequence >= 1) {
        const anchor = digest.toSequence >= offset && digest.toSequence <= to ? at(digest.toSequence) : await this.repository.entry(tenant, digest.toSequence);
        if (!anchor) {
          if (!broken.has(digest.toSequence)) recordProblem({ kind: 'missing', sequence: digest.toSequence, message: `record ${digest.toSequence} is missing, although digest ${number} signed the trail up to it` });
        } else if (anchor.hash !== digest.lastHash && !broken.has(digest.toSequence)) {
          recordProblem({ kind: 'edited', sequence: digest.toSequence, message: `record ${digest.toSequence} is not the record digest ${number} signed (the trail up to it was rewritten)` });
        }
      }
    }

    // Old records that no digest covers.
    const lastSigned = digests.findLast((d) => d.digest)?.digest?.toSequence ?? 0;
    if (last > lastSigned && to > lastSigned) {
      const firstUnsigned = at(Math.max(from, lastSigned + 1)) ?? (await this.repository.entry(tenant, lastSigned + 1));
      const grace = 2 * this.digestIntervalMs + 60_000;
      if (firstUnsigned && Date.parse(firstUnsigned.appendedAt) < this.clock() - grace) {
        problems.push({
          kind: 'digest-missing',
          sequence: firstUnsigned.sequence,
          message: `no digest covers record ${firstUnsigned.sequence} (appended ${firstUnsigned.appendedAt}), though digests are written every ${this.digestIntervalMs / 1000} s: the newest digests were removed, or the service crashed before signing`,
        });
      }
    }

    problems.sort((a, b) => rank(a) - rank(b));
    const total = Math.max(0, to - from + 1);
    const report: AuditVerifyReport = {
      tenant,
      ok: problems.length === 0,
      fromSequence: from,
      toSequence: to,
      records: { valid: total - [...broken].filter((s) => s >= from && s <= to).length, total },
      digests: { valid: digestsValid, total: digestsTotal },
      problems: problems.slice(0, MAX_PROBLEMS),
    };
    if (problems[0]) report.problem = problems[0];
    return report;
  }

  #checkEntry(sequence: number, entry: TrailEntry | undefined, previous: TrailEntry | undefined, sequenceOfHash: Map<string, number>): (VerifyProblem & { sequence: number }) | undefined {
    if (!entry) return { kind: 'missing', sequence, message: `record ${sequence} is missing` };
    const parsed = trailEntrySchema.safeParse(entry);
    if (!parsed.success) return { kind: 'edited', sequence, message: `record ${sequence} is not a well-formed trail entry (${parsed.error.issues[0]?.path.join('.') ?? 'shape'})` };
    if (entry.sequence !== sequence) {
      return { kind: 'reordered', sequence, message: `the record stored at position ${sequence} is record ${entry.sequence}` };
    }
    if (entryHash(entry) !== entry.hash) return { kind: 'edited', sequence, message: `record ${sequence} was edited: its content does not match its hash` };
    const expectedPrevious = sequence === 1 ? GENESIS_HASH : previous?.hash;
    if (expectedPrevious !== undefined && entry.previousHash !== expectedPrevious) {
      const linked = sequenceOfHash.get(entry.previousHash);
      return linked !== undefined
        ? { kind: 'reordered', sequence, message: `record ${sequence} follows record ${linked}, not record ${sequence - 1}` }
        : { kind: 'edited', sequence, message: `record ${sequence} does not follow record ${sequence - 1}: one of them was replaced` };
    }
    return undefined;
  }

  /** Every digest, numbered from 1, each with its first problem. */
  async #digests(tenant: TenantId): Promise<{ number: number; digest?: TrailDigest; problem?: VerifyProblem }[]> {
    const head = await this.repository.digestHead(tenant);
    let count = head?.value.number ?? 0;
    while (await this.repository.digest(tenant, count + 1)) count += 1;
    const loaded = await this.repository.digests(tenant, 1, count);
    return loaded.map((digest, i) => {
      const number = i + 1;
      if (!digest) return { number, problem: { kind: 'digest-missing', digest: number, message: `digest ${number} is missing` } };
      const problem = this.#checkDigest(number, digest, loaded[i - 1], i > 0 && !loaded[i - 1]);
      return problem ? { number, digest, problem } : { number, digest };
    });
  }

  #checkDigest(number: number, digest: TrailDigest, previous: TrailDigest | undefined, previousMissing: boolean): VerifyProblem | undefined {
    const edited = (why: string): VerifyProblem => ({ kind: 'digest-edited', digest: number, message: `digest ${number} ${why}` });
    if (!trailDigestSchema.safeParse(digest).success || digest.number !== number) return edited('is not a well-formed digest for its position');
    const signature = checkDigestSignature(this.keys, digest);
    if (signature === 'unknown-key') return { kind: 'unknown-key', digest: number, message: `digest ${number} is signed with key ${digest.kid}, which is not a trusted audit signing key` };
    if (signature === 'invalid') return edited('was edited: its signature does not match its content');
    if (previousMissing) return undefined; // already reported; nothing to link against
    const expectedLink = previous ? digestHash(previous) : GENESIS_HASH;
    if (digest.previousDigestHash !== expectedLink) return edited(`does not link to digest ${number - 1}`);
    if (digest.fromSequence !== (previous?.toSequence ?? 0) + 1) return edited(`does not continue where digest ${number - 1} ended`);
    return undefined;
  }

  async #resolve(tenant: TenantId, bound: number | string | undefined, side: 'from' | 'to', last: number): Promise<number> {
    if (bound === undefined) return side === 'from' ? 1 : last;
    if (typeof bound === 'number') return bound;
    // The first sequence appended at or after the time (appendedAt never decreases along a chain).
    const time = Date.parse(bound);
    let low = 1;
    let high = last + 1;
    while (low < high) {
      const mid = Math.floor((low + high) / 2);
      const entry = await this.repository.entry(tenant, mid);
      if (entry && Date.parse(entry.appendedAt) >= time) high = mid;
      else low = mid + 1;
    }
    return side === 'from' ? low : low - 1;
  }
}

/** Record problems by sequence first, then digest problems by number. */
function rank(problem: VerifyProblem): number {
  return problem.sequence !== undefined ? problem.sequence : 1e13 + (problem.digest ?? 0);
}
