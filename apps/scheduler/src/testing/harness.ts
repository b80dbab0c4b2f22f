import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { JWK } from 'jose';
import type { RunningService } from '@mandate/bus';
import { providerCreateEndpoint } from '@mandate/contracts';
import { startTestIdp, type TestIdp } from '@mandate/testing/idp';
import { startSystem, type TestSystem } from '@mandate/testing/system';
import { SchedulerApp } from '../scheduler.assembly.js';
import { schedulerService, SchedulerModule, type SchedulerTestHooks } from '../scheduler.module.js';

/** One request the sample resource saw. */
export interface ResourceRequest {
  method: string;
  path: string;
  authorization: string | undefined;
  idempotencyKey: string | undefined;
  body: string;
}

/**
 * A tiny resource server: records every request, applies each idempotency key's effect once,
 * and answers each path with the status a test set (200 by default).
 */
export interface TestResource {
  url: string;
  requests: ResourceRequest[];
  /** Idempotency keys whose effect was applied (once each). */
  effects: Set<string>;
  statusOf: Map<string, number>;
  stop(): Promise<void>;
}

export async function startTestResource(): Promise<TestResource> {
  const requests: ResourceRequest[] = [];
  const effects = new Set<string>();
  const statusOf = new Map<string, number>();
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const path = (req.url ?? '/').split('?')[0]!;
      const idempotencyKey = req.headers['idempotency-key'] as string | undefined;
      requests.push({ method: req.method ?? 'GET', path, authorization: req.headers.authorization, idempotencyKey, body: Buffer.concat(chunks).toString('utf8') });
      const status = statusOf.get(path) ?? 200;
      if (status < 300 && idempotencyKey) effects.add(`${path} ${idempotencyKey}`);
      res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify({ ok: status < 300 }));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    requests,
    effects,
    statusOf,
    stop: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

/** Directory, authorizer, vault, a real OAuth server, a resource, and scheduler replicas. */
export interface SchedulerHarness extends TestSystem {
  idp: TestIdp;
  resource: TestResource;
  schedulers: RunningService[];
  /** Starts a scheduler replica (no timer: tests call `tick`). */
  addScheduler(hooks?: SchedulerTestHooks): Promise<{ service: RunningService; app: SchedulerApp }>;
  /** The key of `report-agent`, allowed to use provider `reporting`. */
  reporterKey: JWK;
}

export async function startSchedulerHarness(overrides: Record<string, string> = {}): Promise<SchedulerHarness> {
  const base = await startSystem({ services: ['directory', 'authorizer', 'vault'], env: overrides });
  const idp = await startTestIdp();
  const resource = await startTestResource();
  const schedulers: RunningService[] = [];
  const reporterKey = await base.workload('report-agent');
  await base.bus.request(providerCreateEndpoint, {
    kind: 'oauth2',
    tenant: 'acme',
    name: 'reporting',
    vendor: 'custom',
    discoveryUrl: idp.discoveryUrl,
    clientId: 'test-app',
    clientSecret: 'test-app-secret',
    allowedWorkloads: ['report-agent'],
  });
  return {
    ...base,
    idp,
    resource,
    schedulers,
    reporterKey,
    async addScheduler(hooks) {
      const added = await addScheduler(base, hooks);
      schedulers.push(added.service);
      return added;
    },
    async stop() {
      schedulers.splice(0);
      await base.stop();
      await idp.stop();
      await resource.stop();
    },
  };
}
/** A scheduler replica (no timer: tests call `tick`) on a system started elsewhere, e.g. on a NATS cluster. */
export async function addScheduler(system: TestSystem, hooks?: SchedulerTestHooks): Promise<{ service: RunningService; app: SchedulerApp }> {
  const definition = hooks ? { ...schedulerService, module: SchedulerModule.withTestHooks(hooks) } : schedulerService;
  const service = await system.add('scheduler', { definition });
  return { service, app: service.app.get(SchedulerApp) };
}

export type { SchedulerApp } from '../scheduler.assembly.js';
