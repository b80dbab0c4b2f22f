import type { JWK } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { McpError } from '@modelcontextprotocol/sdk/types.js';
import { gatewayCreateEndpoint, policyAttachEndpoint, policyCreateEndpoint, policySetModeEndpoint, targetAddEndpoint, toolsForEndpoint } from '@mandate/contracts';
import { freePort, natsServerMissing } from '@mandate/testing';
import { startTestIdp, type TestIdp } from '@mandate/testing/idp';
import { startSampleToolServer, type SampleToolServer } from '@mandate/testing/mcp-tool-servers';
import { startSystem, type TestSystem } from '@mandate/testing/system';

const missing = natsServerMissing('gateway tools/list filtered by policy');

/**
 * CRM notes for sales; spend for finance (but never for the secret account: a forbid on the
 * arguments, which hides nothing); documents for everyone but bob (a forbid on the principal
 * alone, which hides the tool from him); whoami permitted to no user, only to the reporting
 * agent calling on its own (a client-credentials token: its `sub` and `context.agent` name it).
 */
const POLICIES = `
@id("notes-for-sales")
permit (principal, action == Mandate::Action::"sales___crm_notes", resource) when { principal.groups.contains("sales") };

@id("spend-for-finance")
permit (principal, action == Mandate::Action::"sales___finance_spend", resource) when { principal.groups.contains("finance") };

@id("no-secret-spend")
forbid (principal, action == Mandate::Action::"sales___finance_spend", resource) when { context.input.accountId == "acc-secret" };

@id("documents")
permit (principal, action == Mandate::Action::"sales___documents_list", resource);

@id("no-documents-for-bob")
forbid (principal, action == Mandate::Action::"sales___documents_list", resource) when { principal.sub == "bob" };

@id("whoami-for-the-reporting-agent")
permit (principal, action == Mandate::Action::"sales___whoami", resource) when { principal.sub == "m2m-client" && context has agent && context.agent == Mandate::Workload::"m2m-client" };
`;

describe.skipIf(missing)('tools/list through the gateway shows each principal only what policy could permit', () => {
  let h: TestSystem;
  let idp: TestIdp;
  let upstream: SampleToolServer;
  let resource: string;
  const clients: Client[] = [];

  const tokenOf = (sub: string, groups: string[]) => idp.userAccessToken({ sub, audience: resource, scope: 'tools', claims: { groups } });
  /** `mandate gateway tools`: what the gateway says the principal sees, and why not the rest. */
  const explained = async (sub: string, groups: string[]) => {
    const seen = await h.bus.request(toolsForEndpoint, { tenant: 'acme', gateway: 'sales-gw', token: await tokenOf(sub, groups) });
    return { visible: seen.visible.map((tool) => tool.name).sort(), byPolicy: seen.hidden.filter((tool) => tool.reason === 'denied_by_policy').map((tool) => tool.name).sort() };
  };
  const connect = async (sub: string, groups: string[]) => {
    const token = await tokenOf(sub, groups);
    const client = new Client({ name: 'policy-listing-test', version: '1.0.0' });
    await client.connect(new StreamableHTTPClientTransport(new URL(resource), { requestInit: { headers: { authorization: `Bearer ${token}` } } }));
    clients.push(client);
    return client;
  };
  const listed = async (client: Client) => (await client.listTools()).tools.map((tool) => tool.name).sort();

  beforeAll(async () => {
    const port = await freePort();
    const publicUrl = `http://127.0.0.1:${port}`;
    resource = `${publicUrl}/mcp/acme/sales-gw`;
    h = await startSystem({ services: ['directory', 'authorizer', 'vault', 'gateway', 'policy'], env: { GATEWAY_HTTP_PORT: String(port), GATEWAY_PUBLIC_URL: publicUrl } });
    [idp, upstream] = await Promise.all([startTestIdp(), startSampleToolServer()]);
    const key: JWK = await h.workload('sales-gateway');
    await h.setAuthorizer('acme', 'sales-gateway', { discoveryUrl: idp.discoveryUrl, allowedAudiences: [resource] });
    await h.bus.request(gatewayCreateEndpoint, { tenant: 'acme', name: 'sales-gw', workload: { name: 'sales-gateway', privateJwk: key as never }, authorizationServers: [idp.issuer] });
    await h.bus.request(targetAddEndpoint, { tenant: 'acme', gateway: 'sales-gw', target: { name: 'sales', source: { kind: 'mcp', url: upstream.url } } });
    await h.bus.request(policyCreateEndpoint, { tenant: 'acme', name: 'sales-tools', text: POLICIES, actor: 'security@acme' });
  }, 60_000);

  afterAll(async () => {
    await Promise.all(clients.map((client) => client.close().catch(() => undefined)));
    await h?.stop();
    await Promise.all([idp?.stop(), upstream?.stop()]);
  });

  it('without a policy set, both users see every tool', async () => {
    const all = ['sales___crm_notes', 'sales___documents_list', 'sales___finance_spend', 'sales___whoami'];
    expect(await listed(await connect('sarah', ['finance']))).toEqual(all);
    expect(await listed(await connect('bob', ['sales']))).toEqual(all);
  });

  it('enforced: sarah (finance) and bob (sales) see different tools, as the policies say', async () => {
    await h.bus.request(policyAttachEndpoint, { tenant: 'acme', gateway: 'sales-gw', policy: 'sales-tools', mode: 'enforce', actor: 'security@acme' });
    const sarah = await connect('sarah', ['finance']);
    const bob = await connect('bob', ['sales']);
    // The gateway reloads on policy-changed; a session opened before may briefly list the old tools.
    await expect.poll(() => listed(sarah)).toEqual(['sales___documents_list', 'sales___finance_spend']);
    expect(await listed(bob)).toEqual(['sales___crm_notes']);
    // `mandate gateway tools` agrees with tools/list and says why.
    expect(await explained('bob', ['sales'])).toEqual({ visible: ['sales___crm_notes'], byPolicy: ['sales___documents_list', 'sales___finance_spend', 'sales___whoami'] });
    expect(await explained('sarah', ['finance'])).toEqual({ visible: ['sales___documents_list', 'sales___finance_spend'], byPolicy: ['sales___crm_notes', 'sales___whoami'] });
    // A forbid on the arguments hides nothing but still decides the call.
    const secret = await sarah.callTool({ name: 'sales___finance_spend', arguments: { accountId: 'acc-secret' } }).then(() => undefined, (e: unknown) => e as McpError);
    expect(secret?.code).toBe(-32003);
    expect((await sarah.callTool({ name: 'sales___finance_spend', arguments: { accountId: 'acc-1' } })).isError).toBeFalsy();
    // A tool policy hides, called by name, is answered exactly as one that does not exist (no oracle: not even that policy denies it), and audited as hidden.
    const refusal = async (client: Client, name: string, args: Record<string, unknown>) => {
      const error = await client.callTool({ name, arguments: args }).then(() => undefined, (e: unknown) => e as McpError);
      return { code: error?.code, message: error?.message.replace(name, '<name>'), data: error?.data };
    };
    const hidden = await refusal(bob, 'sales___documents_list', { accountId: 'acc-1' });
    expect(hidden).toEqual(await refusal(bob, 'sales___no_such_tool', { accountId: 'acc-1' }));
    expect(hidden.code).toBe(-32602);
    // Invalid arguments of a hidden tool say nothing of its schema either.
    expect(await refusal(bob, 'sales___documents_list', { nonsense: true })).toEqual(await refusal(bob, 'sales___no_such_tool', { nonsense: true }));
    expect(await refusal(bob, 'sales___documents_list', { nonsense: true })).toEqual(hidden);
    await expect
      .poll(() => h.audit.filter((r) => r.action === 'tool-call' && r.details?.['hiddenByPolicy'] === true && r.details['tool'] === 'documents_list' && r.actor.user?.sub === 'bob').map((r) => r.reason))
      .toEqual(['policy_denied', 'invalid_arguments', 'invalid_arguments']);
    // Decided as any call is (so a replay sees it), with the decision in the record.
    expect(h.audit.find((r) => r.details?.['hiddenByPolicy'] === true && r.reason === 'policy_denied')?.details).toMatchObject({ policySet: 'sales-tools', policyDecision: 'deny', policyMode: 'enforce' });
  });

  it('a client-credentials token (no user behind it) is its client: it sees and calls only what policy grants that client', async () => {
    const token = await idp.clientCredentialsToken({ audience: resource, scope: 'tools', clientId: 'm2m-client' });
    const agent = new Client({ name: 'policy-listing-test', version: '1.0.0' });
    await agent.connect(new StreamableHTTPClientTransport(new URL(resource), { requestInit: { headers: { authorization: `Bearer ${token}` } } }));
    clients.push(agent);
    expect(await listed(agent)).toEqual(['sales___documents_list', 'sales___whoami']);
    expect((await agent.callTool({ name: 'sales___whoami', arguments: {} })).isError).toBeFalsy();
    // A tool policy does not grant this client is one it does not see: called, it does not exist.
    const notes = await agent.callTool({ name: 'sales___crm_notes', arguments: { accountId: 'acc-1' } }).then(() => undefined, (e: unknown) => e as McpError);
    expect(notes?.code).toBe(-32602);
    const seen = await h.bus.request(toolsForEndpoint, { tenant: 'acme', gateway: 'sales-gw', token });
    expect(seen.principal.sub).toBe('m2m-client');
    // The decision's audit record names the client as the principal.
    await expect.poll(() => h.audit.some((r) => r.action === 'tool-call' && r.outcome === 'succeeded' && r.details?.['tool'] === 'whoami' && r.actor.user?.sub === 'm2m-client' && r.actor.user.iss === idp.issuer)).toBe(true);
  });

  it('log-only hides nothing (nothing is enforced)', async () => {
    await h.bus.request(policySetModeEndpoint, { tenant: 'acme', gateway: 'sales-gw', mode: 'log-only', actor: 'security@acme' });
    const bob = await connect('bob', ['sales']);
    await expect.poll(() => listed(bob)).toEqual(['sales___crm_notes', 'sales___documents_list', 'sales___finance_spend', 'sales___whoami']);
    expect((await explained('bob', ['sales'])).byPolicy).toEqual([]);
  });
});
