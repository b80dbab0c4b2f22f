import { Module } from '@nestjs/common';
import { CONSENT_SERVICE } from '@mandate/contracts';
import { BusClient, DOCUMENT_STORE, JetStreamPublisher, SERVICE_ENV, SERVICE_LOGGER, type ServiceDefinition } from '@mandate/bus';
import type { DocumentStore } from '@mandate/store';
import type { Logger } from '@mandate/telemetry';
import { consentEnvSchema } from './config.js';
import { Consent } from './consent.assembly.js';
import { CONSENT_COLLECTIONS } from './store/repositories.js';

@Module({
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

/** The person-facing web front of the consent ledger: it serves pages over HTTP, and no NATS operation of its own. */
export const consentService: ServiceDefinition = {
  name: CONSENT_SERVICE,
  version: '0.1.0',
  description: 'Consent pages, sign-in at the IdP, the provider redirect (PKCE, state) and callback, My access, the approvals page',
  module: ConsentModule,
  envSchema: consentEnvSchema,
  endpoints: [],
  collections: [...CONSENT_COLLECTIONS],
};

export { consentEnvSchema } from './config.js';
