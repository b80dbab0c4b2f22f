import type { AuditRecordInput } from './audit-record.js';

/** One service's audit actions: a closed list, so every record a service writes names one it declared. */
export interface AuditCatalog<A extends string = string> {
  readonly service: string;
  readonly actions: readonly A[];
}

export function defineAuditActions<const A extends string>(service: string, actions: readonly A[]): AuditCatalog<A> {
  return Object.freeze({ service, actions: Object.freeze([...actions]) });
}

export type AuditActionOf<C extends AuditCatalog> = C['actions'][number];

/** What a service says happened; the sink adds the service, time and trace, and the id unless it is given. */
export type AuditEntry<A extends string = string> = Omit<AuditRecordInput, 'id' | 'occurredAt' | 'traceId' | 'spanId' | 'service' | 'action'> & {
  action: A;
  /** The record's id, when something must name the record before it is written (a tool call's receipt does); otherwise the publisher's. */
  id?: string;
};

/** Where a service's audit records go (JetStream's `MANDATE_AUDIT` in every service). */
export interface AuditSink<A extends string = string> {
  audit(entry: AuditEntry<A>): Promise<unknown>;
}
