import { MandateError, runFinishedEvent, type EventSink, type TaskMessage, type TenantId } from '@mandate/contracts';
import type { RunRepository, SchedulerIndex } from '../store/repositories.js';
import { cronFireKey, eventFireKey, runId, type JobDocument, type RunDocument } from '../store/scheduler-records.js';
import type { ActionRunner } from './actions.js';
import { CronSchedule } from './cron.js';
import { targetOf, type JobRegistry, type SchedulerAuditSink } from './jobs.js';
import { Run } from './run.js';

/** Where runs that failed for good go (`mandate.dlq.scheduler.<tenant>`). */
export interface DeadLetterSink {
  deadLetter(tenant: TenantId, message: TaskMessage, reason: string, error: { code: string; message: string }): Promise<void>;
}

export interface SchedulerOptions {
  instanceId: string;
  /** A fire later than this is "missed" (the scheduler was down) and follows the job's policy. */
  misfireGraceMs: number;
  /** An attempt not finished within this is presumed dead and taken over by another replica. */
  leaseMs: number;
  now?: () => number;
  /** Test seam: runs after the action succeeded, before the run is recorded (throw to simulate a crash). */
  afterAction?: (run: { tenant: string; job: string; idempotencyKey: string; attempt: number }) => Promise<void>;
  onError?: (error: unknown, context: string) => void;
}

export interface SchedulerParts {
  runs: RunRepository;
  index: SchedulerIndex;
  jobs: JobRegistry;
  runner: ActionRunner;
  audit: SchedulerAuditSink;
  events: EventSink;
  deadLetters: DeadLetterSink;
}

/**
 * Fires jobs and runs them, at least once, on any number of replicas.
 *
 * - Exactly one replica fires a cron schedule: the run's id is `fire.<job>.<fire time>` and only
 *   the replica whose `create` of it wins runs it. Every replica then moves the job's
 *   `lastFiredAt` forward, so the fire is not due again.
 * - Missed fires: `tick` looks for the latest fire time after `lastFiredAt` (or the time the job
 *   became active). Later than `misfireGraceMs` it was missed while everything was down: the
 *   job's policy runs it once (trigger `missed`) or records it as skipped. Several missed fire
 *   times become one.
 * - Attempts: a run is claimed by compare-and-swap (pending/retrying/lease-expired → running),
 *   so one attempt at a time; failures back off exponentially up to the job's limit, then the
 *   run is dead-lettered. Unfinished runs are in a deployment-wide index that every tick sweeps,
 *   so a replica that dies mid-attempt leaves a run another replica finishes (with the same
 *   idempotency key).
 */
export class Scheduler {
  readonly #now: () => number;
  /** Runs this replica is attempting right now. */
  readonly #inFlight = new Map<string, Promise<void>>();

  constructor(
    private readonly parts: SchedulerParts,
    private readonly options: SchedulerOptions,
  ) {
    this.#now = options.now ?? Date.now;
  }

  /**
   * Fires what is due at `now` and attempts what is claimable. With `waitForRuns` (the default,
   * which tests use), resolves once those attempts are finished; the service's timer does not wait.
   */
  async tick(now: number = this.#now(), options: { waitForRuns?: boolean } = {}): Promise<void> {
    const started: Promise<void>[] = [];
    for await (const { tenant, job } of this.parts.jobs.all()) {
      if (job.value.state !== 'active' || job.value.trigger.kind !== 'cron') continue;
      try {
        const fired = await this.#fireCron(tenant, job.value, now);
        if (fired) started.push(this.#attempt(tenant, fired, now));
      } catch (error) {
        this.options.onError?.(error, `firing job ${job.value.name}`);
      }
    }
    started.push(...(await this.#sweep(now)));
    if (options.waitForRuns !== false) await Promise.all(started);
  }

  /** One event on a job's trigger subject: one run, keyed by the stream sequence. Resolves when recorded (and, with `wait`, run). */
  async fireEvent(tenant: TenantId, jobName: string, event: { subject: string; sequence: number; data: unknown; receivedAt?: number }, wait = true): Promise<void> {
    const now = this.#now();
    const job = await this.parts.jobs.find(tenant, jobName);
    if (!job || job.value.state !== 'active' || job.value.trigger.kind !== 'event') return;
    const id = runId(jobName, eventFireKey(event.sequence));
    const created = await this.#createRun(tenant, id, job.value, 'event', event.receivedAt ?? now, now, 'pending', event);
    if (!created) return;
    const attempt = this.#attempt(tenant, id, now);
    // Only what reads show as the last run: the event is recorded, so a failure here must not redeliver it.
    await this.parts.jobs.advance(tenant, jobName, created.scheduledFor, id).catch((error: unknown) => this.options.onError?.(error, `recording the last run of job ${jobName}`));
    if (wait) await attempt;
  }

  /** Waits for this replica's attempts in progress (shutdown). */
  async drain(): Promise<void> {
    await Promise.all([...this.#inFlight.values()]);
  }

  async #fireCron(tenant: TenantId, job: JobDocument, now: number): Promise<string | undefined> {
    if (job.trigger.kind !== 'cron') return undefined;
    const schedule = CronSchedule.of(job.trigger.expression, job.trigger.timeZone);
    const cursor = Math.max(job.activeSince, job.lastFiredAt ?? 0);
    const latest = schedule.latestAtOrBefore(now);
    if (latest === undefined || latest <= cursor) return undefined;
    const missed = now - latest > this.options.misfireGraceMs;
    const id = runId(job.name, cronFireKey(latest));
    const state = missed && job.missedFire === 'skip' ? 'skipped' : 'pending';
    const created = await this.#createRun(tenant, id, job, missed ? 'missed' : 'cron', latest, now, state);
    await this.parts.jobs.advance(tenant, job.name, latest, id);
    if (created && state === 'skipped') {
      await this.#auditRun(tenant, job, id, created, 'succeeded');
      return undefined;
    }
    return created ? id : undefined;
  }

  /** The claim: whoever creates the run's id owns the fire. Returns the document, or undefined when another replica won. */
  async #createRun(
    tenant: TenantId,
    id: string,
    job: JobDocument,
    trigger: RunDocument['trigger'],
    scheduledFor: number,
    now: number,
    state: 'pending' | 'skipped',
    event?: RunDocument['event'],
  ): Promise<RunDocument | undefined> {
    const fireKey = id.slice(id.lastIndexOf('.') + 1);
    const document: RunDocument = {
      job: job.name,
      jobUid: job.uid,
      idempotencyKey: `${job.uid}.${fireKey}`,
      trigger,
      scheduledFor,
      state,
      attempts: 0,
      ...(event ? { event } : {}),
      createdAt: now,
      ...(state === 'skipped' ? { finishedAt: now } : {}),
    };
    const created = await this.parts.runs.create(tenant, id, document);
    // Won or lost (then the winner might have died right after), an unfinished run is indexed so it is swept.
    if (state === 'pending') await this.#indexOpen(tenant, id, now);
    return created ? document : undefined;
  }

  async #indexOpen(tenant: TenantId, id: string, now: number): Promise<void> {
    const run = await this.parts.runs.get(tenant, id);
    if (!run || Run.FINAL.has(run.value.state)) return;
    await this.parts.index.openRun(tenant, id, run.value.job, now);
  }

  /** Unfinished runs whose turn it is: retries due, and attempts of replicas that died. */
  async #sweep(now: number): Promise<Promise<void>[]> {
    const started: Promise<void>[] = [];
    for await (const entry of this.parts.index.openRuns()) {
      const tenant = entry.tenant as TenantId;
      const id = entry.runId!;
      if (this.#inFlight.has(`${tenant}/${id}`)) continue;
      const run = await this.parts.runs.get(tenant, id);
      if (!run || Run.FINAL.has(run.value.state)) {
        await this.parts.index.closeRun(tenant, id);
        continue;
      }
      if (new Run(id, run.value, run.revision).claimable(now)) started.push(this.#attempt(tenant, id, now));
    }
    return started;
  }

  #attempt(tenant: TenantId, id: string, now: number): Promise<void> {
    const key = `${tenant}/${id}`;
    const running = this.#inFlight.get(key);
    if (running) return running;
    const attempt = this.#attemptOnce(tenant, id, now)
      .catch((error: unknown) => this.options.onError?.(error, `run ${id}`))
      .finally(() => this.#inFlight.delete(key));
    this.#inFlight.set(key, attempt);
    return attempt;
  }

  async #attemptOnce(tenant: TenantId, id: string, now: number): Promise<void> {
    const stored = await this.parts.runs.get(tenant, id);
    if (!stored) return;
    const run = new Run(id, stored.value, stored.revision);
    if (!run.claimable(now)) return;
    const job = await this.parts.jobs.find(tenant, stored.value.job);
    if (!job || job.value.uid !== stored.value.jobUid) {
      await this.#finish(tenant, run, run.cancel(now), undefined);
      return;
    }
    const claimed = await this.parts.runs.update(tenant, id, run.claim(this.options.instanceId, now, this.options.leaseMs), stored.revision);
    if (!claimed) return;
    const current = new Run(id, claimed.value, claimed.revision);
    const message = this.#message(tenant, id, claimed.value, job.value);
    let next: RunDocument;
    try {
      const outcome = await this.parts.runner.run(tenant, job.value, message, () => this.parts.jobs.openKey(tenant, job.value));
      await this.options.afterAction?.({ tenant, job: job.value.name, idempotencyKey: message.idempotencyKey, attempt: message.attempt });
      next = current.succeed(now, outcome.httpStatus);
    } catch (error) {
      const code = error instanceof MandateError ? error.code : 'internal';
      const text = error instanceof MandateError ? error.message : 'the attempt failed unexpectedly';
      const httpStatus = (error as { httpStatus?: number }).httpStatus;
      next = current.fail(now, { code, message: text.slice(0, 512) }, job.value.retry, httpStatus);
    }
    await this.#finish(tenant, current, next, job.value, message);
  }

  /** Writes the attempt's result; final runs leave the index, and those that failed go to the dead-letter subject. */
  async #finish(tenant: TenantId, run: Run, next: RunDocument, job: JobDocument | undefined, message?: TaskMessage): Promise<void> {
    const written = await this.parts.runs.update(tenant, run.id, next, run.revision);
    // Lost the run to a replica that took it over (this attempt outlived its lease): its record wins.
    if (!written) return;
    if (job) await this.#auditRun(tenant, job, run.id, next, next.state === 'succeeded' ? 'succeeded' : 'failed');
    if (!Run.FINAL.has(next.state)) return;
    await this.parts.index.closeRun(tenant, run.id);
    if ((next.state === 'failed' || next.state === 'dead-lettered') && message) {
      await this.parts.deadLetters.deadLetter(tenant, message, next.state, next.lastError ?? { code: 'internal', message: 'failed' });
    }
    await this.parts.events.publishEvent(runFinishedEvent, tenant, { job: next.job, run: run.id, state: next.state, attempts: next.attempts, ...(next.lastError ? { code: next.lastError.code } : {}) });
  }

  #message(tenant: TenantId, id: string, run: RunDocument, job: JobDocument): TaskMessage {
    return {
      tenant,
      job: job.name,
      runId: id,
      idempotencyKey: run.idempotencyKey,
      trigger: run.trigger,
      scheduledFor: new Date(run.scheduledFor).toISOString(),
      attempt: run.attempts,
      ...(run.event ? { event: run.event } : {}),
    };
  }

  async #auditRun(tenant: TenantId, job: JobDocument, id: string, run: RunDocument, outcome: 'succeeded' | 'failed'): Promise<void> {
    await this.parts.audit.audit({
      tenant,
      action: 'job-run',
      outcome,
      ...(run.lastError && outcome === 'failed' ? { reason: run.lastError.code } : {}),
      actor: { workload: job.workload },
      target: targetOf(tenant, job),
      details: {
        job: job.name,
        run: id,
        state: run.state,
        attempt: run.attempts,
        trigger: run.trigger,
        idempotencyKey: run.idempotencyKey,
        ...(run.httpStatus !== undefined ? { httpStatus: run.httpStatus } : {}),
      },
    });
  }
}
