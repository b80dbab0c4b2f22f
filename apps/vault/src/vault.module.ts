import { Module } from '@nestjs/common';
import { consentLedgerEndpoints, vaultEndpoints, VAULT_SERVICE } from '@mandate/contracts';
import type { NatsConnection } from '@nats-io/transport-node';
import { BusClient, DOCUMENT_STORE, JetStreamPublisher, NATS_CONNECTION, SERVICE_ENV, SERVICE_LOGGER, useCaseProviders, type ServiceDefinition } from '@mandate/bus';
import type { DocumentStore } from '@mandate/store';
import type { Logger } from '@mandate/telemetry';
import { vaultEnvSchema } from './config.js';
import { ApiKeyRelease } from './domain/api-key-release.js';
import { ConsentCeremony } from './domain/consent-ceremony.js';
import { ConsentSessions } from './domain/consent-sessions.js';
import { GrantAdministration } from './domain/grant-administration.js';
import { ProactiveRefresh } from './domain/proactive-refresh.js';
import { ProviderAdministration } from './domain/provider-administration.js';
import { TokenRelease } from './domain/token-release.js';
import { TokenRevocation } from './domain/token-revocation.js';
import { ConsentCeremonyEndpoint, ConsentSessionsEndpoint, GrantsEndpoint } from './endpoints/consent-ledger.endpoint.js';
import { ProvidersEndpoint } from './endpoints/providers.endpoint.js';
import { ApiKeyReleaseEndpoint, TokenReleaseEndpoint, TokenRevocationEndpoint } from './endpoints/tokens.endpoint.js';
import { VAULT_COLLECTIONS } from './store/vault-records.js';
import { Vault } from './vault.assembly.js';

@Module({
  controllers: [TokenReleaseEndpoint, ApiKeyReleaseEndpoint, TokenRevocationEndpoint, ProvidersEndpoint, ConsentSessionsEndpoint, ConsentCeremonyEndpoint, GrantsEndpoint],
  providers: [
    {
      provide: Vault,
      inject: [SERVICE_ENV, NATS_CONNECTION, BusClient, DOCUMENT_STORE, JetStreamPublisher, SERVICE_LOGGER],
      useFactory: (env: unknown, nc: NatsConnection, bus: BusClient, store: DocumentStore, publisher: JetStreamPublisher, logger: Logger) =>
        Vault.assemble({ env: vaultEnvSchema.parse(env), nc, bus, store, publisher, logger }),
    },
    ...useCaseProviders(Vault, [TokenRelease, ApiKeyRelease, TokenRevocation, ProviderAdministration, ConsentSessions, ConsentCeremony, GrantAdministration, ProactiveRefresh]),
  ],
})
export class VaultModule {}

export const vaultService: ServiceDefinition = {
  name: VAULT_SERVICE,
  version: '0.1.0',
  description: 'Credential providers, OAuth2 tokens (M2M and user-federated), API keys, refresh and revocation, and the consent ledger',
  module: VaultModule,
  envSchema: vaultEnvSchema,
  endpoints: [...vaultEndpoints, ...consentLedgerEndpoints],
  collections: [...VAULT_COLLECTIONS],
};

export { vaultEnvSchema } from './config.js';
