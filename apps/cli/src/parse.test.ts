import { describe, expect, it } from 'vitest';
import { InvalidArgumentError } from 'commander';
import { claimRuleSchema, interceptorSchema, MandateError } from '@mandate/contracts';
import { collect, collectClaimRule, collectInterceptor, collectTag, nonNegativeInteger, parseClaimRule, parseCredential, parseInterceptor, positiveInteger } from './parse.js';
import { describeMandateError, exitCodeFor, withoutCredentials } from './bus.js';
import { publicKeyPathFor } from './jwk-files.js';

describe('--claim rules', () => {
  it('maps each syntax onto a rule the contract accepts', () => {
    const cases = [
      ['dept equals sales', { claim: 'dept', valueType: 'string', operator: 'equals', value: 'sales' }],
      ['  team equals Sales Operations  ', { claim: 'team', valueType: 'string', operator: 'equals', value: 'Sales Operations' }],
      ['groups contains agent-users', { claim: 'groups', valueType: 'string[]', operator: 'contains', value: 'agent-users' }],
      ['roles containsAny admin, operator,', { claim: 'roles', valueType: 'string[]', operator: 'containsAny', value: ['admin', 'operator'] }],
      ['https://acme.example/claims/region containsAny eu', { claim: 'https://acme.example/claims/region', valueType: 'string[]', operator: 'containsAny', value: ['eu'] }],
      // The value may itself contain an operator word.
      ['note equals x contains y', { claim: 'note', valueType: 'string', operator: 'equals', value: 'x contains y' }],
    ] as const;
    for (const [text, rule] of cases) {
      expect(parseClaimRule(text)).toEqual(rule);
      expect(claimRuleSchema.safeParse(parseClaimRule(text)).success).toBe(true);
    }
  });

  it('refuses anything else as a usage error', () => {
    for (const text of ['dept', 'dept equals', 'dept is sales', 'equals sales', 'roles containsAny ,', 'roles containsAny  , ,', 'dept EQUALS sales']) {
      expect(() => parseClaimRule(text), text).toThrow(InvalidArgumentError);
    }
  });

  it('collects repeated rules in order', () => {
    expect(collectClaimRule('b contains y', collectClaimRule('a equals x', undefined)).map((r) => r.claim)).toEqual(['a', 'b']);
  });
});

describe('gateway options', () => {
  it('reads --credential as a kind and, for every kind but none, a provider', () => {
    expect(parseCredential('none')).toEqual({ kind: 'none' });
    expect(parseCredential('api-key:weather')).toEqual({ kind: 'api-key', provider: 'weather' });
    expect(parseCredential('oauth2-m2m:crm')).toEqual({ kind: 'oauth2-m2m', provider: 'crm' });
    expect(parseCredential('oauth2-user:google.prod')).toEqual({ kind: 'oauth2-user', provider: 'google.prod' });
    expect(() => parseCredential('ftp:x')).toThrow('unknown credential kind');
    expect(() => parseCredential('toString')).toThrow('unknown credential kind');
    expect(() => parseCredential('api-key')).toThrow('api-key needs the vault provider');
    expect(() => parseCredential('oauth2-user:')).toThrow('oauth2-user needs the vault provider');
    expect(() => parseCredential('none:x')).toThrow('none takes no provider');
  });

  it('reads --interceptor as phase, subject, then a timeout and fail-open in any order', () => {
    const cases = [
      ['request:mandate.interceptor.guard', { phase: 'request', subject: 'mandate.interceptor.guard' }],
      ['response:mandate.interceptor.redact:500', { phase: 'response', subject: 'mandate.interceptor.redact', timeoutMs: 500 }],
      ['request:mandate.interceptor.audit:fail-open:200', { phase: 'request', subject: 'mandate.interceptor.audit', timeoutMs: 200, failOpen: true }],
      ['request:mandate.interceptor.audit:fail-closed', { phase: 'request', subject: 'mandate.interceptor.audit', failOpen: false }],
    ] as const;
    for (const [text, interceptor] of cases) {
      expect(parseInterceptor(text)).toEqual(interceptor);
      expect(interceptorSchema.safeParse(parseInterceptor(text)).success).toBe(true);
    }
    for (const bad of ['mandate.interceptor.guard', 'sideways:mandate.interceptor.guard', 'request', 'request:', 'request:a:1:2', 'request:a:fail-open:fail-open', 'request:a:soon']) {
      expect(() => parseInterceptor(bad), bad).toThrow(InvalidArgumentError);
    }
    expect(collectInterceptor('response:b', collectInterceptor('request:a', undefined)).map((i) => i.subject)).toEqual(['a', 'b']);
  });
});

describe('option values', () => {
  it('collects repeated values and tags, refusing a tag given twice or without =', () => {
    expect(collect('b', collect('a', undefined))).toEqual(['a', 'b']);
    expect(collectTag('url=https://x?a=b', collectTag('team=sales', undefined))).toEqual({ team: 'sales', url: 'https://x?a=b' });
    expect(collectTag('empty=', undefined)).toEqual({ empty: '' });
    expect(() => collectTag('team=ops', { team: 'sales' })).toThrow('tag team is given twice');
    expect(() => collectTag('novalue', undefined)).toThrow('must be key=value');
    expect(() => collectTag('=value', undefined)).toThrow('must be key=value');
  });

  it('takes whole numbers only', () => {
    expect(nonNegativeInteger('0')).toBe(0);
    expect(positiveInteger('25')).toBe(25);
    for (const bad of ['', '-1', '1.5', '1e3', 'ten', '99999999999999999999']) expect(() => nonNegativeInteger(bad), bad).toThrow(InvalidArgumentError);
    expect(() => positiveInteger('0')).toThrow(InvalidArgumentError);
  });

  it('puts the public key next to the private one', () => {
    expect(publicKeyPathFor('keys/agent.jwk.json')).toBe('keys/agent.jwk.pub.json');
    expect(publicKeyPathFor('agent.key')).toBe('agent.key.pub.json');
  });
});

describe('errors as the CLI prints them', () => {
  it('gives each error code its exit code', () => {
    expect([exitCodeFor('invalid_request'), exitCodeFor('not_found'), exitCodeFor('conflict'), exitCodeFor('unauthenticated'), exitCodeFor('access_denied'), exitCodeFor('unavailable'), exitCodeFor('internal'), exitCodeFor('consent_required')]).toEqual([
      2, 3, 4, 5, 5, 6, 1, 1,
    ]);
  });

  it('prints the code, the message, each issue and scalar details', () => {
    const error = new MandateError('invalid_request', 'invalid request', {
      issues: [
        { path: 'name', message: 'too short' },
        { path: 'publicKeys.keys.0', message: 'must be a public key' },
      ],
      details: { reason: 'malformed_token', nested: { ignored: true } },
    });
    expect(describeMandateError(error)).toBe('invalid_request: invalid request\n  - name: too short\n  - publicKeys.keys.0: must be a public key\n  reason: malformed_token');
  });

  it('keeps passwords in NATS URLs out of messages', () => {
    expect(withoutCredentials('nats://ops:hunter2@10.0.0.1:4222,nats://token@10.0.0.2:4222,nats://10.0.0.3:4222')).toBe(
      'nats://***@10.0.0.1:4222,nats://***@10.0.0.2:4222,nats://10.0.0.3:4222',
    );
  });
});
