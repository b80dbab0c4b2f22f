import { Controller, Inject } from '@nestjs/common';
import { MessagePattern, Payload } from '@nestjs/microservices';
import {
  authorizeEndpoint,
  jwksEndpoint,
  signingKeysRotateEndpoint,
  tokenForJwtEndpoint,
  tokenForUserEndpoint,
  tokenForWorkloadEndpoint,
  type ParsedRequestOf,
  type ResponseOf,
} from '@mandate/contracts';
import { Authorizer } from '../authorizer.assembly.js';

/** The authorizer over NATS: each handler hands the validated request to the domain. */
@Controller()
export class TokensEndpoint {
  constructor(@Inject(Authorizer) private readonly authorizer: Authorizer) {}

  @MessagePattern(authorizeEndpoint.subject)
  authorize(@Payload() request: ParsedRequestOf<typeof authorizeEndpoint>): Promise<ResponseOf<typeof authorizeEndpoint>> {
    return this.authorizer.tokens.authorize(request.tenant, request.workload, request.token);
  }

  @MessagePattern(tokenForWorkloadEndpoint.subject)
  forWorkload(@Payload() request: ParsedRequestOf<typeof tokenForWorkloadEndpoint>): Promise<ResponseOf<typeof tokenForWorkloadEndpoint>> {
    return this.authorizer.tokens.forWorkload(request.tenant, request.workload, request.clientAssertion);
  }

  @MessagePattern(tokenForJwtEndpoint.subject)
  forJwt(@Payload() request: ParsedRequestOf<typeof tokenForJwtEndpoint>): Promise<ResponseOf<typeof tokenForJwtEndpoint>> {
    return this.authorizer.tokens.forJwt(request.tenant, request.workload, request.userToken);
  }

  @MessagePattern(tokenForUserEndpoint.subject)
  forUser(@Payload() request: ParsedRequestOf<typeof tokenForUserEndpoint>): Promise<ResponseOf<typeof tokenForUserEndpoint>> {
    return this.authorizer.tokens.forUser(request.tenant, request.workload, request.userId, request.clientAssertion);
  }

  @MessagePattern(jwksEndpoint.subject)
  jwks(): ResponseOf<typeof jwksEndpoint> {
    return { keys: this.authorizer.keys.publicKeys() as ResponseOf<typeof jwksEndpoint>['keys'] };
  }

  @MessagePattern(signingKeysRotateEndpoint.subject)
  rotate(@Payload() request: ParsedRequestOf<typeof signingKeysRotateEndpoint>): Promise<ResponseOf<typeof signingKeysRotateEndpoint>> {
    return this.authorizer.rotateKeys(request.actor);
  }
}
