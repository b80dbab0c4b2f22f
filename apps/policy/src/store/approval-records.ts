import type { TenantId } from '@mandate/contracts';
import type { DocumentCollection, DocumentStore, StoredDocument } from '@mandate/store';
import type { ApprovalDocument } from '../domain/approvals/approval.js';

export const APPROVAL_COLLECTIONS = ['approvals', 'approval-digests'] as const;

/** Which approval a call digest last opened: how `consume` finds the approved one for an exact call. */
export interface DigestIndexDocument {
  approval: string;
}

/** How long an approval is kept after its expiry, for the approvals page and the audit's cross-references. */
const RETENTION_MS = 7 * 24 * 3600 * 1000;

/**
 * The only code that touches approvals in the store. Ids sort newest first (they start with the
 * time counted down), so a page of the store is a page of the newest approvals.
 */
export class ApprovalRecords {
  private constructor(
    private readonly approvals: DocumentCollection<ApprovalDocument>,
    private readonly digests: DocumentCollection<DigestIndexDocument>,
  ) {}

  static async open(store: DocumentStore): Promise<ApprovalRecords> {
    const [approvals, digests] = APPROVAL_COLLECTIONS;
    return new ApprovalRecords(await store.collection(approvals), await store.collection(digests));
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

  #ttl(document: ApprovalDocument, now: number): number {
    return Math.max(1, Date.parse(document.expiresAt) - now) + RETENTION_MS;
  }
}
