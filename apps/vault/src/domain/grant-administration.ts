import type { grantCheckEndpoint, grantListEndpoint, grantRevokeEndpoint, ParsedRequestOf, ResponseOf } from '@mandate/contracts';
import type { GrantLedger } from './grants.js';
import type { VaultAuditSink } from './release-gate.js';
import type { TokenRevocation } from './token-revocation.js';

/** The grants of the consent ledger as people and operators see them: check, list, revoke. */
export class GrantAdministration {
  constructor(
    private readonly grants: GrantLedger,
    private readonly revocation: TokenRevocation,
    private readonly audit: VaultAuditSink,
  ) {}

  async check(request: ParsedRequestOf<typeof grantCheckEndpoint>): Promise<ResponseOf<typeof grantCheckEndpoint>> {
    const { missing } = await this.grants.check(request.tenant, request.workload, request.provider, request.user, request.scopes);
    return { granted: missing.length === 0, missing };
  }

  async list(request: ParsedRequestOf<typeof grantListEndpoint>): Promise<ResponseOf<typeof grantListEndpoint>> {
    return { items: await this.grants.list(request.tenant, { user: request.user, workload: request.workload }) };
  }

  /**
   * Revokes a person's grants to a workload. A provider's stored tokens go too (deleted, and
   * revoked upstream) once no other workload holds a grant of this person for it: tokens are kept
   * per person and provider, not per workload.
   */
  async revoke(request: ParsedRequestOf<typeof grantRevokeEndpoint>): Promise<ResponseOf<typeof grantRevokeEndpoint>> {
    const { tenant, user, workload, provider, actor } = request;
    const providers = await this.grants.revoke(tenant, user, workload, provider);
    const tokensRevoked: string[] = [];
    for (const name of providers) {
      if (await this.grants.anyFor(tenant, user, name)) continue;
      await this.revocation.revoke(tenant, name, user, actor);
      tokensRevoked.push(name);
    }
    await this.audit.audit({
      tenant,
      action: 'grant-revoke',
      outcome: 'succeeded',
      actor: { workload, user, ...(actor ? { admin: actor } : {}) },
      target: { ...(provider ? { provider } : {}) },
      details: { revoked: providers.length, tokensRevoked },
    });
    return { revoked: providers.length, tokensRevoked };
  }
}
