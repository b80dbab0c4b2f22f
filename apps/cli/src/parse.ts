import { InvalidArgumentError } from 'commander';
import type { ClaimRule } from '@mandate/contracts';

/**
 * Option parsers for commander: each turns one command-line value into what the request needs,
 * or throws `InvalidArgumentError` (a usage error, exit code 2) saying what the value should be.
 */

/** Where commander keeps an option's value: `--client-secret-file` (or `client-secret-file`) → `clientSecretFile`. */
export function attributeOf(flag: string): string {
  return flag.replace(/^--/, '').replace(/-([a-z])/g, (_m, c: string) => c.toUpperCase());
}

/** A repeatable string option: `--return-url a --return-url b`. */
export function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}

export function nonNegativeInteger(value: string): number {
  if (!/^\d+$/.test(value) || !Number.isSafeInteger(Number(value))) throw new InvalidArgumentError('must be a whole number (0 or more)');
  return Number(value);
}

export function positiveInteger(value: string): number {
  const parsed = nonNegativeInteger(value);
  if (parsed === 0) throw new InvalidArgumentError('must be a whole number (1 or more)');
  return parsed;
}

/** A repeatable `key=value` option; a key given twice is a mistake, not a silent overwrite. */
function keyValueCollector(what: string) {
  return (value: string, previous: Record<string, string> | undefined): Record<string, string> => {
    const at = value.indexOf('=');
    if (at <= 0) throw new InvalidArgumentError('must be key=value');
    const key = value.slice(0, at);
    if (previous && Object.hasOwn(previous, key)) throw new InvalidArgumentError(`${what} ${key} is given twice`);
    return { ...previous, [key]: value.slice(at + 1) };
  };
}

/** `--tag key=value`, repeatable. */
export const collectTag = keyValueCollector('tag');

/** `--param key=value` (a provider preset's parameter, e.g. `domain=dev-1.okta.com`), repeatable. */
export const collectParam = keyValueCollector('param');

const CLAIM_RULE = /^(\S+)\s+(equals|containsAny|contains)\s+(.+)$/s;

export const CLAIM_SYNTAX = '"<claim> equals <value>", "<claim> contains <value>" or "<claim> containsAny <v1>,<v2>,…"';

/**
 * `--claim "<claim> equals <value>"` (a string claim equal to value), `"<claim> contains <value>"`
 * (a string-array claim that includes value), `"<claim> containsAny v1,v2"` (a string-array claim
 * that includes one of them). Shapes follow `claimRuleSchema` in the directory contract.
 */
export function parseClaimRule(text: string): ClaimRule {
  const match = CLAIM_RULE.exec(text.trim());
  if (!match) throw new InvalidArgumentError(`must be ${CLAIM_SYNTAX}`);
  const [, claim, operator, rest] = match as unknown as [string, string, 'equals' | 'contains' | 'containsAny', string];
  const value = rest.trim();
  switch (operator) {
    case 'equals':
      return { claim, valueType: 'string', operator, value };
    case 'contains':
      return { claim, valueType: 'string[]', operator, value };
    case 'containsAny': {
      const values = value
        .split(',')
        .map((v) => v.trim())
        .filter((v) => v.length > 0);
      if (values.length === 0) throw new InvalidArgumentError('containsAny needs at least one value: "<claim> containsAny v1,v2"');
      return { claim, valueType: 'string[]', operator, value: values };
    }
  }
}

export function collectClaimRule(value: string, previous: ClaimRule[] | undefined): ClaimRule[] {
  return [...(previous ?? []), parseClaimRule(value)];
}
