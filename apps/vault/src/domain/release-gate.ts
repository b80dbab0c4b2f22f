import { MandateError, type AuditActionOf, type AuditSink, type TenantId, type vaultAudit, type WatClaims } from '@mandate/contracts';
import type { TokenBucket } from '@mandate/rate-limit';
import type { StoredDocument } from '@mandate/store';
import type { ProviderDocument } from '../store/vault-records.js';
import type { ProviderRegistry } from './providers.js';

/** Verifies a WAT for a tenant (libs/wat `WatVerifier` in production). */
export interface WatCheck {
  verify(token: string, expected: { tenant: string; requireUser?: boolean }): Promise<WatClaims>;
}

export type VaultAuditSink = AuditSink<AuditActionOf<typeof vaultAudit>>;

/**
 * What every credential release checks first: a WAT opens the vault; the workload is held to its
 * rate; the provider must exist, be of the kind asked for and list the workload.
 */
export class ReleaseGate {
  constructor(
    private readonly wats: WatCheck,
    private readonly limiter: TokenBucket,
    private readonly providers: ProviderRegistry,
  ) {}

  verify(tenant: TenantId, workloadToken: string, requireUser = false): Promise<WatClaims> {
    return this.wats.verify(workloadToken, { tenant, requireUser });
  }

  async admit(tenant: TenantId, claims: WatClaims, name: string, kind: ProviderDocument['kind']): Promise<StoredDocument<ProviderDocument>> {
    if (!this.limiter.take(`${tenant}\n${claims.workload}`)) {
      throw new MandateError('rate_limited', `workload ${claims.workload} is sending too many requests; slow down`);
    }
    const provider = await this.providers.get(tenant, name);
    if (!provider.value.allowedWorkloads.includes(claims.workload)) {
      throw new MandateError('access_denied', `workload ${claims.workload} may not use provider ${name}`, { details: { reason: 'workload_not_allowed' } });
    }
    if (provider.value.kind !== kind) {
      throw new MandateError('invalid_request', `provider ${name} is an ${provider.value.kind} provider`, { issues: [{ path: 'provider', message: `not an ${kind} provider` }] });
    }
    return provider;
  }
}

/** Who a release record is about: the workload, and the user it acts for. */
export function actorOf(claims: WatClaims): { workload: string; user?: WatClaims['user'] } {
  return { workload: claims.workload, ...(claims.user ? { user: claims.user } : {}) };
}

export function codeOf(error: unknown): string {
  return error instanceof MandateError ? error.code : 'internal';
}
