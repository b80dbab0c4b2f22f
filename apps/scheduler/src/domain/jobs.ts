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

/** Proves the workload accepts this key (the authorizer mints a WAT for an assertion signed with it). */
export type KeyCheck = (tenant: TenantId, workload: string, privateJwk: JWK) => Promise<void>;

type CreateRequest = ParsedRequestOf<typeof jobCreateEndpoint>;

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
    private readonly checkKey: KeyCheck,
    private readonly now: () => number = Date.now,
  ) {}

  async create(request: CreateRequest): Promise<JobView> {
    if (request.trigger.kind === 'cron') CronSchedule.of(request.trigger.expression, request.trigger.timeZone);
    await this.checkKey(request.tenant, request.workload.name, request.workload.privateJwk as JWK);
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
    return view(tenant, await this.get(tenant, name), this.now());
  }

  async list(tenant: TenantId, limit: number, cursor?: string): Promise<{ items: JobView[]; nextCursor?: string }> {
    const page = await this.stores.jobs.list(tenant, limit, cursor);
    return { items: page.items.map((item) => view(tenant, item, this.now())), ...(page.nextCursor ? { nextCursor: page.nextCursor } : {}) };
  }

  async setState(tenant: TenantId, name: string, state: 'active' | 'paused', actor?: string): Promise<JobView> {
    const at = this.now();
    const stored = await this.stores.jobs.change(tenant, name, (job) =>
      job.state === state ? undefined : { ...job, state, updatedAt: at, ...(state === 'active' ? { activeSince: at } : {}) },
    );
    await this.#changed(tenant, stored.value, state === 'active' ? 'job-resume' : 'job-pause', actor);
    return view(tenant, stored, at);
  }

  async delete(tenant: TenantId, name: string, actor?: string): Promise<JobDocument> {
    const stored = await this.get(tenant, name);
    await this.stores.jobs.delete(tenant, name);
    await this.stores.index.removeJob(tenant, name);
    await this.#changed(tenant, stored.value, 'job-delete', actor);
    return stored.value;
  }

  /** Moves `lastFiredAt` forward to `at` (never back), whichever replica gets there first. */
  async advance(tenant: TenantId, name: string, at: number): Promise<void> {
    await this.stores.jobs.change(tenant, name, (job) => ((job.lastFiredAt ?? 0) >= at ? undefined : { ...job, lastFiredAt: at })).catch((error: unknown) => {
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
