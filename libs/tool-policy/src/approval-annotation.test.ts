import { describe, expect, it } from 'vitest';
import { MandateError } from '@mandate/contracts';
import { approvalRequirementOf, DEFAULT_APPROVAL_TTL_SECONDS } from './approval-annotation.js';
import { parsePolicySet } from './policy-set.js';
import { ToolPolicy, type PolicyRequest } from './tool-policy.js';

const approveExpense = { name: 'finance___approve_expense', inputSchema: { type: 'object', properties: { amount: { type: 'number' } }, required: ['amount'] } };

/** The seed's example with a person in the loop: under 100 is fine; 100 or more needs a finance manager. */
const EXPENSES = `
@id("under-100")
permit (principal, action == Mandate::Action::"finance___approve_expense", resource)
when { principal.groups.contains("finance") && context.input.amount.lessThan(decimal("100.0")) };

@id("managers-approve")
@approval("group:finance-managers, role:cfo")
@approval_ttl("PT30M")
permit (principal, action == Mandate::Action::"finance___approve_expense", resource)
when { principal.groups.contains("finance") && context.input.amount.greaterThanOrEqual(decimal("100.0")) };
`;

function request(amount: number, groups = ['finance']): PolicyRequest {
  return { user: { iss: 'https://idp.example', sub: 'sarah' }, claims: { groups }, scopes: [], gateway: 'finance-gw', tool: approveExpense, arguments: { amount }, now: Date.parse('2026-12-01T12:00:00Z') };
}

function refusal(text: string): string {
  try {
    parsePolicySet(text);
  } catch (error) {
    if (error instanceof MandateError) return `${error.code}: ${error.message}`;
    throw error;
  }
  return 'accepted';
}

describe('@approval and @approval_ttl on a permit', () => {
  it('reads who approves (user, group:<name>, role:<name>, comma-separated, duplicates once) and the TTL (ISO 8601, default 15 minutes)', () => {
    expect(approvalRequirementOf('permit', { approval: 'user' })).toEqual({ approvers: [{ kind: 'user' }], ttlSeconds: DEFAULT_APPROVAL_TTL_SECONDS });
    expect(approvalRequirementOf('permit', { approval: ' group:finance managers ,role:cfo, group:finance managers', approval_ttl: 'P1DT1H30M15S' })).toEqual({
      approvers: [{ kind: 'group', name: 'finance managers' }, { kind: 'role', name: 'cfo' }],
      ttlSeconds: 86_400 + 3_600 + 1_800 + 15,
    });
    expect(approvalRequirementOf('permit', { id: 'x' })).toBeUndefined();
    expect(parsePolicySet(EXPENSES).approvals).toEqual({ 'managers-approve': { approvers: [{ kind: 'group', name: 'finance-managers' }, { kind: 'role', name: 'cfo' }], ttlSeconds: 1800 } });
  });

  it('refuses, with the policy and its position, what would not mean anything', () => {
    const permit = (annotations: string) => `@id("p")\n${annotations}\npermit (principal, action, resource);`;
    expect(refusal(permit('@approval("group:x")').replace('permit', 'forbid'))).toBe('invalid_request: the policy p at line 1, column 1: only a permit can require approval (a forbid denies whatever anyone approves)');
    expect(refusal(permit('@approval'))).toContain('@approval needs a value');
    expect(refusal(permit('@approval("")'))).toContain('@approval needs a value');
    expect(refusal(permit('@approval("manager")'))).toContain('"manager" in @approval is not "user", "group:<name>" or "role:<name>"');
    expect(refusal(permit('@approval("group:")'))).toContain('is not "user"');
    expect(refusal(permit('@approval("user,")'))).toContain('"" in @approval');
    expect(refusal(permit(`@approval("${Array.from({ length: 17 }, (_, i) => `group:g${i}`).join(',')}")`))).toContain('at most 16 approvers');
    expect(refusal(permit(`@approval("group:${'g'.repeat(257)}")`))).toContain('at most 256 characters');
    expect(refusal(permit('@approval_ttl("PT30M")'))).toContain('@approval_ttl needs an @approval beside it');
    expect(refusal(permit('@approval("user") @approval_ttl("30 minutes")'))).toContain('is not an ISO 8601 duration');
    expect(refusal(permit('@approval("user") @approval_ttl("P1M")'))).toContain('is not an ISO 8601 duration');
    expect(refusal(permit('@approval("user") @approval_ttl("PT")'))).toContain('is not an ISO 8601 duration');
    expect(refusal(permit('@approval("user") @approval_ttl("PT5S")'))).toContain('between 10 seconds and 7 days');
    expect(refusal(permit('@approval("user") @approval_ttl("P8D")'))).toContain('between 10 seconds and 7 days');
    expect(refusal(`permit (principal, action, resource);\n\n@approval("role:")\npermit (principal, action, resource);`)).toContain('the policy policy1 at line 3, column 1');
  });
});

describe('ToolPolicy: a permit with @approval allows only with a person', () => {
  const policy = ToolPolicy.load('approval-rule', 'v1', parsePolicySet(EXPENSES), [approveExpense]);

  it('a call permitted only by a policy that requires approval needs it (who, and for how long)', () => {
    expect(policy.decide(request(250)).enforced).toEqual({
      decision: 'allow',
      determining: ['managers-approve'],
      errors: [],
      approval: { approvers: [{ kind: 'group', name: 'finance-managers' }, { kind: 'role', name: 'cfo' }], ttlSeconds: 1800 },
    });
  });

  it('a call permitted by a policy without @approval needs none, even when an approval policy also permits it', () => {
    expect(policy.decide(request(50)).enforced).toEqual({ decision: 'allow', determining: ['under-100'], errors: [] });
    const overlapping = ToolPolicy.load('approval-overlap', 'v1', parsePolicySet(`${EXPENSES}\n@id("cfo-any") permit (principal, action, resource) when { principal.groups.contains("cfo") };`), [approveExpense]);
    expect(overlapping.decide(request(250, ['finance', 'cfo'])).enforced).toEqual({ decision: 'allow', determining: expect.arrayContaining(['managers-approve', 'cfo-any']), errors: [] });
  });

  it('several approval policies: any of their approvers decides, within the shortest TTL; a forbid still wins; a deny needs nothing', () => {
    const two = ToolPolicy.load(
      'approval-two',
      'v1',
      parsePolicySet(`${EXPENSES}\n@id("big") @approval("user") @approval_ttl("PT10M") permit (principal, action, resource) when { context.input.amount.greaterThan(decimal("200.0")) };\n@id("no-1000") forbid (principal, action, resource) when { context.input.amount.greaterThanOrEqual(decimal("1000.0")) };`),
      [approveExpense],
    );
    expect(two.decide(request(250)).enforced.approval).toEqual({ approvers: [{ kind: 'group', name: 'finance-managers' }, { kind: 'role', name: 'cfo' }, { kind: 'user' }], ttlSeconds: 600 });
    expect(two.decide(request(1000)).enforced).toEqual({ decision: 'deny', determining: ['no-1000'], errors: [] });
    expect(policy.decide(request(250, ['sales'])).enforced).toEqual({ decision: 'deny', determining: [], errors: [] });
  });
});
