import { connect } from '@nats-io/transport-node';
import { jetstreamManager } from '@nats-io/jetstream';
import { describe, expect, it } from 'vitest';
import { MandateError, tenantId } from '@mandate/contracts';
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

  it('createMany rejects with unavailable, creating nothing, when the bucket is gone', async () => {
    const nats = await startNatsServer();
    const nc = await connect({ servers: nats.url });
    try {
      const store = new JetStreamKvStore(nc);
      const docs = await store.collection<{ n: number }>('vanishing');
      await (await jetstreamManager(nc)).streams.delete('KV_mandate_vanishing');
      const error = await docs.createMany(tenantId('t'), [{ id: 'a', value: { n: 1 } }]).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(MandateError);
      expect((error as MandateError).code).toBe('unavailable');
      await store.close();
    } finally {
      await nc.close();
      await nats.stop();
    }
  });
});
