import { z } from 'zod';
import { defineAuditActions } from './audit-actions.js';
import { endpointsOf, type EndpointContract } from './endpoint.js';
import { auditRecordSchema } from './audit-record.js';
import type { StreamDefinition } from './streams.js';
import { SUBJECT_ROOT } from './subjects.js';
import { TENANT_ID_PATTERN, type TenantId } from './tenant.js';
import { traceIdSchema } from './trace.js';

/**
 * The audit service (`apps/audit`, NATS service `mandate-audit`): it consumes `MANDATE_AUDIT`, keeps
 * the per-tenant hash chain and answers queries and verification requests.
 */
export const AUDIT_SERVICE = 'audit';

/**
 * The subject token of the audit service's API: `mandate.audit-trail.v1.*`, not
 * `mandate.audit.v1.*`. The audit stream captures `mandate.audit.>`, so a request on
 * `mandate.audit.v1.query` would be stored as an audit record of a tenant called `v1` (and
 * JetStream would answer it with a publish ack).
 */
export const AUDIT_TRAIL_SERVICE = 'audit-trail';

/** What the audit service records of itself, in the chain it keeps. */
export const auditServiceAudit = defineAuditActions(AUDIT_SERVICE, ['trail-repair']);

/** The durable consumer of `MANDATE_AUDIT` the audit service reads through. */
export const AUDIT_CONSUMER = 'audit-trail';

/** Subject prefix of the dead-letter stream: `mandate.dlq.audit.<reason>`. */
export const AUDIT_DLQ_SUBJECT_PREFIX = `${SUBJECT_ROOT}.dlq.audit`;

/**
 * A message on `MANDATE_AUDIT` (subject `mandate.audit.<tenant>.<service>.<action>`) carries one
 * audit record as a JSON object, or a batch: a JSON array of 1 to this many records, every one
 * with the subject's tenant, service and action. A publisher sends a record at once, alone, when
 * nothing of its is in flight on that subject, and otherwise with whatever else queued up while
 * the message in flight waited for JetStream's acknowledgement (group commit): under load one
 * publish, one acknowledgement, one delivery and one consumer acknowledgement carry many records,
 * and no record waits longer than one acknowledgement for company.
 */
export const AUDIT_INTAKE_BATCH_MAX_RECORDS = 32;

/** A batch's body stays under this many bytes (a record bigger on its own goes alone); nats-server's default `max_payload` is 1 MiB. */
export const AUDIT_INTAKE_BATCH_MAX_BYTES = 256 * 1024;

/** Why a message on `MANDATE_AUDIT` was refused for good. */
export const AUDIT_POISON_REASONS = {
  'not-json': 'the message body is not JSON',
  'invalid-record': 'the body is not a valid audit record (libs/contracts audit-record schema)',
  'subject-mismatch': 'tenant, service or action in the subject differ from the record',
  'invalid-batch': `the body is an array but not a batch of 1 to ${AUDIT_INTAKE_BATCH_MAX_RECORDS} records`,
  'failed-repeatedly': 'appending failed with an internal error on every one of many deliveries',
} as const;

export type AuditPoisonReason = keyof typeof AUDIT_POISON_REASONS;

/** Headers on a dead-lettered copy; the body is the original message, byte for byte. */
export const AUDIT_DLQ_HEADERS = {
  reason: 'Mandate-Dlq-Reason',
  detail: 'Mandate-Dlq-Detail',
  subject: 'Mandate-Dlq-Subject',
  streamSequence: 'Mandate-Dlq-Stream-Sequence',
} as const;

/**
 * Poison audit messages, copied here with the reason before they are terminated on the audit
 * consumer. Not part of `STREAMS` (every service declares those): the audit service declares it.
 * Deletion is allowed so an operator can clear a record once it is understood; 90 days at most.
 */
export const AUDIT_DLQ_STREAM: StreamDefinition = Object.freeze({
  name: 'MANDATE_AUDIT_DLQ',
  description: 'Audit messages the audit service refused for good (mandate.dlq.audit.<reason>), with the reason in headers',
  subjects: [`${AUDIT_DLQ_SUBJECT_PREFIX}.>`],
  denyDelete: false,
  denyPurge: true,
  duplicateWindowMs: 10 * 60_000,
  maxAgeMs: 90 * 24 * 3_600_000,
});

export function auditDlqSubject(reason: AuditPoisonReason): string {
  return `${AUDIT_DLQ_SUBJECT_PREFIX}.${reason}`;
}

/** Subject root of the stored trail: `mandate.trail.<tenant>.entries` and `mandate.trail.<tenant>.digests`. */
export const AUDIT_TRAIL_SUBJECT_ROOT = `${SUBJECT_ROOT}.trail`;

/**
 * The trail itself on JetStream (the embedded default; MongoDB keeps documents): an append-only
 * log, one subject of entry fragments and one of signed digests per tenant. JetStream refuses to
 * delete a message from it or purge it, and to turn either refusal off. What could still lose
 * entries (deleting the stream, giving it a limit) `deploy/nats/permissions.conf` grants nobody,
 * not the audit service and not the operator's user; the audit service refuses to start on a
 * stream with a limit and logs it at every digest round, and `verify` finds what was lost. Only
 * the audit service publishes here, every append conditional on the tenant's last message
 * (`Nats-Expected-Last-Subject-Sequence`), so two writers can never both extend the same chain.
 * Not part of `STREAMS`: the audit service declares it. Its memory in nats-server does not grow
 * with its messages, as a KV bucket's does with its keys (docs/audit.md, "Storage growth").
 */
export const AUDIT_TRAIL_STREAM: StreamDefinition = Object.freeze({
  name: 'MANDATE_AUDIT_TRAIL',
  description: 'The audit trail: per tenant, hash-chained entries in deflated fragments (mandate.trail.<tenant>.entries) and signed digests (mandate.trail.<tenant>.digests); append-only',
  subjects: [`${AUDIT_TRAIL_SUBJECT_ROOT}.>`],
  denyDelete: true,
  denyPurge: true,
  // Appends carry no message id (the expected last sequence is what orders them), so the window holds nothing.
  duplicateWindowMs: 60_000,
  maxAgeMs: 0,
});

export function trailEntriesSubject(tenant: string): string {
  return `${AUDIT_TRAIL_SUBJECT_ROOT}.${trailTenantToken(tenant)}.entries`;
}

export function trailDigestsSubject(tenant: string): string {
  return `${AUDIT_TRAIL_SUBJECT_ROOT}.${trailTenantToken(tenant)}.digests`;
}

function trailTenantToken(tenant: string): string {
  if (!TENANT_ID_PATTERN.test(tenant)) throw new TypeError(`tenant must match ${TENANT_ID_PATTERN.source}, got ${JSON.stringify(tenant)}`);
  return tenant;
}

/**
 * Headers on a message of `MANDATE_AUDIT_TRAIL`. A fragment's body is the JSON array of its entries,
 * deflated (RFC 1951); the headers say where it sits, so that finding an entry reads no body but
 * the one that holds it. A digest's body is the digest's JSON.
 */
export const AUDIT_TRAIL_HEADERS = {
  /** The sequence of a fragment's first entry. */
  first: 'Mandate-Trail-First',
  /** How many entries a fragment holds. */
  count: 'Mandate-Trail-Count',
  /** A digest's number. */
  digest: 'Mandate-Trail-Digest',
} as const;

/** The hash of nothing before the first record of a chain, and before the first digest. */
export const GENESIS_HASH = '0'.repeat(64);

const sha256Hex = z.string().regex(/^[0-9a-f]{64}$/, 'must be 64 lower-case hex digits');
const sequence = z.number().int().min(1);

/**
 * Any tenant whose records are in the trail, including `system` (deployment-wide records such as
 * signing key rotations): the audit API reads them all, and its callers are operators.
 */
export const trailTenantSchema = z
  .string()
  .regex(TENANT_ID_PATTERN, 'tenant must be 1-63 lower-case letters, digits or dashes')
  .transform((value) => value as TenantId);

/** One record in the trail: the record as published, where it sits in its tenant's chain, its hashes. */
export const trailEntrySchema = z.object({
  sequence,
  previousHash: sha256Hex,
  /** SHA-256 over the canonical JSON (RFC 8785 style) of `{ sequence, previousHash, appendedAt, record }`. */
  hash: sha256Hex,
  /** When the audit service appended it; never earlier than the previous entry's. */
  appendedAt: z.iso.datetime(),
  record: auditRecordSchema,
});

export type TrailEntry = z.output<typeof trailEntrySchema>;

/**
 * A signed statement: "tenant T's chain ran from `fromSequence` to `toSequence` ending in
 * `lastHash`", linked to the previous digest. `fromSequence > toSequence` is an interval with no
 * records. Signed with Ed25519 over the canonical JSON of every field but `signature`.
 */
export const trailDigestSchema = z.object({
  tenant: trailTenantSchema,
  number: sequence,
  fromSequence: sequence,
  toSequence: z.number().int().min(0),
  lastHash: sha256Hex,
  previousDigestHash: sha256Hex,
  issuedAt: z.iso.datetime(),
  /** RFC 7638 thumbprint of the signing key. */
  kid: z.string().min(1).max(128),
  signature: z.string().regex(/^[A-Za-z0-9_-]+$/),
});

export type TrailDigest = z.output<typeof trailDigestSchema>;

const isoOrSequence = z.union([z.iso.datetime({ offset: true }), z.number().int().min(1)]);

export const auditQueryRequestSchema = z.object({
  tenant: trailTenantSchema,
  traceId: traceIdSchema.optional(),
  workload: z.string().min(1).max(255).optional(),
  /** The user's `sub` (any issuer). */
  user: z.string().min(1).max(255).optional(),
  provider: z.string().min(1).max(255).optional(),
  service: z.string().min(1).max(63).optional(),
  action: z.string().min(1).max(63).optional(),
  outcome: z.enum(['allowed', 'denied', 'succeeded', 'failed']).optional(),
  /** `occurredAt` at or after this time. */
  from: z.iso.datetime({ offset: true }).optional(),
  /** `occurredAt` before this time. */
  to: z.iso.datetime({ offset: true }).optional(),
  limit: z.number().int().min(1).max(500).default(50),
  /** `nextCursor` of the previous page. */
  cursor: z.string().regex(/^\d{1,15}$/, 'not a cursor from a previous page').optional(),
});

export const auditQueryResponseSchema = z.object({
  entries: z.array(trailEntrySchema),
  /** Present when older records remain unread: pass it as `cursor`. */
  nextCursor: z.string().optional(),
  /** How many records were read to answer (the scan stops at the service's scan limit). */
  scanned: z.number().int().min(0),
});

export const VERIFY_PROBLEM_KINDS = ['edited', 'missing', 'reordered', 'digest-edited', 'digest-missing', 'unknown-key'] as const;

export const verifyProblemSchema = z.object({
  kind: z.enum(VERIFY_PROBLEM_KINDS),
  sequence: z.number().int().optional(),
  digest: z.number().int().optional(),
  message: z.string(),
});

export type VerifyProblem = z.output<typeof verifyProblemSchema>;

export const auditVerifyRequestSchema = z.object({
  tenant: trailTenantSchema,
  /** A sequence number, or a time (resolved to the first record appended at or after it). */
  from: isoOrSequence.optional(),
  /** A sequence number, or a time (the last record appended before it). */
  to: isoOrSequence.optional(),
});

export const auditVerifyResponseSchema = z.object({
  tenant: z.string(),
  ok: z.boolean(),
  fromSequence: z.number().int(),
  toSequence: z.number().int(),
  records: z.object({ valid: z.number().int(), total: z.number().int() }),
  digests: z.object({ valid: z.number().int(), total: z.number().int() }),
  /** The first problem, by sequence; absent when `ok`. */
  problem: verifyProblemSchema.optional(),
  /** Up to 20 problems, the first one first. */
  problems: z.array(verifyProblemSchema),
});

export type AuditVerifyReport = z.output<typeof auditVerifyResponseSchema>;

export const auditDigestRequestSchema = z.object({ tenant: trailTenantSchema.optional() });
export const auditDigestResponseSchema = z.object({ digests: z.array(trailDigestSchema) });

export const auditKeysResponseSchema = z.object({
  keys: z.array(
    z.object({
      kid: z.string(),
      status: z.enum(['current', 'retired']),
      /** Public Ed25519 key as a JWK (`kty: OKP`, `crv: Ed25519`, `x`). */
      publicJwk: z.object({ kty: z.literal('OKP'), crv: z.literal('Ed25519'), x: z.string(), kid: z.string() }),
    }),
  ),
});

const endpoint = endpointsOf(AUDIT_TRAIL_SERVICE);

export const auditQueryEndpoint = endpoint(
  'query',
  "A tenant's audit records, newest first, filtered by trace id, workload, user, provider, service, action, outcome and time",
  auditQueryRequestSchema,
  auditQueryResponseSchema,
);

export const auditVerifyEndpoint = endpoint(
  'verify',
  "Checks every hash, sequence and digest signature of a tenant's trail (or a range of it)",
  auditVerifyRequestSchema,
  auditVerifyResponseSchema,
);

export const auditDigestEndpoint = endpoint('digest', 'Writes a signed digest now, for one tenant or every tenant in the trail', auditDigestRequestSchema, auditDigestResponseSchema);

export const auditKeysEndpoint = endpoint('keys', 'The public keys that verify trail digests: the current one and every retired one', z.object({}), auditKeysResponseSchema);

export const auditTrailEndpoints: readonly EndpointContract[] = Object.freeze([auditQueryEndpoint, auditVerifyEndpoint, auditDigestEndpoint, auditKeysEndpoint]);
