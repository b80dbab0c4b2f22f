import { AckPolicy, DeliverPolicy, jetstream, jetstreamManager, JetStreamApiError, type ConsumerMessages } from '@nats-io/jetstream';
import { nanos } from '@nats-io/transport-node';
import { taskSubject, TASKS_STREAM, type TaskMessage } from '@mandate/contracts';
import type { MandateClient } from './client.js';

/** Options of {@link consumeTasks}. */
export interface ConsumeTasksOptions {
  /** The scheduler job whose tasks to take (tasks arrive on `mandate.task.<tenant>.<job>`). */
  job: string;
  /** Durable consumer name, so a restarted agent resumes where it stopped. Default `agent_<tenant>_<job>`. */
  durableName?: string;
  /** How long one task may take before it is handed out again. Default 5 minutes. */
  ackWaitMs?: number;
  /** After a failed task, wait this long before it is handed out again. Default 10 s. */
  retryDelayMs?: number;
  /** Deliveries after which a task that keeps failing is given up (terminated). Default 10. */
  maxDeliveries?: number;
}

/** A running task consumer; {@link TaskConsumer.stop} lets the task in hand finish, then stops. */
export interface TaskConsumer {
  stop(): Promise<void>;
}

const CONSUMER_NOT_FOUND = 10014;

/**
 * Takes the tasks a scheduler job publishes (a job with a `task` action) and runs `handler` for
 * each, one at a time. Delivery is at least once: a task whose handler throws, or whose agent
 * dies, comes again with the same `idempotencyKey`, so make the handler's effect idempotent on
 * it. A handler that returns acknowledges the task.
 */
export async function consumeTasks(client: MandateClient, options: ConsumeTasksOptions, handler: (task: TaskMessage) => Promise<void>): Promise<TaskConsumer> {
  const nc = client.connection;
  const durable = options.durableName ?? `agent_${client.tenant}_${options.job}`.replace(/[^A-Za-z0-9_-]/g, '_');
  // No account-info probe: an agent's NATS user may use the task stream's consumer API, nothing more.
  const jsm = await jetstreamManager(nc, { checkAPI: false });
  const config = {
    durable_name: durable,
    filter_subject: taskSubject(client.tenant, options.job),
    ack_policy: AckPolicy.Explicit,
    deliver_policy: DeliverPolicy.All,
    ack_wait: nanos(options.ackWaitMs ?? 5 * 60_000),
    max_deliver: options.maxDeliveries ?? 10,
  };
  try {
    await jsm.consumers.info(TASKS_STREAM.name, durable);
  } catch (error) {
    if (!(error instanceof JetStreamApiError && error.code === CONSUMER_NOT_FOUND)) throw error;
    await jsm.consumers.add(TASKS_STREAM.name, config);
  }
  const consumer = await jetstream(nc).consumers.get(TASKS_STREAM.name, durable);
  const messages: ConsumerMessages = await consumer.consume({ max_messages: 1 });
  const retryDelay = options.retryDelayMs ?? 10_000;
  const loop = (async () => {
    for await (const msg of messages) {
      let task: TaskMessage;
      try {
        task = msg.json<TaskMessage>();
      } catch {
        msg.term('not a task message');
        continue;
      }
      try {
        await handler(task);
        msg.ack();
      } catch {
        msg.nak(retryDelay);
      }
    }
  })();
  return {
    async stop() {
      await messages.close();
      await loop;
    },
  };
}
