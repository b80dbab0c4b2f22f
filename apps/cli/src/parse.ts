import { InvalidArgumentError } from 'commander';
import type { ClaimRule, gatewayCreateEndpoint, RequestOf, TargetCredential } from '@mandate/contracts';

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

/** `--credential-param key=value` (an extra authorization request parameter, e.g. `resource=https://crm.example`), repeatable. */
export const collectCredentialParam = keyValueCollector('credential parameter');

/** `--token-param name=value` (an extra client-credentials request parameter of a provider, e.g. `resource=https://api.example`), repeatable. */
export const collectTokenParam = keyValueCollector('token parameter');

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

/**
 * What each kind of gateway target credential takes besides its kind (`targetCredentialSchema`
 * in the gateway contract): a provider, scopes, a header, extra authorization parameters. A
 * record over every kind, so a kind added to the contract does not compile until it is here.
 */
export const CREDENTIAL_KINDS: Readonly<Record<TargetCredential['kind'], { provider: boolean; scopes: boolean; header: boolean; params: boolean }>> = {
  none: { provider: false, scopes: false, header: false, params: false },
  'api-key': { provider: true, scopes: false, header: true, params: false },
  'oauth2-m2m': { provider: true, scopes: true, header: false, params: false },
  'oauth2-user': { provider: true, scopes: true, header: false, params: true },
};
export type CredentialKind = TargetCredential['kind'];

export const CREDENTIAL_SYNTAX = 'none, api-key:PROVIDER, oauth2-m2m:PROVIDER or oauth2-user:PROVIDER';

/** `--credential none`, `--credential api-key:weather`, `oauth2-m2m:PROVIDER`, `oauth2-user:PROVIDER`. */
export function parseCredential(text: string): { kind: CredentialKind; provider?: string } {
  const at = text.indexOf(':');
  const kind = at < 0 ? text : text.slice(0, at);
  const provider = at < 0 ? undefined : text.slice(at + 1);
  if (!Object.hasOwn(CREDENTIAL_KINDS, kind)) throw new InvalidArgumentError(`unknown credential kind; must be ${CREDENTIAL_SYNTAX}`);
  const takes = CREDENTIAL_KINDS[kind as CredentialKind];
  if (!takes.provider) {
    if (provider !== undefined) throw new InvalidArgumentError(`${kind} takes no provider; must be ${CREDENTIAL_SYNTAX}`);
    return { kind: kind as CredentialKind };
  }
  if (!provider) throw new InvalidArgumentError(`${kind} needs the vault provider: ${kind}:PROVIDER`);
  return { kind: kind as CredentialKind, provider };
}

type InterceptorInput = NonNullable<RequestOf<typeof gatewayCreateEndpoint>['interceptors']>[number];

export const INTERCEPTOR_SYNTAX = 'PHASE:SUBJECT[:TIMEOUT_MS][:fail-open], PHASE request or response, e.g. request:mandate.interceptor.guard:500';

/**
 * `--interceptor request:mandate.interceptor.guard`, `response:mandate.interceptor.redact:500`,
 * `request:mandate.interceptor.audit:200:fail-open`: the phase, the NATS subject it is asked on
 * (subjects have no colons), then in any order a timeout in milliseconds and `fail-open` (or
 * `fail-closed`, the default). The contract checks the subject (under `mandate.interceptor.`)
 * and the timeout's range.
 */
export function parseInterceptor(text: string): InterceptorInput {
  const [phase, subject, ...rest] = text.split(':');
  if (phase !== 'request' && phase !== 'response') throw new InvalidArgumentError(`the phase must be request or response: ${INTERCEPTOR_SYNTAX}`);
  if (!subject) throw new InvalidArgumentError(`the subject is missing: ${INTERCEPTOR_SYNTAX}`);
  const interceptor: InterceptorInput = { phase, subject };
  for (const part of rest) {
    if (/^\d+$/.test(part) && interceptor.timeoutMs === undefined) interceptor.timeoutMs = Number(part);
    else if ((part === 'fail-open' || part === 'fail-closed') && interceptor.failOpen === undefined) interceptor.failOpen = part === 'fail-open';
    else throw new InvalidArgumentError(`after the subject come at most a timeout in ms and fail-open or fail-closed: ${INTERCEPTOR_SYNTAX}`);
  }
  return interceptor;
}

export function collectInterceptor(value: string, previous: InterceptorInput[] | undefined): InterceptorInput[] {
  return [...(previous ?? []), parseInterceptor(value)];
}
