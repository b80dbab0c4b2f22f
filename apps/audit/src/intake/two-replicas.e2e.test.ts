import { afterEach, describe, expect, it } from 'vitest';
import { JetStreamPublisher } from '@mandate/bus';
import { jetstreamManager } from '@nats-io/jetstream';
import { AUDIT_CONSUMER, AUDIT_STREAM, auditQueryEndpoint, auditVerifyEndpoint, type TenantId } from '@mandate/contracts';
import { JetStreamKvStore } from '@mandate/store';
import { TrailRepository } from '../store/trail-repository.js';
import { publishing } from '../testing/publishing.js';
import { natsServerMissing } from '@mandate/testing';
import { startSystem, type TestSystem } from '@mandate/testing/system';

const missing = natsServerMissing('two audit replicas on one intake');
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const TENANTS = ['replica-a', 'replica-b', 'replica-c', 'replica-d'];

async function chainedIds(h: TestSystem, tenant: string): Promise<string[]> {
  const ids: string[] = [];
  let cursor: string | undefined;
  do {
    const page = await h.bus.request(auditQueryEndpoint, { tenant, service: 'directory', limit: 500, ...(cursor ? { cursor } : {}) });
    ids.push(...page.entries.map((entry) => entry.record.id));
    cursor = page.nextCursor;
  } while (cursor);
  return ids;
}

/*
 * Deployments run more than one audit service (each its own AUDIT_WRITER_ID) on the one durable
 * intake consumer: a tenant's chain has one writer at a time (its lease, in the chain head), and a
 * record delivered to the other replica is handed back to the intake and comes again.
 */
describe.skipIf(missing)('two audit replicas on one intake', { timeout: 120_000 }, () => {
  let h: TestSystem | undefined;
  afterEach(async () => {
    await h?.stop();
    h = undefined;
  });

  it('chain every acknowledged record of every tenant exactly once, within seconds, also when the one writing stops mid-load', async () => {
    // A 5 s ack wait: a delivery nats-server loses as the stopping replica unsubscribes (rare, see
    // docs/audit.md) comes again well inside the 10 s asserted.
    h = await startSystem({ services: ['audit'], env: { AUDIT_WRITER_ID: 'audit-1', AUDIT_ACK_WAIT_SECONDS: '5' } });
    const first = h.service('audit');
    const second = await h.add('audit', { env: { AUDIT_WRITER_ID: 'audit-2' } });
    const repository = await TrailRepository.open(new JetStreamKvStore(h.nc), { kind: 'stream', nc: h.nc, replicas: 1 });
    const publisher = new JetStreamPublisher(h.nc);
    const load = publishing(
      (tenant, id, worker) => publisher.audit({ id, tenant, service: 'directory', action: 'workload-update', outcome: 'succeeded', actor: { admin: `publisher-${worker}` } }),
      TENANTS,
      { pauseMs: 2 },
    );
    while (load.acked() < 1_500) await sleep(50);
    const consumer = await (await jetstreamManager(h.nc)).consumers.info(AUDIT_STREAM.name, AUDIT_CONSUMER);
    expect(consumer.num_redelivered, 'records delivered to the replica not writing their chain came again').toBeGreaterThan(0);
    // The replica writing most chains stops: the other takes them over (a stopping writer gives its leases back).
    const writers = await Promise.all(TENANTS.map(async (tenant) => (await repository.chainHead(tenant as TenantId))?.value.writer));
    const writing = writers.filter((writer) => writer === 'audit-2').length * 2 > TENANTS.length ? second : first;
    await writing.stop();
    const atStop = load.acked();
    while (load.acked() < atStop + 1_000) await sleep(50);
    const acked = await load.stop();
    const loadEnded = Date.now();

    let chained: string[];
    const deadline = Date.now() + 30_000;
    for (;;) {
      chained = (await Promise.all(TENANTS.map((tenant) => chainedIds(h!, tenant)))).flat();
      const present = new Set(chained);
      if (acked.every((id) => present.has(id)) || Date.now() > deadline) break;
      await sleep(200);
    }
    const caughtUpMs = Date.now() - loadEnded;
    expect(chained.length, 'no record chained twice').toBe(new Set(chained).size);
    const present = new Set(chained);
    expect(acked.filter((id) => !present.has(id)), 'acknowledged but not chained').toEqual([]);
    expect(caughtUpMs, 'the chains caught up within seconds of the load').toBeLessThan(10_000);
    for (const tenant of TENANTS) expect(await h.bus.request(auditVerifyEndpoint, { tenant }), tenant).toMatchObject({ ok: true });
  });
});
