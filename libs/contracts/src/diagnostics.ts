import { z } from 'zod';
import { defineEndpoint } from './endpoint.js';

/**
 * The diagnostics service: a minimal endpoint operators (and the benchmark) use to see that the
 * bus, the service layer and validation work end to end.
 */
export const DIAGNOSTICS_SERVICE = 'diagnostics';

export const echoEndpoint = defineEndpoint({
  service: DIAGNOSTICS_SERVICE,
  operation: 'echo',
  description: 'Replies with the message it was sent; optionally waits first (to observe draining).',
  request: z.strictObject({
    message: z.string().min(1).max(4096),
    /** Hold the reply this long; lets tests observe that in-flight requests finish on shutdown. */
    delayMs: z.number().int().min(0).max(10_000).optional(),
  }),
  response: z.object({
    message: z.string(),
    instance: z.string(),
    traceId: z.string().optional(),
  }),
});

export const diagnosticsEndpoints = [echoEndpoint] as const;
