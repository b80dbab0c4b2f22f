import { describe, expect, it } from 'vitest';
import { Kvm } from '@nats-io/kv';
import { connect } from '@nats-io/transport-node';
import { baseEnvSchema } from '@mandate/config';
import { tenantId } from '@mandate/contracts';
import { natsServerMissing, startNatsServer } from '@mandate/testing';
import { JetStreamKvStore } from './jetstream-kv.js';
import { openDocumentStore } from './open-store.js';

const missing = natsServerMissing('openDocumentStore on JetStream KV');

describe.skipIf(missing)('openDocumentStore', () => {
  it('opens JetStream KV by default and prepares the named collections at start-up', async () => {
    const nats = await startNatsServer();
    const nc = await connect({ servers: nats.url });
    try {
      const store = await openDocumentStore(baseEnvSchema.parse({}), nc, ['workloads', 'consent-sessions']);
      expect(store).toBeInstanceOf(JetStreamKvStore);
      const kvm = new Kvm(nc);
      const buckets: string[] = [];
      for await (const status of kvm.list()) buckets.push(status.bucket);
      expect(buckets.sort()).toEqual(['mandate_consent_sessions', 'mandate_workloads']);
      const workloads = await store.collection<{ name: string }>('workloads');
      await workloads.create(tenantId('acme'), 'w1', { name: 'sales-agent' });
      expect((await workloads.get(tenantId('acme'), 'w1'))?.value.name).toBe('sales-agent');
    } finally {
      await nc.close();
      await nats.stop();
    }
  });
});
