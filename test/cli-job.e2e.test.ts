import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { JobView, RunView } from '@mandate/contracts';
import { providerCreateEndpoint } from '@mandate/contracts';
import { natsServerMissing } from '@mandate/testing';
import { startSchedulerHarness, type SchedulerApp, type SchedulerHarness } from '@mandate/scheduler/testing';
import { assertBuilt, cliEntry } from './processes.js';
import { runCli, type CliRun } from './cli-process.js';

const missing = natsServerMissing('mandate job commands against the scheduler service');

const at = (iso: string) => Date.parse(iso);

// Every case runs the CLI a few times, and each run starts a Node process (about a second).
describe.skipIf(missing)('mandate job against the scheduler service over a real nats-server', { timeout: 90_000 }, () => {
  let h: SchedulerHarness;
  let app: SchedulerApp;
  let dir: string;
  let keyFile: string;
  /** The scheduler's frozen clock: only the test moves it. */
  let clock = at('2025-06-11T17:00:00Z');
  const runs: CliRun[] = [];
  /** Runs the built CLI against this test's NATS, in tenant `acme` unless the args say otherwise. */
  const mandate = async (...args: string[]) => {
    const run = await runCli(args, { env: { NATS_URL: h.nats.url, MANDATE_TENANT: 'acme' } });
    runs.push(run);
    return run;
  };
  const json = <T>(run: CliRun): T => {
    expect(run, run.stderr).toMatchObject({ code: 0 });
    return JSON.parse(run.stdout) as T;
  };
  /** `mandate job create <name>` as report-agent with its key file, plus the given options. */
  const create = (name: string, ...args: string[]) => mandate('job', 'create', name, '--workload', 'report-agent', '--key', keyFile, ...args);

  beforeAll(async () => {
    assertBuilt(cliEntry);
    h = await startSchedulerHarness();
    app = (await h.addScheduler({ now: () => clock })).app;
    dir = await mkdtemp(join(tmpdir(), 'mandate-cli-job-'));
    keyFile = join(dir, 'report-agent.jwk.json');
    await writeFile(keyFile, JSON.stringify(h.reporterKey), { mode: 0o600 });
  }, 60_000);

  afterAll(async () => {
    await h?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('creates a cron job with a time zone, reads, lists, pauses, resumes, runs and deletes it', async () => {
    const created = json<JobView>(
      await create(
        'weekly-report',
        '--cron', '0 20 * * 3', '--tz', 'Europe/Berlin',
        '--http', `${h.resource.url}/weekly`, '--provider', 'reporting', '--scope', 'reports.write',
        '--description', 'Weekly sales report', '--actor', 'ops@acme', '--json',
      ),
    );
    expect(created).toMatchObject({
      tenant: 'acme',
      name: 'weekly-report',
      description: 'Weekly sales report',
      workload: 'report-agent',
      state: 'active',
      trigger: { kind: 'cron', expression: '0 20 * * 3', timeZone: 'Europe/Berlin' },
      action: { kind: 'http', method: 'POST', url: `${h.resource.url}/weekly`, provider: 'reporting', scopes: ['reports.write'] },
      missedFire: 'run-once',
      retry: { limit: 3, backoffMs: 10_000, maxBackoffMs: 600_000 },
      nextFireAt: '2025-06-11T18:00:00.000Z',
    });
    expect(JSON.stringify(created)).not.toContain('"d"');

    const shown = await mandate('job', 'get', 'weekly-report');
    expect(shown.code, shown.stderr).toBe(0);
    expect(shown.stdout).toMatch(/^job\s+weekly-report$/m);
    expect(shown.stdout).toMatch(/^state\s+active$/m);
    expect(shown.stdout).toMatch(/^workload\s+report-agent$/m);
    expect(shown.stdout).toMatch(/^trigger\s+cron "0 20 \* \* 3" in Europe\/Berlin$/m);
    expect(shown.stdout).toContain(`POST ${h.resource.url}/weekly (M2M token from reporting, scopes reports.write)`);
    expect(shown.stdout).toMatch(/^missed fires\s+run-once$/m);
    expect(shown.stdout).toMatch(/^last fired\s+never$/m);
    expect(shown.stdout).toMatch(/^next fire\s+2025-06-11T18:00:00\.000Z$/m);
    expect(shown.stdout).toMatch(new RegExp(`^revision\\s+${created.revision}$`, 'm'));
    expect(json<JobView>(await mandate('job', 'get', 'weekly-report', '--json'))).toEqual(created);

    const list = json<{ items: JobView[] }>(await mandate('job', 'list', '--json'));
    expect(list.items.map((job) => job.name)).toEqual(['weekly-report']);
    expect(list).not.toHaveProperty('nextCursor');
    const table = await mandate('job', 'list');
    expect(table.code, table.stderr).toBe(0);
    expect(table.stdout.split('\n')[0]).toMatch(/^NAME\s+STATE\s+WORKLOAD\s+TRIGGER\s+ACTION\s+NEXT FIRE$/);
    expect(table.stdout).toMatch(/^weekly-report\s+active\s+report-agent\s+0 20 \* \* 3 Europe\/Berlin\s+POST http:\/\/127\.0\.0\.1:\d+\/weekly\s+2025-06-11T18:00:00\.000Z$/m);

    const noRuns = await mandate('job', 'runs', 'weekly-report');
    expect(noRuns.code, noRuns.stderr).toBe(0);
    expect(noRuns.stdout).toContain('no runs yet');

    // Paused, the fire time passes without a call.
    const paused = await mandate('job', 'pause', 'weekly-report');
    expect(paused.code, paused.stderr).toBe(0);
    expect(paused.stderr).toContain('job weekly-report is paused');
    expect(json<JobView>(await mandate('job', 'get', 'weekly-report', '--json')).state).toBe('paused');
    clock = at('2025-06-11T18:00:30Z');
    await app.scheduler.tick(clock);
    expect(h.resource.requests.filter((r) => r.path === '/weekly')).toHaveLength(0);

    // Resumed, it fires from now on: next Wednesday at 20:00 Berlin time.
    const resumed = json<JobView>(await mandate('job', 'resume', 'weekly-report', '--json'));
    expect(resumed).toMatchObject({ state: 'active', nextFireAt: '2025-06-18T18:00:00.000Z' });
    clock = at('2025-06-18T18:00:01Z');
    await app.scheduler.tick(clock);
    const hits = h.resource.requests.filter((r) => r.path === '/weekly');
    expect(hits).toHaveLength(1);
    expect(hits[0]!.authorization).toMatch(/^Bearer \S+/);

    const recorded = json<{ items: RunView[] }>(await mandate('job', 'runs', 'weekly-report', '--json'));
    expect(recorded.items).toHaveLength(1);
    expect(recorded.items[0]).toMatchObject({ trigger: 'cron', state: 'succeeded', scheduledFor: '2025-06-18T18:00:00.000Z', attempts: 1, httpStatus: 200 });
    const runTable = await mandate('job', 'runs', 'weekly-report');
    expect(runTable.code, runTable.stderr).toBe(0);
    expect(runTable.stdout.split('\n')[0]).toMatch(/^SCHEDULED FOR\s+TRIGGER\s+STATE\s+ATTEMPTS\s+HTTP\s+DETAIL$/);
    expect(runTable.stdout).toMatch(/^2025-06-18T18:00:00\.000Z\s+cron\s+succeeded\s+1\s+200/m);
    const fired = await mandate('job', 'get', 'weekly-report');
    expect(fired.stdout).toMatch(/^next fire\s+2025-06-25T18:00:00\.000Z$/m);
    expect(fired.stdout).not.toMatch(/^last fired\s+never$/m);

    const deleted = await mandate('job', 'delete', 'weekly-report', '--actor', 'ops@acme');
    expect(deleted.code, deleted.stderr).toBe(0);
    expect(deleted.stderr).toContain('job weekly-report deleted');
    const empty = await mandate('job', 'list');
    expect(empty.code, empty.stderr).toBe(0);
    expect(empty.stdout).toContain('no jobs');
  });

  it('refuses a bad cron expression or time zone, printing the issue (exit 2)', async () => {
    const http = ['--http', `${h.resource.url}/x`, '--provider', 'reporting'];
    const badCron = await create('bad-cron', '--cron', '0 25 * * *', ...http);
    expect(badCron.code).toBe(2);
    expect(badCron.stderr).toContain('invalid_request: invalid cron expression');
    expect(badCron.stderr).toContain('  - trigger.expression: not a valid cron expression');
    expect(badCron.stdout).toBe('');
    const fourFields = await create('bad-cron', '--cron', '0 20 * *', ...http);
    expect(fourFields.code).toBe(2);
    expect(fourFields.stderr).toContain('  - trigger.expression: needs 5 fields (or 6 with seconds first)');
    const badZone = await create('bad-zone', '--cron', '0 20 * * 3', '--tz', 'Mars/Olympus_Mons', ...http);
    expect(badZone.code).toBe(2);
    expect(badZone.stderr).toContain('invalid_request');
    expect(badZone.stderr).toContain('  - trigger.timeZone: must be an IANA time zone, e.g. Europe/Berlin');
    expect(badZone.stdout).toBe('');
    // Usage errors, before anything is sent.
    const noTrigger = await create('no-trigger', ...http);
    expect(noTrigger.code).toBe(2);
    expect(noTrigger.stderr).toContain('give exactly one trigger');
    const noProvider = await create('no-provider', '--cron', '0 20 * * 3', '--http', `${h.resource.url}/x`);
    expect(noProvider.code).toBe(2);
    expect(noProvider.stderr).toContain('--http needs --provider');
    const gets = await Promise.all(['bad-cron', 'bad-zone', 'no-trigger', 'no-provider'].map((name) => mandate('job', 'get', name)));
    expect(gets.map((run) => run.code)).toEqual([3, 3, 3, 3]);
  });

  it('answers not_found (exit 3) for a job that does not exist', async () => {
    const cases = [['get'], ['pause'], ['resume'], ['delete'], ['runs']];
    const results = await Promise.all(cases.map(([verb]) => mandate('job', verb!, 'no-such-job')));
    for (const [i, run] of results.entries()) {
      expect(run.code, cases[i]![0]).toBe(3);
      expect(run.stderr, cases[i]![0]).toContain('not_found');
      expect(run.stdout).toBe('');
    }
  });

  it('refuses at create a provider or workload that does not exist, or a provider that gives no M2M token, storing nothing (exit 2)', async () => {
    const cron = ['--cron', '0 20 * * 3'];
    const keyPath = await h.workload('key-holder-agent').then(async (key) => {
      const file = join(dir, 'key-holder-agent.jwk.json');
      await writeFile(file, JSON.stringify(key), { mode: 0o600 });
      return file;
    });
    await h.bus.request(providerCreateEndpoint, { kind: 'api-key', tenant: 'acme', name: 'weather', apiKey: 'weather-key-2c81', allowedWorkloads: ['report-agent'] });

    const noProvider = await create('ghost-provider', ...cron, '--http', `${h.resource.url}/x`, '--provider', 'no-such-provider');
    expect(noProvider.code).toBe(2);
    expect(noProvider.stderr).toContain('invalid_request: no provider no-such-provider in tenant acme');
    expect(noProvider.stderr).toContain('  - action.provider: no such provider in the vault');
    expect(noProvider.stdout).toBe('');
    const apiKeyProvider = await create('api-key-provider', ...cron, '--http', `${h.resource.url}/x`, '--provider', 'weather');
    expect(apiKeyProvider.code).toBe(2);
    expect(apiKeyProvider.stderr).toContain('  - action.provider: an HTTP action needs an OAuth2 provider for its M2M token');
    const noWorkload = await mandate('job', 'create', 'ghost-workload', '--workload', 'no-such-agent', '--key', keyPath, ...cron, '--task');
    expect(noWorkload.code).toBe(2);
    expect(noWorkload.stderr).toContain('invalid_request: no workload no-such-agent in tenant acme');
    expect(noWorkload.stderr).toContain('  - workload.name: no such workload in the directory');
    // A workload that exists with a key that is not its own is still the key's fault.
    const wrongKey = await mandate('job', 'create', 'wrong-key', '--workload', 'report-agent', '--key', keyPath, ...cron, '--task');
    expect(wrongKey.code).toBe(2);
    expect(wrongKey.stderr).toContain('  - workload.privateJwk: not a key registered for the workload in the directory');
    const gets = await Promise.all(['ghost-provider', 'api-key-provider', 'ghost-workload', 'wrong-key'].map((name) => mandate('job', 'get', name)));
    expect(gets.map((run) => run.code)).toEqual([3, 3, 3, 3]);
  });

  it("lists each job's last run and its outcome", async () => {
    clock = at('2025-07-01T09:00:00Z');
    const outsiderKey = join(dir, 'outsider-agent.jwk.json');
    await writeFile(outsiderKey, JSON.stringify(await h.workload('outsider-agent')), { mode: 0o600 });
    expect((await create('daily-report', '--cron', '0 10 * * *', '--http', `${h.resource.url}/daily`, '--provider', 'reporting')).code).toBe(0);
    // The provider does not let outsider-agent use it: its run fails with access_denied.
    const outsider = await mandate('job', 'create', 'outsider', '--workload', 'outsider-agent', '--key', outsiderKey, '--cron', '0 10 * * *', '--http', `${h.resource.url}/outsider`, '--provider', 'reporting');
    expect(outsider.code, outsider.stderr).toBe(0);
    expect((await create('never-run', '--cron', '0 10 1 1 *', '--task')).code).toBe(0);

    const before = json<{ items: JobView[] }>(await mandate('job', 'list', '--json'));
    expect(before.items.every((job) => job.lastRun === undefined)).toBe(true);

    clock = at('2025-07-01T10:00:01Z');
    await app.scheduler.tick(clock);
    const listed = json<{ items: JobView[] }>(await mandate('job', 'list', '--json'));
    const byName = new Map(listed.items.map((job) => [job.name, job]));
    expect(byName.get('daily-report')!.lastRun).toMatchObject({ trigger: 'cron', scheduledFor: '2025-07-01T10:00:00.000Z', state: 'succeeded', finishedAt: expect.any(String) });
    expect(byName.get('daily-report')!.lastRun).not.toHaveProperty('code');
    expect(byName.get('outsider')!.lastRun).toMatchObject({ scheduledFor: '2025-07-01T10:00:00.000Z', state: 'failed', code: 'access_denied' });
    expect(byName.get('never-run')).not.toHaveProperty('lastRun');

    const table = await mandate('job', 'list');
    expect(table.code, table.stderr).toBe(0);
    expect(table.stdout.split('\n')[0]).toMatch(/^NAME\s+STATE\s+WORKLOAD\s+TRIGGER\s+ACTION\s+NEXT FIRE\s+LAST RUN\s+OUTCOME$/);
    expect(table.stdout).toMatch(/^daily-report\s+.*\s+2025-07-02T10:00:00\.000Z\s+2025-07-01T10:00:00\.000Z\s+succeeded$/m);
    expect(table.stdout).toMatch(/^outsider\s+.*\s+2025-07-01T10:00:00\.000Z\s+failed \(access_denied\)$/m);
    expect(table.stdout).toMatch(/^never-run\s+.*\s+-\s+-$/m);
    const shown = await mandate('job', 'get', 'outsider');
    expect(shown.stdout).toMatch(/^last run\s+2025-07-01T10:00:00\.000Z \(cron\) failed \(access_denied\)$/m);
    expect((await mandate('job', 'get', 'never-run')).stdout).toMatch(/^last run\s+none$/m);

    for (const name of ['daily-report', 'outsider', 'never-run']) expect((await mandate('job', 'delete', name)).code).toBe(0);
  });

  it('never printed the private key, in any command above', () => {
    expect(runs.length).toBeGreaterThan(20);
    const privateD = h.reporterKey.d!;
    expect(privateD.length).toBeGreaterThan(20);
    for (const run of runs) {
      expect(run.stdout).not.toContain(privateD);
      expect(run.stderr).not.toContain(privateD);
    }
  });
});
