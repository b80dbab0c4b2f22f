import { describe, expect, it } from 'vitest';
import { partitionByAction } from './action-partition.js';
import { parsePolicySet } from './policy-set.js';
import { ToolPolicy, type PolicyPrincipal } from './tool-policy.js';

const amountSchema = { type: 'object', properties: { amount: { type: 'number' } }, required: ['amount'] };
const tools = [
  { name: 'finance___approve_expense', inputSchema: amountSchema },
  { name: 'finance___refund', inputSchema: amountSchema },
  { name: 'crm___notes', inputSchema: { type: 'object', properties: { accountId: { type: 'string' } } } },
  { name: 'crm___delete_account', inputSchema: { type: 'object', properties: {} } },
];

const SET = `
@id("finance-expenses")
permit (principal, action == Mandate::Action::"finance___approve_expense", resource)
when { principal.groups.contains("finance") && context.input.amount.lessThan(decimal("100.0")) };

@id("refunds-for-everyone")
permit (principal, action == Mandate::Action::"finance___refund", resource);

@id("no-refunds-for-contractors")
forbid (principal, action == Mandate::Action::"finance___refund", resource)
when { principal.hasTag("employment") && principal.getTag("employment") == "contractor" };

@id("no-large-refunds")
forbid (principal, action == Mandate::Action::"finance___refund", resource)
when { context.input.amount.greaterThan(decimal("500.0")) };

@id("notes")
permit (principal, action == Mandate::Action::"crm___notes", resource);

@id("no-bob")
forbid (principal, action, resource) when { principal.sub == "bob" };
`;

function principal(sub: string, claims: Record<string, unknown> = {}): PolicyPrincipal {
  return { user: { iss: 'https://idp.example', sub }, claims, scopes: ['tools'], gateway: 'sales' };
}

function listed(policy: ToolPolicy, who: PolicyPrincipal): string[] {
  const may = policy.mayPermit(who);
  return tools.map((tool) => tool.name).filter(may);
}

describe('ToolPolicy.mayPermit (what tools/list shows)', () => {
  const policy = ToolPolicy.load('may-permit-v1', 'v1', parsePolicySet(SET), tools);

  it('hides a tool no policy permits, and one permitted only for a group the principal is not in', () => {
    expect(listed(policy, principal('sarah', { groups: ['finance'] }))).toEqual(['finance___approve_expense', 'finance___refund', 'crm___notes']);
    expect(listed(policy, principal('dave', { groups: ['sales'] }))).toEqual(['finance___refund', 'crm___notes']);
  });

  it('hides every tool an unconditional forbid covers for this principal, and only for them', () => {
    expect(listed(policy, principal('bob', { groups: ['finance'] }))).toEqual([]);
    expect(listed(policy, principal('carol', { employment: 'contractor' }))).toEqual(['crm___notes']);
  });

  it('keeps a tool whose forbid depends on the arguments (some call could still be permitted)', () => {
    const decided = policy.decide({ ...principal('dave'), tool: tools[1]!, arguments: { amount: 900 }, now: Date.now() });
    expect(decided.enforced).toEqual({ decision: 'deny', determining: ['no-large-refunds'], errors: [] });
    expect(policy.mayPermit(principal('dave'))('finance___refund')).toBe(true);
  });

  it('keeps a tool whose permit depends on the time, and answers nothing for a tool the set does not know', () => {
    const timed = ToolPolicy.load('may-permit-v2', 'v2', parsePolicySet('permit (principal, action == Mandate::Action::"crm___notes", resource) when { context.time < 1 };'), tools);
    expect(listed(timed, principal('sarah'))).toEqual(['crm___notes']);
    expect(timed.mayPermit(principal('sarah'))('crm___gone')).toBe(false);
  });

  it('decides each tool on its own where a policy reads the action in its conditions', () => {
    const readsAction = ToolPolicy.load('may-permit-v3', 'v3', parsePolicySet('permit (principal, action, resource) when { action == Mandate::Action::"crm___notes" || action == Mandate::Action::"finance___refund" };'), tools);
    expect(listed(readsAction, principal('sarah'))).toEqual(['finance___refund', 'crm___notes']);
  });

  it('answers from its cache for the same principal and apart for another', () => {
    const sarah = principal('sarah', { groups: ['finance'] });
    expect(listed(policy, sarah)).toEqual(listed(policy, { ...sarah, claims: { groups: ['finance'] } }));
    expect(listed(policy, { ...sarah, claims: { groups: [] } })).toEqual(['finance___refund', 'crm___notes']);
  });
});

describe('partitionByAction', () => {
  it('puts each tool with the policies whose action scope takes it in, and those about any action everywhere', () => {
    const { policies } = parsePolicySet(SET);
    const { classes, classOf } = partitionByAction(policies, tools.map((tool) => tool.name));
    const of = (tool: string) => Object.keys(classes[classOf.get(tool)!]!.policies).sort();
    expect(of('finance___refund')).toEqual(['no-bob', 'no-large-refunds', 'no-refunds-for-contractors', 'refunds-for-everyone']);
    expect(of('finance___approve_expense')).toEqual(['finance-expenses', 'no-bob']);
    expect(of('crm___delete_account')).toEqual(['no-bob']);
    expect(classes[classOf.get('crm___delete_account')!]!.permits.size).toBe(0);
  });

  it('reads action lists and finds conditions that read the action', () => {
    const { policies } = parsePolicySet('@id("two") permit (principal, action in [Mandate::Action::"a", Mandate::Action::"b"], resource) when { action == Mandate::Action::"a" };');
    const { classes, classOf } = partitionByAction(policies, ['a', 'b', 'c']);
    expect(classOf.get('a')).toBe(classOf.get('b'));
    expect(classes[classOf.get('a')!]!.readsAction).toBe(true);
    expect(Object.keys(classes[classOf.get('c')!]!.policies)).toEqual([]);
  });
});
