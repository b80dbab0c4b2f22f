import type { JWK } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { gatewayCreateEndpoint, type MandateError, policyAttachEndpoint, policyCreateEndpoint, targetAddEndpoint, targetListEndpoint, targetRemoveEndpoint, targetSyncEndpoint } from '@mandate/contracts';
import { verifyToolCallReceipt } from '@mandate/sdk';
import { freePort, natsServerMissing, failure } from '@mandate/testing';
import { startTestIdp, type TestIdp } from '@mandate/testing/idp';
import { startChangingToolServer, startExpenseToolServer, type ChangingToolServer, type ExpenseToolServer } from '@mandate/testing/mcp-tool-servers';
import { startSystem, type TestSystem } from '@mandate/testing/system';

const missing = natsServerMissing('tool names as the target gives them, through the gateway');

const UNDER_100 = `
@id("under-100")
permit (principal, action == Mandate::Action::"approve_expense", resource)
when { context.input.amount.lessThan(decimal("100.0")) };
`;

describe.skipIf(missing)("a target's tools named as it gives them (toolNames: as-given), beside prefixed ones", () => {
  let h: TestSystem;
  let idp: TestIdp;
  let finance: ExpenseToolServer;
  let changing: ChangingToolServer;
  let resource: string;
  let publicUrl: string;
  const clients: Client[] = [];

  const connect = async () => {
    const token = await idp.userAccessToken({ sub: 'sarah', audience: resource, scope: 'finance.write' });
    const client = new Client({ name: 'tool-names-test', version: '1.0.0' });
    await client.connect(new StreamableHTTPClientTransport(new URL(resource), { requestInit: { headers: { authorization: `Bearer ${token}` } } }));
    clients.push(client);
    return client;
  };
  const targets = async () => (await h.bus.request(targetListEndpoint, { tenant: 'acme', gateway: 'named' })).items;

  beforeAll(async () => {
    const port = await freePort();
    publicUrl = `http://127.0.0.1:${port}`;
    resource = `${publicUrl}/mcp/acme/named`;
    h = await startSystem({ services: ['directory', 'authorizer', 'vault', 'gateway', 'policy'], env: { GATEWAY_HTTP_PORT: String(port), GATEWAY_PUBLIC_URL: publicUrl } });
    [idp, finance, changing] = await Promise.all([startTestIdp(), startExpenseToolServer(), startChangingToolServer()]);
    const key: JWK = await h.workload('named-gateway');
    await h.setAuthorizer('acme', 'named-gateway', { discoveryUrl: idp.discoveryUrl, allowedAudiences: [resource] });
    await h.bus.request(gatewayCreateEndpoint, { tenant: 'acme', name: 'named', workload: { name: 'named-gateway', privateJwk: key as never }, authorizationServers: [idp.issuer] });
    await h.bus.request(targetAddEndpoint, { tenant: 'acme', gateway: 'named', target: { name: 'finance', source: { kind: 'mcp', url: finance.url }, toolNames: 'as-given' } });
    await h.bus.request(targetAddEndpoint, { tenant: 'acme', gateway: 'named', target: { name: 'changing', source: { kind: 'mcp', url: changing.url } } });
  }, 120_000);

  afterAll(async () => {
    await Promise.all(clients.map((client) => client.close().catch(() => undefined)));
    await h?.stop();
    await Promise.all([idp?.stop(), finance?.stop(), changing?.stop()]);
  });

  it('lists and calls the tool by its own name, and the receipt names it so and verifies against what the target received', async () => {
    const client = await connect();
    expect((await client.listTools()).tools.map((t) => t.name).sort()).toEqual(['approve_expense', 'changing___first']);
    const result = await client.callTool({ name: 'approve_expense', arguments: { amount: 40 } });
    expect(result.isError).toBeFalsy();
    expect(finance.approved.at(-1)).toBe(40);
    const metadata = (await (await fetch(`${publicUrl}/.well-known/oauth-protected-resource/mcp/acme/named`)).json()) as { jwks_uri: string };
    const verified = await verifyToolCallReceipt(finance.receipts.at(-1)!, {
      jwks: new URL(metadata.jwks_uri),
      issuer: resource,
      audience: finance.url,
      call: { name: 'approve_expense', arguments: { amount: 40 }, user: { iss: idp.issuer, sub: 'sarah' } },
    });
    expect(verified).toMatchObject({ tool: 'approve_expense', gateway: 'named', decision: 'allow' });
    await expect.poll(() => h.audit.some((r) => r.action === 'tool-call' && r.details?.['target'] === 'finance' && r.details?.['tool'] === 'approve_expense')).toBe(true);
    // A prefixed form of an as-given tool is no name of it.
    await expect(client.callTool({ name: 'finance___approve_expense', arguments: { amount: 40 } })).rejects.toThrow(/finance___approve_expense/);
    expect((await targets()).find((t) => t.name === 'finance')?.toolNames).toBe('as-given');
  });

  it("refuses a second as-given target with a tool of the same name, naming the tool and the target that has it, and changes nothing", async () => {
    const before = await targets();
    const error = await failure(h.bus.request(targetAddEndpoint, { tenant: 'acme', gateway: 'named', target: { name: 'finance-copy', source: { kind: 'mcp', url: finance.url }, toolNames: 'as-given' } }));
    expect(error.code).toBe('conflict');
    expect(error.message).toContain('approve_expense (target finance already has a tool of this name at the gateway)');
    expect(error.issues).toEqual([{ path: 'target.tools', message: expect.stringContaining('approve_expense') }]);
    expect(await targets()).toEqual(before);
    // The same tools prefixed do not collide.
    await h.bus.request(targetAddEndpoint, { tenant: 'acme', gateway: 'named', target: { name: 'finance-copy', source: { kind: 'mcp', url: finance.url } } });
    expect((await (await connect()).listTools()).tools.map((t) => t.name).sort()).toEqual(['approve_expense', 'changing___first', 'finance-copy___approve_expense']);
  });

  it('refuses a sync that would give an as-given target a taken name or one with the separator; the target keeps its tools', async () => {
    const other = await startChangingToolServer();
    try {
      await h.bus.request(targetAddEndpoint, { tenant: 'acme', gateway: 'named', target: { name: 'plain', source: { kind: 'mcp', url: other.url }, toolNames: 'as-given' } });
      other.addTool('approve_expense');
      const clash = await failure(h.bus.request(targetSyncEndpoint, { tenant: 'acme', gateway: 'named', target: 'plain' }));
      expect(clash.code).toBe('conflict');
      expect(clash.message).toContain('approve_expense (target finance already has a tool of this name at the gateway)');
      // The sync the target's own tools/list_changed started was refused the same way, and audited so.
      await expect.poll(() => h.audit.some((r) => r.action === 'target-sync' && r.outcome === 'failed' && r.reason === 'conflict' && r.details?.['target'] === 'plain' && r.actor.admin === 'tools/list_changed')).toBe(true);
      other.addTool('looks___prefixed');
      const separator = await failure(h.bus.request(targetSyncEndpoint, { tenant: 'acme', gateway: 'named', target: 'plain' }));
      expect(separator.message).toContain('looks___prefixed (contains ___, which only a prefixed name may)');
      expect((await targets()).find((t) => t.name === 'plain')?.tools.map((t) => t.name)).toEqual(['first']);
      expect((await (await connect()).listTools()).tools.map((t) => t.name)).toContain('first');
    } finally {
      await other.stop();
    }
  });

  it('of two as-given targets added at the same moment with a tool name in common, one is added and the other refused; once the first goes, the second can be added', async () => {
    const [left, right] = [await startChangingToolServer(['shared_tool']), await startChangingToolServer(['shared_tool'])];
    try {
      const add = (name: string, url: string) => h.bus.request(targetAddEndpoint, { tenant: 'acme', gateway: 'named', target: { name, source: { kind: 'mcp', url }, toolNames: 'as-given' } });
      const outcomes = await Promise.allSettled([add('left', left.url), add('right', right.url)]);
      expect(outcomes.map((o) => o.status).sort()).toEqual(['fulfilled', 'rejected']);
      const winner = outcomes[0]!.status === 'fulfilled' ? 'left' : 'right';
      const loser = winner === 'left' ? 'right' : 'left';
      const refused = (outcomes.find((o) => o.status === 'rejected') as PromiseRejectedResult).reason as MandateError;
      expect(refused.code).toBe('conflict');
      expect(refused.message).toContain(`shared_tool (target ${winner} already has a tool of this name at the gateway)`);
      expect((await targets()).map((t) => t.name)).not.toContain(loser);
      expect((await (await connect()).listTools()).tools.filter((t) => t.name === 'shared_tool')).toHaveLength(1);
      await h.bus.request(targetRemoveEndpoint, { tenant: 'acme', gateway: 'named', target: winner });
      await add(loser, (loser === 'left' ? left : right).url);
      expect((await targets()).find((t) => t.name === loser)?.tools.map((t) => t.name)).toEqual(['shared_tool']);
      await h.bus.request(targetRemoveEndpoint, { tenant: 'acme', gateway: 'named', target: loser });
    } finally {
      await Promise.all([left.stop(), right.stop()]);
    }
  });

  it('gives Cedar the as-given name as the action: a policy on Mandate::Action::"approve_expense" validates, attaches and decides', async () => {
    await h.bus.request(policyCreateEndpoint, { tenant: 'acme', name: 'named-expenses', text: UNDER_100 });
    await h.bus.request(policyAttachEndpoint, { tenant: 'acme', gateway: 'named', policy: 'named-expenses', mode: 'enforce' });
    const client = await connect();
    const denied = () => client.callTool({ name: 'approve_expense', arguments: { amount: 150 } }).then(() => undefined, (error: unknown) => (error as { code?: number }).code);
    await expect.poll(denied, { timeout: 10_000 }).toBe(-32003);
    expect((await client.callTool({ name: 'approve_expense', arguments: { amount: 60 } })).isError).toBeFalsy();
    expect(finance.approved).not.toContain(150);
  });
});
