import { Controller, Inject } from '@nestjs/common';
import { MessagePattern, Payload } from '@nestjs/microservices';
import {
  apiKeyEndpoint,
  grantRecordEndpoint,
  oauth2TokenEndpoint,
  tokenRevokeEndpoint,
  userTokensPutEndpoint,
  type ParsedRequestOf,
  type ResponseOf,
} from '@mandate/contracts';
import { Vault } from '../vault.assembly.js';

/** Token release, storage, grants and revocation over NATS. */
@Controller()
export class TokensEndpoint {
  constructor(@Inject(Vault) private readonly vault: Vault) {}

  @MessagePattern(oauth2TokenEndpoint.subject)
  oauth2Token(@Payload() request: ParsedRequestOf<typeof oauth2TokenEndpoint>): Promise<ResponseOf<typeof oauth2TokenEndpoint>> {
    return this.vault.service.oauth2Token(request);
  }

  @MessagePattern(apiKeyEndpoint.subject)
  apiKey(@Payload() request: ParsedRequestOf<typeof apiKeyEndpoint>): Promise<ResponseOf<typeof apiKeyEndpoint>> {
    return this.vault.service.apiKey(request);
  }

  @MessagePattern(userTokensPutEndpoint.subject)
  async putUserTokens(@Payload() request: ParsedRequestOf<typeof userTokensPutEndpoint>): Promise<ResponseOf<typeof userTokensPutEndpoint>> {
    await this.vault.service.putUserTokens(request.tenant, request.provider, request.user, request.scopes, {
      accessToken: request.accessToken,
      tokenType: request.tokenType,
      ...(request.refreshToken ? { refreshToken: request.refreshToken } : {}),
      ...(request.expiresIn !== undefined ? { expiresAt: Date.now() + request.expiresIn * 1000 } : {}),
    });
    return { stored: true };
  }

  @MessagePattern(grantRecordEndpoint.subject)
  async recordGrant(@Payload() request: ParsedRequestOf<typeof grantRecordEndpoint>): Promise<ResponseOf<typeof grantRecordEndpoint>> {
    if (request.sessionId) {
      await this.vault.sessions.complete(request.tenant, request.sessionId, { workload: request.workload, provider: request.provider, user: request.user });
    }
    await this.vault.grants.record(request.tenant, request.workload, request.provider, request.user, request.scopes, request.expiresAt ? { expiresAt: Date.parse(request.expiresAt) } : {});
    return { recorded: true };
  }

  @MessagePattern(tokenRevokeEndpoint.subject)
  revoke(@Payload() request: ParsedRequestOf<typeof tokenRevokeEndpoint>): Promise<ResponseOf<typeof tokenRevokeEndpoint>> {
    return this.vault.service.revoke(request.tenant, request.provider, request.user, request.actor);
  }
}
