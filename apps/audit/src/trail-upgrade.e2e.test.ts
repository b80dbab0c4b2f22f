import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomUUID } from 'node:crypto';
import { jetstreamManager } from '@nats-io/jetstream';
import { connectToBus } from '@mandate/bus';
import { AUDIT_TRAIL_STREAM, auditDigestEndpoint, auditQueryEndpoint, auditVerifyEndpoint, trailEntriesSubject, type AuditRecord, type TenantId } from '@mandate/contracts';
import { JetStreamKvStore, kvStreamOf } from '@mandate/store';
import { natsServerMissing } from '@mandate/testing';
import { TrailAppender } from './domain/trail-appender.js';
import { TRAIL_COLLECTION, TrailRepository } from './store/trail-repository.js';
import { startAuditHarness, type AuditHarness } from './testing/harness.js';

const missing = natsServerMissing('the audit trail upgraded from JetStream KV to its stream');

const TENANT = 'upgraded' as TenantId;
const BEFORE = 150;

function record(n: number): AuditRecord {
  return {
    id: randomUUID(),
    tenant: TENANT,
    service: 'directory',
    action: 'workload-create',
    outcome: 'succeeded',
    occurredAt: new Date().toISOString(),
    traceId: randomUUID().replaceAll('-', ''),
    spanId: randomUUID().replaceAll('-', '').slice(0, 16),
    actor: { admin: 'ops@example' },
    details: { n },
  };
}

describe.skipIf(missing)('an audit service upgraded onto a trail an earlier version kept in JetStream KV', { timeout: 60_000 }, () => {
  let h: AuditHarness;
  const before: string[] = [];

  beforeAll(async () => {
    h = await startAuditHarness(
      {},
      {
        // What the earlier version left: the chain's entries in the `audit-trail` bucket, its head in `audit-heads`.
        beforeStart: async (natsUrl) => {
          const nc = await connectToBus({ servers: natsUrl, name: 'earlier-version' });
          const writer = new TrailAppender({ repository: await TrailRepository.open(new JetStreamKvStore(nc), { kind: 'documents' }), writerId: 'earlier' });
          for (let n = 0; n < BEFORE; n += 1) {
            const r = record(n);
            before.push(r.id);
            await writer.append(r);
          }
          await writer.close();
          await nc.close();
        },
      },
    );
  });

  afterAll(async () => {
    await h?.stop();
  });

  it('goes on with the same chain on the stream, and verify and queries read across the two', async () => {
    const jsm = await jetstreamManager(h.nc);
    const bucketBefore = (await jsm.streams.info(kvStreamOf(TRAIL_COLLECTION))).state.messages;
    const after = [];
    for (let n = 0; n < 20; n += 1) after.push(await h.publish(TENANT, { details: { n: BEFORE + n } }));
    await h.waitForSequence(TENANT, BEFORE + 20);
    const chained = (await h.repository.entries(TENANT, 1, BEFORE + 20)).map((entry) => entry?.record.id);
    expect(chained).toEqual([...before, ...after.map((r) => r.id)]);

    await h.bus.request(auditDigestEndpoint, { tenant: TENANT });
    expect(await h.bus.request(auditVerifyEndpoint, { tenant: TENANT })).toMatchObject({ ok: true, records: { valid: BEFORE + 20, total: BEFORE + 20 }, digests: { valid: 1, total: 1 } });
    expect(await h.bus.request(auditVerifyEndpoint, { tenant: TENANT, from: BEFORE - 5, to: BEFORE + 5 })).toMatchObject({ ok: true, records: { valid: 11, total: 11 } });
    const page = await h.bus.request(auditQueryEndpoint, { tenant: TENANT, limit: 30 });
    expect(page.entries.map((entry) => entry.sequence)).toEqual(Array.from({ length: 30 }, (_, i) => BEFORE + 20 - i));

    // The new entries are on the stream alone; the bucket holds what it held.
    const { state } = await jsm.streams.info(AUDIT_TRAIL_STREAM.name, { subjects_filter: trailEntriesSubject(TENANT) });
    const onStream = await h.repository.fragmentHolding(TENANT, BEFORE + 1);
    expect(onStream?.first).toBe(BEFORE + 1);
    expect(state.subjects?.[trailEntriesSubject(TENANT)]).toBeGreaterThan(0);
    const legacy = await h.repository.fragmentHolding(TENANT, BEFORE);
    expect(legacy?.id).toMatch(/^e\.\d{12}$/);
    expect((await jsm.streams.info(kvStreamOf(TRAIL_COLLECTION))).state.messages).toBe(bucketBefore);
  });
});
