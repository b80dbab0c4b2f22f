import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomUUID } from 'node:crypto';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { GENESIS_HASH, type AuditRecord, type TenantId } from '@mandate/contracts';
import { JetStreamKvStore } from '@mandate/store';
import { natsServerMissing, startNatsServer, type NatsServerHandle } from '@mandate/testing';
import { chainEntry, entryHash } from './chain.js';
import { TrailAppender, type AppendOutcome } from './trail-appender.js';
import { TrailRepository } from '../store/trail-repository.js';

const missing = natsServerMissing('trail appender on JetStream KV');

function record(tenant: TenantId, id: string = randomUUID()): AuditRecord {
  return {
    id,
    tenant,
    service: 'authorizer',
    action: 'authorize',
    outcome: 'allowed',
    occurredAt: '2026-01-01T00:00:00.000Z',
    traceId: '0'.repeat(32),
    spanId: '0'.repeat(16),
    actor: { workload: 'w' },
  };
}

/**
 * The real repository, with the first call of one method (entry writes, by default) held at a
 * gate: lets a test act while a batch is committing (its entries not written yet) and the next
 * batch is being prepared, or while the head is being read.
 */
function gated(repository: TrailRepository, method: 'createEntries' | 'chainHead' = 'createEntries'): { repository: TrailRepository; held: Promise<void>; release(): void } {
  let reached!: () => void;
  let open!: () => void;
  const held = new Promise<void>((resolve) => (reached = resolve));
  const opened = new Promise<void>((resolve) => (open = resolve));
  let first = true;
  const proxy = new Proxy(repository, {
    get(target, property) {
      const value: unknown = Reflect.get(target, property);
      if (property === method) {
        return async (...args: unknown[]) => {
          if (first) {
            first = false;
            reached();
            await opened;
          }
          return (target[method] as (...a: unknown[]) => Promise<unknown>)(...args);
        };
      }
      return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
    },
  });
  return { repository: proxy, held, release: open };
}

/** Every record id of the chain, in order, after checking sequences and links. */
async function chained(repository: TrailRepository, tenant: TenantId): Promise<string[]> {
  const head = (await repository.chainHead(tenant))!.value;
  const entries = await repository.entries(tenant, 1, head.sequence);
  let previous = GENESIS_HASH;
  const ids: string[] = [];
  entries.forEach((entry, i) => {
    expect(entry, `entry ${i + 1}`).toBeDefined();
    expect(entry!.sequence).toBe(i + 1);
    expect(entry!.previousHash).toBe(previous);
    expect(entryHash(entry!)).toBe(entry!.hash);
    previous = entry!.hash;
    ids.push(entry!.record.id);
  });
  expect(head.hash).toBe(previous);
  return ids;
}

/** Resolves once the appender has taken up what is queued (its next batch is being prepared). */
const settle = () => new Promise((resolve) => setTimeout(resolve, 50));

describe.skipIf(missing)('TrailAppender: batches prepared while the one before commits', () => {
  let nats: NatsServerHandle;
  let nc: NatsConnection;
  let repository: TrailRepository;
  let tenantNumber = 0;
  const fresh = () => `appender-${++tenantNumber}` as TenantId;

  beforeAll(async () => {
    nats = await startNatsServer();
    nc = await connect({ servers: nats.url });
    repository = await TrailRepository.open(new JetStreamKvStore(nc), { kind: 'stream', nc, replicas: 1 });
  });

  afterAll(async () => {
    await nc?.close();
    await nats?.stop();
  });

  it('chains a record once when it arrives again while its first batch is still committing', async () => {
    const tenant = fresh();
    const gate = gated(repository);
    const appender = new TrailAppender({ repository: gate.repository, writerId: 'w1' });
    const first = record(tenant);
    const firstAppend = appender.append(first);
    await gate.held;
    // The first batch is in the dedup index, its entry not written yet: the redelivery is its duplicate once it commits.
    const again = appender.append(first);
    const other = record(tenant);
    const otherAppend = appender.append(other);
    await settle();
    gate.release();
    expect(await firstAppend).toEqual<AppendOutcome>({ status: 'appended', sequence: 1 });
    expect(await again).toEqual<AppendOutcome>({ status: 'duplicate', sequence: 1 });
    expect(await otherAppend).toEqual<AppendOutcome>({ status: 'appended', sequence: 2 });
    await appender.close();
    expect(await chained(repository, tenant)).toEqual([first.id, other.id]);
  });

  it('keeps commits in order: a batch prepared meanwhile links to the one before it', async () => {
    const tenant = fresh();
    const gate = gated(repository);
    const appender = new TrailAppender({ repository: gate.repository, writerId: 'w1', maxBatch: 3 });
    const records = Array.from({ length: 10 }, () => record(tenant));
    const first = appender.append(records[0]!);
    await gate.held;
    const rest = records.slice(1).map((r) => appender.append(r));
    await settle();
    gate.release();
    const outcomes = await Promise.all([first, ...rest]);
    expect(outcomes.map((o) => o.sequence)).toEqual(records.map((_, i) => i + 1));
    await appender.close();
    expect(await chained(repository, tenant)).toEqual(records.map((r) => r.id));
  });

  it('a failed commit fails the batch prepared behind it too; redelivered, each record is chained once', async () => {
    const tenant = fresh();
    const gate = gated(repository);
    const appender = new TrailAppender({ repository: gate.repository, writerId: 'w1' });
    const a = record(tenant);
    const b = record(tenant);
    const appendA = appender.append(a);
    await gate.held;
    const appendB = appender.append(b);
    await settle();
    // Someone moves the head under the committing batch: its compare-and-swap fails.
    const head = (await repository.chainHead(tenant))!;
    await repository.moveChainHead(tenant, head.value, head.revision);
    gate.release();
    await expect(appendA).rejects.toMatchObject({ code: 'conflict' });
    await expect(appendB).rejects.toMatchObject({ code: 'conflict' });

    // Redelivery: the head is read again, a's entry (written before the failed move) is adopted,
    // b's claim (made for a sequence it never got) is stale and claimed past.
    const retried = await Promise.all([appender.append(b), appender.append(a)]);
    expect(retried).toEqual<AppendOutcome[]>([
      { status: 'appended', sequence: 2 },
      { status: 'duplicate', sequence: 1 },
    ]);
    await appender.close();
    expect(await chained(repository, tenant)).toEqual([a.id, b.id]);
  });

  it('after a resync while a batch commits, the next batch reads the head again and links to it', async () => {
    const tenant = fresh();
    const gate = gated(repository);
    const appender = new TrailAppender({ repository: gate.repository, writerId: 'w1' });
    const a = record(tenant);
    const appendA = appender.append(a);
    await gate.held;
    appender.resync();
    gate.release();
    expect(await appendA).toEqual<AppendOutcome>({ status: 'appended', sequence: 1 });
    const b = record(tenant);
    expect(await appender.append(b)).toEqual<AppendOutcome>({ status: 'appended', sequence: 2 });
    await appender.close();
    expect(await chained(repository, tenant)).toEqual([a.id, b.id]);
  });

  it('a resync while the head is being read voids that batch; the retry reads the head again', async () => {
    const tenant = fresh();
    const gate = gated(repository, 'chainHead');
    const appender = new TrailAppender({ repository: gate.repository, writerId: 'w1' });
    const a = record(tenant);
    const first = appender.append(a);
    await gate.held;
    appender.resync();
    gate.release();
    await expect(first).rejects.toMatchObject({ code: 'conflict' });
    expect(await appender.append(a)).toEqual<AppendOutcome>({ status: 'appended', sequence: 1 });
    await appender.close();
    expect(await chained(repository, tenant)).toEqual([a.id]);
  });

  it('does not write a pipelined batch once the lease ran low during the commit before it; the retry renews it', async () => {
    const tenant = fresh();
    const gate = gated(repository);
    let now = Date.now();
    const leaseMs = 30_000;
    const appender = new TrailAppender({ repository: gate.repository, writerId: 'w1', leaseMs, clock: () => now });
    const a = record(tenant);
    const b = record(tenant);
    const appendA = appender.append(a);
    await gate.held;
    const appendB = appender.append(b);
    await settle();
    // Batch a's commit stalls for most of the lease; batch b must not be written on what is left.
    now += leaseMs * 0.8;
    gate.release();
    expect(await appendA).toEqual<AppendOutcome>({ status: 'appended', sequence: 1 });
    await expect(appendB).rejects.toMatchObject({ code: 'unavailable' });
    expect(await appender.append(b)).toEqual<AppendOutcome>({ status: 'appended', sequence: 2 });
    expect((await repository.chainHead(tenant))!.value.leaseUntil).toBe(now + leaseMs);
    await appender.close();
    expect(await chained(repository, tenant)).toEqual([a.id, b.id]);
  });

  it('refuses appends once closed, for tenants it never saw too', async () => {
    const appender = new TrailAppender({ repository, writerId: 'w1' });
    await appender.close();
    await expect(appender.append(record(fresh()))).rejects.toMatchObject({ code: 'unavailable' });
  });

  it('lets a batch wait for records coming one by one, up to its linger: they are written as one fragment', async () => {
    const tenant = fresh();
    const appender = new TrailAppender({ repository, writerId: 'w1', lingerMs: 500 });
    const records = Array.from({ length: 10 }, () => record(tenant));
    const appended: Promise<AppendOutcome>[] = [];
    for (const r of records) {
      appended.push(appender.append(r));
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    expect((await Promise.all(appended)).map((o) => o.sequence)).toEqual(records.map((_, i) => i + 1));
    expect((await repository.fragmentHolding(tenant, 10))?.first).toBe(1);
    await appender.close();
  });

  it('flushQueued() ends every wait at once (the intake can deliver no more); later batches wait again', async () => {
    const [a, b] = [fresh(), fresh()];
    const appender = new TrailAppender({ repository, writerId: 'w1', lingerMs: 10_000 });
    const started = performance.now();
    const appended = [a, b].flatMap((tenant) => Array.from({ length: 4 }, () => appender.append(record(tenant))));
    await settle();
    appender.flushQueued();
    await Promise.all(appended);
    expect(performance.now() - started).toBeLessThan(5_000);
    expect((await repository.fragmentHolding(a, 4))?.first).toBe(1);
    expect((await repository.fragmentHolding(b, 4))?.first).toBe(1);
    let settled = false;
    const later = appender.append(record(a)).then(() => (settled = true));
    await settle();
    expect(settled, 'a batch after the flush waits for its linger again').toBe(false);
    appender.flushQueued();
    await later;
    await appender.close();
  });

  it('hurry() ends every wait and no batch waits after it (the service is stopping)', async () => {
    const tenant = fresh();
    const appender = new TrailAppender({ repository, writerId: 'w1', lingerMs: 10_000 });
    const started = performance.now();
    const first = appender.append(record(tenant));
    await settle();
    appender.hurry();
    await first;
    await appender.append(record(tenant));
    expect(performance.now() - started).toBeLessThan(5_000);
    await appender.close();
  });

  it('gives up its lease on close, so another writer can take over at once', async () => {
    const tenant = fresh();
    const one = new TrailAppender({ repository, writerId: 'w1' });
    await one.append(record(tenant));
    await one.close();
    const two = new TrailAppender({ repository, writerId: 'w2' });
    expect(await two.append(record(tenant))).toMatchObject({ status: 'appended', sequence: 2 });
    const three = new TrailAppender({ repository, writerId: 'w3' });
    await expect(three.append(record(tenant))).rejects.toMatchObject({ code: 'unavailable' });
    await two.close();
    await three.close();
    expect(await chained(repository, tenant)).toHaveLength(2);
  });

  describe('fragments beyond the head (the gap an outside review left)', () => {
    it('does not count a record as chained by an entry stranded beyond a gap: it is appended at the head', async () => {
      // Only documents can hold such a gap (MongoDB, or JetStream KV before the stream): the stream refuses an append that does not continue it.
      const repository = await TrailRepository.open(new JetStreamKvStore(nc), { kind: 'documents' });
      const tenant = fresh();
      const first = new TrailAppender({ repository, writerId: 'w1' });
      const a = record(tenant);
      await first.append(a);
      await first.close();
      // A crashed writer's fragment: record x written at 3, entry 2 lost.
      const x = record(tenant);
      await repository.createEntries(tenant, [chainEntry({ sequence: 2, hash: 'f'.repeat(64) }, x, '2026-01-01T00:00:01.000Z')]);
      const next = new TrailAppender({ repository, writerId: 'w2' });
      expect(await next.append(x)).toEqual<AppendOutcome>({ status: 'appended', sequence: 2 });
      await next.close();
      expect(await chained(repository, tenant)).toEqual([a.id, x.id]);
    });

    it('stops adopting at the first entry beyond the head that does not link, and appends nothing onto it', async () => {
      const tenant = fresh();
      const first = new TrailAppender({ repository, writerId: 'w1' });
      const a = record(tenant);
      await first.append(a);
      await first.close();
      const forged = record(tenant);
      await repository.createEntries(tenant, [chainEntry({ sequence: 1, hash: 'e'.repeat(64) }, forged, '2026-01-01T00:00:01.000Z')]);
      const next = new TrailAppender({ repository, writerId: 'w2' });
      await expect(next.append(record(tenant))).rejects.toBeDefined();
      await next.close();
      expect((await repository.chainHead(tenant))!.value.sequence).toBe(1);
      expect(await chained(repository, tenant)).toEqual([a.id]);
    });
  });
});
