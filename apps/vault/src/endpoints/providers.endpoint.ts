import { Controller, Inject } from '@nestjs/common';
import { MessagePattern, Payload } from '@nestjs/microservices';
import {
  providerCreateEndpoint,
  providerDeleteEndpoint,
  providerGetEndpoint,
  providerListEndpoint,
  providerUpdateEndpoint,
  MandateError,
  type ParsedRequestOf,
  type ResponseOf,
} from '@mandate/contracts';
import { Vault } from '../vault.assembly.js';

/** Provider administration over NATS. */
@Controller()
export class ProvidersEndpoint {
  constructor(@Inject(Vault) private readonly vault: Vault) {}

  @MessagePattern(providerCreateEndpoint.subject)
  create(@Payload() request: ParsedRequestOf<typeof providerCreateEndpoint>): Promise<ResponseOf<typeof providerCreateEndpoint>> {
    return this.vault.providers.create(request);
  }

  @MessagePattern(providerGetEndpoint.subject)
  get(@Payload() request: ParsedRequestOf<typeof providerGetEndpoint>): Promise<ResponseOf<typeof providerGetEndpoint>> {
    return this.vault.providers.view(request.tenant, request.name);
  }

  @MessagePattern(providerListEndpoint.subject)
  list(@Payload() request: ParsedRequestOf<typeof providerListEndpoint>): Promise<ResponseOf<typeof providerListEndpoint>> {
    return this.vault.providers.list(request.tenant, request.limit, request.cursor);
  }

  @MessagePattern(providerUpdateEndpoint.subject)
  async update(@Payload() request: ParsedRequestOf<typeof providerUpdateEndpoint>): Promise<ResponseOf<typeof providerUpdateEndpoint>> {
    const view = await this.vault.providers.update(request);
    // New secrets or endpoints: tokens fetched with the old ones are not handed out again.
    await this.vault.machineTokens.forget(request.tenant, request.name);
    return view;
  }

  @MessagePattern(providerDeleteEndpoint.subject)
  async delete(@Payload() request: ParsedRequestOf<typeof providerDeleteEndpoint>): Promise<ResponseOf<typeof providerDeleteEndpoint>> {
    const current = await this.vault.providers.view(request.tenant, request.name);
    if (request.expectedRevision !== undefined && current.revision !== request.expectedRevision) {
      throw new MandateError('conflict', `provider ${request.name} was changed by someone else; read it again and retry`);
    }
    await this.vault.service.retireProvider(request.tenant, request.name);
    await this.vault.providers.delete(request.tenant, request.name, request.expectedRevision, request.actor);
    return { deleted: true };
  }
}
