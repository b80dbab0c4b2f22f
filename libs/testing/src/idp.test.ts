import { randomUUID } from 'node:crypto';
import { createRemoteJWKSet, decodeJwt, decodeProtectedHeader, generateKeyPair, importJWK, jwtVerify, SignJWT, type JSONWebKeySet } from 'jose';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { startTestIdp, type TestIdp } from './idp.js';

const API = 'https://crm.example.test';
const JWT_BEARER = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';

type TokenBody = { access_token?: string; refresh_token?: string; expires_in?: number; scope?: string; error?: string; error_description?: string };

function basic(clientId: string, secret = `${clientId}-secret`): string {
  return `Basic ${Buffer.from(`${clientId}:${secret}`).toString('base64')}`;
}

/** A raw POST to the token endpoint, as a relying party would send it. */
async function postToken(idp: TestIdp, form: Record<string, string>, init: { authorization?: string; signal?: AbortSignal } = {}) {
  const response = await fetch(idp.tokenEndpoint, {
    method: 'POST',
    ...(init.authorization ? { headers: { authorization: init.authorization } } : {}),
    ...(init.signal ? { signal: init.signal } : {}),
    body: new URLSearchParams(form),
  });
  return { status: response.status, body: (await response.json()) as TokenBody };
}

/** `grant_type=refresh_token` for `test-app` with client_secret_basic. */
function refresh(idp: TestIdp, refreshToken: string, extra: Record<string, string> = {}, signal?: AbortSignal) {
  return postToken(idp, { grant_type: 'refresh_token', refresh_token: refreshToken, ...extra }, { authorization: basic('test-app'), ...(signal ? { signal } : {}) });
}

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

describe('the test IdP as an upstream authorization server', () => {
  let idp: TestIdp;
  beforeAll(async () => {
    idp = await startTestIdp();
  });
  afterAll(() => idp.stop());

  it('issues refresh tokens and rotates them: a used one then fails with invalid_grant', async () => {
    const tokens = await idp.userTokens({ sub: 'alice', audience: API, scope: 'crm:read finance:read', claims: { tenant: 'acme' } });
    expect(tokens).toMatchObject({ refreshToken: expect.any(String), expiresIn: 600, scope: 'crm:read finance:read' });
    const jwks = createRemoteJWKSet(new URL(idp.jwksUri));
    await expect(jwtVerify(tokens.accessToken, jwks, { issuer: idp.issuer, audience: API, typ: 'at+jwt' })).resolves.toBeDefined();

    const first = await refresh(idp, tokens.refreshToken, { resource: API });
    expect(first.status).toBe(200);
    expect(first.body).toMatchObject({ token_type: 'Bearer', expires_in: 600, scope: 'crm:read finance:read' });
    expect(first.body.refresh_token).toEqual(expect.any(String));
    expect(first.body.refresh_token).not.toBe(tokens.refreshToken);
    const { payload } = await jwtVerify(first.body.access_token ?? '', jwks, { issuer: idp.issuer, audience: API, typ: 'at+jwt' });
    expect(payload).toMatchObject({ sub: 'alice', client_id: 'test-app', scope: 'crm:read finance:read', tenant: 'acme' });

    // Without `resource`, the granted one is used: still a JWT for the same audience. A narrower scope may be asked for.
    const second = await refresh(idp, first.body.refresh_token ?? '', { scope: 'crm:read' });
    expect(second.status).toBe(200);
    expect(second.body.scope).toBe('crm:read');
    expect(decodeJwt(second.body.access_token ?? '')).toMatchObject({ aud: API, scope: 'crm:read', tenant: 'acme' });

    expect(await refresh(idp, tokens.refreshToken)).toEqual({ status: 400, body: { error: 'invalid_grant', error_description: 'grant request is invalid' } });
    // oidc-provider treats the reuse as a stolen token and revokes the whole grant, the latest refresh token included.
    expect((await refresh(idp, second.body.refresh_token ?? '')).body.error).toBe('invalid_grant');
  });

  it('refuses a refresh for another resource, an unknown token, or a client not allowed the grant', async () => {
    const { refreshToken } = await idp.userTokens({ sub: 'bob', audience: API, clientId: 'other-app' });
    expect(await refresh(idp, refreshToken)).toMatchObject({ status: 400, body: { error: 'invalid_grant' } }); // issued to other-app
    const otherApp = await postToken(idp, { grant_type: 'refresh_token', refresh_token: refreshToken, resource: 'https://elsewhere.test' }, { authorization: basic('other-app') });
    expect(otherApp).toMatchObject({ status: 400, body: { error: 'invalid_target' } });
    expect(await refresh(idp, 'not-a-refresh-token')).toMatchObject({ status: 400, body: { error: 'invalid_grant' } });
    const m2m = await postToken(idp, { grant_type: 'refresh_token', refresh_token: refreshToken }, { authorization: basic('m2m-client') });
    expect(m2m).toMatchObject({ status: 400, body: { error: 'invalid_request', error_description: 'requested grant type is not allowed for this client' } });
  });

  it('records every token request with its grant type, client and status', async () => {
    const before = idp.tokenRequests.length;
    const { refreshToken } = await idp.userTokens({ sub: 'carol', audience: API });
    await refresh(idp, refreshToken);
    await refresh(idp, refreshToken);
    await idp.clientCredentialsToken({ audience: API, clientId: 'other-app' });
    await postToken(idp, { grant_type: 'client_credentials', client_id: 'm2m-client', client_secret: 'wrong', resource: API });
    expect(idp.tokenRequests.slice(before)).toEqual([
      { grantType: 'authorization_code', clientId: 'test-app', status: 200 },
      { grantType: 'refresh_token', clientId: 'test-app', status: 200 },
      { grantType: 'refresh_token', clientId: 'test-app', status: 400 },
      { grantType: 'client_credentials', clientId: 'other-app', status: 200 },
      { grantType: 'client_credentials', clientId: 'm2m-client', status: 401 },
    ]);
    const counts = Object.groupBy(idp.tokenRequests.slice(before), (request) => request.grantType);
    expect(counts['refresh_token']).toHaveLength(2);
  });

  it('advertises revocation and revokes refresh tokens through it', async () => {
    const discovery = (await (await fetch(idp.discoveryUrl)).json()) as Record<string, unknown>;
    expect(discovery['revocation_endpoint']).toBe(idp.revocationEndpoint);
    expect(discovery['token_endpoint']).toBe(idp.tokenEndpoint);

    const { refreshToken } = await idp.userTokens({ sub: 'dave', audience: API, scope: 'crm:read' });
    const rotated = (await refresh(idp, refreshToken)).body.refresh_token ?? '';
    const before = idp.revocationRequests;
    await idp.revokeRefreshToken(rotated);
    expect(idp.revocationRequests).toBe(before + 1);
    expect(await refresh(idp, rotated)).toMatchObject({ status: 400, body: { error: 'invalid_grant' } });

    // Unknown tokens are accepted (RFC 7009 2.2); another client's token is refused.
    await expect(idp.revokeRefreshToken('never-issued')).resolves.toBeUndefined();
    const { refreshToken: ofOtherApp } = await idp.userTokens({ sub: 'dave', audience: API, clientId: 'other-app' });
    const foreign = await fetch(idp.revocationEndpoint, { method: 'POST', headers: { authorization: basic('test-app') }, body: new URLSearchParams({ token: ofOtherApp }) });
    expect(foreign.status).toBe(400);
    expect(await foreign.json()).toMatchObject({ error: 'invalid_request' });
    expect(idp.revocationRequests).toBe(before + 3);
  });

  it('makes a slow or down token endpoint observable, recording requests it never answered with status 0', async () => {
    const { refreshToken } = await idp.userTokens({ sub: 'erin', audience: API });
    const before = idp.tokenRequests.length;
    try {
      idp.setTokenEndpointBehaviour({ mode: 'down' });
      await expect(refresh(idp, refreshToken)).rejects.toThrow();
      expect(idp.tokenRequests.slice(before)).toEqual([{ grantType: 'refresh_token', clientId: 'test-app', status: 0 }]);

      idp.setTokenEndpointBehaviour({ mode: 'slow', delayMs: 400 });
      await expect(refresh(idp, refreshToken, {}, AbortSignal.timeout(100))).rejects.toMatchObject({ name: 'TimeoutError' });
      await vi.waitFor(() => expect(idp.tokenRequests).toHaveLength(before + 2));
      expect(idp.tokenRequests.at(-1)).toEqual({ grantType: 'refresh_token', clientId: 'test-app', status: 0 });

      // Neither attempt reached oidc-provider, so the refresh token is still the current one.
      const started = performance.now();
      const slow = await refresh(idp, refreshToken);
      expect(performance.now() - started).toBeGreaterThanOrEqual(350);
      expect(slow.status).toBe(200);
      expect(idp.tokenRequests.at(-1)).toEqual({ grantType: 'refresh_token', clientId: 'test-app', status: 200 });

      idp.setTokenEndpointBehaviour({ mode: 'normal' });
      expect((await refresh(idp, slow.body.refresh_token ?? '')).status).toBe(200);
    } finally {
      idp.setTokenEndpointBehaviour({ mode: 'normal' });
    }
  });

  it('grants client credentials to m2m-client, and to jwt-client with private_key_jwt', async () => {
    const jwks = createRemoteJWKSet(new URL(idp.jwksUri));
    for (const clientId of ['m2m-client', 'jwt-client']) {
      const token = await idp.clientCredentialsToken({ audience: API, scope: 'directory:read', clientId });
      const { payload } = await jwtVerify(token, jwks, { issuer: idp.issuer, audience: API, typ: 'at+jwt' });
      expect(payload).toMatchObject({ sub: clientId, client_id: clientId, scope: 'directory:read' });
    }
    await expect(idp.userAccessToken({ sub: 'alice', audience: API, clientId: 'm2m-client' })).rejects.toThrow(/invalid_redirect_uri/);

    expect(idp.jwtClientKey).toMatchObject({ kty: 'EC', crv: 'P-256', alg: 'ES256', kid: expect.any(String), d: expect.any(String) });
    const key = await importJWK(idp.jwtClientKey, 'ES256');
    const assertion = (audience: string, signingKey = key, jti = randomUUID()) =>
      new SignJWT()
        .setProtectedHeader({ alg: 'ES256', kid: idp.jwtClientKey.kid ?? '' })
        .setIssuer('jwt-client')
        .setSubject('jwt-client')
        .setAudience(audience)
        .setIssuedAt()
        .setExpirationTime('30s')
        .setJti(jti)
        .sign(signingKey);
    const withAssertion = async (clientAssertion: string) =>
      postToken(idp, { grant_type: 'client_credentials', resource: API, client_assertion_type: JWT_BEARER, client_assertion: clientAssertion });

    // Either the token endpoint or the issuer is an accepted audience.
    const before = idp.tokenRequests.length;
    const byEndpoint = await withAssertion(await assertion(idp.tokenEndpoint));
    expect(byEndpoint.status).toBe(200);
    expect(decodeJwt(byEndpoint.body.access_token ?? '')).toMatchObject({ sub: 'jwt-client', aud: API });
    expect((await withAssertion(await assertion(idp.issuer))).status).toBe(200);
    expect(idp.tokenRequests.slice(before)).toEqual([
      { grantType: 'client_credentials', clientId: 'jwt-client', status: 200 },
      { grantType: 'client_credentials', clientId: 'jwt-client', status: 200 },
    ]);

    const jti = randomUUID();
    expect((await withAssertion(await assertion(idp.tokenEndpoint, key, jti))).status).toBe(200);
    expect(await withAssertion(await assertion(idp.tokenEndpoint, key, jti))).toMatchObject({ status: 401, body: { error: 'invalid_client' } });
    expect(await withAssertion(await assertion('https://elsewhere.test'))).toMatchObject({ status: 401, body: { error: 'invalid_client' } });
    const { privateKey: stranger } = await generateKeyPair('ES256');
    expect(await withAssertion(await assertion(idp.tokenEndpoint, stranger))).toMatchObject({ status: 401, body: { error: 'invalid_client' } });
  });
});

describe('a test IdP with short-lived access tokens', () => {
  it('reflects accessTokenTtlSeconds in expires_in and exp, for every grant', async () => {
    const idp = await startTestIdp({ accessTokenTtlSeconds: 5 });
    try {
      const tokens = await idp.userTokens({ sub: 'alice', audience: API, scope: 'crm:read' });
      expect(tokens.expiresIn).toBe(5);
      const lifetime = (token: string) => {
        const { exp = 0, iat = 0 } = decodeJwt(token);
        return exp - iat;
      };
      expect(lifetime(tokens.accessToken)).toBe(5);

      const refreshed = await refresh(idp, tokens.refreshToken, { resource: API });
      expect(refreshed.body.expires_in).toBe(5);
      expect(lifetime(refreshed.body.access_token ?? '')).toBe(5);

      const m2m = await postToken(idp, { grant_type: 'client_credentials', resource: API }, { authorization: basic('m2m-client') });
      expect(m2m.body.expires_in).toBe(5);
      expect(lifetime(await idp.clientCredentialsToken({ audience: API, clientId: 'jwt-client' }))).toBe(5);
    } finally {
      await idp.stop();
    }
  });
});
