import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connectToBus, JetStreamPublisher, BusClient } from '@mandate/bus';
import { auditVerifyEndpoint, type TenantId } from '@mandate/contracts';
import { JetStreamKvStore } from '@mandate/store';
import { natsServerMissing, startNatsServer, type NatsServerHandle } from '@mandate/testing';
import { TrailRepository } from '@mandate/audit/module';
import { assertBuilt, root, spawnNode, type Spawned } from './processes.js';

const auditEntry = join(root, 'apps', 'audit', 'dist', 'main.js');
const missing = natsServerMissing('audit service crash and nats-server restart');

/*
 * The promise the audit trail makes: every record whose publish was acknowledged ends up in its
 * tenant's chain exactly once, whatever dies on the way. Publishers here retry until acknowledged
 * (as services do), with the record id as message id.
 */
describe.skipIf(missing)('audit trail under crashes', { timeout: 180_000 }, () => {
  let nats: NatsServerHandle;
  let storeDir: string;
  let dataDir: string;
  let audit: Spawned | undefined;

  const startAudit = () => {
    audit = spawnNode(auditEntry, [], { NATS_URL: nats.url, MANDATE_DATA_DIR: dataDir, AUDIT_WRITER_ID: 'crash-test', LOG_LEVEL: 'info' });
    return audit.waitFor('service listening', 30_000);
  };

  beforeAll(async () => {
    assertBuilt(auditEntry);
    storeDir = await mkdtemp(join(tmpdir(), 'mandate-audit-crash-nats-'));
    dataDir = await mkdtemp(join(tmpdir(), 'mandate-audit-crash-'));
    nats = await startNatsServer({ storeDir });
  });

  afterAll(async () => {
    audit?.child.kill('SIGKILL');
    await nats?.stop();
    await rm(storeDir, { recursive: true, force: true });
    await rm(dataDir, { recursive: true, force: true });
  });

  it('kill the audit service mid-stream, then kill nats-server under load: every acknowledged record is in the trail exactly once', async () => {
    await startAudit();
    const nc = await connectToBus({ servers: nats.url, name: 'audit-crash-publisher' });
    const publisher = new JetStreamPublisher(nc);
    const acked = new Set<string>();
    const tenants = ['crash-a', 'crash-b'];
    let stopPublishing = false;
    const publishForever = async (worker: number) => {
      for (let n = 0; !stopPublishing; n += 1) {
        const id = randomUUID();
        for (;;) {
          try {
            await publisher.audit({ id, tenant: tenants[(worker + n) % 2]!, service: 'directory', action: 'workload-update', outcome: 'succeeded', actor: { admin: `worker-${worker}` } });
            acked.add(id);
            break;
          } catch {
            await new Promise((r) => setTimeout(r, 100)); // the bus is down: retry the same record
          }
        }
      }
    };
    const workers = Array.from({ length: 20 }, (_, i) => publishForever(i));
    const until = async (count: number) => {
      while (acked.size < count) await new Promise((r) => setTimeout(r, 20));
    };

    await until(400);
    audit!.child.kill('SIGKILL'); // mid-stream: batches half written, acks never sent
    await audit!.exit;
    await until(800);
    await startAudit();
    await until(1_200);
    // And the bus itself, under load. nats-server 2.9 acknowledges before its writes reach the
    // disk, so what survives is a prefix of each stream's writes; claims and entries are separate
    // streams, so the appender claims a head's newest entries again whenever it loads a head.
    await nats.kill();
    nats = await startNatsServer({ storeDir, port: nats.port });
    await until(1_800);
    stopPublishing = true;
    await Promise.all(workers);

    const check = await connectToBus({ servers: nats.url, name: 'audit-crash-check' });
    const repository = await TrailRepository.open(new JetStreamKvStore(check), { kind: 'stream', nc: check, replicas: 1 });
    const bus = new BusClient(check, { defaultTimeoutMs: 30_000 });
    const chainOf = async (tenant: string) => {
      const head = (await repository.chainHead(tenant as TenantId))?.value.sequence ?? 0;
      return (await repository.entries(tenant as TenantId, 1, head)).map((e) => e?.record.id);
    };
    const deadline = Date.now() + 60_000;
    let ids: (string | undefined)[];
    for (;;) {
      ids = (await Promise.all(tenants.map(chainOf))).flat();
      if (ids.length >= acked.size || Date.now() > deadline) break;
      await new Promise((r) => setTimeout(r, 250));
    }
    const inChain = new Set(ids);
    expect(ids.length, 'no duplicates').toBe(inChain.size);
    expect([...acked].filter((id) => !inChain.has(id)), 'acknowledged but missing').toEqual([]);
    for (const tenant of tenants) expect(await bus.request(auditVerifyEndpoint, { tenant })).toMatchObject({ ok: true });
    await check.close();
    await nc.close();
  });
});
