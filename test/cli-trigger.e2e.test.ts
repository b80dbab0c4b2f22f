import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { jetstreamManager } from '@nats-io/jetstream';
import type { Subscription } from '@nats-io/transport-node';
import { TRIGGERS_STREAM, type JobView, type TaskMessage } from '@mandate/contracts';
import { natsServerMissing } from '@mandate/testing';
import { startSchedulerHarness, type SchedulerHarness } from '@mandate/scheduler/testing';
import { assertBuilt, cliEntry } from './processes.js';
import { runCli, type CliRun } from './cli-process.js';

const missing = natsServerMissing('mandate trigger publish against the scheduler service');

// Every case runs the CLI a few times, and each run starts a Node process (about a second).
describe.skipIf(missing)('mandate trigger publish to an event-triggered job over a real nats-server', { timeout: 90_000 }, () => {
  let h: SchedulerHarness;
  let dir: string;
  let subscription: Subscription;
  const tasks: TaskMessage[] = [];
  /** Runs the built CLI against this test's NATS, in tenant `acme` unless the args say otherwise. */
  const mandate = (args: string[], stdin?: string) => runCli(args, { env: { NATS_URL: h.nats.url, MANDATE_TENANT: 'acme' }, ...(stdin !== undefined ? { stdin } : {}) });
  const ok = (run: CliRun): CliRun => {
    expect(run, run.stderr).toMatchObject({ code: 0 });
    return run;
  };
  const storedEvents = async () => (await (await jetstreamManager(h.nc)).streams.info(TRIGGERS_STREAM.name)).state.messages;

  beforeAll(async () => {
    assertBuilt(cliEntry);
    h = await startSchedulerHarness();
    await h.addScheduler();
    dir = await mkdtemp(join(tmpdir(), 'mandate-cli-trigger-'));
    const keyFile = join(dir, 'report-agent.jwk.json');
    await writeFile(keyFile, JSON.stringify(h.reporterKey), { mode: 0o600 });
    subscription = h.nc.subscribe('mandate.task.acme.incident-agent', { callback: (_e, msg) => void tasks.push(msg.json<TaskMessage>()) });
    ok(await mandate(['job', 'create', 'incident-agent', '--workload', 'report-agent', '--key', keyFile, '--event', 'tickets.high', '--task']));
  }, 60_000);

  afterAll(async () => {
    subscription?.unsubscribe();
    await h?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('publishes an event with an acknowledgement; the job whose filter matches runs once for it', async () => {
    const published = ok(await mandate(['trigger', 'publish', 'tickets.high', '--data', '{"ticket": 42}']));
    const match = /^✓ published to mandate\.trigger\.acme\.tickets\.high \(stream MANDATE_TRIGGERS, sequence (\d+)\)$/m.exec(published.stderr);
    expect(match, published.stderr).not.toBeNull();
    expect(published.stdout).toBe('');
    await expect.poll(() => tasks.length, { timeout: 10_000 }).toBe(1);
    expect(tasks[0]).toMatchObject({ job: 'incident-agent', trigger: 'event', event: { subject: 'mandate.trigger.acme.tickets.high', sequence: Number(match![1]), data: { ticket: 42 } } });

    // From stdin, with --json: what the stream answered.
    const asJson = JSON.parse(ok(await mandate(['trigger', 'publish', 'tickets.high', '--data-file', '-', '--json'], '{"ticket": 43}\n')).stdout) as Record<string, unknown>;
    expect(asJson).toEqual({ subject: 'mandate.trigger.acme.tickets.high', stream: TRIGGERS_STREAM.name, sequence: expect.any(Number), duplicate: false });
    await expect.poll(() => tasks.map((t) => t.event?.data), { timeout: 10_000 }).toEqual([{ ticket: 42 }, { ticket: 43 }]);

    // Another subject, or another tenant's, starts nothing here.
    ok(await mandate(['trigger', 'publish', 'tickets.low', '--data', '{}']));
    ok(await mandate(['trigger', 'publish', 'tickets.high', '--data', '{}', '--tenant', 'globex']));

    // The job shows its last run.
    await expect.poll(async () => (JSON.parse(ok(await mandate(['job', 'get', 'incident-agent', '--json'])).stdout) as JobView).lastRun?.state, { timeout: 10_000 }).toBe('succeeded');
    const job = JSON.parse(ok(await mandate(['job', 'get', 'incident-agent', '--json'])).stdout) as JobView;
    expect(job.lastRun).toMatchObject({ trigger: 'event', id: expect.stringMatching(new RegExp(`e0*${asJson['sequence']}$`)) });
    expect(job.lastFiredAt).toEqual(expect.any(String));
    expect(tasks).toHaveLength(2);
  });

  it('stores a publish repeated with one --msg-id once', async () => {
    const before = tasks.length;
    const first = JSON.parse(ok(await mandate(['trigger', 'publish', 'tickets.high', '--data', '{"ticket": 44}', '--msg-id', 'ticket-44', '--json'])).stdout) as { sequence: number; duplicate: boolean };
    const second = ok(await mandate(['trigger', 'publish', 'tickets.high', '--data', '{"ticket": 44}', '--msg-id', 'ticket-44']));
    expect(first.duplicate).toBe(false);
    expect(second.stderr).toContain(`sequence ${first.sequence}; a duplicate of an earlier event with this --msg-id, stored once)`);
    await expect.poll(() => tasks.length, { timeout: 10_000 }).toBe(before + 1);
  });

  it('refuses what is not one subject or not JSON, and no data, before publishing anything (exit 2)', async () => {
    const stored = await storedEvents();
    const cases: [args: string[], message: string][] = [
      [['tickets.*', '--data', '{}'], 'no * or >'],
      [['tickets.>', '--data', '{}'], 'no * or >'],
      [['tickets..high', '--data', '{}'], 'dot-separated tokens'],
      [['tickets.high', '--data', '{ticket: 42}'], '--data is not JSON'],
      [['tickets.high'], 'give the event data: --data JSON or --data-file FILE'],
      [['tickets.high', '--data', '{}', '--data-file', 'x.json'], "option '--data <json>' cannot be used with option '--data-file <file>'"],
      [['tickets.high', '--data', '{}', '--tenant', 'Not.A.Tenant'], '--tenant: tenant must be'],
    ];
    const results = await Promise.all(cases.map(([args]) => mandate(['trigger', 'publish', ...args])));
    for (const [i, run] of results.entries()) {
      const [args, message] = cases[i]!;
      expect(run.code, args.join(' ')).toBe(2);
      expect(run.stderr, args.join(' ')).toContain(message);
      expect(run.stdout).toBe('');
    }
    expect(await storedEvents()).toBe(stored);
  });
});
