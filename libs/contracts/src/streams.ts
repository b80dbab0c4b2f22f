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

export const AUDIT_STREAM: StreamDefinition = Object.freeze({
  name: 'MANDATE_AUDIT',
  description: 'Audit records of every Mandate service (mandate.audit.<tenant>.<service>.<action>); append-only',
  subjects: [ALL_AUDIT],
  denyDelete: true,
  denyPurge: true,
  duplicateWindowMs: 10 * 60_000,
  maxAgeMs: 0,
});

export const STREAMS: readonly StreamDefinition[] = Object.freeze([EVENTS_STREAM, AUDIT_STREAM]);
