import { z } from 'zod';
import { ERROR_CODES, type WireError } from './errors.js';

export const fieldIssueSchema = z.object({ path: z.string(), message: z.string() });

export const wireErrorSchema = z.object({
  code: z.enum(ERROR_CODES),
  message: z.string(),
  issues: z.array(fieldIssueSchema).optional(),
  details: z.record(z.string(), z.unknown()).optional(),
});

/** Every reply on the bus: `{ ok: true, result }` or `{ ok: false, error: { code, message } }`. */
export type ReplyEnvelope<T> = { ok: true; result: T } | { ok: false; error: WireError };

export function replyEnvelopeSchema<T extends z.ZodType>(result: T) {
  return z.discriminatedUnion('ok', [
    z.object({ ok: z.literal(true), result }),
    z.object({ ok: z.literal(false), error: wireErrorSchema }),
  ]);
}

export function okReply<T>(result: T): ReplyEnvelope<T> {
  return { ok: true, result };
}

export function errorReply(error: WireError): ReplyEnvelope<never> {
  return { ok: false, error };
}

/** Headers a bus request may carry besides W3C `traceparent`. */
export const REQUEST_HEADERS = {
  /**
   * The client's key for one logical request, the same on every retry of it. A service derives
   * the ids of the audit records and events the request writes from it (with the subject and the
   * body), so a retry after a lost reply writes none twice.
   */
  idempotencyKey: 'Mandate-Idempotency-Key',
} as const;

/** What an idempotency key may be: 16–128 characters of letters, digits and `._:-` (a UUID serves). */
export const idempotencyKeySchema = z
  .string()
  .min(16, 'an idempotency key has at least 16 characters')
  .max(128, 'an idempotency key has at most 128 characters')
  .regex(/^[A-Za-z0-9._:-]+$/, 'an idempotency key holds only letters, digits and . _ : -');
