import { connect, type NatsConnection } from '@nats-io/transport-node';
import { Kvm } from '@nats-io/kv';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tenantId } from '@mandate/contracts';
import { natsServerMissing, startNatsServer, type NatsServerHandle } from '@mandate/testing';
import { ExpirySweeper } from './expiry-sweeper.js';
import { JetStreamKvStore } from './jetstream-kv.js';
import { FrozenClock } from './testing/contract-suite.js';

const missing = natsServerMissing('expiry sweeper on JetStream KV');

describe.skipIf(missing)('ExpirySweeper', () => {
  let nats: NatsServerHandle;
  let nc: NatsConnection;
  const clock = new FrozenClock();
  let store: JetStreamKvStore;
  const t = tenantId('acme');

  /** Keys physically in a collection's bucket (what a read that honours TTLs cannot show). */
  async function storedKeys(collection: string): Promise<string[]> {
    const kv = await new Kvm(nc).open(`mandate_${collection.replace(/-/g, '_')}`);
    const keys: string[] = [];
    for await (const key of await kv.keys()) keys.push(key);
    return keys.sort();
  }

  beforeAll(async () => {
    nats = await startNatsServer();
    nc = await connect({ servers: nats.url });
    store = new JetStreamKvStore(nc, { clock: clock.now });
  });

  afterAll(async () => {
    await store?.close();
    await nc?.close();
    await nats?.stop();
  });

  it('removes expired records of every collection for good, keeps live ones, and reports per collection', async () => {
    const sessions = await store.collection<{ n: number }>('sweep-sessions');
    const leases = await store.collection<{ n: number }>('sweep-leases');
    await sessions.create(t, 'old', { n: 1 }, { ttlMs: 1_000 });
    await sessions.create(t, 'new', { n: 2 }, { ttlMs: 60_000 });
    await sessions.create(t, 'kept', { n: 3 });
    await leases.create(t, 'old', { n: 4 }, { ttlMs: 500 });
    clock.advance(2_000);
    expect(await storedKeys('sweep-sessions')).toEqual(['acme.kept', 'acme.new', 'acme.old']);

    const swept: string[] = [];
    const sweeper = new ExpirySweeper(
      [
        { name: 'sessions', collection: sessions },
        { name: 'leases', collection: leases },
      ],
      { intervalMs: 0, log: { info: (fields) => swept.push(`${fields.collection} ${fields.removed}`), warn: () => undefined } },
    );
    expect(await sweeper.sweep()).toEqual({ sessions: 1, leases: 1 });
    expect(swept).toEqual(['sessions 1', 'leases 1']);
    expect((await sessions.list(t)).items.map((d) => d.id)).toEqual(['kept', 'new']);
    // Nothing expired is left to remove, and nothing live was.
    expect(await sweeper.sweep()).toEqual({ sessions: 0, leases: 0 });
    expect((await sessions.get(t, 'new'))?.value).toEqual({ n: 2 });
  });

  it('sweeps by itself every interval once started, goes on past a collection that fails, and stops', async () => {
    const docs = await store.collection<{ n: number }>('sweep-timed');
    await docs.create(t, 'a', { n: 1 }, { ttlMs: 10 });
    clock.advance(20);
    const failures: string[] = [];
    const broken = { sweepExpired: () => Promise.reject(new Error('store down')) };
    const sweeper = new ExpirySweeper(
      [
        { name: 'broken', collection: broken },
        { name: 'timed', collection: docs },
      ],
      { intervalMs: 20, log: { info: () => undefined, warn: (fields) => failures.push(`${fields.collection}: ${(fields.err as Error).message}`) } },
    ).start();
    try {
      await expect.poll(async () => (await storedKeys('sweep-timed')).length, { timeout: 5_000 }).toBe(0);
      expect(failures[0]).toBe('broken: store down');
    } finally {
      await sweeper.stop();
    }
    const after = failures.length;
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(failures.length).toBe(after);
  });
});
