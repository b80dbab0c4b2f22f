import { createRemoteJWKSet, decodeProtectedHeader, jwtVerify, SignJWT, type JSONWebKeySet } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestIdp, type TestIdp } from './idp.js';

const API = 'https://crm.example.test';

async function publishedKids(idp: TestIdp): Promise<string[]> {
  const jwks = (await (await fetch(idp.jwksUri)).json()) as JSONWebKeySet;
  return jwks.keys.map((key) => key.kid ?? '');
}

describe('startTestIdp', () => {
  let idp: TestIdp;
  beforeAll(async () => {
    idp = await startTestIdp();
  });
  afterAll(() => idp.stop());

  it('advertises its issuer and JWKS in discovery', async () => {
    expect(idp.issuer).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(idp.discoveryUrl).toBe(`${idp.issuer}/.well-known/openid-configuration`);
    const discovery = (await (await fetch(idp.discoveryUrl)).json()) as Record<string, unknown>;
    expect(discovery['issuer']).toBe(idp.issuer);
    expect(discovery['jwks_uri']).toBe(idp.jwksUri);
    const kids = await publishedKids(idp);
    expect(idp.signingKeys.map((key) => key.kid)).toEqual(kids);
    expect(idp.signingKeys.map((key) => key.alg)).toEqual(['RS256', 'ES256']);
  });

  it('issues a user access token through the authorization-code flow', async () => {
    const token = await idp.userAccessToken({ sub: 'alice', audience: API, scope: 'crm:read finance:read', claims: { tenant: 'acme', roles: ['admin'] } });
    const { payload, protectedHeader } = await jwtVerify(token, createRemoteJWKSet(new URL(idp.jwksUri)), {
      issuer: idp.issuer,
      audience: API,
      typ: 'at+jwt',
    });
    expect(protectedHeader).toMatchObject({ alg: 'RS256', kid: idp.signingKeys[0]?.kid });
    expect(payload).toMatchObject({ sub: 'alice', client_id: 'test-app', scope: 'crm:read finance:read', tenant: 'acme', roles: ['admin'] });
    expect(idp.requests).toEqual(expect.arrayContaining(['/auth', '/token']));
  });

  it('issues tokens for another registered client and never lets claims override registered ones', async () => {
    const token = await idp.userAccessToken({ sub: 'bob', audience: 'urn:mandate:tools', clientId: 'other-app', claims: { sub: 'mallory', aud: 'elsewhere' } });
    const { payload } = await jwtVerify(token, createRemoteJWKSet(new URL(idp.jwksUri)), { issuer: idp.issuer, audience: 'urn:mandate:tools' });
    expect(payload).toMatchObject({ sub: 'bob', client_id: 'other-app', aud: 'urn:mandate:tools' });
    expect(payload['scope']).toBeUndefined();
  });

  it('issues a client-credentials token', async () => {
    const token = await idp.clientCredentialsToken({ audience: 'http://localhost:8080', scope: 'directory:read' });
    const { payload } = await jwtVerify(token, createRemoteJWKSet(new URL(idp.jwksUri)), { issuer: idp.issuer, audience: 'http://localhost:8080', typ: 'at+jwt' });
    expect(payload).toMatchObject({ sub: 'test-app', client_id: 'test-app', scope: 'directory:read' });
    await expect(idp.clientCredentialsToken({ audience: API, clientId: 'unknown-app' })).rejects.toThrow(/invalid_client/);
  });

  it('exposes the genuine private keys for forging tokens', async () => {
    const [key] = idp.signingKeys;
    if (!key) throw new Error('no signing key');
    const forged = await new SignJWT({ sub: 'alice' })
      .setProtectedHeader({ alg: key.alg, kid: key.kid, typ: 'at+jwt' })
      .setIssuer(idp.issuer)
      .setAudience(API)
      .setExpirationTime('1m')
      .sign(key.privateKey);
    await expect(jwtVerify(forged, createRemoteJWKSet(new URL(idp.jwksUri)), { issuer: idp.issuer, audience: API })).resolves.toBeDefined();
  });

  it('counts JWKS requests, which a cached remote key set does not repeat', async () => {
    const before = idp.jwksRequestCount;
    const jwks = createRemoteJWKSet(new URL(idp.jwksUri));
    for (let i = 0; i < 3; i += 1) await jwtVerify(await idp.clientCredentialsToken({ audience: API }), jwks, { issuer: idp.issuer });
    expect(idp.jwksRequestCount).toBe(before + 1);
  });

  it('makes each JWKS behaviour observable', async () => {
    const token = await idp.clientCredentialsToken({ audience: API });
    try {
      idp.setJwksBehaviour({ mode: 'down' });
      await expect(fetch(idp.jwksUri)).rejects.toThrow();
      await expect(jwtVerify(token, createRemoteJWKSet(new URL(idp.jwksUri)))).rejects.toThrow();

      idp.setJwksBehaviour({ mode: 'html' });
      const html = await fetch(idp.jwksUri);
      expect(html.status).toBe(200);
      expect(html.headers.get('content-type')).toMatch(/^text\/html/);
      await expect(jwtVerify(token, createRemoteJWKSet(new URL(idp.jwksUri)))).rejects.toThrow();

      idp.setJwksBehaviour({ mode: 'slow', delayMs: 400 });
      const started = performance.now();
      expect((await fetch(idp.jwksUri)).ok).toBe(true);
      expect(performance.now() - started).toBeGreaterThanOrEqual(350);
      await expect(jwtVerify(token, createRemoteJWKSet(new URL(idp.jwksUri), { timeoutDuration: 100 }))).rejects.toMatchObject({
        code: 'ERR_JWKS_TIMEOUT',
      });

      const before = idp.jwksRequestCount;
      idp.setJwksBehaviour({ mode: 'normal' });
      await expect(jwtVerify(token, createRemoteJWKSet(new URL(idp.jwksUri)))).resolves.toBeDefined();
      expect(idp.jwksRequestCount).toBe(before + 1);
    } finally {
      idp.setJwksBehaviour({ mode: 'normal' });
    }
  });

  it('rotates the signing key, keeping the old one published unless dropped', async () => {
    const oldKid = idp.signingKeys[0]?.kid;
    const oldToken = await idp.userAccessToken({ sub: 'alice', audience: API });

    await idp.rotateSigningKey();
    const newKid = idp.signingKeys[0]?.kid;
    expect(newKid).not.toBe(oldKid);
    expect(decodeProtectedHeader(await idp.userAccessToken({ sub: 'alice', audience: API })).kid).toBe(newKid);
    expect(decodeProtectedHeader(await idp.clientCredentialsToken({ audience: API })).kid).toBe(newKid);
    expect(await publishedKids(idp)).toEqual(expect.arrayContaining([oldKid, newKid]));
    await expect(jwtVerify(oldToken, createRemoteJWKSet(new URL(idp.jwksUri)), { issuer: idp.issuer })).resolves.toBeDefined();

    await idp.rotateSigningKey({ dropOld: true });
    const kids = await publishedKids(idp);
    expect(kids).not.toContain(oldKid);
    expect(kids).not.toContain(newKid);
    expect(kids).toContain(idp.signingKeys[0]?.kid);
    expect(idp.signingKeys.map((key) => key.kid)).toEqual(kids);
    await expect(jwtVerify(oldToken, createRemoteJWKSet(new URL(idp.jwksUri)))).rejects.toMatchObject({ code: 'ERR_JWKS_NO_MATCHING_KEY' });
  });

  it('records every request path, so a URL that was never fetched can be asserted', async () => {
    await fetch(`${idp.issuer}/some/where?x=1`);
    expect(idp.requests).toContain('/some/where');
    expect(idp.requests).not.toContain('/attacker-jwks');
  });
});

describe('two test IdPs at once', () => {
  it('run side by side with their own issuers and keys', async () => {
    const [a, b] = await Promise.all([startTestIdp(), startTestIdp({ alg: 'ES256' })]);
    try {
      expect(a.issuer).not.toBe(b.issuer);
      const [tokenA, tokenB] = await Promise.all([
        a.userAccessToken({ sub: 'alice', audience: API, scope: 'crm:read' }),
        b.userAccessToken({ sub: 'alice', audience: API, scope: 'crm:read' }),
      ]);
      expect(decodeProtectedHeader(tokenB).alg).toBe('ES256');
      await expect(jwtVerify(tokenB, createRemoteJWKSet(new URL(b.jwksUri)), { issuer: b.issuer, audience: API })).resolves.toBeDefined();
      await expect(jwtVerify(tokenA, createRemoteJWKSet(new URL(b.jwksUri)))).rejects.toMatchObject({ code: 'ERR_JWKS_NO_MATCHING_KEY' });
      expect(b.signingKeys.map((key) => key.alg)).toEqual(['ES256', 'RS256']);
    } finally {
      await Promise.all([a.stop(), b.stop()]);
    }
  });
});
