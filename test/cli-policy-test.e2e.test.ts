import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gatewayCreateEndpoint, policyAttachEndpoint, policyCreateEndpoint, targetAddEndpoint, type ResponseOf, type policyTestEndpoint } from '@mandate/contracts';
import { freePort, natsServerMissing } from '@mandate/testing';
import { startExpenseToolServer } from '@mandate/testing/mcp-tool-servers';
import { startSystem, type TestSystem } from '@mandate/testing/system';
import { assertBuilt, cliEntry } from './processes.js';
import { runCli } from './cli-process.js';

const missing = natsServerMissing('mandate policy test against the policy service');

const UNDER_100 = `@id("finance-under-100")
permit (principal, action == Mandate::Action::"finance___approve_expense", resource)
when { principal.groups.contains("finance") && context.input.amount.lessThan(decimal("100.0")) };

@id("no-interns")
forbid (principal, action, resource) when { principal.hasTag("role") && principal.getTag("role") == "intern" };
`;

const sarah = { iss: 'https://idp.example', sub: 'sarah', groups: ['finance'] };
const expense = (name: string, principal: object, amount: unknown, decision: 'allow' | 'deny', reason: string[] = []) => ({
  name,
  request: { principal, action: 'finance___approve_expense', context: { input: { amount }, scopes: ['finance.write'] } },
  decision,
  reason,
});

const PASSING = [
  expense('under 100 for finance', sarah, 99.5, 'allow', ['finance-under-100']),
  expense('100 is too much', sarah, 100, 'deny'),
  expense('not for sales', { ...sarah, sub: 'bob', groups: ['sales'] }, 5, 'deny'),
  expense('never for an intern', { ...sarah, tags: { role: 'intern' } }, 5, 'deny', ['no-interns']),
];

describe.skipIf(missing)('mandate policy test FILE against the policy service over a real nats-server', { timeout: 120_000 }, () => {
  let h: TestSystem;
  let finance: Awaited<ReturnType<typeof startExpenseToolServer>>;
  let dir: string;
  const mandate = (args: string[]) => runCli(args, { env: { NATS_URL: h.nats.url, MANDATE_TENANT: 'acme' } });
  const file = async (name: string, content: unknown) => {
    const path = join(dir, name);
    await writeFile(path, typeof content === 'string' ? content : JSON.stringify(content));
    return path;
  };

  beforeAll(async () => {
    assertBuilt(cliEntry);
    dir = await mkdtemp(join(tmpdir(), 'mandate-cli-policy-test-'));
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

  it('a candidate file whose cases all pass exits 0 and prints each with its decision and determining policies', async () => {
    const run = await mandate(['policy', 'test', await file('pass.json', PASSING), '--gateway', 'finance', '--policies', await file('expenses.cedar', UNDER_100)]);
    expect(run, run.stderr).toMatchObject({ code: 0 });
    expect(run.stdout).toContain('running 4 test(s) against the candidate policies, with the tools of gateway finance');
    expect(run.stdout).toContain('test under 100 for finance ... ok: allow by finance-under-100');
    expect(run.stdout).toContain('test never for an intern ... ok: deny by no-interns');
    expect(run.stdout).toContain('results: 4 passed, 0 failed');
  });

  it('a mismatch exits 1 naming the case; arguments the tool does not accept are reported as invalid', async () => {
    const cases = [...PASSING, expense('expects 150 to pass', sarah, 150, 'allow'), expense('a string for a number', sarah, '50', 'allow'), { ...expense('unknown tool', sarah, 5, 'deny'), request: { principal: sarah, action: 'finance___gone' } }];
    const run = await mandate(['policy', 'test', await file('mismatch.json', cases), '--gateway', 'finance', '--policies', await file('expenses.cedar', UNDER_100)]);
    expect(run.code).toBe(1);
    expect(run.stdout).toContain('test expects 150 to pass ... fail: expected allow, got deny');
    expect(run.stdout).toMatch(/test a string for a number \.\.\. invalid: the arguments do not match the input schema of finance___approve_expense/);
    expect(run.stdout).toContain('test unknown tool ... invalid: gateway finance has no tool finance___gone');
    expect(run.stdout).toContain('results: 4 passed, 3 failed');
    const json = await mandate(['policy', 'test', await file('mismatch.json', cases), '--gateway', 'finance', '--policies', await file('expenses.cedar', UNDER_100), '--json']);
    expect(json.code).toBe(1);
    const answer = JSON.parse(json.stdout) as ResponseOf<typeof policyTestEndpoint>;
    expect(answer).toMatchObject({ policySet: { source: 'candidate' }, passed: 4, failed: 3 });
    expect(answer.results.map((r) => r.outcome)).toEqual(['pass', 'pass', 'pass', 'pass', 'fail', 'invalid', 'invalid']);
  });

  it('without --policies, tests the set attached to the gateway (its active version)', async () => {
    await h.bus.request(policyCreateEndpoint, { tenant: 'acme', name: 'expenses', text: UNDER_100 });
    const unattached = await mandate(['policy', 'test', await file('pass.json', PASSING), '--gateway', 'finance']);
    expect(unattached.code).toBe(3);
    expect(unattached.stderr).toContain('has no policy set attached');
    await h.bus.request(policyAttachEndpoint, { tenant: 'acme', gateway: 'finance', policy: 'expenses', mode: 'log-only' });
    const run = await mandate(['policy', 'test', await file('pass.json', PASSING), '--gateway', 'finance']);
    expect(run, run.stderr).toMatchObject({ code: 0 });
    expect(run.stdout).toContain('against policy set expenses version 1');
  });

  it('a file that cannot be used is a clear error, exit 2', async () => {
    const notJson = await mandate(['policy', 'test', await file('broken.json', '[{"name": '), '--gateway', 'finance']);
    expect(notJson.code).toBe(2);
    expect(notJson.stderr).toContain('is not JSON');
    const notCases = await mandate(['policy', 'test', await file('shape.json', [{ name: 'no decision', request: { principal: sarah, action: 'finance___approve_expense' } }]), '--gateway', 'finance']);
    expect(notCases.code).toBe(2);
    expect(notCases.stderr).toContain('decision');
    const badCedar = await mandate(['policy', 'test', await file('pass.json', PASSING), '--gateway', 'finance', '--policies', await file('bad.cedar', 'permit (')]);
    expect(badCedar.code).toBe(2);
    expect(badCedar.stderr).toMatch(/line 1, column \d+/);
    expect((await mandate(['policy', 'test', join(dir, 'missing.json'), '--gateway', 'finance'])).code).toBe(2);
    expect((await mandate(['policy', 'test', await file('pass.json', PASSING), '--gateway', 'nowhere', '--policies', await file('expenses.cedar', UNDER_100)])).code).toBe(3);
  });
});
