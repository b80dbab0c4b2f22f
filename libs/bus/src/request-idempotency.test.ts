import { describe, expect, it } from 'vitest';
import { ROOT_CONTEXT } from '@opentelemetry/api';
import { z } from 'zod';
import { idempotentId, withRequestIdempotency } from './request-idempotency.js';

const body = new TextEncoder().encode('{"provider":"weather"}');

describe('ids derived from a request idempotency key', () => {
  it('are the same for the same request on every retry, and record ids a UUID check accepts', () => {
    const ids = [0, 1].map(() => {
      const ctx = withRequestIdempotency(ROOT_CONTEXT, 'key-0123456789abcdef', 'mandate.vault.v1.api-key', body);
      return [idempotentId(ctx, () => 'audit release'), idempotentId(ctx, () => 'audit release'), idempotentId(ctx, () => 'event released')];
    });
    expect(ids[0]).toEqual(ids[1]);
    expect(new Set(ids[0]).size, 'each write of a request its own id').toBe(3);
    for (const id of ids[0]!) expect(z.uuid().safeParse(id).success, id).toBe(true);
  });

  it('differ when the key, the subject or the body differs, and there are none outside a keyed request', () => {
    const first = (key: string, subject: string, data: Uint8Array) => idempotentId(withRequestIdempotency(ROOT_CONTEXT, key, subject, data), () => 'audit release');
    const base = first('key-0123456789abcdef', 'mandate.vault.v1.api-key', body);
    expect(first('key-0123456789abcdeX', 'mandate.vault.v1.api-key', body)).not.toBe(base);
    expect(first('key-0123456789abcdef', 'mandate.vault.v1.oauth2-token', body)).not.toBe(base);
    expect(first('key-0123456789abcdef', 'mandate.vault.v1.api-key', new TextEncoder().encode('{"provider":"traffic"}'))).not.toBe(base);
    expect(idempotentId(ROOT_CONTEXT, () => 'audit release')).toBeUndefined();
  });

  it('work out the kind of a write only inside a keyed request', () => {
    let asked = 0;
    const kind = () => {
      asked += 1;
      return 'audit release';
    };
    expect(idempotentId(ROOT_CONTEXT, kind)).toBeUndefined();
    expect(asked).toBe(0);
    expect(idempotentId(withRequestIdempotency(ROOT_CONTEXT, 'key-0123456789abcdef', 'mandate.vault.v1.api-key', body), kind)).toBeDefined();
    expect(asked).toBe(1);
  });
});
