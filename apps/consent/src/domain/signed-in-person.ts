import type { UserRef } from '@mandate/contracts';

/** Who is signed in, as the IdP's ID token said: the user, the groups and roles they hold, a name to show. */
export interface SignedInPerson {
  user: UserRef;
  groups: string[];
  roles: string[];
  displayName?: string | undefined;
}

/** As many as an approver may carry over the bus (the approval contract's limits). */
const MAX_MEMBERSHIPS = 256;
const MAX_TEXT = 256;

/**
 * The groups and roles of an ID token's `groups` / `roles` claim: an array of names, or one name
 * as some IdPs send a single value. Anything else (numbers, objects, Entra's overage pointer
 * `_claim_names`) holds no membership; names longer than the contract allows are left out rather
 * than cut, since a cut name could be another group's.
 */
export function membershipsOf(claim: unknown): string[] {
  const values = typeof claim === 'string' ? [claim] : Array.isArray(claim) ? claim : [];
  const names = values.filter((value): value is string => typeof value === 'string' && value.length > 0 && value.length <= MAX_TEXT);
  return [...new Set(names)].slice(0, MAX_MEMBERSHIPS);
}

/** A name to show beside a decision: `name`, else `email`, else `preferred_username`; never used to decide. */
export function displayNameOf(claims: Record<string, unknown>): string | undefined {
  for (const claim of ['name', 'email', 'preferred_username']) {
    const value = claims[claim];
    if (typeof value === 'string' && value.trim()) return value.trim().slice(0, MAX_TEXT);
  }
  return undefined;
}

/** The signed-in person an ID token's (already validated) claims describe. */
export function personOf(claims: { iss: string; sub: string } & Record<string, unknown>): SignedInPerson {
  const displayName = displayNameOf(claims);
  return { user: { iss: claims.iss, sub: claims.sub }, groups: membershipsOf(claims['groups']), roles: membershipsOf(claims['roles']), ...(displayName ? { displayName } : {}) };
}
