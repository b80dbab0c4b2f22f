/*
 * Registered claims are never tags: `iss` and `sub` are the principal's attributes, `groups` its
 * set, and the rest say nothing a policy should decide on. Kept equal to the list `callOf` in
 * tool-policy.ts filters by (claims-cedar-reads.test.ts holds the two to the same decisions).
 */
const NOT_TAGS = new Set(['iss', 'sub', 'aud', 'exp', 'iat', 'nbf', 'jti', 'scope', 'groups']);

/**
 * Of a token's claims, only those Cedar reads: `groups` (its strings) and the string claims it
 * sees as tags. What a decision log keeps of a token, so that replaying it decides as the
 * original did without keeping the whole token.
 */
export function claimsCedarReads(claims: Readonly<Record<string, unknown>>): Record<string, string | string[]> {
  const kept: Record<string, string | string[]> = {};
  const groups = claims['groups'];
  if (Array.isArray(groups)) kept['groups'] = groups.filter((group): group is string => typeof group === 'string');
  for (const [name, value] of Object.entries(claims)) if (typeof value === 'string' && !NOT_TAGS.has(name)) kept[name] = value;
  return kept;
}
