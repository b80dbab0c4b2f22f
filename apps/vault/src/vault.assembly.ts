import { randomUUID } from 'node:crypto';
import type { BusClient, JetStreamPublisher } from '@mandate/bus';
import type { NatsConnection, Subscription } from '@nats-io/transport-node';
import { eventSubject, PROVIDER_CHANGED_EVENT, VAULT_SERVICE, workloadGetEndpoint, type TenantId } from '@mandate/contracts';
import { EnvelopeCipher, loadMasterKeys } from '@mandate/crypto';
import { ExpirySweeper, type DocumentStore } from '@mandate/store';
import type { Logger } from '@mandate/telemetry';
import { jwksOverNats, WatVerifier } from '@mandate/wat';
import type { VaultEnv } from './config.js';
import { ConsentSessions } from './domain/consent-sessions.js';
import { Grants } from './domain/grants.js';
import { MachineTokens } from './domain/machine-tokens.js';
import { ProviderRegistry } from './domain/providers.js';
import { RateLimiter } from './domain/rate-limiter.js';
import { UserTokens, type UserTokensOptions } from './domain/user-tokens.js';
import { VaultService } from './domain/vault-service.js';
import { openVaultCollections } from './store/vault-records.js';

export interface VaultDependencies {
  env: VaultEnv;
  nc: NatsConnection;
  bus: BusClient;
  store: DocumentStore;
  publisher: JetStreamPublisher;
  logger: Logger;
  /** Test seam for the crash-between-refresh-and-store case. */
  afterUpstreamRefresh?: UserTokensOptions['afterUpstreamRefresh'];
}

const PROACTIVE_REFRESH_INTERVAL_MS = 30_000;

/** The vault's parts wired together, and the background refresh of recently used tokens. */
export class Vault {
  #timer: NodeJS.Timeout | undefined;
  #providerEvents: Subscription | undefined;
  #sweeper: ExpirySweeper | undefined;

  private constructor(
    readonly service: VaultService,
    readonly providers: ProviderRegistry,
    readonly grants: Grants,
    readonly machineTokens: MachineTokens,
    readonly sessions: ConsentSessions,
  ) {}

  static async assemble(deps: VaultDependencies): Promise<Vault> {
    const { env } = deps;
    const master = await loadMasterKeys({ mode: env.MANDATE_MODE, dataDir: env.MANDATE_DATA_DIR, keysJson: env.MANDATE_MASTER_KEYS, keyFile: env.MANDATE_MASTER_KEY_FILE });
    const cipher = new EnvelopeCipher(master.ring);
    const collections = await openVaultCollections(deps.store);
    const providers = new ProviderRegistry(collections.providers, cipher, deps.publisher);
    const grants = new Grants(collections.grants);
    const instanceId = randomUUID();
    const machineTokens = new MachineTokens(collections.machineTokens, collections.leases, cipher, {
      refreshMarginMs: env.VAULT_REFRESH_MARGIN_SECONDS * 1000,
      unknownLifetimeMs: 60_000,
      instanceId,
      leaseTtlMs: env.VAULT_LEASE_TTL_SECONDS * 1000,
      waitMs: env.VAULT_REFRESH_WAIT_MS,
    });
    const userTokens = new UserTokens(collections.userTokens, collections.leases, cipher, {
      instanceId,
      refreshMarginMs: env.VAULT_REFRESH_MARGIN_SECONDS * 1000,
      leaseTtlMs: env.VAULT_LEASE_TTL_SECONDS * 1000,
      waitMs: env.VAULT_REFRESH_WAIT_MS,
      ...(deps.afterUpstreamRefresh ? { afterUpstreamRefresh: deps.afterUpstreamRefresh } : {}),
    });
    const sessions = new ConsentSessions(collections.sessions, env.CONSENT_BASE_URL);
    const service = new VaultService({
      wats: new WatVerifier({ jwks: jwksOverNats(deps.bus), issuer: env.WAT_ISSUER }),
      providers,
      machineTokens,
      userTokens,
      grants,
      sessions,
      limiter: new RateLimiter(env.VAULT_RATE_LIMIT_PER_SECOND, env.VAULT_RATE_LIMIT_BURST),
      audit: deps.publisher,
      events: deps.publisher,
      returnUrlsOf: async (tenant, workload) => (await deps.bus.request(workloadGetEndpoint, { tenant, name: workload })).allowedReturnUrls,
      providerTimeoutMs: env.VAULT_PROVIDER_TIMEOUT_MS,
    });
    const vault = new Vault(service, providers, grants, machineTokens, sessions);
    vault.#sweeper = new ExpirySweeper(
      [
        { name: 'consent-sessions', collection: collections.sessions },
        { name: 'grants', collection: collections.grants },
        { name: 'machine-tokens', collection: collections.machineTokens },
        { name: 'refresh-leases', collection: collections.leases },
      ],
      { intervalMs: env.MANDATE_SWEEP_INTERVAL_SECONDS * 1000, log: deps.logger },
    ).start();
    // A provider changed on any replica: drop what this one cached of it, at once.
    vault.#providerEvents = deps.nc.subscribe(eventSubject(VAULT_SERVICE, PROVIDER_CHANGED_EVENT), {
      callback: (_error, msg) => {
        try {
          const event = msg.json<{ tenant: string; data: { name: string } }>();
          providers.evict(event.tenant, event.data.name);
          machineTokens.forgetInMemory(event.tenant as TenantId, event.data.name);
        } catch {
          deps.logger.warn('ignored a provider-changed event that is not one');
        }
      },
    });
    if (env.VAULT_PROACTIVE_REFRESH_SECONDS > 0) {
      vault.#timer = setInterval(() => {
        void service.refreshAhead(env.VAULT_PROACTIVE_REFRESH_SECONDS * 1000).catch((err: unknown) => deps.logger.warn({ err }, 'proactive refresh failed; will retry'));
      }, PROACTIVE_REFRESH_INTERVAL_MS);
      vault.#timer.unref();
    }
    deps.logger.info({ masterKeys: master.source }, 'vault ready');
    return vault;
  }

  async onModuleDestroy(): Promise<void> {
    clearInterval(this.#timer);
    this.#providerEvents?.unsubscribe();
    await this.#sweeper?.stop();
  }

  /** Removes expired records now (the timer does it every MANDATE_SWEEP_INTERVAL_SECONDS). */
  sweepExpired(): Promise<Record<string, number>> {
    return this.#sweeper!.sweep();
  }
}
