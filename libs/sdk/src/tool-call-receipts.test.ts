import { exportJWK, generateKeyPair, SignJWT, type CryptoKey, type JSONWebKeySet } from 'jose';
import { beforeAll, describe, expect, it } from 'vitest';
import { MandateError, RECEIPT_TYPE } from '@mandate/contracts';
import { freePort } from '@mandate/testing';
import { callDigest } from '@mandate/tool-policy/call-digest';
import { ReceiptReplayGuard, verifyToolCallReceipt } from './tool-call-receipts.js';

const NOW = Date.UTC(2026, 11, 2, 9) / 1000;
const user = { iss: 'https://idp.example', sub: 'sarah' };
const call = { tenant: 'acme', user, agent: 'test-app', gateway: 'finance-gw', tool: 'finance___approve_expense', arguments: { amount: 42 } };

async function refusal(promise: Promise<unknown>): Promise<unknown> {
  const error = await promise.then(() => undefined, (e: unknown) => e);
  if (!(error instanceof MandateError)) throw new Error(`expected a MandateError, got ${String(error)}`);
  return error.details?.['reason'];
}

describe('verifyToolCallReceipt (real jose, frozen clock)', () => {
  let privateKey: CryptoKey;
  let jwks: JSONWebKeySet;

  const sign = (claims: Record<string, unknown> = {}, header: Record<string, unknown> = {}) =>
    new SignJWT({
      sub_id: { format: 'iss_sub', ...user },
      client_id: call.agent,
      tenant: call.tenant,
      gateway: call.gateway,
      tool: call.tool,
      call_digest: callDigest(call),
      decision: 'allow',
      ...claims,
    })
      .setProtectedHeader({ alg: 'EdDSA', kid: 'receipt-key', typ: RECEIPT_TYPE, ...header })
      .setIssuer('https://gw.example/mcp/acme/finance-gw')
      .setAudience('https://finance.example/mcp')
      .setSubject(user.sub)
      .setIssuedAt(NOW)
      .setExpirationTime(NOW + 300)
      .setJti('receipt-1')
      .sign(privateKey);
  const options = { currentDate: new Date(NOW * 1000), issuer: 'https://gw.example/mcp/acme/finance-gw', audience: 'https://finance.example/mcp', call: { arguments: { amount: 42 }, name: 'approve_expense' } };

  beforeAll(async () => {
    const pair = await generateKeyPair('EdDSA');
    privateKey = pair.privateKey;
    jwks = { keys: [{ ...(await exportJWK(pair.publicKey)), kid: 'receipt-key', alg: 'EdDSA', use: 'sig' }] };
  });

  it('with a replay guard, a receipt authorizes one call: presented again it is refused, until it has expired', async () => {
    let now = NOW * 1000;
    const replayGuard = new ReceiptReplayGuard({ now: () => now });
    const receipt = await sign();
    await verifyToolCallReceipt(receipt, { ...options, jwks, replayGuard });
    expect(await refusal(verifyToolCallReceipt(receipt, { ...options, jwks, replayGuard }))).toBe('replayed');
    // A receipt that fails another check takes no place in the guard.
    const other = await new SignJWT({}).setProtectedHeader({ alg: 'EdDSA', typ: RECEIPT_TYPE }).sign(privateKey);
    expect(await refusal(verifyToolCallReceipt(other, { ...options, jwks, replayGuard }))).not.toBe('replayed');
    // Its id is forgotten only once it could no longer verify (exp plus the tolerance).
    now = (NOW + 300 + 31) * 1000;
    expect(await refusal(verifyToolCallReceipt(receipt, { ...options, jwks, replayGuard, currentDate: new Date(now) }))).toBe('expired');
    expect(replayGuard.firstUse('https://gw.example/mcp/acme/finance-gw\nreceipt-1', new Date(now + 1_000))).toBe(true);
    // Full of live ids, it refuses rather than forget one.
    const small = new ReceiptReplayGuard({ maxEntries: 1, now: () => NOW * 1000 });
    expect(small.firstUse('a', new Date((NOW + 10) * 1000))).toBe(true);
    expect(small.firstUse('b', new Date((NOW + 10) * 1000))).toBe(false);
  });

  it('answers who made the call and what decided it, from the receipt and the arguments alone', async () => {
    const verified = await verifyToolCallReceipt(await sign(), { ...options, jwks, issuer: 'https://gw.example/mcp/acme/finance-gw', audience: 'https://finance.example/mcp' });
    expect(verified).toEqual({
      id: 'receipt-1',
      issuer: 'https://gw.example/mcp/acme/finance-gw',
      tenant: 'acme',
      gateway: 'finance-gw',
      tool: 'finance___approve_expense',
      user,
      agent: 'test-app',
      decision: 'allow',
      issuedAt: new Date(NOW * 1000),
      expiresAt: new Date((NOW + 300) * 1000),
    });
  });

  it("matches call.name to the tool the receipt names: after the first ___ of a prefixed name, or the whole of an as-given one", async () => {
    const asGiven = { ...call, tool: 'approve_expense' };
    const receipt = await sign({ tool: asGiven.tool, call_digest: callDigest(asGiven) });
    await expect(verifyToolCallReceipt(receipt, { ...options, jwks })).resolves.toMatchObject({ tool: 'approve_expense' });
    expect(await refusal(verifyToolCallReceipt(receipt, { ...options, jwks, call: { ...options.call, name: 'expense' } }))).toBe('wrong_call');
    const nested = { ...call, tool: 'finance___approve___expense' };
    const prefixed = await sign({ tool: nested.tool, call_digest: callDigest(nested) });
    await expect(verifyToolCallReceipt(prefixed, { ...options, jwks, call: { ...options.call, name: 'approve___expense' } })).resolves.toMatchObject({ tool: nested.tool });
    expect(await refusal(verifyToolCallReceipt(prefixed, { ...options, jwks, call: { ...options.call, name: 'expense' } }))).toBe('wrong_call');
  });

  it('refuses what is not a receipt: another JWT type, claims outside the contract, a receipt of a denial, garbage', async () => {
    expect(await refusal(verifyToolCallReceipt(await sign({}, { typ: 'JWT' }), { ...options, jwks }))).toBe('malformed');
    expect(await refusal(verifyToolCallReceipt(await sign({ decision: 'deny' }), { ...options, jwks }))).toBe('malformed');
    expect(await refusal(verifyToolCallReceipt(await sign({ call_digest: 'short' }), { ...options, jwks }))).toBe('malformed');
    expect(await refusal(verifyToolCallReceipt(await sign({ sub_id: { format: 'iss_sub', iss: user.iss, sub: 'bob' } }), { ...options, jwks }))).toBe('malformed');
    expect(await refusal(verifyToolCallReceipt('not-a-receipt', { ...options, jwks }))).toBe('malformed');
  });

  it('refuses a key the set does not hold, and says so when the JWKS cannot be fetched', async () => {
    expect(await refusal(verifyToolCallReceipt(await sign({}, { kid: 'retired-key' }), { ...options, jwks }))).toBe('unknown_key');
    const down = new URL(`http://127.0.0.1:${await freePort()}/.well-known/jwks.json`);
    const error = await verifyToolCallReceipt(await sign(), { ...options, jwks: down }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(MandateError);
    expect(error).toMatchObject({ code: 'unavailable', details: { reason: 'jwks_unavailable' } });
  });

  it('tolerates a little clock skew on expiry (30 s unless told), and no more', async () => {
    const receipt = await sign();
    await expect(verifyToolCallReceipt(receipt, { ...options, jwks, currentDate: new Date((NOW + 310) * 1000) })).resolves.toMatchObject({ decision: 'allow' });
    expect(await refusal(verifyToolCallReceipt(receipt, { ...options, jwks, currentDate: new Date((NOW + 331) * 1000) }))).toBe('expired');
    expect(await refusal(verifyToolCallReceipt(receipt, { ...options, jwks, currentDate: new Date((NOW + 310) * 1000), clockToleranceSeconds: 0 }))).toBe('expired');
  });
});
