import { decodeJwt, type JWK } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { ErrorCode, McpError, UrlElicitationRequiredError, type CallToolResult, type Progress } from '@modelcontextprotocol/sdk/types.js';
import { APPROVAL_META_KEY, approvalDecideEndpoint, approvalGetEndpoint, approvalListEndpoint, gatewayCreateEndpoint, type MandateError, policyAttachEndpoint, policyCreateEndpoint, targetAddEndpoint } from '@mandate/contracts';
import { MandateClient, waitForApproval } from '@mandate/sdk';
import { freePort, natsServerMissing } from '@mandate/testing';
import { startExpenseToolServer, type ExpenseToolServer } from '@mandate/testing/mcp-tool-servers';
import { startTestIdp, type TestIdp } from '@mandate/testing/idp';
import { startSystem, type TestSystem } from '@mandate/testing/system';

const missing = natsServerMissing('approvals through the gateway');

/** The seed's example with a person in the loop: under 100 is fine for finance; 100 or more needs a finance manager; travel people approve their own. */
const EXPENSES = `
@id("under-100")
permit (principal, action == Mandate::Action::"finance___approve_expense", resource)
when { principal.groups.contains("finance") && context.input.amount.lessThan(decimal("100.0")) };

@id("managers-approve")
@approval("group:finance-managers")
@approval_ttl("PT30M")
permit (principal, action == Mandate::Action::"finance___approve_expense", resource)
when { principal.groups.contains("finance") && context.input.amount.greaterThanOrEqual(decimal("100.0")) };

@id("travel-self-approve")
@approval("user")
permit (principal, action == Mandate::Action::"finance___approve_expense", resource)
when { principal.groups.contains("travel") };
`;

const CONSENT_PUBLIC_URL = 'https://consent.example';
/** A finance manager as the gateway's IdP signs her in (group approvers must come from the IdP of the user's token). */
const managerAt = (iss: string) => ({ iss, sub: 'maria', groups: ['finance-managers'], roles: [] });

interface Held {
  code: string;
  id: string;
  state: string;
  url?: string;
}

describe.skipIf(missing)('a call that needs a person: held, approved once, bound to its exact arguments (official MCP client)', () => {
  let h: TestSystem;
  let idp: TestIdp;
  let finance: ExpenseToolServer;
  let resource: string;
  let waitingResource: string;
  const clients: Client[] = [];

  const connect = async (sub: string, groups: string[], options: { elicitation?: boolean; at?: string } = {}) => {
    const at = options.at ?? resource;
    const client = new Client({ name: 'approval-test', version: '1.0.0' }, { capabilities: options.elicitation ? { elicitation: { url: {} } } : {} });
    const token = await idp.userAccessToken({ sub, audience: resource, scope: 'finance.write', claims: { groups } });
    await client.connect(new StreamableHTTPClientTransport(new URL(at), { requestInit: { headers: { authorization: `Bearer ${token}` } } }));
    clients.push(client);
    return client;
  };
  const expense = async (client: Client, amount: number, onprogress?: (progress: Progress) => void) =>
    (await client.callTool({ name: 'finance___approve_expense', arguments: { amount } }, undefined, onprogress ? { onprogress, timeout: 60_000 } : {})) as CallToolResult;
  const heldOf = (result: CallToolResult): Held => {
    expect(result.isError).toBe(true);
    return (result._meta as Record<string, Held>)[APPROVAL_META_KEY]!;
  };
  const approve = (id: string, approver = managerAt(idp.issuer)) => h.bus.request(approvalDecideEndpoint, { tenant: 'acme', id, decision: 'approve', approver });
  /** The open request for an amount (calls that wait answer only once it is decided). */
  const requestedFor = async (amount: string): Promise<string> => {
    for (;;) {
      const page = await h.bus.request(approvalListEndpoint, { tenant: 'acme', state: 'requested' });
      const found = page.items.find((approval) => approval.arguments[0]?.value === amount);
      if (found) return found.id;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  };
  const callRecords = (approval: string) => h.audit.filter((r) => r.service === 'gateway' && r.action === 'tool-call' && r.details?.['approval'] === approval);

  beforeAll(async () => {
    const [port, waitingPort] = [await freePort(), await freePort()];
    resource = `http://127.0.0.1:${port}/mcp/acme/finance-gw`;
    waitingResource = `http://127.0.0.1:${waitingPort}/mcp/acme/finance-gw`;
    h = await startSystem({
      services: ['directory', 'authorizer', 'vault', 'gateway', 'policy'],
      env: { GATEWAY_HTTP_PORT: String(port), GATEWAY_PUBLIC_URL: `http://127.0.0.1:${port}`, CONSENT_PUBLIC_URL },
    });
    // A second replica that waits for decisions: the same public URL (so the same resource), its own listener.
    await h.add('gateway', { env: { GATEWAY_HTTP_PORT: String(waitingPort), GATEWAY_APPROVAL_WAIT_SECONDS: '30' } });
    [idp, finance] = await Promise.all([startTestIdp(), startExpenseToolServer()]);
    const key: JWK = await h.workload('finance-gateway');
    await h.setAuthorizer('acme', 'finance-gateway', { discoveryUrl: idp.discoveryUrl, allowedAudiences: [resource] });
    await h.bus.request(gatewayCreateEndpoint, { tenant: 'acme', name: 'finance-gw', workload: { name: 'finance-gateway', privateJwk: key as never }, authorizationServers: [idp.issuer] });
    await h.bus.request(targetAddEndpoint, { tenant: 'acme', gateway: 'finance-gw', target: { name: 'finance', source: { kind: 'mcp', url: finance.url } } });
    await h.bus.request(policyCreateEndpoint, { tenant: 'acme', name: 'expenses', text: EXPENSES, actor: 'security@acme' });
    await h.bus.request(policyAttachEndpoint, { tenant: 'acme', gateway: 'finance-gw', policy: 'expenses', mode: 'enforce', actor: 'security@acme' });
  }, 90_000);

  afterAll(async () => {
    await Promise.all(clients.map((client) => client.close().catch(() => undefined)));
    await h?.stop();
    await Promise.all([idp?.stop(), finance?.stop()]);
  });

  it('an expense of 250 is held (approval_required, the request id, where to decide); a manager approves with a token; the identical call proceeds once; the next is held again', async () => {
    const sarah = await connect('sarah', ['finance']);
    expect((await expense(sarah, 50)).isError).toBeFalsy();
    const before = finance.approved.length;
    const result = await expense(sarah, 250);
    const held = heldOf(result);
    expect(held).toMatchObject({ code: 'approval_required', state: 'requested', url: `${CONSENT_PUBLIC_URL}/approvals/${held.id}?tenant=acme` });
    const text = JSON.stringify(result.content);
    expect(text).toContain('approval_required');
    expect(text).toContain(held.id);
    expect(text).toContain('a member of group finance-managers');
    expect(finance.approved.length).toBe(before);
    const request = await h.bus.request(approvalGetEndpoint, { tenant: 'acme', id: held.id });
    expect(request).toMatchObject({ state: 'requested', tool: 'finance___approve_expense', target: 'finance', arguments: [{ name: 'amount', title: 'amount', value: '250' }], user: { sub: 'sarah' }, approvers: [{ kind: 'group', name: 'finance-managers' }], policy: { name: 'expenses', determining: ['managers-approve'] } });
    expect(Date.parse(request.expiresAt) - Date.parse(request.requestedAt)).toBe(30 * 60_000);
    // Asking again before anyone decided gets the same request.
    expect(heldOf(await expense(sarah, 250)).id).toBe(held.id);

    const managerToken = await idp.userAccessToken({ sub: 'maria', audience: resource, scope: 'finance.write', claims: { groups: ['finance-managers'] } });
    const approved = await h.bus.request(approvalDecideEndpoint, { tenant: 'acme', id: held.id, decision: 'approve', approverToken: managerToken, comment: 'team offsite' });
    expect(approved).toMatchObject({ state: 'approved', decidedBy: { sub: 'maria' } });

    const proceeded = await expense(sarah, 250);
    expect(proceeded.isError).toBeFalsy();
    expect(finance.approved.slice(before)).toEqual([250]);
    // The receipt the target got names the approval a person gave.
    expect(decodeJwt(finance.receipts.at(-1)!)).toMatchObject({ approval: held.id, decision: 'allow', tool: 'finance___approve_expense' });
    const again = heldOf(await expense(sarah, 250));
    expect(again.id).not.toBe(held.id);
    expect(finance.approved.slice(before)).toEqual([250]);
    await expect.poll(() => callRecords(held.id).map((r) => [r.outcome, r.reason ?? null])).toEqual([
      ['denied', 'approval_required'],
      ['denied', 'approval_required'],
      ['succeeded', null],
    ]);
    expect((await h.bus.request(approvalGetEndpoint, { tenant: 'acme', id: held.id })).state).toBe('consumed');
  });

  it('a changed amount after approval is held: the approval binds the exact arguments (and the user)', async () => {
    const sarah = await connect('sarah', ['finance']);
    const held = heldOf(await expense(sarah, 300));
    await approve(held.id);
    const before = finance.approved.length;
    const changed = heldOf(await expense(sarah, 301));
    expect(changed.id).not.toBe(held.id);
    // Another user's identical call is not this approval's either.
    const other = await connect('sam', ['finance']);
    expect(heldOf(await expense(other, 300)).id).not.toBe(held.id);
    expect(finance.approved.length).toBe(before);
    expect((await expense(sarah, 300)).isError).toBeFalsy();
    expect(finance.approved.slice(before)).toEqual([300]);
  });

  it('a non-approver cannot decide (access_denied, audited); a denial keeps the call held and says so on the next call', async () => {
    const sarah = await connect('sarah', ['finance']);
    const held = heldOf(await expense(sarah, 400));
    const refused = await h.bus.request(approvalDecideEndpoint, { tenant: 'acme', id: held.id, decision: 'approve', approver: { iss: idp.issuer, sub: 'sarah', groups: ['finance'], roles: [] } }).then(
      () => undefined,
      (e: unknown) => e as MandateError,
    );
    expect(refused?.code).toBe('access_denied');
    await expect.poll(() => h.audit.some((r) => r.action === 'approval-refuse' && r.details?.['approval'] === held.id)).toBe(true);
    await h.bus.request(approvalDecideEndpoint, { tenant: 'acme', id: held.id, decision: 'deny', comment: 'not this quarter', approver: managerAt(idp.issuer) });
    const before = finance.approved.length;
    const next = await expense(sarah, 400);
    expect(heldOf(next).id).not.toBe(held.id);
    expect(JSON.stringify(next.content)).toContain(`The last request for this call (${held.id}) was denied (\\"not this quarter\\")`);
    expect(finance.approved.length).toBe(before);
  });

  it('two identical calls racing consume one approval once', async () => {
    const sarah = await connect('sarah', ['finance']);
    const held = heldOf(await expense(sarah, 500));
    await approve(held.id);
    const before = finance.approved.length;
    const [first, second] = await Promise.all([expense(sarah, 500), expense(await connect('sarah', ['finance']), 500)]);
    expect([first, second].filter((r) => !r.isError)).toHaveLength(1);
    expect(finance.approved.slice(before)).toEqual([500]);
  });

  it('waitForApproval wakes on the decision, and the call made again proceeds', async () => {
    const sarah = await connect('sarah', ['finance']);
    const held = heldOf(await expense(sarah, 600));
    const agent = new MandateClient(h.nc, { tenant: 'acme', workload: 'expense-agent' });
    const waiting = waitForApproval(agent, { id: held.id, timeoutMs: 20_000, backoff: { initialMs: 10_000, maxMs: 10_000 } });
    await new Promise((resolve) => setTimeout(resolve, 100));
    await approve(held.id);
    const decided = await waiting;
    expect(decided).toMatchObject({ id: held.id, state: 'approved', expiresAt: expect.any(String), decidedAt: expect.any(String) });
    // Agent code learns the state, none of what the approval binds.
    expect(Object.keys(decided).sort()).toEqual(['decidedAt', 'expiresAt', 'id', 'state', 'tenant']);
    expect((await expense(sarah, 600)).isError).toBeFalsy();
    const timedOut = await waitForApproval(agent, { id: heldOf(await expense(sarah, 601)).id, timeoutMs: 200 }).then(
      () => undefined,
      (e: unknown) => e as MandateError,
    );
    expect(timedOut).toMatchObject({ code: 'approval_required', details: { state: 'requested' } });
  });

  it('the user approves their own call: a client with URL elicitation is sent to the approvals page (-32042)', async () => {
    const traveller = await connect('tom', ['travel'], { elicitation: true });
    const asked = await expense(traveller, 120).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(asked).toBeInstanceOf(UrlElicitationRequiredError);
    const [elicitation] = (asked as UrlElicitationRequiredError).elicitations;
    expect(elicitation).toMatchObject({ mode: 'url', url: expect.stringMatching(new RegExp(`^${CONSENT_PUBLIC_URL}/approvals/apr_[A-Za-z0-9_-]+\\?tenant=acme$`)) });
    expect(elicitation!.message).toContain('approval by the user');
    // Without URL elicitation, the same held call is a tool error.
    const plain = await connect('tom', ['travel']);
    expect(heldOf(await expense(plain, 120)).state).toBe('requested');
  });

  it('a gateway configured to wait holds the call open, sending progress, until the manager decides; then it proceeds (or fails on a denial)', async () => {
    const sarah = await connect('sarah', ['finance'], { at: waitingResource });
    const progress: Progress[] = [];
    const before = finance.approved.length;
    const call = expense(sarah, 700, (p) => progress.push(p));
    const opened = await requestedFor('700');
    await expect.poll(() => progress.length).toBeGreaterThanOrEqual(1);
    expect(progress[0]).toMatchObject({ total: 30_000, message: expect.stringContaining(opened) });
    await approve(opened);
    const result = await call;
    expect(result.isError).toBeFalsy();
    expect(finance.approved.slice(before)).toEqual([700]);

    const denied = expense(sarah, 800);
    const deniedId = await requestedFor('800');
    await h.bus.request(approvalDecideEndpoint, { tenant: 'acme', id: deniedId, decision: 'deny', approver: managerAt(idp.issuer) });
    const answer = await denied;
    expect(heldOf(answer)).toMatchObject({ id: deniedId, state: 'denied' });
    expect(finance.approved.slice(before)).toEqual([700]);
  });

  it('a waiting call the client gives up on stops waiting: the approval that comes later is left for the call made again, which proceeds once', async () => {
    const sarah = await connect('sarah', ['finance'], { at: waitingResource });
    const before = finance.approved.length;
    // The client stops waiting after 1.5 s (the SDK cancels the request), long before the gateway's 30 s bound.
    const gaveUp = await sarah.callTool({ name: 'finance___approve_expense', arguments: { amount: 900 } }, undefined, { timeout: 1_500 }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(gaveUp).toBeInstanceOf(McpError);
    expect((gaveUp as McpError).code).toBe(ErrorCode.RequestTimeout);
    const opened = await requestedFor('900');
    await approve(opened);
    // Nothing was sent for the call nobody waits for any more, and the approval is still there to use.
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(finance.approved.length).toBe(before);
    expect((await h.bus.request(approvalGetEndpoint, { tenant: 'acme', id: opened })).state).toBe('approved');
    const again = await expense(sarah, 900);
    expect(again.isError).toBeFalsy();
    expect(finance.approved.slice(before)).toEqual([900]);
  });

  it('a waiting call whose client drops the connection (no cancel sent) stops waiting too: the approval that comes later is left for the call made again', async () => {
    // The client's connection for the call is cut, as a crash or a lost network would: the SDK sends no notifications/cancelled.
    let cut: AbortController | undefined;
    const token = await idp.userAccessToken({ sub: 'sarah', audience: resource, scope: 'finance.write', claims: { groups: ['finance'] } });
    const dropping = new Client({ name: 'approval-test', version: '1.0.0' });
    await dropping.connect(
      new StreamableHTTPClientTransport(new URL(waitingResource), {
        requestInit: { headers: { authorization: `Bearer ${token}` } },
        fetch: async (url, init) => {
          if (init?.method !== 'POST' || !String(init.body).includes('"tools/call"')) return fetch(url, init);
          cut = new AbortController();
          return fetch(url, { ...init, signal: cut.signal });
        },
      }),
    );
    clients.push(dropping);
    const before = finance.approved.length;
    void dropping.callTool({ name: 'finance___approve_expense', arguments: { amount: 950 } }, undefined, { timeout: 60_000 }).catch(() => undefined);
    const opened = await requestedFor('950');
    await expect.poll(() => cut).toBeDefined();
    cut!.abort();
    await new Promise((resolve) => setTimeout(resolve, 300));
    await approve(opened);
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(finance.approved.length).toBe(before);
    expect((await h.bus.request(approvalGetEndpoint, { tenant: 'acme', id: opened })).state).toBe('approved');
    const sarah = await connect('sarah', ['finance']);
    const again = await expense(sarah, 950);
    expect(again.isError).toBeFalsy();
    expect(finance.approved.slice(before)).toEqual([950]);
  });

  it('on a waiting gateway, a user who approves their own call is sent to the page at once (-32042), not after the wait', async () => {
    const traveller = await connect('tina', ['travel'], { elicitation: true, at: waitingResource });
    const startedAt = Date.now();
    const asked = await expense(traveller, 130).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(asked).toBeInstanceOf(UrlElicitationRequiredError);
    expect(Date.now() - startedAt).toBeLessThan(10_000);
    expect((asked as UrlElicitationRequiredError).elicitations[0]!.url).toMatch(new RegExp(`^${CONSENT_PUBLIC_URL}/approvals/apr_`));
  });
});
