import { randomUUID } from 'node:crypto';
import type { JWK } from 'jose';
import {
  jobChangedEvent,
  MandateError,
  taskSubject,
  triggerSubject,
  type AuditActionOf,
  type AuditSink,
  type EventSink,
  type schedulerAudit,
  type JobView,
  type LastRun,
  type ParsedRequestOf,
  type RunView,
  type TenantId,
  type jobCreateEndpoint,
} from '@mandate/contracts';
import type { EnvelopeCipher } from '@mandate/crypto';
import type { StoredDocument } from '@mandate/store';
import type { SchedulerRepositories } from '../store/repositories.js';
import { jobKey, type JobDocument, type RunDocument } from '../store/scheduler-records.js';
import { CronSchedule } from './cron.js';

export type SchedulerAuditSink = AuditSink<AuditActionOf<typeof schedulerAudit>>;

type CreateRequest = ParsedRequestOf<typeof jobCreateEndpoint>;

/** Refuses a job whose workload key or provider the rest of the system does not know (`JobReferences`), before anything is stored. */
export type ReferenceCheck = (request: CreateRequest) => Promise<void>;

/**
 * Job definitions of every tenant. The workload key is sealed on the way in (bound to tenant and
 * job) and opened only to sign a client assertion for a run.
 */
export class JobRegistry {
  constructor(
    private readonly stores: SchedulerRepositories,
    private readonly cipher: EnvelopeCipher,
    private readonly audit: SchedulerAuditSink,
    private readonly events: EventSink,
    private readonly checkReferences: ReferenceCheck,
    private readonly now: () => number = Date.now,
  ) {}

  async create(request: CreateRequest): Promise<JobView> {
    if (request.trigger.kind === 'cron') CronSchedule.of(request.trigger.expression, request.trigger.timeZone);
    await this.checkReferences(request);
    const at = this.now();
    const document: JobDocument = {
      uid: randomUUID(),
      name: request.name,
      description: request.description,
      workload: request.workload.name,
      sealedKey: this.cipher.sealToString(JSON.stringify(request.workload.privateJwk), sealId(request.tenant, request.name)),
      trigger: request.trigger,
      action: request.action,
      missedFire: request.missedFire,
      retry: request.retry,
      state: request.paused ? 'paused' : 'active',
      activeSince: at,
      createdAt: at,
      updatedAt: at,
    };
    const stored = await this.stores.jobs.create(request.tenant, document).catch((error: unknown) => {
      if (error instanceof MandateError && error.code === 'conflict') throw new MandateError('conflict', `job ${request.name} already exists`);
      throw error;
    });
    await this.stores.index.addJob(request.tenant, request.name, at);
    await this.#changed(request.tenant, document, 'job-create', request.actor);
    return view(request.tenant, stored, at);
  }

  async get(tenant: TenantId, name: string): Promise<StoredDocument<JobDocument>> {
    const stored = await this.stores.jobs.get(tenant, name);
    if (!stored) throw new MandateError('not_found', `no job ${name}`);
    return stored;
  }

  async find(tenant: TenantId, name: string): Promise<StoredDocument<JobDocument> | undefined> {
    return this.stores.jobs.get(tenant, name);
  }

  async view(tenant: TenantId, name: string): Promise<JobView> {
    return this.#viewWithLastRun(tenant, await this.get(tenant, name), this.now());
  }

  async list(tenant: TenantId, limit: number, cursor?: string): Promise<{ items: JobView[]; nextCursor?: string }> {
    const page = await this.stores.jobs.list(tenant, limit, cursor);
    const now = this.now();
    const items = await Promise.all(page.items.map((item) => this.#viewWithLastRun(tenant, item, now)));
    return { items, ...(page.nextCursor ? { nextCursor: page.nextCursor } : {}) };
  }

  async setState(tenant: TenantId, name: string, state: 'active' | 'paused', actor?: string): Promise<JobView> {
    const at = this.now();
    const stored = await this.stores.jobs.change(tenant, name, (job) =>
      job.state === state ? undefined : { ...job, state, updatedAt: at, ...(state === 'active' ? { activeSince: at } : {}) },
    );
    await this.#changed(tenant, stored.value, state === 'active' ? 'job-resume' : 'job-pause', actor);
    return this.#viewWithLastRun(tenant, stored, at);
  }

  async delete(tenant: TenantId, name: string, actor?: string): Promise<JobDocument> {
    const stored = await this.get(tenant, name);
    await this.stores.jobs.delete(tenant, name);
    await this.stores.index.removeJob(tenant, name);
    await this.#changed(tenant, stored.value, 'job-delete', actor);
    return stored.value;
  }

  /**
   * Moves `lastFiredAt` forward to `at` and `lastRunId` to `run` (never back), whichever replica
   * gets there first. A job's run ids sort in fire order: one job has one kind of trigger, and the
   * fire time or stream sequence in the id is zero-padded.
   */
  async advance(tenant: TenantId, name: string, at: number, run: string): Promise<void> {
    await this.stores.jobs.change(tenant, name, (job) => {
      if ((job.lastFiredAt ?? 0) >= at && (job.lastRunId ?? '') >= run) return undefined;
      return { ...job, lastFiredAt: Math.max(at, job.lastFiredAt ?? 0), lastRunId: (job.lastRunId ?? '') >= run ? job.lastRunId : run };
    }).catch((error: unknown) => {
      if (!(error instanceof MandateError && error.code === 'not_found')) throw error;
    });
  }

  /** The workload's private key, for signing one client assertion. */
  openKey(tenant: TenantId, job: JobDocument): JWK {
    try {
      return JSON.parse(this.cipher.openString(job.sealedKey, sealId(tenant, job.name)).toString('utf8')) as JWK;
    } catch (cause) {
      throw new MandateError('internal', 'the workload key of the job cannot be opened', { cause });
    }
  }

  /** Every job of every tenant, from the deployment-wide index. */
  async *all(): AsyncGenerator<{ tenant: TenantId; job: StoredDocument<JobDocument> }> {
    for await (const entry of this.stores.index.jobs()) {
      const tenant = entry.tenant as TenantId;
      const job = await this.stores.jobs.get(tenant, entry.job);
      if (job) yield { tenant, job };
    }
  }

  async runs(tenant: TenantId, name: string, limit: number, cursor?: string): Promise<{ items: RunView[]; nextCursor?: string }> {
    await this.get(tenant, name);
    const page = await this.stores.runs.ofJob(tenant, name, limit, cursor);
    return { items: page.items.map((item) => runView(item.id, item.value)), ...(page.nextCursor ? { nextCursor: page.nextCursor } : {}) };
  }

  /** The view with the job's latest run: one read of the run the job points at, none before its first fire. */
  async #viewWithLastRun(tenant: TenantId, stored: StoredDocument<JobDocument>, now: number): Promise<JobView> {
    const id = stored.value.lastRunId;
    const run = id === undefined ? undefined : await this.stores.runs.get(tenant, id);
    // A run of an earlier job of the same name (deleted, created again) is not this job's.
    const lastRun = run && run.value.jobUid === stored.value.uid ? lastRunView(run.id, run.value) : undefined;
    return { ...view(tenant, stored, now), ...(lastRun ? { lastRun } : {}) };
  }

  async #changed(tenant: TenantId, job: JobDocument, action: 'job-create' | 'job-pause' | 'job-resume' | 'job-delete', actor: string | undefined): Promise<void> {
    await this.audit.audit({
      tenant,
      action,
      outcome: 'succeeded',
      actor: { admin: actor ?? 'admin-api', workload: job.workload },
      target: targetOf(tenant, job),
      details: { job: job.name, trigger: job.trigger.kind, action: job.action.kind },
    });
    await this.events.publishEvent(jobChangedEvent, tenant, { name: job.name, change: action });
  }
}

const iso = (ms: number) => new Date(ms).toISOString();

function sealId(tenant: string, name: string): string {
  return `${tenant}/scheduler-jobs/${jobKey(name)}`;
}

export function targetOf(tenant: string, job: JobDocument): { provider?: string; resource: string; scopes?: string[] } {
  return job.action.kind === 'http'
    ? { provider: job.action.provider, resource: job.action.url.slice(0, 1024), scopes: job.action.scopes }
    : { resource: taskSubject(tenant, job.name) };
}

function view(tenant: TenantId, stored: StoredDocument<JobDocument>, now: number): JobView {
  const job = stored.value;
  const nextFireAt =
    job.trigger.kind === 'cron' && job.state === 'active' ? CronSchedule.of(job.trigger.expression, job.trigger.timeZone).nextAfter(Math.max(now, job.lastFiredAt ?? 0)) : undefined;
  return {
    tenant,
    name: job.name,
    description: job.description,
    workload: job.workload,
    trigger: job.trigger,
    action: job.action,
    missedFire: job.missedFire,
    retry: job.retry,
    state: job.state,
    ...(job.action.kind === 'task' ? { taskSubject: taskSubject(tenant, job.name) } : {}),
    ...(job.trigger.kind === 'event' ? { triggerSubject: triggerSubject(tenant, job.trigger.subject) } : {}),
    ...(job.lastFiredAt ? { lastFiredAt: iso(job.lastFiredAt) } : {}),
    ...(nextFireAt ? { nextFireAt: iso(nextFireAt) } : {}),
    revision: stored.revision,
    createdAt: iso(job.createdAt),
    updatedAt: iso(job.updatedAt),
  };
}

function lastRunView(id: string, run: RunDocument): LastRun {
  return {
    id,
    trigger: run.trigger,
    scheduledFor: iso(run.scheduledFor),
    state: run.state,
    ...(run.finishedAt ? { finishedAt: iso(run.finishedAt) } : {}),
    ...(run.lastError && run.state !== 'succeeded' ? { code: run.lastError.code } : {}),
  };
}

function runView(id: string, run: RunDocument): RunView {
  return {
    id,
    job: run.job,
    idempotencyKey: run.idempotencyKey,
    trigger: run.trigger,
    scheduledFor: iso(run.scheduledFor),
    state: run.state,
    attempts: run.attempts,
    ...(run.lastError ? { lastError: run.lastError } : {}),
    ...(run.httpStatus !== undefined ? { httpStatus: run.httpStatus } : {}),
    ...(run.event ? { event: { subject: run.event.subject, sequence: run.event.sequence } } : {}),
    createdAt: iso(run.createdAt),
    ...(run.finishedAt ? { finishedAt: iso(run.finishedAt) } : {}),
    ...(run.nextAttemptAt ? { nextAttemptAt: iso(run.nextAttemptAt) } : {}),
  };
}
