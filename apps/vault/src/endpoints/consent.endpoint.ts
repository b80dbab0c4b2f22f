import { Controller, Inject } from '@nestjs/common';
import { MessagePattern, Payload } from '@nestjs/microservices';
import {
  codeExchangeEndpoint,
  providerAuthorizationEndpoint,
  VAULT_SERVICE,
  vaultGrantCheckEndpoint,
  vaultGrantListEndpoint,
  vaultGrantRevokeEndpoint,
  vaultSessionCompleteEndpoint,
  vaultSessionFailEndpoint,
  vaultSessionGetEndpoint,
  type ParsedRequestOf,
  type ResponseOf,
} from '@mandate/contracts';
import { JetStreamPublisher } from '@mandate/bus';
import { Vault } from '../vault.assembly.js';

/** The vault's internal endpoints for the consent service: sessions, provider redirect data, the code exchange, grants. */
@Controller()
export class ConsentEndpoint {
  constructor(
    @Inject(Vault) private readonly vault: Vault,
    @Inject(JetStreamPublisher) private readonly audit: JetStreamPublisher,
  ) {}

  @MessagePattern(vaultSessionGetEndpoint.subject)
  async sessionGet(@Payload() request: ParsedRequestOf<typeof vaultSessionGetEndpoint>): Promise<ResponseOf<typeof vaultSessionGetEndpoint>> {
    const session = await this.vault.sessions.get(request.tenant, request.sessionId);
    return {
      tenant: request.tenant,
      sessionId: request.sessionId,
      workload: session.workload,
      provider: session.provider,
      user: session.user,
      scopes: session.scopes,
      newScopes: session.newScopes ?? session.scopes,
      ...(session.returnUrl ? { returnUrl: session.returnUrl } : {}),
      ...(session.customState ? { customState: session.customState } : {}),
      ...(session.customParameters ? { customParameters: session.customParameters } : {}),
      state: session.state,
      awaitingApplication: session.held !== undefined,
      createdAt: new Date(session.createdAt).toISOString(),
      expiresAt: new Date(session.expiresAt).toISOString(),
      ...(session.traceparent ? { traceparent: session.traceparent } : {}),
    };
  }

  @MessagePattern(vaultSessionFailEndpoint.subject)
  async sessionFail(@Payload() request: ParsedRequestOf<typeof vaultSessionFailEndpoint>): Promise<ResponseOf<typeof vaultSessionFailEndpoint>> {
    const session = await this.vault.sessions.fail(request.tenant, request.sessionId);
    await this.audit.audit({
      tenant: request.tenant,
      service: VAULT_SERVICE,
      action: 'consent-session-fail',
      outcome: 'succeeded',
      reason: request.reason,
      actor: { workload: session.workload, user: session.user },
      target: { provider: session.provider, scopes: session.scopes },
    });
    return { failed: true };
  }

  @MessagePattern(providerAuthorizationEndpoint.subject)
  providerAuthorization(@Payload() request: ParsedRequestOf<typeof providerAuthorizationEndpoint>): Promise<ResponseOf<typeof providerAuthorizationEndpoint>> {
    return this.vault.service.authorizationInfo(request.tenant, request.provider);
  }

  @MessagePattern(codeExchangeEndpoint.subject)
  codeExchange(@Payload() request: ParsedRequestOf<typeof codeExchangeEndpoint>): Promise<ResponseOf<typeof codeExchangeEndpoint>> {
    return this.vault.service.exchangeCode(request);
  }

  @MessagePattern(vaultSessionCompleteEndpoint.subject)
  sessionComplete(@Payload() request: ParsedRequestOf<typeof vaultSessionCompleteEndpoint>): Promise<ResponseOf<typeof vaultSessionCompleteEndpoint>> {
    return this.vault.service.completeSession(request.tenant, request.sessionId, request.completionCode, request.workloadToken);
  }

  @MessagePattern(vaultGrantListEndpoint.subject)
  async grantList(@Payload() request: ParsedRequestOf<typeof vaultGrantListEndpoint>): Promise<ResponseOf<typeof vaultGrantListEndpoint>> {
    return { items: await this.vault.service.listGrants(request.tenant, { user: request.user, workload: request.workload }) };
  }

  @MessagePattern(vaultGrantRevokeEndpoint.subject)
  grantRevoke(@Payload() request: ParsedRequestOf<typeof vaultGrantRevokeEndpoint>): Promise<ResponseOf<typeof vaultGrantRevokeEndpoint>> {
    return this.vault.service.revokeGrants(request.tenant, request.user, request.workload, request.provider, request.actor);
  }

  @MessagePattern(vaultGrantCheckEndpoint.subject)
  grantCheck(@Payload() request: ParsedRequestOf<typeof vaultGrantCheckEndpoint>): Promise<ResponseOf<typeof vaultGrantCheckEndpoint>> {
    return this.vault.service.checkGrant(request.tenant, request.workload, request.provider, request.user, request.scopes);
  }
}
