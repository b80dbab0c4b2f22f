import { MandateError, SYSTEM_TENANT, type TenantId } from '@mandate/contracts';
import type { DocumentCollection, DocumentStore, StoredDocument } from '@mandate/store';
import type { ApprovalDocument } from '../domain/approvals/approval.js';

export const APPROVAL_COLLECTIONS = ['approvals', 'approval-digests', 'approval-expiries'] as const;

/** Which approval a call digest last opened: how `consume` finds the approved one for an exact call. */
export interface DigestIndexDocument {
  approval: string;
}

/** When an approval lapses, across tenants (in the `system` partition): what the expiry sweep reads in time order. */
export interface ExpiryEntry {
  /** The entry's id: when it is due (the approval's expiry, or later once postponed) as 15 digits of milliseconds, then tenant and approval, so ids sort by time. */
  readonly key: string;
  readonly tenant: TenantId;
  readonly approval: string;
  /** When the entry is due: the approval's expiry, or the time the sweep postponed it to. */
  readonly expiresAt: number;
}

interface ExpiryDocument {
  tenant: TenantId;
  approval: string;
  expiresAt: number;
}

/** How long an approval is kept after its expiry, for the approvals page and the audit's cross-references. */
const RETENTION_MS = 7 * 24 * 3600 * 1000;
const DAY_MS = 24 * 3600 * 1000;
/** An expiry entry outlives its approval's expiry by this at most: the sweep drops it long before. */
const EXPIRY_ENTRY_GRACE_MS = DAY_MS;
/**
 * The expiry index's max age: the longest approval (7 days, the contract's bound) and the grace.
 * A dropped entry leaves a delete marker on JetStream KV; the max age takes those away too, so
 * the index (which every sweep lists) holds about a week of approvals, not every one ever made.
 */
const EXPIRY_INDEX_MAX_AGE_MS = 7 * DAY_MS + EXPIRY_ENTRY_GRACE_MS;
/** Due entries are read this many at a time: a sweep with nothing due reads one page. */
const DUE_PAGE = 50;

/**
 * The only code that touches approvals in the store. Ids sort newest first (they start with the
 * time counted down), so a page of the store is a page of the newest approvals.
 */
export class ApprovalRecords {
  private constructor(
    private readonly approvals: DocumentCollection<ApprovalDocument>,
    private readonly digests: DocumentCollection<DigestIndexDocument>,
    private readonly expiries: DocumentCollection<ExpiryDocument>,
  ) {}

  static async open(store: DocumentStore): Promise<ApprovalRecords> {
    const [approvals, digests, expiries] = APPROVAL_COLLECTIONS;
    return new ApprovalRecords(await store.collection(approvals), await store.collection(digests), await store.collection(expiries, { maxAgeMs: EXPIRY_INDEX_MAX_AGE_MS }));
  }

  approval(tenant: TenantId, id: string): Promise<StoredDocument<ApprovalDocument> | undefined> {
    return this.approvals.get(tenant, id);
  }

  create(tenant: TenantId, document: ApprovalDocument, now: number): Promise<StoredDocument<ApprovalDocument>> {
    return this.approvals.create(tenant, document.id, document, { ttlMs: this.#ttl(document, now) });
  }

  /** Writes the next state only if nobody wrote since `expectedRevision` was read (`conflict` otherwise). */
  update(tenant: TenantId, document: ApprovalDocument, expectedRevision: number, now: number): Promise<StoredDocument<ApprovalDocument>> {
    return this.approvals.update(tenant, document.id, document, expectedRevision, { ttlMs: this.#ttl(document, now) });
  }

  /** An approval that was written but never announced (it lost the race for its digest). */
  async discard(tenant: TenantId, id: string): Promise<void> {
    await this.approvals.delete(tenant, id);
  }

  digestIndex(tenant: TenantId, digest: string): Promise<StoredDocument<DigestIndexDocument> | undefined> {
    return this.digests.get(tenant, digest);
  }

  /** Points the digest at an approval: created when absent, else only over the revision read (`conflict` when another request won). */
  async pointDigest(tenant: TenantId, digest: string, approval: ApprovalDocument, expectedRevision: number | undefined, now: number): Promise<void> {
    const options = { ttlMs: this.#ttl(approval, now) };
    if (expectedRevision === undefined) await this.digests.create(tenant, digest, { approval: approval.id }, options);
    else await this.digests.update(tenant, digest, { approval: approval.id }, expectedRevision, options);
  }

  /** One page of the store, newest first. */
  async page(tenant: TenantId, limit: number, cursor: string | undefined): Promise<{ items: StoredDocument<ApprovalDocument>[]; nextCursor?: string }> {
    const page = await this.approvals.list(tenant, { limit, ...(cursor ? { cursor } : {}) });
    return { items: [...page.items], ...(page.nextCursor ? { nextCursor: page.nextCursor } : {}) };
  }

  /** Notes when an approval lapses, before it exists: an approval is never left out of the sweep (an entry without one is dropped by it). */
  async scheduleExpiry(tenant: TenantId, document: ApprovalDocument, now: number): Promise<void> {
    const expiresAt = Date.parse(document.expiresAt);
    const key = `${String(expiresAt).padStart(15, '0')}.${tenant}.${document.id}`;
    await this.expiries.create(SYSTEM_TENANT, key, { tenant, approval: document.id, expiresAt }, { ttlMs: Math.max(1, expiresAt - now) + EXPIRY_ENTRY_GRACE_MS });
  }

  /** The entries due by `now`, earliest first, at most `limit`; read a page at a time up to the first not due. */
  async dueExpiries(now: number, limit: number): Promise<ExpiryEntry[]> {
    const due: ExpiryEntry[] = [];
    let cursor: string | undefined;
    do {
      const page = await this.expiries.list(SYSTEM_TENANT, { limit: Math.min(DUE_PAGE, limit - due.length), ...(cursor ? { cursor } : {}) });
      for (const item of page.items) {
        if (item.value.expiresAt > now) return due;
        due.push({ key: item.id, ...item.value });
      }
      cursor = page.nextCursor;
    } while (cursor && due.length < limit);
    return due;
  }

  async forgetExpiry(entry: ExpiryEntry): Promise<void> {
    await this.expiries.delete(SYSTEM_TENANT, entry.key);
  }

  /**
   * Moves an entry the sweep could not handle to `dueAt`, so it is not retried on every sweep nor
   * kept in front of the entries behind it: the later entry is written before the earlier one goes.
   */
  async postponeExpiry(entry: ExpiryEntry, dueAt: number, now: number): Promise<void> {
    const key = `${String(dueAt).padStart(15, '0')}.${entry.tenant}.${entry.approval}`;
    try {
      await this.expiries.create(SYSTEM_TENANT, key, { tenant: entry.tenant, approval: entry.approval, expiresAt: dueAt }, { ttlMs: Math.max(1, dueAt - now) + EXPIRY_ENTRY_GRACE_MS });
    } catch (error) {
      // Postponed to the same time already (another replica): that entry stands.
      if (!(error instanceof MandateError && error.code === 'conflict')) throw error;
    }
    await this.expiries.delete(SYSTEM_TENANT, entry.key);
  }

  #ttl(document: ApprovalDocument, now: number): number {
    return Math.max(1, Date.parse(document.expiresAt) - now) + RETENTION_MS;
  }
}
