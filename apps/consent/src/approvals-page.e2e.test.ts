import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHmac, randomBytes } from 'node:crypto';
import { mkdir } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { approvalGetEndpoint, approvalRequestEndpoint, type ApprovalView, type Approver, type UserRef } from '@mandate/contracts';
import { DEMO_PASSWORD, newSigningKey, startDemoAuthorizationServer, type DemoAuthorizationServer } from '@mandate/demo';
import { freePort, natsServerMissing } from '@mandate/testing';
import { chromiumMissing, launchChromium, signInAtDemoIdp, tabTo } from '@mandate/testing/browser';
import { startSystem, type TestSystem } from '@mandate/testing/system';

const missing = natsServerMissing('approvals page');
const TENANT = 'acme';
const COOKIE = 'mandate-consent';
const SCREENSHOTS = 'test-results/screenshots';
const EXPENSE = [
  { name: 'amount', title: 'Amount', value: '250' },
  { name: 'currency', title: 'Currency', value: 'EUR' },
  { name: 'description', title: 'Description', value: 'Team dinner with the Initech account' },
];

/** Text of HTML with its tags dropped and its character references decoded, as a person reads it. */
const textOf = (html: string) =>
  (/<main>([\s\S]*)<\/main>/.exec(html)?.[1] ?? html)
    .replace(/<\/?(code|strong|span|a|em|b)\b[^>]*>/g, '')
    .replace(/<[^>]+>/g, ' ')
    .replace(/&#(\d+);/g, (_m, code: string) => String.fromCharCode(Number(code)))
    .replace(/&amp;/g, '&')
    .replace(/\s+/g, ' ');
const decodeAttribute = (value: string) => value.replace(/&#(\d+);/g, (_m, code: string) => String.fromCharCode(Number(code))).replace(/&amp;/g, '&');

/**
 * A browser for HTTP-level checks: cookies per origin, redirects left to the test, and the
 * headers a browser sends with a form (Origin, Sec-Fetch-Site) chosen by the test.
 */
class Visitor {
  readonly #cookies = new Map<string, Map<string, string>>();

  async visit(url: string, form?: Record<string, string>, headers: Record<string, string> = {}): Promise<Response> {
    const jar = this.#jar(new URL(url).origin);
    const response = await fetch(url, {
      method: form ? 'POST' : 'GET',
      redirect: 'manual',
      headers: { cookie: [...jar].map(([name, value]) => `${name}=${value}`).join('; '), ...headers },
      ...(form ? { body: new URLSearchParams(form) } : {}),
    });
    for (const cookie of response.headers.getSetCookie()) {
      const [name = '', value = ''] = (cookie.split(';')[0] ?? '').split('=', 2);
      if (value) jar.set(name, value);
      else jar.delete(name);
    }
    return response;
  }

  cookie(origin: string, name: string): string | undefined {
    return this.#jar(origin).get(name);
  }

  #jar(origin: string): Map<string, string> {
    const jar = this.#cookies.get(origin) ?? new Map<string, string>();
    this.#cookies.set(origin, jar);
    return jar;
  }
}

describe.skipIf(missing)('the approvals page: approvers sign in at the IdP and decide held tool calls', () => {
  let h: TestSystem;
  let idp: DemoAuthorizationServer;
  let consentUrl: string;
  let sarah: UserRef;
  const csrfKey = randomBytes(32);
  let soonExpired: ApprovalView;

  beforeAll(async () => {
    const port = await freePort();
    consentUrl = `http://127.0.0.1:${port}`;
    h = await startSystem({
      services: ['directory', 'policy', 'consent'],
      env: { CONSENT_HTTP_PORT: String(port), CONSENT_PUBLIC_URL: consentUrl, CONSENT_CSRF_KEY: csrfKey.toString('base64url') },
    });
    // The company IdP (the demo's, where sarah is in sales and bob in finance): its ID tokens carry `groups`.
    idp = await startDemoAuthorizationServer({
      title: 'Acme IdP',
      port: await freePort(),
      signingKeys: [await newSigningKey('RS256')],
      clients: [{ client_id: 'mandate-consent', token_endpoint_auth_method: 'none', grant_types: ['authorization_code'], response_types: ['code'], redirect_uris: [`${consentUrl}/login/callback`] }],
    });
    sarah = { iss: idp.issuer, sub: 'sarah' };
    // The gateway's workload: its authorizer's IdP is where the tenant's people sign in.
    await h.workload('finance-gateway', { tenant: TENANT });
    await h.setAuthorizer(TENANT, 'finance-gateway', { discoveryUrl: idp.discoveryUrl, allowedAudiences: ['https://gateway.acme.example'] });
    soonExpired = await requestApproval({ ttlSeconds: 10, arguments: [{ name: 'amount', title: 'Amount', value: '900' }] });
  }, 60_000);

  afterAll(async () => {
    await h?.stop();
    await idp?.stop();
  });

  /** The call held as the gateway holds it: an expense of 250 that the finance group approves. */
  function requestApproval(overrides: { ttlSeconds?: number; user?: UserRef; approvers?: Approver[]; arguments?: typeof EXPENSE; tenant?: string } = {}): Promise<ApprovalView> {
    return h.bus.request(approvalRequestEndpoint, {
      tenant: overrides.tenant ?? TENANT,
      gateway: 'finance-gateway',
      tool: 'finance___submit_expense',
      target: 'finance',
      toolTitle: 'Submit an expense',
      arguments: overrides.arguments ?? EXPENSE,
      user: overrides.user ?? sarah,
      agent: 'expense-agent',
      approvers: overrides.approvers ?? [{ kind: 'group', name: 'finance' }],
      digest: randomBytes(32).toString('base64url'),
      policy: { name: 'expenses', version: '1', determining: ['policy0'] },
      ttlSeconds: overrides.ttlSeconds ?? 600,
    });
  }

  const approvalUrl = (approval: ApprovalView) => `${consentUrl}/approvals/${approval.id}?tenant=${TENANT}`;
  const stateOf = async (approval: ApprovalView) => (await h.bus.request(approvalGetEndpoint, { tenant: TENANT, id: approval.id })).state;
  /** The token a page of this service would have put in the form: what an attacker who had it could send. */
  const csrfFor = (visitor: Visitor, form: string) => createHmac('sha256', csrfKey).update(`csrf\n${visitor.cookie(consentUrl, COOKIE)}\n${form}`).digest('base64url');
  const sameOrigin = () => ({ origin: consentUrl, 'sec-fetch-site': 'same-origin' });

  /** Opens `url` not signed in: the sign-in page, to the demo IdP (login, password, consent), and back to `url`. */
  async function signIn(visitor: Visitor, url: string, login: string): Promise<void> {
    const page = await visitor.visit(url);
    expect(page.status).toBe(200);
    const link = /<a href="(\/approvals\/sign-in[^"]*)">Sign in at [^<]+<\/a>/.exec(await page.text())?.[1];
    expect(link).toBeTruthy();
    let location = (await visitor.visit(`${consentUrl}${decodeAttribute(link!)}`)).headers.get('location')!;
    for (let hops = 0; !location.startsWith(`${consentUrl}/login/callback`); hops++) {
      if (hops > 10) throw new Error(`the sign-in did not end (at ${location})`);
      const at = new URL(location, idp.issuer).href;
      if (!/\/interaction\/[^/]+$/.test(at)) {
        location = (await visitor.visit(at)).headers.get('location')!;
        continue;
      }
      const prompt = /name="prompt" value="(\w+)"/.exec(await (await visitor.visit(at)).text())?.[1];
      location = (await visitor.visit(at, prompt === 'login' ? { prompt, login, password: DEMO_PASSWORD } : { prompt: prompt ?? 'consent' })).headers.get('location')!;
    }
    const back = await visitor.visit(location);
    expect(back.status).toBe(303);
    expect(new URL(back.headers.get('location')!, consentUrl).href).toBe(url);
  }

  async function signedIn(login: string, url: string): Promise<Visitor> {
    const visitor = new Visitor();
    await signIn(visitor, url, login);
    return visitor;
  }

  it('not signed in: the sign-in page, telling nothing of the request, with the security headers; bad addresses are explained or not found', async () => {
    const approval = await requestApproval();
    const page = await new Visitor().visit(approvalUrl(approval));
    expect(page.status).toBe(200);
    const html = await page.text();
    expect(textOf(html)).toContain(`Sign in at ${new URL(idp.issuer).host}`);
    expect(html).toContain(`approval&#61;${approval.id}`);
    // Words of the request, not its bare amount: the IdP's random port can contain "250".
    for (const secret of ['Submit an expense', 'Amount', 'Team dinner', 'sarah', 'expense-agent']) expect(html).not.toContain(secret);
    const csp = page.headers.get('content-security-policy')!;
    expect(csp).toContain("frame-ancestors 'none'");
    expect(csp).toContain("default-src 'none'");
    expect(page.headers.get('x-frame-options')).toBe('DENY');
    expect(page.headers.get('cache-control')).toBe('no-store');
    expect(page.headers.get('referrer-policy')).toBe('no-referrer');
    expect(html).not.toContain('<script');

    const noTenant = await new Visitor().visit(`${consentUrl}/approvals`);
    expect(noTenant.status).toBe(400);
    expect(textOf(await noTenant.text())).toContain('/approvals?tenant=default');
    expect((await new Visitor().visit(`${consentUrl}/approvals/not-an-approval?tenant=${TENANT}`)).status).toBe(404);
    expect((await new Visitor().visit(`${consentUrl}/approvals/sign-in?tenant=${TENANT}&idp=0&approval=..%2F..%2Fevil`)).status).toBe(400);
  });

  it('in Chromium, on a phone, with the keyboard only: the manager signs in, reads the call, approves with a comment; the view and the audit record name him', async (ctx) => {
    const noBrowser = chromiumMissing('the approvals page in a real browser');
    if (noBrowser) return ctx.skip(noBrowser);
    const approval = await requestApproval();
    const browser = await launchChromium();
    try {
      const page = await browser.newPage({ viewport: { width: 375, height: 667 } });
      await page.goto(approvalUrl(approval));
      // The sign-in page: Tab to the IdP's link, Enter.
      await tabTo(page, (el) => el.tag === 'A' && el.text.startsWith('Sign in at'));
      await page.keyboard.press('Enter');
      await page.waitForURL((url) => url.origin === idp.issuer);
      await signInAtDemoIdp(page, 'bob', consentUrl);
      await page.waitForURL(approvalUrl(approval));

      expect(await page.getByRole('heading', { level: 1 }).textContent()).toBe('Submit an expense');
      expect(await page.locator('.state').textContent()).toBe('Waiting for your decision');
      const text = (await page.locator('main').innerText()).replace(/\s+/g, ' ');
      expect(text).toContain('Signed in as Bob Example (bob)');
      for (const fact of ['Tool Submit an expense finance___submit_expense', 'Target finance', 'Agent expense-agent', 'Acting for sarah', 'Amount 250', 'Currency EUR', 'Description Team dinner with the Initech account', approval.bindingMessage]) {
        expect(text, fact).toContain(fact);
      }
      expect(text).toMatch(new RegExp(`Expires ${approval.expiresAt.slice(0, 10)} ${approval.expiresAt.slice(11, 16)} UTC \\(in (9|10) minutes\\)`));
      // Nothing wider than the phone.
      expect(await page.evaluate('document.documentElement.scrollWidth <= window.innerWidth')).toBe(true);
      await mkdir(SCREENSHOTS, { recursive: true });
      await page.screenshot({ path: `${SCREENSHOTS}/approval-page.png`, fullPage: true });

      // The comment field has its label; Tab reaches it, then Approve, which shows where focus is.
      await tabTo(page, (el) => el.tag === 'TEXTAREA');
      expect(await page.evaluate('document.activeElement.labels[0].textContent')).toContain('Comment');
      await page.keyboard.type('Within the team budget.');
      await tabTo(page, (el) => el.tag === 'BUTTON' && el.text === 'Approve');
      expect(await page.evaluate('getComputedStyle(document.activeElement).outlineStyle')).toBe('solid');
      await page.keyboard.press('Enter');
      await page.waitForLoadState();
      await expect.poll(async () => (await page.locator('main').innerText()).replace(/\s+/g, ' ')).toContain('Approved by Bob Example (bob)');
      expect(await page.locator('main').innerText()).toContain('Within the team budget.');
      expect(await page.getByRole('button', { name: 'Approve' }).count()).toBe(0);

      const decided = await h.bus.request(approvalGetEndpoint, { tenant: TENANT, id: approval.id });
      expect(decided).toMatchObject({ state: 'approved', comment: 'Within the team budget.', decidedBy: { iss: idp.issuer, sub: 'bob', displayName: 'Bob Example' } });
      await expect.poll(() => h.audit.find((r) => r.service === 'policy' && r.action === 'approval-decide' && r.target?.resource === approval.id)).toBeTruthy();
      const record = h.audit.find((r) => r.service === 'policy' && r.action === 'approval-decide' && r.target?.resource === approval.id)!;
      expect(record.actor.user).toEqual({ iss: idp.issuer, sub: 'bob' });
      expect(record.details).toMatchObject({ decision: 'approved', comment: 'Within the team budget.' });

      // The list: the decided request below, as a link, nothing waiting on top for it.
      await page.goto(`${consentUrl}/approvals?tenant=${TENANT}`);
      const list = await page.locator('main').innerText();
      expect(list.indexOf('Recently decided')).toBeGreaterThan(list.indexOf('Waiting for your decision'));
      expect(await page.locator(`a[href="/approvals/${approval.id}?tenant=${TENANT}"]`).count()).toBe(1);
    } finally {
      await browser.close();
    }
  }, 90_000);

  it('the list shows what waits for this approver first, each a link; the user the agent acts for has nothing to decide', async () => {
    const waiting = await requestApproval();
    const bob = await signedIn('bob', `${consentUrl}/approvals?tenant=${TENANT}`);
    const html = await (await bob.visit(`${consentUrl}/approvals?tenant=${TENANT}`)).text();
    const [open = '', decided = ''] = html.split('Recently decided');
    expect(open).toContain(`<a href="/approvals/${waiting.id}?tenant&#61;${TENANT}">Submit an expense</a>`);
    expect(decided).not.toContain(waiting.id);
    const sarahs = await signedIn('sarah', `${consentUrl}/approvals?tenant=${TENANT}`);
    expect(textOf(await (await sarahs.visit(`${consentUrl}/approvals?tenant=${TENANT}`)).text())).toContain('Nothing waits for your decision.');
  });

  it('a non-approver sees the request read-only and no buttons; a forged POST, even with a valid token, is refused by the policy service and changes nothing', async () => {
    const approval = await requestApproval();
    const visitor = await signedIn('sarah', approvalUrl(approval));
    const page = await visitor.visit(approvalUrl(approval));
    expect(page.status).toBe(200);
    const html = await page.text();
    expect(textOf(html)).toContain('You cannot decide this. It waits for members of the group “finance”.');
    expect(textOf(html)).toContain('Amount 250');
    expect(html).not.toMatch(/value="approve"|value="deny"|<textarea/);

    const forged = await visitor.visit(approvalUrl(approval), { csrf: csrfFor(visitor, `${TENANT}/approval/${approval.id}`), decision: 'approve', comment: 'fine by me' }, sameOrigin());
    expect(forged.status).toBe(403);
    expect(textOf(await forged.text())).toContain('You cannot decide this request');
    expect(await stateOf(approval)).toBe('requested');
    await expect.poll(() => h.audit.find((r) => r.action === 'approval-refuse' && r.target?.resource === approval.id)).toBeTruthy();
    expect(h.audit.find((r) => r.action === 'approval-refuse' && r.target?.resource === approval.id)).toMatchObject({ reason: 'not_an_approver', actor: { user: { sub: 'sarah' } } });

    // Someone else's request (another user, other approvers) is not even shown to her: not found, nothing of it on the page.
    const other = await requestApproval({ user: { iss: idp.issuer, sub: 'carol' }, approvers: [{ kind: 'role', name: 'cfo' }], arguments: [{ name: 'amount', title: 'Amount', value: '777' }] });
    const hidden = await visitor.visit(approvalUrl(other));
    expect(hidden.status).toBe(404);
    expect(await hidden.text()).not.toMatch(/777|carol|Submit an expense/);
    const forgedHidden = await visitor.visit(approvalUrl(other), { csrf: csrfFor(visitor, `${TENANT}/approval/${other.id}`), decision: 'deny' }, sameOrigin());
    expect(forgedHidden.status).toBe(404);
    expect(await stateOf(other)).toBe('requested');
  });

  it('deny, with a comment: the page shows the decision and no buttons; deciding again is refused', async () => {
    const approval = await requestApproval();
    const bob = await signedIn('bob', approvalUrl(approval));
    const html = await (await bob.visit(approvalUrl(approval))).text();
    const csrf = /name="csrf" value="([^"]+)"/.exec(html.split('<textarea')[0]!.split('<form').at(-1)!)?.[1];
    expect(csrf).toBeTruthy();
    const denied = await bob.visit(approvalUrl(approval), { csrf: decodeAttribute(csrf!), decision: 'deny', comment: 'Not a business expense.' }, sameOrigin());
    expect(denied.status).toBe(303);
    expect(denied.headers.get('location')).toBe(`/approvals/${approval.id}?tenant=${TENANT}`);
    expect(await h.bus.request(approvalGetEndpoint, { tenant: TENANT, id: approval.id })).toMatchObject({ state: 'denied', comment: 'Not a business expense.', decidedBy: { sub: 'bob' } });
    const after = await (await bob.visit(approvalUrl(approval))).text();
    expect(textOf(after)).toContain('Denied by Bob Example (bob)');
    expect(textOf(after)).toContain('Not a business expense.');
    expect(after).not.toMatch(/value="approve"|<textarea/);
    const again = await bob.visit(approvalUrl(approval), { csrf: decodeAttribute(csrf!), decision: 'approve' }, sameOrigin());
    expect(again.status).toBe(409);
    expect(await stateOf(approval)).toBe('denied');
  });

  it('an expired request shows that it expired, without buttons, and cannot be approved', async () => {
    const wait = Date.parse(soonExpired.expiresAt) - Date.now();
    if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait + 200));
    const bob = await signedIn('bob', approvalUrl(soonExpired));
    const html = await (await bob.visit(approvalUrl(soonExpired))).text();
    expect(textOf(html)).toContain('Expired');
    expect(textOf(html)).toContain('Nobody decided before it expired');
    expect(html).not.toMatch(/value="approve"|<textarea/);
    const late = await bob.visit(approvalUrl(soonExpired), { csrf: csrfFor(bob, `${TENANT}/approval/${soonExpired.id}`), decision: 'approve' }, sameOrigin());
    expect(late.status).toBe(409);
    expect(await stateOf(soonExpired)).toBe('expired');
  }, 30_000);

  it('refuses cross-site posts: no token, another form’s token, a foreign Origin or Sec-Fetch-Site, even with the right token; nothing changes', async () => {
    const approval = await requestApproval();
    const bob = await signedIn('bob', approvalUrl(approval));
    const rightToken = csrfFor(bob, `${TENANT}/approval/${approval.id}`);
    const attempts: [string, Record<string, string>, Record<string, string>][] = [
      ['no token', { decision: 'approve' }, sameOrigin()],
      ['the sign-out form’s token', { csrf: csrfFor(bob, `${TENANT}/sign-out`), decision: 'approve' }, sameOrigin()],
      ['another request’s token', { csrf: csrfFor(bob, `${TENANT}/approval/${soonExpired.id}`), decision: 'approve' }, sameOrigin()],
      ['a foreign Origin', { csrf: rightToken, decision: 'approve' }, { origin: 'https://evil.example' }],
      ['another port of the same host (same-site)', { csrf: rightToken, decision: 'approve' }, { origin: 'http://127.0.0.1:1', 'sec-fetch-site': 'same-site' }],
      ['a cross-site fetch', { csrf: rightToken, decision: 'approve' }, { 'sec-fetch-site': 'cross-site' }],
    ];
    for (const [what, form, headers] of attempts) {
      const response = await bob.visit(approvalUrl(approval), form, headers);
      expect(response.status, what).toBe(403);
    }
    expect(await stateOf(approval)).toBe('requested');
    expect(h.audit.some((r) => r.action === 'approval-decide' && r.target?.resource === approval.id)).toBe(false);
  });

  it('in Chromium: another site’s page that posts the form (token and all) to the approval is refused, and a frame of the page stays empty', async (ctx) => {
    const noBrowser = chromiumMissing('cross-site posts in a real browser');
    if (noBrowser) return ctx.skip(noBrowser);
    const approval = await requestApproval();
    const bob = await signedIn('bob', approvalUrl(approval));
    const token = csrfFor(bob, `${TENANT}/approval/${approval.id}`);
    // Another port of 127.0.0.1 is the same site, so the SameSite=Lax cookie goes along: only Origin tells them apart.
    const evil: Server = createServer((_request, response) => {
      response.writeHead(200, { 'content-type': 'text/html' }).end(`<!doctype html><form method="post" action="${approvalUrl(approval)}">
<input type="hidden" name="csrf" value="${token}"><input type="hidden" name="decision" value="approve"><button type="submit">Win a prize</button></form>
<iframe src="${approvalUrl(approval)}" title="framed"></iframe>`);
    });
    await new Promise<void>((resolve) => evil.listen(0, '127.0.0.1', resolve));
    const browser = await launchChromium();
    try {
      const context = await browser.newContext({ viewport: { width: 375, height: 667 } });
      await context.addCookies([{ name: COOKIE, value: bob.cookie(consentUrl, COOKIE)!, url: consentUrl, httpOnly: true, sameSite: 'Lax' }]);
      const page = await context.newPage();
      const { port } = evil.address() as { port: number };
      await page.goto(`http://127.0.0.1:${port}/`);
      const framed = page.frames().find((frame) => frame.url().startsWith(consentUrl));
      expect(framed ? await framed.content().catch(() => '') : '').not.toContain('Submit an expense');
      const answer = page.waitForResponse((response) => response.url() === approvalUrl(approval) && response.request().method() === 'POST');
      await tabTo(page, (el) => el.tag === 'BUTTON');
      await page.keyboard.press('Enter');
      expect((await answer).status()).toBe(403);
      expect(await stateOf(approval)).toBe('requested');
    } finally {
      await browser.close();
      await new Promise((resolve) => evil.close(resolve));
    }
  }, 60_000);

  it('a sign-in is per tenant: signed in at acme, the same request id under another tenant is only a sign-in page', async () => {
    const approval = await requestApproval();
    const bob = await signedIn('bob', approvalUrl(approval));
    const elsewhere = await bob.visit(`${consentUrl}/approvals/${approval.id}?tenant=other`);
    expect(elsewhere.status).toBe(200);
    expect(await elsewhere.text()).not.toContain('Submit an expense');
  });
});
