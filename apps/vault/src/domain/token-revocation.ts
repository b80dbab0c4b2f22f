import type { AuditActionOf, AuditSink, TenantId, UserRef, vaultAudit } from '@mandate/contracts';
import type { StoredDocument } from '@mandate/store';
import type { ProviderDocument, SealedUserTokens } from '../store/vault-records.js';
import type { OAuthClients } from './oauth-clients.js';
import type { ProviderRegistry } from './providers.js';
import type { UserTokens } from './user-tokens.js';

export type UpstreamRevocation = 'revoked' | 'not_supported' | 'failed' | 'nothing_to_revoke';

/** Deleting a user's stored tokens, and revoking them at the provider (RFC 7009) where it can. */
export class TokenRevocation {
  constructor(
    private readonly providers: ProviderRegistry,
    private readonly userTokens: UserTokens,
    private readonly clients: OAuthClients,
    private readonly audit: AuditSink<AuditActionOf<typeof vaultAudit>>,
  ) {}

  /** A person's tokens for one provider (the `token-revoke` endpoint, and a revoked grant nobody else holds). */
  async revoke(tenant: TenantId, providerName: string, user: UserRef, actor: string | undefined): Promise<{ deleted: number; upstream: UpstreamRevocation }> {
    const provider = await this.providers.get(tenant, providerName);
    const removed = await this.userTokens.remove(tenant, providerName, user);
    const upstream = removed.length === 0 || provider.value.kind !== 'oauth2' ? 'nothing_to_revoke' : await this.upstream(tenant, provider, removed, { accessTokensToo: true });
    await this.audit.audit({
      tenant,
      action: 'token-revoke',
      outcome: upstream === 'failed' ? 'failed' : 'succeeded',
      actor: { user, admin: actor ?? 'admin-api' },
      target: { provider: providerName },
      details: { deleted: removed.length, upstream },
    });
    return { deleted: removed.length, upstream };
  }

  /** Every user's tokens of a provider that was deleted: revoked upstream (best effort) and deleted; how many. */
  async retire(tenant: TenantId, provider: StoredDocument<ProviderDocument>): Promise<number> {
    const removed = await this.userTokens.remove(tenant, provider.value.name);
    if (removed.length > 0 && provider.value.kind === 'oauth2') await this.upstream(tenant, provider, removed, { ignoreFailures: true });
    return removed.length;
  }

  /**
   * Revokes at the provider: the refresh token ends the whole grant (RFC 7009 2.1); without one,
   * the access token. With `accessTokensToo`, access tokens are tried as well, but only for good
   * measure: some providers cannot revoke self-contained ones, and they expire soon anyway.
   */
  async upstream(tenant: TenantId, provider: StoredDocument<ProviderDocument>, tokens: readonly SealedUserTokens[], options: { accessTokensToo?: boolean; ignoreFailures?: boolean } = {}): Promise<UpstreamRevocation> {
    const client = this.clients.for(tenant, provider);
    const secrets = this.providers.clientSecrets(tenant, provider.value);
    try {
      let supported = true;
      for (const token of tokens) {
        if (!supported && !options.ignoreFailures) break;
        const revoked = client.revoke(token.refreshToken ?? token.accessToken, secrets);
        const ok = await (options.ignoreFailures ? revoked.catch(() => false) : revoked);
        supported &&= ok;
        if (options.accessTokensToo && ok && token.refreshToken) await client.revoke(token.accessToken, secrets).catch(() => undefined);
      }
      return supported ? 'revoked' : 'not_supported';
    } catch {
      return 'failed';
    }
  }
}
