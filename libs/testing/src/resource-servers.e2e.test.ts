import { SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestIdp, type TestIdp } from './idp.js';
import { startResourceServers, type ResourceServers } from './resource-servers.js';

/** A call with an optional bearer token; the body is always JSON. */
async function call(url: string, token?: string, init: { method?: string; body?: string; contentType?: string } = {}) {
  const headers: Record<string, string> = {};
  if (token) headers['authorization'] = `Bearer ${token}`;
  if (init.contentType) headers['content-type'] = init.contentType;
  const response = await fetch(url, { method: init.method ?? 'GET', headers, ...(init.body !== undefined ? { body: init.body } : {}) });
  return { status: response.status, challenge: response.headers.get('www-authenticate'), body: (await response.json()) as Record<string, unknown> };
}

describe('sample resource servers behind real access tokens', () => {
  let idp: TestIdp;
  let rs: ResourceServers;
  beforeAll(async () => {
    idp = await startTestIdp();
    // No jwksUri: found through the IdP's discovery document, as a real resource server would.
    rs = await startResourceServers({ issuer: idp.issuer });
  });
  afterAll(async () => {
    await rs?.stop();
    await idp?.stop();
  });

  it('serves CRM notes and finance spend to tokens with the right audience and scope, and records who called', async () => {
    const crmToken = await idp.userAccessToken({ sub: 'sarah', audience: rs.crm.audience, scope: 'crm.notes.read' });
    const notes = await call(`${rs.crm.url}/accounts/acme/notes`, crmToken);
    expect(notes.status).toBe(200);
    expect(notes.body).toMatchObject({ account: 'acme', name: 'ACME Corp' });
    expect(notes.body['notes']).toHaveLength(2);

    const financeToken = await idp.clientCredentialsToken({ audience: rs.finance.audience, scope: 'finance.spend.read', clientId: 'm2m-client' });
    const spend = await call(`${rs.finance.url}/accounts/acme/spend`, financeToken);
    expect(spend).toMatchObject({ status: 200, body: { name: 'ACME Corp', currency: 'USD', total: 48_250 } });

    expect(rs.requests).toEqual([
      { server: 'crm', method: 'GET', path: '/accounts/acme/notes', sub: 'sarah', clientId: 'test-app', scopes: ['crm.notes.read'] },
      { server: 'finance', method: 'GET', path: '/accounts/acme/spend', sub: 'm2m-client', clientId: 'm2m-client', scopes: ['finance.spend.read'] },
    ]);
  });

  it('answers 401 invalid_token to a garbage token, an expired one and one for another audience; a bare challenge without a token', async () => {
    const before = rs.requests.length;
    const none = await call(`${rs.crm.url}/accounts/acme/notes`);
    // RFC 6750 §3.1: no credentials at all, so no error code in the challenge.
    expect(none).toMatchObject({ status: 401, challenge: 'Bearer' });

    const garbage = await call(`${rs.crm.url}/accounts/acme/notes`, 'not.a.jwt');
    expect(garbage.status).toBe(401);
    expect(garbage.challenge).toMatch(/^Bearer error="invalid_token"/);
    expect(garbage.body['error']).toBe('invalid_token');

    // Right scope, but issued for finance: a CRM that took it would let finance replay its tokens.
    const financeToken = await idp.userAccessToken({ sub: 'sarah', audience: rs.finance.audience, scope: 'crm.notes.read finance.spend.read' });
    const wrongAudience = await call(`${rs.crm.url}/accounts/acme/notes`, financeToken);
    expect(wrongAudience.status).toBe(401);
    expect(wrongAudience.challenge).toMatch(/^Bearer error="invalid_token"/);

    // Signed with the IdP's genuine key, so only the expiry is wrong.
    const [key] = idp.signingKeys;
    const expired = await new SignJWT({ scope: 'crm.notes.read', client_id: 'test-app' })
      .setProtectedHeader({ alg: key!.alg, kid: key!.kid, typ: 'at+jwt' })
      .setIssuer(idp.issuer)
      .setAudience(rs.crm.audience)
      .setSubject('sarah')
      .setIssuedAt(Math.floor(Date.now() / 1000) - 120)
      .setExpirationTime(Math.floor(Date.now() / 1000) - 60)
      .sign(key!.privateKey);
    const late = await call(`${rs.crm.url}/accounts/acme/notes`, expired);
    expect(late.status).toBe(401);
    expect(late.challenge).toMatch(/^Bearer error="invalid_token"/);

    expect(rs.requests).toHaveLength(before);
  });

  it('answers 403 insufficient_scope, naming the scope, to a valid token without it', async () => {
    const token = await idp.userAccessToken({ sub: 'sarah', audience: rs.documents.audience, scope: 'docs.read' });
    const denied = await call(`${rs.documents.url}/documents/acme-renewal-plan`, token, { method: 'PUT', body: 'overwrite', contentType: 'text/plain' });
    expect(denied).toMatchObject({ status: 403, challenge: 'Bearer error="insufficient_scope", scope="docs.write"', body: { error: 'insufficient_scope' } });
    // The seed document is untouched.
    expect((await call(`${rs.documents.url}/documents/acme-renewal-plan`, token)).body['updatedBy']).toBe('seed');
  });

  it('stores a PUT document in memory, so a later GET returns it', async () => {
    const token = await idp.userAccessToken({ sub: 'tom', audience: rs.documents.audience, scope: 'docs.read docs.write' });
    const url = `${rs.documents.url}/documents/q2-forecast`;
    expect((await call(url, token)).status).toBe(404);

    const put = await call(url, token, { method: 'PUT', body: JSON.stringify({ quarter: 'Q2', total: 51_000 }), contentType: 'application/json' });
    expect(put).toMatchObject({ status: 201, body: { id: 'q2-forecast', updatedBy: 'tom' } });
    const get = await call(url, token);
    expect(get).toMatchObject({ status: 200, body: { contentType: 'application/json', content: { quarter: 'Q2', total: 51_000 }, updatedBy: 'tom' } });

    const replaced = await call(url, token, { method: 'PUT', body: 'Q2: 51k', contentType: 'text/plain; charset=utf-8' });
    expect(replaced).toMatchObject({ status: 200, body: { contentType: 'text/plain', content: 'Q2: 51k' } });
    expect((await call(url, token)).body['content']).toBe('Q2: 51k');
  });
});
