import { Module } from '@nestjs/common';
import type { NatsConnection } from '@nats-io/transport-node';
import { authorizerEndpoints, AUTHORIZER_SERVICE } from '@mandate/contracts';
import {
  BusClient,
  DOCUMENT_STORE,
  JetStreamPublisher,
  NATS_CONNECTION,
  SERVICE_ENV,
  SERVICE_LOGGER,
  useCaseProviders,
  type ServiceDefinition,
} from '@mandate/bus';
import type { DocumentStore } from '@mandate/store';
import type { Logger } from '@mandate/telemetry';
import { Authorizer } from './authorizer.assembly.js';
import { authorizerEnvSchema } from './config.js';
import { SigningKeyAdministration } from './domain/signing-key-administration.js';
import { TokenService } from './domain/token-service.js';
import { SigningKeysEndpoint, TokensEndpoint } from './endpoints/tokens.endpoint.js';
import { ASSERTION_IDS_COLLECTION } from './store/assertion-replay-guard.js';
import { SIGNING_KEYS_COLLECTION } from './store/signing-key-repository.js';

@Module({
  controllers: [TokensEndpoint, SigningKeysEndpoint],
  providers: [
    {
      provide: Authorizer,
      inject: [SERVICE_ENV, NATS_CONNECTION, BusClient, DOCUMENT_STORE, JetStreamPublisher, SERVICE_LOGGER],
      useFactory: (env: unknown, nc: NatsConnection, bus: BusClient, store: DocumentStore, publisher: JetStreamPublisher, logger: Logger) =>
        // The runtime hands every service the shared settings; ours are parsed from the same source.
        Authorizer.assemble({ env: authorizerEnvSchema.parse(env), nc, bus, store, publisher, logger }),
    },
    ...useCaseProviders(Authorizer, [TokenService, SigningKeyAdministration]),
  ],
})
export class AuthorizerModule {}

export const authorizerService: ServiceDefinition = {
  name: AUTHORIZER_SERVICE,
  version: '0.1.0',
  description: 'Inbound authorization, workload authentication and workload access tokens',
  module: AuthorizerModule,
  envSchema: authorizerEnvSchema,
  endpoints: authorizerEndpoints,
  collections: [SIGNING_KEYS_COLLECTION, ASSERTION_IDS_COLLECTION],
};

export { authorizerEnvSchema } from './config.js';
