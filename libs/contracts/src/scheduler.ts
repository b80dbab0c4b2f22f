import { z } from 'zod';
import { defineAuditActions } from './audit-actions.js';
import { actorSchema, deletedSchema } from './changes.js';
import { endpointsOf } from './endpoint.js';
import { pageOf, pageRequest, tenantPageRequest } from './paging.js';
import { defineEvent } from './event.js';
import { tenantIdSchema } from './tenant.js';
import { workloadNameSchema } from './directory.js';
import { endpointUrlSchema, providerNameSchema, scopesSchema } from './vault.js';
import { SUBJECT_ROOT } from './subjects.js';
import type { StreamDefinition } from './streams.js';

/**
 * The scheduler: background jobs that run as their own workload, fired by a cron schedule or by
 * a message on a trigger subject, and either call an HTTP endpoint with an M2M token or publish a
 * task for agent code. Runs are at-least-once with an idempotency key per fire.
 */
export const SCHEDULER_SERVICE = 'scheduler';

/** A job name is one NATS subject token (it names the task subject `mandate.task.<tenant>.<job>`). */
export const jobNameSchema = z.string().regex(/^[a-z][a-z0-9-]{0,62}$/, 'must be 1-63 lower-case letters, digits or dashes, starting with a letter');

function isTimeZone(value: string): boolean {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: value });
    return true;
  } catch {
    return false;
  }
}

/** Five fields (minute hour day-of-month month day-of-week) or six (with seconds first); checked fully by the scheduler. */
const cronExpressionSchema = z
  .string()
  .min(1)
  .max(256)
  .refine((value) => /^[@A-Za-z0-9*/,\-?#L ]+$/.test(value), 'a cron expression has fields of digits, names, * / , - ? L #');

/** Subject tokens after `mandate.trigger.<tenant>.`; `*` and a final `>` allowed. */
export const triggerSubjectSchema = z
  .string()
  .max(200)
  .refine((value) => {
    const tokens = value.split('.');
    return tokens.every((token, index) => token === '*' || (token === '>' && index === tokens.length - 1) || /^[A-Za-z0-9_-]{1,64}$/.test(token));
  }, 'dot-separated tokens of A-Z a-z 0-9 _ -, with * for one token and a final > for the rest');

export const cronTriggerSchema = z.strictObject({
  kind: z.literal('cron'),
  expression: cronExpressionSchema,
  /** IANA time zone the expression is read in, e.g. Europe/Berlin. */
  timeZone: z.string().max(64).refine(isTimeZone, 'must be an IANA time zone, e.g. Europe/Berlin').default('UTC'),
});

export const eventTriggerSchema = z.strictObject({
  kind: z.literal('event'),
  /** Filter under `mandate.trigger.<tenant>.`, e.g. `tickets.high` or `tickets.*`. */
  subject: triggerSubjectSchema,
});

export const jobTriggerSchema = z.discriminatedUnion('kind', [cronTriggerSchema, eventTriggerSchema]);

export const httpActionSchema = z.strictObject({
  kind: z.literal('http'),
  method: z.enum(['GET', 'POST']).default('POST'),
  /** https, or http only to localhost. */
  url: endpointUrlSchema,
  /** The M2M token comes from this vault provider, for the job's workload. */
  provider: providerNameSchema,
  scopes: scopesSchema.default([]),
});

export const taskActionSchema = z.strictObject({
  kind: z.literal('task'),
  /** Carried in every task message as `payload`. */
  payload: z.record(z.string().max(128), z.unknown()).default({}),
});

export const jobActionSchema = z.discriminatedUnion('kind', [httpActionSchema, taskActionSchema]);

export const missedFirePolicySchema = z.enum(['run-once', 'skip']);

export const retryPolicySchema = z.strictObject({
  /** Retries after the first attempt; 0: no retry. */
  limit: z.number().int().min(0).max(20).default(3),
  /** Wait before the first retry; doubles with each retry up to `maxBackoffMs`. */
  backoffMs: z.number().int().min(10).max(3_600_000).default(10_000),
  maxBackoffMs: z.number().int().min(10).max(24 * 3_600_000).default(600_000),
});

export type JobTrigger = z.output<typeof jobTriggerSchema>;
export type JobAction = z.output<typeof jobActionSchema>;
export type RetryPolicy = z.output<typeof retryPolicySchema>;

const jobRef = { tenant: tenantIdSchema, name: jobNameSchema };

export const RUN_STATES = ['pending', 'running', 'retrying', 'succeeded', 'failed', 'dead-lettered', 'skipped', 'cancelled'] as const;

export const runTriggerSchema = z.enum(['cron', 'missed', 'event']);

/** A job's latest run as `job get` and `job list` show it: when it was due, and how it ended (or stands). */
export const lastRunSchema = z.object({
  id: z.string(),
  trigger: runTriggerSchema,
  scheduledFor: z.iso.datetime(),
  state: z.enum(RUN_STATES),
  finishedAt: z.iso.datetime().optional(),
  /** The error code of a run that failed, was dead-lettered or is retrying. */
  code: z.string().optional(),
});

export type LastRun = z.output<typeof lastRunSchema>;

/** A job as reads show it: the workload's name, never its key. */
export const jobViewSchema = z.object({
  tenant: tenantIdSchema,
  name: jobNameSchema,
  description: z.string(),
  workload: z.string(),
  trigger: jobTriggerSchema,
  action: jobActionSchema,
  missedFire: missedFirePolicySchema,
  retry: retryPolicySchema,
  state: z.enum(['active', 'paused']),
  /** Where task messages go (task actions). */
  taskSubject: z.string().optional(),
  /** The full subject filter (event triggers). */
  triggerSubject: z.string().optional(),
  lastFiredAt: z.iso.datetime().optional(),
  nextFireAt: z.iso.datetime().optional(),
  /** Absent before the first fire, and once that run's record expired (`SCHEDULER_RUN_RETENTION_DAYS`). */
  lastRun: lastRunSchema.optional(),
  revision: z.number().int(),
  createdAt: z.iso.datetime(),
  updatedAt: z.iso.datetime(),
});

export type JobView = z.output<typeof jobViewSchema>;

export const runViewSchema = z.object({
  id: z.string(),
  job: z.string(),
  /** Sent as `Idempotency-Key` on HTTP calls and in task messages; the same for every attempt of a fire. */
  idempotencyKey: z.string(),
  trigger: runTriggerSchema,
  scheduledFor: z.iso.datetime(),
  state: z.enum(RUN_STATES),
  attempts: z.number().int(),
  lastError: z.object({ code: z.string(), message: z.string() }).optional(),
  httpStatus: z.number().int().optional(),
  event: z.object({ subject: z.string(), sequence: z.number().int() }).optional(),
  createdAt: z.iso.datetime(),
  finishedAt: z.iso.datetime().optional(),
  nextAttemptAt: z.iso.datetime().optional(),
});

export type RunView = z.output<typeof runViewSchema>;

const privateJwkSchema = z.looseObject({ kty: z.string(), kid: z.string().min(1).max(128), d: z.string() });

const endpoint = endpointsOf(SCHEDULER_SERVICE);

export const jobCreateEndpoint = endpoint(
  'job-create',
  "Creates a job; the workload's private key is checked with the authorizer, sealed at rest and never returned.",
  z.strictObject({
    ...jobRef,
    description: z.string().max(4096).default(''),
    workload: z.strictObject({ name: workloadNameSchema, privateJwk: privateJwkSchema }),
    trigger: jobTriggerSchema,
    action: jobActionSchema,
    missedFire: missedFirePolicySchema.default('run-once'),
    retry: retryPolicySchema.default({ limit: 3, backoffMs: 10_000, maxBackoffMs: 600_000 }),
    paused: z.boolean().default(false),
    actor: actorSchema,
  }),
  jobViewSchema,
);

export const jobGetEndpoint = endpoint('job-get', 'Reads one job (never its workload key).', z.strictObject(jobRef), jobViewSchema);

export const jobListEndpoint = endpoint('job-list', 'Lists the jobs of a tenant, one page at a time.', tenantPageRequest, pageOf(jobViewSchema));

const jobChange = z.strictObject({ ...jobRef, actor: actorSchema });

export const jobPauseEndpoint = endpoint('job-pause', 'Stops firing a job (runs already started finish; events wait in the stream).', jobChange, jobViewSchema);

export const jobResumeEndpoint = endpoint('job-resume', 'Fires a paused job again, from now on (fires during the pause are not made up).', jobChange, jobViewSchema);

export const jobDeleteEndpoint = endpoint('job-delete', 'Deletes a job and its event consumer; unfinished runs are cancelled.', jobChange, deletedSchema);

export const jobRunsEndpoint = endpoint('job-runs', 'Lists the recorded runs of a job, oldest first, one page at a time.', z.strictObject({ ...jobRef, ...pageRequest }), pageOf(runViewSchema));

export const schedulerEndpoints = [jobCreateEndpoint, jobGetEndpoint, jobListEndpoint, jobPauseEndpoint, jobResumeEndpoint, jobDeleteEndpoint, jobRunsEndpoint] as const;

export const runFinishedEvent = defineEvent({
  service: SCHEDULER_SERVICE,
  name: 'run-finished',
  description: 'A run of a job reached a final state.',
  data: z.object({ job: jobNameSchema, run: z.string(), state: z.string(), attempts: z.number().int(), code: z.string().optional() }),
});

export const jobChangedEvent = defineEvent({
  service: SCHEDULER_SERVICE,
  name: 'job-changed',
  description: 'A job was created, paused, resumed or deleted.',
  data: z.object({ name: jobNameSchema, change: z.enum(['job-create', 'job-pause', 'job-resume', 'job-delete']) }),
});

export const schedulerAudit = defineAuditActions(SCHEDULER_SERVICE, ['job-create', 'job-pause', 'job-resume', 'job-delete', 'job-run']);

/** Task messages for agent code: `mandate.task.<tenant>.<job>`. */
export const TASK_SUBJECT_PREFIX = `${SUBJECT_ROOT}.task`;
export function taskSubject(tenant: string, job: string): string {
  return `${TASK_SUBJECT_PREFIX}.${tenant}.${job}`;
}

/** What outside systems publish to start event-triggered jobs: `mandate.trigger.<tenant>.<…>`. */
export const TRIGGER_SUBJECT_PREFIX = `${SUBJECT_ROOT}.trigger`;
export function triggerSubject(tenant: string, filter: string): string {
  return `${TRIGGER_SUBJECT_PREFIX}.${tenant}.${filter}`;
}

/** Runs that failed for good: `mandate.dlq.scheduler.<tenant>` (the audit service owns `mandate.dlq.audit.>`). */
export const SCHEDULER_DLQ_SUBJECT_PREFIX = `${SUBJECT_ROOT}.dlq.scheduler`;
export function schedulerDlqSubject(tenant: string): string {
  return `${SCHEDULER_DLQ_SUBJECT_PREFIX}.${tenant}`;
}

/** Headers of a task message and of a dead-lettered run. */
export const SCHEDULER_HEADERS = {
  idempotencyKey: 'Idempotency-Key',
  reason: 'Mandate-Dlq-Reason',
} as const;

/** The body of a task message (and of an HTTP action's POST). */
export interface TaskMessage {
  tenant: string;
  job: string;
  runId: string;
  idempotencyKey: string;
  trigger: 'cron' | 'missed' | 'event';
  scheduledFor: string;
  attempt: number;
  payload?: Record<string, unknown>;
  event?: { subject: string; sequence: number; data: unknown };
}

/*
 * The scheduler's streams. Not part of `STREAMS` (every service declares those): the scheduler
 * declares them at start-up.
 */
export const SCHEDULER_DLQ_STREAM: StreamDefinition = Object.freeze({
  name: 'MANDATE_SCHEDULER_DLQ',
  description: 'Scheduler runs that failed for good (mandate.dlq.scheduler.<tenant>), with the reason in headers',
  subjects: [`${SCHEDULER_DLQ_SUBJECT_PREFIX}.>`],
  denyDelete: false,
  denyPurge: false,
  duplicateWindowMs: 10 * 60_000,
  maxAgeMs: 90 * 24 * 3_600_000,
});

export const TASKS_STREAM: StreamDefinition = Object.freeze({
  name: 'MANDATE_TASKS',
  description: 'Tasks the scheduler hands to agent code (mandate.task.<tenant>.<job>); a retried publish is stored once',
  subjects: [`${TASK_SUBJECT_PREFIX}.>`],
  denyDelete: false,
  denyPurge: false,
  duplicateWindowMs: 10 * 60_000,
  maxAgeMs: 7 * 24 * 3_600_000,
});

export const TRIGGERS_STREAM: StreamDefinition = Object.freeze({
  name: 'MANDATE_TRIGGERS',
  description: 'Events that start event-triggered jobs (mandate.trigger.<tenant>.<…>)',
  subjects: [`${TRIGGER_SUBJECT_PREFIX}.>`],
  denyDelete: false,
  denyPurge: false,
  duplicateWindowMs: 2 * 60_000,
  maxAgeMs: 7 * 24 * 3_600_000,
});

export const SCHEDULER_STREAMS: readonly StreamDefinition[] = Object.freeze([SCHEDULER_DLQ_STREAM, TASKS_STREAM, TRIGGERS_STREAM]);
