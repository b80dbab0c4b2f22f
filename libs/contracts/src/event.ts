import { z } from 'zod';
import { recordTenantSchema } from './tenant.js';
import { traceIdSchema } from './trace.js';

/** The envelope of every domain event on `mandate.evt.<service>.<event>`. */
export function domainEventSchema<T extends z.ZodType>(data: T) {
  return z.object({
    id: z.uuid(),
    tenant: recordTenantSchema,
    occurredAt: z.iso.datetime(),
    traceId: traceIdSchema.optional(),
    data,
  });
}

export type DomainEvent<T> = {
  id: string;
  tenant: string;
  occurredAt: string;
  traceId?: string;
  data: T;
};
