import type { BusClient } from '@mandate/bus';
import {
  codeExchangeEndpoint,
  consentSessionFailEndpoint,
  consentSessionGetEndpoint,
  grantListEndpoint,
  grantRevokeEndpoint,
  providerAuthorizationEndpoint,
  workloadGetEndpoint,
  workloadListEndpoint,
  type ParsedRequestOf,
  type RequestOf,
  type TenantId,
  type UserRef,
} from '@mandate/contracts';

/** A workload as the consent page shows it, and the IdP its users sign in at (its authorizer's). */
export interface WorkloadInfo {
  name: string;
  description: string;
  /** Absent when it has no authorizer. */
  discoveryUrl?: string | undefined;
}

/**
 * What the consent pages ask of the rest of Mandate, over NATS: the consent ledger (the vault
 * owns it) and the directory. Every answer comes from its owner; nothing here is kept.
 */
export class MandateLedger {
  constructor(private readonly bus: BusClient) {}

  session(tenant: TenantId, sessionId: string) {
    return this.bus.request(consentSessionGetEndpoint, { tenant, sessionId });
  }

  failSession(tenant: TenantId, sessionId: string, reason: ParsedRequestOf<typeof consentSessionFailEndpoint>['reason']) {
    return this.bus.request(consentSessionFailEndpoint, { tenant, sessionId, reason });
  }

  providerAuthorization(tenant: TenantId, provider: string) {
    return this.bus.request(providerAuthorizationEndpoint, { tenant, provider });
  }

  exchangeCode(request: RequestOf<typeof codeExchangeEndpoint>) {
    return this.bus.request(codeExchangeEndpoint, request);
  }

  async grantsOf(tenant: TenantId, user: UserRef) {
    return (await this.bus.request(grantListEndpoint, { tenant, user })).items;
  }

  revokeGrants(request: RequestOf<typeof grantRevokeEndpoint>) {
    return this.bus.request(grantRevokeEndpoint, request);
  }

  async workload(tenant: TenantId, name: string): Promise<WorkloadInfo> {
    const workload = await this.bus.request(workloadGetEndpoint, { tenant, name });
    return { name: workload.name, description: workload.description, discoveryUrl: workload.authorizer?.discoveryUrl };
  }

  /** The IdPs people of a tenant sign in at: those of its workloads' authorizers. */
  async signInIdps(tenant: TenantId): Promise<string[]> {
    const urls = new Set<string>();
    let cursor: string | undefined;
    do {
      const page = await this.bus.request(workloadListEndpoint, { tenant, limit: 1000, ...(cursor ? { cursor } : {}) });
      for (const workload of page.items) if (workload.authorizer) urls.add(workload.authorizer.discoveryUrl);
      cursor = page.nextCursor;
    } while (cursor);
    return [...urls].sort();
  }
}
