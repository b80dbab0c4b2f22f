import type { NatsConnection, Subscription } from '@nats-io/transport-node';
import { onEvent, type BusClient, type JetStreamPublisher } from '@mandate/bus';
import { authorizerAudit, signingKeysChangedEvent, SYSTEM_TENANT } from '@mandate/contracts';
import { EnvelopeCipher, loadMasterKeys } from '@mandate/crypto';
import { SigningKeyRing } from '@mandate/signing-keys';
import type { DocumentStore } from '@mandate/store';
import type { Logger } from '@mandate/telemetry';
import type { AuthorizerEnv } from './config.js';
import { DirectoryWorkloads } from './clients/directory-workloads.js';
import { IdentityProviders } from './domain/inbound/identity-providers.js';
import { InboundAuthorizer } from './domain/inbound/inbound-authorizer.js';
import { SigningKeyAdministration } from './domain/signing-key-administration.js';
import { TokenService } from './domain/token-service.js';
import { WorkloadAuthentication } from './domain/workload-authentication.js';
import { JwksHttpServer } from './http/jwks-http-server.js';
import { StoreReplayGuard } from './store/assertion-replay-guard.js';
import { openWatSigningKeys, watKeyRecordId } from './store/signing-key-repository.js';

export interface AuthorizerDependencies {
  env: AuthorizerEnv;
  nc: NatsConnection;
  bus: BusClient;
  store: DocumentStore;
  publisher: JetStreamPublisher;
  logger: Logger;
}

const HOUSEKEEPING_INTERVAL_MS = 30_000;
const SWEEP_EVERY = 20;

/**
 * The authorizer's parts wired together, with what keeps them current: the signing key ring is
 * reloaded and rotated when due, seen assertion ids are swept, and a rotation anywhere is
 * announced so every replica reloads at once.
 */
export class Authorizer {
  #timer: NodeJS.Timeout | undefined;
  #rotationEvents: Subscription | undefined;
  #ticks = 0;

  private constructor(
    readonly useCases: readonly [TokenService, SigningKeyAdministration],
    private readonly keys: SigningKeyRing,
    private readonly workloads: DirectoryWorkloads,
    private readonly replayGuard: StoreReplayGuard,
    private readonly http: JwksHttpServer,
    private readonly deps: AuthorizerDependencies,
    readonly jwksUrl: string | undefined,
  ) {}

  static async assemble(deps: AuthorizerDependencies): Promise<Authorizer> {
    const { env } = deps;
    const master = await loadMasterKeys({ mode: env.MANDATE_MODE, dataDir: env.MANDATE_DATA_DIR, keysJson: env.MANDATE_MASTER_KEYS, keyFile: env.MANDATE_MASTER_KEY_FILE });
    const keys = new SigningKeyRing({
      store: await openWatSigningKeys(deps.store),
      cipher: new EnvelopeCipher(master.ring),
      alg: env.WAT_SIGNING_ALG,
      rotationIntervalMs: env.WAT_KEY_ROTATION_HOURS * 3_600_000,
      activationDelayMs: env.WAT_KEY_ACTIVATION_DELAY_SECONDS * 1000,
      maxTokenLifetimeMs: env.WAT_TTL_SECONDS * 1000,
      sealedRecordId: watKeyRecordId,
    });
    await keys.start();
    const replayGuard = await StoreReplayGuard.open(deps.store);
    const workloads = new DirectoryWorkloads(deps.bus, deps.nc, env.WORKLOAD_CACHE_TTL_MS, deps.logger);
    const tokens = new TokenService({
      workloads,
      inbound: new InboundAuthorizer({
        idps: new IdentityProviders({
          fetchTimeoutMs: env.IDP_FETCH_TIMEOUT_MS,
          jwksCooldownMs: env.JWKS_COOLDOWN_SECONDS * 1000,
          discoveryTtlMs: env.IDP_DISCOVERY_TTL_SECONDS * 1000,
        }),
        clockToleranceSeconds: env.CLOCK_TOLERANCE_SECONDS,
        cacheSize: env.VERIFIED_TOKEN_CACHE_SIZE,
      }),
      authentication: new WorkloadAuthentication({ audience: env.WAT_ISSUER, clockToleranceSeconds: env.CLOCK_TOLERANCE_SECONDS, replayGuard }),
      keys,
      audit: deps.publisher.auditSink(authorizerAudit),
      issuer: env.WAT_ISSUER,
      watTtlSeconds: env.WAT_TTL_SECONDS,
      watCacheSize: env.VERIFIED_TOKEN_CACHE_SIZE,
    });
    const http = new JwksHttpServer(() => keys.publicKeys());
    const jwksUrl = env.AUTHORIZER_HTTP_PORT > 0 ? await http.listen(env.AUTHORIZER_HTTP_PORT, env.AUTHORIZER_HTTP_HOST) : undefined;
    const keyAdministration = new SigningKeyAdministration(keys, deps.publisher.auditSink(authorizerAudit), deps.publisher);
    const authorizer = new Authorizer([tokens, keyAdministration], keys, workloads, replayGuard, http, deps, jwksUrl);
    authorizer.#startHousekeeping();
    deps.logger.info({ jwks: jwksUrl, masterKeys: master.source }, 'authorizer ready');
    return authorizer;
  }

  async onModuleDestroy(): Promise<void> {
    clearInterval(this.#timer);
    this.#rotationEvents?.unsubscribe();
    this.workloads.close();
    await this.http.close();
  }

  #startHousekeeping(): void {
    this.#rotationEvents = onEvent(this.deps.nc, signingKeysChangedEvent, { tenant: SYSTEM_TENANT }, () => this.keys.reload(), this.deps.logger);
    this.#timer = setInterval(() => void this.#housekeeping(), HOUSEKEEPING_INTERVAL_MS);
    this.#timer.unref();
  }

  async #housekeeping(): Promise<void> {
    try {
      await this.useCases[1].rotateIfDue();
      if (++this.#ticks % SWEEP_EVERY === 0) await this.replayGuard.sweep();
    } catch (err) {
      this.deps.logger.warn({ err }, 'authorizer housekeeping failed; will retry');
    }
  }
}
