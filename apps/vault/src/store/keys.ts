import { createHash } from 'node:crypto';
import type { UserRef } from '@mandate/contracts';
import { encodeKeySegment } from '@mandate/store';

/*
 * Store ids of the vault's records. Users and scope sets are hashed (an IdP `iss` alone may be
 * 2 KiB), providers and workloads encoded, so user input never shapes a key and every id fits.
 */
const hash = (text: string) => createHash('sha256').update(text).digest('base64url').slice(0, 32);

export const userKey = (user: UserRef) => `u${hash(`${user.iss}\n${user.sub}`)}`;
export const scopeSetKey = (scopes: readonly string[]) => `s${hash([...new Set(scopes)].sort().join(' '))}`;
export const providerKey = (provider: string) => `p${encodeKeySegment(provider)}`;
export const workloadKey = (workload: string) => `w${encodeKeySegment(workload)}`;

/** One user's tokens for one provider and scope set; the prefix without the scope set finds them all. */
export const userTokensId = (user: UserRef, provider: string, scopes: readonly string[]) => `${userTokensPrefix(user, provider)}${scopeSetKey(scopes)}`;
export const userTokensPrefix = (user: UserRef, provider: string) => `${userKey(user)}.${providerKey(provider)}.`;
