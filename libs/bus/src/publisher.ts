import { randomUUID } from 'node:crypto';
import { context } from '@opentelemetry/api';
import { headers as natsHeaders, type NatsConnection } from '@nats-io/transport-node';
import {
  MandateError,
  auditRecordSchema,
  auditSubject,
  eventSubject,
  tenantEventSubject,
  parseOrThrow,
  recordTenantSchema,
  type AuditCatalog,
  type AuditRecord,
  type AuditRecordInput,
  type AuditSink,
  type DomainEvent,
  type EventContract,
  type EventDataOf,
} from '@mandate/contracts';
import { contextWithValidSpan, injectTraceContext, traceIds } from '@mandate/telemetry/context';
import { AckedPublisher } from './acked-publish.js';
import { idempotentId } from './request-idempotency.js';

const encoder = new TextEncoder();

/**
 * Publishes audit records and domain events to JetStream. Each message gets a `Nats-Msg-Id`
 * (the record or event id), so a publish retried after a lost ack is stored once, and carries
 * `traceparent`. Inside a request that came with an idempotency key, ids are derived from it
 * (`request-idempotency.ts`), so the request retried writes the same ones.
 */
export class JetStreamPublisher {
  readonly #acked: AckedPublisher;

  constructor(nc: NatsConnection) {
    this.#acked = new AckedPublisher(nc);
  }

  /** Validates and publishes an audit record; returns it as stored (with id and time filled in). */
  async audit(record: Omit<AuditRecordInput, 'id' | 'occurredAt' | 'traceId' | 'spanId'> & Partial<Pick<AuditRecordInput, 'id' | 'occurredAt' | 'traceId' | 'spanId'>>): Promise<AuditRecord> {
    const ctx = contextWithValidSpan(context.active());
    const ids = traceIds(ctx);
    // The outcome and reason are part of the kind: a retry that succeeds where the first attempt
    // failed (and recorded so) writes a record of its own, not a duplicate of the failure's id.
    const kind = `audit\0${record.tenant}\0${record.service}\0${record.action}\0${record.outcome}\0${record.reason ?? ''}`;
    const id = record.id ?? idempotentId(ctx, kind) ?? randomUUID();
    const full: AuditRecord = parseOrThrow(
      auditRecordSchema,
      { id, occurredAt: new Date().toISOString(), ...ids, ...record },
      'audit record',
    );
    await this.#publish(auditSubject(full.tenant, full.service, full.action), full.id, full, ctx);
    return full;
  }

  /** The audit sink of one service: records name the service's catalogue, never a service of their own. */
  auditSink<A extends string>(catalog: AuditCatalog<A>): AuditSink<A> {
    const actions = new Set<string>(catalog.actions);
    return {
      audit: (entry) => {
        if (!actions.has(entry.action)) throw new TypeError(`${entry.action} is not an audit action of ${catalog.service}`);
        return this.audit({ ...entry, service: catalog.service });
      },
    };
  }

  /** Validates and publishes one event of a kind defined in libs/contracts, on its tenant's subject. */
  publishEvent<E extends EventContract>(event: E, tenant: string, data: EventDataOf<E>): Promise<DomainEvent<EventDataOf<E>>> {
    const valid = parseOrThrow(event.data, data, `${event.service}.${event.name} event`) as EventDataOf<E>;
    return this.event(event.service, event.name, tenant, valid, undefined, event.subject(tenant));
  }

  /** The same event on `mandate.evt.<service>.<name>.<tenant>`, for subscribers confined to one tenant. */
  tenantEvent<T>(service: string, name: string, tenant: string, data: T, id?: string): Promise<DomainEvent<T>> {
    return this.event(service, name, tenant, data, id, tenantEventSubject(service, name, tenant));
  }

  async event<T>(service: string, name: string, tenant: string, data: T, id?: string, subject = eventSubject(service, name)): Promise<DomainEvent<T>> {
    const ctx = contextWithValidSpan(context.active());
    const event: DomainEvent<T> = {
      id: id ?? idempotentId(ctx, `event\0${subject}`) ?? randomUUID(),
      tenant: parseOrThrow(recordTenantSchema, tenant, 'event tenant'),
      occurredAt: new Date().toISOString(),
      ...(traceIds(ctx) ? { traceId: traceIds(ctx)!.traceId } : {}),
      data,
    };
    await this.#publish(subject, event.id, event, ctx);
    return event;
  }

  async #publish(subject: string, msgID: string, body: unknown, ctx: ReturnType<typeof context.active>): Promise<void> {
    const headers = natsHeaders();
    injectTraceContext(ctx, headers);
    try {
      await this.#acked.publish(subject, encoder.encode(JSON.stringify(body)), { msgID, headers });
    } catch (cause) {
      throw new MandateError('unavailable', `could not publish to ${subject.split('.').slice(0, 3).join('.')}`, { cause });
    }
  }
}
