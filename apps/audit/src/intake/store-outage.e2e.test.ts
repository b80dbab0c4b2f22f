import { afterEach, describe, expect, it } from 'vitest';
import { jetstreamManager } from '@nats-io/jetstream';
import { AUDIT_CONSUMER, AUDIT_STREAM, auditVerifyEndpoint, MandateError, type TenantId } from '@mandate/contracts';
import type { DocumentCollection, DocumentStore } from '@mandate/store';
import { natsServerMissing } from '@mandate/testing';
import { startAuditHarness, type AuditHarness } from '../testing/harness.js';

const missing = natsServerMissing('the audit service through an outage of its store');
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** The audit service's store, which answers `unavailable` to everything while `away` (as JetStream KV does without a leader). */
function storeWithOutage(): { wrap(store: DocumentStore): DocumentStore; away: boolean } {
  const switchboard = {
    away: false,
    wrap: (store: DocumentStore): DocumentStore => ({
      close: () => store.close(),
      async collection<T>(name: string, options?: Parameters<DocumentStore['collection']>[1]): Promise<DocumentCollection<T>> {
        const collection = await store.collection<T>(name, options);
        return new Proxy(collection, {
          get(target, property, receiver) {
            const value: unknown = Reflect.get(target, property, receiver);
            if (typeof value !== 'function') return value;
            return (...args: unknown[]) => (switchboard.away ? Promise.reject(new MandateError('unavailable', 'the store did not answer')) : (value as (...a: unknown[]) => unknown).apply(target, args));
          },
        });
      },
    }),
  };
  return switchboard;
}

describe.skipIf(missing)('the audit service through an outage of its store', { timeout: 60_000 }, () => {
  let h: AuditHarness | undefined;
  afterEach(async () => {
    await h?.stop();
    h = undefined;
  });

  it('records that failed again and again while the store was away are chained within seconds of its return, each once', async () => {
    const store = storeWithOutage();
    // No linger: what is measured is the wait between retries, nothing else.
    h = await startAuditHarness({ AUDIT_CHAIN_LINGER_MS: '0' }, { wrapStore: store.wrap });
    const tenants = ['acme', 'globex'] as const;
    for (const tenant of tenants) await h.publish(tenant);
    for (const tenant of tenants) await h.waitForSequence(tenant, 1);

    store.away = true;
    const published = await Promise.all(Array.from({ length: 40 }, (_, i) => h!.publish(tenants[i % 2]!)));
    // Seven seconds of failures: with a backoff that doubles without a low cap, the next try of each
    // record would come 5.6 s after the store is back (they fail at 0, 0.2, 0.6, 1.4, 3.0, 6.2, then 12.6 s).
    await sleep(7_000);
    const consumer = await (await jetstreamManager(h.nc)).consumers.info(AUDIT_STREAM.name, AUDIT_CONSUMER);
    expect(consumer.num_redelivered, 'the records were tried again while the store was away').toBeGreaterThan(0);
    store.away = false;
    const back = Date.now();

    for (const tenant of tenants) await h.waitForSequence(tenant, 21, 20_000);
    expect(Date.now() - back, 'chained within seconds of the store coming back').toBeLessThan(4_000);
    const ids = [];
    for (const tenant of tenants) {
      const head = (await h.repository.chainHead(tenant as TenantId))!.value.sequence;
      ids.push(...(await h.repository.entries(tenant as TenantId, 2, head)).map((entry) => entry?.record.id));
    }
    expect(ids.sort()).toEqual(published.map((record) => record.id).sort());
    for (const tenant of tenants) expect(await h.bus.request(auditVerifyEndpoint, { tenant })).toMatchObject({ ok: true });
  });
});
