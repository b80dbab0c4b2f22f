import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { deflateRawSync } from 'node:zlib';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { headers as natsHeaders } from '@nats-io/transport-node';
import {
  AUDIT_DLQ_HEADERS,
  AUDIT_TRAIL_HEADERS,
  AUDIT_DLQ_STREAM,
  auditDigestEndpoint,
  auditKeysEndpoint,
  auditQueryEndpoint,
  auditVerifyEndpoint,
  MandateError,
  trailEntriesSubject,
  type TenantId,
} from '@mandate/contracts';
import { natsServerMissing } from '@mandate/testing';
import { DigestKeyRing } from './domain/signing-keys.js';
import { signDigest, digestHash } from './domain/digests.js';
import { TrailVerifier } from './domain/trail-verifier.js';
import { startAuditHarness, type AuditHarness } from './testing/harness.js';

const missing = natsServerMissing('audit service over NATS');

describe.skipIf(missing)('audit service over a real nats-server', { timeout: 60_000 }, () => {
  let h: AuditHarness;
  const stored = () => h.editor;
  const verify = (tenant: string, range: { from?: number | string; to?: number | string } = {}) => h.bus.request(auditVerifyEndpoint, { tenant, ...range });

  /** A tenant with `count` records and one digest after them. */
  async function seeded(tenant: string, count = 6): Promise<void> {
    for (let i = 0; i < count; i += 1) await h.publish(tenant, { details: { i } });
    await h.waitForSequence(tenant, count);
    await h.bus.request(auditDigestEndpoint, { tenant });
  }

  beforeAll(async () => {
    h = await startAuditHarness();
  });

  afterAll(async () => {
    await h?.stop();
  });

  it('chains published records per tenant, verifies them, and finds them by trace id, workload and outcome', async () => {
    const first = await h.publish('acme');
    const denied = await h.publish('acme', { service: 'authorizer', action: 'authorize', outcome: 'denied', reason: 'token_expired', actor: { workload: 'crm-agent', user: { iss: 'https://idp.example', sub: 'sarah' } } });
    await h.publish('globex');
    await h.waitForSequence('acme', 2);
    await h.waitForSequence('globex', 1);

    const page = await h.bus.request(auditQueryEndpoint, { tenant: 'acme' });
    expect(page.entries.map((e) => e.sequence)).toEqual([2, 1]); // newest first
    expect(page.entries[1]).toMatchObject({ sequence: 1, previousHash: '0'.repeat(64), record: first });
    expect(page.entries[0]!.previousHash).toBe(page.entries[1]!.hash);

    expect((await h.bus.request(auditQueryEndpoint, { tenant: 'acme', traceId: denied.traceId })).entries.map((e) => e.record.id)).toEqual([denied.id]);
    expect((await h.bus.request(auditQueryEndpoint, { tenant: 'acme', workload: 'crm-agent', outcome: 'denied', user: 'sarah' })).entries).toHaveLength(1);
    expect((await h.bus.request(auditQueryEndpoint, { tenant: 'acme', provider: 'salesforce' })).entries).toHaveLength(0);
    // Tenants are apart: globex's record is not in acme's chain.
    expect((await h.bus.request(auditQueryEndpoint, { tenant: 'globex' })).entries).toHaveLength(1);

    await h.bus.request(auditDigestEndpoint, { tenant: 'acme' });
    expect(await verify('acme')).toMatchObject({ ok: true, records: { valid: 2, total: 2 }, digests: { valid: 1, total: 1 }, problems: [] });
  });

  it('pages newest first with a cursor', async () => {
    for (let i = 0; i < 7; i += 1) await h.publish('paged', { details: { i } });
    await h.waitForSequence('paged', 7);
    const one = await h.bus.request(auditQueryEndpoint, { tenant: 'paged', limit: 3 });
    const two = await h.bus.request(auditQueryEndpoint, { tenant: 'paged', limit: 3, cursor: one.nextCursor! });
    const three = await h.bus.request(auditQueryEndpoint, { tenant: 'paged', limit: 3, cursor: two.nextCursor! });
    expect([one, two, three].flatMap((p) => p.entries.map((e) => e.sequence))).toEqual([7, 6, 5, 4, 3, 2, 1]);
    expect(three.nextCursor).toBeUndefined();
  });

  it('stores a record once when it arrives again under another message id (past the stream dedup window)', async () => {
    const record = await h.publish('dedup');
    const js = (await import('@nats-io/jetstream')).jetstream(h.nc);
    await js.publish('mandate.audit.dedup.directory.workload-create', JSON.stringify(record), { msgID: `${record.id}-again` });
    await h.publish('dedup');
    await h.waitForSequence('dedup', 2);
    const entries = (await h.bus.request(auditQueryEndpoint, { tenant: 'dedup' })).entries;
    expect(entries.map((e) => e.record.id).filter((x) => x === record.id)).toHaveLength(1);
    expect(entries).toHaveLength(2);
  });

  it('100 concurrent publishers over two tenants: one gap-free chain per tenant, no duplicates', async () => {
    const tenants = ['busy-a', 'busy-b'];
    const published = await Promise.all(Array.from({ length: 100 }, (_, i) => Promise.all(Array.from({ length: 5 }, () => h.publish(tenants[i % 2]!)))));
    const ids = (t: string) => published.flat().filter((r) => r.tenant === t).map((r) => r.id).sort();
    for (const tenant of tenants) {
      await h.waitForSequence(tenant, 250);
      const entries = (await h.repository.entries(tenant as TenantId, 1, 251)).filter((e) => e !== undefined);
      expect(entries.map((e) => e.sequence)).toEqual(Array.from({ length: 250 }, (_, i) => i + 1));
      expect(entries.map((e) => e.record.id).sort()).toEqual(ids(tenant));
      expect(await verify(tenant)).toMatchObject({ ok: true, records: { valid: 250, total: 250 } });
    }
  });

  it('dead-letters poison records with the reason and terminates them; the chain goes on', async () => {
    const js = (await import('@nats-io/jetstream')).jetstream(h.nc);
    const good = await h.publish('poison');
    await js.publish('mandate.audit.poison.directory.workload-create', 'not json {', { msgID: 'poison-1' });
    await js.publish('mandate.audit.poison.directory.workload-create', JSON.stringify({ ...good, id: 'not-a-uuid' }), { msgID: 'poison-2' });
    const h2 = natsHeaders();
    h2.set('traceparent', `00-${good.traceId}-${good.spanId}-01`);
    await js.publish('mandate.audit.other-tenant.directory.workload-create', JSON.stringify({ ...good, id: crypto.randomUUID() }), { msgID: 'poison-3', headers: h2 });
    await h.publish('poison');
    await h.waitForSequence('poison', 2);

    const jsm = await jetstreamManager(h.nc);
    await expect.poll(async () => (await jsm.streams.info(AUDIT_DLQ_STREAM.name)).state.messages, { timeout: 10_000 }).toBe(3);
    const reasons = [];
    for (let seq = 1; seq <= 3; seq += 1) {
      const msg = await jsm.streams.getMessage(AUDIT_DLQ_STREAM.name, { seq });
      reasons.push([msg!.subject, msg!.header.get(AUDIT_DLQ_HEADERS.reason)]);
    }
    expect(reasons.sort()).toEqual([
      ['mandate.dlq.audit.invalid-record', 'invalid-record'],
      ['mandate.dlq.audit.not-json', 'not-json'],
      ['mandate.dlq.audit.subject-mismatch', 'subject-mismatch'],
    ]);
    expect((await h.bus.request(auditQueryEndpoint, { tenant: 'poison' })).entries).toHaveLength(2);
  });

  it('signs a digest per interval even without records, chained to the one before', async () => {
    await seeded('quiet', 2);
    const [again] = (await h.bus.request(auditDigestEndpoint, { tenant: 'quiet' })).digests;
    expect(again).toMatchObject({ number: 2, fromSequence: 3, toSequence: 2 });
    const first = await stored().storedDigest('quiet' as TenantId, 1);
    expect(again!.previousDigestHash).toBe(digestHash(first));
    const keys = await h.bus.request(auditKeysEndpoint, {});
    expect(keys.keys.map((k) => k.kid)).toEqual([again!.kid]);
    expect(await verify('quiet')).toMatchObject({ ok: true, records: { valid: 2, total: 2 }, digests: { valid: 2, total: 2 } });
  });

  describe('tampering with the stored trail', () => {
    const problemOf = async (tenant: string) => (await verify(tenant)).problem;

    it('an untouched trail verifies', async () => {
      await seeded('t-clean');
      expect(await verify('t-clean')).toMatchObject({ ok: true, records: { valid: 6, total: 6 }, digests: { valid: 1, total: 1 } });
    });

    it('a changed field', async () => {
      await seeded('t-field');
      const entry = await stored().read('t-field' as TenantId, 3);
      await stored().replace('t-field' as TenantId, 3, { ...entry, record: { ...entry.record, outcome: 'denied' } });
      expect(await problemOf('t-field')).toMatchObject({ kind: 'edited', sequence: 3 });
      expect(await verify('t-field')).toMatchObject({ ok: false, records: { valid: 5, total: 6 } });
    });

    it('a changed field with the hash recomputed is still caught by the next link', async () => {
      await seeded('t-rehash');
      const { entryHash } = await import('./domain/chain.js');
      const entry = await stored().read('t-rehash' as TenantId, 3);
      const forged = { ...entry, record: { ...entry.record, outcome: 'denied' as const } };
      await stored().replace('t-rehash' as TenantId, 3, { ...forged, hash: entryHash(forged) });
      expect(await problemOf('t-rehash')).toMatchObject({ kind: 'edited', sequence: 4 });
    });

    it('a flipped byte in a stored (deflated) fragment', async () => {
      await seeded('t-flip');
      await stored().corruptFragment('t-flip' as TenantId, 3);
      expect(await verify('t-flip')).toMatchObject({ ok: false });
    });

    it('a fragment appended over the chain by someone who can publish to the stream, its entry linked and hashed', async () => {
      await seeded('t-overlap');
      const { entryHash } = await import('./domain/chain.js');
      const entry = await stored().read('t-overlap' as TenantId, 4);
      const forged = { ...entry, record: { ...entry.record, outcome: 'denied' as const } };
      const headers = natsHeaders();
      headers.set(AUDIT_TRAIL_HEADERS.first, '4');
      headers.set(AUDIT_TRAIL_HEADERS.count, '1');
      await jetstream(h.nc).publish(trailEntriesSubject('t-overlap'), deflateRawSync(JSON.stringify([{ ...forged, hash: entryHash(forged) }])), { headers });
      expect(await problemOf('t-overlap')).toMatchObject({ kind: 'edited', sequence: 5 });
    });

    it('a deleted record', async () => {
      await seeded('t-delete');
      await stored().remove('t-delete' as TenantId, 2);
      expect(await problemOf('t-delete')).toMatchObject({ kind: 'missing', sequence: 2 });
    });

    it('a deleted tail, with the head moved back too', async () => {
      await seeded('t-tail');
      await stored().remove('t-tail' as TenantId, 6);
      await stored().remove('t-tail' as TenantId, 5);
      const head = (await h.repository.chainHead('t-tail' as TenantId))!;
      const four = (await h.repository.entry('t-tail' as TenantId, 4))!;
      await h.repository.moveChainHead('t-tail' as TenantId, { ...head.value, sequence: 4, hash: four.hash }, head.revision);
      expect(await verify('t-tail')).toMatchObject({ ok: false, problem: { kind: 'missing', sequence: 5 }, records: { valid: 4, total: 6 } });
    });

    it('two records swapped', async () => {
      await seeded('t-swap');
      const a = await stored().read('t-swap' as TenantId, 2);
      const b = await stored().read('t-swap' as TenantId, 3);
      await stored().replace('t-swap' as TenantId, 2, b);
      await stored().replace('t-swap' as TenantId, 3, a);
      expect(await problemOf('t-swap')).toMatchObject({ kind: 'reordered', sequence: 2 });
    });

    it('an edited digest', async () => {
      await seeded('t-digest-edit');
      const digest = await stored().storedDigest('t-digest-edit' as TenantId, 1);
      await stored().replaceDigest('t-digest-edit' as TenantId, 1, { ...digest, toSequence: 5 });
      expect(await verify('t-digest-edit')).toMatchObject({ ok: false, problem: { kind: 'digest-edited', digest: 1 }, digests: { valid: 0, total: 1 } });
    });

    it('a deleted digest', async () => {
      await seeded('t-digest-delete');
      await h.bus.request(auditDigestEndpoint, { tenant: 't-digest-delete' });
      await stored().removeDigest('t-digest-delete' as TenantId, 1);
      expect(await problemOf('t-digest-delete')).toMatchObject({ kind: 'digest-missing', digest: 1 });
    });

    it('the newest digests deleted, with the digest head moved back: old records no digest covers', async () => {
      await seeded('t-digest-tail');
      await stored().removeDigest('t-digest-tail' as TenantId, 1);
      const heads = await h.store.collection('audit-heads');
      await heads.delete('t-digest-tail' as TenantId, 'digests');
      const now = Date.now();
      // An hour later, by the verifier's clock: those records should have been signed long ago.
      const later = new TrailVerifier(h.repository, h.trail().keys, 60_000, () => now + 3_600_000);
      expect((await later.verify('t-digest-tail' as TenantId)).problem).toMatchObject({ kind: 'digest-missing', sequence: 1 });
    });

    it('a digest signed with a key that is not trusted', async () => {
      await seeded('t-key');
      const digest = await stored().storedDigest('t-key' as TenantId, 1);
      const stranger = DigestKeyRing.fromJson(DigestKeyRing.generateFile(), 'test');
      const { kid: _kid, signature: _sig, ...unsigned } = digest;
      await stored().replaceDigest('t-key' as TenantId, 1, signDigest(stranger, unsigned));
      expect(await problemOf('t-key')).toMatchObject({ kind: 'unknown-key', digest: 1 });
    });

    it('verifies a range by sequence and by time', async () => {
      await seeded('t-range');
      await stored().remove('t-range' as TenantId, 5);
      expect(await verify('t-range', { from: 1, to: 4 })).toMatchObject({ records: { valid: 4, total: 4 }, fromSequence: 1, toSequence: 4 });
      expect(await verify('t-range', { from: 2, to: 6 })).toMatchObject({ ok: false, problem: { kind: 'missing', sequence: 5 } });
      const all = await verify('t-range', { from: '2000-01-01T00:00:00Z', to: new Date(Date.now() + 60_000).toISOString() });
      expect(all).toMatchObject({ fromSequence: 1, toSequence: 6, ok: false });
    });
  });

  it('refuses a tenant that is not a tenant', async () => {
    const error = await h.bus.request(auditVerifyEndpoint, { tenant: 'Not a tenant' }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(MandateError);
    expect((error as MandateError).code).toBe('invalid_request');
  });

  it('picks up where it left off after a restart: nothing lost, nothing twice, and a digest on shutdown', async () => {
    for (let i = 0; i < 20; i += 1) await h.publish('restart');
    await h.waitForSequence('restart', 20);
    await h.restartService();
    const afterShutdown = await h.repository.digestHead('restart' as TenantId);
    expect(afterShutdown?.value.toSequence).toBe(20);
    for (let i = 0; i < 20; i += 1) await h.publish('restart');
    await h.waitForSequence('restart', 40);
    expect(await verify('restart')).toMatchObject({ ok: true, records: { valid: 40, total: 40 } });
  });
});
