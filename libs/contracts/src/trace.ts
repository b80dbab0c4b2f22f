import { z } from 'zod';

/** W3C trace-context ids, lower-case hex, as they appear in `traceparent`. */
export const traceIdSchema = z.string().regex(/^[0-9a-f]{32}$/, 'must be 32 lower-case hex digits');
export const spanIdSchema = z.string().regex(/^[0-9a-f]{16}$/, 'must be 16 lower-case hex digits');

/** A W3C `traceparent` header value (version 00): where a trace continues. */
export const traceparentSchema = z.string().regex(/^00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$/, 'must be a W3C traceparent (version 00)');
