import { randomBytes } from 'node:crypto';
import { exportJWK, generateKeyPair, importJWK, type CryptoKey, type JWK } from 'jose';

export type SigningAlg = 'RS256' | 'ES256';

/** A private signing key of an authorization server, with the public half as published in its JWKS. */
export interface SigningKey {
  kid: string;
  alg: SigningAlg;
  privateKey: CryptoKey;
  publicJwk: JWK;
}

/** A signing key with its private JWK, which oidc-provider is configured with. */
export type SigningKeyPair = SigningKey & { privateJwk: JWK };

export async function newSigningKey(alg: SigningAlg): Promise<SigningKeyPair> {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
  const kid = `${alg.toLowerCase()}-${randomBytes(6).toString('hex')}`;
  const meta = { kid, alg, use: 'sig' };
  const [publicJwk, privateJwk] = await Promise.all([exportJWK(publicKey), exportJWK(privateKey)]);
  return { kid, alg, privateKey, publicJwk: { ...publicJwk, ...meta }, privateJwk: { ...privateJwk, ...meta } };
}

/** A key pair again from its private JWK (as {@link newSigningKey} made it), e.g. one kept in a file across restarts. */
export async function signingKeyFromJwk(privateJwk: JWK): Promise<SigningKeyPair> {
  const { kid } = privateJwk;
  const alg = (['RS256', 'ES256'] as const).find((candidate) => candidate === privateJwk.alg);
  if (!kid || !alg) throw new TypeError('a signing key needs a kid and alg RS256 or ES256');
  const privateKey = (await importJWK(privateJwk, alg, { extractable: true })) as CryptoKey;
  const { d: _d, p: _p, q: _q, dp: _dp, dq: _dq, qi: _qi, ...publicJwk } = privateJwk;
  return { kid, alg, privateKey, publicJwk, privateJwk };
}
