import { afterEach, describe, expect, it } from 'vitest';
import { jetstreamManager, RetentionPolicy, StorageType } from '@nats-io/jetstream';
import { nanos } from '@nats-io/transport-node';
import { connectToBus, JetStreamPublisher } from '@mandate/bus';
import { AUDIT_STREAM, auditVerifyEndpoint, type TenantId } from '@mandate/contracts';
import { natsServerMissing } from '@mandate/testing';
import { startAuditHarness, type AuditHarness } from '../testing/harness.js';
import { publishing } from '../testing/publishing.js';

const missing = natsServerMissing('the audit intake as a work queue');

/** Every record id of a tenant's chain, in order. */
async function chainIds(h: AuditHarness, tenant: string): Promise<string[]> {
  const head = (await h.repository.chainHead(tenant as TenantId))?.value.sequence ?? 0;
  return (await h.repository.entries(tenant as TenantId, 1, head)).map((entry) => entry?.record.id ?? '(missing)');
}

async function intake(h: AuditHarness) {
  return (await jetstreamManager(h.nc)).streams.info(AUDIT_STREAM.name);
}

/** Waits until the intake holds no record (acks reach the server a moment after the chain moves). */
async function intakeEmpties(h: AuditHarness, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while ((await intake(h)).state.messages > 0) {
    if (Date.now() > deadline) throw new Error(`the intake still holds ${(await intake(h)).state.messages} records`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const until = async (condition: () => boolean, timeoutMs = 30_000) => {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 20));
  }
};

async function expectExactlyOnce(h: AuditHarness, tenants: readonly string[], acked: readonly string[]): Promise<void> {
  const deadline = Date.now() + 30_000;
  let ids: string[];
  for (;;) {
    ids = (await Promise.all(tenants.map((t) => chainIds(h, t)))).flat();
    // Every acknowledged id, not a count: a publish given up when the load stopped may be stored
    // and chained too, while the last acknowledged records still wait for their batch to fill.
    const chainedSoFar = new Set(ids);
    if (acked.every((id) => chainedSoFar.has(id)) || Date.now() > deadline) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  expect(ids.length, 'no record twice').toBe(new Set(ids).size);
  const chained = new Set(ids);
  expect(acked.filter((id) => !chained.has(id)), 'acknowledged but not chained').toEqual([]);
  for (const tenant of tenants) expect(await h.bus.request(auditVerifyEndpoint, { tenant })).toMatchObject({ ok: true });
}

describe.skipIf(missing)('the audit intake is a buffer: records leave it once chained', { timeout: 120_000 }, () => {
  let h: AuditHarness | undefined;
  afterEach(async () => {
    await h?.stop();
    h = undefined;
  });

  it('is a work queue that refuses delete and purge, and holds none of the records it has chained', async () => {
    h = await startAuditHarness();
    const { config } = await intake(h);
    expect(config).toMatchObject({ retention: RetentionPolicy.Workqueue, deny_delete: true, deny_purge: true });
    for (let i = 0; i < 300; i += 1) await h.publish(i % 2 ? 'acme' : 'globex');
    await h.waitForSequence('acme', 150);
    await h.waitForSequence('globex', 150);
    await intakeEmpties(h);
    const jsm = await jetstreamManager(h.nc);
    await expect(jsm.streams.purge(AUDIT_STREAM.name)).rejects.toThrow();
  });

  it('stores a retried publish once even after its first copy was chained and left the intake (the duplicate window outlives the message)', async () => {
    h = await startAuditHarness();
    const record = await h.publish('acme');
    await h.waitForSequence('acme', 1);
    await intakeEmpties(h);
    const again = await h.publisher.audit({ ...record });
    expect(again.id).toBe(record.id);
    await h.publish('acme');
    await h.waitForSequence('acme', 2);
    expect(await chainIds(h, 'acme')).toHaveLength(2);
    expect((await intake(h)).state.last_seq).toBe(2);
  });

  it('batches waiting to fill go once the intake can deliver no more: records held back by a long linger do not stall the consumer', async () => {
    // 8 messages in flight at most (256 records over 32 a message), a linger of 3 s, and 80 tenants
    // with a record each (80 messages: one subject each, nothing batched): without the flush each
    // round of 8 would wait out the linger, 10 rounds and about 30 s. With it, at most the last
    // few records wait (nothing more is coming, the window is not full: that wait is the linger's).
    h = await startAuditHarness({ AUDIT_MAX_ACK_PENDING: '256', AUDIT_CHAIN_LINGER_MS: '3000' });
    const tenants = Array.from({ length: 80 }, (_, i) => `linger-${i}`);
    const started = Date.now();
    const published = await Promise.all(tenants.map((tenant) => h!.publish(tenant)));
    await expectExactlyOnce(h, tenants, published.map((record) => record.id));
    expect(Date.now() - started).toBeLessThan(12_000);
  });

  it('keeps what arrives while the audit service is away, and a restarted service chains all of it once, within seconds, restart after restart', async () => {
    // A message the server sent a stopping instance as it stopped listening is handed back when it
    // arrives (audit-consumer.ts, #stopConsuming); one nats-server itself loses in that moment comes
    // again after an ack wait (none in 30 runs like this one, but it can happen). 5 s here, so that
    // such a record, too, is chained well inside the 10 s asserted.
    h = await startAuditHarness({ AUDIT_ACK_WAIT_SECONDS: '5' });
    const tenants = ['acme', 'globex'];
    const harness = h;
    const load = publishing((tenant, id) => harness.publish(tenant, { id }), tenants);
    for (let restart = 1; restart <= 3; restart += 1) {
      await until(() => load.acked() >= restart * 900 - 600);
      await h.service.stop(); // mid-stream: whatever is in hand is finished, the rest waits in the intake
      await until(() => load.acked() >= restart * 900);
      expect((await intake(h)).state.messages).toBeGreaterThan(0);
      await h.restartService();
    }
    await until(() => load.acked() >= 3_000);
    const acked = await load.stop();
    const loadEnded = Date.now();
    await expectExactlyOnce(h, tenants, acked);
    expect(Date.now() - loadEnded, 'chained within seconds of the last record').toBeLessThan(10_000);
    await intakeEmpties(h);
  });

  it('migrates a deployed intake (kept for ever) to the work queue under load, losing and doubling nothing', async () => {
    const legacyRecords: string[] = [];
    h = await startAuditHarness(
      {},
      {
        // The intake as every deployed system has it: limits retention, a backlog, nothing consumed yet.
        beforeStart: async (natsUrl) => {
          const nc = await connectToBus({ servers: natsUrl, name: 'legacy-intake' });
          await (await jetstreamManager(nc)).streams.add({
            name: AUDIT_STREAM.name,
            subjects: [...AUDIT_STREAM.subjects],
            storage: StorageType.File,
            retention: RetentionPolicy.Limits,
            deny_delete: true,
            deny_purge: true,
            duplicate_window: nanos(AUDIT_STREAM.duplicateWindowMs),
          });
          const publisher = new JetStreamPublisher(nc);
          for (let i = 0; i < 400; i += 1) {
            const record = await publisher.audit({ tenant: i % 2 ? 'acme' : 'globex', service: 'directory', action: 'workload-create', outcome: 'succeeded', actor: { admin: 'ops@example' } });
            legacyRecords.push(record.id);
          }
          await nc.close();
        },
      },
    );
    const tenants = ['acme', 'globex'];
    const harness = h;
    const load = publishing((tenant, id) => harness.publish(tenant, { id }), tenants);
    const jsm = await jetstreamManager(h.nc);
    const deadline = Date.now() + 60_000;
    while ((await jsm.streams.info(AUDIT_STREAM.name).catch(() => undefined))?.config.retention !== RetentionPolicy.Workqueue) {
      if (Date.now() > deadline) throw new Error('the intake was not migrated');
      await new Promise((r) => setTimeout(r, 50));
    }
    const atMigration = load.acked();
    await until(() => load.acked() >= atMigration + 300);
    const acked = await load.stop();
    await expectExactlyOnce(h, tenants, [...legacyRecords, ...acked]);
    const { config } = await intake(h);
    expect(config).toMatchObject({ retention: RetentionPolicy.Workqueue, deny_delete: true, deny_purge: true, subjects: [...AUDIT_STREAM.subjects] });
    await intakeEmpties(h);
  });
});
