import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { connect, headers as natsHeaders, type NatsConnection } from '@nats-io/transport-node';
import { AUDIT_TRAIL_HEADERS, AUDIT_TRAIL_STREAM, AUDIT_TRAIL_SUBJECT_ROOT, GENESIS_HASH, trailDigestsSubject, trailEntriesSubject, type AuditRecord, type TenantId, type TrailDigest, type TrailEntry } from '@mandate/contracts';
import { JetStreamKvStore, type DocumentCollection } from '@mandate/store';
import { natsServerMissing, startNatsServer, type NatsServerHandle } from '@mandate/testing';
import { chainEntry, chainLink } from '../domain/chain.js';
import { DocumentTrailEditor, StreamTrailEditor, type StoredTrailEditor } from '../testing/stored-trail.js';
import { PAGE, TrailRepository, type TrailStorage } from './trail-repository.js';

const missing = natsServerMissing('trail repository on JetStream');

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

function digest(tenant: TenantId, number: number): TrailDigest {
  return { tenant, number, fromSequence: number, toSequence: number, lastHash: 'a'.repeat(64), previousDigestHash: 'b'.repeat(64), issuedAt: '2026-01-01T00:00:00.000Z', kid: 'k', signature: 'sig' };
}

/** A nats-server of its own for the describe block, and a connection to it. */
function aServer(): { nats: NatsServerHandle; nc: NatsConnection } {
  const server = {} as { nats: NatsServerHandle; nc: NatsConnection };
  beforeAll(async () => {
    server.nats = await startNatsServer();
    server.nc = await connect({ servers: server.nats.url });
  });
  afterAll(async () => {
    await server.nc?.close();
    await server.nats?.stop();
  });
  return server;
}

/** A nats-server of its own, and a repository on it with the trail in `kind`. */
function onServer(kind: TrailStorage['kind']) {
  const server = aServer();
  const world = {} as { nc: NatsConnection; store: JetStreamKvStore; repository: TrailRepository; editor: StoredTrailEditor; raw: DocumentCollection<unknown> };
  let tenantNumber = 0;
  beforeAll(async () => {
    world.nc = server.nc;
    world.store = new JetStreamKvStore(world.nc);
    world.repository = await TrailRepository.open(world.store, kind === 'stream' ? { kind, nc: world.nc, replicas: 1 } : { kind });
    if (kind === 'documents') world.raw = await world.store.collection('audit-trail');
    world.editor = kind === 'stream' ? new StreamTrailEditor(world.repository, world.nc) : new DocumentTrailEditor(world.repository, world.raw);
  });
  return { world, fresh: () => `tenant-${++tenantNumber}` as TenantId };
}

describe.skipIf(missing).each(['stream', 'documents'] as const)('TrailRepository, the trail in %s: entries stored a batch at a time', (kind) => {
  const { world, fresh } = onServer(kind);

  it('reads back every entry of batches that cross pages, one by one and as ranges', async () => {
    const { repository } = world;
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
    expect(await repository.entries(fresh(), 1, 3)).toEqual([undefined, undefined, undefined]);
  });

  it('finds any entry of a long chain of small fragments (a binary search on the stream)', async () => {
    const { repository } = world;
    const tenant = fresh();
    const entries = chain(300);
    for (let i = 0; i < entries.length; i += 3) await repository.createEntries(tenant, entries.slice(i, i + 3));
    for (const sequence of [1, 2, 3, 4, 77, 150, 151, 152, 298, 299, 300]) expect((await repository.entry(tenant, sequence))?.sequence).toBe(sequence);
    expect(await repository.entries(tenant, 140, 160)).toEqual(entries.slice(139, 160));
  });

  it('reads ranges longer than what is read as one stretch', async () => {
    const { repository } = world;
    const tenant = fresh();
    const entries = chain(5_000);
    for (let i = 0; i < entries.length; i += 100) await repository.createEntries(tenant, entries.slice(i, i + 100));
    expect(await repository.entries(tenant, 1, entries.length)).toEqual(entries);
    expect(await repository.entries(tenant, 1_500, 4_200)).toEqual(entries.slice(1_499, 4_200));
  });

  it('never lets a fragment cross a page, and splits one that would grow too large', async () => {
    const { repository } = world;
    const tenant = fresh();
    await repository.createEntries(tenant, chain(PAGE + 2));
    expect(await repository.fragmentHolding(tenant, PAGE)).toMatchObject({ first: 1 });
    expect(await repository.fragmentHolding(tenant, PAGE + 1)).toMatchObject({ first: PAGE + 1 });
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
    const { repository, editor } = world;
    const tenant = fresh();
    const entries = chain(20);
    await repository.createEntries(tenant, entries);
    await editor.remove(tenant, 7);
    const read = await repository.entries(tenant, 1, 20);
    expect(read[6]).toBeUndefined();
    expect(read.filter((e) => e !== undefined)).toHaveLength(19);
    expect(read[7]).toEqual(entries[7]);
  });

  it("writes a batch's first fragment before the others: when another writer has it, none of the rest is written", async () => {
    const { repository } = world;
    const tenant = fresh();
    const entries = chain(300);
    await repository.createEntries(tenant, entries.slice(0, 128));
    // What another writer that took over the chain wrote first, at the same next sequence.
    await repository.createEntries(tenant, entries.slice(128, 178));
    // This writer's batch, 129..300, over three pages (fragments at 129, 257 would follow).
    await expect(repository.createEntries(tenant, entries.slice(128, 300))).rejects.toMatchObject({ code: 'conflict' });
    expect(await repository.fragmentHolding(tenant, 257)).toBeUndefined();
    expect(await repository.entry(tenant, 200)).toBeUndefined();
  });

  it('refuses to write a fragment over one that exists (conflict)', async () => {
    const { repository } = world;
    const tenant = fresh();
    const entries = chain(3);
    await repository.createEntries(tenant, entries);
    await expect(repository.createEntries(tenant, entries.slice(0, 1))).rejects.toMatchObject({ code: 'conflict' });
    expect(await repository.entries(tenant, 1, 3)).toEqual(entries);
  });

  it('stores digests by number, once each, and reads them as a range', async () => {
    const { repository } = world;
    const tenant = fresh();
    expect(await repository.createDigest(tenant, digest(tenant, 1))).toBe(true);
    expect(await repository.createDigest(tenant, digest(tenant, 1))).toBe(false);
    expect(await repository.createDigest(tenant, digest(tenant, 2))).toBe(true);
    expect(await repository.digest(tenant, 2)).toEqual(digest(tenant, 2));
    expect(await repository.digests(tenant, 1, 3)).toEqual([digest(tenant, 1), digest(tenant, 2), undefined]);
    expect(await repository.digest(fresh(), 1)).toBeUndefined();
  });
});

describe.skipIf(missing)('TrailRepository, the trail in documents (MongoDB, and JetStream KV before the stream)', () => {
  const { world, fresh } = onServer('documents');

  it('stores a fragment deflated, at a fraction of its JSON, and reads fragments written plain before alike', async () => {
    const { repository, raw } = world;
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
    const { repository, raw } = world;
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
    const { repository, raw } = world;
    const tenant = fresh();
    const entries = chain(4);
    for (const entry of entries) await raw.create(tenant, `e.${String(entry.sequence).padStart(12, '0')}`, entry);
    expect(await repository.entries(tenant, 1, 4)).toEqual(entries);
  });
});

describe.skipIf(missing)('TrailRepository, the trail on its stream', () => {
  const { world, fresh } = onServer('stream');

  it('refuses entries that do not continue the stored chain: nothing is written beyond a gap', async () => {
    const { repository } = world;
    const tenant = fresh();
    const entries = chain(10);
    await expect(repository.createEntries(tenant, entries.slice(3))).rejects.toMatchObject({ code: 'conflict' });
    await repository.createEntries(tenant, entries.slice(0, 3));
    await expect(repository.createEntries(tenant, entries.slice(4))).rejects.toMatchObject({ code: 'conflict' });
    expect(await repository.entries(tenant, 1, 10)).toEqual([...entries.slice(0, 3), ...Array(7).fill(undefined)]);
  });

  it('lets one of two writers through when both append at the same next sequence', async () => {
    const tenant = fresh();
    const other = await TrailRepository.open(world.store, { kind: 'stream', nc: world.nc, replicas: 1 });
    const entries = chain(6);
    const theirs = chain(6, 'theirs');
    // Both learn where the subject ends (the other by being refused what is taken), so both append from memory, at once.
    await world.repository.createEntries(tenant, entries.slice(0, 2));
    await expect(other.createEntries(tenant, theirs.slice(1, 2))).rejects.toMatchObject({ code: 'conflict' });
    await other.createEntries(tenant, entries.slice(2, 3));
    await world.repository.entries(tenant, 1, 3);
    const results = await Promise.allSettled([world.repository.createEntries(tenant, entries.slice(3)), other.createEntries(tenant, theirs.slice(3))]);
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
    expect(results.find((r) => r.status === 'rejected')).toMatchObject({ reason: { code: 'conflict' } });
    const stored = await world.repository.entries(tenant, 1, 6);
    expect([entries.slice(3), theirs.slice(3)]).toContainEqual(stored.slice(3));
    // The loser reads where the chain ends and appends after it.
    const loser = results[0]!.status === 'rejected' ? world.repository : other;
    const next = chain(7, stored[5]!.record.details ? 'theirs' : '')[6]!;
    await loser.createEntries(tenant, [next]);
    expect(await world.repository.entry(tenant, 7)).toEqual(next);
  });

  it('is not stopped by a message someone else put at the end: the chain goes on after it', async () => {
    const { repository } = world;
    const tenant = fresh();
    const entries = chain(8);
    await repository.createEntries(tenant, entries.slice(0, 4));
    // Someone who can publish to the stream: a message whose headers place it nowhere, and one claiming far ahead.
    for (const first of ['five', '1000']) {
      const headers = natsHeaders();
      headers.set(AUDIT_TRAIL_HEADERS.first, first);
      headers.set(AUDIT_TRAIL_HEADERS.count, '3');
      await jetstream(world.nc).publish(trailEntriesSubject(tenant), 'x', { headers });
    }
    // The append this instance had in mind was after its own last message: refused once (as another writer's would be), then made after them.
    await expect(repository.createEntries(tenant, entries.slice(4, 6))).rejects.toMatchObject({ code: 'conflict' });
    await repository.createEntries(tenant, entries.slice(4, 6));
    const fresher = await TrailRepository.open(world.store, { kind: 'stream', nc: world.nc, replicas: 1 });
    await fresher.createEntries(tenant, entries.slice(6));
    expect(await repository.entries(tenant, 1, 8)).toEqual(entries);
  });

  it('is append-only: JetStream refuses to delete a message or purge, and to turn that off', async () => {
    const tenant = fresh();
    await world.repository.createEntries(tenant, chain(2));
    const jsm = await jetstreamManager(world.nc);
    const { config, state } = await jsm.streams.info(AUDIT_TRAIL_STREAM.name);
    expect(config).toMatchObject({ deny_delete: true, deny_purge: true, max_age: 0 });
    await expect(jsm.streams.deleteMessage(AUDIT_TRAIL_STREAM.name, state.last_seq)).rejects.toThrow(/not permitted/);
    await expect(jsm.streams.purge(AUDIT_TRAIL_STREAM.name)).rejects.toThrow(/not permitted/);
    await expect(jsm.streams.update(AUDIT_TRAIL_STREAM.name, { ...config, deny_delete: false })).rejects.toThrow(/can not cancel deny message deletes/);
  });

  it('reads a fragment whose body does not inflate, or whose headers do not place it, as missing entries', async () => {
    const { repository } = world;
    const tenant = fresh();
    await repository.createEntries(tenant, chain(4));
    await world.editor.corruptFragment(tenant, 2);
    expect(await repository.entries(tenant, 1, 4)).toEqual([undefined, undefined, undefined, undefined]);
    // Someone who can publish to the stream: a message at the end that says nothing of where it sits.
    const headers = natsHeaders();
    headers.set(AUDIT_TRAIL_HEADERS.first, 'five');
    await jetstream(world.nc).publish(trailEntriesSubject(tenant), 'x', { headers });
    expect(await repository.entries(tenant, 1, 6)).toEqual(Array(6).fill(undefined));
  });

  it('keeps a tenant to two subjects, a message per fragment and per digest', async () => {
    const { repository } = world;
    const tenant = fresh();
    await repository.createEntries(tenant, chain(2 * PAGE));
    await repository.createDigest(tenant, digest(tenant, 1));
    const jsm = await jetstreamManager(world.nc);
    const { state } = await jsm.streams.info(AUDIT_TRAIL_STREAM.name, { subjects_filter: `${AUDIT_TRAIL_SUBJECT_ROOT}.${tenant}.>` });
    expect(state.subjects).toEqual({ [trailEntriesSubject(tenant)]: 2, [trailDigestsSubject(tenant)]: 1 });
  });
});

describe.skipIf(missing)('TrailRepository: a trail written on JetStream KV before the stream', () => {
  const server = aServer();

  it('is read on below the stream, and the stream continues it: entries and digests', async () => {
    const { nc } = server;
    const store = new JetStreamKvStore(nc);
    const tenant = 'upgraded' as TenantId;
    const entries = chain(3 * PAGE);
    // What an earlier version left in KV.
    const before = await TrailRepository.open(store, { kind: 'documents' });
    await before.createEntries(tenant, entries.slice(0, PAGE + 10));
    await before.createDigest(tenant, digest(tenant, 1));

    const after = await TrailRepository.open(store, { kind: 'stream', nc, replicas: 1 });
    await expect(after.createEntries(tenant, entries.slice(PAGE + 5))).rejects.toMatchObject({ code: 'conflict' });
    await expect(after.createEntries(tenant, entries.slice(PAGE + 11))).rejects.toMatchObject({ code: 'conflict' });
    await after.createEntries(tenant, entries.slice(PAGE + 10));
    expect(await after.entries(tenant, 1, entries.length)).toEqual(entries);
    expect(await after.entries(tenant, PAGE + 8, PAGE + 12)).toEqual(entries.slice(PAGE + 7, PAGE + 12));
    expect((await after.fragmentHolding(tenant, 5))?.first).toBe(1);
    expect((await after.fragmentHolding(tenant, PAGE + 11))?.first).toBe(PAGE + 11);
    expect(await after.createDigest(tenant, digest(tenant, 1))).toBe(false);
    expect(await after.createDigest(tenant, digest(tenant, 2))).toBe(true);
    expect(await after.digests(tenant, 1, 3)).toEqual([digest(tenant, 1), digest(tenant, 2), undefined]);
    // Only what came after is on the stream.
    const jsm = await jetstreamManager(nc);
    const { state } = await jsm.streams.info(AUDIT_TRAIL_STREAM.name, { subjects_filter: `${AUDIT_TRAIL_SUBJECT_ROOT}.${tenant}.>` });
    expect(state.subjects).toEqual({ [trailEntriesSubject(tenant)]: 2, [trailDigestsSubject(tenant)]: 1 });
    // A tenant new since the upgrade is on the stream alone.
    const newcomer = 'since-upgrade' as TenantId;
    await after.createEntries(newcomer, chain(3));
    expect(await after.entries(newcomer, 1, 3)).toEqual(chain(3));
  });
});

describe.skipIf(missing)('TrailRepository: a trail stream that would not keep every entry', () => {
  const server = aServer();

  it('is not used, and not changed: opening it fails, naming why', async () => {
    const { nc } = server;
    const jsm = await jetstreamManager(nc);
    // What an operator (or someone with the stream rights) may have done to it.
    await jsm.streams.add({ name: AUDIT_TRAIL_STREAM.name, subjects: [...AUDIT_TRAIL_STREAM.subjects], max_age: 3_600_000_000_000, deny_purge: true });
    await expect(TrailRepository.open(new JetStreamKvStore(nc), { kind: 'stream', nc, replicas: 1 })).rejects.toThrow(
      /MANDATE_AUDIT_TRAIL would not keep every entry: deletes are allowed \(deny_delete is off\); messages expire/,
    );
    expect((await jsm.streams.info(AUDIT_TRAIL_STREAM.name)).config).toMatchObject({ deny_delete: false, max_age: 3_600_000_000_000 });
  });

  it('says so when a limit is given to it after the service opened it (checked again at every digest round)', async () => {
    const { nc } = server;
    const jsm = await jetstreamManager(nc);
    await jsm.streams.delete(AUDIT_TRAIL_STREAM.name);
    const repository = await TrailRepository.open(new JetStreamKvStore(nc), { kind: 'stream', nc, replicas: 1 });
    expect(await repository.storageProblem()).toBe('');
    const { config } = await jsm.streams.info(AUDIT_TRAIL_STREAM.name);
    await jsm.streams.update(AUDIT_TRAIL_STREAM.name, { ...config, max_msgs_per_subject: 1 });
    expect(await repository.storageProblem()).toMatch(/would not keep every entry: at most 1 messages a subject are kept/);
    expect(await (await TrailRepository.open(new JetStreamKvStore(nc), { kind: 'documents' })).storageProblem()).toBe('');
  });
});
