import { z } from 'zod';

/** W3C trace-context ids, lower-case hex, as they appear in `traceparent`. */
export const traceIdSchema = z.string().regex(/^[0-9a-f]{32}$/, 'must be 32 lower-case hex digits');
export const spanIdSchema = z.string().regex(/^[0-9a-f]{16}$/, 'must be 16 lower-case hex digits');
