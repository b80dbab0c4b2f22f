import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import type { TenantId, TrailEntry } from '@mandate/contracts';
import { auditDigestEndpoint } from '@mandate/contracts';
import { natsServerMissing } from '@mandate/testing';
import { startAuditHarness, type AuditHarness } from '@mandate/audit/testing';
import { assertBuilt, cliEntry, root } from './processes.js';
import { runCli } from './cli-process.js';

const missing = natsServerMissing('mandate audit commands against the audit service');

describe.skipIf(missing)('mandate audit query | tail | verify', { timeout: 90_000 }, () => {
  let h: AuditHarness;
  const mandate = (...args: string[]) => runCli(args, { env: { NATS_URL: h.nats.url, MANDATE_TENANT: 'acme' } });

  beforeAll(async () => {
    assertBuilt(cliEntry);
    h = await startAuditHarness();
    for (let i = 0; i < 3; i += 1) await h.publish('acme', { details: { i } });
    await h.publish('acme', { service: 'authorizer', action: 'authorize', outcome: 'denied', reason: 'token_expired', actor: { workload: 'crm-agent' } });
    await h.waitForSequence('acme', 4);
    await h.bus.request(auditDigestEndpoint, { tenant: 'acme' });
  });

  afterAll(async () => {
    await h?.stop();
  });

  it('verify prints n/n records valid, n/n digests valid and exits 0 on an untouched trail', async () => {
    const run = await mandate('audit', 'verify');
    expect(run, run.stderr).toMatchObject({ code: 0 });
    expect(run.stdout).toContain('4/4 records valid, 1/1 digests valid');
  });

  it('query filters and prints newest first; --json gives the entries', async () => {
    const table = await mandate('audit', 'query', '--outcome', 'denied');
    expect(table, table.stderr).toMatchObject({ code: 0 });
    expect(table.stdout).toMatch(/4\s+\S+\s+authorizer\/authorize\s+denied \(token_expired\)\s+crm-agent/);
    const json = await mandate('audit', 'query', '--json', '--limit', '2');
    const page = JSON.parse(json.stdout) as { entries: TrailEntry[]; nextCursor: string };
    expect(page.entries.map((e) => e.sequence)).toEqual([4, 3]);
    expect(page.nextCursor).toBe('3');
    expect((await mandate('audit', 'query', '--from', 'yesterday')).code).toBe(2);
  });

  it('tail follows records as they are published', async () => {
    const child = spawn(process.execPath, [cliEntry, 'audit', 'tail'], { cwd: root, env: { ...process.env, NO_COLOR: '1', NATS_URL: h.nats.url, MANDATE_TENANT: 'acme' } });
    let out = '';
    let err = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString()));
    child.stderr.on('data', (c: Buffer) => (err += c.toString()));
    await expect.poll(() => err, { timeout: 15_000 }).toContain('following mandate.audit.acme.>');
    const record = await h.publish('acme', { action: 'workload-delete' });
    await expect.poll(() => out, { timeout: 10_000 }).toContain(`directory/workload-delete  succeeded`);
    expect(out).toContain(`trace=${record.traceId}`);
    child.kill('SIGINT');
  });

  it('verify names the first broken record and exits non-zero once the trail is edited', async () => {
    await h.waitForSequence('acme', 5);
    const stored = h.editor;
    const entry = await stored.read('acme' as TenantId, 2);
    await stored.replace('acme' as TenantId, 2, { ...entry, record: { ...entry.record, outcome: 'failed' } });
    const run = await mandate('audit', 'verify', '--from', '1', '--to', '4');
    expect(run.code).toBe(1);
    expect(run.stdout).toContain('3/4 records valid, 1/1 digests valid');
    expect(run.stdout).toContain('first problem: edited: record 2 was edited');
  });
});
