import type { ClaimRule, DenialReason } from '@mandate/contracts';

const isStringArray = (value: unknown): value is string[] => Array.isArray(value) && value.every((item) => typeof item === 'string');

/** Why a token's claims fail one custom-claim rule, or `undefined` when they pass. */
export function claimRuleFailure(rule: ClaimRule, claims: Record<string, unknown>): DenialReason | undefined {
  const actual = claims[rule.claim];
  if (rule.valueType === 'string' && typeof actual !== 'string') return 'claim_wrong_type';
  if (rule.valueType === 'string[]' && !isStringArray(actual)) return 'claim_wrong_type';
  switch (rule.operator) {
    case 'equals':
      return actual === rule.value ? undefined : 'claim_mismatch';
    case 'contains':
      return (actual as string[]).includes(rule.value) ? undefined : 'claim_mismatch';
    case 'containsAny': {
      const values = typeof actual === 'string' ? [actual] : (actual as string[]);
      return values.some((value) => rule.value.includes(value)) ? undefined : 'claim_mismatch';
    }
  }
}
