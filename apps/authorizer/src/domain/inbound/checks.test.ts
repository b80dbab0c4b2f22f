import { describe, expect, it } from 'vitest';
import { DENIAL_REASONS, type ClaimRule } from '@mandate/contracts';
import { claimRuleFailure } from './claim-rules.js';
import { INBOUND_CHECKS } from './checks.js';

describe('the inbound check table', () => {
  it('names each check once, and every reason it gives is in DENIAL_REASONS', () => {
    const names = INBOUND_CHECKS.map((check) => check.name);
    expect(new Set(names).size).toBe(names.length);
    for (const check of INBOUND_CHECKS) {
      expect(check.reasons.length).toBeGreaterThan(0);
      for (const reason of check.reasons) expect(DENIAL_REASONS).toHaveProperty(reason);
    }
  });

  it('decides everything it can from the token and config before the first network check', () => {
    const names = INBOUND_CHECKS.map((check) => check.name);
    const firstNetwork = names.indexOf('discovery');
    for (const offline of ['size', 'structure', 'type', 'critical-headers', 'key-source-headers', 'asymmetric-algorithm', 'configured-issuer']) {
      expect(names.indexOf(offline)).toBeLessThan(firstNetwork);
    }
    expect(names.indexOf('signature')).toBeLessThan(names.indexOf('audience'));
  });
});

describe('custom claim rules', () => {
  const cases: [ClaimRule, Record<string, unknown>, string | undefined][] = [
    [{ claim: 'dept', valueType: 'string', operator: 'equals', value: 'sales' }, { dept: 'sales' }, undefined],
    [{ claim: 'dept', valueType: 'string', operator: 'equals', value: 'sales' }, { dept: 'Sales' }, 'claim_mismatch'],
    [{ claim: 'dept', valueType: 'string', operator: 'equals', value: 'sales' }, {}, 'claim_wrong_type'],
    [{ claim: 'g', valueType: 'string[]', operator: 'contains', value: 'a' }, { g: ['b', 'a'] }, undefined],
    [{ claim: 'g', valueType: 'string[]', operator: 'contains', value: 'a' }, { g: [] }, 'claim_mismatch'],
    [{ claim: 'g', valueType: 'string[]', operator: 'contains', value: 'a' }, { g: 'a' }, 'claim_wrong_type'],
    [{ claim: 'g', valueType: 'string[]', operator: 'containsAny', value: ['a', 'b'] }, { g: ['c', 'b'] }, undefined],
    [{ claim: 'g', valueType: 'string[]', operator: 'containsAny', value: ['a', 'b'] }, { g: ['c'] }, 'claim_mismatch'],
    [{ claim: 'r', valueType: 'string', operator: 'containsAny', value: ['eu', 'us'] }, { r: 'us' }, undefined],
    [{ claim: 'r', valueType: 'string', operator: 'containsAny', value: ['eu', 'us'] }, { r: 'apac' }, 'claim_mismatch'],
    [{ claim: 'r', valueType: 'string', operator: 'containsAny', value: ['eu', 'us'] }, { r: { toString: 'eu' } }, 'claim_wrong_type'],
    [{ claim: '__proto__', valueType: 'string', operator: 'equals', value: 'x' }, {}, 'claim_wrong_type'],
  ];
  it.each(cases)('%j on %j gives %s', (rule, claims, expected) => {
    expect(claimRuleFailure(rule, claims)).toBe(expected);
  });
});
