import type { PolicyMode, TenantId } from '@mandate/contracts';
import { createUnlessTaken, type DocumentCollection, type DocumentStore, type StoredDocument } from '@mandate/store';

export const POLICY_COLLECTIONS = ['policies', 'policy-versions', 'policy-attachments'] as const;

export interface PolicyVersionInfo {
  version: number;
  hash: string;
  createdAt: string;
  actor?: string;
}

/** A policy set: its versions' metadata (the texts are kept apart, one record each) and which is active. */
export interface PolicyDocument {
  name: string;
  description: string;
  active: number;
  versions: PolicyVersionInfo[];
}

export interface AttachmentDocument {
  gateway: string;
  policy: string;
  mode: PolicyMode;
}

/** The only code that touches the policy service's persistence. Names are lower-case and dashes, so they are ids as they are. */
export class PolicyRecords {
  private constructor(
    private readonly policies: DocumentCollection<PolicyDocument>,
    private readonly texts: DocumentCollection<{ text: string }>,
    private readonly attachments: DocumentCollection<AttachmentDocument>,
  ) {}

  static async open(store: DocumentStore): Promise<PolicyRecords> {
    const [policies, texts, attachments] = POLICY_COLLECTIONS;
    return new PolicyRecords(await store.collection(policies), await store.collection(texts), await store.collection(attachments));
  }

  policy(tenant: TenantId, name: string): Promise<StoredDocument<PolicyDocument> | undefined> {
    return this.policies.get(tenant, name);
  }

  createPolicy(tenant: TenantId, document: PolicyDocument): Promise<StoredDocument<PolicyDocument>> {
    return this.policies.create(tenant, document.name, document);
  }

  updatePolicy(tenant: TenantId, document: PolicyDocument, expectedRevision: number): Promise<StoredDocument<PolicyDocument>> {
    return this.policies.update(tenant, document.name, document, expectedRevision);
  }

  deletePolicy(tenant: TenantId, name: string): Promise<boolean> {
    return this.policies.delete(tenant, name);
  }

  async listPolicies(tenant: TenantId, limit: number, cursor: string | undefined): Promise<{ items: StoredDocument<PolicyDocument>[]; nextCursor?: string }> {
    const page = await this.policies.list(tenant, { limit, ...(cursor ? { cursor } : {}) });
    return { items: [...page.items], ...(page.nextCursor ? { nextCursor: page.nextCursor } : {}) };
  }

  /** A version's text is written once, before the version is named in its policy set, and never changed. */
  async putText(tenant: TenantId, policy: string, version: number, text: string): Promise<void> {
    await createUnlessTaken(this.texts, tenant, { id: `${policy}.${version}`, value: { text } });
  }

  async text(tenant: TenantId, policy: string, version: number): Promise<string | undefined> {
    return (await this.texts.get(tenant, `${policy}.${version}`))?.value.text;
  }

  async deleteTexts(tenant: TenantId, policy: string, versions: readonly number[]): Promise<void> {
    for (const version of versions) await this.texts.delete(tenant, `${policy}.${version}`);
  }

  attachment(tenant: TenantId, gateway: string): Promise<StoredDocument<AttachmentDocument> | undefined> {
    return this.attachments.get(tenant, gateway);
  }

  async putAttachment(tenant: TenantId, document: AttachmentDocument): Promise<void> {
    const current = await this.attachments.get(tenant, document.gateway);
    if (current) await this.attachments.update(tenant, document.gateway, document, current.revision);
    else await this.attachments.create(tenant, document.gateway, document);
  }

  /** Only if it is still the one read (`revision`): otherwise `conflict`, and nothing changes. */
  async updateAttachment(tenant: TenantId, document: AttachmentDocument, revision: StoredDocument<AttachmentDocument>['revision']): Promise<void> {
    await this.attachments.update(tenant, document.gateway, document, revision);
  }

  deleteAttachment(tenant: TenantId, gateway: string): Promise<boolean> {
    return this.attachments.delete(tenant, gateway);
  }

  /** Every attachment of the tenant (a tenant has few gateways). */
  async attachmentsOf(tenant: TenantId): Promise<AttachmentDocument[]> {
    const all: AttachmentDocument[] = [];
    let cursor: string | undefined;
    do {
      const page = await this.attachments.list(tenant, { limit: 1000, ...(cursor ? { cursor } : {}) });
      all.push(...page.items.map((item) => item.value));
      cursor = page.nextCursor;
    } while (cursor);
    return all;
  }
}
