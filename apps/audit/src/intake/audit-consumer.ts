import { AckPolicy, DeliverPolicy, jetstream, jetstreamManager, type ConsumerMessages, type JetStreamManager, type JsMsg } from '@nats-io/jetstream';
import { headers as natsHeaders, nanos, type NatsConnection } from '@nats-io/transport-node';
import {
  AUDIT_CONSUMER,
  AUDIT_DLQ_HEADERS,
  AUDIT_DLQ_STREAM,
  AUDIT_INTAKE_BATCH_MAX_RECORDS,
  AUDIT_STREAM,
  auditDlqSubject,
  auditRecordSchema,
  MandateError,
  type AuditPoisonReason,
  type AuditRecord,
} from '@mandate/contracts';
import { declareConsumer, declareStreams } from '@mandate/bus';
import { lazyInstruments, type Logger } from '@mandate/telemetry';
import type { TrailAppender } from '../domain/trail-appender.js';
import { IntakeMigration, intakeState } from './intake-migration.js';
import { IntakeWindow } from './intake-window.js';

const instruments = lazyInstruments('@mandate/audit', (meter) => ({
  processed: meter.createCounter('mandate.audit.records', { description: 'Audit messages by what became of them: appended, duplicate, poison, retried' }),
  appendDuration: meter.createHistogram('mandate.audit.append.duration', {
    description: 'From delivery to acknowledgement of an audit record (of the message that carried it)',
    unit: 's',
    advice: { explicitBucketBoundaries: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30] },
  }),
  lag: meter.createObservableGauge('mandate.audit.consumer.lag', { description: 'Audit records in MANDATE_AUDIT not yet acknowledged by the audit consumer (pending + in flight)' }),
}));

/** Messages the intake consumer lets be delivered and unacknowledged at once (every replica together): AUDIT_MAX_ACK_PENDING records over the most a message carries. */
function intakeMessagesInFlight(maxAckPending: number): number {
  return Math.max(1, Math.floor(maxAckPending / AUDIT_INTAKE_BATCH_MAX_RECORDS));
}

/** After this many deliveries, a record that still fails with anything but `unavailable` or `conflict` is dead-lettered. */
const FAILED_REPEATEDLY_AFTER = 20;
const LAG_POLL_MS = 5_000;
/**
 * The longest a record waits before it is tried again. A transient failure (`unavailable`: the
 * store is away, refused a write, or another replica holds the chain's lease; `conflict`: a batch
 * before it failed) is no fault of the record's: every record in hand fails alike, and its delivery
 * count keeps growing for as long as the outage lasts, so its wait stays short, and the trail
 * catches up within seconds of the store's return (with the half-minute cap of other failures,
 * records that had failed through a rolling restart of the NATS cluster waited up to that long
 * after it). Transient failures are retried for ever, never dead-lettered: a store that keeps
 * refusing writes (a bucket over its size limit) is retried every 2 s until it is fixed. A record
 * that fails for a reason of its own waits longer, until it is dead-lettered.
 */
const TRANSIENT_RETRY_MAX_MS = 2_000;
const FAILING_RETRY_MAX_MS = 30_000;
/**
 * A message delivered while the service stops is handed back, to come again this much later (to
 * another replica, or this one restarted). A delay, not at once: it must not come straight back to
 * this instance while its subscription is still open.
 */
const HANDED_BACK_DELAY_MS = 500;
const RETRY_WARNING_EVERY_MS = 60_000;
/** The longest a stopping service waits for its subscription's drain. */
const DRAIN_WAIT_MS = 2_000;
/** A legacy intake is retired once at most this many records wait: publishes pause while they are chained. */
const MIGRATION_CUT_AT_LAG = 1_000;
const MIGRATION_POLL_MS = 100;

export interface AuditConsumerOptions {
  ackWaitMs: number;
  /** Records delivered and not acknowledged at most (the consumer's limit is in messages: this over the records a batch holds). */
  maxAckPending: number;
  replicas: number;
  /**
   * Whether a legacy intake is migrated by this service (the embedded default, where it may).
   * Production NATS users may not delete the intake (a compromised audit service could drop what
   * is not chained yet): there an operator migrates it (docs/audit.md, "Upgrading the intake").
   */
  migrateIntake: boolean;
}

interface Poison {
  reason: AuditPoisonReason;
  detail: string;
}

/** What a message carries: its valid records, and why it is poison if it is (a batch can be both). */
interface Parsed {
  records: AuditRecord[];
  poison?: Poison;
}

/**
 * Reads `MANDATE_AUDIT` through one durable pull consumer (shared by every replica) and hands each
 * record to the appender; a message is acknowledged only once every record it carries (one, or a
 * batch: libs/contracts `AUDIT_INTAKE_BATCH_MAX_RECORDS`) is in the chain.
 *
 * Consumer settings, and why:
 *   - explicit acks, `ack_wait` (AUDIT_ACK_WAIT_SECONDS): an unacknowledged record comes back, so a
 *     crash loses nothing; the appender's dedup index makes the second delivery harmless;
 *   - `max_deliver` unlimited: a record that exceeded a delivery limit would be skipped for good,
 *     which is a hole in the trail. Failures that cannot heal are handled here instead: poison
 *     records (not JSON, not a record, a subject that disagrees with the record) are copied to
 *     `MANDATE_AUDIT_DLQ` with the reason and terminated at once (the valid records of a batch
 *     with a poison one are chained first: the subject vouches for them as for any); a message
 *     that fails with an internal error `FAILED_REPEATEDLY_AFTER` times goes the same way;
 *     `unavailable` (the store is down) is retried forever, its backoff capped at a few seconds
 *     (`retryDelayMs`);
 *   - `max_ack_pending`: AUDIT_MAX_ACK_PENDING records in flight at most, so that many messages
 *     over the most a batch holds (the appender remembers at least that many records of a chain's
 *     end when it loads a head, see trail-appender.ts); in-flight records are what lets the
 *     appender batch.
 */
export class AuditConsumer {
  #messages: ConsumerMessages | undefined;
  readonly #inFlight = new Set<Promise<void>>();
  #lag = 0;
  #lagTimer: NodeJS.Timeout | undefined;
  #stopping = false;
  #lastRetryWarning = Number.NEGATIVE_INFINITY;
  #migrating: Promise<void> | undefined;
  readonly #observeLag = (result: { observe(value: number): void }) => result.observe(this.#lag);
  readonly #window: IntakeWindow;

  constructor(
    private readonly nc: NatsConnection,
    private readonly appender: TrailAppender,
    private readonly logger: Logger,
    private readonly options: AuditConsumerOptions,
  ) {
    this.#window = new IntakeWindow({
      limit: this.#maxAckPendingMessages,
      inHand: () => this.#inFlight.size,
      flush: () => this.appender.flushQueued(),
      unacknowledged: async () => (await (await jetstreamManager(this.nc)).consumers.info(AUDIT_STREAM.name, AUDIT_CONSUMER)).num_ack_pending,
    });
  }

  async start(): Promise<void> {
    const jsm = await jetstreamManager(this.nc);
    await declareStreams(this.nc, [AUDIT_DLQ_STREAM], { replicas: this.options.replicas });
    const intake = await intakeState(jsm);
    // Every service declares the streams at start-up; this one cannot start without its own.
    if (intake === 'absent') await declareStreams(this.nc, [AUDIT_STREAM], { replicas: this.options.replicas });
    await this.#consume();
    this.#window.start();
    // After the bus comes back, what it kept may not be what it acknowledged (no fsync on 2.9):
    // every chain is reloaded and repaired before the next append.
    void (async () => {
      for await (const status of this.nc.status()) if (status.type === 'reconnect') this.appender.resync();
    })();
    instruments().lag.addCallback(this.#observeLag);
    this.#lagTimer = setInterval(() => void this.#pollLag(), LAG_POLL_MS);
    this.#lagTimer.unref();
    void this.#pollLag();
    if (intake === 'legacy' || intake === 'retired') {
      if (this.options.migrateIntake) this.#migrating = this.#migrate(jsm);
      else this.logger.error({ stream: AUDIT_STREAM.name, state: intake }, 'the audit intake keeps every record for ever (deployed before it was bounded); migrate it as docs/audit.md "Upgrading the intake" says. Consuming it as it is meanwhile');
    }
  }

  /**
   * The intake as deployed before it was bounded kept every record for ever (limits retention,
   * which JetStream cannot change in place): consumed as it is until it is retired and drained,
   * then replaced by the work-queue stream (see IntakeMigration).
   */
  async #migrate(jsm: JetStreamManager): Promise<void> {
    this.logger.warn({ stream: AUDIT_STREAM.name }, 'the audit intake keeps every record for ever (deployed before it was bounded): migrating it to a work queue; publishes pause while its last records are chained');
    let warned = false;
    const migration = new IntakeMigration(jsm, {
      cutAtLag: MIGRATION_CUT_AT_LAG,
      pollMs: MIGRATION_POLL_MS,
      waiting: (lag) => {
        if (!warned) this.logger.warn({ lag }, 'the audit intake migration waits for the audit service to catch up');
        warned = true;
      },
    });
    try {
      await migration.drain(() => this.#stopping);
      await this.#stopConsuming();
      await migration.remove();
      if (this.#stopping) return;
      await declareStreams(this.nc, [AUDIT_STREAM], { replicas: this.options.replicas });
      await this.#consume();
      this.logger.info({ stream: AUDIT_STREAM.name }, 'the audit intake is a work queue now: a record leaves it once it is chained');
    } catch (err) {
      if (!this.#stopping) this.logger.error({ err }, 'the audit intake migration stopped; it resumes at the next start');
    }
  }

  async #consume(): Promise<void> {
    await declareConsumer(this.nc, AUDIT_STREAM.name, {
      durable_name: AUDIT_CONSUMER,
      description: 'The audit service: appends every record to its tenant chain',
      ack_policy: AckPolicy.Explicit,
      deliver_policy: DeliverPolicy.All,
      ack_wait: nanos(this.options.ackWaitMs),
      max_deliver: -1,
      max_ack_pending: this.#maxAckPendingMessages,
      num_replicas: this.options.replicas,
    });
    const consumer = await jetstream(this.nc).consumers.get(AUDIT_STREAM.name, AUDIT_CONSUMER);
    // A callback rather than the async iterator: one fewer promise per record on the hot path.
    this.#messages = await consumer.consume({
      max_messages: Math.min(this.#maxAckPendingMessages, 2_000),
      callback: (msg) => {
        if (this.#stopping) {
          msg.nak(HANDED_BACK_DELAY_MS);
          return;
        }
        const handling = this.#handle(msg).catch((err: unknown) => this.logger.error({ err }, 'audit message handling failed'));
        this.#inFlight.add(handling);
        this.#window.delivered();
        void handling.finally(() => this.#inFlight.delete(handling));
      },
    });
  }

  get #maxAckPendingMessages(): number {
    return intakeMessagesInFlight(this.options.maxAckPending);
  }

  /**
   * The subscription is drained rather than dropped, while what is in hand is finished (acks and
   * naks are publishes: they need no subscription): what the server sent before it took the
   * unsubscribe still arrives, and is handed back while stopping, to come again in half a second;
   * after it, the pull has no interest and gets nothing more. Dropped, such a message came again
   * only after an ack wait: the trail lagged half a minute after about every second restart. What
   * may remain is a race inside nats-server (a delivery it had begun as it took the unsubscribe):
   * measured, none in 30 runs of three restarts under load (draining only once the in-flight work
   * was done, one or two records were left in 3 of 27). The consumer's own
   * `stop()` unsubscribes without a drain, so its subscription (nats.js 3 keeps it as `sub`) is
   * drained here; without one, this is the plain stop.
   */
  async #stopConsuming(): Promise<void> {
    const subscription = (this.#messages as { sub?: { drain?: () => Promise<void> } } | undefined)?.sub;
    // Bounded: with the bus away, the drain's flush would wait for its return.
    const drained = typeof subscription?.drain === 'function' ? withinMs(subscription.drain().catch(() => undefined), DRAIN_WAIT_MS) : undefined;
    await Promise.all([...this.#inFlight, drained]);
    this.#messages?.stop();
    await this.#messages?.closed().catch(() => undefined);
    await Promise.all([...this.#inFlight]);
  }

  /** Stops taking records and waits for those in hand to be appended and acknowledged. */
  async stop(): Promise<void> {
    this.#stopping = true;
    clearInterval(this.#lagTimer);
    instruments().lag.removeCallback(this.#observeLag);
    this.appender.hurry();
    this.#window.stop();
    await this.#migrating;
    await this.#stopConsuming();
  }

  async #handle(msg: JsMsg): Promise<void> {
    const started = performance.now();
    const { records, poison } = parse(msg);
    try {
      const outcomes = await Promise.all(records.map((record) => this.appender.append(record)));
      if (poison) await this.#deadLetter(msg, poison.reason, poison.detail);
      else msg.ack();
      const took = (performance.now() - started) / 1000;
      for (const outcome of outcomes) {
        instruments().processed.add(1, { outcome: outcome.status });
        instruments().appendDuration.record(took);
      }
    } catch (error) {
      const transient = error instanceof MandateError && (error.code === 'unavailable' || error.code === 'conflict');
      if (!transient && msg.info.deliveryCount >= FAILED_REPEATEDLY_AFTER) {
        await this.#deadLetter(msg, 'failed-repeatedly', error instanceof MandateError ? error.code : 'internal');
        return;
      }
      instruments().processed.add(records.length, { outcome: 'retried' });
      const which = { recordId: records[0]?.id, records: records.length };
      if (!transient) this.logger.error({ err: error, ...which }, 'could not append an audit record; it will be redelivered');
      else if (msg.info.deliveryCount >= FAILED_REPEATEDLY_AFTER && performance.now() - this.#lastRetryWarning >= RETRY_WARNING_EVERY_MS) {
        // One line for every record in hand would be hundreds a minute through a long outage.
        this.#lastRetryWarning = performance.now();
        this.logger.warn({ err: error, ...which, deliveries: msg.info.deliveryCount }, 'audit records keep failing to be appended; they are retried (said once a minute at most)');
      }
      msg.nak(retryDelayMs(msg.info.deliveryCount, transient));
    }
  }

  /** Copies the message, byte for byte, to the dead-letter stream with the reason, then terminates it. */
  async #deadLetter(msg: JsMsg, reason: AuditPoisonReason, detail: string): Promise<void> {
    const headers = natsHeaders();
    headers.set(AUDIT_DLQ_HEADERS.reason, reason);
    headers.set(AUDIT_DLQ_HEADERS.detail, detail.slice(0, 256));
    headers.set(AUDIT_DLQ_HEADERS.subject, msg.subject);
    headers.set(AUDIT_DLQ_HEADERS.streamSequence, String(msg.info.streamSequence));
    const traceparent = msg.headers?.get('traceparent');
    if (traceparent) headers.set('traceparent', traceparent);
    try {
      // The stream sequence as message id: a copy retried after a lost ack is stored once.
      await jetstream(this.nc).publish(auditDlqSubject(reason), msg.data, { msgID: `audit-${msg.info.streamSequence}`, headers });
    } catch (err) {
      // Not copied, so not terminated either: it comes back and is tried again.
      this.logger.error({ err, reason }, 'could not dead-letter a poison audit message; it will be redelivered');
      msg.nak(5_000);
      return;
    }
    msg.term(reason);
    instruments().processed.add(1, { outcome: 'poison', reason });
    this.logger.warn({ reason, detail, subject: msg.subject, streamSequence: msg.info.streamSequence }, 'audit message dead-lettered');
  }

  async #pollLag(): Promise<void> {
    try {
      const info = await (await jetstreamManager(this.nc)).consumers.info(AUDIT_STREAM.name, AUDIT_CONSUMER);
      this.#lag = info.num_pending + info.num_ack_pending;
    } catch {
      // Keep the last value; the next poll tries again.
    }
  }
}

/** Resolves when `promise` does, or after `ms`, whichever comes first. */
async function withinMs(promise: Promise<unknown>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([promise, new Promise<void>((resolve) => (timer = setTimeout(resolve, ms)))]);
  clearTimeout(timer);
}

/** Backoff growing with the delivery count: 200 ms, 400 ms, ... up to the cap of its kind of failure. */
export function retryDelayMs(deliveries: number, transient: boolean): number {
  return Math.min(transient ? TRANSIENT_RETRY_MAX_MS : FAILING_RETRY_MAX_MS, 100 * 2 ** Math.min(deliveries, 9));
}

/*
 * Every record goes through the appender's dedup index, even on a first delivery: after a nats-server
 * crash the consumer's delivery counts can roll back (no fsync on 2.9), so "first delivery" does
 * not prove a record was never appended.
 */
function parse(msg: JsMsg): Parsed {
  let body: unknown;
  try {
    body = msg.json();
  } catch {
    return { records: [], poison: { reason: 'not-json', detail: 'body does not parse' } };
  }
  // The NATS user's publish permissions bind the subject, so the subject is what vouches for each
  // record's tenant and service; a record that disagrees with it is refused.
  const [, , tenant, service, action] = msg.subject.split('.');
  const vouched = { tenant, service, action };
  if (!Array.isArray(body)) {
    const one = recordOf(body, vouched);
    return 'poison' in one ? { records: [], poison: one.poison } : { records: [one.record] };
  }
  if (body.length === 0 || body.length > AUDIT_INTAKE_BATCH_MAX_RECORDS) {
    return { records: [], poison: { reason: 'invalid-batch', detail: `an array of ${body.length} elements` } };
  }
  const records: AuditRecord[] = [];
  let poison: Poison | undefined;
  for (const [index, element] of body.entries()) {
    const one = recordOf(element, vouched);
    if ('record' in one) records.push(one.record);
    else poison ??= { reason: one.poison.reason, detail: `batch element ${index}: ${one.poison.detail}` };
  }
  return poison ? { records, poison } : { records };
}

function recordOf(body: unknown, vouched: { tenant?: string | undefined; service?: string | undefined; action?: string | undefined }): { record: AuditRecord } | { poison: Poison } {
  const result = auditRecordSchema.safeParse(body);
  if (!result.success) {
    // Field paths only, never values: a poison record may be carrying something it should not.
    return { poison: { reason: 'invalid-record', detail: result.error.issues.map((i) => i.path.join('.') || '(root)').slice(0, 8).join(', ') } };
  }
  const record = result.data;
  if (vouched.tenant !== record.tenant || vouched.service !== record.service || vouched.action !== record.action) {
    return { poison: { reason: 'subject-mismatch', detail: 'subject tokens differ from tenant/service/action' } };
  }
  return { record };
}
