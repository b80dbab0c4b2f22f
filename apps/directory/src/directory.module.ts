import { directoryEnvSchema } from './config.js';
import { Module } from '@nestjs/common';
import { directoryAudit, directoryEndpoints, DIRECTORY_SERVICE } from '@mandate/contracts';
import { DOCUMENT_STORE, JetStreamPublisher, type ServiceDefinition } from '@mandate/bus';
import type { DocumentStore } from '@mandate/store';
import { WorkloadDirectory } from './domain/workload-directory.js';
import { WorkloadRepository, WORKLOADS_COLLECTION } from './store/workload-repository.js';
import { WorkloadsEndpoint } from './endpoints/workloads.endpoint.js';

@Module({
  controllers: [WorkloadsEndpoint],
  providers: [
    {
      provide: WorkloadDirectory,
      inject: [DOCUMENT_STORE, JetStreamPublisher],
      useFactory: async (store: DocumentStore, publisher: JetStreamPublisher) =>
        new WorkloadDirectory(await WorkloadRepository.open(store), publisher.auditSink(directoryAudit), publisher),
    },
  ],
})
export class DirectoryModule {}

export const directoryService: ServiceDefinition = {
  name: DIRECTORY_SERVICE,
  version: '0.1.0',
  description: 'Workload identities, their public keys and inbound authorizer configs',
  module: DirectoryModule,
  envSchema: directoryEnvSchema,
  endpoints: directoryEndpoints,
  collections: [WORKLOADS_COLLECTION],
};

export { directoryEnvSchema } from './config.js';
