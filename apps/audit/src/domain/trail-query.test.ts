import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { GENESIS_HASH, type AuditRecord, type TenantId, type TrailEntry } from '@mandate/contracts';
import { JetStreamKvStore } from '@mandate/store';
import { natsServerMissing, startNatsServer, type NatsServerHandle } from '@mandate/testing';
import { TrailRepository } from '../store/trail-repository.js';
import { chainLink } from './chain.js';
import { TrailQuery } from './trail-query.js';

const missing = natsServerMissing('audit queries over the trail on its stream');
const TENANT = 'queried' as TenantId;
const LENGTH = 5_000;
/** The two records the filter finds: one near the end of the chain, one near its start. */
const FOUND = new Set([4_990, 3]);

describe.skipIf(missing)('TrailQuery: newest first, at most the scan limit a page, a cursor to go on', () => {
  let nats: NatsServerHandle;
  let nc: NatsConnection;
  let repository: TrailRepository;

  beforeAll(async () => {
    nats = await startNatsServer();
    nc = await connect({ servers: nats.url });
    repository = await TrailRepository.open(new JetStreamKvStore(nc), { kind: 'stream', nc, replicas: 1 });
    let previous = { sequence: 0, hash: GENESIS_HASH };
    let batch: TrailEntry[] = [];
    for (let sequence = 1; sequence <= LENGTH; sequence += 1) {
      const record: AuditRecord = {
        id: crypto.randomUUID(),
        tenant: TENANT,
        service: 'vault',
        action: 'api-key-release',
        outcome: 'succeeded',
        occurredAt: '2026-12-07T00:00:00.000Z',
        traceId: '0'.repeat(32),
        spanId: '0'.repeat(16),
        actor: { workload: FOUND.has(sequence) ? 'rare-agent' : 'busy-agent' },
      };
      const { entry } = chainLink(previous, record, '2026-12-07T00:00:00.000Z');
      batch.push(entry);
      previous = entry;
      if (batch.length === 100) {
        await repository.createEntries(TENANT, batch);
        batch = [];
      }
    }
    await repository.createChainHead(TENANT, { sequence: LENGTH, hash: previous.hash, appendedAt: '2026-12-07T00:00:00.000Z', writer: 'test', leaseUntil: 0 });
  });

  afterAll(async () => {
    await nc?.close();
    await nats?.stop();
  });

  it('reads no more than the scan limit for a page, however its reads grow, and the cursors find every match once', async () => {
    const query = new TrailQuery(repository, 1_500);
    const pages: { sequences: number[]; scanned: number; nextCursor?: string }[] = [];
    let cursor: string | undefined;
    do {
      const page = await query.query({ tenant: TENANT, workload: 'rare-agent', limit: 50, ...(cursor ? { cursor } : {}) } as never);
      pages.push({ sequences: page.entries.map((entry) => entry.sequence), scanned: page.scanned, ...(page.nextCursor ? { nextCursor: page.nextCursor } : {}) });
      cursor = page.nextCursor;
    } while (cursor);
    expect(pages.flatMap((page) => page.sequences)).toEqual([4_990, 3]);
    expect(pages.every((page) => page.scanned <= 1_500)).toBe(true);
    expect(pages.reduce((sum, page) => sum + page.scanned, 0)).toBe(LENGTH);
    expect(pages.map((page) => page.nextCursor)).toEqual(['3501', '2001', '501', undefined]);
  });

  it('stops at a full page and says where to go on', async () => {
    const page = await new TrailQuery(repository, 20_000).query({ tenant: TENANT, workload: 'busy-agent', limit: 250 } as never);
    expect(page.entries.map((entry) => entry.sequence)).toEqual(Array.from({ length: 251 }, (_, i) => LENGTH - i).filter((sequence) => !FOUND.has(sequence)).slice(0, 250));
    expect(page.nextCursor).toBe(String(page.entries.at(-1)!.sequence));
  });
});
