import type { TenantId, TrailDigest } from '@mandate/contracts';
import { canonicalJson } from './canonical-json.js';
import { sha256Hex } from './chain.js';
import type { DigestKeyRing } from './signing-keys.js';

export type UnsignedDigest = Omit<TrailDigest, 'signature' | 'kid'>;

/** What the signature covers: every field of the digest except the signature itself. */
function signedBytes(digest: Omit<TrailDigest, 'signature'>): string {
  return canonicalJson({ ...digest, signature: undefined });
}

export function signDigest(keys: DigestKeyRing, digest: UnsignedDigest): TrailDigest {
  const withKid = { ...digest, kid: keys.currentKid };
  return { ...withKid, signature: keys.sign(signedBytes(withKid)) };
}

export function checkDigestSignature(keys: DigestKeyRing, digest: TrailDigest): 'valid' | 'invalid' | 'unknown-key' {
  return keys.verify(digest.kid, signedBytes(digest), digest.signature);
}

/** The next digest links to this: a hash over the whole signed digest. */
export function digestHash(digest: TrailDigest): string {
  return sha256Hex(canonicalJson(digest));
}

/**
 * The digest after `previous` (or the first), covering the chain up to `chainHead`. The caller
 * makes sure the head has not moved backwards past `previous.toSequence`.
 */
export function nextDigest(
  tenant: TenantId,
  previous: { number: number; toSequence: number; hash: string } | undefined,
  chainHead: { sequence: number; hash: string },
  issuedAt: string,
): UnsignedDigest {
  const fromSequence = (previous?.toSequence ?? 0) + 1;
  return {
    tenant,
    number: (previous?.number ?? 0) + 1,
    fromSequence,
    toSequence: chainHead.sequence,
    lastHash: chainHead.hash,
    previousDigestHash: previous?.hash ?? '0'.repeat(64),
    issuedAt,
  };
}
