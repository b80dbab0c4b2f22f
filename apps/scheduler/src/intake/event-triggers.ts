import { AckPolicy, DeliverPolicy, jetstream, jetstreamManager, JetStreamApiError, type ConsumerMessages } from '@nats-io/jetstream';
import { nanos, type NatsConnection } from '@nats-io/transport-node';
import { TRIGGERS_STREAM, triggerSubject, type TenantId } from '@mandate/contracts';
import { declareConsumer } from '@mandate/bus';
import type { Logger } from '@mandate/telemetry';
import type { Scheduler } from '../domain/scheduler.js';

const CONSUMER_NOT_FOUND = 10014;

/** The durable consumer of one event-triggered job (names allow neither `.` nor wildcards; tenant and job have neither `_`). */
export const triggerConsumerName = (tenant: string, job: string) => `scheduler_${tenant}_${job}`;

/**
 * Event triggers: one durable pull consumer per job on `MANDATE_TRIGGERS`, filtered on the job's
 * subject, shared by every replica (each message goes to one). Each message becomes one run whose
 * idempotency key carries the stream sequence; it is acknowledged once the run is recorded, so a
 * crash before that redelivers it and the run's id (the sequence) makes the second one a no-op.
 */
export class EventTriggers {
  readonly #loops = new Map<string, { messages: ConsumerMessages; done: Promise<void> }>();

  constructor(
    private readonly nc: NatsConnection,
    private readonly scheduler: Scheduler,
    private readonly logger: Logger,
    private readonly options: { ackWaitMs: number; replicas: number },
  ) {}

  /** Creates the job's consumer (delivering what arrives from now on). */
  async declare(tenant: TenantId, job: string, filter: string): Promise<void> {
    await declareConsumer(this.nc, TRIGGERS_STREAM.name, {
      durable_name: triggerConsumerName(tenant, job),
      description: `scheduler job ${tenant}/${job}`,
      filter_subject: triggerSubject(tenant, filter),
      ack_policy: AckPolicy.Explicit,
      deliver_policy: DeliverPolicy.New,
      ack_wait: nanos(this.options.ackWaitMs),
      max_deliver: -1,
      num_replicas: this.options.replicas,
    });
  }

  async remove(tenant: TenantId, job: string): Promise<void> {
    this.#stop(triggerConsumerName(tenant, job));
    try {
      await (await jetstreamManager(this.nc)).consumers.delete(TRIGGERS_STREAM.name, triggerConsumerName(tenant, job));
    } catch (error) {
      if (!(error instanceof JetStreamApiError && error.code === CONSUMER_NOT_FOUND)) throw error;
    }
  }

  /** Consumes for exactly the given active event jobs; stops the rest. */
  async reconcile(active: readonly { tenant: TenantId; job: string; filter: string }[]): Promise<void> {
    const wanted = new Map(active.map((entry) => [triggerConsumerName(entry.tenant, entry.job), entry]));
    for (const name of this.#loops.keys()) if (!wanted.has(name)) this.#stop(name);
    for (const [name, entry] of wanted) {
      if (this.#loops.has(name)) continue;
      try {
        await this.#consume(name, entry.tenant, entry.job);
      } catch (err) {
        this.logger.warn({ err, job: entry.job }, 'could not consume the trigger of a job; will try again');
      }
    }
  }

  async #consume(name: string, tenant: TenantId, job: string): Promise<void> {
    const consumer = await jetstream(this.nc).consumers.get(TRIGGERS_STREAM.name, name);
    const messages = await consumer.consume({ max_messages: 64 });
    const done = (async () => {
      for await (const msg of messages) {
        try {
          let data: unknown;
          try {
            data = msg.json();
          } catch {
            data = msg.string();
          }
          await this.scheduler.fireEvent(tenant, job, { subject: msg.subject, sequence: msg.info.streamSequence, data, receivedAt: msg.info.timestampNanos / 1e6 }, false);
          msg.ack();
        } catch (err) {
          this.logger.warn({ err, job }, 'could not record an event run; it will be redelivered');
          msg.nak(5_000);
        }
      }
    })().finally(() => this.#loops.delete(name));
    this.#loops.set(name, { messages, done });
  }

  #stop(name: string): void {
    this.#loops.get(name)?.messages.stop();
    this.#loops.delete(name);
  }

  async stop(): Promise<void> {
    const loops = [...this.#loops.values()];
    for (const name of [...this.#loops.keys()]) this.#stop(name);
    await Promise.all(loops.map((loop) => loop.done.catch(() => undefined)));
  }
}
