import type { Msg } from '@nats-io/transport-node';
import type { AuditRecord } from '@mandate/contracts';

/**
 * The records an audit intake message carries: one record, or a batch (a JSON array) when
 * records queued up on the subject behind an unacknowledged one (see docs/audit.md, "Intake").
 * A test that watches `mandate.audit.>` reads every message through this.
 */
export function auditRecordsOf(msg: Msg): AuditRecord[] {
  const body = msg.json<AuditRecord | AuditRecord[]>();
  return Array.isArray(body) ? body : [body];
}
