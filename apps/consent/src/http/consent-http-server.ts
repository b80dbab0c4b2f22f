import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { consentSessionIdSchema, MandateError, providerNameSchema, tenantId, workloadNameSchema, type ErrorCode, type TenantId } from '@mandate/contracts';
import { HttpListener } from '@mandate/http';
import type { Logger } from '@mandate/telemetry';
import type { AccessPage } from '../domain/access.js';
import { DURATION_CHOICES, newBrowserId, parseDuration, type ConsentFlows, type Outcome } from '../domain/consent-flows.js';
import type { SignIn } from '../domain/sign-in.js';
import { accessPage, consentPage, messagePage, signInPage } from './pages.js';

const MAX_FORM_BYTES = 8 * 1024;
const DURATION_LABELS: Record<(typeof DURATION_CHOICES)[number], string> = {
  once: 'This time only',
  '1': 'For 1 day',
  '7': 'For 7 days',
  '30': 'For 30 days',
  '90': 'For 90 days',
  'until-revoked': 'Until I revoke it',
};

const STATUS_OF: Partial<Record<ErrorCode, number>> = { invalid_request: 400, unauthenticated: 401, access_denied: 403, not_found: 404, conflict: 409, rate_limited: 429, provider_error: 502, unavailable: 503 };
/** Texts by `details.reason`, where one code covers several situations. */
const TEXT_OF_REASON: Record<string, string> = {
  binding_mismatch: 'This request was made for another account. Nothing was shared. If it reached you from someone else, ignore it.',
  no_sign_in: 'This request can only be completed through the application that asked for it.',
  not_signed_in: 'Your sign-in has ended. Reload the page to sign in again.',
};
const TEXT_OF: Partial<Record<ErrorCode, string>> = {
  unauthenticated: 'Sign in first: reload the page.',
  invalid_request: 'The request was not valid. Start again from the application.',
  access_denied: 'This response does not belong to this browser, or was already used. Start again from the application.',
  not_found: 'This consent request does not exist or has expired. Start again from the application.',
  conflict: 'This consent request is already finished.',
  provider_error: 'The provider could not be reached or refused the request.',
};

export interface ConsentHttpOptions {
  publicUrl: string;
  csrfKey: Buffer;
  logger: Logger;
  /** How long the browser cookie lives (as long as a sign-in). */
  signedInSeconds: number;
}

/**
 * The consent pages over node:http: GET/POST /consent/<sessionId>?tenant=<tenant>, GET /callback
 * (the provider's redirect), GET /login/callback (the IdP's), GET/POST /access?tenant=<tenant>
 * ("My access"). Every response carries the security headers; every POST a CSRF token bound to
 * the browser cookie; nothing a browser sends decides where it is redirected.
 */
export class ConsentHttpServer extends HttpListener {
  readonly #secure: boolean;
  readonly #cookieName: string;

  constructor(
    private readonly flows: ConsentFlows,
    private readonly access: AccessPage,
    private readonly signIn: SignIn,
    private readonly options: ConsentHttpOptions,
  ) {
    super((request, response) => {
      const nonce = randomBytes(16).toString('base64url');
      response.setHeader('content-security-policy', `default-src 'none'; style-src 'nonce-${nonce}'; img-src 'self'; base-uri 'none'; frame-ancestors 'none'`);
      this.#handle(request, response, nonce).catch((error: unknown) => this.#fail(response, nonce, error));
    });
    this.#secure = new URL(options.publicUrl).protocol === 'https:';
    this.#cookieName = this.#secure ? '__Host-mandate-consent' : 'mandate-consent';
  }

  async #handle(request: IncomingMessage, response: ServerResponse, nonce: string): Promise<void> {
    const url = new URL(request.url ?? '/', 'http://consent.invalid');
    const consent = /^\/consent\/([^/]+)$/.exec(url.pathname);
    if (consent) {
      const sessionId = consentSessionIdSchema.safeParse(consent[1]);
      if (!sessionId.success) throw new MandateError('not_found', 'no such consent session');
      const tenant = tenantId(url.searchParams.get('tenant') ?? '');
      if (request.method === 'GET' || request.method === 'HEAD') return this.#showConsent(request, response, nonce, tenant, sessionId.data, url);
      if (request.method === 'POST') return this.#decide(request, response, nonce, tenant, sessionId.data);
      return void response.writeHead(405, { allow: 'GET, HEAD, POST' }).end();
    }
    if (url.pathname === '/callback') {
      if (request.method !== 'GET') return void response.writeHead(405, { allow: 'GET' }).end();
      const outcome = await this.flows.callback(url.searchParams, this.#browserId(request));
      return this.#finish(response, nonce, outcome);
    }
    if (url.pathname === '/login/callback') {
      if (request.method !== 'GET') return void response.writeHead(405, { allow: 'GET' }).end();
      // A fresh cookie for the signed-in browser: a cookie planted before the sign-in is worth nothing after it.
      const signedIn = newBrowserId();
      const { returnPath } = await this.signIn.finish(url.searchParams, this.#browserId(request), signedIn);
      return void response.writeHead(303, { location: returnPath, 'set-cookie': this.#cookie(signedIn) }).end();
    }
    if (url.pathname === '/sign-out') {
      if (request.method !== 'POST') return void response.writeHead(405, { allow: 'POST' }).end();
      const tenant = tenantId(url.searchParams.get('tenant') ?? '');
      const form = await readForm(request);
      const browserId = this.#browserId(request);
      if (!browserId || !sameText(form.get('csrf') ?? '', this.#csrf(browserId, `${tenant}/sign-out`))) return this.#refuseCsrf(response, nonce, 'sign-out');
      await this.signIn.signOut(tenant, browserId);
      return void response.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end(messagePage(nonce, 'Signed out', 'You are signed out. You may close this window.'));
    }
    if (url.pathname === '/access/sign-in') {
      if (request.method !== 'GET') return void response.writeHead(405, { allow: 'GET' }).end();
      const tenant = tenantId(url.searchParams.get('tenant') ?? '');
      const location = await this.access.startSignIn(tenant, this.#ensureBrowserId(request, response), url.searchParams.get('idp'));
      return void response.writeHead(303, { location }).end();
    }
    if (url.pathname === '/access') {
      const tenant = tenantId(url.searchParams.get('tenant') ?? '');
      if (request.method === 'GET' || request.method === 'HEAD') return this.#showAccess(request, response, nonce, tenant);
      if (request.method === 'POST') return this.#revoke(request, response, nonce, tenant);
      return void response.writeHead(405, { allow: 'GET, HEAD, POST' }).end();
    }
    response.writeHead(404, { 'content-type': 'text/html; charset=utf-8' }).end(messagePage(nonce, 'Not found', 'There is nothing here.'));
  }

  async #showConsent(request: IncomingMessage, response: ServerResponse, nonce: string, tenant: TenantId, sessionId: string, url: URL): Promise<void> {
    const browserId = this.#ensureBrowserId(request, response);
    const view = await this.flows.page(tenant, sessionId, browserId);
    if ('redirect' in view) return void response.writeHead(303, { location: view.redirect }).end();
    const { session, workload } = view;
    const html = consentPage({
      nonce,
      action: `${url.pathname}?tenant=${encodeURIComponent(tenant)}`,
      csrf: this.#csrf(browserId, `${tenant}/${sessionId}`),
      session,
      workload,
      durations: DURATION_CHOICES.map((value) => ({ value, label: DURATION_LABELS[value] })),
    });
    response.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end(request.method === 'HEAD' ? undefined : html);
  }

  async #showAccess(request: IncomingMessage, response: ServerResponse, nonce: string, tenant: TenantId): Promise<void> {
    const browserId = this.#browserId(request);
    const view = await this.access.view(tenant, browserId);
    const html =
      'signInAt' in view
        ? signInPage(nonce, tenant, view.signInAt)
        : accessPage({
            nonce,
            action: `/access?tenant=${encodeURIComponent(tenant)}`,
            csrf: this.#csrf(browserId!, `${tenant}/access`),
            signOut: { action: `/sign-out?tenant=${encodeURIComponent(tenant)}`, csrf: this.#csrf(browserId!, `${tenant}/sign-out`) },
            user: view.user,
            grants: view.grants,
          });
    response.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end(request.method === 'HEAD' ? undefined : html);
  }

  async #revoke(request: IncomingMessage, response: ServerResponse, nonce: string, tenant: TenantId): Promise<void> {
    const form = await readForm(request);
    const browserId = this.#browserId(request);
    if (!browserId || !sameText(form.get('csrf') ?? '', this.#csrf(browserId, `${tenant}/access`))) return this.#refuseCsrf(response, nonce, 'access');
    const workload = workloadNameSchema.safeParse(form.get('workload'));
    const provider = form.get('provider') ? providerNameSchema.safeParse(form.get('provider')) : undefined;
    if (!workload.success || (provider && !provider.success)) throw new MandateError('invalid_request', 'choose an access to revoke');
    await this.access.revoke(tenant, browserId, workload.data, provider?.data);
    response.writeHead(303, { location: `/access?tenant=${encodeURIComponent(tenant)}` }).end();
  }

  async #decide(request: IncomingMessage, response: ServerResponse, nonce: string, tenant: TenantId, sessionId: string): Promise<void> {
    const form = await readForm(request);
    const browserId = this.#browserId(request);
    const token = form.get('csrf') ?? '';
    if (!browserId || !sameText(token, this.#csrf(browserId, `${tenant}/${sessionId}`))) return this.#refuseCsrf(response, nonce, 'consent');
    const decision = form.get('decision');
    if (decision === 'approve') {
      const location = await this.flows.approve(tenant, sessionId, browserId, parseDuration(form.get('duration') ?? undefined));
      return void response.writeHead(303, { location }).end();
    }
    if (decision === 'deny') return this.#finish(response, nonce, await this.flows.deny(tenant, sessionId, browserId));
    throw new MandateError('invalid_request', 'choose approve or deny');
  }

  #refuseCsrf(response: ServerResponse, nonce: string, form: string): void {
    this.options.logger.warn({ form }, 'refused a POST without a valid CSRF token');
    response.writeHead(403, { 'content-type': 'text/html; charset=utf-8' }).end(messagePage(nonce, 'Refused', 'This form was not sent from this page in this browser. Reload the page and try again.'));
  }

  #finish(response: ServerResponse, nonce: string, outcome: Outcome): void {
    if ('redirect' in outcome) return void response.writeHead(303, { location: outcome.redirect }).end();
    const [title, text] =
      outcome.page === 'granted'
        ? ['Access granted', 'You may close this window.']
        : outcome.page === 'denied'
          ? ['Access denied', 'Nothing was shared. You may close this window.']
          : ['Not completed', 'The provider did not grant access; nothing was stored. You may close this window.'];
    response.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end(messagePage(nonce, title, text));
  }

  #fail(response: ServerResponse, nonce: string, error: unknown): void {
    const code: ErrorCode = error instanceof MandateError ? error.code : 'internal';
    if (code === 'internal' || code === 'unavailable') this.options.logger.error({ err: error }, 'consent request failed');
    if (response.headersSent) return void response.destroy();
    const reason = error instanceof MandateError ? (error.details as { reason?: unknown } | undefined)?.reason : undefined;
    const text = (typeof reason === 'string' ? TEXT_OF_REASON[reason] : undefined) ?? TEXT_OF[code] ?? 'Please try again later.';
    response.writeHead(STATUS_OF[code] ?? 500, { 'content-type': 'text/html; charset=utf-8' }).end(messagePage(nonce, code === 'access_denied' ? 'Not allowed' : 'Something went wrong', text));
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

async function readForm(request: IncomingMessage): Promise<URLSearchParams> {
  if (!(request.headers['content-type'] ?? '').startsWith('application/x-www-form-urlencoded')) {
    throw new MandateError('invalid_request', 'expected a form');
  }
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of request) {
    size += (chunk as Buffer).length;
    if (size > MAX_FORM_BYTES) throw new MandateError('invalid_request', 'form too large');
    chunks.push(chunk as Buffer);
  }
  return new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
}

function sameText(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}
