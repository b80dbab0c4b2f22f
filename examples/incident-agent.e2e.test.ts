import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { jetstream } from '@nats-io/jetstream';
import { jobRunsEndpoint, triggerSubject } from '@mandate/contracts';
import { MandateClient, type TaskConsumer } from '@mandate/sdk';
import { natsServerMissing } from '@mandate/testing';
import { startSchedulerHarness, type SchedulerHarness } from '@mandate/scheduler/testing';
import { runIncidentAgent, setUpIncidentAgent, SUMMARY_SUBJECT } from './incident-agent.js';
import { startLogsApi } from './logs-api.js';

const missing = natsServerMissing('the incident agent example');
const AUDIENCE = 'https://logs.example';

describe.skipIf(missing)('example: the incident agent (event trigger, task, SDK, two-legged OAuth)', () => {
  let h: SchedulerHarness;
  let logs: Awaited<ReturnType<typeof startLogsApi>>;
  let agent: TaskConsumer | undefined;

  beforeAll(async () => {
    h = await startSchedulerHarness();
    logs = await startLogsApi({ issuer: h.idp.issuer, jwksUri: h.idp.jwksUri, audience: AUDIENCE });
  });

  afterAll(async () => {
    await agent?.stop();
    await logs?.stop();
    await h?.stop();
  });

  it('a high-severity ticket event makes the agent read the logs and publish a root cause, once, despite a flaky logs API', async () => {
    const { app } = await h.addScheduler();
    const { privateJwk } = await setUpIncidentAgent(h.bus, {
      tenant: 'examples',
      logs: { discoveryUrl: h.idp.discoveryUrl, clientId: 'test-app', clientSecret: 'test-app-secret', audience: AUDIENCE },
    });
    const summaries: { ticket: number; cause: string }[] = [];
    const sub = h.nc.subscribe(SUMMARY_SUBJECT, { callback: (_e, msg) => void summaries.push(msg.json()) });
    agent = await runIncidentAgent(new MandateClient(h.nc, { tenant: 'examples', workload: 'incident-agent' }), { privateJwk, logsUrl: logs.url });

    // The first read fails: the task comes back (same idempotency key) and succeeds.
    logs.failNext(1);
    await jetstream(h.nc).publish(triggerSubject('examples', 'tickets.high'), JSON.stringify({ ticket: 4711, severity: 'high' }));
    await app.scheduler.tick(Date.now());
    await expect.poll(() => summaries, { timeout: 10_000 }).toEqual([{ ticket: 4711, cause: 'ERROR payments-db connection pool exhausted', idempotencyKey: expect.any(String) }]);
    expect(logs.refused()).toBe(0);
    await expect.poll(async () => (await h.bus.request(jobRunsEndpoint, { tenant: 'examples', name: 'incident-agent' })).items.map((r) => r.state), { timeout: 5_000 }).toEqual(['succeeded']);
    sub.unsubscribe();
  });
});
