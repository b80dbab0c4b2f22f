import type { AuthorizerConfig, PublicJwk, TenantId } from '@mandate/contracts';
import { encodeKeySegment, type DocumentCollection, type DocumentStore, type StoredDocument } from '@mandate/store';

export const WORKLOADS_COLLECTION = 'workloads';

/** A workload as stored: tenant and revision come from the store, not from the document. */
export interface WorkloadDocument {
  name: string;
  description: string;
  allowedReturnUrls: string[];
  allowUserIdTokens: boolean;
  publicKeys: { keys: PublicJwk[] };
  tags: Record<string, string>;
  authorizer: AuthorizerConfig | null;
  createdAt: string;
  updatedAt: string;
}

export interface WorkloadPage {
  items: StoredDocument<WorkloadDocument>[];
  nextCursor?: string;
}

/**
 * The only code that touches workload persistence. Names are user input, so they are encoded
 * into store ids rather than used raw.
 */
export class WorkloadRepository {
  private constructor(private readonly collection: DocumentCollection<WorkloadDocument>) {}

  static async open(store: DocumentStore): Promise<WorkloadRepository> {
    return new WorkloadRepository(await store.collection<WorkloadDocument>(WORKLOADS_COLLECTION));
  }

  get(tenant: TenantId, name: string): Promise<StoredDocument<WorkloadDocument> | undefined> {
    return this.collection.get(tenant, encodeKeySegment(name));
  }

  create(tenant: TenantId, document: WorkloadDocument): Promise<StoredDocument<WorkloadDocument>> {
    return this.collection.create(tenant, encodeKeySegment(document.name), document);
  }

  update(tenant: TenantId, document: WorkloadDocument, expectedRevision: number): Promise<StoredDocument<WorkloadDocument>> {
    return this.collection.update(tenant, encodeKeySegment(document.name), document, expectedRevision);
  }

  delete(tenant: TenantId, name: string, expectedRevision?: number): Promise<boolean> {
    return this.collection.delete(tenant, encodeKeySegment(name), expectedRevision === undefined ? {} : { expectedRevision });
  }

  async list(tenant: TenantId, options: { limit: number; cursor?: string | undefined }): Promise<WorkloadPage> {
    const page = await this.collection.list(tenant, { limit: options.limit, ...(options.cursor ? { cursor: options.cursor } : {}) });
    return { items: [...page.items], ...(page.nextCursor ? { nextCursor: page.nextCursor } : {}) };
  }
}
