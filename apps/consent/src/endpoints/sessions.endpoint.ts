import { Controller, Inject } from '@nestjs/common';
import { MessagePattern, Payload } from '@nestjs/microservices';
import { consentSessionGetEndpoint, sessionCompleteEndpoint, type ParsedRequestOf, type ResponseOf } from '@mandate/contracts';
import { Consent } from '../consent.assembly.js';

/** Consent sessions over NATS: where one stands, and completion by the application (session binding). */
@Controller()
export class SessionsEndpoint {
  constructor(@Inject(Consent) private readonly consent: Consent) {}

  @MessagePattern(consentSessionGetEndpoint.subject)
  async sessionGet(@Payload() request: ParsedRequestOf<typeof consentSessionGetEndpoint>): Promise<ResponseOf<typeof consentSessionGetEndpoint>> {
    const session = await this.consent.ports.session(request.tenant, request.sessionId);
    return { sessionId: session.sessionId, workload: session.workload, provider: session.provider, user: session.user, scopes: session.scopes, state: session.state, expiresAt: session.expiresAt };
  }

  @MessagePattern(sessionCompleteEndpoint.subject)
  async sessionComplete(@Payload() request: ParsedRequestOf<typeof sessionCompleteEndpoint>): Promise<ResponseOf<typeof sessionCompleteEndpoint>> {
    const granted = await this.consent.flows.complete(request.tenant, request.sessionId, request.completionCode, request.workloadToken);
    return { completed: true, workload: granted.workload, provider: granted.provider, scopes: granted.scopes };
  }
}
