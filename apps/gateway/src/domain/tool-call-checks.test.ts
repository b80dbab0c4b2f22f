import { describe, expect, it } from 'vitest';
import { parsePolicySet, ToolPolicy } from '@mandate/tool-policy';
import { toolCallChecks } from './tool-call.js';

describe('the tool-call checks', () => {
  const table = toolCallChecks(() => () => ({ valid: true }));

  it('sees first whether the principal may see the tool, so nothing about a hidden tool shapes the answer; then the arguments; then policy, which sees only validated arguments', () => {
    expect(table.map((check) => [check.name, check.reasons])).toEqual([
      ['the principal sees the tool', ['unknown_tool']],
      ['the arguments match the input schema', ['invalid_arguments']],
      ['the policy set permits the call', ['policy_denied', 'policy_unavailable']],
    ]);
  });

  it('has no reason twice', () => {
    const reasons = table.flatMap((check) => check.reasons);
    expect(new Set(reasons).size).toBe(reasons.length);
  });
});

describe('the tool-call checks, with a policy set that hides a tool', () => {
  const tools = ['a___open', 'b___closed'].map((name) => ({ name, inputSchema: { type: 'object', properties: {} } }));
  const hideClosed = 'permit (principal, action, resource);\nforbid (principal, action == Mandate::Action::"b___closed", resource);';
  const contextFor = (evaluator: ToolPolicy, name: string) => ({
    request: {
      gateway: { name: 'gw', catalog: { find: () => ({ ...tools.find((tool) => tool.name === name)!, target: name.split('___')[0] }) }, policy: { name: 'set', version: 1, hash: 'h', mode: 'enforce', evaluator } },
      principal: { user: { iss: 'https://idp.example', sub: 'sarah' }, scopes: new Set<string>(), claims: {}, expiresAt: Date.now() + 60_000, userToken: () => 'token' },
      name,
      arguments: {},
      urlElicitation: false,
    },
    now: Date.now(),
  });
  const refusedBy = (evaluator: ToolPolicy, name: string) => {
    const ctx = contextFor(evaluator, name) as never;
    const table = toolCallChecks(() => () => ({ valid: true }));
    try {
      for (const check of table) check.run(ctx);
      return undefined;
    } catch (error) {
      return error as { reason: string; hidden: boolean };
    }
  };

  it('answers a denied call of a tool the set hides from the caller as hidden, and of a listed one as denied', () => {
    const policy = ToolPolicy.load('checks-hidden', 'v1', parsePolicySet(hideClosed), tools);
    expect(refusedBy(policy, 'b___closed')).toMatchObject({ reason: 'policy_denied', hidden: true });
    expect(refusedBy(policy, 'a___open')).toBeUndefined();
  });

  it('never calls a listed tool hidden because the set was reloaded while the call was decided', () => {
    const before = ToolPolicy.load('checks-reload', 'v1', parsePolicySet(hideClosed), tools);
    ToolPolicy.load('checks-reload', 'v2', parsePolicySet(hideClosed), tools);
    expect(before.superseded).toBe(true);
    expect(refusedBy(before, 'a___open')).toMatchObject({ reason: 'policy_denied', hidden: false });
  });
});
