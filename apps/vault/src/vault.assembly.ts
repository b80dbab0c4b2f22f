import { randomUUID } from 'node:crypto';
import { onEvent, type BusClient, type JetStreamPublisher } from '@mandate/bus';
import type { NatsConnection, Subscription } from '@nats-io/transport-node';
import { providerChangedEvent, vaultAudit, workloadGetEndpoint, type TenantId } from '@mandate/contracts';
import { EnvelopeCipher, loadMasterKeys } from '@mandate/crypto';
import { TokenBucket } from '@mandate/rate-limit';
import { ExpirySweeper, type DocumentStore } from '@mandate/store';
import type { Logger } from '@mandate/telemetry';
import { jwksOverNats, WatVerifier } from '@mandate/wat';
import type { VaultEnv } from './config.js';
import { ApiKeyRelease } from './domain/api-key-release.js';
import { ConsentCeremony } from './domain/consent-ceremony.js';
import { ConsentSessions } from './domain/consent-sessions.js';
import { GrantAdministration } from './domain/grant-administration.js';
import { GrantLedger } from './domain/grants.js';
import { MachineTokens } from './domain/machine-tokens.js';
import { OAuthClients } from './domain/oauth-clients.js';
import { ProactiveRefresh } from './domain/proactive-refresh.js';
import { ProviderAdministration } from './domain/provider-administration.js';
import { ProviderRegistry } from './domain/providers.js';
import { ReleaseGate } from './domain/release-gate.js';
import { TokenRelease } from './domain/token-release.js';
import { TokenRevocation } from './domain/token-revocation.js';
import { UpstreamRefresh } from './domain/upstream-refresh.js';
import { UserTokens } from './domain/user-tokens.js';
import { openVaultRepositories } from './store/repositories.js';

export interface VaultDependencies {
  env: VaultEnv;
  nc: NatsConnection;
  bus: BusClient;
  store: DocumentStore;
  publisher: JetStreamPublisher;
  logger: Logger;
}

const PROACTIVE_REFRESH_INTERVAL_MS = 30_000;

/** The vault's use cases wired together, and what keeps them going: provider events, the proactive refresh, the expiry sweep. */
export class Vault {
  #timer: NodeJS.Timeout | undefined;
  #providerEvents: Subscription | undefined;
  #sweeper: ExpirySweeper | undefined;

  private constructor(readonly useCases: readonly object[]) {}

  static async assemble(deps: VaultDependencies): Promise<Vault> {
    const { env } = deps;
    const master = await loadMasterKeys({ mode: env.MANDATE_MODE, dataDir: env.MANDATE_DATA_DIR, keysJson: env.MANDATE_MASTER_KEYS, keyFile: env.MANDATE_MASTER_KEY_FILE });
    const cipher = new EnvelopeCipher(master.ring);
    const stores = await openVaultRepositories(deps.store, { holder: randomUUID(), ttlMs: env.VAULT_LEASE_TTL_SECONDS * 1000 });
    const audit = deps.publisher.auditSink(vaultAudit);
    const wats = new WatVerifier({ jwks: jwksOverNats(deps.bus), issuer: env.WAT_ISSUER });
    const providers = new ProviderRegistry(stores.providers, cipher);
    const clients = new OAuthClients(env.VAULT_PROVIDER_TIMEOUT_MS);
    const grants = new GrantLedger(stores.grants);
    const sessions = new ConsentSessions(stores.sessions, env.CONSENT_BASE_URL);
    const machineTokens = new MachineTokens(stores.machineTokens, stores.fetchLeases, cipher, {
      refreshMarginMs: env.VAULT_REFRESH_MARGIN_SECONDS * 1000,
      unknownLifetimeMs: 60_000,
      waitMs: env.VAULT_REFRESH_WAIT_MS,
    });
    const userTokens = new UserTokens(stores.userTokens, stores.refreshLeases, cipher, { refreshMarginMs: env.VAULT_REFRESH_MARGIN_SECONDS * 1000, waitMs: env.VAULT_REFRESH_WAIT_MS });
    const upstream = new UpstreamRefresh(providers, clients, audit, deps.publisher);
    const proactive = new ProactiveRefresh(providers, userTokens, upstream);
    const revocation = new TokenRevocation(providers, userTokens, clients, audit);
    const gate = new ReleaseGate(wats, new TokenBucket(env.VAULT_RATE_LIMIT_PER_SECOND, env.VAULT_RATE_LIMIT_BURST), providers);
    const returnUrlsOf = async (tenant: TenantId, workload: string) => (await deps.bus.request(workloadGetEndpoint, { tenant, name: workload })).allowedReturnUrls;
    const vault = new Vault([
      new TokenRelease({ gate, providers, clients, machineTokens, userTokens, grants, sessions, upstream, recentUse: proactive, audit, returnUrlsOf }),
      new ApiKeyRelease(gate, providers, audit),
      revocation,
      new ProviderAdministration({ repository: stores.providers, registry: providers, machineTokens, grants, revocation, audit, events: deps.publisher }),
      sessions,
      new ConsentCeremony({ wats, sessions, providers, clients, userTokens, grants, revocation, audit, events: deps.publisher }),
      new GrantAdministration(grants, revocation, audit),
      proactive,
    ]);
    vault.#sweeper = new ExpirySweeper(stores.expiring, { intervalMs: env.MANDATE_SWEEP_INTERVAL_SECONDS * 1000, log: deps.logger }).start();
    // A provider changed on any replica: drop what this one cached of it, at once.
    vault.#providerEvents = onEvent(
      deps.nc,
      providerChangedEvent,
      'all-tenants',
      ({ tenant, data }) => {
        providers.evict(tenant, data.name);
        clients.evict(tenant, data.name);
        machineTokens.forgetInMemory(tenant as TenantId, data.name);
      },
      deps.logger,
    );
    if (env.VAULT_PROACTIVE_REFRESH_SECONDS > 0) {
      vault.#timer = setInterval(() => {
        void proactive.refreshAhead(env.VAULT_PROACTIVE_REFRESH_SECONDS * 1000).catch((err: unknown) => deps.logger.warn({ err }, 'proactive refresh failed; will retry'));
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
