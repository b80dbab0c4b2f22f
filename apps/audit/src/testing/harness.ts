import { mkdtemp, rm } from 'node:fs/promises';
import { randomUUID } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { NatsConnection } from '@nats-io/transport-node';
import { BusClient, connectToBus, JetStreamPublisher, runService, type RunningService } from '@mandate/bus';
import { type AuditRecord, type AuditRecordInput, type TenantId } from '@mandate/contracts';
import { JetStreamKvStore } from '@mandate/store';
import { createLogger } from '@mandate/telemetry';
import { startNatsServer, type NatsServerHandle } from '@mandate/testing';
import { AuditTrail } from '../audit.assembly.js';
import { auditService } from '../audit.module.js';
import { auditEnvSchema, type AuditEnv } from '../config.js';
import { TrailRepository } from '../store/trail-repository.js';

/** A real nats-server, the audit service in this process, and what tests need around them. */
export interface AuditHarness {
  nats: NatsServerHandle;
  nc: NatsConnection;
  bus: BusClient;
  env: AuditEnv;
  service: RunningService;
  trail(): AuditTrail;
  publisher: JetStreamPublisher;
  /** The trail as stored, through the store port (what a tamperer with store access sees). */
  store: JetStreamKvStore;
  repository: TrailRepository;
  publish(tenant: string, overrides?: Partial<AuditRecordInput>): Promise<AuditRecord>;
  /** Waits until the tenant's chain head reaches `sequence`. */
  waitForSequence(tenant: string, sequence: number, timeoutMs?: number): Promise<void>;
  restartService(): Promise<void>;
  stop(): Promise<void>;
}

export async function startAuditHarness(overrides: Record<string, string> = {}): Promise<AuditHarness> {
  const nats = await startNatsServer();
  const dataDir = await mkdtemp(join(tmpdir(), 'mandate-audit-'));
  const env = auditEnvSchema.parse({ NATS_URL: nats.url, LOG_LEVEL: 'silent', MANDATE_DATA_DIR: dataDir, AUDIT_WRITER_ID: 'audit-test', ...overrides });
  const start = () => runService(auditService, env, { logger: createLogger('audit', { level: 'silent' }) });
  let service = await start();
  const nc = await connectToBus({ servers: nats.url, name: 'audit-test' });
  const store = new JetStreamKvStore(nc);
  const repository = await TrailRepository.open(store);
  const publisher = new JetStreamPublisher(nc);
  const harness: AuditHarness = {
    nats,
    nc,
    bus: new BusClient(nc, { defaultTimeoutMs: 20_000 }),
    env,
    get service() {
      return service;
    },
    trail: () => service.app.get(AuditTrail),
    publisher,
    store,
    repository,
    publish: (tenant, extra = {}) =>
      publisher.audit({ tenant, service: 'directory', action: 'workload-create', outcome: 'succeeded', actor: { admin: 'ops@example', workload: 'sales-brief' }, id: randomUUID(), ...extra }),
    async waitForSequence(tenant, sequence, timeoutMs = 30_000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const head = await repository.chainHead(tenant as TenantId);
        if ((head?.value.sequence ?? 0) >= sequence) return;
        if (Date.now() > deadline) throw new Error(`chain of ${tenant} reached ${head?.value.sequence ?? 0}, not ${sequence}`);
        await new Promise((r) => setTimeout(r, 20));
      }
    },
    async restartService() {
      await service.stop();
      service = await start();
    },
    async stop() {
      await service.stop();
      await nc.close();
      await nats.stop();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
  return harness;
}
