import { createHmac, createPublicKey } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { exportJWK, generateKeyPair, SignJWT, type JWK } from 'jose';
import { authorizeEndpoint, MandateError, tokenForJwtEndpoint, type DenialReason } from '@mandate/contracts';
import { natsServerMissing } from '@mandate/testing';
import { startTestIdp, type TestIdp } from '@mandate/testing/idp';
import { startSystem, type TestSystem } from '@mandate/testing/system';
import { signClientAssertion } from '@mandate/wat';
import { forgeIdpToken } from './testing/forged-tokens.js';

const missing = natsServerMissing('authorizer inbound authorization');

const AUDIENCE = 'https://crm.acme.example';
const pastCooldown = () => new Promise((resolve) => setTimeout(resolve, 1_100));
const b64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');

describe.skipIf(missing)('inbound authorization against a real oidc-provider', () => {
  let h: TestSystem;
  let idp: TestIdp;
  let otherIdp: TestIdp;
  const idps: TestIdp[] = [];

  async function freshIdp(): Promise<TestIdp> {
    const started = await startTestIdp();
    idps.push(started);
    return started;
  }

  /** A workload guarded by `provider` with the default config plus `extra`. */
  /** Each guarded workload's private key, for the client assertions `token-for-jwt` needs. */
  const keys = new Map<string, JWK>();

  async function guarded(name: string, provider: TestIdp, extra: Record<string, unknown> = {}, tenant = 'acme') {
    keys.set(name, await h.workload(name, { tenant }));
    await h.setAuthorizer(tenant, name, { discoveryUrl: provider.discoveryUrl, allowedAudiences: [AUDIENCE], ...extra });
    return name;
  }

  async function decide(workload: string, token: string, tenant = 'acme') {
    return h.bus.request(authorizeEndpoint, { tenant, workload, token });
  }

  async function denied(workload: string, token: string): Promise<DenialReason> {
    const decision = await decide(workload, token);
    if (decision.allowed) throw new Error('expected a denial');
    return decision.reason;
  }

  beforeAll(async () => {
    // jose's remote JWKS reads the real clock; a one-second cooldown keeps the waits below short.
    h = await startSystem({ services: ['directory', 'authorizer'], env: { JWKS_COOLDOWN_SECONDS: '1' } });
    idp = await freshIdp();
    otherIdp = await freshIdp();
    await guarded('crm-agent', idp);
  });

  afterAll(async () => {
    await h?.stop();
    await Promise.all(idps.map((i) => i.stop()));
  });

  it('allows a real user access token from the configured IdP, and says who the user is', async () => {
    const token = await idp.userAccessToken({ sub: 'sarah', audience: AUDIENCE, scope: 'crm:read' });
    const decision = await decide('crm-agent', token);
    expect(decision).toMatchObject({ allowed: true, user: { iss: idp.issuer, sub: 'sarah' }, clientId: 'test-app', scopes: ['crm:read'] });
  });

  it('audits allow and deny with the reason and trace id, never the token', async () => {
    const token = await idp.userAccessToken({ sub: 'audited', audience: AUDIENCE });
    await decide('crm-agent', token);
    await decide('crm-agent', 'not-a-token');
    await expect.poll(() => h.audit.filter((r) => r.action === 'authorize').length).toBeGreaterThanOrEqual(2);
    const allowed = h.audit.find((r) => r.action === 'authorize' && r.actor.user?.sub === 'audited')!;
    expect(allowed).toMatchObject({ outcome: 'allowed', tenant: 'acme', actor: { workload: 'crm-agent' } });
    expect(allowed.traceId).toMatch(/^[0-9a-f]{32}$/);
    const deniedRecord = h.audit.find((r) => r.action === 'authorize' && r.reason === 'malformed_token');
    expect(deniedRecord?.outcome).toBe('denied');
    expect(JSON.stringify(h.audit)).not.toContain(token.split('.')[2]!);
  });

  it('refuses a token from another IdP, without fetching anything from it', async () => {
    const foreign = await otherIdp.userAccessToken({ sub: 'sarah', audience: AUDIENCE });
    const before = otherIdp.requests.length;
    expect(await denied('crm-agent', foreign)).toBe('issuer_not_allowed');
    expect(otherIdp.requests.length).toBe(before);
  });

  describe('refuses forged or unsuitable tokens', () => {
    it('alg none', async () => {
      const token = `${b64({ alg: 'none', typ: 'JWT' })}.${b64({ iss: idp.issuer, sub: 'x', aud: AUDIENCE, exp: 9e9, iat: 1 })}.`;
      expect(await denied('crm-agent', token)).toBe('algorithm_not_allowed');
    });

    it('HS256 signed with the IdP RSA public key as the secret', async () => {
      const rsa = idp.signingKeys.find((k) => k.alg === 'RS256')!;
      const pem = createPublicKey({ key: rsa.publicJwk as never, format: 'jwk' }).export({ type: 'spki', format: 'pem' });
      const signingInput = `${b64({ alg: 'HS256', kid: rsa.kid })}.${b64({ iss: idp.issuer, sub: 'x', aud: AUDIENCE, exp: 9e9, iat: 1 })}`;
      const token = `${signingInput}.${createHmac('sha256', pem).update(signingInput).digest('base64url')}`;
      expect(await denied('crm-agent', token)).toBe('algorithm_not_allowed');
    });

    it('an asymmetric algorithm the IdP does not advertise', async () => {
      const { privateKey } = await generateKeyPair('PS384');
      const token = await new SignJWT({ iss: idp.issuer, sub: 'x', aud: AUDIENCE, iat: 1, exp: 9e9 }).setProtectedHeader({ alg: 'PS384', kid: 'k' }).sign(privateKey);
      expect(await denied('crm-agent', token)).toBe('algorithm_not_allowed');
    });

    it.each(['jku', 'x5u', 'jwk', 'x5c'])('a %s header naming its own key, and nothing is fetched from it', async (name) => {
      const attacker = await freshIdp();
      const { publicKey, privateKey } = await generateKeyPair('RS256');
      const value = name === 'jwk' ? await exportJWK(publicKey) : name === 'x5c' ? ['MIIB'] : attacker.jwksUri;
      const token = await new SignJWT({ iss: idp.issuer, sub: 'x', aud: AUDIENCE, iat: 1, exp: 9e9 })
        .setProtectedHeader({ alg: 'RS256', kid: 'attacker', [name]: value })
        .sign(privateKey);
      expect(await denied('crm-agent', token)).toBe('untrusted_key_header');
      expect(attacker.requests).toEqual([]);
    });

    it('an unknown crit header', async () => {
      const token = await forgeIdpToken(idp, { aud: AUDIENCE }, { crit: ['exp-ext'], 'exp-ext': true }, { 'exp-ext': true });
      expect(await denied('crm-agent', token)).toBe('unsupported_critical_header');
    });

    it('a token larger than 16 KiB, before parsing it', async () => {
      const token = await forgeIdpToken(idp, { aud: AUDIENCE, padding: 'x'.repeat(17_000) });
      expect(await denied('crm-agent', token)).toBe('token_too_large');
    });

    it.each(['', 'abc', 'a.b', 'a.b.c.d', '....', `${b64('x')}.${b64('y')}.sig`])('malformed %j', async (token) => {
      const reply = await h.nc.request(authorizeEndpoint.subject, JSON.stringify({ tenant: 'acme', workload: 'crm-agent', token }), { timeout: 5_000 });
      const body = reply.json<{ ok: boolean; result?: { reason: string }; error?: { code: string } }>();
      // The empty string is refused by the schema; the rest reach the pipeline.
      if (token === '') expect(body.error?.code).toBe('invalid_request');
      else expect(body.result?.reason).toBe('malformed_token');
    });

    it('a WAT presented as a user token', async () => {
      const token = await forgeIdpToken(idp, { aud: AUDIENCE }, { typ: 'wat+jwt' });
      expect(await denied('crm-agent', token)).toBe('wrong_token_type');
    });

    it('missing exp, iat or sub', async () => {
      for (const drop of ['exp', 'iat', 'sub']) {
        expect(await denied('crm-agent', await forgeIdpToken(idp, { aud: AUDIENCE, [drop]: undefined }))).toBe('missing_claim');
      }
    });

    it('expired, beyond the clock tolerance', async () => {
      const now = Math.floor(Date.now() / 1000);
      expect(await denied('crm-agent', await forgeIdpToken(idp, { aud: AUDIENCE, iat: now - 600, exp: now - 31 }))).toBe('token_expired');
      // Within the tolerance (30 s) it still passes.
      expect((await decide('crm-agent', await forgeIdpToken(idp, { aud: AUDIENCE, iat: now - 600, exp: now - 5 }))).allowed).toBe(true);
    });

    it('nbf or iat in the future', async () => {
      const now = Math.floor(Date.now() / 1000);
      expect(await denied('crm-agent', await forgeIdpToken(idp, { aud: AUDIENCE, nbf: now + 120 }))).toBe('token_not_yet_valid');
      expect(await denied('crm-agent', await forgeIdpToken(idp, { aud: AUDIENCE, iat: now + 120, exp: now + 600 }))).toBe('token_not_yet_valid');
    });

    it('wrong or missing audience', async () => {
      expect(await denied('crm-agent', await forgeIdpToken(idp, { aud: 'https://finance.acme.example' }))).toBe('audience_not_allowed');
      expect(await denied('crm-agent', await forgeIdpToken(idp, {}))).toBe('audience_not_allowed');
      expect((await decide('crm-agent', await forgeIdpToken(idp, { aud: ['https://other', AUDIENCE] }))).allowed).toBe(true);
    });

    it('with a resource named, an audience the config allows that is not that resource', async () => {
      const token = await forgeIdpToken(idp, { aud: AUDIENCE });
      expect((await decide('crm-agent', token)).allowed).toBe(true);
      // Allowed a moment ago (and remembered): not for a resource it does not name.
      expect(await h.bus.request(authorizeEndpoint, { tenant: 'acme', workload: 'crm-agent', token, resource: 'https://finance.acme.example' })).toMatchObject({ allowed: false, reason: 'audience_not_allowed' });
      expect((await h.bus.request(authorizeEndpoint, { tenant: 'acme', workload: 'crm-agent', token, resource: AUDIENCE })).allowed).toBe(true);
    });

    it('a signature that does not verify', async () => {
      const token = await forgeIdpToken(idp, { aud: AUDIENCE });
      const [header, payload] = token.split('.');
      const tampered = `${header}.${b64({ ...JSON.parse(Buffer.from(payload!, 'base64url').toString()), sub: 'admin' })}.${token.split('.')[2]}`;
      expect(await denied('crm-agent', tampered)).toBe('invalid_signature');
    });
  });

  describe('clients, scopes and custom claims', () => {
    it('allows only listed clients (client_id or azp) when clients are configured', async () => {
      await guarded('client-bound', idp, { allowedAudiences: [], allowedClients: ['test-app'] });
      expect((await decide('client-bound', await idp.userAccessToken({ sub: 'u', audience: AUDIENCE }))).allowed).toBe(true);
      expect(await denied('client-bound', await idp.userAccessToken({ sub: 'u', audience: AUDIENCE, clientId: 'other-app' }))).toBe('client_not_allowed');
      expect((await decide('client-bound', await forgeIdpToken(idp, { azp: 'test-app' }))).allowed).toBe(true);
      expect(await denied('client-bound', await forgeIdpToken(idp, {}))).toBe('client_not_allowed');
    });

    it('requires one of the allowed scopes', async () => {
      await guarded('scoped', idp, { allowedScopes: ['crm:read', 'crm:write'] });
      expect((await decide('scoped', await idp.userAccessToken({ sub: 'u', audience: AUDIENCE, scope: 'crm:write' }))).allowed).toBe(true);
      expect((await decide('scoped', await forgeIdpToken(idp, { aud: AUDIENCE, scp: ['crm:read'] }))).allowed).toBe(true);
      expect(await denied('scoped', await idp.userAccessToken({ sub: 'u', audience: AUDIENCE, scope: 'finance:read' }))).toBe('scope_not_allowed');
      expect(await denied('scoped', await forgeIdpToken(idp, { aud: AUDIENCE }))).toBe('scope_not_allowed');
    });

    it('checks each custom-claim operator, passing and failing, and the claim type', async () => {
      await guarded('claims', idp, {
        requiredClaims: [
          { claim: 'dept', valueType: 'string', operator: 'equals', value: 'sales' },
          { claim: 'groups', valueType: 'string[]', operator: 'contains', value: 'agents' },
          { claim: 'region', valueType: 'string', operator: 'containsAny', value: ['eu', 'us'] },
          { claim: 'roles', valueType: 'string[]', operator: 'containsAny', value: ['manager', 'exec'] },
        ],
      });
      const good = { dept: 'sales', groups: ['staff', 'agents'], region: 'eu', roles: ['exec'] };
      const real = await idp.userAccessToken({ sub: 'sarah', audience: AUDIENCE, claims: good });
      expect((await decide('claims', real)).allowed).toBe(true);
      const cases: [Record<string, unknown>, DenialReason][] = [
        [{ dept: 'finance' }, 'claim_mismatch'],
        [{ groups: ['staff'] }, 'claim_mismatch'],
        [{ region: 'apac' }, 'claim_mismatch'],
        [{ roles: ['intern'] }, 'claim_mismatch'],
        [{ dept: ['sales'] }, 'claim_wrong_type'],
        [{ groups: 'agents' }, 'claim_wrong_type'],
        [{ groups: ['agents', 7] }, 'claim_wrong_type'],
        [{ region: ['eu'] }, 'claim_wrong_type'],
        [{ roles: undefined }, 'claim_wrong_type'],
      ];
      for (const [change, reason] of cases) {
        const token = await idp.userAccessToken({ sub: 'sarah', audience: AUDIENCE, claims: { ...good, ...change } });
        expect(await denied('claims', token), JSON.stringify(change)).toBe(reason);
      }
    });
  });

  describe("the IdP's keys", () => {
    it.each([
      ['../../../../etc/passwd'],
      ["' OR 1=1 --"],
      ['k'.repeat(300)],
      ['${jndi:ldap://x}'],
      ['\u0000null'],
    ])('a hostile kid %j is refused without harm', async (kid) => {
      const token = await forgeIdpToken(idp, { aud: AUDIENCE }, { kid });
      const reason = await denied('crm-agent', token);
      expect(['malformed_token', 'unknown_signing_key']).toContain(reason);
    });

    it('a non-string kid is malformed', async () => {
      expect(await denied('crm-agent', await forgeIdpToken(idp, { aud: AUDIENCE }, { kid: 42 }))).toBe('malformed_token');
    });

    it('an unknown kid refetches the JWKS once, then cools down', async () => {
      const fresh = await freshIdp();
      await guarded('cooldown', fresh);
      expect((await decide('cooldown', await forgeIdpToken(fresh, { aud: AUDIENCE }))).allowed).toBe(true);
      const afterFirst = fresh.jwksRequestCount;
      await pastCooldown();
      expect(await denied('cooldown', await forgeIdpToken(fresh, { aud: AUDIENCE }, { kid: 'unknown-1' }))).toBe('unknown_signing_key');
      expect(fresh.jwksRequestCount).toBe(afterFirst + 1);
      for (const kid of ['unknown-2', 'unknown-3', 'unknown-4']) {
        expect(await denied('cooldown', await forgeIdpToken(fresh, { aud: AUDIENCE }, { kid }))).toBe('unknown_signing_key');
      }
      expect(fresh.jwksRequestCount).toBe(afterFirst + 1);
    });

    it('follows a key rotation at the IdP', async () => {
      const rotating = await freshIdp();
      await guarded('rotating', rotating);
      expect((await decide('rotating', await rotating.userAccessToken({ sub: 'u', audience: AUDIENCE }))).allowed).toBe(true);
      await rotating.rotateSigningKey();
      await pastCooldown();
      const afterRotation = await rotating.userAccessToken({ sub: 'u', audience: AUDIENCE });
      expect((await decide('rotating', afterRotation)).allowed).toBe(true);
    });

    it.each([
      ['down', { mode: 'down' } as const],
      ['slow', { mode: 'slow', delayMs: 3_000 } as const],
      ['answering HTML', { mode: 'html' } as const],
    ])('JWKS endpoint %s: denied as jwks_unavailable, and unavailable for a WAT', async (_what, behaviour) => {
      const broken = await freshIdp();
      const name = await guarded(`broken-${behaviour.mode}`, broken);
      broken.setJwksBehaviour(behaviour);
      const token = await forgeIdpToken(broken, { aud: AUDIENCE });
      expect(await denied(name, token)).toBe('jwks_unavailable');
      const clientAssertion = await signClientAssertion({ workload: name, privateJwk: keys.get(name)! });
      const error = await h.bus.request(tokenForJwtEndpoint, { tenant: 'acme', workload: name, userToken: token, clientAssertion }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(MandateError);
      expect((error as MandateError).code).toBe('unavailable');
      expect((error as MandateError).details).toEqual({ reason: 'jwks_unavailable' });
    });

    it("refuses an IdP whose discovery document names another issuer", async () => {
      const liar = await freshIdp();
      // Configure the discovery URL of one IdP, but present tokens claiming the issuer it serves at another path.
      await h.createWorkload({ tenant: 'acme', name: 'mismatch' });
      const url = `${liar.issuer}/tenant-a/.well-known/openid-configuration`;
      await h.setAuthorizer('acme', 'mismatch', { discoveryUrl: url, allowedAudiences: [AUDIENCE] });
      const token = await forgeIdpToken(liar, { aud: AUDIENCE, iss: `${liar.issuer}/tenant-a` });
      expect(['idp_discovery_failed', 'discovery_issuer_mismatch']).toContain(await denied('mismatch', token));
      expect(liar.jwksRequestCount).toBe(0);
    });
  });

  describe('workloads and tenants', () => {
    it('answers workload_not_found for an unknown workload or one in another tenant', async () => {
      const token = await idp.userAccessToken({ sub: 'u', audience: AUDIENCE });
      expect(await denied('no-such-agent', token)).toBe('workload_not_found');
      const other = await decide('crm-agent', token, 'globex');
      expect(other).toMatchObject({ allowed: false, reason: 'workload_not_found' });
    });

    it('denies a workload without an authorizer config', async () => {
      await h.createWorkload({ tenant: 'acme', name: 'unguarded' });
      expect(await denied('unguarded', await idp.userAccessToken({ sub: 'u', audience: AUDIENCE }))).toBe('no_authorizer_config');
    });

    it('re-evaluates a cached token as soon as the config changes', async () => {
      await guarded('tightened', idp);
      const token = await idp.userAccessToken({ sub: 'u', audience: AUDIENCE });
      expect((await decide('tightened', token)).allowed).toBe(true);
      expect((await decide('tightened', token)).allowed).toBe(true);
      await h.setAuthorizer('acme', 'tightened', { discoveryUrl: idp.discoveryUrl, allowedAudiences: ['https://elsewhere'] });
      await expect.poll(async () => (await decide('tightened', token)).allowed).toBe(false);
    });
  });
});
