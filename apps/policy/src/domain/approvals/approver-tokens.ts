import { decodeJwt } from 'jose';
import type { ResponseOf, TenantId, VerifiedApprover, authorizeEndpoint } from '@mandate/contracts';

export interface ApproverTokenPorts {
  /** The gateway's own workload (whose inbound authorizer config its users' tokens pass) and its resource URL. */
  gatewayOf(tenant: TenantId, gateway: string): Promise<{ workload: string; resourceUrl: string }>;
  /** The authorizer's `authorize`: the token checked against a workload's inbound config. */
  authorize(tenant: TenantId, workload: string, token: string): Promise<ResponseOf<typeof authorizeEndpoint>>;
}

/** Why a token names no one who may decide: said in the refusal's audit record, never with the token. */
export class ApproverTokenRefused extends Error {}

/**
 * Who an `approverToken` is: a token of the gateway's IdP, for the gateway, checked by the
 * authorizer against the gateway workload's inbound config exactly as an MCP request's token is
 * (then its audience must name the gateway's resource URL, RFC 8707). Groups and roles come from
 * its verified `groups` and `roles` claims.
 */
export class ApproverTokens {
  constructor(private readonly ports: ApproverTokenPorts) {}

  async verify(tenant: TenantId, gateway: string, token: string): Promise<VerifiedApprover> {
    const { workload, resourceUrl } = await this.ports.gatewayOf(tenant, gateway);
    const answer = await this.ports.authorize(tenant, workload, token);
    if (!answer.allowed) throw new ApproverTokenRefused(`the approver's token is not accepted by gateway ${gateway}: ${answer.reason}`);
    // The authorizer has verified the signature; what is decoded here is what it verified.
    const claims = decodeJwt(token);
    const audiences = Array.isArray(claims.aud) ? claims.aud : [claims.aud];
    if (!audiences.includes(resourceUrl)) throw new ApproverTokenRefused(`the approver's token is not for gateway ${gateway} (${resourceUrl})`);
    const displayName = [claims['name'], claims['email']].find((value): value is string => typeof value === 'string' && value.length > 0 && value.length <= 256);
    return { iss: answer.user.iss, sub: answer.user.sub, groups: strings(claims['groups']), roles: strings(claims['roles']), ...(displayName ? { displayName } : {}) };
  }
}

function strings(claim: unknown): string[] {
  return Array.isArray(claim) ? claim.filter((value): value is string => typeof value === 'string' && value.length <= 256).slice(0, 256) : [];
}
