import { createServer } from 'node:net';
import { createRemoteJWKSet, decodeJwt, jwtVerify } from 'jose';
import type { ClientMetadata } from 'oidc-provider';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDemoAuthorizationServer, type DemoAuthorizationServer } from './demo-authorization-server.js';
import { DEMO_PASSWORD } from './demo-users.js';
import { basicAuthorization, CookieSession, readTokenResponse, signInWithAuthorizationCode } from './scripted-sign-in.js';
import { newSigningKey } from './signing-keys.js';

/** A port nothing listens on now (this library cannot use @mandate/testing, which builds on it). */
function unusedPort(): Promise<number> {
  return new Promise((resolve) => {
    const server = createServer().listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

const REDIRECT_URI = 'http://127.0.0.1/demo-app/callback';
const CLIENT = {
  client_id: 'demo-app',
  client_secret: 'demo-app-secret',
  client_name: 'The demo app',
  grant_types: ['authorization_code', 'refresh_token', 'client_credentials'],
  response_types: ['code'],
  redirect_uris: [REDIRECT_URI],
} satisfies ClientMetadata;
const CRM = 'https://crm.example';

describe('the demo authorization server', () => {
  let server: DemoAuthorizationServer;
  const signIn = (login: string, password: string, scope = 'crm.notes.read') =>
    signInWithAuthorizationCode({ ...server, clientId: CLIENT.client_id, clientSecret: CLIENT.client_secret, redirectUri: REDIRECT_URI, login, password, scope });

  beforeAll(async () => {
    server = await startDemoAuthorizationServer({
      title: 'Demo IdP',
      port: await unusedPort(),
      clients: [CLIENT],
      signingKeys: [await newSigningKey('RS256')],
      defaultResource: (scopes) => (scopes.some((scope) => scope.startsWith('crm.')) ? CRM : undefined),
    });
  });
  afterAll(() => server?.stop());

  it('signs sarah in on its own pages with the demo password; her token is for the resource her scopes name, with her claims', async () => {
    const tokens = await signIn('sarah', DEMO_PASSWORD);
    const { payload } = await jwtVerify(tokens.access_token, createRemoteJWKSet(new URL(`${server.issuer}/jwks`)), { issuer: server.issuer, audience: CRM, typ: 'at+jwt' });
    expect(payload).toMatchObject({ sub: 'sarah', scope: 'crm.notes.read', department: 'sales', groups: ['sales', 'agent-users'], email: 'sarah@demo.example' });
    expect(tokens.refresh_token).toBeTruthy();
  });

  it('puts who the person is and their groups in the ID token with scope openid alone (the approvals page decides by them)', async () => {
    const tokens = await signIn('bob', DEMO_PASSWORD, 'openid');
    expect(decodeJwt(tokens.id_token!)).toMatchObject({ sub: 'bob', name: 'Bob Example', email: 'bob@demo.example', groups: ['finance'] });
  });

  it('shows who may sign in, and refuses a wrong password or an unknown person on the page itself', async () => {
    await expect(signIn('sarah', 'not-the-password')).rejects.toThrow(/answered 401 without a redirect: .*Unknown login or wrong password/s);
    await expect(signIn('mallory', DEMO_PASSWORD)).rejects.toThrow(/answered 401/);
    const authorization = new URL(server.authorizationEndpoint);
    authorization.search = new URLSearchParams({ client_id: CLIENT.client_id, response_type: 'code', redirect_uri: REDIRECT_URI, scope: 'openid', code_challenge: 'x'.repeat(43), code_challenge_method: 'S256' }).toString();
    const toPage = await fetch(authorization, { redirect: 'manual' });
    const page = await fetch(new URL(toPage.headers.get('location')!, server.issuer), { headers: { cookie: toPage.headers.getSetCookie().map((c) => c.split(';')[0]).join('; ') } });
    const html = await page.text();
    expect(html).toContain('<b>sarah</b> or <b>bob</b>, password <b>demo</b>');
    expect(page.headers.get('x-frame-options')).toBe('DENY');
  });

  it('asks for consent on its own page, naming the client and what it asks for; an expired interaction says so', async () => {
    const session = new CookieSession();
    const visit = (url: string | URL, form?: Record<string, string>) => session.visit(new URL(url, server.issuer), form);
    const authorization = new URL(server.authorizationEndpoint);
    authorization.search = new URLSearchParams({ client_id: CLIENT.client_id, response_type: 'code', redirect_uri: REDIRECT_URI, scope: 'openid crm.notes.read', code_challenge: 'x'.repeat(43), code_challenge_method: 'S256' }).toString();
    const login = (await visit(authorization)).headers.get('location')!;
    const resume = (await visit(login, { prompt: 'login', login: 'sarah', password: DEMO_PASSWORD })).headers.get('location')!;
    const consent = (await visit(resume)).headers.get('location')!;
    const html = await (await visit(consent)).text();
    expect(html).toContain('The demo app asks for access');
    expect(html).toContain('Signed in to Demo IdP as <b>sarah</b>');
    expect(html).toContain('crm.notes.read at https://crm.example');

    const stale = await fetch(`${server.issuer}/interaction/no-such-interaction`);
    expect(stale.status).toBe(400);
    expect(await stale.text()).toContain('This sign-in has expired');
  });

  it('grants client credentials and rotates refresh tokens', async () => {
    const m2m = await readTokenResponse(
      await fetch(server.tokenEndpoint, { method: 'POST', headers: { authorization: basicAuthorization(CLIENT.client_id, CLIENT.client_secret) }, body: new URLSearchParams({ grant_type: 'client_credentials', scope: 'crm.notes.read' }) }),
    );
    expect(decodeJwt(m2m.access_token)).toMatchObject({ sub: 'demo-app', aud: CRM });
    const { refresh_token: first } = await signIn('bob', DEMO_PASSWORD);
    const refresh = (token: string) => fetch(server.tokenEndpoint, { method: 'POST', headers: { authorization: basicAuthorization(CLIENT.client_id, CLIENT.client_secret) }, body: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: token }) });
    const second = await readTokenResponse(await refresh(first!));
    expect(second.refresh_token).not.toBe(first);
    expect((await refresh(first!)).status).toBe(400);
  });
});
