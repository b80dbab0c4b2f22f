import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomUUID } from 'node:crypto';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect, nanos, type NatsConnection } from '@nats-io/transport-node';
import type { AuditRecord, TenantId } from '@mandate/contracts';
import { JetStreamKvStore } from '@mandate/store';
import { natsServerMissing, startNatsServer, type NatsServerHandle } from '@mandate/testing';
import { TrailAppender } from '../domain/trail-appender.js';
import { TrailRepository } from './trail-repository.js';

const missing = natsServerMissing('audit claims with a retention');
const CLAIMS_STREAM = 'KV_mandate_audit_claims';
const RETENTION_MS = 60_000;

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

describe.skipIf(missing)('audit dedup claims: kept for their retention, then gone', () => {
  let nats: NatsServerHandle;
  let nc: NatsConnection;
  let nowMs = Date.UTC(2026, 0, 1);
  let repository: TrailRepository;
  let tenantNumber = 0;
  const fresh = () => `claims-${++tenantNumber}` as TenantId;
  const appender = (reclaimTail = 100) => new TrailAppender({ repository, writerId: 'w', clock: () => nowMs, reclaimTail });

  beforeAll(async () => {
    nats = await startNatsServer();
    nc = await connect({ servers: nats.url });
    repository = await TrailRepository.open(new JetStreamKvStore(nc, { clock: () => nowMs }), { claimRetentionMs: RETENTION_MS });
  });
  afterAll(async () => {
    await nc?.close();
    await nats?.stop();
  });

  it('keeps claims apart from the trail, in a bucket whose max age is the retention (the server drops them, nothing is left per key)', async () => {
    const tenant = fresh();
    const writer = appender();
    await writer.append(record(tenant));
    await writer.close();
    const jsm = await jetstreamManager(nc);
    expect((await jsm.streams.info(CLAIMS_STREAM)).config.max_age).toBe(nanos(RETENTION_MS));
    const trailSubjects = (await jsm.streams.info('KV_mandate_audit_trail', { subjects_filter: '>' })).state.subjects ?? {};
    expect(Object.keys(trailSubjects).filter((s) => s.includes('.r.'))).toEqual([]);
  });

  it('a live claim still refuses to chain a record twice; once past its retention it is gone', async () => {
    const tenant = fresh();
    const writer = appender();
    const once = record(tenant);
    expect(await writer.append(once)).toEqual({ status: 'appended', sequence: 1 });
    nowMs += RETENTION_MS - 1;
    expect(await writer.append(once)).toEqual({ status: 'duplicate', sequence: 1 });
    expect(await repository.lookupClaim(tenant, once.id, 1)).toEqual({ chained: true, sequence: 1 });
    nowMs += 1;
    expect(await repository.lookupClaim(tenant, once.id, 1)).toEqual({ chained: false, attempt: 0 });
    await writer.close();
  });

  it('claims lost while the service was away (aged out, or a bus crash) are written again from the end of the chain before anything is appended', async () => {
    const tenant = fresh();
    const first = appender();
    const records = Array.from({ length: 6 }, () => record(tenant));
    for (const r of records) await first.append(r);
    await first.close();
    // What an outage longer than the retention leaves: the entries, none of their claims.
    await (await jetstreamManager(nc)).streams.purge(CLAIMS_STREAM);
    expect(await repository.lookupClaim(tenant, records[5]!.id, 6)).toEqual({ chained: false, attempt: 0 });

    // The records a crash left unacknowledged are the last ones chained: within the tail, found.
    const restarted = appender(4);
    expect(await restarted.append(records[5]!)).toEqual({ status: 'duplicate', sequence: 6 });
    expect(await restarted.append(records[2]!)).toEqual({ status: 'duplicate', sequence: 3 });
    expect((await repository.chainHead(tenant))!.value.sequence).toBe(6);
    await restarted.close();
  });

  it('after a restart that lost nothing, claims again only the newest batch-length of the chain', async () => {
    const tenant = fresh();
    const first = new TrailAppender({ repository, writerId: 'w', clock: () => nowMs, maxBatch: 2 });
    for (let i = 0; i < 10; i += 1) await first.append(record(tenant));
    await first.close();
    const stretches: number[] = [];
    const counting = new Proxy(repository, {
      get(target, property) {
        const value: unknown = Reflect.get(target, property);
        if (property === 'reclaim') {
          return async (tenantId: TenantId, entries: Parameters<TrailRepository['reclaim']>[1]) => {
            stretches.push(entries.length);
            return target.reclaim(tenantId, entries);
          };
        }
        return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
      },
    });
    const restarted = new TrailAppender({ repository: counting, writerId: 'w', clock: () => nowMs, maxBatch: 2, reclaimTail: 10 });
    expect(await restarted.append(record(tenant))).toMatchObject({ status: 'appended', sequence: 11 });
    await restarted.close();
    expect(stretches).toEqual([2]);
  });

  it('a stale claim (its sequence holds another record) is claimed past when the tail is claimed again', async () => {
    const tenant = fresh();
    const first = appender();
    const [a, b] = [record(tenant), record(tenant)];
    await first.append(a);
    await first.append(b);
    await first.close();
    await (await jetstreamManager(nc)).streams.purge(CLAIMS_STREAM);
    // b's first claim names sequence 1, which holds a: as a voided batch would leave it.
    await repository.createClaim(tenant, b.id, 0, 1);
    const restarted = appender();
    expect(await restarted.append(b)).toEqual({ status: 'duplicate', sequence: 2 });
    await restarted.close();
  });
});
