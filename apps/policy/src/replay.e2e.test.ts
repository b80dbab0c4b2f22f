import { randomUUID } from 'node:crypto';
import type { JWK } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { jetstreamManager } from '@nats-io/jetstream';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import {
  DECISIONS_STREAM_NAME,
  gatewayCreateEndpoint,
  policyAttachEndpoint,
  policyCreateEndpoint,
  policyExplainEndpoint,
  policyReplayEndpoint,
  targetAddEndpoint,
  targetRemoveEndpoint,
  type AuditRecord,
} from '@mandate/contracts';
import { freePort, natsServerMissing, failure } from '@mandate/testing';
import { startTestIdp, type TestIdp } from '@mandate/testing/idp';
import { startExpenseToolServer } from '@mandate/testing/mcp-tool-servers';
import { startSystem, type TestSystem } from '@mandate/testing/system';

const missing = natsServerMissing('policy replay and explain');

/** Waits for a condition outside a test (`expect.poll` works only inside one). */
async function until(condition: () => boolean | Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  for (const deadline = Date.now() + timeoutMs; !(await condition()); ) {
    if (Date.now() > deadline) throw new Error('timed out waiting for the recorded calls');
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

/** What the recorded calls were decided by: the seed's expenses under 100 for the finance group. */
const UNDER_100 = `
@id("finance-under-100")
permit (principal, action == Mandate::Action::"finance___approve_expense", resource)
when { principal.groups.contains("finance") && context.input.amount.lessThan(decimal("100.0")) };
`;

/** The candidate: finance up to 200, sales under 50, and nothing under 10 for anyone. */
const CANDIDATE = `
@id("finance-under-200")
permit (principal, action == Mandate::Action::"finance___approve_expense", resource)
when { principal.groups.contains("finance") && context.input.amount.lessThan(decimal("200.0")) };

@id("sales-under-50")
permit (principal, action == Mandate::Action::"finance___approve_expense", resource)
when { principal.groups.contains("sales") && context.input.amount.lessThan(decimal("50.0")) };

@id("nothing-tiny")
forbid (principal, action == Mandate::Action::"finance___approve_expense", resource)
when { context.input.amount.lessThan(decimal("10.0")) };
`;

describe.skipIf(missing)('the decision log: policy replay and explain over calls made through the gateway', () => {
  let h: TestSystem;
  let idp: TestIdp;
  let finance: Awaited<ReturnType<typeof startExpenseToolServer>>;
  let publicUrl: string;
  let resource: string;
  let quietPort: number;
  const clients: Client[] = [];
  /** The audit record id of each recorded call, by who and how much. */
  const recorded = new Map<string, string>();

  const toolCallRecords = () => h.audit.filter((r): r is AuditRecord => r.service === 'gateway' && r.action === 'tool-call');
  const call = async (who: { sub: string; groups: string[] }, tool: string, amount: number, via = resource) => {
    const before = toolCallRecords().length;
    const token = await idp.userAccessToken({ sub: who.sub, audience: resource, scope: 'finance.write', claims: { groups: who.groups, department: 'emea' } });
    const client = new Client({ name: 'replay-test', version: '1.0.0' });
    await client.connect(new StreamableHTTPClientTransport(new URL(via), { requestInit: { headers: { authorization: `Bearer ${token}` } } }));
    clients.push(client);
    await client.callTool({ name: tool, arguments: { amount } }).catch(() => undefined);
    await until(() => toolCallRecords().length === before + 1);
    return toolCallRecords().at(-1)!;
  };
  const sarah = { sub: 'sarah', groups: ['finance'] };
  const bob = { sub: 'bob', groups: ['sales'] };

  beforeAll(async () => {
    const port = await freePort();
    quietPort = await freePort();
    publicUrl = `http://127.0.0.1:${port}`;
    resource = `${publicUrl}/mcp/acme/finance-gw`;
    h = await startSystem({ services: ['directory', 'authorizer', 'vault', 'gateway', 'policy'], env: { GATEWAY_HTTP_PORT: String(port), GATEWAY_PUBLIC_URL: publicUrl } });
    [idp, finance] = await Promise.all([startTestIdp(), startExpenseToolServer()]);
    const key: JWK = await h.workload('finance-gateway');
    await h.setAuthorizer('acme', 'finance-gateway', { discoveryUrl: idp.discoveryUrl, allowedAudiences: [resource] });
    await h.bus.request(gatewayCreateEndpoint, { tenant: 'acme', name: 'finance-gw', workload: { name: 'finance-gateway', privateJwk: key as never }, authorizationServers: [idp.issuer] });
    await h.bus.request(targetAddEndpoint, { tenant: 'acme', gateway: 'finance-gw', target: { name: 'finance', source: { kind: 'mcp', url: finance.url } } });
    await h.bus.request(targetAddEndpoint, { tenant: 'acme', gateway: 'finance-gw', target: { name: 'petty', source: { kind: 'mcp', url: finance.url } } });
    await h.bus.request(policyCreateEndpoint, { tenant: 'acme', name: 'expenses', text: UNDER_100, actor: 'security@acme' });
    await h.bus.request(policyAttachEndpoint, { tenant: 'acme', gateway: 'finance-gw', policy: 'expenses', mode: 'enforce', actor: 'security@acme' });
    // The recorded set: what UNDER_100 allowed (5, 50 for sarah) and denied (the rest).
    for (const [who, amount] of [[sarah, 5], [sarah, 50], [sarah, 150], [sarah, 500], [bob, 20], [bob, 200]] as const) {
      const record = await call(who, 'finance___approve_expense', amount);
      expect(record.details?.['policyDecision'], `${who.sub} ${amount}`).toBe(amount < 100 && who === sarah ? 'allow' : 'deny');
      recorded.set(`${who.sub} ${amount}`, record.id);
    }
    // A call of a tool the gateway will no longer have when the candidate is replayed.
    recorded.set('petty', (await call(sarah, 'petty___approve_expense', 1)).id);
    await h.bus.request(targetRemoveEndpoint, { tenant: 'acme', gateway: 'finance-gw', target: 'petty' });
    // Entries are written after each call's answer: wait until all seven are in.
    const jsm = await jetstreamManager(h.nc);
    await until(async () => (await jsm.streams.info(DECISIONS_STREAM_NAME).catch(() => undefined))?.state.messages === 7);
  }, 90_000);

  afterAll(async () => {
    await Promise.all(clients.map((client) => client.close().catch(() => undefined)));
    await h?.stop();
    await Promise.all([idp?.stop(), finance?.stop()]);
  });

  it('replays a candidate: exactly the decisions that change, both ways, grouped by tool and principal; audited', async () => {
    const answer = await h.bus.request(policyReplayEndpoint, { tenant: 'acme', gateway: 'finance-gw', since: '1h', candidate: CANDIDATE, actor: 'security@acme' });
    expect(answer).toMatchObject({ gateway: 'finance-gw', evaluated: 6, unchanged: 3, changed: { allowedToDenied: 1, deniedToAllowed: 2 }, skipped: { tool_removed: 1 }, truncated: false });
    expect(answer.groups).toEqual([
      { tool: 'finance___approve_expense', principal: { iss: idp.issuer, sub: 'sarah' }, allowedToDenied: 1, deniedToAllowed: 1, samples: [recorded.get('sarah 5'), recorded.get('sarah 150')] },
      { tool: 'finance___approve_expense', principal: { iss: idp.issuer, sub: 'bob' }, allowedToDenied: 0, deniedToAllowed: 1, samples: [recorded.get('bob 20')] },
    ]);
    await expect.poll(() => h.audit.some((r) => r.service === 'policy' && r.action === 'policy-replay' && r.actor.admin === 'security@acme' && r.details?.['deniedToAllowed'] === 2)).toBe(true);
  });

  it('replays the set in force as nothing changing, and a window that starts after the calls as nothing recorded', async () => {
    expect(await h.bus.request(policyReplayEndpoint, { tenant: 'acme', gateway: 'finance-gw', since: '7d', candidate: UNDER_100 })).toMatchObject({ evaluated: 6, unchanged: 6, changed: { allowedToDenied: 0, deniedToAllowed: 0 }, groups: [] });
    const later = new Date(Date.now() - 1).toISOString();
    expect(await h.bus.request(policyReplayEndpoint, { tenant: 'acme', gateway: 'finance-gw', since: later, candidate: CANDIDATE })).toMatchObject({ evaluated: 0, groups: [], skipped: {} });
  });

  it("explains a call by its audit record id: its arguments, the decision and the determining policy's text", async () => {
    const allowed = await h.bus.request(policyExplainEndpoint, { tenant: 'acme', id: recorded.get('sarah 50')!, actor: 'security@acme' });
    expect(allowed).toMatchObject({
      id: recorded.get('sarah 50'),
      gateway: 'finance-gw',
      tool: 'finance___approve_expense',
      principal: { iss: idp.issuer, sub: 'sarah' },
      arguments: { amount: 50 },
      claims: { groups: ['finance'], department: 'emea' },
      scopes: ['finance.write'],
      decision: 'allow',
      mode: 'enforce',
      policySet: { name: 'expenses', version: 1 },
    });
    expect(allowed.determining).toEqual([{ id: 'finance-under-100', text: expect.stringContaining('lessThan(decimal("100.0"))') as string }]);
    // Of the token, only what Cedar reads is kept: its string claims (tags) and groups, nothing registered.
    expect(Object.keys(allowed.claims).sort()).toEqual(['client_id', 'department', 'groups']);
    const denied = await h.bus.request(policyExplainEndpoint, { tenant: 'acme', id: recorded.get('bob 200')! });
    expect(denied).toMatchObject({ arguments: { amount: 200 }, decision: 'deny', determining: [] });
    await expect.poll(() => h.audit.some((r) => r.service === 'policy' && r.action === 'policy-explain' && r.details?.['record'] === recorded.get('sarah 50'))).toBe(true);
  });

  it('refuses bad input with a typed error and changes nothing', async () => {
    const replay = (overrides: Record<string, unknown>) => failure(h.bus.request(policyReplayEndpoint, { tenant: 'acme', gateway: 'finance-gw', since: '7d', candidate: CANDIDATE, ...overrides } as never));
    const invalid = await replay({ candidate: 'permit (principal, action, resource) when {' });
    expect(invalid.code).toBe('invalid_request');
    expect(invalid.message).toMatch(/line 1, column \d+/);
    expect((await replay({ candidate: 'permit (principal, action == Mandate::Action::"finance___no_such_tool", resource);' })).code).toBe('invalid_request');
    expect((await replay({ gateway: 'no-such-gateway' })).code).toBe('not_found');
    expect((await replay({ since: new Date(Date.now() + 3_600_000).toISOString() })).message).toContain('in the future');
    expect((await replay({ since: 'last tuesday' })).code).toBe('invalid_request');
    expect((await failure(h.bus.request(policyExplainEndpoint, { tenant: 'acme', id: randomUUID() }))).code).toBe('not_found');
    expect((await failure(h.bus.request(policyExplainEndpoint, { tenant: 'other', id: recorded.get('sarah 50')! }))).code).toBe('not_found');
    expect((await failure(h.bus.request(policyExplainEndpoint, { tenant: 'acme', id: 'not-a-uuid' }))).code).toBe('invalid_request');
  });

  it('with a retention of 0, a gateway writes nothing: its calls are audited and cannot be explained', async () => {
    await h.add('gateway', { env: { GATEWAY_HTTP_PORT: String(quietPort), GATEWAY_PUBLIC_URL: publicUrl, GATEWAY_DECISION_LOG_RETENTION_DAYS: '0' } });
    const jsm = await jetstreamManager(h.nc);
    const before = (await jsm.streams.info(DECISIONS_STREAM_NAME)).state.messages;
    const record = await call(sarah, 'finance___approve_expense', 60, `http://127.0.0.1:${quietPort}/mcp/acme/finance-gw`);
    expect(record.details).toMatchObject({ policySet: 'expenses', policyDecision: 'allow' });
    expect((await failure(h.bus.request(policyExplainEndpoint, { tenant: 'acme', id: record.id }))).code).toBe('not_found');
    expect((await jsm.streams.info(DECISIONS_STREAM_NAME)).state.messages).toBe(before);
  });
});
