import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import {
  auditSubject,
  defineEndpoint,
  endpointsBySubject,
  ERROR_CODES,
  ERROR_STATUS,
  eventSubject,
  MandateError,
  parseOrThrow,
  replyEnvelopeSchema,
  serviceSubject,
  tenantId,
  tenantEventSubject,
  consentGrantedSubject,
} from './index.js';

describe('subjects', () => {
  it('builds the three subject families of DESIGN.md', () => {
    expect(serviceSubject('vault', 'oauth2-token')).toBe('mandate.vault.v1.oauth2-token');
    expect(eventSubject('consent', 'granted')).toBe('mandate.evt.consent.granted');
    expect(tenantEventSubject('consent', 'granted', 'acme')).toBe('mandate.evt.consent.granted.acme');
    expect(consentGrantedSubject('acme')).toBe('mandate.evt.consent.granted.acme');
    expect(() => consentGrantedSubject('*')).toThrow(TypeError);
    expect(auditSubject('acme', 'vault', 'token-released')).toBe('mandate.audit.acme.vault.token-released');
  });

  it.each(['*', '>', 'a.b', 'A', '', 'a b', 'x'.repeat(64)])('refuses %j as a subject token', (token) => {
    expect(() => serviceSubject(token, 'op')).toThrow(TypeError);
    expect(() => auditSubject(token, 'vault', 'x')).toThrow(TypeError);
  });
});

describe('tenantId', () => {
  it('accepts DNS-label-like ids', () => {
    expect(tenantId('acme-corp')).toBe('acme-corp');
  });

  it.each(['', 'ACME', 'acme.corp', 'acme*', '-acme', 'a'.repeat(64), 'acme/../x'])('refuses %j with invalid_request', (value) => {
    expect(() => tenantId(value)).toThrow(expect.objectContaining({ code: 'invalid_request' }));
  });
});

describe('MandateError', () => {
  it('has one numeric status per code, covering the closed set', () => {
    expect(Object.keys(ERROR_STATUS).sort()).toEqual([...ERROR_CODES].sort());
  });

  it('is a TypeError to construct with a code outside the closed set', () => {
    expect(() => new MandateError('oops' as never, 'x')).toThrow(TypeError);
  });

  it('puts only code, message, issues and details on the wire, never the cause', () => {
    const error = new MandateError('provider_error', 'the provider refused', { cause: new Error('refresh_token=abc'), details: { provider: 'google' } });
    expect(error.toWire()).toEqual({ code: 'provider_error', message: 'the provider refused', details: { provider: 'google' } });
    expect(JSON.stringify(error.toWire())).not.toContain('refresh_token');
  });
});

describe('parseOrThrow', () => {
  it('names each bad field without echoing the value', () => {
    const schema = z.object({ provider: z.string().max(3), scopes: z.array(z.string()) });
    try {
      parseOrThrow(schema, { provider: 'a-very-secret-looking-value', scopes: 'x' });
      expect.unreachable();
    } catch (error) {
      expect(error).toBeInstanceOf(MandateError);
      const wire = (error as MandateError).toWire();
      expect(wire.code).toBe('invalid_request');
      expect(wire.issues?.map((i) => i.path).sort()).toEqual(['provider', 'scopes']);
      expect(JSON.stringify(wire)).not.toContain('a-very-secret-looking-value');
    }
  });
});

describe('endpoints and the reply envelope', () => {
  const endpoint = defineEndpoint({ service: 'vault', operation: 'api-key', description: 'x', request: z.object({}), response: z.object({ key: z.string() }) });

  it('derives the subject from service and operation', () => {
    expect(endpoint.subject).toBe('mandate.vault.v1.api-key');
  });

  it('refuses two endpoints on one subject', () => {
    expect(() => endpointsBySubject([endpoint, endpoint])).toThrow(TypeError);
  });

  it('accepts both envelope shapes and refuses an unknown error code', () => {
    const schema = replyEnvelopeSchema(endpoint.response);
    expect(schema.safeParse({ ok: true, result: { key: 'k' } }).success).toBe(true);
    expect(schema.safeParse({ ok: false, error: { code: 'not_found', message: 'x' } }).success).toBe(true);
    expect(schema.safeParse({ ok: false, error: { code: 'teapot', message: 'x' } }).success).toBe(false);
    expect(schema.safeParse({ ok: true, result: { nokey: 1 } }).success).toBe(false);
  });
});
