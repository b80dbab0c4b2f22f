import { existsSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { describe } from 'vitest';
import { MongoClient } from 'mongodb';
import { skipReason } from '@mandate/testing';
import { MongoDocumentStore } from './mongodb.js';
import { describeDocumentStoreContract, FrozenClock } from './testing/contract-suite.js';

interface MongoTarget {
  uri: string;
  stop(): Promise<void>;
}

/**
 * MongoDB comes from `MONGODB_URI` when set (it must be a replica set: writes use
 * `w: majority`), else from testcontainers when a Docker engine answers. Otherwise the suite is
 * skipped and says why.
 */
async function findMongo(): Promise<MongoTarget | string> {
  const fromEnv = process.env['MONGODB_URI'];
  if (fromEnv) return { uri: fromEnv, stop: async () => {} };
  const dockerHost = process.env['DOCKER_HOST'];
  if (!dockerHost && !existsSync('/var/run/docker.sock')) {
    return 'no Docker engine (no DOCKER_HOST, no /var/run/docker.sock) and MONGODB_URI is not set';
  }
  try {
    const { MongoDBContainer } = await import('@testcontainers/mongodb');
    const container = await new MongoDBContainer('mongo:8').start();
    return { uri: `${container.getConnectionString()}?directConnection=true`, stop: async () => void (await container.stop()) };
  } catch (error) {
    return `a Docker engine was expected but testcontainers could not start MongoDB: ${error instanceof Error ? error.message.split('\n')[0] : String(error)}`;
  }
}

const target = await findMongo();
const skip = typeof target === 'string' ? skipReason('MongoDB store contract', target) : undefined;

describe.skipIf(skip)('MongoDB adapter', () => {
  describeDocumentStoreContract('MongoDB', async () => {
    const { uri, stop } = target as MongoTarget;
    const database = `mandate_test_${randomBytes(6).toString('hex')}`;
    const clock = new FrozenClock();
    const store = await MongoDocumentStore.connect({ uri, database, clock: clock.now });
    return {
      store,
      clock,
      async teardown() {
        await store.close();
        const admin = new MongoClient(uri);
        await admin.db(database).dropDatabase();
        await admin.close();
        await stop();
      },
    };
  });
});
