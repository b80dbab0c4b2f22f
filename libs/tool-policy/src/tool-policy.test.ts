import { describe, expect, it } from 'vitest';
import { MandateError } from '@mandate/contracts';
import { parsePolicySet, POLICY_LIMITS } from './policy-set.js';
import { ToolPolicy, type PolicyRequest } from './tool-policy.js';

const approveExpense = {
  name: 'finance___approve_expense',
  inputSchema: { type: 'object', properties: { amount: { type: 'number' }, units: { type: 'integer' }, currency: { type: 'string' }, lines: { type: 'array', items: { type: 'integer' } }, note: { anyOf: [{ type: 'string' }, { type: 'null' }] } }, required: ['amount'] },
};
const readNotes = { name: 'crm___notes', inputSchema: { type: 'object', properties: { accountId: { type: 'string' } } } };
const tools = [approveExpense, readNotes];

const FINANCE = `
@id("small-expenses")
permit (principal, action == Mandate::Action::"finance___approve_expense", resource)
when { principal.groups.contains("finance") && context.input.amount.lessThan(decimal("100.0")) };

@id("notes-for-sales")
permit (principal, action == Mandate::Action::"crm___notes", resource)
when { principal.hasTag("department") && principal.getTag("department") == "sales" };
`;

function request(overrides: Partial<PolicyRequest> & { amount?: number } = {}): PolicyRequest {
  const { amount = 50, ...rest } = overrides;
  return {
    user: { iss: 'https://idp.example', sub: 'sarah' },
    claims: { groups: ['finance'], department: 'sales' },
    scopes: ['finance.write'],
    gateway: 'sales',
    tool: approveExpense,
    arguments: { amount },
    now: Date.parse('2026-12-01T12:00:00Z'),
    ...rest,
  };
}

function refusal(work: () => unknown): MandateError {
  try {
    work();
  } catch (error) {
    if (error instanceof MandateError) return error;
    throw error;
  }
  throw new Error('expected a refusal');
}

describe('ToolPolicy', () => {
  const policy = ToolPolicy.load('test-v1', 'v1', parsePolicySet(FINANCE), tools);

  it('permits an expense under 100 for the finance group, denies 100 or more, and says which policy decided', () => {
    expect(policy.decide(request({ amount: 99.99 })).enforced).toEqual({ decision: 'allow', determining: ['small-expenses'], errors: [] });
    expect(policy.decide(request({ amount: 100 })).enforced).toEqual({ decision: 'deny', determining: [], errors: [] });
    expect(policy.decide(request({ amount: 5, claims: { groups: ['sales'] } })).enforced.decision).toBe('deny');
  });

  it('reads string claims as tags', () => {
    expect(policy.decide(request({ tool: readNotes, arguments: { accountId: 'a-1' } })).enforced.decision).toBe('allow');
    expect(policy.decide(request({ tool: readNotes, arguments: {}, claims: { department: 'legal' } })).enforced.decision).toBe('deny');
  });

  it('lets a forbid win over a permit, and denies a tool no policy permits (default deny)', () => {
    const strict = ToolPolicy.load('test-v2', 'v2', parsePolicySet(`${FINANCE}\n@id("no-bob") forbid (principal, action, resource) when { principal.sub == "bob" };`), tools);
    expect(strict.decide(request({ user: { iss: 'https://idp.example', sub: 'bob' } })).enforced).toEqual({ decision: 'deny', determining: ['no-bob'], errors: [] });
    expect(ToolPolicy.load('test-v3', 'v3', parsePolicySet(''), tools).decide(request()).enforced.decision).toBe('deny');
  });

  it('fails closed: a forbid that errors denies, and an amount Cedar cannot hold exactly is denied, not rounded', () => {
    const overflow = ToolPolicy.load('test-v7', 'v7', parsePolicySet(`${FINANCE}\n@id("overflowing") forbid (principal, action == Mandate::Action::"finance___approve_expense", resource) when { context.input has units && context.input.units + 9223372036854775807 > 0 };`), tools);
    expect(overflow.decide(request({ arguments: { amount: 5, units: 1 } })).enforced).toMatchObject({ decision: 'deny', errors: ['overflowing'] });
    expect(overflow.decide(request({ arguments: { amount: 5 } })).enforced.decision).toBe('allow');
    const precise = policy.decide(request({ amount: 99.99999 })).enforced;
    expect(precise.decision).toBe('deny');
    expect(precise.errors[0]).toContain('more than four fractional digits');
  });

  it('evaluates log-only policies beside the enforced ones, without enforcing them', () => {
    const trial = ToolPolicy.load('test-v4', 'v4', parsePolicySet(`${FINANCE}\n@id("trial-cap") @mode("log-only") forbid (principal, action == Mandate::Action::"finance___approve_expense", resource) when { context.input.amount.greaterThan(decimal("10.0")) };`), tools);
    const decided = trial.decide(request({ amount: 50 }));
    expect(decided.enforced.decision).toBe('allow');
    expect(decided.withLogOnly).toEqual({ decision: 'deny', determining: ['trial-cap'], errors: [] });
  });

  it('refuses a policy that does not validate against the tools, naming it and where it is', () => {
    const wrongType = refusal(() => ToolPolicy.load('test-v5', 'v5', parsePolicySet('@id("typo") permit (principal, action == Mandate::Action::"finance___approve_expense", resource) when { context.input.amount < "100" };'), tools));
    expect(wrongType.code).toBe('invalid_request');
    expect(wrongType.issues?.[0]?.path).toBe('policies.typo');
    expect(wrongType.message).toMatch(/typo: line 1, column \d+/);
    const removedTool = refusal(() => ToolPolicy.load('test-v6', 'v6', parsePolicySet('permit (principal, action == Mandate::Action::"finance___gone", resource);'), tools));
    expect(removedTool.issues?.[0]?.path).toBe('policies.policy0');
    expect(removedTool.message).toContain('finance___gone');
  });

  it('types context.input as the tool says: booleans, sets, nested records, sets of records; context.scopes; a property of a union type left out', () => {
    const order = {
      name: 'shop___order',
      inputSchema: {
        type: 'object',
        properties: {
          urgent: { type: 'boolean' },
          lines: { type: 'array', items: { type: 'integer' } },
          payee: { type: 'object', properties: { country: { type: 'string' }, verified: { type: 'boolean' } }, required: ['country'] },
          items: { type: 'array', items: { type: 'object', properties: { sku: { type: 'string' }, qty: { type: 'integer' } }, required: ['sku', 'qty'] } },
          note: { anyOf: [{ type: 'string' }, { type: 'null' }] },
        },
        required: ['urgent', 'lines', 'payee', 'items'],
      },
    };
    const rich = ToolPolicy.load(
      'test-typing',
      'v1',
      parsePolicySet(`@id("rich") permit (principal, action == Mandate::Action::"shop___order", resource)
        when { !context.input.urgent && context.input.lines.contains(3) && context.input.payee.country == "DE" && context.input.payee has verified && context.input.payee.verified
          && context.input.items.contains({ sku: "a-1", qty: 2 }) && context.scopes.contains("shop.order") };`),
      [order],
    );
    const args = { urgent: false, lines: [1, 3], payee: { country: 'DE', verified: true }, items: [{ sku: 'a-1', qty: 2 }], note: null };
    const decide = (change: Record<string, unknown>, scopes = ['shop.order']) => rich.decide(request({ tool: order, arguments: { ...args, ...change }, scopes })).enforced;
    expect(decide({})).toEqual({ decision: 'allow', determining: ['rich'], errors: [] });
    for (const change of [{ urgent: true }, { lines: [1, 2] }, { payee: { country: 'FR', verified: true } }, { payee: { country: 'DE', verified: false } }, { payee: { country: 'DE' } }, { items: [{ sku: 'a-1', qty: 3 }] }]) {
      expect(decide(change).decision, JSON.stringify(change)).toBe('deny');
    }
    expect(decide({}, ['shop.read']).decision).toBe('deny');
    const union = refusal(() => ToolPolicy.load('test-typing-union', 'v1', parsePolicySet('@id("on-note") permit (principal, action == Mandate::Action::"shop___order", resource) when { context.input.note == "hello" };'), [order]));
    expect(union.code).toBe('invalid_request');
    expect(union.message).toContain('on-note');
  });

  it('sees the agent calling (the token\'s client) as a Workload entity, and its id as context.client', () => {
    const agents = ToolPolicy.load(
      'test-agent',
      'v1',
      parsePolicySet(`@id("expense-agent-only") permit (principal, action == Mandate::Action::"finance___approve_expense", resource)
        when { context has agent && context.agent == Mandate::Workload::"expense-agent" && context has client && context.client == "expense-agent" };`),
      tools,
    );
    expect(agents.decide(request({ client: 'expense-agent' })).enforced).toEqual({ decision: 'allow', determining: ['expense-agent-only'], errors: [] });
    expect(agents.decide(request({ client: 'other-agent' })).enforced.decision).toBe('deny');
    expect(agents.decide(request()).enforced).toEqual({ decision: 'deny', determining: [], errors: [] });
    // The listing sees the agent too: another agent is not shown the tool.
    const principal = { user: { iss: 'https://idp.example', sub: 'sarah' }, claims: {}, scopes: [], gateway: 'sales' };
    expect(agents.mayPermit({ ...principal, client: 'expense-agent' })('finance___approve_expense')).toBe(true);
    expect(agents.mayPermit({ ...principal, client: 'other-agent' })('finance___approve_expense')).toBe(false);
  });

  it('refuses bad Cedar, unknown modes, duplicate ids and sets over the limits', () => {
    expect(refusal(() => parsePolicySet('permit (principal, action, resource) when {')).message).toMatch(/^the policies do not parse: line 1, column \d+/);
    expect(refusal(() => parsePolicySet('@mode("shadow") permit (principal, action, resource);')).message).toContain('@mode("shadow")');
    expect(refusal(() => parsePolicySet('@id("a") permit (principal, action, resource);\n@id("a") forbid (principal, action, resource);')).message).toContain('two policies are named a');
    const many = Array.from({ length: POLICY_LIMITS.policies + 1 }, () => 'permit (principal, action, resource);').join('\n');
    expect(refusal(() => parsePolicySet(many)).message).toContain('at most 1000 policies');
    const huge = `permit (principal, action, resource) when { context.time > 0 ${'|| context.time > 0 '.repeat(600)}};`;
    expect(refusal(() => parsePolicySet(huge)).message).toContain('larger than 10 KB');
    expect(refusal(() => parsePolicySet('x'.repeat(POLICY_LIMITS.setBytes + 1))).message).toContain('larger than 200 KB');
  });
});

describe('a reload while a call is being decided', () => {
  const three = ['a___one', 'b___two', 'c___three'].map((name) => ({ name, inputSchema: { type: 'object', properties: {} } }));
  const call = (tool: (typeof three)[number]) => request({ tool, arguments: {} });
  const forbid = (tool: string) => `forbid (principal, action == Mandate::Action::"${tool}", resource);`;
  const everything = 'permit (principal, action, resource);';

  it('denies through the superseded set, whose engine names now hold other tools’ policies; the new one decides right', () => {
    const before = ToolPolicy.load('reload-slot', 'v1', parsePolicySet(`${everything}\n${forbid('c___three')}`), three);
    expect(before.decide(call(three[2]!)).enforced.decision).toBe('deny');
    expect(before.decide(call(three[1]!)).enforced.decision).toBe('allow');
    // Another forbid moves the tools into other classes: the old object's class of c___three is now b___two's.
    const after = ToolPolicy.load('reload-slot', 'v2', parsePolicySet(`${everything}\n${forbid('c___three')}\n${forbid('a___one')}`), three);
    expect(before.superseded).toBe(true);
    for (const tool of three) expect(before.decide(call(tool)).enforced).toMatchObject({ decision: 'deny', errors: [expect.stringContaining('reloaded')] });
    expect(before.mayPermit({ user: call(three[1]!).user, claims: {}, scopes: [], gateway: 'sales' })('b___two')).toBe(false);
    expect(three.map((tool) => after.decide(call(tool)).enforced.decision)).toEqual(['deny', 'allow', 'deny']);
  });
});
