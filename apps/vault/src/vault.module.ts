import { Module, type DynamicModule } from '@nestjs/common';
import { vaultConsentEndpoints, vaultEndpoints, VAULT_SERVICE } from '@mandate/contracts';
import type { NatsConnection } from '@nats-io/transport-node';
import { BusClient, DOCUMENT_STORE, JetStreamPublisher, NATS_CONNECTION, SERVICE_ENV, SERVICE_LOGGER, type ServiceDefinition } from '@mandate/bus';
import type { DocumentStore } from '@mandate/store';
import type { Logger } from '@mandate/telemetry';
import { vaultEnvSchema } from './config.js';
import { ProvidersEndpoint } from './endpoints/providers.endpoint.js';
import { TokensEndpoint } from './endpoints/tokens.endpoint.js';
import { ConsentEndpoint } from './endpoints/consent.endpoint.js';
import { VAULT_COLLECTIONS } from './store/vault-records.js';
import { Vault } from './vault.assembly.js';

const VAULT_TEST_HOOKS = Symbol('VAULT_TEST_HOOKS');

export interface VaultTestHooks {
  afterUpstreamRefresh?: () => Promise<void>;
}

@Module({
  controllers: [ProvidersEndpoint, TokensEndpoint, ConsentEndpoint],
  providers: [
    {
      provide: Vault,
      inject: [SERVICE_ENV, NATS_CONNECTION, BusClient, DOCUMENT_STORE, JetStreamPublisher, SERVICE_LOGGER, { token: VAULT_TEST_HOOKS, optional: true }],
      useFactory: (env: unknown, nc: NatsConnection, bus: BusClient, store: DocumentStore, publisher: JetStreamPublisher, logger: Logger, hooks?: VaultTestHooks) =>
        Vault.assemble({
          env: vaultEnvSchema.parse(env),
          nc,
          bus,
          store,
          publisher,
          logger,
          ...(hooks?.afterUpstreamRefresh ? { afterUpstreamRefresh: hooks.afterUpstreamRefresh } : {}),
        }),
    },
  ],
})
export class VaultModule {
  /** The vault with a fault injected between an upstream refresh and storing its result (tests only). */
  static withTestHooks(hooks: VaultTestHooks): DynamicModule {
    return { module: VaultModule, providers: [{ provide: VAULT_TEST_HOOKS, useValue: hooks }] };
  }
}

export const vaultService: ServiceDefinition = {
  name: VAULT_SERVICE,
  version: '0.1.0',
  description: 'Credential providers, OAuth2 tokens (M2M and user-federated), API keys, refresh and revocation',
  module: VaultModule,
  endpoints: [...vaultEndpoints, ...vaultConsentEndpoints],
  collections: [...VAULT_COLLECTIONS],
};
