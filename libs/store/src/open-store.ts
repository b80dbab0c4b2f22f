import type { NatsConnection } from '@nats-io/transport-node';
import type { BaseEnv } from '@mandate/config';
import { JetStreamKvStore } from './jetstream-kv.js';
import { MongoDocumentStore } from './mongodb.js';
import type { DocumentStore } from './port.js';

/**
 * The store a service should use, from its validated configuration: JetStream KV on the bus it
 * already has (embedded default), or MongoDB (production), preparing `collections` at start-up.
 */
export async function openDocumentStore(
  env: Pick<BaseEnv, 'MANDATE_STORE' | 'MONGODB_URI' | 'MONGODB_DATABASE' | 'MANDATE_MODE'>,
  nc: NatsConnection,
  collections: readonly string[] = [],
): Promise<DocumentStore> {
  if (env.MANDATE_STORE === 'mongodb') {
    if (!env.MONGODB_URI) throw new TypeError('MONGODB_URI is required for the MongoDB store (the config schema checks this)');
    return MongoDocumentStore.connect({ uri: env.MONGODB_URI, database: env.MONGODB_DATABASE, collections });
  }
  const store = new JetStreamKvStore(nc, { replicas: env.MANDATE_MODE === 'production' ? 3 : 1 });
  await Promise.all(collections.map((name) => store.collection(name)));
  return store;
}
