import { connect } from '@nats-io/transport-node';
import { describe } from 'vitest';
import { natsServerMissing, startNatsServer } from '@mandate/testing';
import { JetStreamKvStore } from './jetstream-kv.js';
import { describeDocumentStoreContract, FrozenClock } from './testing/contract-suite.js';

const missing = natsServerMissing('JetStream KV store contract');

describe.skipIf(missing)('JetStream KV adapter', () => {
  describeDocumentStoreContract('JetStream KV', async () => {
    const nats = await startNatsServer();
    const nc = await connect({ servers: nats.url });
    const clock = new FrozenClock();
    const store = new JetStreamKvStore(nc, { clock: clock.now });
    return {
      store,
      clock,
      async teardown() {
        await store.close();
        await nc.close();
        await nats.stop();
      },
    };
  });
});
