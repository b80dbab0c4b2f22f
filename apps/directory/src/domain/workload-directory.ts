import {
  MandateError,
  workloadChangedEvent,
  type AuditActionOf,
  type AuditSink,
  type AuthorizerConfig,
  type directoryAudit,
  type EventSink,
  type ParsedRequestOf,
  type TenantId,
  type Workload,
  type WorkloadChanged,
  type workloadCreateEndpoint,
  type workloadUpdateEndpoint,
} from '@mandate/contracts';
import type { StoredDocument } from '@mandate/store';
import type { WorkloadDocument, WorkloadRepository } from '../store/workload-repository.js';
import { assertUsablePublicKeys } from './public-keys.js';

type DirectoryAction = AuditActionOf<typeof directoryAudit>;

type CreateRequest = ParsedRequestOf<typeof workloadCreateEndpoint>;
type UpdateRequest = ParsedRequestOf<typeof workloadUpdateEndpoint>;
type Change = WorkloadChanged['change'];

/**
 * Workload identities of every tenant: the rules around creating, changing and deleting them.
 * Each change is written first, then audited and announced, so a failed write leaves no trace
 * claiming it happened.
 */
export class WorkloadDirectory {
  constructor(
    private readonly repository: WorkloadRepository,
    private readonly audit: AuditSink<DirectoryAction>,
    private readonly events: EventSink,
    private readonly now: () => Date = () => new Date(),
  ) {}

  async create(request: CreateRequest): Promise<Workload> {
    await assertUsablePublicKeys(request.publicKeys.keys);
    const at = this.now().toISOString();
    const document: WorkloadDocument = {
      name: request.name,
      description: request.description,
      allowedReturnUrls: unique(request.allowedReturnUrls),
      allowUserIdTokens: request.allowUserIdTokens,
      publicKeys: request.publicKeys,
      tags: request.tags,
      authorizer: request.authorizer ?? null,
      createdAt: at,
      updatedAt: at,
    };
    const stored = await this.repository.create(request.tenant, document).catch((error: unknown) => {
      throw isCode(error, 'conflict') ? new MandateError('conflict', `a workload named ${request.name} already exists in this tenant`) : error;
    });
    await this.announce(request.tenant, stored, 'created', 'workload-create', request.actor);
    return toWorkload(request.tenant, stored);
  }

  async get(tenant: TenantId, name: string): Promise<Workload> {
    return toWorkload(tenant, await this.require(tenant, name));
  }

  async list(tenant: TenantId, limit: number, cursor: string | undefined): Promise<{ items: Workload[]; nextCursor?: string }> {
    const page = await this.repository.list(tenant, { limit, cursor });
    return { items: page.items.map((item) => toWorkload(tenant, item)), ...(page.nextCursor ? { nextCursor: page.nextCursor } : {}) };
  }

  async update(request: UpdateRequest): Promise<Workload> {
    if (request.set.publicKeys) await assertUsablePublicKeys(request.set.publicKeys.keys);
    const { set } = request;
    // `set` holds only the fields the request names (a JSON body has no undefined values).
    return this.change(request.tenant, request.name, request.expectedRevision, 'workload-update', request.actor, (current) => ({
      ...current,
      ...set,
      ...(set.allowedReturnUrls ? { allowedReturnUrls: unique(set.allowedReturnUrls) } : {}),
    }));
  }

  async setAuthorizer(tenant: TenantId, name: string, authorizer: AuthorizerConfig | null, expectedRevision: number | undefined, actor: string | undefined): Promise<Workload> {
    return this.change(tenant, name, expectedRevision, 'authorizer-set', actor, (current) => ({ ...current, authorizer }));
  }

  async delete(tenant: TenantId, name: string, expectedRevision: number | undefined, actor: string | undefined): Promise<{ deleted: true }> {
    const current = await this.require(tenant, name);
    if (expectedRevision !== undefined && current.revision !== expectedRevision) throw revisionConflict(name);
    const deleted = await this.repository.delete(tenant, name, current.revision).catch((error: unknown) => {
      throw isCode(error, 'conflict') ? revisionConflict(name) : error;
    });
    if (!deleted) throw notFound(name);
    await this.announce(tenant, current, 'deleted', 'workload-delete', actor);
    return { deleted: true };
  }

  /** Read, change, write back only if nobody wrote in between (the store's compare-and-swap). */
  private async change(
    tenant: TenantId,
    name: string,
    expectedRevision: number | undefined,
    action: DirectoryAction,
    actor: string | undefined,
    apply: (current: WorkloadDocument) => WorkloadDocument,
  ): Promise<Workload> {
    const current = await this.require(tenant, name);
    if (expectedRevision !== undefined && current.revision !== expectedRevision) throw revisionConflict(name);
    const next = { ...apply(current.value), updatedAt: this.now().toISOString() };
    const stored = await this.repository.update(tenant, next, current.revision).catch((error: unknown) => {
      throw isCode(error, 'conflict') ? revisionConflict(name) : error;
    });
    await this.announce(tenant, stored, 'updated', action, actor);
    return toWorkload(tenant, stored);
  }

  private async require(tenant: TenantId, name: string): Promise<StoredDocument<WorkloadDocument>> {
    const stored = await this.repository.get(tenant, name);
    if (!stored) throw notFound(name);
    return stored;
  }

  private async announce(tenant: TenantId, stored: StoredDocument<WorkloadDocument>, change: Change, action: DirectoryAction, actor: string | undefined) {
    await this.audit.audit({
      tenant,
      action,
      outcome: 'succeeded',
      actor: { admin: actor ?? 'admin-api', workload: stored.value.name },
      details: { revision: stored.revision, change },
    });
    await this.events.publishEvent(workloadChangedEvent, tenant, { name: stored.value.name, change, revision: stored.revision });
  }
}

function toWorkload(tenant: TenantId, stored: StoredDocument<WorkloadDocument>): Workload {
  return { tenant, ...stored.value, revision: stored.revision };
}

function unique(values: readonly string[]): string[] {
  return [...new Set(values)];
}

function isCode(error: unknown, code: string): boolean {
  return error instanceof MandateError && error.code === code;
}

function notFound(name: string): MandateError {
  return new MandateError('not_found', `no workload named ${name} in this tenant`);
}

function revisionConflict(name: string): MandateError {
  return new MandateError('conflict', `workload ${name} was changed by someone else; read it again and retry`);
}
