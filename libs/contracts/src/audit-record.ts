import { z } from 'zod';
import { recordTenantSchema } from './tenant.js';
import { spanIdSchema, traceIdSchema } from './trace.js';

const nameToken = z.string().regex(/^[a-z][a-z0-9-]{0,62}$/);

/** Who a record is about. Identifiers only: never a token, a secret or a claim set. */
export const auditActorSchema = z.object({
  workload: z.string().max(255).optional(),
  user: z.object({ iss: z.string().max(2048), sub: z.string().max(255) }).optional(),
  /** An operator or service account acting through the admin API. */
  admin: z.string().max(255).optional(),
});

/** Small scalar facts only, so a record cannot become a place to stash a credential. */
const auditDetailValue = z.union([z.string().max(1024), z.number(), z.boolean(), z.array(z.string().max(256)).max(64)]);

/**
 * One audit record as published to `mandate.audit.<tenant>.<service>.<action>`. `id` doubles as
 * the `Nats-Msg-Id`, so a retried publish is stored once.
 */
export const auditRecordSchema = z.object({
  id: z.uuid(),
  tenant: recordTenantSchema,
  service: nameToken,
  action: nameToken,
  outcome: z.enum(['allowed', 'denied', 'succeeded', 'failed']),
  /** The error code or decision reason when the outcome is not a success. */
  reason: z.string().max(128).optional(),
  occurredAt: z.iso.datetime(),
  traceId: traceIdSchema,
  spanId: spanIdSchema,
  actor: auditActorSchema,
  target: z
    .object({ provider: z.string().max(255).optional(), resource: z.string().max(1024).optional(), scopes: z.array(z.string().max(256)).max(64).optional() })
    .optional(),
  details: z.record(z.string().max(64), auditDetailValue).optional(),
});

export type AuditRecord = z.output<typeof auditRecordSchema>;
export type AuditRecordInput = z.input<typeof auditRecordSchema>;
