import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomUUID } from 'node:crypto';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { AUDIT_TRAIL_STREAM, AUDIT_TRAIL_SUBJECT_ROOT, trailEntriesSubject, type AuditRecord, type TenantId } from '@mandate/contracts';
import { JetStreamKvStore } from '@mandate/store';
import { natsServerMissing, startNatsServer, type NatsServerHandle } from '@mandate/testing';
import { TrailAppender, type AppendOutcome, type TrailAppenderOptions } from './trail-appender.js';
import { TrailRepository } from '../store/trail-repository.js';
import { StreamTrailEditor } from '../testing/stored-trail.js';

const missing = natsServerMissing('audit deduplication on JetStream KV');
const WINDOW_MS = 60_000;

function record(tenant: TenantId): AuditRecord {
  return {
    id: randomUUID(),
    tenant,
    service: 'vault',
    action: 'api-key-release',
    outcome: 'succeeded',
    occurredAt: '2026-01-01T00:00:00.000Z',
    traceId: '0'.repeat(32),
    spanId: '0'.repeat(16),
    actor: { workload: 'w' },
  };
}

/** The repository, counting the entries each `entries` call reads (what learning the chain costs). */
function counting(repository: TrailRepository): { repository: TrailRepository; reads: number[] } {
  const reads: number[] = [];
  const proxy = new Proxy(repository, {
    get(target, property) {
      const value: unknown = Reflect.get(target, property);
      if (property === 'entries') {
        return async (tenant: TenantId, from: number, to: number) => {
          reads.push(to - from + 1);
          return target.entries(tenant, from, to);
        };
      }
      return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
    },
  });
  return { repository: proxy, reads };
}

describe.skipIf(missing)('audit deduplication: an index of recent records, learnt from the chain, nothing written per record', () => {
  let nats: NatsServerHandle;
  let nc: NatsConnection;
  let nowMs = Date.UTC(2026, 0, 1);
  let store: JetStreamKvStore;
  let repository: TrailRepository;
  let tenantNumber = 0;
  const fresh = () => `dedup-${++tenantNumber}` as TenantId;
  const appender = (options: Partial<TrailAppenderOptions> = {}) =>
    new TrailAppender({ repository, writerId: 'w', clock: () => nowMs, dedupWindowMs: WINDOW_MS, loadTail: 100, ...options });

  beforeAll(async () => {
    nats = await startNatsServer();
    nc = await connect({ servers: nats.url });
    store = new JetStreamKvStore(nc, { clock: () => nowMs });
    repository = await TrailRepository.open(store, { kind: 'stream', nc, replicas: 1 });
  });
  afterAll(async () => {
    await nc?.close();
    await nats?.stop();
  });

  it('writes nothing per record: the trail holds fragments only, and no claims bucket exists', async () => {
    const tenant = fresh();
    const writer = appender();
    await Promise.all(Array.from({ length: 50 }, () => writer.append(record(tenant))));
    const again = record(tenant);
    await writer.append(again);
    expect(await writer.append(again)).toEqual<AppendOutcome>({ status: 'duplicate', sequence: 51 });
    await writer.close();
    const jsm = await jetstreamManager(nc);
    const subjects = (await jsm.streams.info(AUDIT_TRAIL_STREAM.name, { subjects_filter: `${AUDIT_TRAIL_SUBJECT_ROOT}.${tenant}.>` })).state.subjects ?? {};
    expect(Object.keys(subjects)).toEqual([trailEntriesSubject(tenant)]);
    expect(subjects[trailEntriesSubject(tenant)]).toBeLessThan(10);
    const streams: string[] = [];
    for await (const info of jsm.streams.list()) streams.push(info.config.name);
    // Nor a KV bucket per record or per fragment: the trail is the stream (a new deployment has no `audit-trail` bucket).
    expect(streams).not.toContain('KV_mandate_audit_claims');
    expect(streams).not.toContain('KV_mandate_audit_trail');
  });

  it('a record that comes again within the window is a duplicate; once the window is over it is forgotten', async () => {
    const tenant = fresh();
    // The chain's last entry is remembered at every load (the lease runs out within the window here), so `once` is not the last.
    const writer = appender({ loadTail: 1, maxBatch: 1 });
    const once = record(tenant);
    expect(await writer.append(once)).toEqual<AppendOutcome>({ status: 'appended', sequence: 1 });
    await writer.append(record(tenant));
    nowMs += WINDOW_MS;
    expect(await writer.append(once)).toEqual<AppendOutcome>({ status: 'duplicate', sequence: 1 });
    nowMs += 1;
    // What the window is for: memory holds one window of records, not the whole chain.
    expect(await writer.append(once)).toEqual<AppendOutcome>({ status: 'appended', sequence: 3 });
    await writer.close();
  });

  it('after a restart, the chain end is read back over the window: a record chained before it is found', async () => {
    const tenant = fresh();
    const first = appender({ maxBatch: 2 });
    const records = Array.from({ length: 10 }, () => record(tenant));
    for (const r of records) {
      await first.append(r);
      nowMs += 1_000;
    }
    await first.close();
    const reading = counting(repository);
    const restarted = new TrailAppender({ repository: reading.repository, writerId: 'w', clock: () => nowMs, dedupWindowMs: WINDOW_MS, loadTail: 2, maxBatch: 2 });
    expect(await restarted.append(records[0]!)).toEqual<AppendOutcome>({ status: 'duplicate', sequence: 1 });
    expect(await restarted.append(records[9]!)).toEqual<AppendOutcome>({ status: 'duplicate', sequence: 10 });
    expect(reading.reads.reduce((a, b) => a + b, 0)).toBe(10);
    await restarted.close();
  });

  it('after a downtime longer than the window, the last loadTail entries are still found (what a crash left unacknowledged), and kept a window from the restart', async () => {
    const tenant = fresh();
    const first = appender();
    const records = Array.from({ length: 6 }, () => record(tenant));
    for (const r of records) await first.append(r);
    await first.close();
    nowMs += 10 * WINDOW_MS;
    // Read back a batch's length at a time: two stretches of two cover the tail of four.
    const restarted = appender({ loadTail: 4, maxBatch: 2 });
    expect(await restarted.append(records[5]!)).toEqual<AppendOutcome>({ status: 'duplicate', sequence: 6 });
    nowMs += WINDOW_MS;
    expect(await restarted.append(records[2]!)).toEqual<AppendOutcome>({ status: 'duplicate', sequence: 3 });
    // Older than both: beyond what can still be redelivered, so chained again (the documented limit).
    expect(await restarted.append(records[0]!)).toEqual<AppendOutcome>({ status: 'appended', sequence: 7 });
    await restarted.close();
  });

  it('a reconnect after an outage longer than the window still finds the records chained just before it (their acknowledgements may be lost), swept or not', async () => {
    for (const swept of [false, true]) {
      const tenant = fresh();
      const writer = appender();
      const inFlight = record(tenant);
      await writer.append(record(tenant));
      await writer.append(inFlight);
      nowMs += 3 * WINDOW_MS;
      if (swept) writer.forgetExpired();
      writer.resync();
      expect(await writer.append(record(tenant))).toMatchObject({ status: 'appended', sequence: 3 });
      // Redelivered an ack wait after the reconnect.
      nowMs += WINDOW_MS / 2;
      writer.forgetExpired();
      expect(await writer.append(inFlight), swept ? 'swept' : 'not swept').toEqual<AppendOutcome>({ status: 'duplicate', sequence: 2 });
      await writer.close();
    }
  });

  it('an outage that leaves the connection up (no resync) and outlasts the window and the lease: the record chained just before it is still found', async () => {
    const tenant = fresh();
    const writer = appender();
    const inFlight = record(tenant);
    await writer.append(record(tenant));
    await writer.append(inFlight);
    // JetStream away for five minutes, the client connected all along: only the sweep runs.
    nowMs += 5 * WINDOW_MS;
    writer.forgetExpired();
    expect(await writer.append(inFlight)).toEqual<AppendOutcome>({ status: 'duplicate', sequence: 2 });
    await writer.close();
  });

  it('a quiet tenant forgets too (the sweep), and a record of the batch committing is never forgotten', async () => {
    const tenant = fresh();
    const writer = appender({ loadTail: 1, maxBatch: 1 });
    const records = Array.from({ length: 3 }, () => record(tenant));
    for (const r of records) await writer.append(r);
    nowMs += WINDOW_MS + 1;
    writer.forgetExpired();
    // Nothing is remembered now: a record that comes again this late is chained again.
    expect(await writer.append(records[0]!)).toEqual<AppendOutcome>({ status: 'appended', sequence: 4 });
    await writer.close();
  });

  it('a resync with the head unmoved reads nothing again; another writer’s appends are read from where the index ends', async () => {
    const tenant = fresh();
    const reading = counting(repository);
    const mine = new TrailAppender({ repository: reading.repository, writerId: 'mine', clock: () => nowMs, dedupWindowMs: WINDOW_MS, loadTail: 100 });
    for (let i = 0; i < 5; i += 1) await mine.append(record(tenant));
    const readsBefore = reading.reads.length;
    mine.resync();
    expect(await mine.append(record(tenant))).toMatchObject({ status: 'appended', sequence: 6 });
    // The head is read again (and the entry it names, by the repair); the index needs nothing.
    expect(reading.reads.slice(readsBefore).every((n) => n === 1)).toBe(true);
    // Another writer takes the chain over once this one's lease has run out, and appends.
    nowMs += 31_000;
    const theirs = appender({ writerId: 'theirs' });
    const chainedThere = record(tenant);
    await theirs.append(chainedThere);
    await theirs.append(record(tenant));
    await theirs.close();
    // Its own lease ran out, so it loads the head again before appending, and finds what the other appended.
    const readsThen = reading.reads.length;
    expect(await mine.append(chainedThere)).toEqual<AppendOutcome>({ status: 'duplicate', sequence: 7 });
    // From the entry the index ends at (6) to the new head (8), not the chain again.
    expect(Math.max(...reading.reads.slice(readsThen))).toBe(3);
    await mine.close();
  });

  it('a head moved back (the store lost the newest entry): the index is read again, and the lost record is chained again', async () => {
    const tenant = fresh();
    const writer = appender();
    const [a, b, lost] = [record(tenant), record(tenant), record(tenant)];
    for (const r of [a, b, lost]) await writer.append(r);
    await new StreamTrailEditor(repository, nc).remove(tenant, 3);
    writer.resync();
    // Sequence 3 is now the repair record saying entries were lost; the lost record comes after it.
    expect(await writer.append(lost)).toEqual<AppendOutcome>({ status: 'appended', sequence: 4 });
    expect(await writer.append(b)).toEqual<AppendOutcome>({ status: 'duplicate', sequence: 2 });
    expect((await repository.entry(tenant, 3))?.record.action).toBe('trail-repair');
    await writer.close();
  });
});
