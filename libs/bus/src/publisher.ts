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
import { AuditIntakeBatches } from './audit-intake-batches.js';
import { idempotentId } from './request-idempotency.js';

/** JSON with object keys sorted, so the same content is the same text whatever order it was built in. */
function stableJson(value: unknown): string {
  return JSON.stringify(value, (_key, inner: unknown) =>
    inner && typeof inner === 'object' && !Array.isArray(inner) ? Object.fromEntries(Object.entries(inner).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) : inner,
  );
}

const encoder = new TextEncoder();

/**
 * Publishes audit records and domain events to JetStream. Each message gets a `Nats-Msg-Id`
 * (the record or event id), so a publish retried after a lost ack is stored once, and carries
 * `traceparent`. Inside a request that came with an idempotency key, ids are derived from it
 * (`request-idempotency.ts`), so the request retried writes the same ones. Audit records that
 * queue up on one subject while an earlier one awaits its acknowledgement go together in one
 * message (audit-intake-batches.ts); each call still resolves only once its record is stored.
 */
export class JetStreamPublisher {
  readonly #acked: AckedPublisher;
  readonly #intake: AuditIntakeBatches;

  constructor(nc: NatsConnection) {
    this.#acked = new AckedPublisher(nc);
    this.#intake = new AuditIntakeBatches(this.#acked);
  }

  /** Validates and publishes an audit record; returns it as stored (with id and time filled in). */
  async audit(record: Omit<AuditRecordInput, 'id' | 'occurredAt' | 'traceId' | 'spanId'> & Partial<Pick<AuditRecordInput, 'id' | 'occurredAt' | 'traceId' | 'spanId'>>): Promise<AuditRecord> {
    const ctx = contextWithValidSpan(context.active());
    const ids = traceIds(ctx);
    // The kind is what the record is about, outcome and reason included: a retry that succeeds where
    // the first attempt failed writes a record of its own, and a retry that writes for another
    // target (the first attempt's crm, the retry's mail) never takes the id of the other's record.
    // Only what may differ between attempts (details, time, trace) is left out.
    const kind = () => JSON.stringify(['audit', record.tenant, record.service, record.action, record.outcome, record.reason ?? null, stableJson(record.actor), stableJson(record.target ?? null)]);
    const id = record.id ?? idempotentId(ctx, kind) ?? randomUUID();
    const full: AuditRecord = parseOrThrow(
      auditRecordSchema,
      { id, occurredAt: new Date().toISOString(), ...ids, ...record },
      'audit record',
    );
    const subject = auditSubject(full.tenant, full.service, full.action);
    try {
      await this.#intake.publish(subject, full.id, JSON.stringify(full), tracedHeaders(ctx));
    } catch (cause) {
      throw unpublished(subject, cause);
    }
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
      id: id ?? idempotentId(ctx, () => JSON.stringify(['event', subject, stableJson(data)])) ?? randomUUID(),
      tenant: parseOrThrow(recordTenantSchema, tenant, 'event tenant'),
      occurredAt: new Date().toISOString(),
      ...(traceIds(ctx) ? { traceId: traceIds(ctx)!.traceId } : {}),
      data,
    };
    await this.#publish(subject, event.id, event, ctx);
    return event;
  }

  async #publish(subject: string, msgID: string, body: unknown, ctx: ReturnType<typeof context.active>): Promise<void> {
    try {
      await this.#acked.publish(subject, encoder.encode(JSON.stringify(body)), { msgID, headers: tracedHeaders(ctx) });
    } catch (cause) {
      throw unpublished(subject, cause);
    }
  }
}

function tracedHeaders(ctx: ReturnType<typeof context.active>) {
  const headers = natsHeaders();
  injectTraceContext(ctx, headers);
  return headers;
}

/** The publish failed (or was not acknowledged in time): `unavailable`, naming the subject down to its third token. */
function unpublished(subject: string, cause: unknown): MandateError {
  return new MandateError('unavailable', `could not publish to ${subject.split('.').slice(0, 3).join('.')}`, { cause });
}
