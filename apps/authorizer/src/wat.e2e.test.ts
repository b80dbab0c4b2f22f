import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRemoteJWKSet, decodeJwt, decodeProtectedHeader, jwtVerify, type JWK } from 'jose';
import {
  DEFAULT_WAT_ISSUER,
  jwksEndpoint,
  MandateError,
  signingKeysRotateEndpoint,
  tokenForJwtEndpoint,
  tokenForUserEndpoint,
  tokenForWorkloadEndpoint,
  USER_ID_ISSUER,
  WAT_AUDIENCE,
} from '@mandate/contracts';
import { natsServerMissing } from '@mandate/testing';
import { startTestIdp, type TestIdp } from '@mandate/testing/idp';
import { jwksOverNats, signClientAssertion, WatVerifier } from '@mandate/wat';
import { startSystem, workloadKeyPair, type TestSystem } from '@mandate/testing/system';

const missing = natsServerMissing('workload authentication and WATs');
const AUDIENCE = 'https://crm.acme.example';

async function refusal(promise: Promise<unknown>): Promise<{ code: string; reason: unknown }> {
  const error = await promise.then(() => undefined, (e: unknown) => e);
  if (!(error instanceof MandateError)) throw new Error(`expected a MandateError, got ${String(error)}`);
  return { code: error.code, reason: error.details?.['reason'] };
}

describe.skipIf(missing)('workload authentication and WAT minting', () => {
  let h: TestSystem;
  let idp: TestIdp;
  let agentKey: { publicJwk: JWK; privateJwk: JWK };
  let verifier: WatVerifier;

  const assertion = (workload = 'report-agent', privateJwk = agentKey.privateJwk, extra: Partial<Parameters<typeof signClientAssertion>[0]> = {}) =>
    signClientAssertion({ workload, privateJwk, ...extra });
  const forWorkload = async (workload = 'report-agent', clientAssertion?: string, tenant = 'acme') =>
    h.bus.request(tokenForWorkloadEndpoint, { tenant, workload, clientAssertion: clientAssertion ?? (await assertion(workload)) });

  beforeAll(async () => {
    h = await startSystem({ services: ['directory', 'authorizer'] });
    idp = await startTestIdp();
    agentKey = await workloadKeyPair('agent-key-1');
    await h.createWorkload({ tenant: 'acme', name: 'report-agent', publicKeys: { keys: [agentKey.publicJwk as never] } });
    await h.createWorkload({ tenant: 'acme', name: 'trusted-backend', allowUserIdTokens: true, publicKeys: { keys: [agentKey.publicJwk as never] } });
    await h.createWorkload({ tenant: 'acme', name: 'keyless' });
    await h.createWorkload({ tenant: 'acme', name: 'sales-agent', publicKeys: { keys: [agentKey.publicJwk as never] } });
    await h.setAuthorizer('acme', 'sales-agent', { discoveryUrl: idp.discoveryUrl, allowedAudiences: [AUDIENCE] });
    verifier = new WatVerifier({ jwks: jwksOverNats(h.bus) });
  });

  afterAll(async () => {
    await h?.stop();
    await idp?.stop();
  });

  it('mints a WAT for a workload that proves itself, verifiable over NATS and over HTTP', async () => {
    const wat = await forWorkload();
    expect(wat.tokenType).toBe('wat+jwt');
    expect(wat.expiresIn).toBe(900);
    expect(decodeProtectedHeader(wat.token)).toMatchObject({ typ: 'wat+jwt', alg: 'EdDSA' });
    const claims = await verifier.verify(wat.token, { tenant: 'acme', workload: 'report-agent' });
    expect(claims).toMatchObject({ iss: DEFAULT_WAT_ISSUER, sub: 'report-agent', tenant: 'acme', workload: 'report-agent', bnd: 'workload' });
    expect(claims.user).toBeUndefined();

    const jwksUrl = `http://127.0.0.1:${h.env.AUTHORIZER_HTTP_PORT}/.well-known/jwks.json`;
    const response = await fetch(jwksUrl);
    expect(response.headers.get('content-type')).toBe('application/jwk-set+json');
    const published = (await response.json()) as { keys: JWK[] };
    expect(published.keys.every((k) => k.d === undefined)).toBe(true);
    await jwtVerify(wat.token, createRemoteJWKSet(new URL(jwksUrl)), { issuer: DEFAULT_WAT_ISSUER, audience: WAT_AUDIENCE, typ: 'wat+jwt' });
    expect((await h.bus.request(jwksEndpoint, {})).keys.map((k) => k.kid)).toEqual(published.keys.map((k) => k.kid));
  });

  it('accepts a client assertion once: a replay is refused', async () => {
    const once = await assertion();
    await forWorkload('report-agent', once);
    expect(await refusal(forWorkload('report-agent', once))).toEqual({ code: 'unauthenticated', reason: 'assertion_replayed' });
  });

  it('gives one WAT for an assertion sent many times at once, through either binding, and audits the others as replays', async () => {
    const once = await assertion('trusted-backend');
    const asks = Array.from({ length: 12 }, (_, i) =>
      i % 2 === 0 ? forWorkload('trusted-backend', once) : h.bus.request(tokenForUserEndpoint, { tenant: 'acme', workload: 'trusted-backend', userId: 'user-7', clientAssertion: once }),
    );
    const outcomes = await Promise.all(asks.map((ask) => ask.then(() => 'minted', (error: unknown) => (error as MandateError).details?.['reason'])));
    expect(outcomes.filter((outcome) => outcome === 'minted')).toHaveLength(1);
    expect(outcomes.filter((outcome) => outcome === 'assertion_replayed')).toHaveLength(11);
    await expect.poll(() => h.audit.filter((r) => r.action === 'wat-mint' && r.actor.workload === 'trusted-backend' && r.reason === 'assertion_replayed').length).toBeGreaterThanOrEqual(11);
  });

  it('refuses assertions that do not prove the workload', async () => {
    const stranger = await workloadKeyPair('agent-key-1');
    const cases: [string, Promise<string>, string][] = [
      ['signed by an unregistered key with a registered kid', assertion('report-agent', stranger.privateJwk), 'assertion_unknown_key'],
      ['signed by an unregistered kid', assertion('report-agent', (await workloadKeyPair('other-kid')).privateJwk), 'assertion_unknown_key'],
      ['for another authorizer', assertion('report-agent', agentKey.privateJwk, { audience: 'urn:someone-else' }), 'assertion_wrong_audience'],
      ['expired', assertion('report-agent', agentKey.privateJwk, { now: () => Date.now() - 600_000 }), 'assertion_expired'],
      ['living longer than 5 minutes', assertion('report-agent', agentKey.privateJwk, { lifetimeSeconds: 3_600 }), 'assertion_lifetime_too_long'],
    ];
    for (const [what, signed, reason] of cases) {
      expect(await refusal(forWorkload('report-agent', await signed)), what).toEqual({ code: 'unauthenticated', reason });
    }
    // Signed as sales-agent (same key), presented for report-agent.
    expect(await refusal(forWorkload('report-agent', await assertion('sales-agent')))).toEqual({ code: 'unauthenticated', reason: 'assertion_wrong_subject' });
    expect(await refusal(forWorkload('keyless', await assertion('keyless')))).toEqual({ code: 'unauthenticated', reason: 'workload_has_no_keys' });
    const wat = await forWorkload();
    expect(await refusal(forWorkload('report-agent', wat.token))).toMatchObject({ reason: 'wrong_token_type' });
    expect(await refusal(forWorkload('report-agent', 'garbage'))).toMatchObject({ reason: 'assertion_invalid' });
  });

  it('binds a WAT to the user of a valid JWT, never outliving it', async () => {
    const userToken = await idp.userAccessToken({ sub: 'sarah', audience: AUDIENCE });
    const wat = await h.bus.request(tokenForJwtEndpoint, { tenant: 'acme', workload: 'sales-agent', userToken, clientAssertion: await assertion('sales-agent') });
    const claims = await verifier.verify(wat.token, { tenant: 'acme', workload: 'sales-agent', user: { iss: idp.issuer, sub: 'sarah' } });
    expect(claims).toMatchObject({ bnd: 'user-jwt', user: { iss: idp.issuer, sub: 'sarah' } });
    expect(claims.exp).toBeLessThanOrEqual(decodeJwt(userToken).exp!);
    // The same JWT again gets the same WAT while it is fresh; a changed config mints anew.
    const again = await h.bus.request(tokenForJwtEndpoint, { tenant: 'acme', workload: 'sales-agent', userToken, clientAssertion: await assertion('sales-agent') });
    expect(again.token).toBe(wat.token);
    await h.setAuthorizer('acme', 'sales-agent', { discoveryUrl: idp.discoveryUrl, allowedAudiences: [AUDIENCE, 'https://extra'] });
    await expect.poll(async () => (await h.bus.request(tokenForJwtEndpoint, { tenant: 'acme', workload: 'sales-agent', userToken, clientAssertion: await assertion('sales-agent') })).token).not.toBe(wat.token);
    const foreign = await refusal(h.bus.request(tokenForJwtEndpoint, { tenant: 'acme', workload: 'sales-agent', userToken: 'a.b.c', clientAssertion: await assertion('sales-agent') }));
    expect(foreign).toEqual({ code: 'unauthenticated', reason: 'malformed_token' });
  });

  it("mints nothing from a user's JWT alone: the workload must prove itself too", async () => {
    const userToken = await idp.userAccessToken({ sub: 'sarah', audience: AUDIENCE });
    const alone = await h.bus.request(tokenForJwtEndpoint, { tenant: 'acme', workload: 'sales-agent', userToken } as never).catch((e: unknown) => e);
    expect(alone).toBeInstanceOf(MandateError);
    expect((alone as MandateError).code).toBe('invalid_request');
    const otherAgent = await refusal(h.bus.request(tokenForJwtEndpoint, { tenant: 'acme', workload: 'sales-agent', userToken, clientAssertion: await assertion('report-agent') }));
    expect(otherAgent).toEqual({ code: 'unauthenticated', reason: 'assertion_wrong_subject' });
    const wrongKey = await refusal(h.bus.request(tokenForJwtEndpoint, { tenant: 'acme', workload: 'sales-agent', userToken, clientAssertion: await assertion('sales-agent', (await workloadKeyPair('stranger-key')).privateJwk) }));
    expect(wrongKey).toEqual({ code: 'unauthenticated', reason: 'assertion_unknown_key' });
  });

  it('mints for a bare user id only for workloads allowed to', async () => {
    const wat = await h.bus.request(tokenForUserEndpoint, { tenant: 'acme', workload: 'trusted-backend', userId: 'user-42', clientAssertion: await assertion('trusted-backend') });
    expect(await verifier.verify(wat.token, { tenant: 'acme', workload: 'trusted-backend', requireUser: true })).toMatchObject({
      bnd: 'user-id',
      user: { iss: USER_ID_ISSUER, sub: 'user-42' },
    });
    const refused = await refusal(h.bus.request(tokenForUserEndpoint, { tenant: 'acme', workload: 'report-agent', userId: 'user-42', clientAssertion: await assertion() }));
    expect(refused).toEqual({ code: 'access_denied', reason: 'user_id_tokens_not_allowed' });
  });

  it('a WAT works only for its tenant, workload and user', async () => {
    const user1 = await idp.userAccessToken({ sub: 'user-1', audience: AUDIENCE });
    const wat = (await h.bus.request(tokenForJwtEndpoint, { tenant: 'acme', workload: 'sales-agent', userToken: user1, clientAssertion: await assertion('sales-agent') })).token;
    const user = { iss: idp.issuer, sub: 'user-1' };
    const reasonOf = (expected: Parameters<WatVerifier['verify']>[1], token = wat) =>
      verifier.verify(token, expected).then(() => 'accepted', (e: MandateError) => e.details?.['reason']);
    expect(await reasonOf({ tenant: 'acme', workload: 'sales-agent', user })).toBe('accepted');
    expect(await reasonOf({ tenant: 'acme', workload: 'report-agent', user })).toBe('wat_wrong_workload');
    expect(await reasonOf({ tenant: 'acme', workload: 'sales-agent', user: { ...user, sub: 'user-2' } })).toBe('wat_wrong_user');
    expect(await reasonOf({ tenant: 'acme', workload: 'sales-agent', user: { iss: USER_ID_ISSUER, sub: 'user-1' } })).toBe('wat_wrong_user');
    expect(await reasonOf({ tenant: 'globex', workload: 'sales-agent', user })).toBe('wat_wrong_tenant');
    const alone = (await forWorkload()).token;
    expect(await reasonOf({ tenant: 'acme', workload: 'report-agent', requireUser: true }, alone)).toBe('wat_not_user_bound');
    // A user's token is not a WAT, whatever it says.
    expect(await reasonOf({ tenant: 'acme' }, user1)).toBe('wat_invalid');
    const later = new WatVerifier({ jwks: jwksOverNats(h.bus), now: () => Date.now() + 3_600_000 });
    expect(await later.verify(wat, { tenant: 'acme' }).catch((e: MandateError) => e.details?.['reason'])).toBe('wat_expired');
  });

  it('keeps tenants apart: nobody mints for another tenant\'s workload', async () => {
    // Answered like a bad key, so names cannot be probed without credentials; the audit says why.
    expect(await refusal(forWorkload('report-agent', undefined, 'globex'))).toEqual({ code: 'unauthenticated', reason: 'assertion_unknown_key' });
    expect(await refusal(forWorkload('no-such-agent'))).toEqual({ code: 'unauthenticated', reason: 'assertion_unknown_key' });
    await expect.poll(() => h.audit.some((r) => r.tenant === 'globex' && r.action === 'wat-mint' && r.reason === 'workload_not_found')).toBe(true);
  });

  it('rotates signing keys with overlap: old WATs verify, new WATs use the new key', async () => {
    const before = await forWorkload();
    const oldKid = decodeProtectedHeader(before.token).kid;
    const rotated = await h.bus.request(signingKeysRotateEndpoint, { actor: 'ops' });
    expect(rotated.kid).not.toBe(oldKid);
    const kids = (await h.bus.request(jwksEndpoint, {})).keys.map((k) => k.kid);
    expect(kids).toEqual([oldKid, rotated.kid]);
    const after = await forWorkload();
    expect(decodeProtectedHeader(after.token).kid).toBe(rotated.kid);
    // A verifier that cached the old JWKS meets the new kid, refetches once, and accepts both.
    const cached = new WatVerifier({ jwks: jwksOverNats(h.bus), cooldownMs: 0 });
    await cached.verify(before.token, { tenant: 'acme' });
    await cached.verify(after.token, { tenant: 'acme' });
    await cached.verify(before.token, { tenant: 'acme' });
  });

  it('audits each mint, allowed or denied, with the binding and without the token', async () => {
    const wat = await forWorkload();
    await forWorkload('keyless', await assertion('keyless')).catch(() => undefined);
    await expect.poll(() => h.audit.filter((r) => r.action === 'wat-mint' && r.reason === 'workload_has_no_keys').length).toBeGreaterThan(0);
    const succeeded = h.audit.find((r) => r.action === 'wat-mint' && r.outcome === 'succeeded');
    expect(succeeded).toMatchObject({ service: 'authorizer', details: { binding: 'workload' }, actor: { workload: 'report-agent' } });
    expect(JSON.stringify(h.audit)).not.toContain(wat.token.split('.')[2]!);
    await expect.poll(() => h.audit.some((r) => r.action === 'signing-key-rotate' && r.tenant === 'system')).toBe(true);
  });
});
