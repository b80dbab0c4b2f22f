import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import {
  jobCreateEndpoint,
  jobDeleteEndpoint,
  jobGetEndpoint,
  jobListEndpoint,
  jobPauseEndpoint,
  jobResumeEndpoint,
  jobRunsEndpoint,
  type MandateError,
  SCHEDULER_DLQ_STREAM,
  SCHEDULER_HEADERS,
  type RequestOf,
  type TaskMessage,
} from '@mandate/contracts';
import { natsServerMissing } from '@mandate/testing';
import type { SchedulerApp } from './scheduler.assembly.js';
import { startSchedulerHarness, type SchedulerHarness } from './testing/harness.js';

const missing = natsServerMissing('scheduler service');

const at = (iso: string) => Date.parse(iso);

describe.skipIf(missing)('the scheduler over NATS, with the real directory, authorizer, vault and OAuth server', () => {
  let h: SchedulerHarness;
  let a: SchedulerApp;
  let b: SchedulerApp;
  let clock = at('2025-06-11T17:00:00Z');
  let crashes = 0;

  const create = (request: Omit<RequestOf<typeof jobCreateEndpoint>, 'tenant' | 'workload'> & { workload?: RequestOf<typeof jobCreateEndpoint>['workload'] }) =>
    h.bus.request(jobCreateEndpoint, { tenant: 'acme', workload: { name: 'report-agent', privateJwk: h.reporterKey as never }, ...request });
  const runs = async (name: string) => (await h.bus.request(jobRunsEndpoint, { tenant: 'acme', name })).items;
  const hits = (path: string) => h.resource.requests.filter((r) => r.path === path);
  const http = (path: string, extra: object = {}) => ({ kind: 'http' as const, method: 'POST' as const, url: `${h.resource.url}${path}`, provider: 'reporting', ...extra });
  const failure = (promise: Promise<unknown>) => promise.then(() => expect.fail('expected a failure'), (e: unknown) => e as MandateError);

  beforeAll(async () => {
    h = await startSchedulerHarness();
    const hooks = {
      now: () => clock,
      afterAction: async ({ job }: { job: string }) => {
        if (job === 'crashy' && crashes-- > 0) throw new Error('the replica died after the resource saw the call');
      },
    };
    a = (await h.addScheduler(hooks)).app;
    b = (await h.addScheduler(hooks)).app;
  }, 60_000);

  afterAll(async () => {
    await h?.stop();
  });

  afterEach(async () => {
    for (const job of (await h.bus.request(jobListEndpoint, { tenant: 'acme' })).items) await h.bus.request(jobDeleteEndpoint, { tenant: 'acme', name: job.name });
  });

  it('fires a Wednesday 20:00 Europe/Berlin schedule at 18:00Z in summer, once, with a token and an idempotency key', async () => {
    clock = at('2025-06-11T17:00:00Z');
    const job = await create({ name: 'weekly-report', trigger: { kind: 'cron', expression: '0 20 * * 3', timeZone: 'Europe/Berlin' }, action: http('/weekly') });
    expect(job.nextFireAt).toBe('2025-06-11T18:00:00.000Z');
    expect(JSON.stringify(job)).not.toContain('"d"');
    await a.scheduler.tick(at('2025-06-11T17:59:59Z'));
    expect(hits('/weekly')).toHaveLength(0);
    await a.scheduler.tick(at('2025-06-11T18:00:00.500Z'));
    await a.scheduler.tick(at('2025-06-11T18:00:30Z'));
    expect(hits('/weekly')).toHaveLength(1);
    const [request] = hits('/weekly');
    expect(request!.authorization).toMatch(/^Bearer \S+/);
    const [run] = await runs('weekly-report');
    expect(run).toMatchObject({ state: 'succeeded', trigger: 'cron', scheduledFor: '2025-06-11T18:00:00.000Z', attempts: 1, httpStatus: 200 });
    expect(request!.idempotencyKey).toBe(run!.idempotencyKey);
    expect((JSON.parse(request!.body) as TaskMessage).idempotencyKey).toBe(run!.idempotencyKey);
    // Next week, and in winter (UTC+1) at 19:00Z.
    expect((await h.bus.request(jobGetEndpoint, { tenant: 'acme', name: 'weekly-report' })).nextFireAt).toBe('2025-06-18T18:00:00.000Z');
    await a.scheduler.tick(at('2025-12-03T19:00:01Z'));
    expect((await runs('weekly-report')).map((r) => r.scheduledFor)).toEqual(['2025-06-11T18:00:00.000Z', '2025-12-03T19:00:00.000Z']);
    expect(h.audit.some((r) => r.service === 'scheduler' && r.action === 'job-run' && r.actor.workload === 'report-agent' && r.outcome === 'succeeded')).toBe(true);
  });

  it('two replicas fire each schedule once', async () => {
    clock = at('2025-06-11T17:00:00Z');
    await create({ name: 'every-minute', trigger: { kind: 'cron', expression: '* * * * *', timeZone: 'UTC' }, action: http('/minute') });
    for (const minute of [1, 2, 3]) {
      const now = at(`2025-06-11T17:0${minute}:00.100Z`);
      await Promise.all([a.scheduler.tick(now), b.scheduler.tick(now), a.scheduler.tick(now)]);
    }
    expect(hits('/minute')).toHaveLength(3);
    expect(new Set(hits('/minute').map((r) => r.idempotencyKey)).size).toBe(3);
    expect((await runs('every-minute')).every((r) => r.state === 'succeeded' && r.attempts === 1)).toBe(true);
  });

  it('a crash after the resource saw the call retries with the same idempotency key: one effect', async () => {
    clock = at('2025-06-11T17:00:00Z');
    crashes = 1;
    await create({ name: 'crashy', trigger: { kind: 'cron', expression: '0 18 * * *', timeZone: 'UTC' }, action: http('/crashy'), retry: { limit: 3, backoffMs: 1_000, maxBackoffMs: 60_000 } });
    await a.scheduler.tick(at('2025-06-11T18:00:00Z'));
    expect((await runs('crashy'))[0]).toMatchObject({ state: 'retrying', attempts: 1, nextAttemptAt: '2025-06-11T18:00:01.000Z' });
    await b.scheduler.tick(at('2025-06-11T18:00:00.500Z'));
    expect(hits('/crashy')).toHaveLength(1);
    await b.scheduler.tick(at('2025-06-11T18:00:01Z'));
    expect(hits('/crashy')).toHaveLength(2);
    expect(new Set(hits('/crashy').map((r) => r.idempotencyKey)).size).toBe(1);
    expect([...h.resource.effects].filter((e) => e.startsWith('/crashy '))).toHaveLength(1);
    expect((await runs('crashy'))[0]).toMatchObject({ state: 'succeeded', attempts: 2 });
  });

  it('dead-letters a run after the retry limit, with exponential backoff', async () => {
    clock = at('2025-06-11T17:00:00Z');
    h.resource.statusOf.set('/broken', 503);
    await create({ name: 'broken', trigger: { kind: 'cron', expression: '0 18 * * *', timeZone: 'UTC' }, action: http('/broken'), retry: { limit: 2, backoffMs: 1_000, maxBackoffMs: 60_000 } });
    await a.scheduler.tick(at('2025-06-11T18:00:00Z'));
    expect((await runs('broken'))[0]).toMatchObject({ state: 'retrying', nextAttemptAt: '2025-06-11T18:00:01.000Z' });
    await a.scheduler.tick(at('2025-06-11T18:00:01Z'));
    expect((await runs('broken'))[0]).toMatchObject({ state: 'retrying', nextAttemptAt: '2025-06-11T18:00:03.000Z' });
    await a.scheduler.tick(at('2025-06-11T18:00:02Z'));
    expect(hits('/broken')).toHaveLength(2);
    await a.scheduler.tick(at('2025-06-11T18:00:03Z'));
    const [run] = await runs('broken');
    expect(run).toMatchObject({ state: 'dead-lettered', attempts: 3, httpStatus: 503, lastError: { code: 'provider_error' } });
    const jsm = await jetstreamManager(h.nc);
    const dead = await jsm.streams.getMessage(SCHEDULER_DLQ_STREAM.name, { last_by_subj: 'mandate.dlq.scheduler.acme' });
    expect(dead!.header.get(SCHEDULER_HEADERS.reason)).toBe('dead-lettered');
    expect(dead!.json<TaskMessage & { error: { code: string } }>()).toMatchObject({ job: 'broken', idempotencyKey: run!.idempotencyKey, error: { code: 'provider_error' } });
    await a.scheduler.tick(at('2025-06-11T18:10:00Z'));
    expect(hits('/broken')).toHaveLength(3);
  });

  it('a fire missed while everything was down runs once (run-once) or is recorded as skipped (skip)', async () => {
    clock = at('2025-06-11T17:00:00Z');
    await create({ name: 'catch-up', trigger: { kind: 'cron', expression: '*/5 * * * *', timeZone: 'UTC' }, action: http('/catch-up'), missedFire: 'run-once' });
    await create({ name: 'no-catch-up', trigger: { kind: 'cron', expression: '*/5 * * * *', timeZone: 'UTC' }, action: http('/no-catch-up'), missedFire: 'skip' });
    // Down for an hour: twelve fire times passed.
    await a.scheduler.tick(at('2025-06-11T18:02:00Z'));
    expect(await runs('catch-up')).toEqual([expect.objectContaining({ trigger: 'missed', state: 'succeeded', scheduledFor: '2025-06-11T18:00:00.000Z' })]);
    expect(await runs('no-catch-up')).toEqual([expect.objectContaining({ trigger: 'missed', state: 'skipped', scheduledFor: '2025-06-11T18:00:00.000Z' })]);
    expect(hits('/catch-up')).toHaveLength(1);
    expect(hits('/no-catch-up')).toHaveLength(0);
    await a.scheduler.tick(at('2025-06-11T18:05:01Z'));
    expect(hits('/catch-up')).toHaveLength(2);
    expect(hits('/no-catch-up')).toHaveLength(1);
  });

  it('pause stops fires; resume does not make them up', async () => {
    clock = at('2025-06-11T17:00:00Z');
    await create({ name: 'pausable', trigger: { kind: 'cron', expression: '0 * * * *', timeZone: 'UTC' }, action: http('/pausable') });
    expect((await h.bus.request(jobPauseEndpoint, { tenant: 'acme', name: 'pausable' })).state).toBe('paused');
    await a.scheduler.tick(at('2025-06-11T18:00:01Z'));
    clock = at('2025-06-11T18:30:00Z');
    expect((await h.bus.request(jobResumeEndpoint, { tenant: 'acme', name: 'pausable' })).state).toBe('active');
    await a.scheduler.tick(at('2025-06-11T18:30:01Z'));
    expect(hits('/pausable')).toHaveLength(0);
    await a.scheduler.tick(at('2025-06-11T19:00:01Z'));
    expect(hits('/pausable')).toHaveLength(1);
  });

  it('a job whose workload may not use the provider fails with access_denied, without retrying', async () => {
    clock = at('2025-06-11T17:00:00Z');
    const outsider = await h.workload('outsider-agent');
    await create({ name: 'outsider', workload: { name: 'outsider-agent', privateJwk: outsider as never }, trigger: { kind: 'cron', expression: '0 18 * * *', timeZone: 'UTC' }, action: http('/outsider') });
    await a.scheduler.tick(at('2025-06-11T18:00:00Z'));
    await a.scheduler.tick(at('2025-06-11T18:30:00Z'));
    expect(await runs('outsider')).toEqual([expect.objectContaining({ state: 'failed', attempts: 1, lastError: expect.objectContaining({ code: 'access_denied' }) })]);
    expect(hits('/outsider')).toHaveLength(0);
    expect(h.audit.some((r) => r.action === 'job-run' && r.outcome === 'failed' && r.reason === 'access_denied' && r.actor.workload === 'outsider-agent')).toBe(true);
  });

  it('an event on the trigger subject runs the job once, keyed by the stream sequence, and publishes a task', async () => {
    clock = Date.now();
    await create({ name: 'incident-agent', trigger: { kind: 'event', subject: 'tickets.high' }, action: { kind: 'task', payload: { kind: 'rca' } } });
    const tasks: TaskMessage[] = [];
    const sub = h.nc.subscribe('mandate.task.acme.incident-agent', { callback: (_e, msg) => void tasks.push(msg.json<TaskMessage>()) });
    const js = jetstream(h.nc);
    await js.publish('mandate.trigger.globex.tickets.high', JSON.stringify({ ticket: 'other-tenant' }));
    const ack = await js.publish('mandate.trigger.acme.tickets.high', JSON.stringify({ ticket: 42 }));
    await expect.poll(() => tasks.length, { timeout: 10_000 }).toBe(1);
    expect(tasks[0]).toMatchObject({ job: 'incident-agent', trigger: 'event', payload: { kind: 'rca' }, event: { sequence: ack.seq, data: { ticket: 42 } } });
    expect(tasks[0]!.idempotencyKey).toMatch(new RegExp(`e0*${ack.seq}$`));
    await expect.poll(async () => (await runs('incident-agent')).map((r) => r.state), { timeout: 5_000 }).toEqual(['succeeded']);
    sub.unsubscribe();
  });

  it('refuses at create a provider or workload that does not exist: invalid_request naming it, nothing stored, nothing fired', async () => {
    clock = at('2025-06-11T17:00:00Z');
    const cron = { kind: 'cron' as const, expression: '0 18 * * *', timeZone: 'UTC' };
    const noProvider = await failure(create({ name: 'ghost-provider', trigger: cron, action: { ...http('/ghost'), provider: 'no-such-provider' } }));
    expect(noProvider).toMatchObject({ code: 'invalid_request', message: 'no provider no-such-provider in tenant acme', issues: [{ path: 'action.provider', message: 'no such provider in the vault' }] });
    const stranger = await h.workload('unregistered-holder');
    const noWorkload = await failure(create({ name: 'ghost-workload', workload: { name: 'no-such-agent', privateJwk: stranger as never }, trigger: cron, action: { kind: 'task', payload: {} } }));
    expect(noWorkload).toMatchObject({ code: 'invalid_request', message: 'no workload no-such-agent in tenant acme', issues: [{ path: 'workload.name', message: 'no such workload in the directory' }] });
    for (const name of ['ghost-provider', 'ghost-workload']) expect((await failure(h.bus.request(jobGetEndpoint, { tenant: 'acme', name }))).code).toBe('not_found');
    expect((await h.bus.request(jobListEndpoint, { tenant: 'acme' })).items).toEqual([]);
    expect(h.audit.some((r) => r.action === 'job-create' && ['ghost-provider', 'ghost-workload'].includes(String(r.details?.['job'])))).toBe(false);
    await a.scheduler.tick(at('2025-06-11T18:00:00Z'));
    expect(hits('/ghost')).toHaveLength(0);
  });

  it("shows each job's latest run in reads: none before the first fire, then the run and how it ended", async () => {
    clock = at('2025-06-11T17:00:00Z');
    h.resource.statusOf.set('/flaky', 503);
    const created = await create({ name: 'flaky', trigger: { kind: 'cron', expression: '0 * * * *', timeZone: 'UTC' }, action: http('/flaky'), retry: { limit: 0, backoffMs: 1_000, maxBackoffMs: 1_000 } });
    expect(created).not.toHaveProperty('lastRun');
    await a.scheduler.tick(at('2025-06-11T18:00:00Z'));
    const job = await h.bus.request(jobGetEndpoint, { tenant: 'acme', name: 'flaky' });
    expect(job.lastRun).toEqual({ id: expect.stringMatching(/^fire\./), trigger: 'cron', scheduledFor: '2025-06-11T18:00:00.000Z', state: 'dead-lettered', finishedAt: '2025-06-11T18:00:00.000Z', code: 'provider_error' });
    h.resource.statusOf.delete('/flaky');
    await b.scheduler.tick(at('2025-06-11T19:00:00Z'));
    const [listed] = (await h.bus.request(jobListEndpoint, { tenant: 'acme' })).items;
    expect(listed!.lastRun).toMatchObject({ scheduledFor: '2025-06-11T19:00:00.000Z', state: 'succeeded' });
    expect(listed!.lastRun).not.toHaveProperty('code');
    expect(listed!.lastRun!.id).toBe((await runs('flaky')).at(-1)!.id);
    // A job deleted and created again under its name does not show its predecessor's run, even where their fire times meet.
    await h.bus.request(jobDeleteEndpoint, { tenant: 'acme', name: 'flaky' });
    await create({ name: 'flaky', trigger: { kind: 'cron', expression: '0 * * * *', timeZone: 'UTC' }, action: http('/flaky') });
    await a.scheduler.tick(at('2025-06-11T19:00:10Z'));
    expect(await h.bus.request(jobGetEndpoint, { tenant: 'acme', name: 'flaky' })).not.toHaveProperty('lastRun');
  });

  it('refuses a key the directory does not know, a bad cron expression and a plain-http remote URL', async () => {
    const stranger = await h.workload('key-check-agent');
    expect((await failure(create({ name: 'wrong-key', workload: { name: 'report-agent', privateJwk: stranger as never }, trigger: { kind: 'cron', expression: '0 * * * *', timeZone: 'UTC' }, action: http('/x') }))).code).toBe('invalid_request');
    expect((await failure(create({ name: 'bad-cron', trigger: { kind: 'cron', expression: '0 25 * * *', timeZone: 'UTC' }, action: http('/x') }))).code).toBe('invalid_request');
    expect((await failure(create({ name: 'bad-zone', trigger: { kind: 'cron', expression: '0 * * * *', timeZone: 'Mars/Olympus' }, action: http('/x') }))).code).toBe('invalid_request');
    expect((await failure(create({ name: 'plain-http', trigger: { kind: 'cron', expression: '0 * * * *', timeZone: 'UTC' }, action: { kind: 'http', method: 'GET', url: 'http://example.com/', provider: 'reporting' } }))).code).toBe('invalid_request');
    expect((await failure(h.bus.request(jobGetEndpoint, { tenant: 'globex', name: 'weekly-report' }))).code).toBe('not_found');
  });
});
