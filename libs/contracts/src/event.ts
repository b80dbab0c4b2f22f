import { z } from 'zod';
import { eventSubject, tenantEventSubject } from './subjects.js';
import { recordTenantSchema } from './tenant.js';
import { traceIdSchema } from './trace.js';

/** The envelope of every domain event on `mandate.evt.<service>.<event>.<tenant>`. */
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

/**
 * One kind of event of one service, defined like an endpoint: its subject for each tenant (the
 * tenant is the last token, so a subscriber can be confined to its own) and the schema of its
 * data. Publishers validate with `data`; subscribers (`onEvent` in libs/bus) with `envelope`.
 */
export interface EventContract<D extends z.ZodType = z.ZodType> {
  readonly service: string;
  readonly name: string;
  readonly description: string;
  readonly data: D;
  readonly envelope: z.ZodType<DomainEvent<z.output<D>>>;
  /** `mandate.evt.<service>.<name>.<tenant>` */
  subject(tenant: string): string;
  /** Every tenant's: `mandate.evt.<service>.<name>.*` */
  readonly allTenants: string;
}

export type EventDataOf<E extends EventContract> = z.output<E['data']>;

export function defineEvent<D extends z.ZodType>(definition: { service: string; name: string; description: string; data: D }): EventContract<D> {
  const base = eventSubject(definition.service, definition.name);
  return Object.freeze({
    ...definition,
    envelope: domainEventSchema(definition.data) as unknown as z.ZodType<DomainEvent<z.output<D>>>,
    subject: (tenant: string) => tenantEventSubject(definition.service, definition.name, tenant),
    allTenants: `${base}.*`,
  });
}

/** Where a service's events go (JetStream's `MANDATE_EVENTS` in every service). */
export interface EventSink {
  publishEvent<E extends EventContract>(event: E, tenant: string, data: EventDataOf<E>): Promise<unknown>;
}
