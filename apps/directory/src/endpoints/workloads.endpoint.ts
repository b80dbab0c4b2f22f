import { endpointController } from '@mandate/bus';
import { authorizerSetEndpoint, workloadCreateEndpoint, workloadDeleteEndpoint, workloadGetEndpoint, workloadListEndpoint, workloadUpdateEndpoint } from '@mandate/contracts';
import { WorkloadDirectory } from '../domain/workload-directory.js';

/** The directory's admin API over NATS: each endpoint hands the validated request to the domain. */
export const WorkloadsEndpoint = endpointController(WorkloadDirectory, (serve) => [
  serve(workloadCreateEndpoint, (directory, request) => directory.create(request)),
  serve(workloadGetEndpoint, (directory, request) => directory.get(request.tenant, request.name)),
  serve(workloadUpdateEndpoint, (directory, request) => directory.update(request)),
  serve(workloadDeleteEndpoint, (directory, request) => directory.delete(request.tenant, request.name, request.expectedRevision, request.actor)),
  serve(workloadListEndpoint, (directory, request) => directory.list(request.tenant, request.limit, request.cursor)),
  serve(authorizerSetEndpoint, (directory, request) => directory.setAuthorizer(request.tenant, request.name, request.authorizer, request.expectedRevision, request.actor)),
]);
