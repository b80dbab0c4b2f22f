import type { apiKeyEndpoint, ParsedRequestOf, ResponseOf, WatClaims } from '@mandate/contracts';
import { lazyInstruments } from '@mandate/telemetry';
import type { ProviderRegistry } from './providers.js';
import { actorOf, codeOf, type ReleaseGate, type VaultAuditSink } from './release-gate.js';

const instruments = lazyInstruments('@mandate/vault', (meter) => ({
  apiKeyFetches: meter.createCounter('mandate.vault.api_key_fetches', { description: 'api-key requests by provider and outcome' }),
}));

/** An API key, to a workload the provider lists; every release and refusal audited, never the key. */
export class ApiKeyRelease {
  constructor(
    private readonly gate: ReleaseGate,
    private readonly providers: ProviderRegistry,
    private readonly audit: VaultAuditSink,
  ) {}

  async release(request: ParsedRequestOf<typeof apiKeyEndpoint>): Promise<ResponseOf<typeof apiKeyEndpoint>> {
    const { tenant, provider: name } = request;
    let claims: WatClaims | undefined;
    try {
      claims = await this.gate.verify(tenant, request.workloadToken);
      const provider = await this.gate.admit(tenant, claims, name, 'api-key');
      const apiKey = this.providers.apiKey(tenant, provider.value);
      instruments().apiKeyFetches.add(1, { provider: name, outcome: 'success' });
      await this.audit.audit({ tenant, action: 'api-key-release', outcome: 'succeeded', actor: actorOf(claims), target: { provider: name } });
      return { apiKey };
    } catch (error) {
      const code = codeOf(error);
      instruments().apiKeyFetches.add(1, { provider: name, outcome: code === 'rate_limited' ? 'throttled' : 'failure' });
      if (claims) await this.audit.audit({ tenant, action: 'api-key-release', outcome: 'failed', reason: code, actor: actorOf(claims), target: { provider: name } });
      throw error;
    }
  }
}
