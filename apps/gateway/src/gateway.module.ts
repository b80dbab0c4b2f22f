import { Module } from '@nestjs/common';
import type { NatsConnection } from '@nats-io/transport-node';
import { GATEWAY_SERVICE, gatewayEndpoints } from '@mandate/contracts';
import { BusClient, DOCUMENT_STORE, JetStreamPublisher, NATS_CONNECTION, SERVICE_ENV, SERVICE_LOGGER, useCaseProviders, type ServiceDefinition } from '@mandate/bus';
import type { DocumentStore } from '@mandate/store';
import type { Logger } from '@mandate/telemetry';
import { gatewayEnvSchema } from './config.js';
import { GatewayAdministration } from './domain/gateway-administration.js';
import { GatewaysEndpoint } from './endpoints/gateways.endpoint.js';
import { Gateway } from './gateway.assembly.js';
import { RECEIPT_KEYS_COLLECTION } from './store/receipt-key-repository.js';
import { GATEWAY_COLLECTIONS } from './store/repositories.js';

@Module({
  controllers: [GatewaysEndpoint],
  providers: [
    {
      provide: Gateway,
      inject: [SERVICE_ENV, NATS_CONNECTION, BusClient, DOCUMENT_STORE, JetStreamPublisher, SERVICE_LOGGER],
      useFactory: (env: unknown, nc: NatsConnection, bus: BusClient, store: DocumentStore, publisher: JetStreamPublisher, logger: Logger) =>
        Gateway.assemble({ env: gatewayEnvSchema.parse(env), nc, bus, store, publisher, logger }),
    },
    ...useCaseProviders(Gateway, [GatewayAdministration]),
  ],
})
export class GatewayModule {}

export const gatewayService: ServiceDefinition = {
  name: GATEWAY_SERVICE,
  version: '0.1.0',
  description: 'The tool gateway: MCP endpoints that list each principal only its tools, get target credentials from the vault and audit every call',
  module: GatewayModule,
  envSchema: gatewayEnvSchema,
  endpoints: gatewayEndpoints,
  collections: [...GATEWAY_COLLECTIONS, RECEIPT_KEYS_COLLECTION],
};

export { gatewayEnvSchema } from './config.js';
