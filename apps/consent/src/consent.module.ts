import { Module } from '@nestjs/common';
import { consentEndpoints, CONSENT_SERVICE } from '@mandate/contracts';
import { BusClient, DOCUMENT_STORE, JetStreamPublisher, SERVICE_ENV, SERVICE_LOGGER, type ServiceDefinition } from '@mandate/bus';
import type { DocumentStore } from '@mandate/store';
import type { Logger } from '@mandate/telemetry';
import { consentEnvSchema } from './config.js';
import { Consent } from './consent.assembly.js';
import { GrantsEndpoint } from './endpoints/grants.endpoint.js';
import { SessionsEndpoint } from './endpoints/sessions.endpoint.js';
import { FLOWS_COLLECTION } from './store/flows.js';
import { LOGIN_TRIPS_COLLECTION, SIGNED_IN_COLLECTION } from './store/sign-ins.js';

@Module({
  controllers: [SessionsEndpoint, GrantsEndpoint],
  providers: [
    {
      provide: Consent,
      inject: [SERVICE_ENV, BusClient, DOCUMENT_STORE, JetStreamPublisher, SERVICE_LOGGER],
      useFactory: (env: unknown, bus: BusClient, store: DocumentStore, publisher: JetStreamPublisher, logger: Logger) =>
        Consent.assemble({ env: consentEnvSchema.parse(env), bus, store, publisher, logger }),
    },
  ],
})
export class ConsentModule {}

export const consentService: ServiceDefinition = {
  name: CONSENT_SERVICE,
  version: '0.1.0',
  description: 'Consent pages, the provider redirect (PKCE, state), the callback and grants',
  module: ConsentModule,
  endpoints: consentEndpoints,
  collections: [FLOWS_COLLECTION, LOGIN_TRIPS_COLLECTION, SIGNED_IN_COLLECTION],
};
