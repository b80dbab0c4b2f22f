import type { z } from 'zod';
import { MandateError, type FieldIssue } from './errors.js';

/**
 * zod issues turned into what a caller may see: the path and the reason, never the offending
 * value (it might be a token pasted into the wrong field).
 */
export function toFieldIssues(error: z.ZodError): FieldIssue[] {
  return error.issues.map((issue) => ({
    path: issue.path.length === 0 ? '(root)' : issue.path.map(String).join('.'),
    message: issue.message,
  }));
}

/** Parses `input` with `schema` or throws `invalid_request` naming each bad field. */
export function parseOrThrow<T>(schema: z.ZodType<T>, input: unknown, what = 'request'): T {
  const parsed = schema.safeParse(input);
  if (parsed.success) return parsed.data;
  throw new MandateError('invalid_request', `invalid ${what}`, { issues: toFieldIssues(parsed.error) });
}
