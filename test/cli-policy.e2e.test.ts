import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gatewayCreateEndpoint, targetAddEndpoint, type PolicyView } from '@mandate/contracts';
import { freePort, natsServerMissing } from '@mandate/testing';
import { startExpenseToolServer } from '@mandate/testing/mcp-tool-servers';
import { startSystem, type TestSystem } from '@mandate/testing/system';
import { assertBuilt, cliEntry } from './processes.js';
import { runCli, type CliRun } from './cli-process.js';

const missing = natsServerMissing('mandate policy commands against the policy service');

const UNDER_100 = `@id("finance-under-100")
permit (principal, action == Mandate::Action::"finance___approve_expense", resource)
when { principal.groups.contains("finance") && context.input.amount.lessThan(decimal("100.0")) };
`;

describe.skipIf(missing)('mandate policy against the policy service over a real nats-server', { timeout: 120_000 }, () => {
  let h: TestSystem;
  let finance: Awaited<ReturnType<typeof startExpenseToolServer>>;
  let dir: string;
  const mandate = (args: string[], stdin?: string) => runCli(args, { env: { NATS_URL: h.nats.url, MANDATE_TENANT: 'acme' }, ...(stdin !== undefined ? { stdin } : {}) });
  const ok = (run: CliRun): CliRun => {
    expect(run, run.stderr).toMatchObject({ code: 0 });
    return run;
  };
  const file = async (name: string, content: string) => {
    const path = join(dir, name);
    await writeFile(path, content);
    return path;
  };

  beforeAll(async () => {
    assertBuilt(cliEntry);
    dir = await mkdtemp(join(tmpdir(), 'mandate-cli-policy-'));
    const port = await freePort();
    h = await startSystem({ services: ['directory', 'authorizer', 'vault', 'gateway', 'policy'], env: { GATEWAY_HTTP_PORT: String(port), GATEWAY_PUBLIC_URL: `http://127.0.0.1:${port}` } });
    finance = await startExpenseToolServer();
    const key = await h.workload('finance-gateway');
    await h.bus.request(gatewayCreateEndpoint, { tenant: 'acme', name: 'finance', workload: { name: 'finance-gateway', privateJwk: key as never }, authorizationServers: ['https://idp.example'] });
    await h.bus.request(targetAddEndpoint, { tenant: 'acme', gateway: 'finance', target: { name: 'finance', source: { kind: 'mcp', url: finance.url } } });
  });

  afterAll(async () => {
    await h?.stop();
    await finance?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('validates, creates, attaches, updates, rolls back, detaches and deletes a policy set', async () => {
    const policyFile = await file('expenses.cedar', UNDER_100);
    expect(ok(await mandate(['policy', 'validate', policyFile, '--gateway', 'finance'])).stdout).toContain("valid: 1 policy (finance-under-100), against the tools of finance");
    const created = JSON.parse(ok(await mandate(['policy', 'create', 'expenses', '--file', policyFile, '--json'])).stdout) as PolicyView;
    expect(created.active.version).toBe(1);
    expect(ok(await mandate(['policy', 'attach', 'finance', 'expenses', '--mode', 'log-only'])).stderr).toContain('gateway finance now applies policy set expenses version 1 (log-only)');
    ok(await mandate(['policy', 'update', 'expenses', '--file', '-'], UNDER_100.replaceAll('100', '1000')));
    expect(ok(await mandate(['policy', 'get', 'expenses'])).stdout).toMatch(/active version\s+2/);
    expect(ok(await mandate(['policy', 'versions', 'expenses'])).stdout).toMatch(/^version\s+active\s+hash/);
    expect(ok(await mandate(['policy', 'rollback', 'expenses'])).stdout).toMatch(/active version\s+1/);
    expect(ok(await mandate(['policy', 'activate', 'expenses', '2'])).stdout).toMatch(/active version\s+2/);
    expect(ok(await mandate(['policy', 'activate', 'expenses', '1'])).stdout).toMatch(/active version\s+1/);
    const noSuchVersion = await mandate(['policy', 'activate', 'expenses', '9']);
    expect([noSuchVersion.code, noSuchVersion.stdout]).toEqual([3, '']);
    expect(noSuchVersion.stderr).toContain('not_found: policy set expenses has no version 9');
    expect(ok(await mandate(['policy', 'get', 'expenses', '--text'])).stdout.trim()).toBe(UNDER_100.trim());
    expect(ok(await mandate(['policy', 'list'])).stdout).toMatch(/expenses\s+1\s+2\s+finance:log-only/);
    // The mode is changed on its own, not by attaching again (exit 4: conflict).
    const reattach = await mandate(['policy', 'attach', 'finance', 'expenses', '--mode', 'enforce']);
    expect(reattach.code).toBe(4);
    expect(reattach.stderr).toContain('mandate policy mode');
    expect(ok(await mandate(['policy', 'mode', 'finance', 'enforce'])).stderr).toContain('gateway finance now applies policy set expenses in enforce mode (was log-only)');
    expect(JSON.parse(ok(await mandate(['policy', 'mode', 'finance', 'enforce', '--json'])).stdout)).toEqual({ gateway: 'finance', policy: 'expenses', mode: 'enforce', previousMode: 'enforce', changed: false });
    expect((await mandate(['policy', 'mode', 'finance', 'shadow'])).code).toBe(2);
    expect(ok(await mandate(['policy', 'list'])).stdout).toMatch(/finance:enforce/);
    // Removing the target the set's policy is about stands, and says at once that the gateway now refuses every call, and why.
    const removed = ok(await mandate(['gateway', 'target', 'remove', 'finance', 'finance']));
    expect(removed.stderr).toContain('policy set expenses (version 1) attached to finance no longer validates against its tools');
    expect(removed.stderr).toMatch(/finance-under-100: line \d+, column \d+/);
    await h.bus.request(targetAddEndpoint, { tenant: 'acme', gateway: 'finance', target: { name: 'finance', source: { kind: 'mcp', url: finance.url } } });
    const attachedDelete = await mandate(['policy', 'delete', 'expenses']);
    expect(attachedDelete.code).toBe(4);
    expect(attachedDelete.stderr).toContain('detach it first');
    ok(await mandate(['policy', 'detach', 'finance']));
    ok(await mandate(['policy', 'delete', 'expenses']));
    expect((await mandate(['policy', 'get', 'expenses'])).code).toBe(3);
  });

  it('refuses bad Cedar and a policy that does not fit the tools, with the position, exit code 2', async () => {
    const broken = await mandate(['policy', 'validate', '-'], 'permit (principal, action, resource) when {');
    expect(broken.code).toBe(2);
    expect(broken.stdout).toMatch(/✗ .*line 1, column \d+/);
    const wrongTool = await file('wrong.cedar', 'permit (principal, action == Mandate::Action::"finance___nope", resource);');
    const against = await mandate(['policy', 'validate', wrongTool, '--gateway', 'finance']);
    expect(against.code).toBe(2);
    expect(against.stdout).toContain('finance___nope');
    const create = await mandate(['policy', 'create', 'broken', '--file', '-'], 'permit (');
    expect(create.code).toBe(2);
    expect((await mandate(['policy', 'attach', 'finance', 'expenses', '--mode', 'shadow'])).code).toBe(2);
  });
});
