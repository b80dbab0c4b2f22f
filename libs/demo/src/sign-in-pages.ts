import type { IncomingMessage } from 'node:http';
import type Provider from 'oidc-provider';
import { errors, type InteractionResults } from 'oidc-provider';
import { sameText } from '@mandate/crypto';
import { DEMO_PASSWORD, type DemoUser } from './demo-users.js';

/*
 * The demo authorization servers' sign-in and consent pages (oidc-provider's "interactions"):
 *
 *   GET  /interaction/<uid>        the sign-in page, or the consent page once signed in
 *   POST /interaction/<uid>        prompt=login (login, password) or prompt=consent
 *   GET  /interaction/<uid>/abort  "Cancel": the client gets access_denied
 *
 * The form fields are those of oidc-provider's development pages (`prompt`, `login`, `password`),
 * so one scripted browser signs in at either. Only the demo users get in, with the demo password,
 * which the page itself shows: nothing here is a secret.
 */

type Middleware = Parameters<Provider['use']>[0];
type Context = Parameters<Middleware>[0];

const INTERACTION_PATH = /^\/interaction\/([A-Za-z0-9_-]{1,128})(\/abort)?$/;
const MAX_FORM_BYTES = 16 * 1024;

const escapeHtml = (text: string) => text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

async function readForm(req: IncomingMessage): Promise<URLSearchParams> {
  let body = '';
  for await (const chunk of req) {
    body += (chunk as Buffer).toString('utf8');
    if (body.length > MAX_FORM_BYTES) throw new Error('form too large');
  }
  return new URLSearchParams(body);
}

function page(title: string, body: string): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><title>${escapeHtml(title)}</title>
<style>body{font-family:system-ui,sans-serif;max-width:32rem;margin:3rem auto;padding:0 1rem;color:#1f2328}label{display:block;margin:.75rem 0}input{display:block;width:100%;padding:.4rem;margin-top:.25rem}button{padding:.5rem 1.25rem;margin-top:.5rem}.demo{background:#fff8c5;border:1px solid #d4a72c;padding:.5rem .75rem}[role=alert]{color:#cf222e}</style>
</head><body><main>${body}</main></body></html>`;
}

function signInPage(title: string, uid: string, users: readonly DemoUser[], problem?: string): string {
  const names = users.map((user) => `<b>${escapeHtml(user.login)}</b>`).join(' or ');
  return page(
    `Sign in · ${title}`,
    `<h1>Sign in to ${escapeHtml(title)}</h1>
<p class="demo">A demo identity provider with demo accounts: sign in as ${names}, password <b>${escapeHtml(DEMO_PASSWORD)}</b>. Not for real credentials.</p>
${problem ? `<p role="alert">${escapeHtml(problem)}</p>` : ''}
<form method="post" action="/interaction/${uid}" autocomplete="off">
<input type="hidden" name="prompt" value="login">
<label>Login <input name="login" required autofocus></label>
<label>Password <input type="password" name="password" required></label>
<button type="submit">Sign in</button>
</form>
<p><a href="/interaction/${uid}/abort">Cancel</a></p>`,
  );
}

function consentPage(title: string, uid: string, client: string, account: string, asked: string[]): string {
  return page(
    `Allow access · ${title}`,
    `<h1>${escapeHtml(client)} asks for access</h1>
<p>Signed in to ${escapeHtml(title)} as <b>${escapeHtml(account)}</b>. ${escapeHtml(client)} asks for:</p>
<ul>${asked.map((item) => `<li>${escapeHtml(item)}</li>`).join('')}</ul>
<form method="post" action="/interaction/${uid}">
<input type="hidden" name="prompt" value="consent">
<button type="submit">Allow</button>
</form>
<p><a href="/interaction/${uid}/abort">Deny</a></p>`,
  );
}

/** What the consent prompt's details ask for, one line each. */
function askedFor(details: Record<string, unknown>): string[] {
  const asked: string[] = [];
  const oidcScopes = details['missingOIDCScope'];
  if (Array.isArray(oidcScopes)) asked.push(...oidcScopes.map((scope) => (scope === 'openid' ? 'who you are (openid)' : String(scope))));
  const resourceScopes = details['missingResourceScopes'];
  if (resourceScopes && typeof resourceScopes === 'object') {
    for (const [resource, scopes] of Object.entries(resourceScopes as Record<string, string[]>)) asked.push(...scopes.map((scope) => `${scope} at ${resource}`));
  }
  return asked.length > 0 ? asked : ['access as you'];
}

export function signInPages(provider: Provider, options: { users: readonly DemoUser[]; title: string }): Middleware {
  const { users, title } = options;

  const finish = async (ctx: Context, result: InteractionResults, mergeWithLastSubmission: boolean) => {
    ctx.redirect(await provider.interactionResult(ctx.req, ctx.res, result, { mergeWithLastSubmission }));
    ctx.status = 303;
  };

  const html = (ctx: Context, status: number, body: string) => {
    ctx.status = status;
    ctx.type = 'html';
    ctx.body = body;
  };

  const consent = async (ctx: Context) => {
    const { prompt, grantId, session, params } = await provider.interactionDetails(ctx.req, ctx.res);
    if (prompt.name !== 'consent' || !session) return html(ctx, 400, page(title, '<h1>Nothing to allow here</h1><p>Start again from the application.</p>'));
    // As oidc-provider's development pages do: the grant gets exactly what the prompt says is missing.
    const grant = (grantId ? await provider.Grant.find(grantId) : undefined) ?? new provider.Grant({ accountId: session.accountId, clientId: String(params['client_id']) });
    const details = prompt.details as { missingOIDCScope?: string[]; missingOIDCClaims?: string[]; missingResourceScopes?: Record<string, string[]> };
    if (details.missingOIDCScope) grant.addOIDCScope(details.missingOIDCScope.join(' '));
    if (details.missingOIDCClaims) grant.addOIDCClaims(details.missingOIDCClaims);
    for (const [resource, scopes] of Object.entries(details.missingResourceScopes ?? {})) grant.addResourceScope(resource, scopes.join(' '));
    await finish(ctx, { consent: { grantId: await grant.save() } }, true);
  };

  const submit = async (ctx: Context, uid: string) => {
    const form = await readForm(ctx.req);
    if (form.get('prompt') === 'consent') return consent(ctx);
    const details = await provider.interactionDetails(ctx.req, ctx.res);
    if (details.prompt.name !== 'login') return html(ctx, 400, page(title, '<h1>Already signed in</h1><p>Start again from the application.</p>'));
    const user = users.find((candidate) => candidate.login === form.get('login'));
    // Constant-time, out of habit: the password is printed on the page.
    if (!user || !sameText(form.get('password') ?? '', DEMO_PASSWORD)) return html(ctx, 401, signInPage(title, uid, users, 'Unknown login or wrong password.'));
    await finish(ctx, { login: { accountId: user.login } }, false);
  };

  const show = async (ctx: Context, uid: string) => {
    const { prompt, params, session } = await provider.interactionDetails(ctx.req, ctx.res);
    if (prompt.name === 'login') return html(ctx, 200, signInPage(title, uid, users));
    const client = await provider.Client.find(String(params['client_id']));
    html(ctx, 200, consentPage(title, uid, client?.clientName ?? String(params['client_id']), session?.accountId ?? '', askedFor(prompt.details)));
  };

  return async (ctx, next) => {
    const match = INTERACTION_PATH.exec(ctx.path);
    if (!match) return next();
    const [, uid = '', abort] = match;
    try {
      if (abort && ctx.method === 'GET') return await finish(ctx, { error: 'access_denied', error_description: 'End-User aborted interaction' }, false);
      if (!abort && ctx.method === 'GET') return await show(ctx, uid);
      if (!abort && ctx.method === 'POST') return await submit(ctx, uid);
      ctx.status = 405;
    } catch (error) {
      // No interaction for this browser (an expired one, cookies blocked, a link opened elsewhere).
      if (!(error instanceof errors.SessionNotFound)) throw error;
      html(ctx, 400, page(title, '<h1>This sign-in has expired</h1><p>Start again from the application.</p>'));
    }
  };
}
