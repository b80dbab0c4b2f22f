import { ALL_AUDIT, ALL_EVENTS } from './subjects.js';

/**
 * JetStream streams as data. `libs/bus` creates or updates them at start-up; nothing else
 * decides their shape.
 */
export interface StreamDefinition {
  readonly name: string;
  readonly description: string;
  readonly subjects: readonly string[];
  /** Records can never be deleted one by one (`deny_delete`). */
  readonly denyDelete: boolean;
  /** The stream can never be purged (`deny_purge`). */
  readonly denyPurge: boolean;
  /** Publishes with the same `Nats-Msg-Id` inside this window are stored once. */
  readonly duplicateWindowMs: number;
  /** 0 means keep forever. */
  readonly maxAgeMs: number;
  /**
   * `limits` (the default): kept until the age limit. `workqueue`: a buffer, each message removed
   * once its one consumer acknowledges it. JetStream cannot change this on an existing stream.
   */
  readonly retention?: 'limits' | 'workqueue';
}

export const EVENTS_STREAM: StreamDefinition = Object.freeze({
  name: 'MANDATE_EVENTS',
  description: 'Domain events of every Mandate service (mandate.evt.<service>.<event>)',
  subjects: [ALL_EVENTS],
  denyDelete: false,
  denyPurge: false,
  duplicateWindowMs: 2 * 60_000,
  maxAgeMs: 7 * 24 * 3_600_000,
});

/**
 * The audit intake: a buffer, not the record. The audit service (its one consumer) acknowledges a
 * record once it is in the tenant's chain, and only then does the record leave the stream, so
 * nothing unchained is dropped and a restarted audit service finds all it has not chained.
 */
export const AUDIT_STREAM: StreamDefinition = Object.freeze({
  name: 'MANDATE_AUDIT',
  description: 'Audit records of every Mandate service (mandate.audit.<tenant>.<service>.<action>), each kept until the audit service has chained it',
  subjects: [ALL_AUDIT],
  denyDelete: true,
  denyPurge: true,
  // A retried publish (same record id) within this window is stored once. The window is a set of
  // message ids in nats-server's memory, about 300 bytes each (2 minutes at 20,000 messages/s was
  // 700 MiB of it), and it is not what keeps a record from being chained twice: the audit service's
  // own index does that, for AUDIT_DEDUP_WINDOW_SECONDS (120 s by default). So it covers only the
  // retries that come quickly (the SDK's, for 10 s from a first attempt whose acknowledgement took
  // up to 5 s), sparing the intake a second copy; a later one is stored and found a duplicate.
  duplicateWindowMs: 15_000,
  maxAgeMs: 0,
  retention: 'workqueue',
});

export const STREAMS: readonly StreamDefinition[] = Object.freeze([EVENTS_STREAM, AUDIT_STREAM]);
