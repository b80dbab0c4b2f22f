import { importJWK } from 'jose';
import { MandateError, type PublicJwk } from '@mandate/contracts';

/** RSA keys below this are refused: NIST SP 800-131A retired them. */
const MIN_RSA_BITS = 2048;

const CURVE_ALGORITHM: Record<string, string> = { 'P-256': 'ES256', 'P-384': 'ES384', 'P-521': 'ES512', Ed25519: 'EdDSA' };

function algorithmOf(jwk: PublicJwk): string | undefined {
  if (jwk.alg) return jwk.alg;
  if (jwk.kty === 'RSA') return 'RS256';
  return typeof jwk['crv'] === 'string' ? CURVE_ALGORITHM[jwk['crv']] : undefined;
}

function rsaBits(jwk: PublicJwk): number {
  const n = typeof jwk['n'] === 'string' ? jwk['n'] : '';
  return Buffer.from(n, 'base64url').length * 8;
}

/**
 * Proves each registered key is a usable public signing key (jose imports it), so a workload
 * cannot register something that later fails every client assertion in a confusing way.
 */
export async function assertUsablePublicKeys(keys: readonly PublicJwk[]): Promise<void> {
  for (const [index, jwk] of keys.entries()) {
    const problem = await problemWith(jwk);
    if (problem) {
      throw new MandateError('invalid_request', 'invalid public key', { issues: [{ path: `publicKeys.keys.${index}`, message: problem }] });
    }
  }
}

async function problemWith(jwk: PublicJwk): Promise<string | undefined> {
  const alg = algorithmOf(jwk);
  if (!alg) return 'unsupported key: use RSA (2048 bits or more), EC P-256/P-384/P-521 or OKP Ed25519';
  if (jwk.kty === 'RSA' && rsaBits(jwk) < MIN_RSA_BITS) return `RSA keys must have at least ${MIN_RSA_BITS} bits`;
  try {
    await importJWK({ ...jwk }, alg);
    return undefined;
  } catch {
    return `not a valid ${jwk.kty} public key for ${alg}`;
  }
}
