import { createHmac, randomBytes } from 'node:crypto';
import { sameText } from '@mandate/crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { approvalIdSchema, consentSessionIdSchema, MandateError, providerNameSchema, tenantId, workloadNameSchema, type ErrorCode, type TenantId } from '@mandate/contracts';
import { HttpListener } from '@mandate/http';
import type { Logger } from '@mandate/telemetry';
import type { AccessPage } from '../domain/access.js';
import type { ApprovalsPage } from '../domain/approvals.js';
import { newBrowserId, parseDuration, type ConsentFlows, type Outcome } from '../domain/consent-flows.js';
import type { SignIn } from '../domain/sign-in.js';
import { approvalPage, approvalsListPage, approvalsSignInPage } from './approval-pages.js';
import { accessPage, confirmRevokePage, consentPage, messagePage, signInPage } from './pages.js';

const MAX_FORM_BYTES = 8 * 1024;
const OUTCOME_PAGES: Record<Extract<Outcome, { page: string }>['page'], [title: string, text: string]> = {
  granted: ['Access granted', 'You may close this window.'],
  denied: ['Access denied', 'Nothing was shared. You may close this window.'],
  failed: ['Not completed', 'The provider did not grant access; nothing was stored. You may close this window.'],
};

const STATUS_OF: Partial<Record<ErrorCode, number>> = { invalid_request: 400, unauthenticated: 401, access_denied: 403, not_found: 404, conflict: 409, rate_limited: 429, provider_error: 502, unavailable: 503 };
/** Texts by `details.reason`, where one code covers several situations. */
const TEXT_OF_REASON: Record<string, string> = {
  binding_mismatch: 'This request was made for another account. Nothing was shared. If it reached you from someone else, ignore it.',
  no_sign_in: 'This request can only be completed through the application that asked for it.',
  not_signed_in: 'Your sign-in has ended. Reload the page to sign in again.',
  no_tenant:
    'This address does not say which organisation: add ?tenant= and its tenant id, e.g. /access?tenant=default on a system started with npm start. The application that sent you here, or your administrator, can tell you yours.',
  no_approvals_tenant:
    'This address does not say which organisation: add ?tenant= and its tenant id, e.g. /approvals?tenant=default on a system started with npm start. The message that sent you here, or your administrator, can tell you yours.',
  approval_not_found: 'There is no such approval request, or it is not one you may see. Check the link you were sent.',
  not_an_approver: 'You cannot decide this request: it waits for someone else. Nothing was changed.',
  approval_closed: 'This request was already decided, or has expired. Reload it to see where it stands.',
  cross_site: 'This form was not sent from this site. Nothing was changed. Open the page again and decide there.',
};
const TEXT_OF: Partial<Record<ErrorCode, string>> = {
  unauthenticated: 'Sign in first: reload the page.',
  invalid_request: 'The request was not valid. Start again from the application.',
  access_denied: 'This response does not belong to this browser, or was already used. Start again from the application.',
  not_found: 'This consent request does not exist or has expired. Start again from the application.',
  conflict: 'This consent request is already finished.',
  provider_error: 'The provider could not be reached or refused the request.',
};

/** A page's handlers by method; the keys, in order, are its 405's `allow` header. */
type Route = Partial<Record<'GET' | 'HEAD' | 'POST', () => Promise<void>>>;

export interface ConsentHttpOptions {
  publicUrl: string;
  csrfKey: Buffer;
  logger: Logger;
  /** How long the browser cookie lives (as long as a sign-in). */
  signedInSeconds: number;
}

/**
 * The consent, "My access" and approvals pages over node:http (`#route` lists them). Every response carries the security headers;
 * every POST a CSRF token bound to the browser cookie; nothing a browser sends decides where it is redirected.
 */
export class ConsentHttpServer extends HttpListener {
  readonly #secure: boolean;
  readonly #cookieName: string;
  readonly #origin: string;

  constructor(
    private readonly flows: ConsentFlows,
    private readonly access: AccessPage,
    private readonly approvals: ApprovalsPage,
    private readonly signIn: SignIn,
    private readonly options: ConsentHttpOptions,
  ) {
    super((request, response) => {
      const nonce = randomBytes(16).toString('base64url');
      response.setHeader('content-security-policy', `default-src 'none'; style-src 'nonce-${nonce}'; img-src 'self'; base-uri 'none'; frame-ancestors 'none'`);
      this.#handle(request, response, nonce).catch((error: unknown) => this.#fail(response, nonce, error));
    });
    this.#secure = new URL(options.publicUrl).protocol === 'https:';
    this.#origin = new URL(options.publicUrl).origin;
    this.#cookieName = this.#secure ? '__Host-mandate-consent' : 'mandate-consent';
  }

  async #handle(request: IncomingMessage, response: ServerResponse, nonce: string): Promise<void> {
    const url = new URL(request.url ?? '/', 'http://consent.invalid');
    const route = this.#route(request, response, nonce, url);
    if (!route) return sendHtml(response, 404, messagePage(nonce, 'Not found', 'There is nothing here.'));
    const handler = Object.hasOwn(route, request.method ?? '') ? route[request.method as keyof Route] : undefined;
    return handler ? handler() : void response.writeHead(405, { allow: Object.keys(route).join(', ') }).end();
  }

  /** The page at `url`. Consent and "My access" URLs are refused for a bad session or tenant before their method is looked at. */
  #route(request: IncomingMessage, response: ServerResponse, nonce: string, url: URL): Route | undefined {
    const consent = /^\/consent\/([^/]+)$/.exec(url.pathname);
    if (consent) {
      const sessionId = consentSessionIdSchema.safeParse(consent[1]);
      if (!sessionId.success) throw new MandateError('not_found', 'no such consent session');
      const tenant = tenantOf(url);
      const show = () => this.#showConsent(request, response, nonce, tenant, sessionId.data);
      return { GET: show, HEAD: show, POST: () => this.#decide(request, response, nonce, tenant, sessionId.data) };
    }
    if (url.pathname === '/access') {
      const tenant = accessTenantOf(url);
      const show = () => this.#showAccess(request, response, nonce, tenant);
      return { GET: show, HEAD: show, POST: () => this.#revoke(request, response, nonce, tenant) };
    }
    const approvals = this.#approvalRoute(request, response, nonce, url);
    if (approvals) return approvals;
    const confirmRevoke = () => this.#confirmRevoke(request, response, nonce, tenantOf(url), url.searchParams);
    const routes: Record<string, Route> = {
      '/callback': { GET: async () => this.#finish(response, nonce, await this.flows.callback(url.searchParams, this.#browserId(request))) },
      '/login/callback': { GET: () => this.#signedIn(request, response, url) },
      '/sign-out': { POST: () => this.#signOut(request, response, nonce, tenantOf(url)) },
      '/access/sign-in': { GET: async () => seeOther(response, await this.access.startSignIn(tenantOf(url), this.#ensureBrowserId(request, response), url.searchParams.get('idp'))) },
      '/access/revoke': { GET: confirmRevoke, HEAD: confirmRevoke },
    };
    return Object.hasOwn(routes, url.pathname) ? routes[url.pathname] : undefined;
  }

  async #showConsent(request: IncomingMessage, response: ServerResponse, nonce: string, tenant: TenantId, sessionId: string): Promise<void> {
    const browserId = this.#ensureBrowserId(request, response);
    const view = await this.flows.page(tenant, sessionId, browserId);
    if ('redirect' in view) return seeOther(response, view.redirect);
    sendHtml(response, 200, consentPage({ nonce, form: { action: withTenant(`/consent/${sessionId}`, tenant), csrf: this.#csrf(browserId, `${tenant}/${sessionId}`) }, ...view }));
  }

  async #decide(request: IncomingMessage, response: ServerResponse, nonce: string, tenant: TenantId, sessionId: string): Promise<void> {
    const posted = await this.#postedForm(request, response, nonce, `${tenant}/${sessionId}`, 'consent');
    if (!posted) return;
    const decision = posted.form.get('decision');
    if (decision === 'approve') return seeOther(response, await this.flows.approve(tenant, sessionId, posted.browserId, parseDuration(posted.form.get('duration') ?? undefined)));
    if (decision === 'deny') return this.#finish(response, nonce, await this.flows.deny(tenant, sessionId, posted.browserId));
    throw new MandateError('invalid_request', 'choose approve or deny');
  }

  #finish(response: ServerResponse, nonce: string, outcome: Outcome): void {
    if ('redirect' in outcome) return seeOther(response, outcome.redirect);
    sendHtml(response, 200, messagePage(nonce, ...OUTCOME_PAGES[outcome.page]));
  }

  async #signedIn(request: IncomingMessage, response: ServerResponse, url: URL): Promise<void> {
    // A fresh cookie for the signed-in browser: a cookie planted before the sign-in is worth nothing after it.
    const signedIn = newBrowserId();
    const { returnPath } = await this.signIn.finish(url.searchParams, this.#browserId(request), signedIn);
    seeOther(response, returnPath, { 'set-cookie': this.#cookie(signedIn) });
  }

  async #signOut(request: IncomingMessage, response: ServerResponse, nonce: string, tenant: TenantId): Promise<void> {
    const posted = await this.#postedForm(request, response, nonce, `${tenant}/sign-out`, 'sign-out');
    if (!posted) return;
    await this.signIn.signOut(tenant, posted.browserId);
    sendHtml(response, 200, messagePage(nonce, 'Signed out', 'You are signed out. You may close this window.'));
  }

  async #showAccess(request: IncomingMessage, response: ServerResponse, nonce: string, tenant: TenantId): Promise<void> {
    const browserId = this.#browserId(request);
    const view = await this.access.view(tenant, browserId);
    if ('signInAt' in view) return sendHtml(response, 200, signInPage(nonce, tenant, view.signInAt));
    // Signed in, so the browser has its cookie.
    const target = (path: string, form: string) => ({ action: withTenant(path, tenant), csrf: this.#csrf(browserId!, `${tenant}/${form}`) });
    sendHtml(response, 200, accessPage({ nonce, tenant, confirmRevoke: '/access/revoke', signOut: target('/sign-out', 'sign-out'), ...view }));
  }

  /** Revoking asks first: this page (a GET, changing nothing) holds the CSRF-protected form that revokes. */
  async #confirmRevoke(request: IncomingMessage, response: ServerResponse, nonce: string, tenant: TenantId, query: URLSearchParams): Promise<void> {
    const { workload, provider } = revocationOf(query);
    const browserId = this.#browserId(request);
    const revocation = await this.access.revocation(tenant, browserId, workload, provider);
    // Not signed in (any more), or nothing left to revoke: "My access" shows where things stand.
    if (!revocation || revocation.grants.length === 0) return seeOther(response, withTenant('/access', tenant));
    const revoke = { action: withTenant('/access', tenant), csrf: this.#csrf(browserId!, `${tenant}/access`) };
    sendHtml(response, 200, confirmRevokePage({ nonce, revoke, back: withTenant('/access', tenant), workload, provider, grants: revocation.grants }));
  }

  async #revoke(request: IncomingMessage, response: ServerResponse, nonce: string, tenant: TenantId): Promise<void> {
    const posted = await this.#postedForm(request, response, nonce, `${tenant}/access`, 'access');
    if (!posted) return;
    const { workload, provider } = revocationOf(posted.form);
    await this.access.revoke(tenant, posted.browserId, workload, provider);
    seeOther(response, withTenant('/access', tenant));
  }

  /** The approvals pages: the list, one request (shown, and decided by POST), and signing in to them. */
  #approvalRoute(request: IncomingMessage, response: ServerResponse, nonce: string, url: URL): Route | undefined {
    if (url.pathname === '/approvals') {
      const tenant = approvalsTenantOf(url);
      const show = () => this.#showApprovals(request, response, nonce, tenant);
      return { GET: show, HEAD: show };
    }
    if (url.pathname === '/approvals/sign-in') {
      return { GET: () => this.#startApprovalSignIn(request, response, url) };
    }
    const one = /^\/approvals\/([^/]+)$/.exec(url.pathname);
    if (!one) return undefined;
    const id = approvalIdSchema.safeParse(one[1]);
    if (!id.success) throw new MandateError('not_found', 'no such approval request', { details: { reason: 'approval_not_found' } });
    const tenant = approvalsTenantOf(url);
    const show = () => this.#showApproval(request, response, nonce, tenant, id.data);
    return { GET: show, HEAD: show, POST: () => this.#decideApproval(request, response, nonce, tenant, id.data) };
  }

  async #showApprovals(request: IncomingMessage, response: ServerResponse, nonce: string, tenant: TenantId): Promise<void> {
    const browserId = this.#browserId(request);
    const view = await this.approvals.list(tenant, browserId);
    if ('signInAt' in view) return sendHtml(response, 200, approvalsSignInPage(nonce, tenant, view.signInAt, undefined));
    // Signed in, so the browser has its cookie.
    sendHtml(response, 200, approvalsListPage({ nonce, now: this.approvals.now(), signOut: this.#signOutTarget(browserId!, tenant), ...view }));
  }

  async #showApproval(request: IncomingMessage, response: ServerResponse, nonce: string, tenant: TenantId, id: string): Promise<void> {
    const browserId = this.#browserId(request);
    const view = await this.approvals.view(tenant, browserId, id);
    if ('signInAt' in view) return sendHtml(response, 200, approvalsSignInPage(nonce, tenant, view.signInAt, id));
    const path = `/approvals/${id}`;
    const decide = { action: withTenant(path, tenant), csrf: this.#csrf(browserId!, `${tenant}/approval/${id}`) };
    sendHtml(response, 200, approvalPage({ nonce, now: this.approvals.now(), decide, back: withTenant('/approvals', tenant), signOut: this.#signOutTarget(browserId!, tenant), ...view }));
  }

  async #startApprovalSignIn(request: IncomingMessage, response: ServerResponse, url: URL): Promise<void> {
    const tenant = approvalsTenantOf(url);
    const approval = url.searchParams.get('approval');
    const id = approval === null ? undefined : approvalIdSchema.safeParse(approval);
    if (id && !id.success) throw new MandateError('invalid_request', 'not an approval id');
    seeOther(response, await this.approvals.startSignIn(tenant, this.#ensureBrowserId(request, response), url.searchParams.get('idp'), id?.data));
  }

  /** Approve or deny: only from this site (before the form is read), with this page's CSRF token, as the signed-in person; back to the request after. */
  async #decideApproval(request: IncomingMessage, response: ServerResponse, nonce: string, tenant: TenantId, id: string): Promise<void> {
    if (!this.#sentFromThisSite(request)) {
      this.options.logger.warn({ form: 'approval' }, 'refused a cross-site POST');
      throw new MandateError('access_denied', 'a form from another site', { details: { reason: 'cross_site' } });
    }
    const posted = await this.#postedForm(request, response, nonce, `${tenant}/approval/${id}`, 'approval');
    if (!posted) return;
    const decision = posted.form.get('decision');
    if (decision !== 'approve' && decision !== 'deny') throw new MandateError('invalid_request', 'choose approve or deny');
    await this.approvals.decide(tenant, posted.browserId, id, decision, posted.form.get('comment') ?? undefined);
    seeOther(response, withTenant(`/approvals/${id}`, tenant));
  }

  /**
   * What the browser says about where a POST comes from. `Sec-Fetch-Site` must be `same-origin`
   * (another port of this host is `same-site`, and gets the SameSite=Lax cookie, so only this tells
   * it apart); without it, an `Origin` must be this service's. Our `Referrer-Policy: no-referrer`
   * makes browsers send `Origin: null` for our own forms, so `null` proves nothing either way, and a
   * browser that sends neither (or a script without the cookie) still needs the CSRF token.
   */
  #sentFromThisSite(request: IncomingMessage): boolean {
    const site = request.headers['sec-fetch-site'];
    if (site !== undefined) return site === 'same-origin';
    const origin = request.headers.origin;
    return origin === undefined || origin === 'null' || origin === this.#origin;
  }

  #signOutTarget(browserId: string, tenant: TenantId) {
    return { action: withTenant('/sign-out', tenant), csrf: this.#csrf(browserId, `${tenant}/sign-out`) };
  }

  /** The POSTed form if it carries this browser's CSRF token for `csrfForm`; if not, it answers 403 itself and returns nothing. */
  async #postedForm(request: IncomingMessage, response: ServerResponse, nonce: string, csrfForm: string, logAs: string): Promise<{ form: URLSearchParams; browserId: string } | undefined> {
    const form = await readForm(request);
    const browserId = this.#browserId(request);
    if (browserId && sameText(form.get('csrf') ?? '', this.#csrf(browserId, csrfForm))) return { form, browserId };
    this.options.logger.warn({ form: logAs }, 'refused a POST without a valid CSRF token');
    sendHtml(response, 403, messagePage(nonce, 'Refused', 'This form was not sent from this page in this browser. Reload the page and try again.'));
    return undefined;
  }

  #fail(response: ServerResponse, nonce: string, error: unknown): void {
    const code: ErrorCode = error instanceof MandateError ? error.code : 'internal';
    if (code === 'internal' || code === 'unavailable') this.options.logger.error({ err: error }, 'consent request failed');
    if (response.headersSent) return void response.destroy();
    const reason = error instanceof MandateError ? (error.details as { reason?: unknown } | undefined)?.reason : undefined;
    const text = (typeof reason === 'string' ? TEXT_OF_REASON[reason] : undefined) ?? TEXT_OF[code] ?? 'Please try again later.';
    sendHtml(response, STATUS_OF[code] ?? 500, messagePage(nonce, code === 'access_denied' ? 'Not allowed' : 'Something went wrong', text));
  }

  /** The browser's id cookie, set now if it has none. */
  #ensureBrowserId(request: IncomingMessage, response: ServerResponse): string {
    const existing = this.#browserId(request);
    if (existing) return existing;
    const browserId = newBrowserId();
    response.setHeader('set-cookie', this.#cookie(browserId));
    return browserId;
  }

  #browserId(request: IncomingMessage): string | undefined {
    for (const part of (request.headers.cookie ?? '').split(';')) {
      const [name, value] = part.trim().split('=', 2);
      if (name === this.#cookieName && value && /^[A-Za-z0-9_-]{43}$/.test(value)) return value;
    }
    return undefined;
  }

  #cookie(value: string): string {
    return `${this.#cookieName}=${value}; Path=/; HttpOnly; SameSite=Lax; Max-Age=${this.options.signedInSeconds}${this.#secure ? '; Secure' : ''}`;
  }

  /** Signed double-submit: only a page served to this browser (its cookie) for this form (`<tenant>/<session>` or `<tenant>/access`) has it. */
  #csrf(browserId: string, form: string): string {
    return createHmac('sha256', this.options.csrfKey).update(`csrf\n${browserId}\n${form}`).digest('base64url');
  }
}

const tenantOf = (url: URL): TenantId => tenantId(url.searchParams.get('tenant') ?? '');

/** "My access" is reached by typing its address, so a missing or wrong tenant is explained, not just refused. */
function accessTenantOf(url: URL): TenantId {
  try {
    return tenantOf(url);
  } catch (error) {
    throw new MandateError('invalid_request', 'My access needs a tenant', { cause: error, details: { reason: 'no_tenant' } });
  }
}
/** The approvals pages are reached from a link in a message, so a missing or wrong tenant is explained too. */
function approvalsTenantOf(url: URL): TenantId {
  try {
    return tenantOf(url);
  } catch (error) {
    throw new MandateError('invalid_request', 'the approvals page needs a tenant', { cause: error, details: { reason: 'no_approvals_tenant' } });
  }
}
const withTenant = (path: string, tenant: TenantId): string => `${path}?tenant=${encodeURIComponent(tenant)}`;

/** Which access to revoke: all of a workload's, or only one provider's. */
function revocationOf(fields: URLSearchParams): { workload: string; provider: string | undefined } {
  const workload = workloadNameSchema.safeParse(fields.get('workload'));
  const provider = fields.get('provider') ? providerNameSchema.safeParse(fields.get('provider')) : undefined;
  if (!workload.success || (provider && !provider.success)) throw new MandateError('invalid_request', 'choose an access to revoke');
  return { workload: workload.data, provider: provider?.data };
}

/** node:http leaves the body out when it answers a HEAD. */
function sendHtml(response: ServerResponse, status: number, html: string): void {
  response.writeHead(status, { 'content-type': 'text/html; charset=utf-8' }).end(html);
}

function seeOther(response: ServerResponse, location: string, headers: Record<string, string> = {}): void {
  response.writeHead(303, { location, ...headers }).end();
}

async function readForm(request: IncomingMessage): Promise<URLSearchParams> {
  if (!(request.headers['content-type'] ?? '').startsWith('application/x-www-form-urlencoded')) throw new MandateError('invalid_request', 'expected a form');
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of request as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_FORM_BYTES) throw new MandateError('invalid_request', 'form too large');
    chunks.push(chunk);
  }
  return new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
}
