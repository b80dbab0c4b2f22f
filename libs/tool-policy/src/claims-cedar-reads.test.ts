import { describe, expect, it } from 'vitest';
import { claimsCedarReads } from './claims-cedar-reads.js';
import { parsePolicySet } from './policy-set.js';
import { ToolPolicy, type PolicyRequest } from './tool-policy.js';

const notes = { name: 'crm___notes', inputSchema: { type: 'object', properties: { accountId: { type: 'string' } } } };

const POLICIES = `
@id("sales-notes")
permit (principal, action == Mandate::Action::"crm___notes", resource)
when { principal.groups.contains("sales") && principal.hasTag("department") && principal.getTag("department") == "emea" };

@id("no-contractors")
forbid (principal, action, resource) when { principal.hasTag("employment") && principal.getTag("employment") == "contractor" };
`;

const token = {
  iss: 'https://idp.example',
  sub: 'sarah',
  aud: 'https://gw.example/mcp/acme/crm',
  exp: 2_000_000_000,
  iat: 1_900_000_000,
  jti: 'token-id-1',
  scope: 'crm.read',
  groups: ['sales', 42, 'emea-team'],
  department: 'emea',
  employment: 'staff',
  email_verified: true,
  address: { country: 'FR' },
};

function request(claims: Record<string, unknown>): PolicyRequest {
  return { user: { iss: token.iss, sub: token.sub }, claims, scopes: ['crm.read'], gateway: 'crm', tool: notes, arguments: { accountId: 'a-1' }, now: Date.parse('2026-12-01T12:00:00Z') };
}

describe('claimsCedarReads', () => {
  it('keeps the string groups and the string claims Cedar sees as tags, nothing registered and nothing else', () => {
    expect(claimsCedarReads(token)).toEqual({ groups: ['sales', 'emea-team'], department: 'emea', employment: 'staff' });
    expect(claimsCedarReads({ groups: 'not-a-list' })).toEqual({});
  });

  it('decides as the whole token does, for a permit and for a forbid on a tag', () => {
    const policy = ToolPolicy.load('claims-test', 'v1', parsePolicySet(POLICIES), [notes]);
    for (const claims of [token, { ...token, employment: 'contractor' }, { ...token, groups: ['finance'] }, { ...token, department: undefined }]) {
      expect(policy.decide(request(claimsCedarReads(claims)))).toEqual(policy.decide(request(claims)));
    }
    expect(policy.decide(request(claimsCedarReads(token))).enforced).toMatchObject({ decision: 'allow', determining: ['sales-notes'] });
    expect(policy.decide(request(claimsCedarReads({ ...token, employment: 'contractor' }))).enforced).toMatchObject({ decision: 'deny', determining: ['no-contractors'] });
  });
});
