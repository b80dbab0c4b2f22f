import { z } from 'zod';
import { recordTenantSchema } from './tenant.js';
import type { StreamDefinition } from './streams.js';
import { SUBJECT_ROOT } from './subjects.js';

/*
 * The decision log: for each tool call a gateway decided with a policy set attached, what Cedar
 * saw and what it decided, so a candidate set can be replayed against real traffic and a decision
 * explained. It is not the audit trail: the audit record (the record of the call) keeps only a
 * salted digest of the arguments; this log keeps the request itself, sealed, for a retention
 * period, and is read only by the policy service. Entries are keyed by the id of the call's audit
 * record.
 *
 * Subjects: `mandate.decisions.<tenant>.<gateway>.<audit record id>`; the id as the last token lets
 * one entry be found without knowing its gateway, and a gateway's window be read with one filter.
 */

const SUBJECT_TOKEN = /^[a-z0-9][a-z0-9-]{0,62}$/;
const RECORD_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

function subjectToken(kind: string, value: string): string {
  if (!SUBJECT_TOKEN.test(value)) throw new TypeError(`${kind} must match ${SUBJECT_TOKEN.source}, got ${JSON.stringify(value)}`);
  return value;
}

export const DECISIONS_SUBJECT_ROOT = `${SUBJECT_ROOT}.decisions`;

export function decisionSubject(tenant: string, gateway: string, id: string): string {
  if (!RECORD_ID.test(id)) throw new TypeError(`a decision id is an audit record id (a UUID), got ${JSON.stringify(id)}`);
  return `${DECISIONS_SUBJECT_ROOT}.${subjectToken('tenant', tenant)}.${subjectToken('gateway', gateway)}.${id}`;
}

/** Every entry of one gateway. */
export function gatewayDecisionsSubject(tenant: string, gateway: string): string {
  return `${DECISIONS_SUBJECT_ROOT}.${subjectToken('tenant', tenant)}.${subjectToken('gateway', gateway)}.*`;
}

/** The one entry with this id, whichever gateway wrote it. */
export function decisionByIdSubject(tenant: string, id: string): string {
  if (!RECORD_ID.test(id)) throw new TypeError(`a decision id is an audit record id (a UUID), got ${JSON.stringify(id)}`);
  return `${DECISIONS_SUBJECT_ROOT}.${subjectToken('tenant', tenant)}.*.${id}`;
}

export const DECISIONS_STREAM_NAME = 'MANDATE_DECISIONS';

/** How long the log keeps an entry when nothing else is configured. */
export const DEFAULT_DECISION_LOG_RETENTION_DAYS = 30;

/**
 * The stream, with its age limit being the retention. The gateway (the writer) declares it at
 * start-up with the retention it is configured with; 0 days means no log, and no declaration.
 */
export function decisionLogStream(retentionDays: number): StreamDefinition {
  if (!Number.isInteger(retentionDays) || retentionDays < 1) throw new TypeError('a decision log is kept for one day or more');
  return Object.freeze({
    name: DECISIONS_STREAM_NAME,
    description: 'Sealed Cedar requests of policy decisions, for replay and explain (mandate.decisions.<tenant>.<gateway>.<id>)',
    subjects: [`${DECISIONS_SUBJECT_ROOT}.>`],
    denyDelete: false,
    denyPurge: false,
    duplicateWindowMs: 2 * 60_000,
    maxAgeMs: retentionDays * 24 * 3_600_000,
  });
}

/** The identity an entry's sealed part is bound to (the AAD): moved to another entry it does not open. */
export function decisionSealId(tenant: string, gateway: string, id: string): string {
  return `decision-log/${tenant}/${gateway}/${id}`;
}

/** A sealed request longer than this is not kept (entries stay well under NATS's payload limit). */
export const MAX_SEALED_DECISION_CHARS = 512 * 1024;

const policyIds = z.array(z.string().max(128)).max(1_000);

const decisionOutcomeSchema = z.object({ decision: z.enum(['allow', 'deny']), determining: policyIds });

/** What a decision log entry says in the clear: identifiers and the decision, as the audit record does. */
export const decisionEntrySchema = z.object({
  /** The id of the call's audit record. */
  id: z.string().regex(RECORD_ID),
  tenant: recordTenantSchema,
  gateway: z.string().regex(SUBJECT_TOKEN),
  recordedAt: z.iso.datetime(),
  /** The tool as clients call it (`<target>___<tool>`): the Cedar action. */
  tool: z.string().max(1024),
  principal: z.object({ iss: z.string().max(2048), sub: z.string().max(255) }),
  policySet: z.string().max(63),
  /** The hash of the policy set version that decided. */
  policyVersion: z.string().max(128),
  mode: z.enum(['enforce', 'log-only']),
  /** What the set decided (in log-only mode: what it would have enforced). */
  decided: decisionOutcomeSchema,
  /** With the set's log-only policies active too (only when it has any). */
  withLogOnly: decisionOutcomeSchema.optional(),
  /** The sealed request (base64url, libs/crypto envelope, AAD = `decisionSealId`). */
  sealed: z.string().max(MAX_SEALED_DECISION_CHARS),
});
export type DecisionEntry = z.output<typeof decisionEntrySchema>;

/** The sealed part: what Cedar saw besides the identifiers, and only what it uses of the token. */
export const sealedDecisionRequestSchema = z.object({
  /** The claims Cedar reads: `groups` (strings) and the string claims it sees as tags. */
  claims: z.record(z.string(), z.union([z.string(), z.array(z.string())])),
  scopes: z.array(z.string()),
  client: z.string().optional(),
  /** The validated arguments. */
  arguments: z.record(z.string(), z.unknown()),
  /** Milliseconds since the epoch: what `context.time` was. */
  now: z.number().int(),
});
export type SealedDecisionRequest = z.output<typeof sealedDecisionRequestSchema>;
