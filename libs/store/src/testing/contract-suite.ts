import { beforeAll, afterAll, describe, expect, it } from 'vitest';
import { MandateError, tenantId, type ErrorCode } from '@mandate/contracts';
import { encodeKeySegment, decodeKeySegment, MAX_ID_LENGTH } from '../keys.js';
import type { DocumentCollection, DocumentStore } from '../port.js';
import { LeaseRecords, type LeaseDocument } from '../lease.js';
import { updateWithRetry } from '../update-with-retry.js';

/** A clock the suite moves by hand, so TTL tests never sleep. */
export class FrozenClock {
  constructor(public nowMs = Date.UTC(2026, 0, 1)) {}
  readonly now = (): number => this.nowMs;
  advance(ms: number): void {
    this.nowMs += ms;
  }
}

export interface StoreUnderTest {
  store: DocumentStore;
  clock: FrozenClock;
  teardown(): Promise<void>;
}

const t1 = tenantId('tenant-one');
const t2 = tenantId('tenant-two');

async function codeOf(promise: Promise<unknown>): Promise<ErrorCode | 'resolved'> {
  try {
    await promise;
    return 'resolved';
  } catch (error) {
    if (error instanceof MandateError) return error.code;
    throw error;
  }
}

/**
 * The behaviour every `DocumentStore` adapter must have. Each adapter's test file calls this
 * with a factory; the same assertions run against JetStream KV and MongoDB.
 */
export function describeDocumentStoreContract(adapter: string, setup: () => Promise<StoreUnderTest>): void {
  describe(`DocumentStore contract: ${adapter}`, () => {
    let subject: StoreUnderTest;
    let counter = 0;
    const fresh = <T>() => subject.store.collection<T>(`contract-${++counter}`);

    beforeAll(async () => {
      subject = await setup();
    });
    afterAll(async () => {
      await subject?.teardown();
    });

    describe('get and create', () => {
      it('reads a missing record as undefined', async () => {
        const docs = await fresh<{ n: number }>();
        expect(await docs.get(t1, 'missing')).toBeUndefined();
      });

      it('creates a record and reads back its value and revision', async () => {
        const docs = await fresh<{ name: string; nested: { list: number[] } }>();
        const created = await docs.create(t1, 'w1', { name: 'sales-agent', nested: { list: [1, 2] } });
        expect(created).toMatchObject({ id: 'w1', value: { name: 'sales-agent', nested: { list: [1, 2] } } });
        expect(await docs.get(t1, 'w1')).toEqual(created);
      });

      it('refuses to create an id that exists, with conflict, and keeps the first value', async () => {
        const docs = await fresh<{ n: number }>();
        await docs.create(t1, 'dup', { n: 1 });
        expect(await codeOf(docs.create(t1, 'dup', { n: 2 }))).toBe('conflict');
        expect((await docs.get(t1, 'dup'))?.value).toEqual({ n: 1 });
      });

      it('stores field names that look like operators or paths as plain data', async () => {
        const docs = await fresh<Record<string, unknown>>();
        const value = { $where: 'sleep(1000)', 'a.b': { $gt: '' }, __proto__x: 1 };
        await docs.create(t1, 'odd', value);
        expect((await docs.get(t1, 'odd'))?.value).toEqual(value);
      });
    });

    describe('createMany', () => {
      it('creates every record, in order, and each reads back like one made by create', async () => {
        const docs = await fresh<{ n: number }>();
        const ids = Array.from({ length: 300 }, (_, i) => `bulk-${i}`);
        expect(await docs.createMany(t1, ids.map((id, n) => ({ id, value: { n } })))).toEqual(ids.map(() => 'created'));
        const page = await docs.list(t1, { limit: 1000 });
        expect(page.items).toHaveLength(300);
        expect((await docs.get(t1, 'bulk-299'))?.value).toEqual({ n: 299 });
        const later = await docs.get(t1, 'bulk-7');
        expect(await docs.update(t1, 'bulk-7', { n: -1 }, later!.revision)).toMatchObject({ value: { n: -1 } });
      });

      it('answers conflict for a taken id, keeps its value, and still creates the others', async () => {
        const docs = await fresh<{ n: number }>();
        await docs.create(t1, 'taken', { n: 1 });
        const outcomes = await docs.createMany(t1, [
          { id: 'new-1', value: { n: 2 } },
          { id: 'taken', value: { n: 3 } },
          { id: 'new-2', value: { n: 4 } },
        ]);
        expect(outcomes).toEqual(['created', 'conflict', 'created']);
        expect((await docs.get(t1, 'taken'))?.value).toEqual({ n: 1 });
        expect((await docs.get(t1, 'new-2'))?.value).toEqual({ n: 4 });
      });

      it('creates one id given twice at most once', async () => {
        const docs = await fresh<{ n: number }>();
        const outcomes = await docs.createMany(t1, [
          { id: 'twice', value: { n: 1 } },
          { id: 'twice', value: { n: 2 } },
        ]);
        expect([...outcomes].sort()).toEqual(['conflict', 'created']);
        expect((await docs.get(t1, 'twice'))?.value).toEqual(outcomes[0] === 'created' ? { n: 1 } : { n: 2 });
      });

      it('replaces an expired record, keeps TTLs it is given, and keeps tenants apart', async () => {
        const docs = await fresh<{ n: number }>();
        await docs.create(t1, 'old', { n: 1 }, { ttlMs: 10 });
        await docs.create(t2, 'mine', { n: 1 });
        subject.clock.advance(11);
        const outcomes = await docs.createMany(t1, [
          { id: 'old', value: { n: 2 } },
          { id: 'mine', value: { n: 3 } },
          { id: 'brief', value: { n: 4 }, options: { ttlMs: 1_000 } },
        ]);
        expect(outcomes).toEqual(['created', 'created', 'created']);
        expect((await docs.get(t1, 'old'))?.value).toEqual({ n: 2 });
        expect((await docs.get(t2, 'mine'))?.value).toEqual({ n: 1 });
        expect((await docs.get(t1, 'brief'))?.expiresAt?.getTime()).toBe(subject.clock.nowMs + 1_000);
      });

      it('refuses a bad id with invalid_request before writing anything, and takes an empty list', async () => {
        const docs = await fresh<{ n: number }>();
        expect(await docs.createMany(t1, [])).toEqual([]);
        expect(await codeOf(docs.createMany(t1, [{ id: 'fine', value: { n: 1 } }, { id: '../../etc', value: { n: 2 } }]))).toBe('invalid_request');
        expect(await docs.get(t1, 'fine')).toBeUndefined();
      });
    });

    describe('update (compare-and-swap)', () => {
      it('replaces the value when the revision matches, and changes the revision', async () => {
        const docs = await fresh<{ n: number }>();
        const v1 = await docs.create(t1, 'cas', { n: 1 });
        const v2 = await docs.update(t1, 'cas', { n: 2 }, v1.revision);
        expect(v2.revision).not.toBe(v1.revision);
        expect(await docs.get(t1, 'cas')).toEqual(v2);
      });

      it('refuses a stale revision with conflict and changes nothing', async () => {
        const docs = await fresh<{ n: number }>();
        const v1 = await docs.create(t1, 'cas', { n: 1 });
        const v2 = await docs.update(t1, 'cas', { n: 2 }, v1.revision);
        expect(await codeOf(docs.update(t1, 'cas', { n: 3 }, v1.revision))).toBe('conflict');
        expect(await docs.get(t1, 'cas')).toEqual(v2);
      });

      it('answers not_found for a record that does not exist', async () => {
        const docs = await fresh<{ n: number }>();
        expect(await codeOf(docs.update(t1, 'nope', { n: 1 }, 1))).toBe('not_found');
        expect(await docs.get(t1, 'nope')).toBeUndefined();
      });

      it('lets exactly one of 20 concurrent writers with the same revision win', async () => {
        const docs = await fresh<{ writer: number }>();
        const base = await docs.create(t1, 'race', { writer: -1 });
        const results = await Promise.all(
          Array.from({ length: 20 }, (_, writer) => codeOf(docs.update(t1, 'race', { writer }, base.revision))),
        );
        expect(results.filter((r) => r === 'resolved')).toHaveLength(1);
        expect(results.filter((r) => r === 'conflict')).toHaveLength(19);
        const winner = results.indexOf('resolved');
        expect((await docs.get(t1, 'race'))?.value).toEqual({ writer: winner });
      });

      it('loses no increment when 25 writers retry on conflict', async () => {
        const docs = await fresh<{ count: number }>();
        await docs.create(t1, 'counter', { count: 0 });
        const increment = async () => {
          for (;;) {
            const current = (await docs.get(t1, 'counter'))!;
            try {
              await docs.update(t1, 'counter', { count: current.value.count + 1 }, current.revision);
              return;
            } catch (error) {
              if (!(error instanceof MandateError && error.code === 'conflict')) throw error;
            }
          }
        };
        await Promise.all(Array.from({ length: 25 }, increment));
        expect((await docs.get(t1, 'counter'))?.value.count).toBe(25);
      });

      it('lets exactly one of 10 concurrent creates of one id win', async () => {
        const docs = await fresh<{ n: number }>();
        const results = await Promise.all(Array.from({ length: 10 }, (_, n) => codeOf(docs.create(t1, 'once', { n }))));
        expect(results.filter((r) => r === 'resolved')).toHaveLength(1);
        expect(results.filter((r) => r === 'conflict')).toHaveLength(9);
      });
    });

    describe('delete', () => {
      it('removes a record once and reports whether it removed anything', async () => {
        const docs = await fresh<{ n: number }>();
        await docs.create(t1, 'gone', { n: 1 });
        expect(await docs.delete(t1, 'gone')).toBe(true);
        expect(await docs.get(t1, 'gone')).toBeUndefined();
        expect(await docs.delete(t1, 'gone')).toBe(false);
      });

      it('with a stale revision refuses with conflict and keeps the record', async () => {
        const docs = await fresh<{ n: number }>();
        const v1 = await docs.create(t1, 'keep', { n: 1 });
        await docs.update(t1, 'keep', { n: 2 }, v1.revision);
        expect(await codeOf(docs.delete(t1, 'keep', { expectedRevision: v1.revision }))).toBe('conflict');
        expect((await docs.get(t1, 'keep'))?.value).toEqual({ n: 2 });
      });

      it('does not reuse a revision when an id is deleted and created again', async () => {
        const docs = await fresh<{ n: number }>();
        const first = await docs.create(t1, 'again', { n: 1 });
        await docs.delete(t1, 'again');
        const second = await docs.create(t1, 'again', { n: 2 });
        expect(second.revision).not.toBe(first.revision);
        expect(await codeOf(docs.update(t1, 'again', { n: 3 }, first.revision))).toBe('conflict');
      });
    });

    describe('tenant isolation', () => {
      it("counts a document's own writes in its revision, so nothing of another tenant's writes shows in it", async () => {
        const docs = await fresh<{ n: number }>();
        const mine = await docs.create(t1, 'mine', { n: 0 });
        const theirs = await docs.create(t2, 'theirs', { n: 0 });
        let latest = theirs;
        for (let n = 1; n <= 5; n++) latest = await docs.update(t2, 'theirs', { n }, latest.revision);
        await docs.createMany(t2, [{ id: 'more-1', value: { n: 1 } }, { id: 'more-2', value: { n: 2 } }]);
        const next = await docs.update(t1, 'mine', { n: 1 }, mine.revision);
        expect(next.revision).toBe(mine.revision + 1);
        expect(latest.revision).toBe(theirs.revision + 5);
      });

      it('keeps the same id in two tenants apart for read, list, update and delete', async () => {
        const docs = await fresh<{ owner: string }>();
        const one = await docs.create(t1, 'shared-id', { owner: 'one' });
        await docs.create(t2, 'shared-id', { owner: 'two' });
        await docs.create(t2, 'only-two', { owner: 'two' });
        expect((await docs.get(t1, 'shared-id'))?.value.owner).toBe('one');
        expect((await docs.list(t1)).items.map((d) => d.id)).toEqual(['shared-id']);
        expect(await docs.get(t1, 'only-two')).toBeUndefined();
        await docs.update(t1, 'shared-id', { owner: 'one-updated' }, one.revision);
        expect((await docs.get(t2, 'shared-id'))?.value.owner).toBe('two');
        await docs.delete(t1, 'shared-id');
        expect((await docs.get(t2, 'shared-id'))?.value.owner).toBe('two');
        expect((await docs.list(t2)).items.map((d) => d.id)).toEqual(['only-two', 'shared-id']);
      });
    });

    describe('TTL', () => {
      it('hides a record once its TTL has passed, then lets the id be created again', async () => {
        const docs = await fresh<{ n: number }>();
        const created = await docs.create(t1, 'lease', { n: 1 }, { ttlMs: 1_000 });
        expect(created.expiresAt?.getTime()).toBe(subject.clock.nowMs + 1_000);
        subject.clock.advance(999);
        expect((await docs.get(t1, 'lease'))?.value).toEqual({ n: 1 });
        subject.clock.advance(1);
        expect(await docs.get(t1, 'lease')).toBeUndefined();
        expect((await docs.list(t1)).items).toEqual([]);
        expect(await codeOf(docs.update(t1, 'lease', { n: 2 }, created.revision))).toBe('not_found');
        const again = await docs.create(t1, 'lease', { n: 3 }, { ttlMs: 1_000 });
        expect(again.revision).not.toBe(created.revision);
        expect((await docs.get(t1, 'lease'))?.value).toEqual({ n: 3 });
      });

      it('extends the TTL on update and drops it when updated without one', async () => {
        const docs = await fresh<{ n: number }>();
        const v1 = await docs.create(t1, 'renew', { n: 1 }, { ttlMs: 1_000 });
        subject.clock.advance(900);
        const v2 = await docs.update(t1, 'renew', { n: 2 }, v1.revision, { ttlMs: 1_000 });
        subject.clock.advance(900);
        expect((await docs.get(t1, 'renew'))?.value).toEqual({ n: 2 });
        await docs.update(t1, 'renew', { n: 3 }, v2.revision);
        subject.clock.advance(10_000);
        expect((await docs.get(t1, 'renew'))?.expiresAt).toBeUndefined();
      });

      it('sweeps expired records away for good and leaves live ones', async () => {
        const docs = await fresh<{ n: number }>();
        await docs.create(t1, 'short', { n: 1 }, { ttlMs: 10 });
        await docs.create(t2, 'short', { n: 1 }, { ttlMs: 10 });
        await docs.create(t1, 'forever', { n: 2 });
        subject.clock.advance(11);
        expect(await docs.sweepExpired()).toBe(2);
        expect(await docs.sweepExpired()).toBe(0);
        expect((await docs.list(t1)).items.map((d) => d.id)).toEqual(['forever']);
      });
    });

    describe('max age', () => {
      it('cuts every TTL to the collection max age, so no record outlives it; a shorter TTL stays', async () => {
        const docs = await subject.store.collection<{ n: number }>(`contract-${++counter}`, { maxAgeMs: 60_000 });
        const forever = await docs.create(t1, 'forever', { n: 1 });
        const longer = await docs.create(t2, 'longer', { n: 2 }, { ttlMs: 3_600_000 });
        const shorter = await docs.create(t1, 'shorter', { n: 3 }, { ttlMs: 1_000 });
        const [batch] = await docs.createMany(t1, [{ id: 'batch', value: { n: 4 } }]);
        expect(batch).toBe('created');
        expect(forever.expiresAt?.getTime()).toBe(subject.clock.nowMs + 60_000);
        expect(longer.expiresAt?.getTime()).toBe(subject.clock.nowMs + 60_000);
        expect(shorter.expiresAt?.getTime()).toBe(subject.clock.nowMs + 1_000);
        subject.clock.advance(59_999);
        expect((await docs.get(t1, 'forever'))?.value).toEqual({ n: 1 });
        expect(await docs.get(t1, 'shorter')).toBeUndefined();
        subject.clock.advance(1);
        for (const [tenant, id] of [[t1, 'forever'], [t2, 'longer'], [t1, 'batch']] as const) expect(await docs.get(tenant, id)).toBeUndefined();
        // An expired id is free again, and the new record gets the max age afresh.
        expect((await docs.create(t1, 'forever', { n: 5 })).expiresAt?.getTime()).toBe(subject.clock.nowMs + 60_000);
      });

      it('refuses a max age that is not a whole number of seconds', () => {
        expect(() => subject.store.collection(`contract-${++counter}`, { maxAgeMs: 1_500 })).toThrow(TypeError);
      });
    });

    describe('list', () => {
      it('pages through records in id order without gaps or repeats', async () => {
        const docs = await fresh<{ n: number }>();
        const ids = Array.from({ length: 25 }, (_, n) => `doc-${String(n).padStart(2, '0')}`);
        await Promise.all([...ids].reverse().map((id, n) => docs.create(t1, id, { n })));
        const seen: string[] = [];
        const pageSizes: number[] = [];
        let cursor: string | undefined;
        do {
          const page = await docs.list(t1, { limit: 10, ...(cursor ? { cursor } : {}) });
          pageSizes.push(page.items.length);
          seen.push(...page.items.map((d) => d.id));
          cursor = page.nextCursor;
        } while (cursor);
        expect(pageSizes).toEqual([10, 10, 5]);
        expect(seen).toEqual(ids);
      });

      it('filters by id prefix', async () => {
        const docs = await fresh<{ n: number }>();
        for (const id of ['grant.a', 'grant.b', 'grantee', 'session.a']) await docs.create(t1, id, { n: 1 });
        expect((await docs.list(t1, { prefix: 'grant.' })).items.map((d) => d.id)).toEqual(['grant.a', 'grant.b']);
        expect((await docs.list(t1, { prefix: 'grant' })).items.map((d) => d.id)).toEqual(['grant.a', 'grant.b', 'grantee']);
        expect((await docs.list(t1, { prefix: 'zzz' })).items).toEqual([]);
      });

      it('refuses a forged cursor, a bad prefix and an out-of-range limit with invalid_request', async () => {
        const docs = await fresh<{ n: number }>();
        expect(await codeOf(docs.list(t1, { cursor: 'not a cursor!' }))).toBe('invalid_request');
        expect(await codeOf(docs.list(t1, { cursor: Buffer.from('*').toString('base64url') }))).toBe('invalid_request');
        expect(await codeOf(docs.list(t1, { prefix: '>' }))).toBe('invalid_request');
        expect(await codeOf(docs.list(t1, { limit: 0 }))).toBe('invalid_request');
        expect(await codeOf(docs.list(t1, { limit: 1001 }))).toBe('invalid_request');
      });
    });

    describe('updateWithRetry', () => {
      it('creates what is missing and changes what exists, from the value it read', async () => {
        const docs = await fresh<{ n: number }>();
        const created = await updateWithRetry(docs, t1, 'counter', (current) => ({ value: { n: (current?.value.n ?? 0) + 1 } }));
        expect(created?.value).toEqual({ n: 1 });
        const changed = await updateWithRetry(docs, t1, 'counter', (current) => ({ value: { n: (current?.value.n ?? 0) + 1 } }));
        expect(changed?.value).toEqual({ n: 2 });
        expect(await docs.get(t2, 'counter')).toBeUndefined();
      });

      it('applies every one of racing changes once', async () => {
        const docs = await fresh<{ seen: string[] }>();
        const writers = ['a', 'b', 'c', 'd', 'e', 'f'];
        await Promise.all(writers.map((w) => updateWithRetry(docs, t1, 'list', (current) => ({ value: { seen: [...(current?.value.seen ?? []), w] } }), 20)));
        expect((await docs.get(t1, 'list'))?.value.seen.sort()).toEqual(writers);
      });

      it('writes nothing when the change says so, and passes write options on', async () => {
        const docs = await fresh<{ n: number }>();
        expect(await updateWithRetry(docs, t1, 'none', () => undefined)).toBeUndefined();
        expect(await docs.get(t1, 'none')).toBeUndefined();
        await updateWithRetry(docs, t1, 'brief', () => ({ value: { n: 1 }, options: { ttlMs: 1_000 } }));
        subject.clock.advance(1_001);
        expect(await docs.get(t1, 'brief')).toBeUndefined();
      });
    });

    describe('lease records', () => {
      const leaseTtl = 10_000;
      const records = async (...holders: string[]) => {
        const collection = await fresh<LeaseDocument<string>>();
        return holders.map((holder) => new LeaseRecords<string>(collection, { holder, ttlMs: leaseTtl, now: subject.clock.now }));
      };

      it('one holder at a time; released, it is free for the next', async () => {
        const [a, b] = await records('a', 'b');
        const held = await a!.acquire(t1, 'job');
        expect(held?.document.value).toMatchObject({ holder: 'a', until: subject.clock.now() + leaseTtl });
        expect(await b!.acquire(t1, 'job')).toBeUndefined();
        expect(await b!.acquire(t2, 'job')).toBeDefined();
        await a!.release(held!);
        expect((await b!.acquire(t1, 'job'))?.document.value.holder).toBe('b');
      });

      it('of racing acquirers exactly one wins', async () => {
        const contenders = await records('a', 'b', 'c', 'd', 'e');
        const won = await Promise.all(contenders.map((lease) => lease.acquire(t1, 'race')));
        expect(won.filter(Boolean)).toHaveLength(1);
      });

      it('an expired lease is taken over with its payload; its old holder can neither renew nor release it', async () => {
        const [a, b] = await records('a', 'b');
        const held = await a!.record((await a!.acquire(t1, 'refresh'))!, 'pending tokens');
        subject.clock.advance(leaseTtl - 1);
        expect(await b!.acquire(t1, 'refresh')).toBeUndefined();
        subject.clock.advance(1);
        const taken = await b!.acquire(t1, 'refresh');
        expect(taken?.document.value).toMatchObject({ holder: 'b', payload: 'pending tokens' });
        expect(await codeOf(a!.renew(held))).toBe('conflict');
        await a!.release(held);
        expect(await a!.acquire(t1, 'refresh')).toBeUndefined();
      });

      it('renewing moves the expiry on for the live holder only', async () => {
        const [a, b] = await records('a', 'b');
        const held = await a!.acquire(t1, 'head');
        subject.clock.advance(leaseTtl / 2);
        const renewed = await a!.renew(held!);
        expect(renewed.document.value.until).toBe(subject.clock.now() + leaseTtl);
        subject.clock.advance(leaseTtl - 1);
        expect(await b!.acquire(t1, 'head')).toBeUndefined();
      });

      it('records kept with a store TTL vanish with their holder', async () => {
        const collection = await fresh<LeaseDocument<string>>();
        const lease = new LeaseRecords<string>(collection, { holder: 'a', ttlMs: leaseTtl, recordTtlMs: leaseTtl, now: subject.clock.now });
        await lease.acquire(t1, 'fetch');
        subject.clock.advance(leaseTtl);
        expect(await collection.get(t1, 'fetch')).toBeUndefined();
        expect(await lease.acquire(t1, 'fetch')).toBeDefined();
      });
    });

    describe('key validation', () => {
      const badIds = ['', '*', '>', 'a.*', 'a.>', '.a', 'a.', 'a..b', 'a/b', '../etc', '$gt', 'a b', 'é', 'a\u0000b', 'x'.repeat(MAX_ID_LENGTH + 1)];

      it.each(badIds)('refuses id %j on every operation with invalid_request and stores nothing', async (id) => {
        const docs: DocumentCollection<{ n: number }> = await fresh();
        expect(await codeOf(docs.create(t1, id, { n: 1 }))).toBe('invalid_request');
        expect(await codeOf(docs.get(t1, id))).toBe('invalid_request');
        expect(await codeOf(docs.update(t1, id, { n: 1 }, 1))).toBe('invalid_request');
        expect(await codeOf(docs.delete(t1, id))).toBe('invalid_request');
        expect((await docs.list(t1)).items).toEqual([]);
      });

      it('accepts untrusted text once encoded with encodeKeySegment', async () => {
        const docs = await fresh<{ n: number }>();
        for (const raw of ['auth0|abc', 'a.b@example.com', '*', '>', '../x', 'ünïcödé']) {
          const id = `user.${encodeKeySegment(raw)}`;
          await docs.create(t1, id, { n: 1 });
          expect(decodeKeySegment(id.slice('user.'.length))).toBe(raw);
        }
        expect((await docs.list(t1, { prefix: 'user.' })).items).toHaveLength(6);
      });
    });
  });
}
