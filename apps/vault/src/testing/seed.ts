import type { NatsConnection } from '@nats-io/transport-node';
import { MandateError, tenantId, type UserRef } from '@mandate/contracts';
import { EnvelopeCipher, loadMasterKeys } from '@mandate/crypto';
import { JetStreamKvStore } from '@mandate/store';
import { vaultEnvSchema } from '../config.js';
import { ConsentSessions } from '../domain/consent-sessions.js';
import { GrantLedger } from '../domain/grants.js';
import { UserTokens } from '../domain/user-tokens.js';
import { openVaultRepositories } from '../store/repositories.js';

/**
 * Puts what a test needs into the vault's store, as the vault itself writes it (its own
 * repositories, its master keys): a user's tokens as if they had consented, a grant. Tests seed
 * through the store instead of through API operations that production would have to carry.
 */
export class VaultSeed {
  private constructor(
    private readonly tokens: UserTokens,
    private readonly grants: GrantLedger,
    private readonly sessions: ConsentSessions,
  ) {}

  /** The store of a running system (its bus, and the environment its vault was started with). */
  static async open(system: { nc: NatsConnection; env: Record<string, string> }): Promise<VaultSeed> {
    const env = vaultEnvSchema.parse(system.env);
    const master = await loadMasterKeys({ mode: env.MANDATE_MODE, dataDir: env.MANDATE_DATA_DIR, keysJson: env.MANDATE_MASTER_KEYS, keyFile: env.MANDATE_MASTER_KEY_FILE });
    const stores = await openVaultRepositories(new JetStreamKvStore(system.nc), { holder: 'seed', ttlMs: 1_000 });
    const cipher = new EnvelopeCipher(master.ring);
    return new VaultSeed(
      new UserTokens(stores.userTokens, stores.refreshLeases, cipher, { refreshMarginMs: 0, waitMs: 1_000 }),
      new GrantLedger(stores.grants),
      new ConsentSessions(stores.sessions, env.CONSENT_BASE_URL),
    );
  }

  /** A user's tokens for a provider and scope set; `expiresIn` seconds from now (0: already stale). */
  async userTokens(tenant: string, provider: string, user: UserRef, scopes: string[], token: { accessToken: string; refreshToken?: string; expiresIn?: number; tokenType?: string }): Promise<void> {
    const { accessToken, refreshToken, expiresIn, tokenType = 'bearer' } = token;
    await this.tokens.put(tenantId(tenant), provider, user, scopes, {
      accessToken,
      tokenType,
      ...(refreshToken ? { refreshToken } : {}),
      ...(expiresIn !== undefined ? { expiresAt: Date.now() + expiresIn * 1000 } : {}),
    });
  }

  /**
   * A consent session as the person's approval leaves it: completed, the provider's tokens stored
   * under the session's scopes, the grant recorded (until revoked unless `expiresAt`).
   */
  async consented(tenant: string, sessionId: string, token: { accessToken: string; refreshToken?: string; expiresIn?: number }, expiresAt?: string): Promise<void> {
    const session = await this.sessions.transition(tenantId(tenant), sessionId, (current, now) => current.complete(now));
    const { workload, provider, user, scopes, newScopes } = session.document;
    await this.userTokens(tenant, provider, user, scopes, token);
    await this.grant(tenant, { workload, provider, user, scopes: newScopes ?? scopes, ...(expiresAt ? { expiresAt } : {}) });
  }

  /** A person's grant to a workload, until `expiresAt` (ISO) or revoked. */
  async grant(tenant: string, grant: { workload: string; provider: string; user: UserRef; scopes: string[]; expiresAt?: string }): Promise<void> {
    if (grant.scopes.length === 0) throw new MandateError('invalid_request', 'a grant needs at least one scope');
    await this.grants.record(tenantId(tenant), grant.workload, grant.provider, grant.user, grant.scopes, grant.expiresAt ? { expiresAt: Date.parse(grant.expiresAt) } : {});
  }
}
