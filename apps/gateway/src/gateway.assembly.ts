import { randomBytes } from 'node:crypto';
import { context } from '@opentelemetry/api';
import { errors as natsErrors, headers as natsHeaders, type NatsConnection, type Subscription } from '@nats-io/transport-node';
import type { JWK } from 'jose';
import { AjvJsonSchemaValidator } from '@modelcontextprotocol/sdk/validation/ajv';
import { onEvent, type BusClient, type JetStreamPublisher } from '@mandate/bus';
import {
  apiKeyEndpoint,
  approvalConsumeEndpoint,
  approvalDecidedEvent,
  approvalRequestEndpoint,
  authorizeEndpoint,
  gatewayAudit,
  gatewayChangedEvent,
  oauth2TokenEndpoint,
  policyChangedEvent,
  policyForGatewayEndpoint,
  receiptKeysChangedEvent,
  SYSTEM_TENANT,
  tokenForJwtEndpoint,
  tokenForWorkloadEndpoint,
  type TenantId,
} from '@mandate/contracts';
import { SingleFlight } from '@mandate/cache';
import { EnvelopeCipher, loadDecisionLogKeys, loadMasterKeys } from '@mandate/crypto';
import { SigningKeyRing } from '@mandate/signing-keys';
import type { DocumentStore } from '@mandate/store';
import { injectTraceContext, type Logger } from '@mandate/telemetry';
import { assertKeyAccepted, signClientAssertion } from '@mandate/wat';
import { OpenApiTargets } from './clients/openapi-targets.js';
import { UpstreamMcp } from './clients/upstream-mcp.js';
import { Upstreams } from './clients/upstreams.js';
import type { GatewayEnv } from './config.js';
import { ApprovalDecisions } from './domain/approval-decisions.js';
import { DecisionLog } from './domain/decision-log.js';
import { PolicyFit } from './domain/policy-fit.js';
import { GatewayAdministration } from './domain/gateway-administration.js';
import { GatewayRegistry, NoPolicyService } from './domain/gateway-registry.js';
import { HeldCalls } from './domain/held-calls.js';
import { InboundAuthentication } from './domain/inbound-authentication.js';
import { Interceptors, type AskInterceptor } from './domain/interceptors.js';
import { ReceiptKeyRotation } from './domain/receipt-key-rotation.js';
import { TargetCredentials } from './domain/target-credentials.js';
import { ToolCall } from './domain/tool-call.js';
import { ToolCallReceipts } from './domain/tool-call-receipts.js';
import { ToolListing } from './domain/tool-listing.js';
import { McpHttpServer } from './http/mcp-http-server.js';
import { DecisionLogStream } from './store/decision-log-stream.js';
import { openReceiptSigningKeys, receiptKeyRecordId } from './store/receipt-key-repository.js';
import { GatewayRecords } from './store/repositories.js';

export interface GatewayDependencies {
  env: GatewayEnv;
  nc: NatsConnection;
  bus: BusClient;
  store: DocumentStore;
  publisher: JetStreamPublisher;
  logger: Logger;
}

const VERSION = '0.1.0';
/** How often a replica rotates its receipt keys when due, and otherwise reloads them (well within the activation delay). */
const RECEIPT_KEY_HOUSEKEEPING_MS = 60_000;

/** The gateway's parts: administration over NATS, the MCP endpoints over HTTP, and the event that keeps replicas current. */
export class Gateway {
  readonly useCases: readonly [GatewayAdministration];
  #receiptKeyTimer: NodeJS.Timeout | undefined;
  #retryTimer: NodeJS.Timeout | undefined;

  private constructor(
    administration: GatewayAdministration,
    private readonly http: McpHttpServer,
    readonly httpUrl: string | undefined,
    private readonly upstream: UpstreamMcp,
    private readonly changes: readonly Subscription[],
    private readonly decisionLog: DecisionLog | undefined,
  ) {
    this.useCases = [administration];
  }

  static async assemble(deps: GatewayDependencies): Promise<Gateway> {
    const { env, bus, logger } = deps;
    const master = await loadMasterKeys({ mode: env.MANDATE_MODE, dataDir: env.MANDATE_DATA_DIR, keysJson: env.MANDATE_MASTER_KEYS, keyFile: env.MANDATE_MASTER_KEY_FILE });
    const cipher = new EnvelopeCipher(master.ring);
    const sealId = (tenant: string, gateway: string) => `gateway-key/${tenant}/${gateway}`;
    const publicUrl = env.GATEWAY_PUBLIC_URL.replace(/\/$/, '');
    const receiptKeys = new SigningKeyRing({
      store: await openReceiptSigningKeys(deps.store),
      cipher,
      alg: env.GATEWAY_RECEIPT_SIGNING_ALG,
      rotationIntervalMs: env.GATEWAY_RECEIPT_KEY_ROTATION_HOURS * 3_600_000,
      activationDelayMs: env.GATEWAY_RECEIPT_KEY_ACTIVATION_DELAY_SECONDS * 1000,
      maxTokenLifetimeMs: env.GATEWAY_RECEIPT_TTL_SECONDS * 1000,
      sealedRecordId: receiptKeyRecordId,
    });
    await receiptKeys.start();
    const receiptKeyRotation = new ReceiptKeyRotation(receiptKeys, deps.publisher.auditSink(gatewayAudit), deps.publisher);
    const records = await GatewayRecords.open(deps.store);
    const policyFor = async (tenant: TenantId, gateway: string) => {
      try {
        return await bus.request(policyForGatewayEndpoint, { tenant, gateway });
      } catch (error) {
        if (noResponders(error)) throw new NoPolicyService('no policy service answers', { cause: error });
        throw error;
      }
    };
    const registry = new GatewayRegistry(records, {
      mcpBaseUrl: `${publicUrl}/mcp`,
      openKey: (tenant, gateway, sealed) => JSON.parse(cipher.openString(sealed, sealId(tenant, gateway)).toString('utf8')) as JWK,
      maxAgeMs: 30_000,
      policyFor,
      log: logger,
    });
    const workloadToken = async (tenant: TenantId, workload: string, privateJwk: JWK) => {
      const clientAssertion = await signClientAssertion({ workload, privateJwk, audience: env.WAT_ISSUER });
      return bus.request(tokenForWorkloadEndpoint, { tenant, workload, clientAssertion });
    };
    const credentials = new TargetCredentials({
      workloadToken,
      userWorkloadToken: async (tenant, workload, privateJwk, userToken) =>
        bus.request(tokenForJwtEndpoint, { tenant, workload, userToken, clientAssertion: await signClientAssertion({ workload, privateJwk, audience: env.WAT_ISSUER }) }),
      apiKey: async (tenant, workloadToken, provider) => (await bus.request(apiKeyEndpoint, { tenant, workloadToken, provider })).apiKey,
      oauth2Token: (tenant, workloadToken, request) => bus.request(oauth2TokenEndpoint, { tenant, workloadToken, ...request }),
    });
    const inbound = new InboundAuthentication((tenant, workload, token, resource) => bus.request(authorizeEndpoint, { tenant, workload, token, resource }), {
      cacheMs: env.GATEWAY_PRINCIPAL_CACHE_SECONDS * 1000,
    });
    const resyncs = new SingleFlight<unknown>();
    const markings = new SingleFlight<void>();
    const mcp = new UpstreamMcp({
      maxResultBytes: env.GATEWAY_MAX_RESULT_BYTES,
      version: VERSION,
      // A target that announces new tools is discovered again (once, however often it announces meanwhile).
      onToolsChanged: ({ tenant, gateway, target }) =>
        void resyncs
          .run(`${tenant}/${gateway}/${target}`, () => administration.syncAnnounced(tenant as TenantId, gateway, target, 'tools/list_changed'))
          .catch((err: unknown) => logger.warn({ err, gateway, target }, 'could not discover the tools of a target that announced a change')),
    });
    const upstream = new Upstreams(mcp, new OpenApiTargets({ maxResultBytes: env.GATEWAY_MAX_RESULT_BYTES }));
    const audit = deps.publisher.auditSink(gatewayAudit);
    if (!env.GATEWAY_AUDIT_SALT) logger.warn('GATEWAY_AUDIT_SALT is not set: argument digests are salted per process (set it when running replicas)');
    const interceptors = new Interceptors(askInterceptor(deps.nc), logger);
    const decisionLog = await openDecisionLog(env, deps.nc, logger);
    const approvalDecisions = new ApprovalDecisions();
    const heldCalls = new HeldCalls(
      { consume: (tenant, digest) => bus.request(approvalConsumeEndpoint, { tenant, digest }), request: (request) => bus.request(approvalRequestEndpoint, request), decisions: approvalDecisions },
      { consentPublicUrl: env.CONSENT_PUBLIC_URL, waitMs: env.GATEWAY_APPROVAL_WAIT_SECONDS * 1000 },
    );
    const calls = new ToolCall(credentials, upstream, interceptors, audit, validatorOf, {
      ...(decisionLog ? { decisionLog } : {}),
      heldCalls,
      auditSalt: env.GATEWAY_AUDIT_SALT ? Buffer.from(env.GATEWAY_AUDIT_SALT, 'base64url') : randomBytes(32),
      maxResultBytes: env.GATEWAY_MAX_RESULT_BYTES,
      receipts: new ToolCallReceipts(receiptKeys, { lifetimeSeconds: env.GATEWAY_RECEIPT_TTL_SECONDS }),
      // `administration` is made below; a call only reports once the gateway serves.
      onUnreachable: (gateway, target) =>
        void markings
          .run(`${gateway.tenant}/${gateway.name}/${target}`, () => administration.markUnreachable(gateway.tenant, gateway.name, target))
          .catch((err: unknown) => logger.warn({ err, gateway: gateway.name, target }, 'could not mark a target that a call could not reach')),
    });
    const administration = new GatewayAdministration({
      records,
      registry,
      credentials,
      upstream,
      inbound,
      audit,
      events: deps.publisher,
      mcpBaseUrl: `${publicUrl}/mcp`,
      sealKey: (tenant, gateway, privateJwk) => cipher.sealToString(JSON.stringify(privateJwk), sealId(tenant, gateway)),
      checkKey: (tenant, workload, privateJwk) => assertKeyAccepted(workload, () => workloadToken(tenant, workload, privateJwk)),
      policyFit: new PolicyFit(policyFor, logger),
    });
    const changes = [
      onEvent(deps.nc, gatewayChangedEvent, 'all-tenants', (event) => registry.forget(event.tenant, event.data.gateway), logger),
      onEvent(deps.nc, policyChangedEvent, 'all-tenants', (event) => registry.forget(event.tenant, event.data.gateway), logger),
      onEvent(deps.nc, receiptKeysChangedEvent, { tenant: SYSTEM_TENANT }, () => receiptKeyRotation.reload(), logger),
      onEvent(deps.nc, approvalDecidedEvent, 'all-tenants', (event) => approvalDecisions.decided(event.tenant, event.data.id), logger),
    ];
    const http = new McpHttpServer(registry, inbound, new ToolListing(logger), calls, {
      publicUrl,
      allowedOrigins: env.GATEWAY_ALLOWED_ORIGINS,
      maxRequestBytes: env.GATEWAY_MAX_REQUEST_BYTES,
      maxSessions: env.GATEWAY_MAX_SESSIONS,
      sessionIdleMs: env.GATEWAY_SESSION_IDLE_SECONDS * 1000,
      version: VERSION,
      logger,
      receiptKeys: () => receiptKeyRotation.jwks(),
      approvalWaits: env.GATEWAY_APPROVAL_WAIT_SECONDS > 0,
    });
    const httpUrl = env.GATEWAY_HTTP_PORT > 0 ? await http.listen(env.GATEWAY_HTTP_PORT, env.GATEWAY_HTTP_HOST) : undefined;
    logger.info({ http: httpUrl, publicUrl, masterKeys: master.source }, 'gateway ready');
    const gateway = new Gateway(administration, http, httpUrl, mcp, changes, decisionLog);
    gateway.#receiptKeyTimer = setInterval(
      () => void receiptKeyRotation.rotateIfDue().catch((err: unknown) => logger.warn({ err }, 'could not rotate or reload the receipt signing keys; will retry')),
      RECEIPT_KEY_HOUSEKEEPING_MS,
    );
    gateway.#receiptKeyTimer.unref();
    if (env.GATEWAY_UNREACHABLE_RETRY_SECONDS > 0) {
      let retrying = false;
      gateway.#retryTimer = setInterval(() => {
        if (retrying) return;
        retrying = true;
        void administration
          .retryUnreachable(registry.loaded())
          .then(({ recovered, refused }) => {
            if (recovered.length > 0) logger.info({ targets: recovered }, 'targets that could not be reached answer again');
            // Reachable again but not taken: left out of every list until an administrator changes something.
            for (const { target, code, message } of refused) logger.warn({ target, code, reason: message }, 'a target that could not be reached answers again, but its tools were refused; it stays out of every list');
          })
          .catch((err: unknown) => logger.warn({ err }, 'could not retry the targets that could not be reached'))
          .finally(() => (retrying = false));
      }, env.GATEWAY_UNREACHABLE_RETRY_SECONDS * 1000);
      gateway.#retryTimer.unref();
    }
    return gateway;
  }

  async onModuleDestroy(): Promise<void> {
    clearInterval(this.#receiptKeyTimer);
    clearInterval(this.#retryTimer);
    for (const subscription of this.changes) subscription.unsubscribe();
    await this.http.close();
    await this.upstream.close();
    // The entries of the last calls, while the bus is still there.
    await this.decisionLog?.drain();
  }
}

/** An interceptor is asked with a plain NATS request (JSON in, JSON out), with the call's trace context. */
function askInterceptor(nc: NatsConnection): AskInterceptor {
  return async (subject, call, timeoutMs) => {
    const headers = natsHeaders();
    injectTraceContext(context.active(), headers);
    const reply = await nc.request(subject, JSON.stringify(call), { timeout: timeoutMs, headers });
    return reply.json();
  };
}

/**
 * The decision log, sealed with its own key ring (shared with the policy service, which opens it
 * for replay and explain); none when its retention is 0.
 */
async function openDecisionLog(env: GatewayEnv, nc: NatsConnection, logger: Logger): Promise<DecisionLog | undefined> {
  if (env.GATEWAY_DECISION_LOG_RETENTION_DAYS === 0) return undefined;
  const keys = await loadDecisionLogKeys({ mode: env.MANDATE_MODE, dataDir: env.MANDATE_DATA_DIR, keysJson: env.MANDATE_DECISION_LOG_KEYS, keyFile: env.MANDATE_DECISION_LOG_KEY_FILE });
  const cipher = new EnvelopeCipher(keys.ring);
  const stream = await DecisionLogStream.open(nc, env.GATEWAY_DECISION_LOG_RETENTION_DAYS, env.MANDATE_MODE === 'production' ? 3 : 1);
  logger.info({ retentionDays: env.GATEWAY_DECISION_LOG_RETENTION_DAYS, keys: keys.source }, 'decision log on');
  return new DecisionLog({
    seal: (plaintext, sealId) => cipher.sealToString(plaintext, sealId),
    publish: (entry) => stream.publish(entry),
    dropped: (reason, err) => logger.warn({ reason, err }, 'a decision log entry was not written (the audit record of the call was)'),
  });
}

function noResponders(error: unknown): boolean {
  const cause = error instanceof Error ? error.cause : undefined;
  return cause instanceof natsErrors.NoRespondersError || (cause instanceof natsErrors.RequestError && cause.isNoResponders());
}

/**
 * A compiled input schema, in an Ajv of its own: Ajv keeps every schema it compiled (and answers a
 * `$id` it saw once with that schema for good), so one shared instance would grow with every
 * reload and let one target's `$id` stand for another's. The tool call keeps these bounded.
 */
function validatorOf(schema: Record<string, unknown>) {
  const { $id: _id, ...withoutId } = schema;
  return new AjvJsonSchemaValidator().getValidator(withoutId as Parameters<AjvJsonSchemaValidator['getValidator']>[0]);
}
