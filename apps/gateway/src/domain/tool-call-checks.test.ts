import { describe, expect, it } from 'vitest';
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
