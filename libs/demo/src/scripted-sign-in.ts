import { createHash, randomBytes } from 'node:crypto';

/*
 * A person signing in through the authorization-code flow with PKCE, scripted: a browser that
 * follows each redirect, fills the sign-in page (login, password) and allows on the consent page,
 * then exchanges the code as the client. It works on the demo's sign-in pages and on
 * oidc-provider's development pages alike (their forms share the field names). `mandate demo
 * sign-in` uses it to print a demo user's token, the test harness for a test user's.
 */

export interface ScriptedSignIn {
  /** The authorization server's `authorization_endpoint` and `token_endpoint`. */
  authorizationEndpoint: string;
  tokenEndpoint: string;
  clientId: string;
  /** The client's secret, sent as client_secret_basic; without one, a public client. */
  clientSecret?: string;
  /** Registered for the client; the flow stops at the redirect there, which is never fetched. */
  redirectUri: string;
  login: string;
  password?: string;
  /** Besides `openid`, which is always asked for. */
  scope?: string;
  /** RFC 8707: the audience of the access token. */
  resource?: string;
  /** Sees the authorization code before it is exchanged. */
  onCode?: (code: string) => void;
}

export interface TokenResponseBody {
  access_token?: string;
  refresh_token?: string;
  id_token?: string;
  expires_in?: number;
  scope?: string;
  error?: string;
  error_description?: string;
}

/** A cookie jar and the requests that carry it, redirects left to the caller: a browser on one site, as far as HTTP goes. */
export class CookieSession {
  readonly cookies = new Map<string, string>();

  async visit(url: string | URL, form?: Record<string, string>): Promise<Response> {
    const response = await fetch(url, {
      method: form ? 'POST' : 'GET',
      redirect: 'manual',
      headers: { cookie: [...this.cookies].map(([name, value]) => `${name}=${value}`).join('; ') },
      ...(form ? { body: new URLSearchParams(form) } : {}),
    });
    for (const cookie of response.headers.getSetCookie()) {
      const [name = '', value = ''] = (cookie.split(';')[0] ?? '').split('=', 2);
      if (value) this.cookies.set(name, value);
      else this.cookies.delete(name);
    }
    return response;
  }
}

export function basicAuthorization(clientId: string, secret: string): string {
  return `Basic ${Buffer.from(`${encodeURIComponent(clientId)}:${encodeURIComponent(secret)}`).toString('base64')}`;
}

/** A token endpoint's answer, or an error naming its status and OAuth error. */
export async function readTokenResponse(response: Response, who = 'authorization server'): Promise<TokenResponseBody & { access_token: string }> {
  const body = (await response.json()) as TokenResponseBody;
  if (!response.ok || !body.access_token) {
    throw new Error(`${who}: token endpoint answered ${response.status}: ${body.error ?? ''} ${body.error_description ?? ''}`);
  }
  return { ...body, access_token: body.access_token };
}

/** Runs the whole flow; the token response, refresh token and all. */
export async function signInWithAuthorizationCode(request: ScriptedSignIn): Promise<TokenResponseBody & { access_token: string }> {
  const origin = new URL(request.authorizationEndpoint).origin;
  const who = `sign-in at ${origin}`;
  const session = new CookieSession();
  const visit = (url: string, form?: Record<string, string>) => session.visit(new URL(url, origin), form);
  const redirect = async (url: string, form?: Record<string, string>): Promise<string> => {
    const response = await visit(url, form);
    const location = response.headers.get('location');
    if (!location) throw new Error(`${who}: ${url} answered ${response.status} without a redirect: ${await response.text()}`);
    return location;
  };

  const verifier = randomBytes(32).toString('base64url');
  const state = randomBytes(8).toString('hex');
  const authorization = new URL(request.authorizationEndpoint);
  authorization.search = new URLSearchParams({
    client_id: request.clientId,
    response_type: 'code',
    redirect_uri: request.redirectUri,
    scope: ['openid', request.scope].filter(Boolean).join(' '),
    ...(request.resource ? { resource: request.resource } : {}),
    state,
    code_challenge: createHash('sha256').update(verifier).digest('base64url'),
    code_challenge_method: 'S256',
  }).toString();
  let location = await redirect(authorization.href);
  // Like a browser: each prompt (login, then consent) is a page whose form, once submitted, resumes the authorization.
  for (let hops = 0; !location.startsWith(request.redirectUri); hops += 1) {
    if (hops > 10) throw new Error(`${who}: the authorization flow did not end (last at ${location})`);
    if (!/\/interaction\/[^/]+$/.test(location)) {
      location = await redirect(location);
      continue;
    }
    const prompt = /name="prompt" value="(\w+)"/.exec(await (await visit(location)).text())?.[1] ?? 'unknown';
    location = await redirect(location, prompt === 'login' ? { prompt, login: request.login, password: request.password ?? '' } : { prompt });
  }
  const callback = new URL(location).searchParams;
  const code = callback.get('code');
  if (!code || callback.get('state') !== state) throw new Error(`${who}: authorization failed: ${location}`);
  request.onCode?.(code);

  const form = { grant_type: 'authorization_code', code, redirect_uri: request.redirectUri, code_verifier: verifier, ...(request.resource ? { resource: request.resource } : {}) };
  const response = await fetch(request.tokenEndpoint, {
    method: 'POST',
    ...(request.clientSecret ? { headers: { authorization: basicAuthorization(request.clientId, request.clientSecret) } } : {}),
    body: new URLSearchParams(request.clientSecret ? form : { ...form, client_id: request.clientId }),
  });
  return readTokenResponse(response, who);
}
