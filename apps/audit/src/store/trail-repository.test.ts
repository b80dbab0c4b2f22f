import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { GENESIS_HASH, type AuditRecord, type TenantId, type TrailEntry } from '@mandate/contracts';
import { JetStreamKvStore, type DocumentCollection } from '@mandate/store';
import { natsServerMissing, startNatsServer, type NatsServerHandle } from '@mandate/testing';
import { chainEntry, chainLink } from '../domain/chain.js';
import { StoredTrailEditor } from '../testing/stored-trail.js';
import { PAGE, TrailRepository } from './trail-repository.js';

const missing = natsServerMissing('trail repository on JetStream KV');

function chain(count: number, detail = ''): TrailEntry[] {
  const entries: TrailEntry[] = [];
  let previous = { sequence: 0, hash: GENESIS_HASH };
  for (let i = 0; i < count; i += 1) {
    const record: AuditRecord = {
      id: `r-${i}`,
      tenant: 't' as TenantId,
      service: 'authorizer',
      action: 'authorize',
      outcome: 'allowed',
      occurredAt: '2026-01-01T00:00:00.000Z',
      traceId: '0'.repeat(32),
      spanId: '0'.repeat(16),
      actor: { workload: 'w' },
      ...(detail ? { details: { detail } } : {}),
    };
    const entry = chainEntry(previous, record, '2026-01-01T00:00:00.000Z');
    entries.push(entry);
    previous = entry;
  }
  return entries;
}

describe.skipIf(missing)('TrailRepository: entries stored a batch at a time', () => {
  let nats: NatsServerHandle;
  let nc: NatsConnection;
  let store: JetStreamKvStore;
  let repository: TrailRepository;
  let raw: DocumentCollection<unknown>;
  let tenantNumber = 0;
  const fresh = () => `tenant-${++tenantNumber}` as TenantId;

  beforeAll(async () => {
    nats = await startNatsServer();
    nc = await connect({ servers: nats.url });
    store = new JetStreamKvStore(nc);
    repository = await TrailRepository.open(store);
    raw = await store.collection('audit-trail');
  });

  afterAll(async () => {
    await nc?.close();
    await nats?.stop();
  });

  it('reads back every entry of batches that cross pages, one by one and as ranges', async () => {
    const tenant = fresh();
    const entries = chain(3 * PAGE + 10);
    await repository.createEntries(tenant, entries.slice(0, 5));
    await repository.createEntries(tenant, entries.slice(5, 2 * PAGE + 3));
    await repository.createEntries(tenant, entries.slice(2 * PAGE + 3));
    expect(await repository.entries(tenant, 1, entries.length)).toEqual(entries);
    expect(await repository.entries(tenant, PAGE - 2, PAGE + 2)).toEqual(entries.slice(PAGE - 3, PAGE + 2));
    for (const sequence of [1, 5, 6, PAGE, PAGE + 1, 2 * PAGE + 3, 2 * PAGE + 4, entries.length]) {
      expect((await repository.entry(tenant, sequence))?.sequence).toBe(sequence);
    }
    expect(await repository.entry(tenant, entries.length + 1)).toBeUndefined();
    expect(await repository.entries(tenant, entries.length - 1, entries.length + 3)).toEqual([entries.at(-2), entries.at(-1), undefined, undefined, undefined]);
  });

  it('never lets a fragment cross a page, and splits one that would grow too large', async () => {
    const tenant = fresh();
    await repository.createEntries(tenant, chain(PAGE + 2));
    expect((await repository.fragmentHolding(tenant, PAGE))).toMatchObject({ first: 1 });
    expect((await repository.fragmentHolding(tenant, PAGE + 1))).toMatchObject({ first: PAGE + 1 });
    const big = fresh();
    const entries = chain(40, 'x'.repeat(20_000));
    await repository.createEntries(big, entries);
    const holding = (await repository.fragmentHolding(big, 40))!;
    expect(holding.first).toBeGreaterThan(1);
    expect(await repository.entries(big, 1, 40)).toEqual(entries);

    // Sizes the appender already knows (from hashing) split the same way as sizes measured here.
    const sized = fresh();
    const links = entries.map((entry, i) => chainLink(i === 0 ? { sequence: 0, hash: GENESIS_HASH } : entries[i - 1]!, entry.record, entry.appendedAt));
    expect(links.map((l) => l.entry)).toEqual(entries);
    for (const { entry, bytes } of links) expect(Math.abs(bytes - JSON.stringify(entry).length)).toBeLessThanOrEqual(2);
    await repository.createEntries(sized, entries, links.map((l) => l.bytes));
    expect((await repository.fragmentHolding(sized, 40))!.first).toBe(holding.first);
  });

  it('reads past a removed entry: the gap is missing, the entries after it are found', async () => {
    const tenant = fresh();
    const entries = chain(20);
    await repository.createEntries(tenant, entries);
    await new StoredTrailEditor(repository, raw).remove(tenant, 7);
    const read = await repository.entries(tenant, 1, 20);
    expect(read[6]).toBeUndefined();
    expect(read.filter((e) => e !== undefined)).toHaveLength(19);
    expect(read[7]).toEqual(entries[7]);
  });

  it('writes a batch\'s first fragment before the others: when another writer has it, none of the rest is written', async () => {
    const tenant = fresh();
    // What another writer that took over the chain wrote first, at the same next sequence.
    const entries = chain(300);
    await repository.createEntries(tenant, entries.slice(128, 178));
    // This writer's batch, 129..300, over three pages (fragments at 129, 257 would follow).
    await expect(repository.createEntries(tenant, entries.slice(128, 300))).rejects.toMatchObject({ code: 'conflict' });
    expect(await repository.fragmentHolding(tenant, 257)).toBeUndefined();
    expect(await repository.entry(tenant, 200)).toBeUndefined();
  });

  it('refuses to write a fragment over one that exists (conflict)', async () => {
    const tenant = fresh();
    const entries = chain(3);
    await repository.createEntries(tenant, entries);
    await expect(repository.createEntries(tenant, entries.slice(0, 1))).rejects.toMatchObject({ code: 'conflict' });
  });

  it('stores a fragment deflated, at a fraction of its JSON, and reads fragments written plain before alike', async () => {
    const tenant = fresh();
    const entries = chain(PAGE, 'the same words in every record, as real records repeat their keys');
    await repository.createEntries(tenant, entries);
    const stored = (await raw.get(tenant, 'e.000000000001'))!.value as { deflated?: string; entries?: unknown };
    expect(stored.entries).toBeUndefined();
    expect(stored.deflated!.length).toBeLessThan(JSON.stringify(entries).length / 3);
    expect(await repository.entries(tenant, 1, PAGE)).toEqual(entries);

    const older = fresh();
    await raw.create(older, 'e.000000000001', { entries: entries.slice(0, 3) });
    expect(await repository.entries(older, 1, 3)).toEqual(entries.slice(0, 3));
  });

  it('reads a fragment that does not inflate (or is no list once inflated) as missing entries', async () => {
    const tenant = fresh();
    await repository.createEntries(tenant, chain(4));
    const doc = (await raw.get(tenant, 'e.000000000001'))!;
    await raw.update(tenant, doc.id, { deflated: Buffer.from('not deflate at all').toString('base64') }, doc.revision);
    expect(await repository.entries(tenant, 1, 4)).toEqual([undefined, undefined, undefined, undefined]);
    const { deflateRawSync } = await import('node:zlib');
    const again = (await raw.get(tenant, 'e.000000000001'))!;
    await raw.update(tenant, again.id, { deflated: deflateRawSync('{"entries":[]}').toString('base64') }, again.revision);
    expect(await repository.entry(tenant, 1)).toBeUndefined();
  });

  it('reads entries stored one document each, as written before fragments', async () => {
    const tenant = fresh();
    const entries = chain(4);
    for (const entry of entries) await raw.create(tenant, `e.${String(entry.sequence).padStart(12, '0')}`, entry);
    expect(await repository.entries(tenant, 1, 4)).toEqual(entries);
  });
});
