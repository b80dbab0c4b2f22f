import { mkdtemp, rm } from 'node:fs/promises';
import { randomUUID } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BusClient, connectToBus, JetStreamPublisher, runService } from '@mandate/bus';
import { type AuditRecord, type AuditRecordInput, type TenantId } from '@mandate/contracts';
import { JetStreamKvStore, type DocumentStore } from '@mandate/store';
import { createLogger } from '@mandate/telemetry';
import { startNatsServer } from '@mandate/testing';
import { AuditTrail } from '../audit.assembly.js';
import { auditService } from '../audit.module.js';
import { auditEnvSchema } from '../config.js';
import { TrailRepository } from '../store/trail-repository.js';
import { StreamTrailEditor } from './stored-trail.js';

/** A real nats-server, the audit service in this process, and what tests need around them. */
export type AuditHarness = Awaited<ReturnType<typeof startAuditHarness>>;

export interface AuditHarnessOptions {
  /** Runs against the bus before the audit service first starts: what a deployed system would already hold. */
  beforeStart?: (natsUrl: string) => Promise<void>;
  /** Between the audit service and its store (tests inject faults there). */
  wrapStore?: (store: DocumentStore) => DocumentStore;
  /** Where the service's log lines go (warnings and errors), for tests that look for one. */
  logTo?: NodeJS.WritableStream;
}

export async function startAuditHarness(overrides: Record<string, string> = {}, options: AuditHarnessOptions = {}) {
  const nats = await startNatsServer();
  await options.beforeStart?.(nats.url);
  const dataDir = await mkdtemp(join(tmpdir(), 'mandate-audit-'));
  const env = auditEnvSchema.parse({ NATS_URL: nats.url, LOG_LEVEL: 'silent', MANDATE_DATA_DIR: dataDir, AUDIT_WRITER_ID: 'audit-test', ...overrides });
  const logger = options.logTo ? createLogger('audit', { level: 'warn', destination: options.logTo }) : createLogger('audit', { level: process.env['AUDIT_TEST_LOG'] ?? 'silent' });
  const start = () => runService(auditService, env, { logger, ...(options.wrapStore ? { wrapStore: options.wrapStore } : {}) });
  let service = await start();
  const nc = await connectToBus({ servers: nats.url, name: 'audit-test' });
  const store = new JetStreamKvStore(nc);
  const repository = await TrailRepository.open(store, { kind: 'stream', nc, replicas: 1 });
  const publisher = new JetStreamPublisher(nc);
  return {
    nats,
    nc,
    bus: new BusClient(nc, { defaultTimeoutMs: 20_000 }),
    env,
    get service() {
      return service;
    },
    trail: (): AuditTrail => service.app.get(AuditTrail),
    publisher,
    /** The heads as stored, through the store port. */
    store,
    repository,
    /** The trail's stream edited as someone with full access to nats-server could. */
    editor: new StreamTrailEditor(repository, nc),
    publish: (tenant: string, extra: Partial<AuditRecordInput> = {}): Promise<AuditRecord> =>
      publisher.audit({ tenant, service: 'directory', action: 'workload-create', outcome: 'succeeded', actor: { admin: 'ops@example', workload: 'sales-brief' }, id: randomUUID(), ...extra }),
    /** Waits until the tenant's chain head reaches `sequence`. */
    async waitForSequence(tenant: string, sequence: number, timeoutMs = 30_000): Promise<void> {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const head = await repository.chainHead(tenant as TenantId);
        if ((head?.value.sequence ?? 0) >= sequence) return;
        if (Date.now() > deadline) throw new Error(`chain of ${tenant} reached ${head?.value.sequence ?? 0}, not ${sequence}`);
        await new Promise((r) => setTimeout(r, 20));
      }
    },
    async restartService(): Promise<void> {
      await service.stop();
      service = await start();
    },
    async stop(): Promise<void> {
      await service.stop();
      await nc.close();
      await nats.stop();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}
