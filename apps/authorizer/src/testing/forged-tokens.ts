import { SignJWT, type JWTPayload } from 'jose';
import type { TestIdp } from '@mandate/testing/idp';

/**
 * A token signed by the IdP's genuine key with whatever claims and header a test needs: the way to
 * make tokens a real IdP would never issue (expired, wrong audience, odd headers).
 */
export async function forgeIdpToken(
  idp: TestIdp,
  claims: JWTPayload,
  header: Record<string, unknown> = {},
  /** Extension headers to let through jose's own `crit` check when signing. */
  crit: Record<string, boolean> = {},
): Promise<string> {
  const key = idp.signingKeys[0]!;
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT({ iss: idp.issuer, sub: 'user-1', iat: now, exp: now + 300, ...claims })
    .setProtectedHeader({ alg: key.alg, kid: key.kid, typ: 'at+jwt', ...header })
    .sign(key.privateKey, { crit });
}
