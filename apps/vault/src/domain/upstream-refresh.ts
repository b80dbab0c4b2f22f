import { consentNeededEvent, type EventSink, type TenantId, type UserRef } from '@mandate/contracts';
import type { StoredDocument } from '@mandate/store';
import { lazyInstruments } from '@mandate/telemetry';
import type { ProviderDocument } from '../store/vault-records.js';
import type { TokenSet } from './oauth-client.js';
import type { OAuthClients } from './oauth-clients.js';
import type { ProviderRegistry } from './providers.js';
import type { VaultAuditSink } from './release-gate.js';

const instruments = lazyInstruments('@mandate/vault', (meter) => ({
  refreshes: meter.createCounter('mandate.vault.refreshes', { description: 'upstream refreshes of user tokens by provider and outcome' }),
}));

/** One refresh of a user's token at the provider; a refused refresh token means the person must consent again, and says so. */
export class UpstreamRefresh {
  constructor(
    private readonly providers: ProviderRegistry,
    private readonly clients: OAuthClients,
    private readonly audit: VaultAuditSink,
    private readonly events: EventSink,
  ) {}

  async refresh(tenant: TenantId, provider: StoredDocument<ProviderDocument>, user: UserRef, scopes: string[], refreshToken: string): Promise<TokenSet> {
    const name = provider.value.name;
    try {
      const token = await this.clients.for(tenant, provider).refresh(refreshToken, scopes, this.providers.clientSecrets(tenant, provider.value));
      instruments().refreshes.add(1, { provider: name, outcome: 'success' });
      return token;
    } catch (error) {
      const invalidGrant = error instanceof Error && error.name === 'InvalidGrantError';
      instruments().refreshes.add(1, { provider: name, outcome: invalidGrant ? 'invalid_grant' : 'failure' });
      if (invalidGrant) {
        await this.events.publishEvent(consentNeededEvent, tenant, { provider: name, user, scopes });
        await this.audit.audit({ tenant, action: 'token-refresh', outcome: 'failed', reason: 'invalid_grant', actor: { user }, target: { provider: name, scopes } });
      }
      throw error;
    }
  }
}
