import { mkdir } from 'node:fs/promises';
import { decodeJwt, type JWK } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { APPROVAL_META_KEY, approvalGetEndpoint, gatewayCreateEndpoint, policyAttachEndpoint, policyCreateEndpoint, targetAddEndpoint } from '@mandate/contracts';
import { DEMO_PASSWORD, newSigningKey, signInWithAuthorizationCode, startDemoAuthorizationServer, type DemoAuthorizationServer } from '@mandate/demo';
import { freePort, natsServerMissing } from '@mandate/testing';
import { chromiumMissing, launchChromium, signInAtDemoIdp, tabTo } from '@mandate/testing/browser';
import { startExpenseToolServer, type ExpenseToolServer } from '@mandate/testing/mcp-tool-servers';
import { startSystem, type TestSystem } from '@mandate/testing/system';

/*
 * The seed talk's last wish, end to end: Sarah's agent submits an expense through the gateway
 * (the official MCP client); policy permits 250 only with the finance team's approval, so the
 * call is held; Bob from finance opens the link the call answered with, on his phone, signs in
 * at the company IdP and approves with the keyboard (real Chromium); the agent's identical call
 * then proceeds once, with the approval in its receipt, and the next identical call is held again.
 */

const missing = natsServerMissing('the approval scenario') ?? chromiumMissing('the approval scenario in a real browser');
const TENANT = 'acme';
const SCREENSHOTS = 'test-results/screenshots';
const APP = { client_id: 'expense-agent', client_secret: 'expense-agent-secret', redirect_uri: 'http://127.0.0.1/expense-agent/callback' };

const EXPENSES = `
@id("small-expenses")
permit (principal, action == Mandate::Action::"finance___approve_expense", resource)
when { principal.groups.contains("sales") && context.input.amount.lessThan(decimal("100.0")) };

@id("finance-approves")
@approval("group:finance")
permit (principal, action == Mandate::Action::"finance___approve_expense", resource)
when { principal.groups.contains("sales") && context.input.amount.greaterThanOrEqual(decimal("100.0")) };
`;

interface Held {
  code: string;
  id: string;
  state: string;
  url?: string;
}

describe.skipIf(missing)('an expense held for a person: approved on the approvals page in Chromium, the identical call proceeds once', () => {
  let h: TestSystem;
  let idp: DemoAuthorizationServer;
  let finance: ExpenseToolServer;
  let consentUrl: string;
  let resource: string;
  let sarah: Client;

  beforeAll(async () => {
    const [gatewayPort, consentPort, idpPort] = [await freePort(), await freePort(), await freePort()];
    consentUrl = `http://127.0.0.1:${consentPort}`;
    resource = `http://127.0.0.1:${gatewayPort}/mcp/${TENANT}/finance-gw`;
    h = await startSystem({
      services: ['directory', 'authorizer', 'vault', 'gateway', 'policy', 'consent'],
      env: {
        GATEWAY_HTTP_PORT: String(gatewayPort),
        GATEWAY_PUBLIC_URL: `http://127.0.0.1:${gatewayPort}`,
        CONSENT_HTTP_PORT: String(consentPort),
        CONSENT_PUBLIC_URL: consentUrl,
      },
    });
    // The company IdP: sarah is in sales, bob in finance; both the agent's user token and the approvals page's sign-in come from it.
    idp = await startDemoAuthorizationServer({
      title: 'Acme IdP',
      port: idpPort,
      signingKeys: [await newSigningKey('RS256')],
      clients: [
        { client_id: APP.client_id, client_secret: APP.client_secret, grant_types: ['authorization_code'], response_types: ['code'], redirect_uris: [APP.redirect_uri] },
        { client_id: 'mandate-consent', token_endpoint_auth_method: 'none', grant_types: ['authorization_code'], response_types: ['code'], redirect_uris: [`${consentUrl}/login/callback`] },
      ],
    });
    finance = await startExpenseToolServer();
    const key: JWK = await h.workload('finance-gateway', { tenant: TENANT });
    await h.setAuthorizer(TENANT, 'finance-gateway', { discoveryUrl: idp.discoveryUrl, allowedAudiences: [resource] });
    await h.bus.request(gatewayCreateEndpoint, { tenant: TENANT, name: 'finance-gw', workload: { name: 'finance-gateway', privateJwk: key as never }, authorizationServers: [idp.issuer] });
    await h.bus.request(targetAddEndpoint, { tenant: TENANT, gateway: 'finance-gw', target: { name: 'finance', source: { kind: 'mcp', url: finance.url } } });
    await h.bus.request(policyCreateEndpoint, { tenant: TENANT, name: 'expenses', text: EXPENSES, actor: 'security@acme' });
    await h.bus.request(policyAttachEndpoint, { tenant: TENANT, gateway: 'finance-gw', policy: 'expenses', mode: 'enforce', actor: 'security@acme' });

    // Sarah signs in to her expense agent, which asks the IdP for a token for the gateway.
    const tokens = await signInWithAuthorizationCode({
      ...idp,
      clientId: APP.client_id,
      clientSecret: APP.client_secret,
      redirectUri: APP.redirect_uri,
      login: 'sarah',
      password: DEMO_PASSWORD,
      scope: 'expenses.submit',
      resource,
    });
    sarah = new Client({ name: 'expense-agent', version: '1.0.0' });
    await sarah.connect(new StreamableHTTPClientTransport(new URL(resource), { requestInit: { headers: { authorization: `Bearer ${tokens.access_token}` } } }));
  }, 90_000);

  afterAll(async () => {
    await sarah?.close().catch(() => undefined);
    await h?.stop();
    await Promise.all([idp?.stop(), finance?.stop()]);
  });

  const expense = async (amount: number) => (await sarah.callTool({ name: 'finance___approve_expense', arguments: { amount } })) as CallToolResult;
  const heldOf = (result: CallToolResult): Held => {
    expect(result.isError, JSON.stringify(result.content)).toBe(true);
    return (result._meta as Record<string, Held>)[APPROVAL_META_KEY]!;
  };
  const policyRecords = (approval: string) => h.audit.filter((r) => r.service === 'policy' && r.target?.resource === approval).map((r) => r.action);

  it('250 is held; bob approves on the page the call named; the identical call proceeds once with the approval in its receipt; the next is held again', async () => {
    expect((await expense(40)).isError).toBeFalsy();
    const before = finance.approved.length;

    const held = heldOf(await expense(250));
    expect(held).toMatchObject({ code: 'approval_required', state: 'requested', url: `${consentUrl}/approvals/${held.id}?tenant=${TENANT}` });
    expect(finance.approved.length).toBe(before);

    const browser = await launchChromium();
    try {
      const page = await browser.newPage({ viewport: { width: 375, height: 667 } });
      await page.goto(held.url!);
      await tabTo(page, (el) => el.tag === 'A' && el.text.startsWith('Sign in at'));
      await page.keyboard.press('Enter');
      await page.waitForURL((url) => url.origin === idp.issuer);
      await signInAtDemoIdp(page, 'bob', consentUrl);
      await page.waitForURL(held.url!);

      const text = (await page.locator('main').innerText()).replace(/\s+/g, ' ');
      expect(await page.locator('.state').textContent()).toBe('Waiting for your decision');
      for (const fact of ['Signed in as Bob Example (bob)', 'finance___approve_expense', 'Target finance', 'Acting for sarah', 'amount 250']) expect(text, fact).toContain(fact);
      expect(await page.evaluate('document.documentElement.scrollWidth <= window.innerWidth')).toBe(true);
      await mkdir(SCREENSHOTS, { recursive: true });
      await page.screenshot({ path: `${SCREENSHOTS}/approval-scenario.png`, fullPage: true });

      await tabTo(page, (el) => el.tag === 'TEXTAREA');
      await page.keyboard.type('Client dinner, within budget.');
      await tabTo(page, (el) => el.tag === 'BUTTON' && el.text === 'Approve');
      await page.keyboard.press('Enter');
      await expect.poll(async () => (await page.locator('main').innerText()).replace(/\s+/g, ' ')).toContain('Approved by Bob Example (bob)');
    } finally {
      await browser.close();
    }
    expect(await h.bus.request(approvalGetEndpoint, { tenant: TENANT, id: held.id })).toMatchObject({ state: 'approved', comment: 'Client dinner, within budget.', decidedBy: { iss: idp.issuer, sub: 'bob' } });

    const proceeded = await expense(250);
    expect(proceeded.isError, JSON.stringify(proceeded.content)).toBeFalsy();
    expect(finance.approved.slice(before)).toEqual([250]);
    expect(decodeJwt(finance.receipts.at(-1)!)).toMatchObject({ approval: held.id, decision: 'allow', tool: 'finance___approve_expense' });

    const again = heldOf(await expense(250));
    expect(again.id).not.toBe(held.id);
    expect(finance.approved.slice(before)).toEqual([250]);
    expect((await h.bus.request(approvalGetEndpoint, { tenant: TENANT, id: held.id })).state).toBe('consumed');
    await expect.poll(() => policyRecords(held.id)).toEqual(['approval-request', 'approval-decide', 'approval-consume']);
    const decided = h.audit.find((r) => r.action === 'approval-decide' && r.target?.resource === held.id)!;
    expect(decided.actor.user).toEqual({ iss: idp.issuer, sub: 'bob' });
  }, 120_000);
});
