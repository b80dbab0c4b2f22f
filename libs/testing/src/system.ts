import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { exportJWK, generateKeyPair, type JWK } from 'jose';
import type { NatsConnection } from '@nats-io/transport-node';
import { BusClient, connectToBus, runService, type RunningService, type ServiceDefinition } from '@mandate/bus';
import {
  authorizerSetEndpoint,
  tokenForUserEndpoint,
  tokenForWorkloadEndpoint,
  USER_ID_ISSUER,
  workloadCreateEndpoint,
  type AuditRecord,
  type AuthorizerConfig,
  type RequestOf,
  type UserRef,
  type Workload,
} from '@mandate/contracts';
import { baseEnvSchema, type BaseEnv } from '@mandate/config';
import type { DocumentStore } from '@mandate/store';
import { createLogger, type Logger } from '@mandate/telemetry';
import { signClientAssertion } from '@mandate/wat';
import { auditService } from '@mandate/audit/module';
import { authorizerService } from '@mandate/authorizer/module';
import { consentService } from '@mandate/consent/module';
import { diagnosticsService } from '@mandate/diagnostics/module';
import { directoryService } from '@mandate/directory/module';
import { gatewayService } from '@mandate/gateway/module';
import { policyService } from '@mandate/policy/module';
import { schedulerService } from '@mandate/scheduler/module';
import { vaultService } from '@mandate/vault/module';
import { freePort, startNatsServer, type NatsServerHandle } from './nats-server.js';
import { auditRecordsOf } from './audit-intake.js';

/*
 * The services of Mandate, started in this process against a real nats-server, for end-to-end
 * tests: each test file says which it needs. (Only tests import this file: it is not part of the
 * library's build, so the library does not depend on the apps.)
 */
const SERVICES = {
  directory: directoryService,
  authorizer: authorizerService,
  vault: vaultService,
  consent: consentService,
  audit: auditService,
  scheduler: schedulerService,
  diagnostics: diagnosticsService,
  gateway: gatewayService,
  policy: policyService,
} satisfies Record<string, ServiceDefinition>;

export type ServiceName = keyof typeof SERVICES;

export interface SystemOptions {
  /** In start order. */
  services: readonly ServiceName[];
  /** Environment of every service, over the test defaults. */
  env?: Record<string, string>;
  /** NATS that is already running (e.g. `startNatsCluster().url`): the system connects to it and leaves it running. */
  natsUrl?: string;
}

export interface ReplicaOptions {
  /** Environment of this replica, over the system's. */
  env?: Record<string, string>;
  logger?: Logger;
  /** The service as a test varies it (a module with test hooks). */
  definition?: ServiceDefinition;
  /** Between the replica and its store: where tests inject faults. */
  wrapStore?: (store: DocumentStore) => DocumentStore;
}

export interface TestSystem {
  nats: NatsServerHandle;
  nc: NatsConnection;
  bus: BusClient;
  /** The environment every service was started with (raw variables). */
  env: Record<string, string>;
  /** Audit records published so far, in order. */
  audit: AuditRecord[];
  /** Every running replica of each service, first started first. */
  replicas: Partial<Record<ServiceName, RunningService[]>>;
  /** The first replica of a service. */
  service(name: ServiceName): RunningService;
  /** Starts another replica of a service on the same bus and store. */
  add(name: ServiceName, options?: ReplicaOptions): Promise<RunningService>;
  createWorkload(request: RequestOf<typeof workloadCreateEndpoint>): Promise<Workload>;
  setAuthorizer(tenant: string, name: string, authorizer: Partial<AuthorizerConfig> & { discoveryUrl: string }): Promise<Workload>;
  /** Registers a workload with a fresh key (tenant `acme` unless given); returns its private key for assertions. */
  workload(name: string, options?: { allowUserIdTokens?: boolean; tenant?: string; returnUrls?: string[] }): Promise<JWK>;
  /** A WAT for the workload alone. */
  machineWat(name: string, key: JWK, tenant?: string): Promise<string>;
  /** A WAT binding the workload to a user id (its user is `{ iss: urn:mandate:user-id, sub }`). */
  userWat(name: string, key: JWK, userId: string, tenant?: string): Promise<{ wat: string; user: UserRef }>;
  stop(): Promise<void>;
}

/** A workload key pair: the public JWK to register, the private one to sign assertions. */
export async function workloadKeyPair(kid: string, alg: 'EdDSA' | 'ES256' = 'ES256'): Promise<{ publicJwk: JWK; privateJwk: JWK }> {
  const pair = await generateKeyPair(alg, { extractable: true });
  return {
    publicJwk: { ...(await exportJWK(pair.publicKey)), kid, alg },
    privateJwk: { ...(await exportJWK(pair.privateKey)), kid, alg },
  };
}

export async function startSystem(options: SystemOptions): Promise<TestSystem> {
  const nats = options.natsUrl ? runningElsewhere(options.natsUrl) : await startNatsServer();
  const dataDir = await mkdtemp(join(tmpdir(), 'mandate-system-'));
  const env: Record<string, string> = {
    NATS_URL: nats.url,
    LOG_LEVEL: 'silent',
    MANDATE_DATA_DIR: dataDir,
    AUTHORIZER_HTTP_PORT: String(await freePort()),
    WAT_KEY_ACTIVATION_DELAY_SECONDS: '0',
    IDP_FETCH_TIMEOUT_MS: '1000',
    VAULT_RATE_LIMIT_PER_SECOND: '100000',
    VAULT_RATE_LIMIT_BURST: '100000',
    CONSENT_HTTP_PORT: '0',
    GATEWAY_HTTP_PORT: '0',
    SCHEDULER_TICK_MS: '0',
    AUDIT_WRITER_ID: 'audit-test',
    ...options.env,
  };
  const replicas: TestSystem['replicas'] = {};
  const add = async (name: ServiceName, replica: ReplicaOptions = {}) => {
    const definition = replica.definition ?? SERVICES[name];
    const parsed = (definition.envSchema ?? baseEnvSchema).parse({ ...env, ...replica.env }) as BaseEnv;
    const running = await runService(definition, parsed, {
      logger: replica.logger ?? createLogger(name, { level: process.env.MANDATE_TEST_LOG_LEVEL ?? 'silent' }),
      ...(replica.wrapStore ? { wrapStore: replica.wrapStore } : {}),
    });
    (replicas[name] ??= []).push(running);
    return running;
  };
  for (const name of options.services) await add(name);
  const nc = await connectToBus({ servers: nats.url, name: 'system-test' });
  const bus = new BusClient(nc, { defaultTimeoutMs: 10_000 });
  const audit: AuditRecord[] = [];
  const subscription = nc.subscribe('mandate.audit.>', { callback: (_e, msg) => void audit.push(...auditRecordsOf(msg)) });
  const createWorkload = (request: RequestOf<typeof workloadCreateEndpoint>) => bus.request(workloadCreateEndpoint, request);
  return {
    nats,
    nc,
    bus,
    env,
    audit,
    replicas,
    service(name) {
      const first = replicas[name]?.[0];
      if (!first) throw new TypeError(`${name} was not started`);
      return first;
    },
    add,
    createWorkload,
    setAuthorizer: (tenant, name, authorizer) => bus.request(authorizerSetEndpoint, { tenant, name, authorizer }),
    async workload(name, workload = {}) {
      const { publicJwk, privateJwk } = await workloadKeyPair(`${name}-key`);
      await createWorkload({
        tenant: workload.tenant ?? 'acme',
        name,
        allowUserIdTokens: workload.allowUserIdTokens ?? false,
        allowedReturnUrls: workload.returnUrls ?? [],
        publicKeys: { keys: [publicJwk as never] },
      });
      return privateJwk;
    },
    async machineWat(name, key, tenant = 'acme') {
      const clientAssertion = await signClientAssertion({ workload: name, privateJwk: key });
      return (await bus.request(tokenForWorkloadEndpoint, { tenant, workload: name, clientAssertion })).token;
    },
    async userWat(name, key, userId, tenant = 'acme') {
      const clientAssertion = await signClientAssertion({ workload: name, privateJwk: key });
      const wat = (await bus.request(tokenForUserEndpoint, { tenant, workload: name, userId, clientAssertion })).token;
      return { wat, user: { iss: USER_ID_ISSUER, sub: userId } };
    },
    async stop() {
      subscription.unsubscribe();
      await nc.close();
      // Last started, first stopped: what a service calls is still there while it drains.
      for (const name of [...options.services].reverse()) for (const running of (replicas[name] ?? []).splice(0).reverse()) await running.stop();
      for (const rest of Object.values(replicas)) for (const running of rest.splice(0)) await running.stop();
      await nats.stop();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}

/** A handle on NATS this harness did not start: stopping the system leaves it running. */
function runningElsewhere(url: string): NatsServerHandle {
  return {
    url,
    port: Number(new URL(url.split(',')[0]!.trim()).port),
    storeDir: '',
    stop: async () => undefined,
    kill: () => Promise.reject(new TypeError('this NATS was not started by the test system: kill its nodes instead')),
  };
}
