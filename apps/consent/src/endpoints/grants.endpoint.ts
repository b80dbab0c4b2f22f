import { Controller, Inject } from '@nestjs/common';
import { MessagePattern, Payload } from '@nestjs/microservices';
import { grantCheckEndpoint, grantListEndpoint, grantRevokeEndpoint, type ParsedRequestOf, type ResponseOf } from '@mandate/contracts';
import { Consent } from '../consent.assembly.js';

/** Grants over NATS: check, list, revoke (the vault stores them; see libs/contracts/src/grants.ts). */
@Controller()
export class GrantsEndpoint {
  constructor(@Inject(Consent) private readonly consent: Consent) {}

  @MessagePattern(grantCheckEndpoint.subject)
  check(@Payload() request: ParsedRequestOf<typeof grantCheckEndpoint>): Promise<ResponseOf<typeof grantCheckEndpoint>> {
    return this.consent.ports.checkGrant(request);
  }

  @MessagePattern(grantListEndpoint.subject)
  async list(@Payload() request: ParsedRequestOf<typeof grantListEndpoint>): Promise<ResponseOf<typeof grantListEndpoint>> {
    const { tenant, user, workload } = request;
    return { items: await this.consent.ports.listGrants(tenant, { ...(user ? { user } : {}), ...(workload ? { workload } : {}) }) };
  }

  @MessagePattern(grantRevokeEndpoint.subject)
  revoke(@Payload() request: ParsedRequestOf<typeof grantRevokeEndpoint>): Promise<ResponseOf<typeof grantRevokeEndpoint>> {
    return this.consent.ports.revokeGrants(request);
  }
}
