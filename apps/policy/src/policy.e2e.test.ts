import type { JWK } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { McpError } from '@modelcontextprotocol/sdk/types.js';
import {
  gatewayCreateEndpoint,
  policyActivateEndpoint,
  policyAttachEndpoint,
  policyCreateEndpoint,
  policyDeleteEndpoint,
  policyDetachEndpoint,
  policyForGatewayEndpoint,
  policySetModeEndpoint,
  policyUpdateEndpoint,
  policyValidateEndpoint,
  policyVersionsEndpoint,
  targetAddEndpoint,
  targetRemoveEndpoint,
} from '@mandate/contracts';
import { freePort, natsServerMissing, failure } from '@mandate/testing';
import { startTestIdp, type TestIdp } from '@mandate/testing/idp';
import { startExpenseToolServer } from '@mandate/testing/mcp-tool-servers';
import { startSystem, type TestSystem } from '@mandate/testing/system';

const missing = natsServerMissing('policy service and gateway');

/** The seed's example: an expense under 100 is approved for people in the finance group. */
const UNDER_100 = `
@id("finance-under-100")
permit (principal, action == Mandate::Action::"finance___approve_expense", resource)
when { principal.groups.contains("finance") && context.input.amount.lessThan(decimal("100.0")) };
`;
const UNDER_1000 = UNDER_100.replace('finance-under-100', 'finance-under-1000').replace('100.0', '1000.0');

describe.skipIf(missing)('Cedar policy on every tool call, through the gateway with the official MCP client', () => {
  let h: TestSystem;
  let idp: TestIdp;
  let finance: Awaited<ReturnType<typeof startExpenseToolServer>>;
  let resource: string;
  const clients: Client[] = [];

  const token = (sub: string, groups: string[]) => idp.userAccessToken({ sub, audience: resource, scope: 'finance.write', claims: { groups } });
  const approve = async (who: { sub: string; groups: string[] }, amount: number) => {
    const client = new Client({ name: 'policy-test', version: '1.0.0' });
    await client.connect(new StreamableHTTPClientTransport(new URL(resource), { requestInit: { headers: { authorization: `Bearer ${await token(who.sub, who.groups)}` } } }));
    clients.push(client);
    return client.callTool({ name: 'finance___approve_expense', arguments: { amount } }).then(
      (result): { allowed: boolean; error?: McpError } => ({ allowed: !result.isError }),
      (error: unknown): { allowed: boolean; error?: McpError } => ({ allowed: false, error: error as McpError }),
    );
  };
  const sarah = { sub: 'sarah', groups: ['finance'] };
  const bob = { sub: 'bob', groups: ['sales'] };
  const policyRecords = () => h.audit.filter((r) => r.service === 'gateway' && r.action === 'tool-call' && r.details?.['policySet'] === 'expenses');

  beforeAll(async () => {
    const port = await freePort();
    const publicUrl = `http://127.0.0.1:${port}`;
    resource = `${publicUrl}/mcp/acme/finance-gw`;
    h = await startSystem({ services: ['directory', 'authorizer', 'vault', 'gateway', 'policy'], env: { GATEWAY_HTTP_PORT: String(port), GATEWAY_PUBLIC_URL: publicUrl } });
    [idp, finance] = await Promise.all([startTestIdp(), startExpenseToolServer()]);
    const key: JWK = await h.workload('finance-gateway');
    await h.setAuthorizer('acme', 'finance-gateway', { discoveryUrl: idp.discoveryUrl, allowedAudiences: [resource] });
    await h.bus.request(gatewayCreateEndpoint, { tenant: 'acme', name: 'finance-gw', workload: { name: 'finance-gateway', privateJwk: key as never }, authorizationServers: [idp.issuer] });
    await h.bus.request(targetAddEndpoint, { tenant: 'acme', gateway: 'finance-gw', target: { name: 'finance', source: { kind: 'mcp', url: finance.url } } });
    await h.bus.request(policyCreateEndpoint, { tenant: 'acme', name: 'expenses', text: UNDER_100, actor: 'security@acme' });
  }, 60_000);

  afterAll(async () => {
    await Promise.all(clients.map((client) => client.close().catch(() => undefined)));
    await h?.stop();
    await Promise.all([idp?.stop(), finance?.stop()]);
  });

  it('without a policy set attached, calls are not checked by policy', async () => {
    expect(await h.bus.request(policyForGatewayEndpoint, { tenant: 'acme', gateway: 'finance-gw' })).toEqual({ attached: false });
    expect((await approve(bob, 500)).allowed).toBe(true);
  });

  it('enforced: under 100 for the finance group is permitted; 100 or more, or another group, is denied by policy, naming the decision', async () => {
    const attached = await h.bus.request(policyAttachEndpoint, { tenant: 'acme', gateway: 'finance-gw', policy: 'expenses', mode: 'enforce', actor: 'security@acme' });
    expect(attached).toMatchObject({ gateway: 'finance-gw', policy: 'expenses', mode: 'enforce', version: { version: 1 } });
    const before = finance.approved.length;
    expect((await approve(sarah, 99.5)).allowed).toBe(true);
    const tooMuch = await approve(sarah, 100);
    expect(tooMuch.allowed).toBe(false);
    expect(tooMuch.error).toBeInstanceOf(McpError);
    expect(tooMuch.error?.code).toBe(-32003);
    expect(tooMuch.error?.message).toContain('Denied by policy set expenses (version 1)');
    expect(tooMuch.error?.message).not.toContain('lessThan');
    // The error's data names the decision and the set, never the policy text.
    expect(tooMuch.error?.data).toEqual({ decision: 'deny', policySet: 'expenses', version: 1, determiningPolicies: [] });
    expect((await approve(bob, 5)).allowed).toBe(false);
    expect(finance.approved.slice(before)).toEqual([99.5]);
    await expect.poll(() => policyRecords().length).toBeGreaterThanOrEqual(3);
    const [allowed, denied] = policyRecords();
    expect(allowed?.details).toMatchObject({ policyDecision: 'allow', determiningPolicies: ['finance-under-100'], policyMode: 'enforce', policyVersion: attached.version.hash });
    expect(denied).toMatchObject({ outcome: 'denied', reason: 'policy_denied', details: { policyDecision: 'deny', determiningPolicies: [] } });
  });

  it('decides an interceptor\'s rewrite again: a permitted 50 rewritten to 500 is denied, never sent', async () => {
    h.nc.subscribe('mandate.interceptor.acme.inflate', { callback: (_e, msg) => void msg.respond(JSON.stringify({ action: 'rewrite', arguments: { amount: 500 } })) });
    const gatewayKey = await h.workload('rewriting-agent');
    await h.setAuthorizer('acme', 'rewriting-agent', { discoveryUrl: idp.discoveryUrl, allowedAudiences: [resource.replace('finance-gw', 'rewriting')] });
    await h.bus.request(gatewayCreateEndpoint, {
      tenant: 'acme',
      name: 'rewriting',
      workload: { name: 'rewriting-agent', privateJwk: gatewayKey as never },
      authorizationServers: [idp.issuer],
      interceptors: [{ phase: 'request', subject: 'mandate.interceptor.acme.inflate' }],
    });
    await h.bus.request(targetAddEndpoint, { tenant: 'acme', gateway: 'rewriting', target: { name: 'finance', source: { kind: 'mcp', url: finance.url } } });
    await h.bus.request(policyAttachEndpoint, { tenant: 'acme', gateway: 'rewriting', policy: 'expenses', mode: 'enforce' });
    const before = finance.approved.length;
    const client = new Client({ name: 'policy-test', version: '1.0.0' });
    const userToken = await idp.userAccessToken({ sub: 'sarah', audience: resource.replace('finance-gw', 'rewriting'), scope: 'finance.write', claims: { groups: ['finance'] } });
    await client.connect(new StreamableHTTPClientTransport(new URL(resource.replace('finance-gw', 'rewriting')), { requestInit: { headers: { authorization: `Bearer ${userToken}` } } }));
    clients.push(client);
    const error = await client.callTool({ name: 'finance___approve_expense', arguments: { amount: 50 } }).then(() => undefined, (e: unknown) => e as McpError);
    expect(error?.message).toContain('for the arguments an interceptor gave');
    expect(finance.approved.length).toBe(before);
    await expect.poll(() => h.audit.some((r) => r.action === 'tool-call' && r.details?.['gateway'] === 'rewriting' && r.details?.['rewritten'] === 'denied' && typeof r.details?.['rewrittenDigest'] === 'string')).toBe(true);
    await h.bus.request(policyDetachEndpoint, { tenant: 'acme', gateway: 'rewriting' });
  });

  it('checks the arguments before policy: a string "50" for a number never reaches it', async () => {
    const client = new Client({ name: 'policy-test', version: '1.0.0' });
    await client.connect(new StreamableHTTPClientTransport(new URL(resource), { requestInit: { headers: { authorization: `Bearer ${await token('sarah', ['finance'])}` } } }));
    clients.push(client);
    const answer = await client.callTool({ name: 'finance___approve_expense', arguments: { amount: '50' } });
    expect(answer.isError).toBe(true);
    expect(JSON.stringify(answer.content)).toContain('Invalid arguments');
  });

  it('log-only records the decision and enforces none; switching modes is its own operation, and audited', async () => {
    // Attaching cannot change the mode of the set attached: that is its own operation (and permission).
    const reattached = await failure(h.bus.request(policyAttachEndpoint, { tenant: 'acme', gateway: 'finance-gw', policy: 'expenses', mode: 'log-only', actor: 'security@acme' }));
    expect(reattached.code).toBe('conflict');
    expect(reattached.message).toContain('policy-set-mode');
    expect(await h.bus.request(policyForGatewayEndpoint, { tenant: 'acme', gateway: 'finance-gw' })).toMatchObject({ attached: true, mode: 'enforce' });
    const switched = await h.bus.request(policySetModeEndpoint, { tenant: 'acme', gateway: 'finance-gw', mode: 'log-only', actor: 'security@acme' });
    expect(switched).toEqual({ gateway: 'finance-gw', policy: 'expenses', mode: 'log-only', previousMode: 'enforce', changed: true });
    await expect.poll(async () => (await approve(sarah, 150)).allowed, { timeout: 10_000 }).toBe(true);
    await expect.poll(() => policyRecords().some((r) => r.details?.['policyMode'] === 'log-only' && r.details?.['policyDecision'] === 'deny' && r.outcome === 'succeeded')).toBe(true);
    const modeRecords = () => h.audit.filter((r) => r.service === 'policy' && r.action === 'policy-mode');
    await expect.poll(() => modeRecords().length).toBe(1);
    expect(modeRecords()[0]).toMatchObject({ actor: { admin: 'security@acme' }, target: { resource: 'expenses' }, details: { gateway: 'finance-gw', mode: 'log-only', previousMode: 'enforce' } });
    // The same mode again changes nothing and writes no record; a gateway with no set is not_found.
    expect((await h.bus.request(policySetModeEndpoint, { tenant: 'acme', gateway: 'finance-gw', mode: 'log-only' })).changed).toBe(false);
    expect((await failure(h.bus.request(policySetModeEndpoint, { tenant: 'acme', gateway: 'no-such-gateway', mode: 'enforce' }))).code).toBe('not_found');
    expect(modeRecords()).toHaveLength(1);
  });

  it('a new version is enforced at once; rolling back to the one before is too', async () => {
    await h.bus.request(policySetModeEndpoint, { tenant: 'acme', gateway: 'finance-gw', mode: 'enforce' });
    const v2 = await h.bus.request(policyUpdateEndpoint, { tenant: 'acme', name: 'expenses', text: UNDER_1000, actor: 'security@acme' });
    expect(v2.active.version).toBe(2);
    await expect.poll(async () => (await approve(sarah, 500)).allowed, { timeout: 10_000 }).toBe(true);
    await h.bus.request(policyActivateEndpoint, { tenant: 'acme', name: 'expenses', version: 1, actor: 'security@acme' });
    await expect.poll(async () => (await approve(sarah, 500)).allowed, { timeout: 10_000 }).toBe(false);
    const versions = await h.bus.request(policyVersionsEndpoint, { tenant: 'acme', name: 'expenses' });
    expect(versions.items.map((v) => [v.version, v.active])).toEqual([[2, false], [1, true]]);
    expect(versions.items[0]!.hash).not.toBe(versions.items[1]!.hash);
    expect(h.audit.some((r) => r.service === 'policy' && r.action === 'policy-activate' && r.details?.['version'] === 1 && r.details?.['previous'] === 2)).toBe(true);
  });

  it('refuses bad input with the validator message and its position, and changes nothing', async () => {
    const bad = await failure(h.bus.request(policyCreateEndpoint, { tenant: 'acme', name: 'broken', text: 'permit (principal, action, resource) when {' }));
    expect(bad.code).toBe('invalid_request');
    expect(bad.message).toMatch(/line 1, column \d+/);
    const wrongType = 'permit (principal, action == Mandate::Action::"finance___approve_expense", resource) when { context.input.amount < 100 };';
    const validated = await h.bus.request(policyValidateEndpoint, { tenant: 'acme', gateway: 'finance-gw', text: wrongType });
    expect(validated.valid).toBe(false);
    expect(validated.issues[0]?.message).toMatch(/policy0: line 1, column \d+/);
    expect((await failure(h.bus.request(policyUpdateEndpoint, { tenant: 'acme', name: 'expenses', text: wrongType }))).code).toBe('invalid_request');
    expect((await h.bus.request(policyVersionsEndpoint, { tenant: 'acme', name: 'expenses' })).items).toHaveLength(2);
    const unknownTool = 'permit (principal, action == Mandate::Action::"finance___no_such_tool", resource);';
    await h.bus.request(policyCreateEndpoint, { tenant: 'acme', name: 'stale', text: unknownTool });
    expect((await failure(h.bus.request(policyAttachEndpoint, { tenant: 'acme', gateway: 'finance-gw', policy: 'stale', mode: 'enforce' }))).code).toBe('invalid_request');
    expect((await failure(h.bus.request(policyAttachEndpoint, { tenant: 'acme', gateway: 'no-such-gateway', policy: 'expenses', mode: 'enforce' }))).code).toBe('not_found');
    expect((await failure(h.bus.request(policyDeleteEndpoint, { tenant: 'acme', name: 'expenses' }))).code).toBe('conflict');
    expect((await h.bus.request(policyForGatewayEndpoint, { tenant: 'acme', gateway: 'finance-gw' })).attached).toBe(true);
    // 1,000 policies is a set the service takes (and validates against the gateway's tools); 1,001 is not, and changes nothing.
    const policies = (count: number) => Array.from({ length: count }, (_, i) => `@id("p${i}") permit (principal, action == Mandate::Action::"finance___approve_expense", resource) when { context.input.amount.lessThan(decimal("${i}.5")) };`).join('\n');
    expect((await h.bus.request(policyValidateEndpoint, { tenant: 'acme', gateway: 'finance-gw', text: policies(1_000) })).valid).toBe(true);
    expect((await h.bus.request(policyCreateEndpoint, { tenant: 'acme', name: 'thousand', text: policies(1_000) })).active.version).toBe(1);
    const tooMany = await failure(h.bus.request(policyUpdateEndpoint, { tenant: 'acme', name: 'thousand', text: policies(1_001) }));
    expect(tooMany.code).toBe('invalid_request');
    expect(tooMany.message).toContain('at most 1000 policies');
    expect((await h.bus.request(policyVersionsEndpoint, { tenant: 'acme', name: 'thousand' })).items).toHaveLength(1);
  });

  it('refuses calls while no policy service answers for a gateway that had a set, instead of dropping its policy', async () => {
    expect((await approve(sarah, 50)).allowed).toBe(true);
    await h.service('policy').stop();
    // A change makes the gateway read its policy again, now with nothing to answer.
    await h.bus.request(targetAddEndpoint, { tenant: 'acme', gateway: 'finance-gw', target: { name: 'spare', source: { kind: 'mcp', url: finance.url } } });
    await expect.poll(async () => (await approve(sarah, 50)).error?.message ?? 'allowed', { timeout: 10_000 }).toContain('cannot be loaded');
    h.replicas.policy!.shift();
    await h.add('policy');
    await h.bus.request(targetRemoveEndpoint, { tenant: 'acme', gateway: 'finance-gw', target: 'spare' });
    await expect.poll(async () => (await approve(sarah, 50)).allowed, { timeout: 10_000 }).toBe(true);
  });

  it('a log-only policy in an enforced set is decided beside the others: what it would do is on the call\'s record, and not done', async () => {
    const shadow = `${UNDER_100}\n@id("shadow-over-50")\n@mode("log-only")\nforbid (principal, action == Mandate::Action::"finance___approve_expense", resource) when { context.input.amount.greaterThan(decimal("50.0")) };`;
    const updated = await h.bus.request(policyUpdateEndpoint, { tenant: 'acme', name: 'expenses', text: shadow, actor: 'security@acme' });
    const shadowed = () => policyRecords().find((r) => r.details?.['policyVersion'] === updated.active.hash && r.details?.['logOnlyDecision'] === 'deny');
    await expect.poll(async () => (await approve(sarah, 60)).allowed && shadowed() !== undefined, { timeout: 10_000 }).toBe(true);
    expect(shadowed()).toMatchObject({ outcome: 'succeeded', details: { policyMode: 'enforce', policyDecision: 'allow', determiningPolicies: ['finance-under-100'], logOnlyDecision: 'deny', logOnlyDetermining: ['shadow-over-50'] } });
    await h.bus.request(policyActivateEndpoint, { tenant: 'acme', name: 'expenses', version: 1, actor: 'security@acme' });
    await expect.poll(() => h.bus.request(policyForGatewayEndpoint, { tenant: 'acme', gateway: 'finance-gw' }).then((a) => a.attached && a.version.version)).toBe(1);
  });

  it('fails closed when the attached set no longer loads (a tool it names was removed), and detaching lifts policy', async () => {
    const added = await h.bus.request(targetAddEndpoint, { tenant: 'acme', gateway: 'finance-gw', target: { name: 'petty', source: { kind: 'mcp', url: finance.url } } });
    expect(added.policyMisfit).toBeUndefined();
    const call = async () => {
      const client = new Client({ name: 'policy-test', version: '1.0.0' });
      await client.connect(new StreamableHTTPClientTransport(new URL(resource), { requestInit: { headers: { authorization: `Bearer ${await token('sarah', ['finance'])}` } } }));
      clients.push(client);
      return client.callTool({ name: 'petty___approve_expense', arguments: { amount: 1 } }).then(() => 'allowed', (error: McpError) => error.message);
    };
    // No policy permits petty___approve_expense: denied by default, so hidden, and called by name it is a tool that does not exist.
    expect(await call()).toBe('MCP error -32602: Unknown tool: petty___approve_expense');
    // The removal stands, and its answer and audit record say which policies it broke.
    const removed = await h.bus.request(targetRemoveEndpoint, { tenant: 'acme', gateway: 'finance-gw', target: 'finance', actor: 'ops@acme' });
    expect(removed).toMatchObject({ removed: true, policyMisfit: { set: 'expenses', version: 1 } });
    expect(removed.policyMisfit!.issues.map((issue) => issue.path)).toContain('policies.finance-under-100');
    expect(removed.policyMisfit!.issues[0]!.message).toMatch(/finance-under-100: line \d+, column \d+/);
    await expect.poll(() => h.audit.find((r) => r.service === 'gateway' && r.action === 'target-remove' && r.details?.['target'] === 'finance')?.details).toMatchObject({ policyMisfit: 'expenses', policyMisfitVersion: 1 });
    expect(h.audit.find((r) => r.action === 'target-remove' && r.details?.['target'] === 'finance')!.details!['policyIssues']).toContain('policies.finance-under-100');
    await expect.poll(call, { timeout: 10_000 }).toContain('cannot be loaded');
    await h.bus.request(policyDetachEndpoint, { tenant: 'acme', gateway: 'finance-gw', actor: 'security@acme' });
    await expect.poll(call, { timeout: 10_000 }).toBe('allowed');
  });
});
