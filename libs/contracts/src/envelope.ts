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
