import { MandateError, type jobCreateEndpoint, type JobView, type ParsedRequestOf, type RunView, type TenantId } from '@mandate/contracts';
import type { JobRegistry } from './jobs.js';

/** The event-trigger consumers of jobs (intake/event-triggers.ts). */
export interface TriggerConsumers {
  declare(tenant: TenantId, job: string, filter: string): Promise<void>;
  remove(tenant: TenantId, job: string): Promise<void>;
  reconcile(active: readonly { tenant: TenantId; job: string; filter: string }[]): Promise<void>;
}

/** Creating, reading, pausing, resuming and deleting jobs, with the consumers of their event triggers kept in step. */
export class JobAdministration {
  constructor(
    private readonly jobs: JobRegistry,
    private readonly triggers: TriggerConsumers,
  ) {}

  async create(request: ParsedRequestOf<typeof jobCreateEndpoint>): Promise<JobView> {
    // The consumer first: an event published right after create must reach the job.
    if (request.trigger.kind === 'event') await this.triggers.declare(request.tenant, request.name, request.trigger.subject);
    try {
      const job = await this.jobs.create(request);
      if (job.trigger.kind === 'event') await this.reconcileTriggers();
      return job;
    } catch (error) {
      if (request.trigger.kind === 'event' && !(error instanceof MandateError && error.code === 'conflict')) await this.triggers.remove(request.tenant, request.name).catch(() => undefined);
      throw error;
    }
  }

  get(tenant: TenantId, name: string): Promise<JobView> {
    return this.jobs.view(tenant, name);
  }

  list(tenant: TenantId, limit: number, cursor: string | undefined): Promise<{ items: JobView[]; nextCursor?: string }> {
    return this.jobs.list(tenant, limit, cursor);
  }

  async setState(tenant: TenantId, name: string, state: 'active' | 'paused', actor?: string): Promise<JobView> {
    const job = await this.jobs.setState(tenant, name, state, actor);
    if (job.trigger.kind === 'event') await this.reconcileTriggers();
    return job;
  }

  async delete(tenant: TenantId, name: string, actor?: string): Promise<{ deleted: true }> {
    const job = await this.jobs.delete(tenant, name, actor);
    if (job.trigger.kind === 'event') await this.triggers.remove(tenant, name);
    return { deleted: true };
  }

  runs(tenant: TenantId, name: string, limit: number, cursor: string | undefined): Promise<{ items: RunView[]; nextCursor?: string }> {
    return this.jobs.runs(tenant, name, limit, cursor);
  }

  /** Consumes the triggers of every active event job, and no others. */
  async reconcileTriggers(): Promise<void> {
    const active: { tenant: TenantId; job: string; filter: string }[] = [];
    for await (const { tenant, job } of this.jobs.all()) {
      if (job.value.state === 'active' && job.value.trigger.kind === 'event') active.push({ tenant, job: job.value.name, filter: job.value.trigger.subject });
    }
    await this.triggers.reconcile(active);
  }
}
