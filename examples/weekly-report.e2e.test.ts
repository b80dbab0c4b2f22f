import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { jobRunsEndpoint } from '@mandate/contracts';
import { natsServerMissing } from '@mandate/testing';
import { startSchedulerHarness, type SchedulerHarness } from '@mandate/scheduler/testing';
import { startReportingApi, type ReportingApi } from './reporting-api.js';
import { setUpWeeklyReport } from './weekly-report.js';

const missing = natsServerMissing('the weekly report example');
const AUDIENCE = 'https://reports.example';

describe.skipIf(missing)('example: the weekly report (cron, two-legged OAuth)', () => {
  let h: SchedulerHarness;
  let api: ReportingApi;

  beforeAll(async () => {
    h = await startSchedulerHarness();
    api = await startReportingApi({ issuer: h.idp.issuer, jwksUri: h.idp.jwksUri, audience: AUDIENCE });
  });

  afterAll(async () => {
    await api?.stop();
    await h?.stop();
  });

  it('posts the report on Wednesday at 20:00 Berlin time, with a token the reporting API accepts', async () => {
    // Frozen time: set up on a Tuesday evening, then the Wednesday 20:00 CEST fire (18:00Z).
    let clock = Date.parse('2025-06-10T18:00:00Z');
    const { app } = await h.addScheduler({ now: () => clock });
    await setUpWeeklyReport(h.bus, {
      tenant: 'examples',
      reportingUrl: api.url,
      client: { discoveryUrl: h.idp.discoveryUrl, clientId: 'test-app', clientSecret: 'test-app-secret', audience: AUDIENCE },
    });
    await app.scheduler.tick(clock);
    expect(api.reports).toHaveLength(0);
    clock = Date.parse('2025-06-11T18:00:00.500Z');
    await app.scheduler.tick(clock);
    await expect.poll(() => api.reports.length).toBe(1);
    expect(api.reports[0]).toMatchObject({ client: 'test-app' });
    expect(api.reports[0]?.idempotencyKey).toBeTruthy();
    expect(api.refused).toBe(0);
    const runs = await h.bus.request(jobRunsEndpoint, { tenant: 'examples', name: 'weekly-report' });
    expect(runs.items.map((r) => r.state)).toEqual(['succeeded']);
  });
});
