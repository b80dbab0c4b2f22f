import { createHash } from 'node:crypto';
import type { MsgHdrs } from '@nats-io/transport-node';
import { AUDIT_INTAKE_BATCH_MAX_BYTES, AUDIT_INTAKE_BATCH_MAX_RECORDS } from '@mandate/contracts';
import type { AckedPublisher } from './acked-publish.js';

/** One record waiting to be sent: its id, its JSON, and the headers it carries when it goes alone. */
interface Queued {
  id: string;
  json: string;
  headers: MsgHdrs;
  resolve(): void;
  reject(error: unknown): void;
}

/** The records of one subject: whether a message of theirs awaits its acknowledgement, and what queued up behind it. */
interface Line {
  inFlight: boolean;
  queue: Queued[];
}

export interface BatchLimits {
  records: number;
  bytes: number;
}

const encoder = new TextEncoder();

/**
 * Audit records on their way to `MANDATE_AUDIT`, by subject (libs/contracts
 * `AUDIT_INTAKE_BATCH_MAX_RECORDS` says the format). A record goes at once, alone and exactly as
 * a single record always went (its id as `Nats-Msg-Id`, its trace context in `traceparent`), when
 * nothing of this publisher is in flight on its subject; otherwise it waits for that message's
 * acknowledgement and goes with whatever else queued up meanwhile, as one JSON array. Each
 * record's promise settles with its own message's acknowledgement: resolved only once JetStream
 * has stored it, so audit-before-release holds record by record.
 *
 * What this saves is per message, not per record: under load nats-server stores, acknowledges,
 * delivers and takes the consumer's acknowledgement of one message for many records. At a low
 * rate nothing waits (the line is idle when a record comes).
 *
 * A batch's `Nats-Msg-Id` is a hash of its record ids, and its `traceparent` its first record's.
 * Nothing here retries: a failed message
 * fails each of its records, and a caller that retries its request (same idempotency key, same
 * record id) may send the record in another batch; the audit service's dedup index makes
 * that second copy harmless, as it does any redelivery.
 */
export class AuditIntakeBatches {
  readonly #lines = new Map<string, Line>();

  constructor(
    private readonly acked: AckedPublisher,
    private readonly limits: BatchLimits = { records: AUDIT_INTAKE_BATCH_MAX_RECORDS, bytes: AUDIT_INTAKE_BATCH_MAX_BYTES },
  ) {}

  /** Resolves once JetStream has acknowledged the message that carried the record; rejects with that message's failure. */
  publish(subject: string, id: string, json: string, headers: MsgHdrs): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      let line = this.#lines.get(subject);
      if (!line) {
        line = { inFlight: false, queue: [] };
        this.#lines.set(subject, line);
      }
      line.queue.push({ id, json, headers, resolve, reject });
      if (!line.inFlight) this.#send(subject, line);
    });
  }

  #send(subject: string, line: Line): void {
    const batch = takeBatch(line.queue, this.limits);
    if (batch.length === 0) {
      this.#lines.delete(subject);
      return;
    }
    line.inFlight = true;
    const only = batch.length === 1 ? batch[0]! : undefined;
    const sent = only
      ? this.acked.publish(subject, encoder.encode(only.json), { msgID: only.id, headers: only.headers })
      : // A batch carries its first record's trace context, so it too has one (each record's trace and span ids are in its body).
        this.acked.publish(subject, encoder.encode(`[${batch.map((queued) => queued.json).join(',')}]`), { msgID: batchId(batch), headers: batch[0]!.headers });
    sent.then(
      () => {
        for (const queued of batch) queued.resolve();
      },
      (error: unknown) => {
        for (const queued of batch) queued.reject(error);
      },
    ).finally(() => {
      line.inFlight = false;
      this.#send(subject, line);
    });
  }
}

/** Takes from the front of `queue` the records the next message carries: at least one, then as many as fit the limits. */
export function takeBatch<T extends { json: string }>(queue: T[], limits: BatchLimits): T[] {
  if (queue.length === 0) return [];
  // The array's brackets and commas: one byte per record, and one more.
  let bytes = Buffer.byteLength(queue[0]!.json) + 2;
  let count = 1;
  while (count < queue.length && count < limits.records) {
    const next = Buffer.byteLength(queue[count]!.json) + 1;
    if (bytes + next > limits.bytes) break;
    bytes += next;
    count += 1;
  }
  return queue.splice(0, count);
}

function batchId(batch: readonly Queued[]): string {
  const hash = createHash('sha256');
  for (const queued of batch) hash.update(queued.id).update('\n');
  return `batch-${hash.digest('base64url')}`;
}
