import { Controller, Inject } from '@nestjs/common';
import { MessagePattern, Payload } from '@nestjs/microservices';
import {
  authorizerSetEndpoint,
  workloadCreateEndpoint,
  workloadDeleteEndpoint,
  workloadGetEndpoint,
  workloadListEndpoint,
  workloadUpdateEndpoint,
  type EndpointContract,
  type ParsedRequestOf,
  type ResponseOf,
} from '@mandate/contracts';
import { WorkloadDirectory } from '../domain/workload-directory.js';

type Req<E extends EndpointContract> = ParsedRequestOf<E>;

/** The directory's admin API over NATS: each handler hands the validated request to the domain. */
@Controller()
export class WorkloadsEndpoint {
  constructor(@Inject(WorkloadDirectory) private readonly directory: WorkloadDirectory) {}

  @MessagePattern(workloadCreateEndpoint.subject)
  create(@Payload() request: Req<typeof workloadCreateEndpoint>): Promise<ResponseOf<typeof workloadCreateEndpoint>> {
    return this.directory.create(request);
  }

  @MessagePattern(workloadGetEndpoint.subject)
  get(@Payload() request: Req<typeof workloadGetEndpoint>): Promise<ResponseOf<typeof workloadGetEndpoint>> {
    return this.directory.get(request.tenant, request.name);
  }

  @MessagePattern(workloadUpdateEndpoint.subject)
  update(@Payload() request: Req<typeof workloadUpdateEndpoint>): Promise<ResponseOf<typeof workloadUpdateEndpoint>> {
    return this.directory.update(request);
  }

  @MessagePattern(workloadDeleteEndpoint.subject)
  async delete(@Payload() request: Req<typeof workloadDeleteEndpoint>): Promise<ResponseOf<typeof workloadDeleteEndpoint>> {
    await this.directory.delete(request.tenant, request.name, request.expectedRevision, request.actor);
    return { deleted: true };
  }

  @MessagePattern(workloadListEndpoint.subject)
  list(@Payload() request: Req<typeof workloadListEndpoint>): Promise<ResponseOf<typeof workloadListEndpoint>> {
    return this.directory.list(request.tenant, request.limit, request.cursor);
  }

  @MessagePattern(authorizerSetEndpoint.subject)
  setAuthorizer(@Payload() request: Req<typeof authorizerSetEndpoint>): Promise<ResponseOf<typeof authorizerSetEndpoint>> {
    return this.directory.setAuthorizer(request.tenant, request.name, request.authorizer, request.expectedRevision, request.actor);
  }
}
