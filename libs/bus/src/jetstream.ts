import { jetstreamManager, JetStreamApiError, StorageType, RetentionPolicy, DiscardPolicy, type StreamConfig, type ConsumerConfig, type JetStreamManager } from '@nats-io/jetstream';
import { nanos, type NatsConnection } from '@nats-io/transport-node';
import type { StreamDefinition } from '@mandate/contracts';

export interface StreamPlacement {
  /** 1 on the embedded single node; 3 on the production cluster. */
  replicas: number;
}

/**
 * `retention-differs`: the stream exists with another retention policy, which JetStream cannot
 * change in place; it is left exactly as it is (its owner migrates it: the audit intake is moved
 * by the audit service, docs/audit.md "Upgrading the intake").
 */
export type StreamDeclaration = { name: string; action: 'created' | 'updated' | 'unchanged' | 'retention-differs' };

const STREAM_NOT_FOUND = 10059;

/** Whether JetStream answered that the stream does not exist (and not that it could not answer). */
export function isStreamNotFound(error: unknown): boolean {
  return error instanceof JetStreamApiError && error.code === STREAM_NOT_FOUND;
}
const CONSUMER_NOT_FOUND = 10014;

function toStreamConfig(definition: StreamDefinition, placement: StreamPlacement): Partial<StreamConfig> & { name: string } {
  return {
    name: definition.name,
    description: definition.description,
    subjects: [...definition.subjects],
    storage: StorageType.File,
    retention: definition.retention === 'workqueue' ? RetentionPolicy.Workqueue : RetentionPolicy.Limits,
    discard: DiscardPolicy.Old,
    num_replicas: placement.replicas,
    deny_delete: definition.denyDelete,
    deny_purge: definition.denyPurge,
    duplicate_window: nanos(definition.duplicateWindowMs),
    max_age: nanos(definition.maxAgeMs),
    allow_rollup_hdrs: false,
  };
}

/**
 * Creates each stream, or updates it to the declared shape, so the code is the single source of
 * truth for stream configuration. Idempotent: a second start changes nothing.
 */
export async function declareStreams(
  nc: NatsConnection,
  definitions: readonly StreamDefinition[],
  placement: StreamPlacement = { replicas: 1 },
): Promise<StreamDeclaration[]> {
  const jsm = await jetstreamManager(nc);
  const results: StreamDeclaration[] = [];
  for (const definition of definitions) {
    results.push(await declareStream(jsm, toStreamConfig(definition, placement)));
  }
  return results;
}

async function declareStream(jsm: JetStreamManager, wanted: Partial<StreamConfig> & { name: string }): Promise<StreamDeclaration> {
  let current: StreamConfig;
  try {
    current = (await jsm.streams.info(wanted.name)).config;
  } catch (error) {
    if (isStreamNotFound(error)) {
      await jsm.streams.add(wanted);
      return { name: wanted.name, action: 'created' };
    }
    throw error;
  }
  // Not even the other fields: a stream being migrated has had its subjects moved away on purpose.
  if (current.retention !== wanted.retention) return { name: wanted.name, action: 'retention-differs' };
  const differs = (Object.keys(wanted) as (keyof StreamConfig)[]).some(
    (key) => JSON.stringify(current[key]) !== JSON.stringify(wanted[key]),
  );
  if (!differs) return { name: wanted.name, action: 'unchanged' };
  await jsm.streams.update(wanted.name, { ...current, ...wanted });
  return { name: wanted.name, action: 'updated' };
}

/** A durable consumer declared in code, created or updated at start-up like streams. */
export async function declareConsumer(
  nc: NatsConnection,
  stream: string,
  config: Partial<ConsumerConfig> & { durable_name: string },
): Promise<'created' | 'updated'> {
  const jsm = await jetstreamManager(nc);
  try {
    await jsm.consumers.info(stream, config.durable_name);
  } catch (error) {
    if (error instanceof JetStreamApiError && error.code === CONSUMER_NOT_FOUND) {
      await jsm.consumers.add(stream, config);
      return 'created';
    }
    throw error;
  }
  const { durable_name: _durable, ...changes } = config;
  await jsm.consumers.update(stream, config.durable_name, changes);
  return 'updated';
}
