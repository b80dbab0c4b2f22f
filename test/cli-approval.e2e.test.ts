import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { approvalGetEndpoint, approvalRequestEndpoint, gatewayCreateEndpoint, type ApprovalView, type RequestOf } from '@mandate/contracts';
import { freePort, natsServerMissing } from '@mandate/testing';
import { startTestIdp, type TestIdp } from '@mandate/testing/idp';
import { startSystem, type TestSystem } from '@mandate/testing/system';
import { assertBuilt, cliEntry } from './processes.js';
import { runCli } from './cli-process.js';

const missing = natsServerMissing('mandate approval against the policy service');

describe.skipIf(missing)('mandate approval list|get|approve|deny over a real nats-server', { timeout: 120_000 }, () => {
  let h: TestSystem;
  let idp: TestIdp;
  let dir: string;
  let resource: string;
  let digests = 0;
  const mandate = (args: string[], stdin?: string) => runCli(args, { env: { NATS_URL: h.nats.url, MANDATE_TENANT: 'acme' }, ...(stdin !== undefined ? { stdin } : {}) });
  const hold = (amount: number, gateway = 'finance-gw'): Promise<ApprovalView> =>
    h.bus.request(approvalRequestEndpoint, {
      tenant: 'acme',
      gateway,
      tool: 'finance___approve_expense',
      target: 'finance',
      toolTitle: 'Approve expense',
      arguments: [{ name: 'amount', title: 'Amount', value: String(amount) }],
      user: { iss: idp.issuer, sub: 'sarah' },
      approvers: [{ kind: 'group', name: 'finance-managers' }],
      digest: `cli-digest-${++digests}-${'x'.repeat(30)}`,
      policy: { name: 'expenses', version: 'hash', determining: ['managers-approve'] },
      ttlSeconds: 900,
    } satisfies RequestOf<typeof approvalRequestEndpoint>);
  const tokenFile = async (sub: string, groups: string[]) => {
    const path = join(dir, `${sub}.jwt`);
    await writeFile(path, `${await idp.userAccessToken({ sub, audience: resource, claims: { groups } })}\n`, { mode: 0o600 });
    return path;
  };

  beforeAll(async () => {
    assertBuilt(cliEntry);
    dir = await mkdtemp(join(tmpdir(), 'mandate-cli-approval-'));
    const port = await freePort();
    resource = `http://127.0.0.1:${port}/mcp/acme/finance-gw`;
    h = await startSystem({ services: ['directory', 'authorizer', 'gateway', 'policy'], env: { GATEWAY_HTTP_PORT: String(port), GATEWAY_PUBLIC_URL: `http://127.0.0.1:${port}` } });
    idp = await startTestIdp();
    const key = await h.workload('finance-gateway');
    await h.setAuthorizer('acme', 'finance-gateway', { discoveryUrl: idp.discoveryUrl, allowedAudiences: [resource] });
    await h.bus.request(gatewayCreateEndpoint, { tenant: 'acme', name: 'finance-gw', workload: { name: 'finance-gateway', privateJwk: key as never }, authorizationServers: [idp.issuer] });
  });

  afterAll(async () => {
    await h?.stop();
    await idp?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('lists newest first with --state and --gateway filters, and shows one request as a person reads it', async () => {
    const first = await hold(250);
    const second = await hold(900, 'travel-gw');
    const listed = await mandate(['approval', 'list', '--json']);
    expect(listed.code).toBe(0);
    const ids = (JSON.parse(listed.stdout) as { items: ApprovalView[] }).items.map((a) => a.id);
    expect(ids.indexOf(second.id)).toBeLessThan(ids.indexOf(first.id));
    const onlyFinance = JSON.parse((await mandate(['approval', 'list', '--gateway', 'finance-gw', '--json'])).stdout) as { items: ApprovalView[] };
    expect(onlyFinance.items.map((a) => a.id)).toContain(first.id);
    expect(onlyFinance.items.map((a) => a.id)).not.toContain(second.id);
    const table = await mandate(['approval', 'list', '--state', 'requested']);
    expect(table.stdout).toContain(first.id);
    expect((await mandate(['approval', 'list', '--state', 'pending'])).code).toBe(2);
    const shown = await mandate(['approval', 'get', first.id]);
    expect(shown.code).toBe(0);
    expect(shown.stdout).toContain('Amount: 250');
    expect(shown.stdout).toContain('group finance-managers');
    expect((await mandate(['approval', 'get', `apr_${'q'.repeat(30)}`])).code).toBe(3);
  });

  it("approve with the manager's token file; a non-approver's token (stdin) is refused with exit 5; deny with a comment", async () => {
    const held = await hold(300);
    const refused = await mandate(['approval', 'approve', held.id, '--token', '-'], await idp.userAccessToken({ sub: 'bob', audience: resource, claims: { groups: ['sales'] } }));
    expect(refused.code).toBe(5);
    expect(refused.stderr).toContain('access_denied');
    expect((await h.bus.request(approvalGetEndpoint, { tenant: 'acme', id: held.id })).state).toBe('requested');
    const maria = await tokenFile('maria', ['finance-managers']);
    const approved = await mandate(['approval', 'approve', held.id, '--token-file', maria, '--comment', 'team offsite']);
    expect(approved.code).toBe(0);
    expect(approved.stdout).toContain(`approved ${held.id}`);
    expect(await h.bus.request(approvalGetEndpoint, { tenant: 'acme', id: held.id })).toMatchObject({ state: 'approved', comment: 'team offsite', decidedBy: { sub: 'maria' } });
    // Decided once: deciding again is a conflict (exit 4).
    expect((await mandate(['approval', 'deny', held.id, '--token-file', maria])).code).toBe(4);

    const other = await hold(301);
    const denied = await mandate(['approval', 'deny', other.id, '--token-file', maria, '--comment', 'no', '--json']);
    expect(denied.code).toBe(0);
    expect(JSON.parse(denied.stdout)).toMatchObject({ id: other.id, state: 'denied', comment: 'no' });
  });

  it('never takes a token on the command line, and says what is missing', async () => {
    const held = await hold(302);
    const plain = await mandate(['approval', 'approve', held.id, '--token', 'eyJhbGciOi.fake.token']);
    expect(plain.code).toBe(2);
    expect(plain.stderr).not.toContain('eyJhbGciOi');
    const none = await mandate(['approval', 'approve', held.id]);
    expect(none.code).toBe(2);
    expect(none.stderr).toContain('--token-file');
    expect((await h.bus.request(approvalGetEndpoint, { tenant: 'acme', id: held.id })).state).toBe('requested');
  });
});
