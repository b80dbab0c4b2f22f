import { hostname } from 'node:os';
import { join } from 'node:path';
import { z } from 'zod';
import { baseEnvSchema } from '@mandate/config';
import { AUDIT_INTAKE_BATCH_MAX_RECORDS } from '@mandate/contracts';

export const auditEnvSchema = baseEnvSchema.safeExtend({
  /** A signed digest per tenant this often, records or not (and one on shutdown). */
  AUDIT_DIGEST_INTERVAL_SECONDS: z.coerce.number().int().min(1).max(86_400).default(60),
  /** The digest signing key file's JSON itself (a mounted secret); wins over the file. */
  AUDIT_SIGNING_KEY: z.string().optional(),
  /** The digest signing key file; default `<MANDATE_DATA_DIR>/keys/audit-signing-key.json`, generated there on first start in embedded mode. */
  AUDIT_SIGNING_KEY_FILE: z.string().optional(),
  /** Who this instance is when it holds a tenant's writer lease; keep it stable across restarts and unique among replicas. */
  AUDIT_WRITER_ID: z.string().regex(/^[A-Za-z0-9_.:-]{1,128}$/).default(hostname().slice(0, 128) || 'audit'),
  /** The most records a query reads before it returns a page with a cursor to go on. */
  AUDIT_QUERY_SCAN_LIMIT: z.coerce.number().int().min(100).max(1_000_000).default(20_000),
  /** How long JetStream waits for an ack before redelivering a record. */
  AUDIT_ACK_WAIT_SECONDS: z.coerce.number().int().min(5).max(600).default(30),
  /**
   * Records delivered and not yet acknowledged, at most: the consumer's batching window. The
   * consumer's own limit is in messages, this over the records one intake batch holds, so at
   * least one batch.
   */
  AUDIT_MAX_ACK_PENDING: z.coerce.number().int().min(AUDIT_INTAKE_BATCH_MAX_RECORDS).max(100_000).default(10_000),
  /**
   * How long a chained record is remembered for deduplication: while it can still come again.
   * A request retried with its idempotency key publishes its records again (the SDK retries for
   * 10 s; the intake's duplicate window, 15 s, stores most of those once already), redeliveries
   * come within a few ack waits, and what a crash brings back later is found in the chain's end,
   * read at every start. The index is in the audit service's memory, about 100 bytes a record: at
   * 5,000 records/s, 600,000 records and 60 MB for the default 120 s.
   */
  AUDIT_DEDUP_WINDOW_SECONDS: z.coerce.number().int().min(60).max(7 * 86_400).optional(),
  /**
   * How long a record may wait in the audit service for others of its tenant to be chained with it,
   * while fewer are waiting than fill a page of 128 sequences (or than the intake lets be in flight
   * at once). Chaining is on no caller's path (a release waits for the intake's acknowledgement
   * only), and every batch stores a fragment, a key that costs nats-server memory for as long as it
   * exists: at a low rate this decides the keys per record. 0 chains every record as it comes. No
   * batch waits once the intake can deliver no more (intake/intake-window.ts). At most a quarter of
   * AUDIT_ACK_WAIT_SECONDS.
   */
  AUDIT_CHAIN_LINGER_MS: z.coerce.number().int().min(0).max(10_000).default(1_000),
  /** The name AUDIT_DEDUP_WINDOW_SECONDS had while the index was a claim per record in the store; still read. */
  AUDIT_CLAIM_RETENTION_SECONDS: z.coerce.number().int().min(60).max(7 * 86_400).optional(),
}).superRefine((env, ctx) => {
  const window = dedupWindowSeconds(env);
  const path = [env.AUDIT_DEDUP_WINDOW_SECONDS === undefined && env.AUDIT_CLAIM_RETENTION_SECONDS !== undefined ? 'AUDIT_CLAIM_RETENTION_SECONDS' : 'AUDIT_DEDUP_WINDOW_SECONDS'];
  if (env.AUDIT_CHAIN_LINGER_MS * 4 > env.AUDIT_ACK_WAIT_SECONDS * 1000) {
    ctx.addIssue({ code: 'custom', path: ['AUDIT_CHAIN_LINGER_MS'], message: 'must be at most a quarter of AUDIT_ACK_WAIT_SECONDS, or records waiting for their batch are delivered again' });
  }
  if (window < 2 * env.AUDIT_ACK_WAIT_SECONDS) {
    ctx.addIssue({ code: 'custom', path, message: 'must be at least twice AUDIT_ACK_WAIT_SECONDS, or a redelivered record could come after it is forgotten' });
  }
});

export type AuditEnv = z.output<typeof auditEnvSchema>;

export function signingKeyFile(env: AuditEnv): string {
  return env.AUDIT_SIGNING_KEY_FILE ?? join(env.MANDATE_DATA_DIR, 'keys', 'audit-signing-key.json');
}

/** How long a chained record is remembered when nothing says otherwise: far beyond any retry's. */
export const DEFAULT_DEDUP_WINDOW_SECONDS = 120;

/** The dedup window in seconds: AUDIT_DEDUP_WINDOW_SECONDS, else its former name, else the default. */
export function dedupWindowSeconds(env: Pick<AuditEnv, 'AUDIT_DEDUP_WINDOW_SECONDS' | 'AUDIT_CLAIM_RETENTION_SECONDS'>): number {
  return env.AUDIT_DEDUP_WINDOW_SECONDS ?? env.AUDIT_CLAIM_RETENTION_SECONDS ?? DEFAULT_DEDUP_WINDOW_SECONDS;
}
