import { randomUUID } from 'node:crypto';
import { importJWK, SignJWT, type JWK } from 'jose';
import { DEFAULT_WAT_ISSUER, MandateError } from '@mandate/contracts';

const CURVE_ALGORITHM: Record<string, string> = { 'P-256': 'ES256', 'P-384': 'ES384', 'P-521': 'ES512', Ed25519: 'EdDSA' };

export interface ClientAssertionOptions {
  /** The workload name: both `iss` and `sub` of the assertion (RFC 7523 section 3). */
  workload: string;
  /** The workload's private key as a JWK with the `kid` it is registered under in the directory. */
  privateJwk: JWK;
  /** The authorizer's identifier (its WAT issuer). */
  audience?: string;
  /** Default 60 s; the authorizer refuses more than 300 s. */
  lifetimeSeconds?: number;
  now?: () => number;
}

/**
 * Signs an RFC 7523 client assertion (`private_key_jwt`) with which a workload proves it holds a
 * key registered for it. Each has a fresh `jti`: the authorizer accepts an assertion once.
 */
export async function signClientAssertion(options: ClientAssertionOptions): Promise<string> {
  const { privateJwk } = options;
  if (!privateJwk.kid) throw new TypeError('the private JWK needs the kid it is registered under');
  if (!privateJwk.d) throw new TypeError('signing a client assertion needs the private key (the JWK has no "d")');
  const alg = privateJwk.alg ?? (privateJwk.kty === 'RSA' ? 'RS256' : CURVE_ALGORITHM[privateJwk.crv ?? '']);
  if (!alg) throw new TypeError(`cannot tell the signing algorithm of a ${privateJwk.kty} key; set "alg" on the JWK`);
  const key = await importJWK(privateJwk, alg);
  const now = Math.floor((options.now?.() ?? Date.now()) / 1000);
  return new SignJWT({})
    .setProtectedHeader({ alg, kid: privateJwk.kid, typ: 'JWT' })
    .setIssuer(options.workload)
    .setSubject(options.workload)
    .setAudience(options.audience ?? DEFAULT_WAT_ISSUER)
    .setIssuedAt(now)
    .setExpirationTime(now + (options.lifetimeSeconds ?? 60))
    .setJti(randomUUID())
    .sign(key);
}

/**
 * Refuses, as `invalid_request` on `workload.privateJwk`, a workload key a service is about to
 * keep for later (a job's, a gateway's) that the authorizer does not accept: `mint` gets a WAT
 * with it now, so a wrong key fails when it is given, not when it is first used.
 */
export async function assertKeyAccepted(workload: string, mint: () => Promise<unknown>): Promise<void> {
  try {
    await mint();
  } catch (error) {
    if (error instanceof MandateError && (error.code === 'unauthenticated' || error.code === 'not_found' || error.code === 'access_denied')) {
      throw new MandateError('invalid_request', `the authorizer does not accept this key for workload ${workload} (${error.code})`, {
        issues: [{ path: 'workload.privateJwk', message: 'not a key registered for the workload in the directory' }],
      });
    }
    if (error instanceof TypeError) throw new MandateError('invalid_request', 'the workload key cannot sign', { issues: [{ path: 'workload.privateJwk', message: error.message }] });
    throw error;
  }
}
