import { Controller, Inject } from '@nestjs/common';
import { MessagePattern, Payload } from '@nestjs/microservices';
import {
  auditDigestEndpoint,
  auditKeysEndpoint,
  auditQueryEndpoint,
  auditVerifyEndpoint,
  type EndpointContract,
  type ParsedRequestOf,
  type ResponseOf,
} from '@mandate/contracts';
import { AuditTrail } from '../audit.assembly.js';

type Req<E extends EndpointContract> = ParsedRequestOf<E>;

/** The audit trail's API over NATS: queries, verification, digests on demand, public keys. */
@Controller()
export class AuditEndpoint {
  constructor(@Inject(AuditTrail) private readonly trail: AuditTrail) {}

  @MessagePattern(auditQueryEndpoint.subject)
  query(@Payload() request: Req<typeof auditQueryEndpoint>): Promise<ResponseOf<typeof auditQueryEndpoint>> {
    return this.trail.query(request);
  }

  @MessagePattern(auditVerifyEndpoint.subject)
  verify(@Payload() request: Req<typeof auditVerifyEndpoint>): Promise<ResponseOf<typeof auditVerifyEndpoint>> {
    return this.trail.verify(request.tenant, { from: request.from, to: request.to });
  }

  @MessagePattern(auditDigestEndpoint.subject)
  async digest(@Payload() request: Req<typeof auditDigestEndpoint>): Promise<ResponseOf<typeof auditDigestEndpoint>> {
    return { digests: await this.trail.digestNow(request.tenant) };
  }

  @MessagePattern(auditKeysEndpoint.subject)
  keys(): ResponseOf<typeof auditKeysEndpoint> {
    return this.trail.publicKeys();
  }
}
