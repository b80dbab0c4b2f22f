import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { exportJWK, generateKeyPair, SignJWT, type JWK, type JWTPayload } from 'jose';
import type { NatsConnection } from '@nats-io/transport-node';
import { BusClient, connectToBus, runService, type RunningService } from '@mandate/bus';
import {
  authorizerSetEndpoint,
  workloadCreateEndpoint,
  type AuditRecord,
  type AuthorizerConfig,
  type RequestOf,
  type Workload,
} from '@mandate/contracts';
import { createLogger } from '@mandate/telemetry';
import { freePort, startNatsServer, type NatsServerHandle } from '@mandate/testing';
import type { TestIdp } from '@mandate/testing/idp';
import { directoryService } from '@mandate/directory/module';
import { authorizerService } from '../authorizer.module.js';
import { authorizerEnvSchema, type AuthorizerEnv } from '../config.js';

/** A real nats-server, the directory and the authorizer in this process, and what tests need around them. */
export interface AuthorizerHarness {
  nats: NatsServerHandle;
  nc: NatsConnection;
  bus: BusClient;
  env: AuthorizerEnv;
  authorizer: RunningService;
  /** Audit records published so far, in order. */
  audit: AuditRecord[];
  createWorkload(request: RequestOf<typeof workloadCreateEndpoint>): Promise<Workload>;
  setAuthorizer(tenant: string, name: string, authorizer: Partial<AuthorizerConfig> & { discoveryUrl: string }): Promise<Workload>;
  stop(): Promise<void>;
}

export async function startAuthorizerHarness(overrides: Record<string, string> = {}): Promise<AuthorizerHarness> {
  const nats = await startNatsServer();
  const dataDir = await mkdtemp(join(tmpdir(), 'mandate-authorizer-'));
  const env = authorizerEnvSchema.parse({
    NATS_URL: nats.url,
    LOG_LEVEL: 'silent',
    MANDATE_DATA_DIR: dataDir,
    AUTHORIZER_HTTP_PORT: String(await freePort()),
    WAT_KEY_ACTIVATION_DELAY_SECONDS: '0',
    IDP_FETCH_TIMEOUT_MS: '1000',
    ...overrides,
  });
  const logger = (name: string) => createLogger(name, { level: 'silent' });
  const directory = await runService(directoryService, env, { logger: logger('directory') });
  const authorizer = await runService(authorizerService, env, { logger: logger('authorizer') });
  const nc = await connectToBus({ servers: nats.url, name: 'authorizer-test' });
  const bus = new BusClient(nc, { defaultTimeoutMs: 10_000 });
  const audit: AuditRecord[] = [];
  const subscription = nc.subscribe('mandate.audit.>', { callback: (_e, msg) => void audit.push(msg.json<AuditRecord>()) });
  return {
    nats,
    nc,
    bus,
    env,
    authorizer,
    audit,
    createWorkload: (request) => bus.request(workloadCreateEndpoint, request),
    setAuthorizer: (tenant, name, authorizer) => bus.request(authorizerSetEndpoint, { tenant, name, authorizer }),
    async stop() {
      subscription.unsubscribe();
      await nc.close();
      await authorizer.stop();
      await directory.stop();
      await nats.stop();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}

/**
 * A token signed by the IdP's genuine key with whatever claims and header a test needs: the way to
 * make tokens a real IdP would never issue (expired, wrong audience, odd headers).
 */
export async function forgeIdpToken(
  idp: TestIdp,
  claims: JWTPayload,
  header: Record<string, unknown> = {},
  /** Extension headers to let through jose's own `crit` check when signing. */
  crit: Record<string, boolean> = {},
): Promise<string> {
  const key = idp.signingKeys[0]!;
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT({ iss: idp.issuer, sub: 'user-1', iat: now, exp: now + 300, ...claims })
    .setProtectedHeader({ alg: key.alg, kid: key.kid, typ: 'at+jwt', ...header })
    .sign(key.privateKey, { crit });
}

/** A workload key pair: the public JWK to register, the private one to sign assertions. */
export async function workloadKeyPair(kid: string, alg: 'EdDSA' | 'ES256' = 'ES256'): Promise<{ publicJwk: JWK; privateJwk: JWK }> {
  const pair = await generateKeyPair(alg, { extractable: true });
  return {
    publicJwk: { ...(await exportJWK(pair.publicKey)), kid, alg },
    privateJwk: { ...(await exportJWK(pair.privateKey)), kid, alg },
  };
}
