import { connect, nanos } from '@nats-io/transport-node';
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

  it('gives a bucket opened with a max age that max age, also a bucket that existed without one, and the server removes old records', async () => {
    const nats = await startNatsServer();
    const nc = await connect({ servers: nats.url });
    try {
      const jsm = await jetstreamManager(nc);
      const before = new JetStreamKvStore(nc);
      const claims = await before.collection<{ n: number }>('claims');
      await claims.create(tenantId('t'), 'old', { n: 1 });
      expect((await jsm.streams.info('KV_mandate_claims')).config.max_age).toBe(0);
      await before.close();

      const after = new JetStreamKvStore(nc);
      const aged = await after.collection<{ n: number }>('claims', { maxAgeMs: 2_000 });
      expect((await jsm.streams.info('KV_mandate_claims')).config.max_age).toBe(nanos(2_000));
      // Prepared by name alone (as a service does at start-up), it is the same bucket and keeps its max age.
      await after.collection('claims');
      expect((await jsm.streams.info('KV_mandate_claims')).config.max_age).toBe(nanos(2_000));
      // The server itself removes them, records written before the upgrade too: nothing left, no marker.
      await aged.create(tenantId('t'), 'new', { n: 2 });
      const deadline = Date.now() + 10_000;
      while ((await jsm.streams.info('KV_mandate_claims')).state.messages > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 250));
      expect((await jsm.streams.info('KV_mandate_claims')).state.messages).toBe(0);
      expect(await aged.sweepExpired()).toBe(0);
      await after.close();
    } finally {
      await nc.close();
      await nats.stop();
    }
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
