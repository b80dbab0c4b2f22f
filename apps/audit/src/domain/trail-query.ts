import type { ParsedRequestOf, ResponseOf, TenantId, TrailEntry, auditQueryEndpoint } from '@mandate/contracts';
import type { TrailRepository } from '../store/trail-repository.js';

type QueryRequest = ParsedRequestOf<typeof auditQueryEndpoint>;
type QueryResponse = ResponseOf<typeof auditQueryEndpoint>;

/** Entries read at once, newest first: a first page's worth, then twice as many each time up to the most (each read finds where it starts once). */
const FIRST_BATCH = 200;
const MAX_BATCH = 3_200;
/** Records are appended after they happen; a record that occurred this much before its append still counts. */
const APPEND_LAG_TOLERANCE_MS = 5 * 60_000;

/**
 * Answers queries by walking a tenant's chain newest first, reading entries by sequence (no
 * secondary indexes yet), until a page is full or `scanLimit` records were read; the cursor says
 * where to go on. Simple and exact, at a cost that grows with how far back the matches are; reads
 * grow as the walk goes on, since each one finds where it starts (on the stream, a binary search).
 */
export class TrailQuery {
  constructor(
    private readonly repository: TrailRepository,
    private readonly scanLimit: number,
  ) {}

  async query(request: QueryRequest): Promise<QueryResponse> {
    const tenant = request.tenant as TenantId;
    const head = await this.repository.chainHead(tenant);
    const top = request.cursor !== undefined ? Math.min(Number(request.cursor) - 1, head?.value.sequence ?? 0) : (head?.value.sequence ?? 0);
    const matches = matcher(request);
    const fromMs = request.from ? Date.parse(request.from) : undefined;
    const entries: TrailEntry[] = [];
    let scanned = 0;
    let size = FIRST_BATCH;
    for (let high = top; high >= 1; high -= size, size = Math.min(2 * size, MAX_BATCH)) {
      // Never past the scan limit: what a query reads at most is what it says.
      size = Math.min(size, this.scanLimit - scanned);
      const low = Math.max(1, high - size + 1);
      const batch = await this.repository.entries(tenant, low, high);
      for (let i = batch.length - 1; i >= 0; i -= 1) {
        const entry = batch[i];
        const sequence = low + i;
        scanned += 1;
        if (entry && fromMs !== undefined && Date.parse(entry.appendedAt) < fromMs - APPEND_LAG_TOLERANCE_MS) {
          return { entries, scanned };
        }
        if (entry && matches(entry)) {
          entries.push(entry);
          if (entries.length === request.limit) return sequence > 1 ? { entries, nextCursor: String(sequence), scanned } : { entries, scanned };
        }
      }
      if (scanned >= this.scanLimit && low > 1) return { entries, nextCursor: String(low), scanned };
    }
    return { entries, scanned };
  }
}

function matcher(request: QueryRequest): (entry: TrailEntry) => boolean {
  const fromMs = request.from ? Date.parse(request.from) : undefined;
  const toMs = request.to ? Date.parse(request.to) : undefined;
  return ({ record }) => {
    if (request.traceId !== undefined && record.traceId !== request.traceId) return false;
    if (request.workload !== undefined && record.actor.workload !== request.workload) return false;
    if (request.user !== undefined && record.actor.user?.sub !== request.user) return false;
    if (request.provider !== undefined && record.target?.provider !== request.provider) return false;
    if (request.service !== undefined && record.service !== request.service) return false;
    if (request.action !== undefined && record.action !== request.action) return false;
    if (request.outcome !== undefined && record.outcome !== request.outcome) return false;
    const at = Date.parse(record.occurredAt);
    if (fromMs !== undefined && at < fromMs) return false;
    if (toMs !== undefined && at >= toMs) return false;
    return true;
  };
}
