import { mkdirSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser, Page } from 'playwright-core';
import {
  authorizerSetEndpoint,
  CONSENT_GRANTED_ALL_TENANTS,
  consentSessionGetEndpoint,
  grantCheckEndpoint,
  grantListEndpoint,
  MandateError,
  providerCreateEndpoint,
  workloadCreateEndpoint,
  type ConsentGrantedData,
  type DomainEvent,
} from '@mandate/contracts';
import { MandateClient, withAccessToken } from '@mandate/sdk';
import { freePort, natsServerMissing } from '@mandate/testing';
import { chromiumMissing, launchChromium } from '@mandate/testing/browser';
import { startTestIdp, type TestIdp } from '@mandate/testing/idp';
import { RESOURCE_AUDIENCES, RESOURCE_SCOPES, startResourceServers, type ResourceServers } from '@mandate/testing/resource-servers';
import { startSystem, workloadKeyPair, type TestSystem } from '@mandate/testing/system';

/*
 * The seed talk's walk-through, for real: Sarah asks the sales-brief agent, through her company's
 * app, for a brief on ACME. The agent needs her CRM notes, her finance spend figures, and to
 * write the brief into her documents: three providers, three consents, each asked once, in a
 * real Chromium. Sarah's company IdP (`corp`) signs her in to the app and to the consent pages;
 * the SaaS authorization server (`saas`) issues the tokens the three resource servers accept.
 */

const missing = natsServerMissing('the consent scenario') ?? chromiumMissing('the consent scenario in a real browser');
const TENANT = 'acme';
const AGENT = 'sales-brief-agent';
const APP_AUDIENCE = 'https://sales-app.example';
const SCREENSHOTS = 'test-results/screenshots';

describe.skipIf(missing)('Sarah and the sales-brief agent: consent once, in a real browser', () => {
  let h: TestSystem;
  let corp: TestIdp;
  let saas: TestIdp;
  let resources: ResourceServers;
  let consentUrl: string;
  let browser: Browser;
  let page: Page;
  let agentKey: Awaited<ReturnType<typeof workloadKeyPair>>;
  const granted: DomainEvent<ConsentGrantedData>[] = [];

  beforeAll(async () => {
    const port = await freePort();
    consentUrl = `http://127.0.0.1:${port}`;
    h = await startSystem({
      services: ['directory', 'authorizer', 'vault', 'consent'],
      env: { CONSENT_BASE_URL: consentUrl, CONSENT_HTTP_PORT: String(port), CONSENT_PUBLIC_URL: consentUrl },
    });
    corp = await startTestIdp({
      extraClients: [{ client_id: 'mandate-consent', token_endpoint_auth_method: 'none', grant_types: ['authorization_code'], response_types: ['code'], redirect_uris: [`${consentUrl}/login/callback`] }],
    });
    saas = await startTestIdp({ redirectUris: [`${consentUrl}/callback`] });
    resources = await startResourceServers({ issuer: saas.issuer, jwksUri: saas.jwksUri });
    h.nc.subscribe(CONSENT_GRANTED_ALL_TENANTS, { callback: (_e, msg) => void granted.push(msg.json<DomainEvent<ConsentGrantedData>>()) });

    agentKey = await workloadKeyPair(`${AGENT}-key`);
    await h.bus.request(workloadCreateEndpoint, {
      tenant: TENANT,
      name: AGENT,
      description: 'Prepares account briefs from your CRM notes and finance figures, and saves them to your documents.',
      publicKeys: { keys: [agentKey.publicJwk as never] },
    });
    await h.bus.request(authorizerSetEndpoint, { tenant: TENANT, name: AGENT, authorizer: { discoveryUrl: corp.discoveryUrl, allowedAudiences: [APP_AUDIENCE] } });
    for (const name of ['crm', 'finance', 'documents']) {
      await h.bus.request(providerCreateEndpoint, {
        kind: 'oauth2',
        tenant: TENANT,
        name,
        description: `The ${name} service`,
        vendor: 'custom',
        discoveryUrl: saas.discoveryUrl,
        clientId: 'test-app',
        clientSecret: 'test-app-secret',
        allowedWorkloads: [AGENT],
      });
    }
    mkdirSync(SCREENSHOTS, { recursive: true });
    browser = await launchChromium();
    page = await (await browser.newContext()).newPage();
  }, 60_000);

  afterAll(async () => {
    await browser?.close();
    await resources?.stop();
    await saas?.stop();
    await corp?.stop();
    await h?.stop();
  });

  /** The agent: reads notes and spend with Sarah's tokens, writes the brief to her documents. Returns the brief and the consent URLs it showed. */
  async function runAgent(userJwt: string, options: { consentTimeoutMs?: number } = {}) {
    const mandate = new MandateClient(h.nc, { tenant: TENANT, workload: AGENT });
    const wat = await mandate.tokenForJwt(userJwt, { privateJwk: agentKey.privateJwk });
    const shown: string[] = [];
    const access = (provider: 'crm' | 'finance' | 'documents', scope: string) => ({
      provider,
      scopes: [scope],
      flow: 'USER_FEDERATION' as const,
      workloadToken: wat,
      customParameters: { resource: RESOURCE_AUDIENCES[provider] },
      onAuthUrl: (url: string) => void shown.push(url),
      consentTimeoutMs: options.consentTimeoutMs ?? 60_000,
    });
    const getJson = async (url: string, token: string) => {
      const response = await fetch(url, { headers: { authorization: `Bearer ${token}` } });
      if (!response.ok) throw new Error(`${url} answered ${response.status}`);
      return response.json() as Promise<Record<string, unknown>>;
    };
    const readNotes = withAccessToken(mandate, access('crm', RESOURCE_SCOPES.crmNotesRead), (token) => getJson(`${resources.crm.url}/accounts/acme/notes`, token));
    const readSpend = withAccessToken(mandate, access('finance', RESOURCE_SCOPES.financeSpendRead), (token) => getJson(`${resources.finance.url}/accounts/acme/spend`, token));
    const save = withAccessToken(mandate, access('documents', RESOURCE_SCOPES.docsWrite), async (token, text: string) => {
      const response = await fetch(`${resources.documents.url}/documents/acme-brief`, { method: 'PUT', headers: { authorization: `Bearer ${token}`, 'content-type': 'text/plain' }, body: text });
      if (!response.ok) throw new Error(`documents answered ${response.status}`);
    });
    const done = (async () => {
      const [notes, spend] = await Promise.all([readNotes(), readSpend()]);
      const brief = `Brief for ACME Corp\n${JSON.stringify(notes)}\n${JSON.stringify(spend)}`;
      await save(brief);
      return brief;
    })();
    return { shown, done };
  }

  /** Through an oidc-provider's login and consent prompts, as `login`, until the browser leaves it. */
  async function throughAuthorizationServer(server: TestIdp, login: string): Promise<void> {
    for (let step = 0; step < 6 && new URL(page.url()).origin === server.issuer; step++) {
      if ((await page.locator('input[name="login"]').count()) > 0) {
        await page.locator('input[name="login"]').fill(login);
        await page.locator('input[name="password"]').fill('any');
      }
      const before = page.url();
      await page.locator('button[type="submit"]').first().click();
      await page.waitForURL((url) => url.href !== before);
    }
    expect(new URL(page.url()).origin).toBe(consentUrl);
  }

  /** Sarah opens a consent URL, checks who asks for what, picks "for 7 days", approves, and approves at the provider. */
  async function approve(url: string, expected: { provider: string; scope: string }, screenshot?: string): Promise<void> {
    await page.goto(url);
    if (new URL(page.url()).origin === corp.issuer) await throughAuthorizationServer(corp, 'sarah');
    await expect.poll(() => page.getByRole('heading', { level: 1 }).textContent()).toContain(AGENT);
    expect(await page.getByRole('heading', { level: 1 }).textContent()).toContain(expected.provider);
    expect(await page.locator('main').textContent()).toContain(expected.scope);
    await page.getByLabel('For 7 days').check();
    if (screenshot) await page.screenshot({ path: `${SCREENSHOTS}/${screenshot}`, fullPage: true });
    await page.getByRole('button', { name: 'Approve' }).click();
    await page.waitForURL((u) => u.origin === saas.issuer);
    await throughAuthorizationServer(saas, 'sarah');
    await expect.poll(() => page.getByRole('heading', { level: 1 }).textContent()).toBe('Access granted');
  }

  /** Waits until the agent has shown `count` consent URLs. */
  async function urlsShown(shown: string[], count: number): Promise<string[]> {
    await expect.poll(() => shown.length, { timeout: 15_000 }).toBeGreaterThanOrEqual(count);
    return shown.slice(0, count);
  }

  const sarahJwt = () => corp.userAccessToken({ sub: 'sarah', audience: APP_AUDIENCE });

  it('Sarah approves three providers once; the agent reads notes and spend and writes the brief; a second run asks nothing', async () => {
    const run = await runAgent(await sarahJwt());
    const [crmUrl, financeUrl] = await urlsShown(run.shown, 2);
    const byProvider = new Map<string, string>();
    for (const url of [crmUrl!, financeUrl!]) {
      const sessionId = new URL(url).pathname.split('/').pop()!;
      byProvider.set((await h.bus.request(consentSessionGetEndpoint, { tenant: TENANT, sessionId })).provider, url);
    }
    // The first page also signs Sarah in at her company IdP (session binding); the second needs no sign-in.
    await approve(byProvider.get('crm')!, { provider: 'crm', scope: RESOURCE_SCOPES.crmNotesRead }, 'consent-page.png');
    await approve(byProvider.get('finance')!, { provider: 'finance', scope: RESOURCE_SCOPES.financeSpendRead });
    const [, , documentsUrl] = await urlsShown(run.shown, 3);
    await approve(documentsUrl!, { provider: 'documents', scope: RESOURCE_SCOPES.docsWrite });

    const brief = await run.done;
    expect(brief).toContain('SSO');
    expect(brief).toContain('48250');
    // Every resource server saw Sarah, with the scope it needs.
    expect(resources.requests.map((r) => [r.server, r.method, r.sub])).toEqual(
      expect.arrayContaining([
        ['crm', 'GET', 'sarah'],
        ['finance', 'GET', 'sarah'],
        ['documents', 'PUT', 'sarah'],
      ]),
    );
    expect(granted.filter((e) => e.data.workload === AGENT && e.data.user.sub === 'sarah').map((e) => e.data.provider).sort()).toEqual(['crm', 'documents', 'finance']);

    const again = await runAgent(await sarahJwt());
    await again.done;
    expect(again.shown).toEqual([]);

    const sarah = { iss: corp.issuer, sub: 'sarah' };
    const { items } = await h.bus.request(grantListEndpoint, { tenant: TENANT, user: sarah });
    expect(items.map((g) => g.provider).sort()).toEqual(['crm', 'documents', 'finance']);
    expect(items.every((g) => !g.once && g.expiresAt && Date.parse(g.expiresAt) > Date.now() + 6.9 * 86_400_000)).toBe(true);
    expect(await h.bus.request(grantCheckEndpoint, { tenant: TENANT, workload: AGENT, provider: 'crm', user: sarah, scopes: [RESOURCE_SCOPES.crmNotesRead, 'crm.notes.write'] })).toEqual({
      granted: false,
      missing: ['crm.notes.write'],
    });
  }, 120_000);

  it('an attacker opens a session and gets Sarah to approve it: refused by session binding, audited, nothing changes', async () => {
    const mallory = await runAgent(await corp.userAccessToken({ sub: 'mallory', audience: APP_AUDIENCE }), { consentTimeoutMs: 3_000 });
    mallory.done.catch(() => undefined);
    const [url] = await urlsShown(mallory.shown, 1);
    const sessionId = new URL(url!).pathname.split('/').pop()!;
    const response = await page.goto(url!);
    expect(response?.status()).toBe(403);
    expect(await page.locator('main').textContent()).toContain('made for another account');
    expect(await page.getByRole('button', { name: 'Approve' }).count()).toBe(0);
    expect((await h.bus.request(consentSessionGetEndpoint, { tenant: TENANT, sessionId })).state).toBe('pending');
    await expect.poll(() => h.audit.find((r) => r.action === 'consent-binding' && r.reason === 'binding_mismatch' && r.details?.['sessionId'] === sessionId)).toBeTruthy();
    const error = await mallory.done.then(() => undefined, (e: unknown) => e);
    expect(error).toBeInstanceOf(MandateError);
    expect((error as MandateError).code).toBe('consent_required');
  }, 60_000);

  it('the consent page refuses to be framed (clickjacking)', async () => {
    const run = await runAgent(await corp.userAccessToken({ sub: 'framed', audience: APP_AUDIENCE }), { consentTimeoutMs: 3_000 });
    run.done.catch(() => undefined);
    const [url] = await urlsShown(run.shown, 1);
    const evil: Server = createServer((_request, response) => {
      response.writeHead(200, { 'content-type': 'text/html' }).end(`<!doctype html><title>Win a prize</title><iframe id="f" src="${url}" width="600" height="400"></iframe>`);
    });
    await new Promise<void>((resolve) => evil.listen(0, '127.0.0.1', resolve));
    try {
      await page.goto(`http://127.0.0.1:${(evil.address() as AddressInfo).port}/`);
      await page.waitForTimeout(500);
      const frame = page.frames().find((f) => f !== page.mainFrame());
      const framed = frame ? await frame.locator('body').textContent().catch(() => '') : '';
      expect(framed ?? '').not.toContain(AGENT);
      expect(framed ?? '').not.toContain('Approve');
    } finally {
      await new Promise((resolve) => evil.close(resolve));
    }
  }, 60_000);

  it('"My access" in a browser that is not signed in: the IdP first, then only that person\'s grants', async () => {
    const fresh = await (await browser.newContext()).newPage();
    try {
      await fresh.goto(`${consentUrl}/access?tenant=${TENANT}`);
      expect(await fresh.locator('main').textContent()).toContain('Sign in to see');
      expect(await fresh.getByRole('button').count()).toBe(0);
      await fresh.getByRole('link', { name: /Sign in at/ }).click();
      await fresh.waitForURL((url) => url.origin === corp.issuer);
      for (let step = 0; step < 6 && new URL(fresh.url()).origin === corp.issuer; step++) {
        if ((await fresh.locator('input[name="login"]').count()) > 0) {
          await fresh.locator('input[name="login"]').fill('sarah');
          await fresh.locator('input[name="password"]').fill('any');
        }
        const before = fresh.url();
        await fresh.locator('button[type="submit"]').first().click();
        await fresh.waitForURL((url) => url.href !== before);
      }
      await expect.poll(() => fresh.getByRole('heading', { level: 1 }).textContent()).toBe('My access');
      const main = await fresh.locator('main').textContent();
      expect(main).toContain('Signed in as sarah');
      for (const provider of ['crm', 'finance', 'documents']) expect(main).toContain(provider);
      expect(main).not.toContain('mallory');
      await fresh.getByRole('button', { name: 'Sign out' }).click();
      await expect.poll(() => fresh.getByRole('heading', { level: 1 }).textContent()).toBe('Signed out');
      await fresh.goto(`${consentUrl}/access?tenant=${TENANT}`);
      expect(await fresh.locator('main').textContent()).toContain('Sign in to see');
    } finally {
      await fresh.context().close();
    }
  }, 60_000);

  it('"My access" lists the grants; revoking them deletes the tokens, revokes them at the provider, and the next run asks again', async () => {
    await page.goto(`${consentUrl}/access?tenant=${TENANT}`);
    await expect.poll(() => page.getByRole('heading', { level: 1 }).textContent()).toBe('My access');
    const main = await page.locator('main').textContent();
    for (const provider of ['crm', 'finance', 'documents']) expect(main).toContain(provider);
    expect(main).toContain(AGENT);
    await page.screenshot({ path: `${SCREENSHOTS}/my-access.png`, fullPage: true });

    const revokedBefore = saas.revocationRequests;
    await page.getByRole('button', { name: `Revoke all for ${AGENT}` }).click();
    // Revoking asks to confirm first (issue 15, item 7).
    await page.getByRole('button', { name: 'Revoke', exact: true }).click();
    await expect.poll(() => page.locator('main').textContent()).toContain('You have not given any agent access');
    expect(saas.revocationRequests).toBeGreaterThan(revokedBefore);
    await expect.poll(() => h.audit.find((r) => r.action === 'grant-revoke' && r.actor.user?.sub === 'sarah')).toBeTruthy();

    const run = await runAgent(await sarahJwt(), { consentTimeoutMs: 2_000 });
    const error = await run.done.then(() => undefined, (e: unknown) => e);
    expect((error as MandateError).code).toBe('consent_required');
    expect(run.shown.length).toBeGreaterThanOrEqual(1);
  }, 60_000);
});
