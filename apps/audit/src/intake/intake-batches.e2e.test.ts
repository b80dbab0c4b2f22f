import { randomBytes, randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { jetstream, jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';
import { AUDIT_DLQ_HEADERS, AUDIT_DLQ_STREAM, AUDIT_INTAKE_BATCH_MAX_RECORDS, AUDIT_STREAM, auditQueryEndpoint, auditVerifyEndpoint, type AuditRecord, type TenantId } from '@mandate/contracts';
import { natsServerMissing } from '@mandate/testing';
import { startAuditHarness, type AuditHarness } from '../testing/harness.js';

const missing = natsServerMissing('audit intake batches');

describe.skipIf(missing)('the audit service chains batches of records from the intake', { timeout: 60_000 }, () => {
  let h: AuditHarness;
  let jsm: JetStreamManager;

  beforeAll(async () => {
    h = await startAuditHarness();
    jsm = await jetstreamManager(h.nc);
  });
  afterAll(async () => {
    await h?.stop();
  });

  const subject = (tenant: string) => `mandate.audit.${tenant}.directory.workload-create`;
  const record = (tenant: string, i: number): AuditRecord => ({
    id: randomUUID(),
    tenant: tenant as TenantId,
    service: 'directory',
    action: 'workload-create',
    outcome: 'succeeded',
    occurredAt: new Date().toISOString(),
    traceId: randomBytes(16).toString('hex'),
    spanId: randomBytes(8).toString('hex'),
    actor: { admin: 'ops@example', workload: `w-${i}` },
  });
  const publishRaw = (tenant: string, body: unknown, msgID = randomUUID()) => jetstream(h.nc).publish(subject(tenant), JSON.stringify(body), { msgID });
  const chained = async (tenant: string) => (await h.bus.request(auditQueryEndpoint, { tenant, limit: 500 })).entries.map((e) => e.record.id).reverse();
  const deadLettered = async () => {
    const { messages } = (await jsm.streams.info(AUDIT_DLQ_STREAM.name)).state;
    const found = [];
    for (let seq = 1; seq <= messages; seq += 1) {
      const msg = await jsm.streams.getMessage(AUDIT_DLQ_STREAM.name, { seq });
      found.push({ subject: msg!.header.get(AUDIT_DLQ_HEADERS.subject), reason: msg!.header.get(AUDIT_DLQ_HEADERS.reason), detail: msg!.header.get(AUDIT_DLQ_HEADERS.detail), body: msg!.string() });
    }
    return found;
  };

  it('chains every record of a batch once, in the order of the array, and the chain verifies', async () => {
    const batch = Array.from({ length: 5 }, (_, i) => record('batched', i));
    await publishRaw('batched', batch);
    await h.waitForSequence('batched', 5);
    expect(await chained('batched')).toEqual(batch.map((r) => r.id));
    expect(await h.bus.request(auditVerifyEndpoint, { tenant: 'batched' })).toMatchObject({ ok: true, records: { valid: 5, total: 5 } });
  });

  it('a batch that arrives again (another message id), or overlaps one already chained, chains nothing twice', async () => {
    const batch = Array.from({ length: 4 }, (_, i) => record('again', i));
    await publishRaw('again', batch);
    await publishRaw('again', batch);
    const extra = record('again', 9);
    await publishRaw('again', [batch[2], extra, batch[3]]);
    await h.waitForSequence('again', 5);
    await expect.poll(async () => (await jsm.consumers.info(AUDIT_STREAM.name, 'audit-trail')).num_pending + (await jsm.consumers.info(AUDIT_STREAM.name, 'audit-trail')).num_ack_pending, { timeout: 10_000 }).toBe(0);
    expect(await chained('again')).toEqual([...batch.map((r) => r.id), extra.id]);
  });

  it('a batch with a record the subject does not vouch for: the others are chained, the message is dead-lettered whole, naming the element', async () => {
    const good = [record('mixed', 0), record('mixed', 1)];
    const stranger = record('someone-else', 2);
    await publishRaw('mixed', [good[0], stranger, good[1]]);
    await h.waitForSequence('mixed', 2);
    expect(await chained('mixed')).toEqual(good.map((r) => r.id));
    expect(await chained('someone-else')).toEqual([]);
    await expect.poll(async () => (await deadLettered()).find((d) => d.subject === subject('mixed')), { timeout: 10_000 }).toMatchObject({ reason: 'subject-mismatch', detail: 'batch element 1: subject tokens differ from tenant/service/action' });
    const copy = (await deadLettered()).find((d) => d.subject === subject('mixed'))!;
    expect(JSON.parse(copy.body)).toEqual([good[0], stranger, good[1]]);
  });

  it('an empty array, or one past the batch limit, is dead-lettered as invalid-batch and chains nothing', async () => {
    await publishRaw('empty-batch', []);
    await publishRaw('huge-batch', Array.from({ length: AUDIT_INTAKE_BATCH_MAX_RECORDS + 1 }, (_, i) => record('huge-batch', i)));
    await expect.poll(async () => (await deadLettered()).filter((d) => d.reason === 'invalid-batch').map((d) => [d.subject, d.detail]).sort(), { timeout: 10_000 }).toEqual([
      [subject('empty-batch'), 'an array of 0 elements'],
      [subject('huge-batch'), `an array of ${AUDIT_INTAKE_BATCH_MAX_RECORDS + 1} elements`],
    ]);
    expect(await chained('empty-batch')).toEqual([]);
    expect(await chained('huge-batch')).toEqual([]);
  });

  it("services' records published at once travel in fewer messages than records, and each is chained once", async () => {
    const before = (await jsm.streams.info(AUDIT_STREAM.name)).state.last_seq;
    const published = await Promise.all(Array.from({ length: 300 }, (_, i) => h.publish('fleet', { details: { i } })));
    const messages = (await jsm.streams.info(AUDIT_STREAM.name)).state.last_seq - before;
    expect(messages).toBeLessThan(published.length / 4);
    await h.waitForSequence('fleet', 300);
    expect((await chained('fleet')).sort()).toEqual(published.map((r) => r.id).sort());
    expect(await h.bus.request(auditVerifyEndpoint, { tenant: 'fleet' })).toMatchObject({ ok: true, records: { valid: 300, total: 300 } });
  });
});
